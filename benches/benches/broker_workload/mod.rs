//! The broker workload shared by the `broker`, `broker_instr` and
//! `broker_memory` benches: one `mqtt_broker::Broker` driven in memory,
//! with a real `mqtt_session::client::Client` on the other side of every
//! connection. A client's `poll_transmit` bytes go to
//! `Broker::handle_read`; the broker's `poll_transmit` chunks go to the
//! client of that connection; after every pass both sides' events are
//! drained (and the broker's `poll_timeout` asked), until nothing moves.
//! All clients are connected (and subscribed) once, in setup.
//!
//! Every call into the broker goes through one of the `broker_call_*`
//! functions below (`#[inline(never)]`), so callgrind can count the
//! broker's instructions alone with `--toggle-collect='*broker_call_*'`:
//! `handle_read`, `poll_transmit`, `poll_event`, `poll_timeout`, and the
//! drop of the `Bytes` chunk `poll_transmit` handed out.
//!
//! Workloads (all 5.0 clients, 64-byte payload):
//!
//! - **fan-out**: 1 publisher, 1,000 subscribers on the same filter, either
//!   the exact topic or a filter with two `+` levels; one round = one
//!   PUBLISH, delivered 1,000 times (and, at QoS 1/2, every subscriber's
//!   acknowledgements back to the broker and the publisher's to it).
//! - **fan-in**: 1,000 publishers, 1 subscriber; one round = one PUBLISH
//!   from each publisher, 1,000 deliveries.
//! - **routing**: 10,000 subscriber sessions with 100 subscriptions each
//!   (1,000,000 in the tree: 70% exact, 20% with one `+`, 10% ending in
//!   `#`) and one publisher whose topics match about two of them each.
#![allow(dead_code)]

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use mqtt_broker::{Broker, BrokerConfig, ConnectionId, Event};
use mqtt_session::client::{Client, ClientConfig, Event as CEvent};
use mqtt_wire::{
    Connect, Delivery, MqttString, PacketId, ProtocolVersion, Publish, QoS, SubscribeProperties,
    Subscription, SubscriptionOptions, TopicFilter, TopicName,
};

/// The 64-byte payload of every message.
pub const PAYLOAD: &[u8; 64] =
    b"{\"t\":21.50,\"rh\":48.2,\"co2\":612,\"ts\":1718000000,\"id\":\"s-00042\"}  ";

/// The fan-out / fan-in topic.
pub const TOPIC: &str = "bench/site7/sensor0042/temperature";
/// The wildcard variant's filter (matches [`TOPIC`]).
pub const PLUS_FILTER: &str = "bench/+/+/temperature";

/// Subscribers (fan-out) and publishers (fan-in).
pub const FAN: usize = 1_000;

