//! Deterministic test harness for `mqtt-broker`: one [`Broker`] and any
//! number of `mqtt-session` [`Client`]s joined by in-memory pipes, with a
//! fake clock and transport faults.
//!
//! ```ignore
//! let mut w = World::new(BrokerConfig::default());
//! let sub = w.add(persistent5("sub", 3600));
//! let publ = w.add(v5("pub"));
//! w.connect(sub);
//! w.connect(publ);
//! w.subscribe(sub, "a/+", QoS::AtLeastOnce);
//! w.publish(publ, msg("a/b", b"x", QoS::AtLeastOnce));
//! assert_eq!(w.take(sub).len(), 1);
//! w.drop_conn(sub);                 // abrupt close: both sides see it
//! w.advance(Duration::from_secs(5)); // timers fire at their deadlines
//! w.connect(sub);                   // resume (Clean Start 0)
//! ```
//!
//! - [`World::run`] moves bytes both ways until nothing moves. It handles
//!   [`Event::Close`] (the broker closes a transport: the client gets
//!   `handle_closed`) and closes from the client side (the client ended
//!   the connection: the broker gets `handle_closed` after its last bytes).
//! - [`World::advance`] moves the clock, calling `handle_timeout` on the
//!   broker and on every client at each deadline they asked for, running
//!   the pipes there.
//! - Fault knobs per client: `hold_out` / `hold_in` withhold the bytes of
//!   one direction (they are lost if the connection drops meanwhile).
//! - Every packet crossing a pipe is decoded with `mqtt_wire::decode` and
//!   logged per client ([`Peer::wire_in`], [`Peer::wire_out`]), so tests
//!   check the bytes, not only the events.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_broker::{Broker, BrokerConfig, ConnectionId, Event, Hooks, Stats};
use mqtt_session::client::{Client, ClientConfig, Event as ClientEvent};
use mqtt_session::AckMode;
use mqtt_wire::{
    ConnAck, Connect, DecodeConfig, Delivery, Disconnect, DisconnectProperties,
    DisconnectReasonCode, MqttString, Packet, PacketId, ProtocolVersion, Publish, QoS, SubAck,
    SubscribeProperties, Subscription, SubscriptionId, SubscriptionOptions, TopicFilter, TopicName,
    UnsubAck, UnsubscribeProperties, MAX_PACKET_SIZE,
};

/// One client and its side of the pipes.
#[derive(Debug)]
pub struct Peer {
    /// The client (its session survives connections).
    pub client: Client,
    /// The broker's id for the current transport.
    pub conn: Option<ConnectionId>,
    /// Messages the client surfaced (`Event::Publish`), in order.
    pub received: Vec<Publish>,
    /// Every client event, in order (publishes included).
    pub events: Vec<ClientEvent>,
    /// Packets the broker wrote for this client (decoded, with the
    /// connection number), withheld ones included.
    pub wire_in: Vec<(u32, Packet)>,
    /// Packets the broker read from this client (decoded, with the
    /// connection number); withheld bytes lost with their connection are
    /// not in it.
    pub wire_out: Vec<(u32, Packet)>,
    /// Transports opened so far (the current one's number).
    pub connections: u32,
    /// Withhold client-to-broker bytes.
    pub hold_out: bool,
    /// Withhold broker-to-client bytes.
    pub hold_in: bool,
    out_q: Vec<Bytes>,
    in_q: Vec<Bytes>,
    dec_in: BytesMut,
    dec_out: BytesMut,
}

impl Peer {
    fn version(&self) -> ProtocolVersion {
        self.client.version()
    }
}

/// A broker and its clients on a fake clock.
pub struct World<H: Hooks = mqtt_broker::AllowAll> {
    /// The broker.
    pub broker: Broker<H>,
    /// Start of time.
    pub t0: Instant,
    /// The fake clock.
    pub now: Instant,
    /// The clients, by index.
    pub peers: Vec<Peer>,
    /// Every broker event, in order.
    pub events: Vec<Event>,
    /// Bytes handed to `Broker::handle_read`.
    pub fed: u64,
    /// Bytes taken from `Broker::poll_transmit`.
    pub taken: u64,
}

