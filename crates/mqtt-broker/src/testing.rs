//! A deterministic test harness (feature `testing`): one [`Broker`] and any
//! number of [`mqtt_session::client::Client`]s joined by in-memory pipes,
//! on a fake clock, with transport faults.
//!
//! Use it to test your own [`Hooks`], [`Store`] and the policy around the
//! broker without sockets, threads or sleeps: every run is the same.
//!
//! - [`World::run`] moves bytes both ways until nothing moves. It handles
//!   [`Event::Close`] (the broker closes a transport: the client gets
//!   `handle_closed`) and closes from the client side (the client ended the
//!   connection: the broker gets `handle_closed` after its last bytes).
//! - [`World::advance`] moves the clock, calling `handle_timeout` on the
//!   broker and on every client at each deadline they asked for, running
//!   the pipes there; [`World::jump`] moves it at once (a suspended
//!   process), firing every overdue timer at the new time.
//! - Faults per client: [`Peer::hold_out`] / [`Peer::hold_in`] withhold the
//!   bytes of one direction (lost if the connection drops meanwhile),
//!   [`World::drop_conn`] closes a transport abruptly, [`World::inject`]
//!   slips bytes of your own into a client's stream, and
//!   [`World::open_raw`] opens a transport with no client behind it.
//! - Every packet crossing a pipe is decoded with [`mqtt_wire::decode`] and
//!   logged per client ([`Peer::wire_in`], [`Peer::wire_out`]), so tests
//!   check the bytes, not only the events.
//!
//! # What the harness checks by itself
//!
//! It panics, saying which, when the broker breaks one of these:
//!
//! - every byte the broker writes to a client decodes as whole packets of
//!   that client's protocol version;
//! - nothing is written to a connection after the broker asked to close it
//!   ([`Event::Close`]) or after its transport closed, and no connection is
//!   closed twice;
//! - after `handle_timeout(now)`, `poll_timeout()` is `None` or later than
//!   `now`;
//! - the pipes go quiet (no endless exchange) and the timers settle.
//!
//! Misusing the harness (an index that [`World::add`] did not return,
//! connecting a client that has a transport open, asking for a SUBACK that
//! cannot come) also panics with a message saying so; the `try_` methods
//! return errors instead where a test may want to see them.
//!
//! # Example: testing your own hooks
//!
//! An ACL that keeps `guest` out of `private/#`, checked end to end:
//!
//! ```
//! use mqtt_broker::testing::{msg, v5, World};
//! use mqtt_broker::{BrokerConfig, ClientInfo, Hooks};
//! use mqtt_topic::SubscriptionFilter;
//! use mqtt_wire::{QoS, SubAckReasonCode};
//!
//! struct Acl;
//!
//! impl Hooks for Acl {
//!     fn may_subscribe(&mut self, client: &ClientInfo<'_>, filter: &SubscriptionFilter) -> bool {
//!         let f = filter.topic_filter().as_str();
//!         client.client_id.as_str() != "guest" || !(f.starts_with("private") || f.starts_with('#'))
//!     }
//! }
//!
//! let mut w = World::with_hooks(BrokerConfig::default(), Acl);
//! let guest = w.add(v5("guest"));
//! let owner = w.add(v5("owner"));
//! w.connect(guest).expect("CONNACK");
//! w.connect(owner).expect("CONNACK");
//!
//! let ack = w.subscribe(guest, "private/#", QoS::AtLeastOnce);
//! assert_eq!(ack.reason_codes, vec![SubAckReasonCode::NotAuthorized]);
//! w.subscribe(owner, "private/#", QoS::AtLeastOnce);
//!
//! w.publish(owner, msg("private/diary", b"dear diary", QoS::AtLeastOnce));
//! assert_eq!(w.take_payloads(owner), vec!["dear diary"]);
//! assert!(w.take(guest).is_empty());
//!
//! // The guest drops off and comes back after the clock moved.
//! w.drop_conn(guest);
//! w.advance(std::time::Duration::from_secs(30));
//! assert!(w.connect(guest).is_some());
//! assert_eq!(w.stats().connections, 2);
//! ```
// The harness reports misuse and broken broker invariants by panicking,
// like any test helper; every panic says what it checks.
#![allow(clippy::panic)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_session::client::{Client, ClientConfig, Event as ClientEvent};
use mqtt_session::AckMode;
use mqtt_wire::{
    ConnAck, Connect, DecodeConfig, Delivery, Disconnect, DisconnectProperties,
    DisconnectReasonCode, MqttString, Packet, PacketId, ProtocolVersion, Publish, QoS, SubAck,
    SubscribeProperties, Subscription, SubscriptionId, SubscriptionOptions, TopicFilter, TopicName,
    UnsubAck, UnsubscribeProperties, MAX_PACKET_SIZE,
};