pub fn qos_of(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// A message to `topic` at `qos` with the 64-byte payload.
pub fn message(topic: &TopicName, payload: &Bytes, qos: QoS) -> Publish {
    let pid = PacketId::new(1).expect("1 is a packet id");
    Publish::new(topic.clone(), payload.clone()).with_delivery(Delivery::new(qos, pid))
}

// ------------------------------------------------------ broker calls --

/// `Broker::handle_read`, kept out of line for callgrind's toggle.
#[inline(never)]
pub fn broker_call_read(b: &mut Broker, id: ConnectionId, now: Instant, bytes: &[u8]) {
    b.handle_read(id, now, bytes);
}

/// `Broker::poll_transmit`.
#[inline(never)]
pub fn broker_call_transmit(b: &mut Broker) -> Option<(ConnectionId, Bytes)> {
    b.poll_transmit()
}

/// Drops a chunk `poll_transmit` handed out (its buffer is the broker's).
#[inline(never)]
pub fn broker_call_release(bytes: Bytes) {
    drop(bytes);
}

/// `Broker::poll_event`.
#[inline(never)]
pub fn broker_call_event(b: &mut Broker) -> Option<Event> {
    b.poll_event()
}

/// `Broker::poll_timeout`.
#[inline(never)]
pub fn broker_call_timeout(b: &Broker) -> Option<Instant> {
    b.poll_timeout()
}

// ------------------------------------------------------------- net --

/// A broker and its clients, in memory.
pub struct Net {
    pub broker: Broker,
    pub now: Instant,
    pub clients: Vec<Client>,
    pub ids: Vec<ConnectionId>,
    /// Connection slot index -> (full id, client index).
    by_slot: Vec<Option<(ConnectionId, usize)>>,
    /// Clients that got input or were given work since the last pass.
    pending: Vec<usize>,
    spare: Vec<usize>,
    is_pending: Vec<bool>,
    /// `Event::Publish` seen per client.
    pub received: Vec<u64>,
    /// `Event::Publish` seen in total.
    pub delivered: u64,
    /// `Event::PubAck` / `Event::PubComp` seen in total (publishers).
    pub acked: u64,
    /// `Event::Connected` seen by the broker.
    pub connected: u64,
    /// SUBACKs seen by clients (all codes checked granted).
    pub subacks: u64,
}

/// A 5.0 CONNECT for client `i` (clean start, keep alive 60 s).
pub fn connect_packet(i: usize) -> Connect {
    Connect::new(
        ProtocolVersion::V5,
        MqttString::try_from(format!("client-{i:06}")).expect("client id"),
    )
}

/// A persistent 5.0 CONNECT for client `i` (Clean Start 0, Session Expiry
/// one hour).
pub fn persistent_connect_packet(i: usize) -> Connect {
    let mut c = connect_packet(i);
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(3600);
    c
}

fn slot(id: ConnectionId) -> usize {
    (id.as_u64() & 0xffff_ffff) as usize
}

impl Net {
    pub fn new(config: BrokerConfig) -> Self {
        Net {
            broker: Broker::new(config),
            now: Instant::now(),
            clients: Vec::new(),
            ids: Vec::new(),
            by_slot: Vec::new(),
            pending: Vec::new(),
            spare: Vec::new(),
            is_pending: Vec::new(),
            received: Vec::new(),
            delivered: 0,
            acked: 0,
            connected: 0,
            subacks: 0,
        }
    }

    /// Adds and connects a client (not pumped: call [`Net::pump`]).
    /// Publishers use no topic aliases, so each PUBLISH carries its topic.
    pub fn add(&mut self, connect: Connect) -> usize {
        let mut config = ClientConfig::new(connect);
        config.topic_aliases = false;
        let mut c = Client::new(config);
        c.connect(self.now).expect("client connect");
        let id = self.broker.accept(self.now).expect("accept");
        let i = self.clients.len();
        self.clients.push(c);
        self.ids.push(id);
        self.received.push(0);
        self.is_pending.push(false);
        let s = slot(id);
        if self.by_slot.len() <= s {
            self.by_slot.resize(s + 1, None);
        }
        self.by_slot[s] = Some((id, i));
        self.mark(i);
        i
    }

    #[inline]
    fn mark(&mut self, i: usize) {
        if !self.is_pending[i] {
            self.is_pending[i] = true;
            self.pending.push(i);
        }
    }

    /// Client `i` subscribes to `filters` at `qos` in one SUBSCRIBE (not
    /// pumped).
    pub fn subscribe(&mut self, i: usize, filters: &[&str], qos: QoS) {
        let subs = filters
            .iter()
            .map(|f| Subscription {
                filter: TopicFilter::try_from(*f).expect("filter"),
                options: SubscriptionOptions::new(qos),
            })
            .collect();
        self.clients[i]
            .subscribe(self.now, subs, SubscribeProperties::default())
            .expect("subscribe");
        self.mark(i);
    }

    /// Client `i` publishes `msg` (not pumped).
    #[inline]
    pub fn publish(&mut self, i: usize, msg: Publish) {
        self.clients[i].publish(self.now, msg).expect("publish");
        self.mark(i);
    }

    /// Moves bytes both ways until nothing moves, draining both sides'
    /// events after every pass.
    pub fn pump(&mut self) {
        let now = self.now;
        let mut work = std::mem::take(&mut self.spare);
        loop {
            let mut moved = false;
            // Clients to broker: those given work or input since last pass.
            std::mem::swap(&mut work, &mut self.pending);
            for &i in &work {
                self.is_pending[i] = false;
                let c = &mut self.clients[i];
                while let Some(b) = c.poll_transmit() {
                    broker_call_read(&mut self.broker, self.ids[i], now, &b);
                    moved = true;
                }
            }
            work.clear();
            // Broker to clients.
            while let Some((id, b)) = broker_call_transmit(&mut self.broker) {
                moved = true;
                let Some(Some((full, i))) = self.by_slot.get(slot(id)).copied() else {
                    panic!("bytes for an unknown connection {id}");
                };
                assert_eq!(full, id, "stale connection id");
                self.clients[i].handle_read(now, &b);
                broker_call_release(b);
                self.mark(i);
            }
            while let Some(ev) = broker_call_event(&mut self.broker) {
                match ev {
                    Event::Connected { .. } => self.connected += 1,
                    other => panic!("unexpected broker event {other:?}"),
                }
            }
            black_box(broker_call_timeout(&self.broker));
            // Events of the clients that got input (their acknowledgements
            // go out on the next pass: they stay pending).
            for k in 0..self.pending.len() {
                let i = self.pending[k];
                let c = &mut self.clients[i];
                while let Some(e) = c.poll_event() {
                    match e {
                        CEvent::Publish(p) => {
                            black_box(&p);
                            self.received[i] += 1;
                            self.delivered += 1;
                        }
                        CEvent::PubAck(_) | CEvent::PubComp(_) => self.acked += 1,
                        CEvent::Connected { .. } => {}
                        CEvent::SubAck(s) => {
                            assert!(
                                s.reason_codes.iter().all(|c| !c.is_error()),
                                "subscription refused: {s:?}"
                            );
                            self.subacks += 1;
                        }
                        other => panic!("unexpected client event {other:?}"),
                    }
                }
                black_box(c.poll_timeout());
            }
            if !moved {
                break;
            }
        }
        // Quiet: nothing was handed to any client in the last pass.
        debug_assert!(self.pending.is_empty());
        self.spare = work;
    }
}

// --------------------------------------------------------- fan-out --

/// 1 publisher (client 0), [`FAN`] subscribers (clients 1..=FAN) on one
/// filter, all at `qos`.
pub struct FanOut {
    pub net: Net,
    pub qos: QoS,
    msg: Publish,
}

impl FanOut {
    pub fn new(qos: u8, wildcard: bool) -> Self {
        let qos = qos_of(qos);
        let mut net = Net::new(BrokerConfig::default());
        net.add(connect_packet(0));
        let filter = if wildcard { PLUS_FILTER } else { TOPIC };
        for i in 1..=FAN {
            net.add(connect_packet(i));
        }
        net.pump();
        assert_eq!(net.connected, FAN as u64 + 1);
        for i in 1..=FAN {
            net.subscribe(i, &[filter], qos);
        }
        net.pump();
        assert_eq!(net.subacks, FAN as u64);
        let topic = TopicName::try_from(TOPIC).expect("topic");
        let msg = message(&topic, &Bytes::from_static(PAYLOAD), qos);
        FanOut { net, qos, msg }
    }

    /// `rounds` messages from the publisher, each pumped to the end.
    #[inline]
    pub fn run(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.net.publish(0, self.msg.clone());
            self.net.pump();
        }
    }

    /// Deliveries per round.
    pub fn per_round(&self) -> u64 {
        FAN as u64
    }

    /// Checks that `rounds` more rounds deliver once to every subscriber
    /// and (QoS 1/2) are acknowledged once to the publisher.
    pub fn check(&mut self, rounds: usize) {
        let before = self.net.received.clone();
        let (d0, a0) = (self.net.delivered, self.net.acked);
        let out0 = self.net.broker.stats().messages_out;
        self.run(rounds);
        for (i, (now, was)) in self.net.received.iter().zip(&before).enumerate().skip(1) {
            assert_eq!(now - was, rounds as u64, "subscriber {i}");
        }
        assert_eq!(self.net.received[0], before[0], "publisher got nothing");
        assert_eq!(self.net.delivered - d0, (rounds * FAN) as u64);
        assert_eq!(
            self.net.broker.stats().messages_out - out0,
            (rounds * FAN) as u64
        );
        let want = if self.qos == QoS::AtMostOnce {
            0
        } else {
            rounds
        };
        assert_eq!(self.net.acked - a0, want as u64, "publisher acks");
    }

    /// The publisher's PUBLISH bytes (QoS 0 only: identical every time).
    pub fn publish_bytes(&mut self) -> Vec<u8> {
        assert_eq!(self.qos, QoS::AtMostOnce);
        self.net.clients[0]
            .publish(self.net.now, self.msg.clone())
            .expect("publish");
        let mut v = Vec::new();
        while let Some(b) = self.net.clients[0].poll_transmit() {
            v.extend_from_slice(&b);
        }
        v
    }

    /// Broker only (QoS 0): `rounds` times, the publisher's recorded
    /// PUBLISH bytes into the broker and every output chunk taken and
    /// dropped; the subscribers' clients are not fed. Returns chunks.
    #[inline]
    pub fn run_broker_only(&mut self, bytes: &[u8], rounds: usize) -> usize {
        let net = &mut self.net;
        let id = net.ids[0];
        let mut chunks = 0;
        for _ in 0..rounds {
            broker_call_read(&mut net.broker, id, net.now, bytes);
            while let Some((id, b)) = broker_call_transmit(&mut net.broker) {
                black_box(id);
                broker_call_release(b);
                chunks += 1;
            }
            if let Some(ev) = broker_call_event(&mut net.broker) {
                panic!("unexpected broker event {ev:?}");
            }
            black_box(broker_call_timeout(&net.broker));
        }
        chunks
    }
}