impl World<mqtt_broker::AllowAll> {
    /// A broker with `config` and permissive hooks.
    pub fn new(config: BrokerConfig) -> Self {
        World::with_broker(Broker::new(config))
    }
}

impl<H: Hooks> World<H> {
    /// A broker with `config` and `hooks`.
    pub fn with_hooks(config: BrokerConfig, hooks: H) -> Self {
        World::with_broker(Broker::with_hooks(config, hooks))
    }

    fn with_broker(broker: Broker<H>) -> Self {
        let t0 = Instant::now();
        World {
            broker,
            t0,
            now: t0,
            peers: Vec::new(),
            events: Vec::new(),
            fed: 0,
            taken: 0,
        }
    }

    /// Adds a client with `connect` (not connected yet); returns its index.
    pub fn add(&mut self, connect: Connect) -> usize {
        self.add_config(ClientConfig::new(connect))
    }

    /// Adds a client acknowledging QoS 1/2 messages by hand.
    pub fn add_manual(&mut self, connect: Connect) -> usize {
        self.add_config(ClientConfig::new(connect).with_ack_mode(AckMode::Manual))
    }

    /// Adds a client with `config`.
    pub fn add_config(&mut self, config: ClientConfig) -> usize {
        self.peers.push(Peer {
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
        });
        self.peers.len() - 1
    }

    /// Opens a transport for client `i` and sends its CONNECT; runs.
    /// Returns the CONNACK it got (None if none came).
    pub fn connect(&mut self, i: usize) -> Option<ConnAck> {
        assert!(self.peers[i].conn.is_none(), "client {i} is connected");
        let id = self.broker.accept(self.now).expect("accept");
        let p = &mut self.peers[i];
        p.connections += 1;
        p.conn = Some(id);
        p.out_q.clear();
        p.in_q.clear();
        p.dec_in.clear();
        p.dec_out.clear();
        p.client.connect(self.now).expect("client connect");
        self.run();
        self.last_connack(i)
    }

    /// The CONNACK of client `i`'s latest connection.
    pub fn last_connack(&self, i: usize) -> Option<ConnAck> {
        let p = &self.peers[i];
        p.wire_in.iter().rev().find_map(|(n, pk)| match pk {
            Packet::ConnAck(c) if *n == p.connections => Some((**c).clone()),
            _ => None,
        })
    }

    /// Whether client `i` has a transport open.
    pub fn is_open(&self, i: usize) -> bool {
        self.peers[i].conn.is_some()
    }

