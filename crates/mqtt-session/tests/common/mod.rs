//! Deterministic test harness for `mqtt-session`: one [`Client`] and one
//! [`ServerConnection`] joined by in-memory pipes, with a fake clock, fault
//! injection, a tiny application on each side and an invariant checker that
//! runs after every step.
//!
//! ```ignore
//! let mut pair = Pair::new(client_config, ServerConfig::default());
//! pair.run(); // CONNECT, CONNACK (the server app accepts)
//! assert!(pair.client.is_connected());
//! let id = pair.client_publish(msg).unwrap(); // tracked in client_app.outbox
//! pair.run();
//! assert_eq!(pair.server_app.received.len(), 1);
//! pair.advance(Duration::from_secs(30)); // timers fire at their deadlines
//! pair.drop_connection(); // both sides see handle_closed
//! pair.reconnect().unwrap(); // new ServerConnection, client.connect(now)
//! ```
//!
//! The API, in short:
//! - [`Pair::new`] builds both ends and starts the first connection.
//! - [`Pair::step`] moves the bytes that are due one step through each pipe;
//!   [`Pair::run`] steps until nothing moves.
//! - [`Pair::advance`] moves the clock, calling `handle_timeout` on each side
//!   at each of its deadlines (and running the pipes there).
//! - [`Pair::drop_connection`], [`Pair::reconnect`],
//!   [`Pair::restart_client`]: transport faults and restarts.
//! - [`Pair::client_publish`], [`Pair::server_publish`]: commands whose
//!   messages are tracked in an [`Outbox`] until acknowledged or lost.
//! - [`Pair::c2s`] / [`Pair::s2c`]: the pipes, with fault knobs
//!   ([`Transfer`], `delay` in steps, `hold`).
//! - [`Pair::wire`]: every packet written on the wire, decoded with
//!   `mqtt_wire::decode`, with its connection number and time.
//! - [`Pair::check_invariants`]: in-flight within the peer's Receive Maximum
//!   (both from the sessions' getters and counted on the wire), the client
//!   application's outbox equal to the session's outbound table; it runs
//!   after every step. Timers are checked where they fire: after
//!   `handle_timeout(now)`, `poll_timeout()` is never `<= now`.
//!
//! The server application accepts every CONNECT, resuming the session taken
//! from the previous connection (`take_session`) when Clean Start is 0 and
//! one exists (unless told to lose it), answers SUBSCRIBE with the requested
//! QoS and records what it receives. The client application records events.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_session::client::{Client, ClientConfig, Event as ClientEvent};
use mqtt_session::server::{Accept, Event as ServerEvent, ServerConfig, ServerConnection};
use mqtt_session::{AckMode, CloseReason, Error, SessionState};
use mqtt_wire::{
    AckProperties, Connect, DecodeConfig, Packet, PacketId, ProtocolVersion, Publish, QoS,
    SubAckReasonCode, UnsubAckReasonCode, MAX_PACKET_SIZE,
};

/// Which way bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dir {
    /// Client to server.
    ToServer,
    /// Server to client.
    ToClient,
}

/// How a pipe hands ready bytes to the reader in one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// Everything ready, in one `handle_read` call.
    All,
    /// Everything ready, one byte per `handle_read` call.
    ByteAtATime,
    /// At most this many bytes per step (the rest waits for later steps).
    Trickle(usize),
}

/// One packet written on the wire, decoded.
#[derive(Debug, Clone)]
pub struct Wire {
    /// Connection number (1 for the first transport).
    pub conn: u32,
    /// When it was written.
    pub at: Instant,
    /// Direction.
    pub dir: Dir,
    /// The packet.
    pub packet: Packet,
}

/// A one-way in-memory byte pipe with fault knobs.
#[derive(Debug)]
pub struct Pipe {
    /// How ready bytes are handed over.
    pub transfer: Transfer,
    /// Steps a write waits before it may be delivered.
    pub delay: u64,
    /// Withhold everything (nothing is delivered while set).
    pub hold: bool,
    /// Written, undelivered chunks with the step from which they are due.
    queue: VecDeque<(u64, Bytes)>,
    /// Decoder for the wire log.
    decoder: BytesMut,
    written: u64,
    delivered: u64,
    /// Packets written, not yet completely delivered: (end offset, packet).
    in_transit: VecDeque<(u64, Packet)>,
}