// ---------------------------------------------------------- fan-in --

/// [`FAN`] publishers (clients 1..=FAN), 1 subscriber (client 0).
pub struct FanIn {
    pub net: Net,
    pub qos: QoS,
    msg: Publish,
}

impl FanIn {
    pub fn new(qos: u8) -> Self {
        let qos = qos_of(qos);
        let mut net = Net::new(BrokerConfig::default());
        for i in 0..=FAN {
            net.add(connect_packet(i));
        }
        net.pump();
        assert_eq!(net.connected, FAN as u64 + 1);
        net.subscribe(0, &[TOPIC], qos);
        net.pump();
        assert_eq!(net.subacks, 1);
        let topic = TopicName::try_from(TOPIC).expect("topic");
        let msg = message(&topic, &Bytes::from_static(PAYLOAD), qos);
        FanIn { net, qos, msg }
    }

    /// `rounds` rounds: every publisher publishes once, then all is pumped.
    #[inline]
    pub fn run(&mut self, rounds: usize) {
        for _ in 0..rounds {
            for i in 1..=FAN {
                self.net.publish(i, self.msg.clone());
            }
            self.net.pump();
        }
    }

    pub fn per_round(&self) -> u64 {
        FAN as u64
    }

    pub fn check(&mut self, rounds: usize) {
        let (r0, a0) = (self.net.received[0], self.net.acked);
        self.run(rounds);
        assert_eq!(self.net.received[0] - r0, (rounds * FAN) as u64);
        assert_eq!(self.net.delivered, self.net.received[0]);
        let want = if self.qos == QoS::AtMostOnce {
            0
        } else {
            rounds * FAN
        };
        assert_eq!(self.net.acked - a0, want as u64, "publisher acks");
    }
}