use crate::{
    AllowAll, Broker, BrokerConfig, ConnectionId, Error, Event, Hooks, MemoryOnly, Stats, Store,
};

/// Rounds of [`World::run`] (or timer firings) before the harness decides
/// the world never settles.
const MAX_ROUNDS: usize = 1_000_000;

/// What a broker holds at one moment, to check the bounds of
/// [`BrokerConfig`]: see [`Broker::footprint`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Open connections.
    pub connections: usize,
    /// Sessions kept.
    pub sessions: usize,
    /// Sessions findable by client identifier (equal to `sessions` unless
    /// a session leaked).
    pub client_ids: usize,
    /// Subscriptions held by the sessions, summed (equal to
    /// [`Stats::subscriptions`], the routing tree's count, unless one
    /// leaked).
    pub subscriptions: usize,
    /// Most subscriptions held by one session.
    pub most_subscriptions: usize,
    /// Longest session queue, in messages.
    pub largest_queue: usize,
    /// Largest session queue, in topic and payload bytes of the messages
    /// in it.
    pub largest_queue_bytes: usize,
    /// Retained messages stored.
    pub retained_messages: usize,
    /// Topic and payload bytes of the retained messages.
    pub retained_bytes: usize,
}

impl Footprint {
    /// Checks every bound of `config`; panics naming the one broken.
    pub fn assert_within(&self, config: &BrokerConfig) {
        assert!(
            self.connections <= config.max_connections,
            "{} connections, max_connections {}",
            self.connections,
            config.max_connections
        );
        assert!(
            self.sessions <= config.max_sessions,
            "{} sessions, max_sessions {}",
            self.sessions,
            config.max_sessions
        );
        assert_eq!(
            self.client_ids, self.sessions,
            "sessions not findable by client identifier (leaked)"
        );
        assert!(
            self.most_subscriptions <= config.max_subscriptions_per_session,
            "a session holds {} subscriptions, max_subscriptions_per_session {}",
            self.most_subscriptions,
            config.max_subscriptions_per_session
        );
        assert!(
            self.largest_queue <= config.max_queued_messages,
            "a session queues {} messages, max_queued_messages {}",
            self.largest_queue,
            config.max_queued_messages
        );
        assert!(
            self.largest_queue_bytes <= config.max_queued_bytes,
            "a session queues {} bytes, max_queued_bytes {}",
            self.largest_queue_bytes,
            config.max_queued_bytes
        );
        assert!(
            self.retained_messages <= config.max_retained_messages,
            "{} retained messages, max_retained_messages {}",
            self.retained_messages,
            config.max_retained_messages
        );
        assert!(
            self.retained_bytes <= config.max_retained_bytes,
            "{} retained bytes, max_retained_bytes {}",
            self.retained_bytes,
            config.max_retained_bytes
        );
    }
}