impl Default for Pipe {
    fn default() -> Self {
        Pipe {
            transfer: Transfer::All,
            delay: 0,
            hold: false,
            queue: VecDeque::new(),
            decoder: BytesMut::new(),
            written: 0,
            delivered: 0,
            in_transit: VecDeque::new(),
        }
    }
}

impl Pipe {
    /// Back to prompt, whole delivery (keeps queued bytes).
    pub fn heal(&mut self) {
        self.transfer = Transfer::All;
        self.delay = 0;
        self.hold = false;
    }

    /// Bytes written and not yet delivered.
    pub fn pending(&self) -> usize {
        self.queue.iter().map(|(_, b)| b.len()).sum()
    }

    fn clear(&mut self) {
        self.queue.clear();
        self.decoder.clear();
        self.written = 0;
        self.delivered = 0;
        self.in_transit.clear();
    }

    /// Whether bytes wait that a later step can deliver.
    fn busy(&self) -> bool {
        !self.hold && !self.queue.is_empty()
    }

    fn write(&mut self, step: u64, bytes: Bytes, version: ProtocolVersion) -> Vec<Packet> {
        self.written += bytes.len() as u64;
        self.decoder.extend_from_slice(&bytes);
        self.queue.push_back((step + self.delay, bytes));
        let cfg = DecodeConfig::new(version).with_max_packet_size(MAX_PACKET_SIZE);
        let mut out = Vec::new();
        loop {
            let before = self.decoder.len();
            match mqtt_wire::decode(&mut self.decoder, &cfg) {
                Ok(Some(p)) => {
                    let end = self.written - self.decoder.len() as u64;
                    debug_assert!(before > self.decoder.len());
                    self.in_transit.push_back((end, p.clone()));
                    out.push(p);
                }
                Ok(None) => break,
                Err(e) => panic!("the session wrote bytes that do not decode: {e:?}"),
            }
        }
        out
    }

    /// The reads due at `step` (bypassing delay and transfer when `all`).
    fn take(&mut self, step: u64, all: bool) -> Vec<Bytes> {
        if self.hold && !all {
            return Vec::new();
        }
        let mut ready = BytesMut::new();
        let mut budget = match self.transfer {
            Transfer::Trickle(n) if !all => n.max(1),
            _ => usize::MAX,
        };
        while let Some((due, chunk)) = self.queue.front_mut() {
            if (*due > step && !all) || budget == 0 {
                break;
            }
            if chunk.len() <= budget {
                budget -= chunk.len();
                ready.extend_from_slice(chunk);
                self.queue.pop_front();
            } else {
                ready.extend_from_slice(&chunk.split_to(budget));
                budget = 0;
            }
        }
        if ready.is_empty() {
            return Vec::new();
        }
        let ready = ready.freeze();
        match self.transfer {
            Transfer::ByteAtATime if !all => (0..ready.len()).map(|i| ready.slice(i..=i)).collect(),
            _ => vec![ready],
        }
    }

    /// Packets completely delivered by the last `n` bytes.
    fn arrived(&mut self, n: usize) -> Vec<Packet> {
        self.delivered += n as u64;
        let mut out = Vec::new();
        while self
            .in_transit
            .front()
            .is_some_and(|(end, _)| *end <= self.delivered)
        {
            if let Some((_, p)) = self.in_transit.pop_front() {
                out.push(p);
            }
        }
        out
    }
}

/// QoS 1/2 messages one side's application published: each is in flight
/// until acknowledged (`completed`) or reported lost (`lost`).
#[derive(Debug, Default, Clone)]
pub struct Outbox {
    /// Accepted by `publish`, awaiting PUBACK / PUBREC-failure / PUBCOMP.
    pub in_flight: BTreeMap<u16, Publish>,
    /// Acknowledged (PubAck, PubComp, PubRecFailed events).
    pub completed: Vec<Publish>,
    /// Reported lost: `Event::SessionLost` (client) or the session the
    /// server application discarded.
    pub lost: Vec<Publish>,
}