// --------------------------------------------------------- routing --

pub use mqtt_benches::{Rng, METRICS};

/// Sites in the routing workload's topic space.
pub const SITES: u64 = 100;

/// One random name: `site{0..100}/building{0..20}/floor{0..30}/room{0..100}/{metric}`
/// (48 million names).
fn levels(r: &mut Rng) -> [String; 5] {
    [
        format!("site{}", r.below(SITES)),
        format!("building{}", r.below(20)),
        format!("floor{}", r.below(30)),
        format!("room{}", r.below(100)),
        METRICS[r.below(8) as usize].to_string(),
    ]
}

/// `n` filters: 70% exact names, 20% with one `+` (building, floor or
/// room level), 10% ending in `#` after the floor or the room level.
pub fn routing_filters(n: usize, seed: u64) -> Vec<String> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|_| {
            let mut l = levels(&mut r);
            match r.below(10) {
                0..=6 => l.join("/"),
                7 | 8 => {
                    let i = 1 + r.below(3) as usize;
                    l[i] = "+".into();
                    l.join("/")
                }
                _ => {
                    let keep = if r.below(2) == 0 { 3 } else { 4 };
                    let mut s = l[..keep].join("/");
                    s.push_str("/#");
                    s
                }
            }
        })
        .collect()
}