/// One client of a [`World`] and its side of the pipes.
#[derive(Debug)]
pub struct Peer {
    /// The client (its session survives connections). Commands may be
    /// called on it directly; [`World::run`] then moves the bytes.
    pub client: Client,
    /// The broker's id for the current transport, if one is open.
    pub conn: Option<ConnectionId>,
    /// Messages the client surfaced (`Event::Publish`), in order; emptied
    /// by [`World::take`].
    pub received: Vec<Publish>,
    /// Every client event, in order (publishes included).
    pub events: Vec<ClientEvent>,
    /// Packets the broker wrote for this client (decoded), each with the
    /// number of the transport it came on ([`Peer::connections`] at the
    /// time); withheld ones included.
    pub wire_in: Vec<(u32, Packet)>,
    /// Packets the broker read from this client (decoded), each with its
    /// transport's number. Bytes from [`World::inject`] and withheld bytes
    /// lost with their transport are not in it.
    pub wire_out: Vec<(u32, Packet)>,
    /// Transports opened so far (the current one's number).
    pub connections: u32,
    /// Withhold client-to-broker bytes (they wait, in order, until this is
    /// cleared and the world runs).
    pub hold_out: bool,
    /// Withhold broker-to-client bytes.
    pub hold_in: bool,
    /// Client-to-broker chunks waiting; `true`: injected, not logged.
    out_q: Vec<(Bytes, bool)>,
    in_q: Vec<Bytes>,
    dec_in: BytesMut,
    dec_out: BytesMut,
}

impl Peer {
    fn new(config: ClientConfig) -> Self {
        Peer {
            client: Client::new(config),
            conn: None,
            received: Vec::new(),
            events: Vec::new(),
            wire_in: Vec::new(),
            wire_out: Vec::new(),
            connections: 0,
            hold_out: false,
            hold_in: false,
            out_q: Vec::new(),
            in_q: Vec::new(),
            dec_in: BytesMut::new(),
            dec_out: BytesMut::new(),
        }
    }

    /// The client's protocol version.
    pub fn version(&self) -> ProtocolVersion {
        self.client.version()
    }

    /// Forgets the bytes of the transport that just closed.
    fn reset_pipes(&mut self) {
        self.out_q.clear();
        self.in_q.clear();
        self.dec_in.clear();
        self.dec_out.clear();
    }
}

/// A broker and its clients on a fake clock. Clients are addressed by the
/// index [`World::add`] returned.
#[derive(Debug)]
pub struct World<H: Hooks = AllowAll, S: Store = MemoryOnly> {
    /// The broker. Its inputs may be called directly (with [`World::now`]);
    /// [`World::run`] then moves the bytes.
    pub broker: Broker<H, S>,
    /// Start of time.
    pub t0: Instant,
    /// The fake clock.
    pub now: Instant,
    /// The clients, by index.
    pub peers: Vec<Peer>,
    /// Every broker event, in order (drain it freely).
    pub events: Vec<Event>,
    /// Bytes handed to `Broker::handle_read` (equal to
    /// [`Stats::bytes_in`] when every byte went through the harness).
    pub fed: u64,
    /// Bytes taken from `Broker::poll_transmit` (equal to
    /// [`Stats::bytes_out`]).
    pub taken: u64,
    /// Transports opened by [`World::open_raw`] and still open.
    pub raw: Vec<ConnectionId>,
    /// Bytes the broker wrote to raw transports, in order.
    pub raw_in: Vec<(ConnectionId, Bytes)>,
    /// Connections closed: by the broker (`Event::Close`) or by the
    /// harness (`handle_closed`).
    closed: BTreeSet<ConnectionId>,
}

impl World<AllowAll, MemoryOnly> {
    /// A broker with `config` and permissive hooks.
    pub fn new(config: BrokerConfig) -> Self {
        World::with_broker(Broker::new(config))
    }
}

impl<H: Hooks> World<H, MemoryOnly> {
    /// A broker with `config` and `hooks`.
    pub fn with_hooks(config: BrokerConfig, hooks: H) -> Self {
        World::with_broker(Broker::with_hooks(config, hooks))
    }
}

impl<H: Hooks, S: Store> World<H, S> {
    /// A world around `broker` (built with any hooks and store, maybe
    /// restored), no clients yet. The clock starts now.
    pub fn with_broker(broker: Broker<H, S>) -> Self {
        let t0 = Instant::now();
        World {
            broker,
            t0,
            now: t0,
            peers: Vec::new(),
            events: Vec::new(),
            fed: 0,
            taken: 0,
            raw: Vec::new(),
            raw_in: Vec::new(),
            closed: BTreeSet::new(),
        }
    }