    /// Moves bytes both ways until nothing moves.
    pub fn run(&mut self) {
        for _ in 0..1_000_000 {
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
                let Some(id) = p.conn else {
                    continue; // no transport: the bytes go nowhere
                };
                // A pipe is FIFO: behind withheld bytes, new ones wait too.
                if p.hold_out || !p.out_q.is_empty() {
                    p.out_q.push(b);
                } else {
                    let v = p.version();
                    log(&mut p.dec_out, &mut p.wire_out, p.connections, v, &b);
                    self.fed += b.len() as u64;
                    self.broker.handle_read(id, now, &b);
                }
            }
            if !p.hold_out && !p.out_q.is_empty() {
                if let Some(id) = p.conn {
                    let v = p.version();
                    for b in p.out_q.drain(..) {
                        log(&mut p.dec_out, &mut p.wire_out, p.connections, v, &b);
                        self.fed += b.len() as u64;
                        self.broker.handle_read(id, now, &b);
                    }
                    moved = true;
                }
            }
            // The client ended the connection: its transport closes once
            // its last bytes are out.
            if p.client.is_closed() && p.out_q.is_empty() {
                if let Some(id) = p.conn.take() {
                    self.broker.handle_closed(id, now);
                    p.in_q.clear();
                    moved = true;
                }
            }
        }
        // Broker to clients.
        while let Some((id, b)) = self.broker.poll_transmit() {
            moved = true;
            self.taken += b.len() as u64;
            let Some(p) = self.peers.iter_mut().find(|p| p.conn == Some(id)) else {
                continue;
            };
            let v = p.version();
            log(&mut p.dec_in, &mut p.wire_in, p.connections, v, &b);
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
                if let Some(p) = self.peers.iter_mut().find(|p| p.conn == Some(*id)) {
                    // Everything for this transport was handed out before
                    // the Close; withheld bytes are lost with it.
                    p.conn = None;
                    p.in_q.clear();
                    p.out_q.clear();
                    p.client.handle_closed(now);
                }
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

    /// Moves the clock by `d`, firing every timer at its deadline.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        for _ in 0..1_000_000 {
            let next = self
                .peers
                .iter()
                .filter_map(|p| p.client.poll_timeout())
                .chain(self.broker.poll_timeout())
                .min();
            match next {
                Some(t) if t <= target => {
                    if t > self.now {
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
                _ => break,
            }
        }
        self.now = target;
        self.run();
    }

    /// Abrupt close of client `i`'s transport (no DISCONNECT): the broker
    /// and the client both see it; withheld bytes are lost.
    pub fn drop_conn(&mut self, i: usize) {
        let now = self.now;
        let p = &mut self.peers[i];
        p.out_q.clear();
        p.in_q.clear();
        if let Some(id) = p.conn.take() {
            self.broker.handle_closed(id, now);
        }
        p.client.handle_closed(now);
        self.run();
    }

    /// Client `i` sends DISCONNECT with `code` and closes.
    pub fn disconnect(&mut self, i: usize, code: DisconnectReasonCode) {
        self.disconnect_with(i, code, DisconnectProperties::default());
    }

    /// Client `i` sends DISCONNECT with `code` and `props` and closes.
    pub fn disconnect_with(
        &mut self,
        i: usize,
        code: DisconnectReasonCode,
        props: DisconnectProperties,
    ) {
        self.peers[i]
            .client
            .disconnect(self.now, code, props)
            .expect("disconnect");
        self.run();
    }

    /// Client `i` subscribes to `filter` at `qos` (default options).
    pub fn subscribe(&mut self, i: usize, filter: &str, qos: QoS) -> SubAck {
        self.subscribe_opts(i, filter, SubscriptionOptions::new(qos), None)
    }

    /// Client `i` subscribes with options and an optional identifier;
    /// returns the SUBACK.
    pub fn subscribe_opts(
        &mut self,
        i: usize,
        filter: &str,
        options: SubscriptionOptions,
        id: Option<u32>,
    ) -> SubAck {
        let sub = Subscription {
            filter: TopicFilter::try_from(filter).expect("filter"),
            options,
        };
        let mut props = SubscribeProperties::default();
        props.subscription_identifier = id.map(|n| SubscriptionId::new(n).expect("id"));
        self.subscribe_many(i, vec![sub], props)
    }

    /// Client `i` sends one SUBSCRIBE; returns the SUBACK.
    pub fn subscribe_many(
        &mut self,
        i: usize,
        subs: Vec<Subscription>,
        props: SubscribeProperties,
    ) -> SubAck {
        let pid = self.peers[i]
            .client
            .subscribe(self.now, subs, props)
            .expect("subscribe");
        self.run();
        self.peers[i]
            .events
            .iter()
            .rev()
            .find_map(|e| match e {
                ClientEvent::SubAck(s) if s.packet_id == pid => Some(s.clone()),
                _ => None,
            })
            .expect("SUBACK")
    }

    /// Client `i` unsubscribes from `filters`; returns the UNSUBACK.
    pub fn unsubscribe(&mut self, i: usize, filters: &[&str]) -> UnsubAck {
        let fs = filters
            .iter()
            .map(|f| TopicFilter::try_from(*f).expect("filter"))
            .collect();
        let pid = self.peers[i]
            .client
            .unsubscribe(self.now, fs, UnsubscribeProperties::default())
            .expect("unsubscribe");
        self.run();
        self.peers[i]
            .events
            .iter()
            .rev()
            .find_map(|e| match e {
                ClientEvent::UnsubAck(u) if u.packet_id == pid => Some(u.clone()),
                _ => None,
            })
            .expect("UNSUBACK")
    }

    /// Client `i` publishes `m`; runs. Returns the packet id (QoS 1/2).
    pub fn publish(&mut self, i: usize, m: Publish) -> Option<PacketId> {
        let id = self.peers[i].client.publish(self.now, m).expect("publish");
        self.run();
        id
    }

    /// Client `i` publishes `m` without running the pipes.
    pub fn try_publish(
        &mut self,
        i: usize,
        m: Publish,
    ) -> Result<Option<PacketId>, mqtt_session::Error> {
        self.peers[i].client.publish(self.now, m)
    }

    /// Messages client `i` received since the last `take`.
    pub fn take(&mut self, i: usize) -> Vec<Publish> {
        std::mem::take(&mut self.peers[i].received)
    }

    /// Payloads client `i` received since the last `take`, as strings.
    pub fn take_payloads(&mut self, i: usize) -> Vec<String> {
        self.take(i)
            .into_iter()
            .map(|m| String::from_utf8(m.payload.to_vec()).expect("utf-8 payload"))
            .collect()
    }

    /// PUBLISH packets broker to client `i` on the wire.
    pub fn wire_publishes(&self, i: usize) -> Vec<Publish> {
        self.peers[i]
            .wire_in
            .iter()
            .filter_map(|(_, p)| match p {
                Packet::Publish(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    /// DISCONNECT packets broker to client `i` on the wire.
    pub fn wire_disconnects(&self, i: usize) -> Vec<Disconnect> {
        self.peers[i]
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
}

fn log(dec: &mut BytesMut, out: &mut Vec<(u32, Packet)>, conn: u32, v: ProtocolVersion, b: &[u8]) {
    dec.extend_from_slice(b);
    let cfg = DecodeConfig::new(v).with_max_packet_size(MAX_PACKET_SIZE);
    loop {
        match mqtt_wire::decode(dec, &cfg) {
            Ok(Some(p)) => out.push((conn, p)),
            Ok(None) => break,
            Err(e) => panic!("bytes on the wire do not decode: {e:?}"),
        }
    }
}

// ---- builders ----

/// A 5.0 CONNECT, Clean Start 1, Session Expiry 0.
pub fn v5(id: &str) -> Connect {
    Connect::new(
        ProtocolVersion::V5,
        MqttString::try_from(id).expect("client id"),
    )
}

/// A 5.0 CONNECT, Clean Start 0, Session Expiry `expiry` seconds.
pub fn persistent5(id: &str, expiry: u32) -> Connect {
    let mut c = v5(id);
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(expiry);
    c
}

/// A 3.1.1 CONNECT, CleanSession 1.
pub fn v311(id: &str) -> Connect {
    Connect::new(
        ProtocolVersion::V3_1_1,
        MqttString::try_from(id).expect("client id"),
    )
}

/// A 3.1.1 CONNECT, CleanSession 0.
pub fn persistent311(id: &str) -> Connect {
    let mut c = v311(id);
    c.clean_start = false;
    c
}

/// A message to `topic` at `qos` (the client assigns the packet id).
pub fn msg(topic: &str, payload: &[u8], qos: QoS) -> Publish {
    let pid = PacketId::new(1).expect("1");
    Publish::new(
        TopicName::try_from(topic).expect("topic"),
        Bytes::copy_from_slice(payload),
    )
    .with_delivery(Delivery::new(qos, pid))
}

/// A retained message to `topic` at `qos`.
pub fn retained(topic: &str, payload: &[u8], qos: QoS) -> Publish {
    msg(topic, payload, qos).with_retain(true)
}

/// Payload as a string.
pub fn text(m: &Publish) -> String {
    String::from_utf8(m.payload.to_vec()).expect("utf-8 payload")
}

/// The topic of a message, as a string.
pub fn topic(m: &Publish) -> String {
    m.topic.as_ref().expect("topic").as_str().to_owned()
}