impl Outbox {
    fn accepted(&mut self, id: PacketId, msg: Publish) {
        let prev = self.in_flight.insert(id.get(), msg);
        assert!(prev.is_none(), "packet id {id} handed out while in flight");
    }

    fn complete(&mut self, id: PacketId) {
        let msg = self
            .in_flight
            .remove(&id.get())
            .unwrap_or_else(|| panic!("completion event for {id}, which is not in flight"));
        self.completed.push(msg);
    }

    fn lose(&mut self, id: PacketId, reported: Option<&Publish>) {
        let msg = self
            .in_flight
            .remove(&id.get())
            .unwrap_or_else(|| panic!("loss reported for {id}, which is not in flight"));
        if let Some(r) = reported {
            assert_eq!(r.topic, msg.topic, "lost message {id}: topic differs");
            assert_eq!(r.payload, msg.payload, "lost message {id}: payload differs");
            assert_eq!(r.qos(), msg.qos(), "lost message {id}: QoS differs");
        }
        self.lost.push(msg);
    }

    fn lose_all(&mut self) {
        let all = std::mem::take(&mut self.in_flight);
        self.lost.extend(all.into_values());
    }
}

/// The client's application: it records what the client reports.
#[derive(Debug, Default)]
pub struct ClientApp {
    /// Every event, in order.
    pub events: Vec<ClientEvent>,
    /// Messages received from the server.
    pub received: Vec<Publish>,
    /// Session Present of each `Connected`.
    pub connected: Vec<bool>,
    /// Time and reason of each `Disconnected`.
    pub disconnects: Vec<(Instant, CloseReason)>,
    /// The client's own QoS 1/2 messages.
    pub outbox: Outbox,
}

/// The server's application: accepts, resumes sessions, answers
/// SUBSCRIBE, records what it receives.
#[derive(Debug, Default)]
pub struct ServerApp {
    /// Every event, in order.
    pub events: Vec<ServerEvent>,
    /// Messages received from the client.
    pub received: Vec<Publish>,
    /// Time and reason of each `Closed`.
    pub closes: Vec<(Instant, CloseReason)>,
    /// The session taken from the last accepted connection that closed.
    pub session: Option<SessionState>,
    /// Do not resume at the next CONNECT (the session expired, say): it is
    /// discarded and Session Present is 0.
    pub lose_session: bool,
    /// The server's own QoS 1/2 messages to the client.
    pub outbox: Outbox,
}

/// A client and a server connection joined by pipes, with a fake clock.
#[derive(Debug)]
pub struct Pair {
    /// Current (fake) time.
    pub now: Instant,
    /// Start time.
    pub t0: Instant,
    /// The client.
    pub client: Client,
    /// The current server connection (a new one per transport).
    pub server: ServerConnection,
    /// Config of every new server connection.
    pub server_config: ServerConfig,
    /// Client to server pipe.
    pub c2s: Pipe,
    /// Server to client pipe.
    pub s2c: Pipe,
    /// The client's application.
    pub client_app: ClientApp,
    /// The server's application.
    pub server_app: ServerApp,
    /// Every packet written on a live transport, in order.
    pub wire: Vec<Wire>,
    /// Connection number (incremented by each `reconnect`).
    pub conn: u32,
    /// The CONNECT the client was built with (for `restart_client`).
    connect: Connect,
    ack_mode: AckMode,
    linked: bool,
    server_accepted: bool,
    steps: u64,
    /// QoS 1/2 PUBLISH ids sent on this transport, not yet completed as
    /// seen by their sender (MQTT-3.3.4-7 / MQTT-3.3.4-9 count).
    wire_out: BTreeMap<Dir, BTreeSet<u16>>,
}

/// Cap on steps in one `run` (a livelock shows as a failure).
const MAX_RUN_STEPS: usize = 100_000;