    fn peer(&self, i: usize) -> &Peer {
        self.peers
            .get(i)
            .unwrap_or_else(|| panic!("no client {i}: use an index World::add returned"))
    }

    fn peer_mut(&mut self, i: usize) -> &mut Peer {
        self.peers
            .get_mut(i)
            .unwrap_or_else(|| panic!("no client {i}: use an index World::add returned"))
    }

    // ---- clients ----

    /// Adds a client with `connect` (not connected yet); returns its index.
    pub fn add(&mut self, connect: Connect) -> usize {
        self.add_config(ClientConfig::new(connect))
    }

    /// Adds a client that acknowledges QoS 1/2 messages by hand (a slow
    /// consumer until it calls `Client::ack`).
    pub fn add_manual(&mut self, connect: Connect) -> usize {
        self.add_config(ClientConfig::new(connect).with_ack_mode(AckMode::Manual))
    }

    /// Adds a client with `config`; returns its index.
    pub fn add_config(&mut self, config: ClientConfig) -> usize {
        self.peers.push(Peer::new(config));
        self.peers.len() - 1
    }

    /// Gives client `i` a new configuration (say, another CONNECT) for its
    /// next connections, keeping its session state (in-flight messages,
    /// packet ids). Refused while it has a transport open.
    pub fn reconfigure(&mut self, i: usize, config: ClientConfig) -> Result<(), Error> {
        let p = self.peer_mut(i);
        if p.conn.is_some() {
            return Err(Error::Session(mqtt_session::Error::InvalidState(
                "the client has a transport open",
            )));
        }
        let session = p.client.session_state();
        p.client = Client::with_session(config, session);
        Ok(())
    }

    /// Opens a transport for client `i`, sends its CONNECT and runs.
    /// Returns the CONNACK it got (`None` if none came: the answer may be
    /// deferred by the hooks, or bytes withheld).
    ///
    /// # Panics
    ///
    /// When [`World::try_connect`] fails.
    pub fn connect(&mut self, i: usize) -> Option<ConnAck> {
        self.try_connect(i)
            .unwrap_or_else(|e| panic!("client {i} cannot connect: {e}"))
    }

    /// [`World::connect`], with errors: the client has a transport open or
    /// refused to connect (`Error::Session`), or the broker refused the
    /// transport (`Error::TooManyConnections`).
    pub fn try_connect(&mut self, i: usize) -> Result<Option<ConnAck>, Error> {
        let now = self.now;
        if self.peer(i).conn.is_some() {
            return Err(Error::Session(mqtt_session::Error::InvalidState(
                "the client has a transport open",
            )));
        }
        let id = self.broker.accept(now)?;
        let p = self.peer_mut(i);
        p.connections += 1;
        p.conn = Some(id);
        p.reset_pipes();
        if let Err(e) = p.client.connect(now) {
            p.conn = None;
            self.broker.handle_closed(id, now);
            self.closed.insert(id);
            self.run();
            return Err(Error::Session(e));
        }
        self.run();
        Ok(self.last_connack(i))
    }

    /// The CONNACK of client `i`'s latest transport.
    pub fn last_connack(&self, i: usize) -> Option<ConnAck> {
        let p = self.peer(i);
        p.wire_in.iter().rev().find_map(|(n, pk)| match pk {
            Packet::ConnAck(c) if *n == p.connections => Some((**c).clone()),
            _ => None,
        })
    }

    /// Whether client `i` has a transport open.
    pub fn is_open(&self, i: usize) -> bool {
        self.peer(i).conn.is_some()
    }

    /// Transports open as far as the harness knows: the clients' and the
    /// raw ones. Equal to the broker's [`Stats::connections`] when every
    /// transport went through the harness.
    pub fn open_transports(&self) -> usize {
        self.peers.iter().filter(|p| p.conn.is_some()).count() + self.raw.len()
    }