/// Sessions and subscriptions per session of the routing workload.
pub const ROUTING_SESSIONS: usize = 10_000;
pub const ROUTING_SUBS: usize = 100;
/// Messages per round (distinct topics, cycled).
pub const ROUTING_MSGS: usize = 100;

/// 1 publisher (client 0), `sessions` subscribers with `per` filters each
/// (QoS 0), and [`ROUTING_MSGS`] topics, each an exact filter of the set.
pub struct Routing {
    pub net: Net,
    msgs: Vec<Publish>,
    /// Deliveries of one round, counted in setup.
    pub per_round: u64,
    /// Subscriptions in the tree.
    pub subscriptions: usize,
}

impl Routing {
    pub fn new(sessions: usize, per: usize) -> Self {
        let mut net = Net::new(BrokerConfig::default());
        let filters = routing_filters(sessions * per, 42);
        net.add(connect_packet(0));
        for s in 0..sessions {
            let i = net.add(connect_packet(s + 1));
            let fs: Vec<&str> = filters[s * per..(s + 1) * per]
                .iter()
                .map(String::as_str)
                .collect();
            // Subscribing waits for the CONNACK in the client: pump first.
            net.pump();
            net.subscribe(i, &fs, QoS::AtMostOnce);
            if s % 256 == 255 {
                net.pump();
            }
        }
        net.pump();
        assert_eq!(net.connected, sessions as u64 + 1);
        assert_eq!(net.subacks, sessions as u64);
        // A session's filters are random: a few repeat within a session
        // (3 in the 1M set) and replace each other.
        let subscriptions = net.broker.stats().subscriptions;
        assert!(
            subscriptions * 1000 >= sessions * per * 999,
            "{subscriptions}"
        );
        let mut r = Rng::new(7);
        let payload = Bytes::from_static(PAYLOAD);
        let msgs = (0..ROUTING_MSGS)
            .map(|_| loop {
                let f = &filters[r.below(filters.len() as u64) as usize];
                if !f.contains(['+', '#']) {
                    let t = TopicName::try_from(f.as_str()).expect("topic");
                    break message(&t, &payload, QoS::AtMostOnce);
                }
            })
            .collect();
        let mut me = Routing {
            net,
            msgs,
            per_round: 0,
            subscriptions,
        };
        let d0 = me.net.delivered;
        me.run(1);
        me.per_round = me.net.delivered - d0;
        me
    }

    /// `rounds` rounds of [`ROUTING_MSGS`] messages, each pumped.
    #[inline]
    pub fn run(&mut self, rounds: usize) {
        for _ in 0..rounds {
            for k in 0..self.msgs.len() {
                let m = self.msgs[k].clone();
                self.net.publish(0, m);
                self.net.pump();
            }
        }
    }

    pub fn check(&mut self, rounds: usize) {
        let d0 = self.net.delivered;
        let out0 = self.net.broker.stats().messages_out;
        self.run(rounds);
        assert_eq!(self.net.delivered - d0, self.per_round * rounds as u64);
        assert_eq!(
            self.net.broker.stats().messages_out - out0,
            self.per_round * rounds as u64
        );
    }
}

/// Resident set size of this process, from /proc/self/status (kB).
pub fn rss_kb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