impl Pair {
    /// Both ends, and the first connection started (CONNECT queued).
    pub fn new(client: ClientConfig, server_config: ServerConfig) -> Pair {
        let t0 = Instant::now();
        let connect = client.connect.clone();
        let ack_mode = client.ack_mode;
        let mut pair = Pair {
            now: t0,
            t0,
            client: Client::new(client),
            server: ServerConnection::new(server_config.clone(), t0),
            server_config,
            c2s: Pipe::default(),
            s2c: Pipe::default(),
            client_app: ClientApp::default(),
            server_app: ServerApp::default(),
            wire: Vec::new(),
            conn: 0,
            connect,
            ack_mode,
            linked: false,
            server_accepted: false,
            steps: 0,
            wire_out: BTreeMap::new(),
        };
        pair.reconnect().expect("first connect");
        pair
    }

    /// The protocol version of the client.
    pub fn version(&self) -> ProtocolVersion {
        self.client.version()
    }

    /// Whether a transport is up (between `reconnect` and its close).
    pub fn is_linked(&self) -> bool {
        self.linked
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Receive Maximum the server announces (5.0), limiting the client.
    pub fn server_receive_maximum(&self) -> u16 {
        self.server_config.receive_maximum.get()
    }

    /// Receive Maximum the client announces (5.0), limiting the server.
    pub fn client_receive_maximum(&self) -> u16 {
        self.connect
            .properties
            .receive_maximum
            .map_or(u16::MAX, |n| n.get())
    }

    // ---- network ----

    /// One step: each pipe delivers what is due. Returns whether anything
    /// moved.
    pub fn step(&mut self) -> bool {
        self.steps += 1;
        let a = self.deliver(Dir::ToServer, false);
        let b = self.deliver(Dir::ToClient, false);
        self.check_closed();
        self.check_invariants();
        a || b
    }

    /// Steps until nothing moves and no delayed bytes wait (held bytes
    /// stay). Returns the number of steps.
    pub fn run(&mut self) -> usize {
        for n in 0..MAX_RUN_STEPS {
            let moved = self.step();
            if !moved && !self.c2s.busy() && !self.s2c.busy() {
                return n + 1;
            }
        }
        panic!("run did not settle in {MAX_RUN_STEPS} steps (livelock?)");
    }

    /// Moves the clock by `d`. Each side's `handle_timeout` is called at
    /// each of its deadlines in order, and the pipes run there.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        for _ in 0..MAX_RUN_STEPS {
            let next = match (self.client.poll_timeout(), self.server_timeout()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match next {
                Some(t) if t <= target => {
                    if t > self.now {
                        self.now = t;
                    }
                    self.fire_timers();
                    self.run();
                }
                _ => {
                    self.now = target;
                    self.fire_timers();
                    return;
                }
            }
        }
        panic!("timers kept firing without time moving");
    }

    fn server_timeout(&self) -> Option<Instant> {
        if self.linked {
            self.server.poll_timeout()
        } else {
            None
        }
    }

    /// Calls `handle_timeout(now)` on each side whose deadline has come,
    /// checking no timer is left armed at or before `now`.
    fn fire_timers(&mut self) {
        if self.client.poll_timeout().is_some_and(|t| t <= self.now) {
            self.client.handle_timeout(self.now);
            let after = self.client.poll_timeout();
            assert!(
                after.is_none_or(|t| t > self.now),
                "client timer left armed in the past: {:?} <= now {:?}",
                after.map(|t| t - self.t0),
                self.now - self.t0
            );
            self.service_client();
        }
        if self.server_timeout().is_some_and(|t| t <= self.now) {
            self.server.handle_timeout(self.now);
            let after = self.server.poll_timeout();
            assert!(
                after.is_none_or(|t| t > self.now),
                "server timer left armed in the past: {:?} <= now {:?}",
                after.map(|t| t - self.t0),
                self.now - self.t0
            );
            self.service_server();
        }
        self.check_closed();
        self.check_invariants();
    }

    /// The transport fails: undelivered bytes are lost, both sides get
    /// `handle_closed`, the server application takes the session.
    pub fn drop_connection(&mut self) {
        if self.linked {
            self.sever();
        }
        self.check_invariants();
    }