    /// Abrupt close of client `i`'s transport (no DISCONNECT): the broker
    /// and the client both see it; withheld bytes are lost. Runs.
    pub fn drop_conn(&mut self, i: usize) {
        let now = self.now;
        let p = self.peer_mut(i);
        p.reset_pipes();
        let id = p.conn.take();
        if let Some(id) = id {
            self.broker.handle_closed(id, now);
            self.closed.insert(id);
        }
        self.peer_mut(i).client.handle_closed(now);
        self.run();
    }

    /// Client `i` sends DISCONNECT with `code` and closes.
    ///
    /// # Panics
    ///
    /// When the client refuses (it is not connected).
    pub fn disconnect(&mut self, i: usize, code: DisconnectReasonCode) {
        self.disconnect_with(i, code, DisconnectProperties::default());
    }

    /// Client `i` sends DISCONNECT with `code` and `props` and closes.
    ///
    /// # Panics
    ///
    /// When the client refuses (it is not connected).
    pub fn disconnect_with(
        &mut self,
        i: usize,
        code: DisconnectReasonCode,
        props: DisconnectProperties,
    ) {
        let now = self.now;
        if let Err(e) = self.peer_mut(i).client.disconnect(now, code, props) {
            panic!("client {i} cannot disconnect: {e}");
        }
        self.run();
    }

    /// Client `i` subscribes to `filter` at `qos` (default options);
    /// returns the SUBACK.
    ///
    /// # Panics
    ///
    /// When `filter` is not a valid filter, and as
    /// [`World::subscribe_many`].
    pub fn subscribe(&mut self, i: usize, filter: &str, qos: QoS) -> SubAck {
        self.subscribe_opts(i, filter, SubscriptionOptions::new(qos), None)
    }

    /// Client `i` subscribes with options and an optional Subscription
    /// Identifier; returns the SUBACK.
    ///
    /// # Panics
    ///
    /// When `filter` or `id` is not valid, and as
    /// [`World::subscribe_many`].
    pub fn subscribe_opts(
        &mut self,
        i: usize,
        filter: &str,
        options: SubscriptionOptions,
        id: Option<u32>,
    ) -> SubAck {
        let filter = TopicFilter::try_from(filter)
            .unwrap_or_else(|e| panic!("{filter:?} is not a topic filter: {e}"));
        let sub = Subscription { filter, options };
        let mut props = SubscribeProperties::default();
        props.subscription_identifier = id.map(|n| {
            SubscriptionId::new(n).unwrap_or_else(|| panic!("{n} is not a subscription identifier"))
        });
        self.subscribe_many(i, vec![sub], props)
    }