    /// A new transport: a new `ServerConnection`, then `client.connect(now)`.
    pub fn reconnect(&mut self) -> Result<(), Error> {
        if self.linked {
            self.sever();
        }
        self.server = ServerConnection::new(self.server_config.clone(), self.now);
        self.server_accepted = false;
        self.c2s.clear();
        self.s2c.clear();
        self.wire_out.clear();
        self.conn += 1;
        self.linked = true;
        let r = self.client.connect(self.now);
        self.service_client();
        self.check_invariants();
        r
    }

    /// The client application restarts from its persisted session
    /// (`session_state` then `Client::with_session`), with `clean_start`.
    /// Call when no transport is up.
    pub fn restart_client(&mut self, clean_start: bool) {
        assert!(!self.linked, "restart_client with a transport up");
        self.connect.clean_start = clean_start;
        let config = ClientConfig::new(self.connect.clone()).with_ack_mode(self.ack_mode);
        let session = self.client.session_state();
        self.client = Client::with_session(config, session);
        self.check_invariants();
    }

    fn deliver(&mut self, dir: Dir, all: bool) -> bool {
        let reads = match dir {
            Dir::ToServer => self.c2s.take(self.steps, all),
            Dir::ToClient => self.s2c.take(self.steps, all),
        };
        let moved = !reads.is_empty();
        for chunk in reads {
            let arrived = match dir {
                Dir::ToServer => {
                    self.server.handle_read(self.now, &chunk);
                    self.c2s.arrived(chunk.len())
                }
                Dir::ToClient => {
                    self.client.handle_read(self.now, &chunk);
                    self.s2c.arrived(chunk.len())
                }
            };
            for p in arrived {
                self.on_arrival(dir, &p);
            }
            match dir {
                Dir::ToServer => self.service_server(),
                Dir::ToClient => self.service_client(),
            }
        }
        moved
    }

    /// A packet reached its reader: acknowledgements end the sender's
    /// in-flight count (MQTT-3.3.4-7 / MQTT-3.3.4-9, MQTT-4.9.0-2).
    fn on_arrival(&mut self, dir: Dir, p: &Packet) {
        let sender = match dir {
            Dir::ToServer => Dir::ToClient,
            Dir::ToClient => Dir::ToServer,
        };
        let id = match p {
            Packet::PubAck(a) => a.packet_id,
            Packet::PubRec(r) if r.reason_code.is_error() => r.packet_id,
            Packet::PubComp(c) => c.packet_id,
            _ => return,
        };
        if let Some(set) = self.wire_out.get_mut(&sender) {
            set.remove(&id.get());
        }
    }

    fn write(&mut self, dir: Dir, bytes: Bytes) {
        if !self.linked {
            return;
        }
        let version = self.version();
        let packets = match dir {
            Dir::ToServer => self.c2s.write(self.steps, bytes, version),
            Dir::ToClient => self.s2c.write(self.steps, bytes, version),
        };
        for packet in packets {
            if let Packet::Publish(p) = &packet {
                if let Some(id) = p.packet_id() {
                    let (smax, cmax) =
                        (self.server_receive_maximum(), self.client_receive_maximum());
                    let set = self.wire_out.entry(dir).or_default();
                    set.insert(id.get());
                    if version.is_v5() {
                        let (max, rule) = match dir {
                            Dir::ToServer => (smax, "MQTT-3.3.4-7"),
                            Dir::ToClient => (cmax, "MQTT-3.3.4-9"),
                        };
                        assert!(
                            set.len() <= usize::from(max),
                            "{rule}: {dir:?} has {} unacknowledged QoS 1/2 PUBLISH on the wire, Receive Maximum {max}",
                            set.len()
                        );
                    }
                }
            }
            self.wire.push(Wire {
                conn: self.conn,
                at: self.now,
                dir,
                packet,
            });
        }
    }

    /// When a side closed itself, the transport closes: its last bytes
    /// (already written) reach the peer unless held, then both sides get
    /// `handle_closed`.
    fn check_closed(&mut self) {
        if !self.linked {
            return;
        }
        let client_closed = self.client.is_closed();
        let server_closed = self.server.is_closed();
        if !client_closed && !server_closed {
            return;
        }
        if client_closed && !server_closed && !self.c2s.hold {
            self.deliver(Dir::ToServer, true);
        }
        if server_closed && !self.client.is_closed() && !self.s2c.hold {
            self.deliver(Dir::ToClient, true);
        }
        self.sever();
    }

    fn sever(&mut self) {
        self.linked = false;
        self.c2s.clear();
        self.s2c.clear();
        self.wire_out.clear();
        self.client.handle_closed(self.now);
        self.server.handle_closed(self.now);
        self.service_client();
        self.service_server();
        if self.server_accepted {
            self.server_accepted = false;
            let session = self
                .server
                .take_session()
                .expect("a closed connection gives its session");
            let ids: BTreeSet<u16> = session
                .outbound()
                .iter()
                .filter_map(|m| m.packet_id().map(|id| id.get()))
                .collect();
            let tracked: BTreeSet<u16> = self.server_app.outbox.in_flight.keys().copied().collect();
            assert_eq!(
                ids, tracked,
                "server session's outbound table differs from the messages the server app has in flight"
            );
            self.server_app.session = Some(session);
        }
    }

    // ---- applications ----

    fn service_client(&mut self) {
        loop {
            let mut any = false;
            while let Some(b) = self.client.poll_transmit() {
                self.write(Dir::ToServer, b);
                any = true;
            }
            while let Some(e) = self.client.poll_event() {
                self.on_client_event(e);
                any = true;
            }
            if !any {
                return;
            }
        }
    }

    fn service_server(&mut self) {
        loop {
            let mut any = false;
            while let Some(b) = self.server.poll_transmit() {
                self.write(Dir::ToClient, b);
                any = true;
            }
            while let Some(e) = self.server.poll_event() {
                self.on_server_event(e);
                any = true;
            }
            if !any {
                return;
            }
        }
    }

    fn on_client_event(&mut self, e: ClientEvent) {
        let app = &mut self.client_app;
        app.events.push(e.clone());
        match e {
            ClientEvent::Connected {
                session_present, ..
            } => app.connected.push(session_present),
            ClientEvent::Publish(p) => app.received.push(p),
            ClientEvent::PubAck(a) => app.outbox.complete(a.packet_id),
            ClientEvent::PubRecFailed(r) => app.outbox.complete(r.packet_id),
            ClientEvent::PubComp(c) => app.outbox.complete(c.packet_id),
            ClientEvent::SessionLost {
                unacknowledged,
                unreleased,
            } => {
                for p in &unacknowledged {
                    let id = p.packet_id().expect("a lost message has a packet id");
                    assert!(!p.dup, "SessionLost gives messages with DUP 0");
                    app.outbox.lose(id, Some(p));
                }
                for id in unreleased {
                    app.outbox.lose(id, None);
                }
            }
            ClientEvent::Disconnected(r) => app.disconnects.push((self.now, r)),
            _ => {}
        }
    }

    fn on_server_event(&mut self, e: ServerEvent) {
        self.server_app.events.push(e.clone());
        match e {
            ServerEvent::Connect(c) => {
                let app = &mut self.server_app;
                let resume = !c.clean_start && !app.lose_session && app.session.is_some();
                app.lose_session = false;
                let accept = match app.session.take() {
                    Some(s) if resume => Accept::resume(s),
                    _ => {
                        // A new session: whatever the old one held is gone,
                        // and the application knows it.
                        app.outbox.lose_all();
                        Accept::new()
                    }
                };
                self.server
                    .accept(self.now, accept)
                    .expect("the server application accepts");
                self.server_accepted = true;
            }
            ServerEvent::Subscribe(s) => {
                let codes = s
                    .subscriptions
                    .iter()
                    .map(|s| SubAckReasonCode::granted(s.options.qos))
                    .collect();
                self.server
                    .suback(self.now, s.packet_id, codes, AckProperties::default())
                    .expect("suback");
            }
            ServerEvent::Unsubscribe(u) => {
                let codes = vec![UnsubAckReasonCode::Success; u.filters.len()];
                self.server
                    .unsuback(self.now, u.packet_id, codes, AckProperties::default())
                    .expect("unsuback");
            }
            ServerEvent::Publish(p) => self.server_app.received.push(p),
            ServerEvent::PubAck(a) => self.server_app.outbox.complete(a.packet_id),
            ServerEvent::PubRecFailed(r) => self.server_app.outbox.complete(r.packet_id),
            ServerEvent::PubComp(c) => self.server_app.outbox.complete(c.packet_id),
            ServerEvent::Closed(r) => self.server_app.closes.push((self.now, r)),
            _ => {}
        }
    }