    /// Client `i` sends one SUBSCRIBE and runs; returns the SUBACK.
    ///
    /// # Panics
    ///
    /// When the client refuses the command (not connected, ...) or no
    /// SUBACK came back (bytes withheld, hooks deferring, ...).
    pub fn subscribe_many(
        &mut self,
        i: usize,
        subs: Vec<Subscription>,
        props: SubscribeProperties,
    ) -> SubAck {
        let now = self.now;
        let pid = self
            .peer_mut(i)
            .client
            .subscribe(now, subs, props)
            .unwrap_or_else(|e| panic!("client {i} cannot subscribe: {e}"));
        self.run();
        self.peer(i)
            .events
            .iter()
            .rev()
            .find_map(|e| match e {
                ClientEvent::SubAck(s) if s.packet_id == pid => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("client {i} got no SUBACK"))
    }

    /// Client `i` unsubscribes from `filters` and runs; returns the
    /// UNSUBACK.
    ///
    /// # Panics
    ///
    /// When a filter is not valid, the client refuses the command or no
    /// UNSUBACK came back.
    pub fn unsubscribe(&mut self, i: usize, filters: &[&str]) -> UnsubAck {
        let now = self.now;
        let fs = filters
            .iter()
            .map(|f| {
                TopicFilter::try_from(*f)
                    .unwrap_or_else(|e| panic!("{f:?} is not a topic filter: {e}"))
            })
            .collect();
        let pid = self
            .peer_mut(i)
            .client
            .unsubscribe(now, fs, UnsubscribeProperties::default())
            .unwrap_or_else(|e| panic!("client {i} cannot unsubscribe: {e}"));
        self.run();
        self.peer(i)
            .events
            .iter()
            .rev()
            .find_map(|e| match e {
                ClientEvent::UnsubAck(u) if u.packet_id == pid => Some(u.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("client {i} got no UNSUBACK"))
    }

    /// Client `i` publishes `m` and runs. Returns the packet id (QoS 1/2).
    ///
    /// # Panics
    ///
    /// When the client refuses the message (see [`World::try_publish`]).
    pub fn publish(&mut self, i: usize, m: Publish) -> Option<PacketId> {
        let id = self
            .try_publish(i, m)
            .unwrap_or_else(|e| panic!("client {i} cannot publish: {e}"));
        self.run();
        id
    }

    /// Client `i` publishes `m` without running the pipes.
    pub fn try_publish(
        &mut self,
        i: usize,
        m: Publish,
    ) -> Result<Option<PacketId>, mqtt_session::Error> {
        let now = self.now;
        self.peer_mut(i).client.publish(now, m)
    }

    /// Messages client `i` received since the last `take`.
    pub fn take(&mut self, i: usize) -> Vec<Publish> {
        std::mem::take(&mut self.peer_mut(i).received)
    }

    /// Payloads client `i` received since the last `take`, as text (bytes
    /// that are not UTF-8 replaced).
    pub fn take_payloads(&mut self, i: usize) -> Vec<String> {
        self.take(i).iter().map(text).collect()
    }

    /// PUBLISH packets from the broker to client `i` on the wire, every
    /// transport's.
    pub fn wire_publishes(&self, i: usize) -> Vec<Publish> {
        self.peer(i)
            .wire_in
            .iter()
            .filter_map(|(_, p)| match p {
                Packet::Publish(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    /// DISCONNECT packets from the broker to client `i` on the wire.
    pub fn wire_disconnects(&self, i: usize) -> Vec<Disconnect> {
        self.peer(i)
            .wire_in
            .iter()
            .filter_map(|(_, p)| match p {
                Packet::Disconnect(d) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }

    /// The broker's counters.
    pub fn stats(&self) -> Stats {
        self.broker.stats()
    }

    // ---- hand-written bytes ----

    /// Slips `bytes` into client `i`'s stream to the broker, after what the
    /// client already sent (withheld with it under [`Peer::hold_out`]).
    /// They are not logged in [`Peer::wire_out`]. Nothing happens when the
    /// client has no transport open. Runs.
    pub fn inject(&mut self, i: usize, bytes: &[u8]) {
        let p = self.peer_mut(i);
        if p.conn.is_some() {
            p.out_q.push((Bytes::copy_from_slice(bytes), true));
        }
        self.run();
    }

    /// Opens a transport with no client behind it, for hand-written bytes
    /// ([`World::send_raw`]); what the broker writes to it collects in
    /// [`World::raw_in`].
    pub fn open_raw(&mut self) -> Result<ConnectionId, Error> {
        let id = self.broker.accept(self.now)?;
        self.raw.push(id);
        Ok(id)
    }

    /// Bytes on raw transport `id`; runs. Nothing happens when `id` is not
    /// an open raw transport.
    pub fn send_raw(&mut self, id: ConnectionId, bytes: &[u8]) {
        if self.raw.contains(&id) {
            self.fed += bytes.len() as u64;
            self.broker.handle_read(id, self.now, bytes);
        }
        self.run();
    }

    /// Closes raw transport `id`; runs. Nothing happens when `id` is not an
    /// open raw transport.
    pub fn close_raw(&mut self, id: ConnectionId) {
        if let Some(k) = self.raw.iter().position(|r| *r == id) {
            self.raw.remove(k);
            self.broker.handle_closed(id, self.now);
            self.closed.insert(id);
        }
        self.run();
    }

    // ---- running ----

    /// Moves bytes both ways and handles the events until nothing moves.
    ///
    /// # Panics
    ///
    /// When a broker invariant checked by the harness breaks (see the
    /// module docs), or the pipes never go quiet.
    pub fn run(&mut self) {
        for _ in 0..MAX_ROUNDS {
            if !self.step() {
                return;
            }
        }
        panic!("the world never went quiet");
    }

    fn step(&mut self) -> bool {
        let now = self.now;
        let mut moved = false;
        // Clients to broker.
        for p in &mut self.peers {
            while let Some(b) = p.client.poll_transmit() {
                moved = true;
                if p.conn.is_some() {
                    p.out_q.push((b, false));
                } // else: no transport, the bytes go nowhere
            }
            if let (false, Some(id)) = (p.hold_out, p.conn) {
                let v = p.version();
                for (b, injected) in p.out_q.drain(..) {
                    if !injected {
                        log(
                            &mut p.dec_out,
                            &mut p.wire_out,
                            p.connections,
                            v,
                            &b,
                            "client",
                        );
                    }
                    self.fed += b.len() as u64;
                    self.broker.handle_read(id, now, &b);
                    moved = true;
                }
            }
            // The client ended the connection: its transport closes once
            // its last bytes are out.
            if p.client.is_closed() && p.out_q.is_empty() {
                if let Some(id) = p.conn.take() {
                    self.broker.handle_closed(id, now);
                    self.closed.insert(id);
                    p.in_q.clear();
                    moved = true;
                }
            }
        }
        // Broker to clients.
        while let Some((id, b)) = self.broker.poll_transmit() {
            moved = true;
            self.taken += b.len() as u64;
            assert!(
                !self.closed.contains(&id),
                "the broker wrote {} bytes to connection {id} after it was closed",
                b.len()
            );
            if self.raw.contains(&id) {
                self.raw_in.push((id, b));
                continue;
            }
            let Some(p) = self.peers.iter_mut().find(|p| p.conn == Some(id)) else {
                continue; // a transport the caller opened on the broker itself
            };
            let v = p.version();
            log(
                &mut p.dec_in,
                &mut p.wire_in,
                p.connections,
                v,
                &b,
                "broker",
            );
            if p.hold_in || !p.in_q.is_empty() {
                p.in_q.push(b);
            } else {
                p.client.handle_read(now, &b);
            }
        }
        for p in &mut self.peers {
            if !p.hold_in && !p.in_q.is_empty() {
                for b in p.in_q.drain(..) {
                    p.client.handle_read(now, &b);
                }
                moved = true;
            }
        }
        // Broker events.
        while let Some(ev) = self.broker.poll_event() {
            moved = true;
            if let Event::Close(id) = &ev {
                assert!(
                    self.closed.insert(*id),
                    "the broker asked to close connection {id}, already closed"
                );
                if let Some(p) = self.peers.iter_mut().find(|p| p.conn == Some(*id)) {
                    // Everything for this transport was handed out before
                    // the Close; withheld bytes are lost with it.
                    p.conn = None;
                    p.in_q.clear();
                    p.out_q.clear();
                    p.client.handle_closed(now);
                }
                self.raw.retain(|r| r != id);
            }
            self.events.push(ev);
        }
        // Client events.
        for p in &mut self.peers {
            while let Some(ev) = p.client.poll_event() {
                moved = true;
                if let ClientEvent::Publish(m) = &ev {
                    p.received.push(m.clone());
                }
                p.events.push(ev);
            }
        }
        moved
    }

    /// Moves the clock by `d`, firing every timer at its deadline (the
    /// clock stops at each, the pipes run there).
    ///
    /// # Panics
    ///
    /// As [`World::run`], and when a deadline does not move past the time
    /// it fired at.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        self.fire(target, false);
    }

    /// Moves the clock by `d` at once, as when a process was suspended:
    /// every overdue timer fires at the new time.
    ///
    /// # Panics
    ///
    /// As [`World::advance`].
    pub fn jump(&mut self, d: Duration) {
        self.now += d;
        let now = self.now;
        self.fire(now, true);
    }

    fn fire(&mut self, target: Instant, at_target: bool) {
        for _ in 0..MAX_ROUNDS {
            let next = self
                .peers
                .iter()
                .filter_map(|p| p.client.poll_timeout())
                .chain(self.broker.poll_timeout())
                .min();
            let Some(t) = next.filter(|t| *t <= target) else {
                self.now = target;
                self.run();
                return;
            };
            if t > self.now && !at_target {
                self.now = t;
            }
            let now = self.now;
            if self.broker.poll_timeout().is_some_and(|b| b <= now) {
                self.broker.handle_timeout(now);
                if let Some(b) = self.broker.poll_timeout() {
                    assert!(
                        b > now,
                        "broker poll_timeout not past now after handle_timeout"
                    );
                }
            }
            for p in &mut self.peers {
                if p.client.poll_timeout().is_some_and(|c| c <= now) {
                    p.client.handle_timeout(now);
                }
            }
            self.run();
        }
        panic!("the timers never settled");
    }
}

/// Appends `b` to a pipe's decoder and logs every whole packet in it.
fn log(
    dec: &mut BytesMut,
    out: &mut Vec<(u32, Packet)>,
    conn: u32,
    v: ProtocolVersion,
    b: &[u8],
    from: &str,
) {
    dec.extend_from_slice(b);
    let cfg = DecodeConfig::new(v).with_max_packet_size(MAX_PACKET_SIZE);
    loop {
        match mqtt_wire::decode(dec, &cfg) {
            Ok(Some(p)) => out.push((conn, p)),
            Ok(None) => break,
            Err(e) => panic!("bytes the {from} wrote do not decode as {v:?}: {e:?}"),
        }
    }
}

// ---- builders ----

fn client_id(id: &str) -> MqttString {
    MqttString::try_from(id).unwrap_or_else(|e| panic!("{id:?} is not a client identifier: {e}"))
}

/// A 5.0 CONNECT, Clean Start 1, Session Expiry 0.
///
/// # Panics
///
/// When `id` is not a valid MQTT string.
pub fn v5(id: &str) -> Connect {
    Connect::new(ProtocolVersion::V5, client_id(id))
}

/// A 5.0 CONNECT, Clean Start 0, Session Expiry `expiry` seconds.
///
/// # Panics
///
/// When `id` is not a valid MQTT string.
pub fn persistent5(id: &str, expiry: u32) -> Connect {
    let mut c = v5(id);
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(expiry);
    c
}

/// A 3.1.1 CONNECT, CleanSession 1.
///
/// # Panics
///
/// When `id` is not a valid MQTT string.
pub fn v311(id: &str) -> Connect {
    Connect::new(ProtocolVersion::V3_1_1, client_id(id))
}

/// A 3.1.1 CONNECT, CleanSession 0.
///
/// # Panics
///
/// When `id` is not a valid MQTT string.
pub fn persistent311(id: &str) -> Connect {
    let mut c = v311(id);
    c.clean_start = false;
    c
}

/// A message to `topic` at `qos` (the client assigns the packet id).
///
/// # Panics
///
/// When `topic` is not a valid topic name.
pub fn msg(topic: &str, payload: &[u8], qos: QoS) -> Publish {
    let name =
        TopicName::try_from(topic).unwrap_or_else(|e| panic!("{topic:?} is not a topic name: {e}"));
    Publish::new(name, Bytes::copy_from_slice(payload)).with_delivery(Delivery::new(qos, PID1))
}

/// A retained message to `topic` at `qos`.
///
/// # Panics
///
/// When `topic` is not a valid topic name.
pub fn retained(topic: &str, payload: &[u8], qos: QoS) -> Publish {
    msg(topic, payload, qos).with_retain(true)
}

/// The payload as text (bytes that are not UTF-8 replaced).
pub fn text(m: &Publish) -> String {
    String::from_utf8_lossy(&m.payload).into_owned()
}

/// The topic of a message as text (empty when it has only an alias).
pub fn topic(m: &Publish) -> String {
    m.topic
        .as_ref()
        .map_or_else(String::new, |t| t.as_str().to_owned())
}

/// A placeholder packet id (the client assigns the real one).
// Evaluated at compile time: 1 is non-zero, so the panic cannot happen.
const PID1: PacketId = match PacketId::new(1) {
    Some(p) => p,
    None => panic!("1 is a valid packet id"),
};