    // ---- commands ----

    /// `client.publish(now, msg)`, tracked in `client_app.outbox`.
    /// `Error::WindowFull` is checked to mean the window really is full.
    pub fn client_publish(&mut self, msg: Publish) -> Result<Option<PacketId>, Error> {
        let r = self.client.publish(self.now, msg.clone());
        match &r {
            Ok(Some(id)) => {
                let mut m = msg;
                m.delivery = mqtt_wire::Delivery::new(m.qos(), *id);
                self.client_app.outbox.accepted(*id, m);
            }
            Err(Error::WindowFull) => {
                // MQTT-4.9.0-1 / MQTT-4.9.0-2: the quota is only used up by
                // messages in flight.
                let max = self.client.server_limits().receive_maximum;
                assert!(
                    self.client.in_flight() >= usize::from(max),
                    "client refused with WindowFull with {} in flight, Receive Maximum {max}",
                    self.client.in_flight()
                );
            }
            _ => {}
        }
        self.service_client();
        self.check_invariants();
        r
    }

    /// `server.publish(now, msg)`, tracked in `server_app.outbox`.
    pub fn server_publish(&mut self, msg: Publish) -> Result<Option<PacketId>, Error> {
        let r = self.server.publish(self.now, msg.clone());
        match &r {
            Ok(Some(id)) => {
                let mut m = msg;
                m.delivery = mqtt_wire::Delivery::new(m.qos(), *id);
                self.server_app.outbox.accepted(*id, m);
            }
            Err(Error::WindowFull) => {
                let max = if self.version().is_v5() {
                    self.client_receive_maximum()
                } else {
                    u16::MAX
                };
                assert!(
                    self.server.in_flight() >= usize::from(max),
                    "server refused with WindowFull with {} in flight, Receive Maximum {max}",
                    self.server.in_flight()
                );
            }
            _ => {}
        }
        self.service_server();
        self.check_invariants();
        r
    }

    // ---- invariants ----

    /// Checks what must hold after every step (panics otherwise).
    pub fn check_invariants(&self) {
        if self.version().is_v5() {
            let smax = usize::from(self.server_receive_maximum());
            assert!(
                self.client.in_flight() <= smax,
                "MQTT-3.3.4-7: client has {} in flight, server's Receive Maximum {smax}",
                self.client.in_flight()
            );
            let cmax = usize::from(self.client_receive_maximum());
            assert!(
                self.server.in_flight() <= cmax,
                "MQTT-3.3.4-9: server has {} in flight, client's Receive Maximum {cmax}",
                self.server.in_flight()
            );
        }
        // Nothing vanishes: the client's outbound table holds exactly the
        // messages its application has not seen acknowledged or lost.
        let ids: BTreeSet<u16> = self
            .client
            .session_state()
            .outbound()
            .iter()
            .filter_map(|m| m.packet_id().map(|id| id.get()))
            .collect();
        let tracked: BTreeSet<u16> = self.client_app.outbox.in_flight.keys().copied().collect();
        assert_eq!(
            ids, tracked,
            "client session's outbound table differs from the messages its application has in flight"
        );
    }
}

/// Wire packets of one direction (and optionally one connection).
pub fn packets(wire: &[Wire], dir: Dir) -> impl Iterator<Item = &Wire> + '_ {
    wire.iter().filter(move |w| w.dir == dir)
}

/// A PUBLISH with `qos` (packet id 1 placeholder; `publish` replaces it).
pub fn message(topic: &str, qos: QoS, payload: Vec<u8>) -> Publish {
    let topic = mqtt_wire::TopicName::try_from(topic.to_owned()).expect("valid topic");
    let id = PacketId::new(1).expect("non-zero");
    Publish::new(topic, Bytes::from(payload)).with_delivery(mqtt_wire::Delivery::new(qos, id))
}
