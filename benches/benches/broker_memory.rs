//! Broker state per idle session, counted with a counting global allocator
//! (bytes requested and not yet freed; allocator overhead not included).
//!
//! The clients' bytes are recorded first, with a scratch broker (each
//! client's CONNECT, its SUBSCRIBE of one filter
//! `bench/site7/sensor{i}/temperature` at QoS 1, and its DISCONNECT); the
//! scratch broker and the clients are dropped. Then a fresh broker gets
//! those bytes for N = 1,000 connections with no client in the process, so
//! everything counted is the broker's. The phases run for all N
//! connections one after the other, and the live-byte difference of each
//! phase, divided by N, is printed:
//!
//! 1. `accept` (a `ServerConnection` in the connection slab, its timer);
//! 2. CONNECT in, CONNACK out (the session, the client-id index);
//! 3. SUBSCRIBE in, SUBACK out (the subscription in the session and in the
//!    tree): the connected idle session;
//! 4. persistent sessions only: DISCONNECT in, transport closed: the idle
//!    persistent session (disconnected, kept for its expiry).
//!
//! Every output chunk is taken from `poll_transmit` and dropped, every
//! event drained. Slabs and tables grow by doubling, so their slack
//! (1,024 slots for 1,000 entries and the like) is included.
//!
//! Run: `cargo bench -p mqtt-benches --bench broker_memory`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

mod broker_workload;

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::mem::size_of;
use std::time::Instant;

use broker_workload::{connect_packet, persistent_connect_packet};
use bytes::Bytes;
use mqtt_broker::{Broker, BrokerConfig, ConnectionId, Event};
use mqtt_session::client::{Client, ClientConfig};
use mqtt_session::server::{Accept, Event as SEvent, ServerConfig, ServerConnection};
use mqtt_session::AckMode;
use mqtt_session::SessionState;
use mqtt_topic::{SubscriptionFilter, SubscriptionTree};
use mqtt_wire::{
    AckProperties, Connect, DisconnectProperties, DisconnectReasonCode, LastWill, MqttString,
    Publish, QoS, SubAckReasonCode, SubscribeProperties, Subscription, SubscriptionId,
    SubscriptionOptions, TopicFilter,
};

#[global_allocator]
static A: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn live() -> isize {
    let s = A.stats();
    s.bytes_allocated as isize - s.bytes_deallocated as isize
}

const N: usize = 1_000;

/// The bytes one client sends: CONNECT, SUBSCRIBE, DISCONNECT.
struct Recorded {
    connect: Vec<u8>,
    subscribe: Vec<u8>,
    disconnect: Vec<u8>,
}

fn drain_client(c: &mut Client) -> Vec<u8> {
    let mut v = Vec::new();
    while let Some(b) = c.poll_transmit() {
        v.extend_from_slice(&b);
    }
    v
}

fn filter(i: usize) -> String {
    format!("bench/site7/sensor{i:04}/temperature")
}

/// Records N clients' bytes against a scratch broker (dropped on return).
fn record(connect: fn(usize) -> Connect) -> Vec<Recorded> {
    let now = Instant::now();
    let mut b = Broker::new(BrokerConfig::default());
    let mut out = Vec::with_capacity(N);
    for i in 0..N {
        let mut c = Client::new(ClientConfig::new(connect(i)));
        let id = b.accept(now).unwrap();
        let exchange = |c: &mut Client, b: &mut Broker| {
            let v = drain_client(c);
            b.handle_read(id, now, &v);
            while let Some((to, x)) = b.poll_transmit() {
                assert_eq!(to, id);
                c.handle_read(now, &x);
            }
            while let Some(ev) = b.poll_event() {
                assert!(matches!(ev, Event::Connected { .. }), "{ev:?}");
            }
            while c.poll_event().is_some() {}
            v
        };
        c.connect(now).unwrap();
        let connect = exchange(&mut c, &mut b);
        assert!(c.is_connected());
        let sub = Subscription {
            filter: TopicFilter::try_from(filter(i)).unwrap(),
            options: SubscriptionOptions::new(QoS::AtLeastOnce),
        };
        c.subscribe(now, vec![sub], SubscribeProperties::default())
            .unwrap();
        let subscribe = exchange(&mut c, &mut b);
        c.disconnect(
            now,
            DisconnectReasonCode::NormalDisconnection,
            DisconnectProperties::default(),
        )
        .unwrap();
        let disconnect = drain_client(&mut c);
        out.push(Recorded {
            connect,
            subscribe,
            disconnect,
        });
    }
    out
}

/// Feeds `bytes` to connection `id` and drains every output.
fn feed(b: &mut Broker, id: ConnectionId, now: Instant, bytes: &[u8]) -> usize {
    b.handle_read(id, now, bytes);
    let mut chunks = 0;
    while let Some((to, x)) = b.poll_transmit() {
        assert_eq!(to, id);
        black_box(&x);
        chunks += 1;
    }
    while let Some(ev) = b.poll_event() {
        black_box(&ev);
    }
    black_box(b.poll_timeout());
    chunks
}

fn per(delta: isize) -> f64 {
    delta as f64 / N as f64
}

/// Runs the phases for `label`; returns live bytes per session at the end
/// of the SUBSCRIBE phase and, if `close`, after closing.
fn measure(label: &str, persistent: bool) {
    measure_with(label, persistent, true);
}

/// The same phases; without the SUBSCRIBE phase when `!subscribe`.
fn measure_with(label: &str, persistent: bool, subscribe: bool) {
    let rec = record(if persistent {
        persistent_connect_packet
    } else {
        connect_packet
    });
    let now = Instant::now();
    let mut b = Broker::new(BrokerConfig::default());
    let mut ids = Vec::with_capacity(N);
    let l0 = live();

    for _ in 0..N {
        ids.push(b.accept(now).unwrap());
    }
    let l1 = live();
    for (id, r) in ids.iter().zip(&rec) {
        assert_eq!(feed(&mut b, *id, now, &r.connect), 1, "CONNACK");
    }
    let l2 = live();
    if subscribe {
        for (id, r) in ids.iter().zip(&rec) {
            assert_eq!(feed(&mut b, *id, now, &r.subscribe), 1, "SUBACK");
        }
    }
    let l3 = live();
    let s = b.stats();
    let subs = if subscribe { N } else { 0 };
    assert_eq!((s.connections, s.sessions, s.subscriptions), (N, N, subs));

    println!(
        "{label}: N = {N} sessions, {}",
        if subscribe {
            "one subscription each"
        } else {
            "no subscription"
        }
    );
    println!(
        "  accept (connection slab, timer)           {:>7.1} B",
        per(l1 - l0)
    );
    println!(
        "  CONNECT/CONNACK (session, client-id map)  {:>7.1} B",
        per(l2 - l1)
    );
    println!(
        "  SUBSCRIBE/SUBACK (subscription, tree)     {:>7.1} B",
        per(l3 - l2)
    );
    println!(
        "  connected idle session, heap total        {:>7.1} B",
        per(l3 - l0)
    );

    // Quiet from here: a PINGREQ 30 s later (keep alive 60 s) moves each
    // connection's deadline, so the timer armed for the old one (90 s)
    // fires as a keep-alive check that closes nothing, and a quiet
    // connection gives back its buffers there.
    let ping = now + std::time::Duration::from_secs(30);
    for id in &ids {
        assert_eq!(feed(&mut b, *id, ping, &[0xc0, 0x00]), 1, "PINGRESP");
    }
    let check = now + std::time::Duration::from_secs(91);
    b.handle_timeout(check);
    while b.poll_transmit().is_some() {}
    while let Some(ev) = b.poll_event() {
        black_box(&ev);
    }
    assert_eq!(b.stats().connections, N, "nobody timed out");
    let l3b = live();
    println!(
        "  after a keep-alive check (PINGREQ, timer) {:>7.1} B",
        per(l3b - l3)
    );
    println!(
        "  connected idle session, after the check   {:>7.1} B",
        per(l3b - l0)
    );

    for (id, r) in ids.iter().zip(&rec) {
        b.handle_read(*id, now, &r.disconnect);
        while b.poll_transmit().is_some() {}
        b.handle_closed(*id, now);
        while b.poll_event().is_some() {}
    }
    let l4 = live();
    let s = b.stats();
    println!(
        "  after DISCONNECT + close: {} connections, {} sessions, {} subscriptions",
        s.connections, s.sessions, s.subscriptions
    );
    println!(
        "  disconnected, heap total                  {:>7.1} B{}",
        per(l4 - l0),
        if persistent {
            "  (idle persistent session)"
        } else {
            "  (leftover per ended session: slab slots, table capacity)"
        }
    );
    if !persistent && subscribe {
        // Growth check: the same N clients again (slots and table capacity
        // are reused, so nothing more is kept), once at the same instant
        // and once after the closed connections' timers fell due (they
        // stay in the timer heap until their deadline).
        cycle(&mut b, &rec, now);
        println!(
            "  the same {N} clients again, disconnected     {:>7.1} B  (at the same instant)",
            per(live() - l0)
        );
        let later = now + std::time::Duration::from_secs(100);
        b.handle_timeout(later);
        cycle(&mut b, &rec, later);
        println!(
            "  and again, after the timers fell due          {:>7.1} B",
            per(live() - l0)
        );
    }
    println!();
    black_box(&b);
}

/// Connects, subscribes and disconnects every recorded client once.
fn cycle(b: &mut Broker, rec: &[Recorded], now: Instant) {
    {
        let mut ids2 = Vec::with_capacity(N);
        for r in rec {
            let id = b.accept(now).unwrap();
            feed(b, id, now, &r.connect);
            feed(b, id, now, &r.subscribe);
            ids2.push(id);
        }
        for (id, r) in ids2.iter().zip(rec) {
            b.handle_read(*id, now, &r.disconnect);
            while b.poll_transmit().is_some() {}
            b.handle_closed(*id, now);
            while b.poll_event().is_some() {}
        }
    }
}

/// The shape of the broker's per-subscription value (`SubOpts`, private:
/// QoS, No Local, Retain As Published, Subscription Identifier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
struct Opts {
    qos: QoS,
    no_local: bool,
    retain_as_published: bool,
    id: Option<SubscriptionId>,
}

/// Replicas of the broker's per-session tables with the same types, built
/// alone, to attribute the bytes of the SUBSCRIBE and CONNECT phases.
fn replicas() {
    let filters: Vec<SubscriptionFilter> = (0..N)
        .map(|i| SubscriptionFilter::try_from(TopicFilter::try_from(filter(i)).unwrap()).unwrap())
        .collect();
    let opts = Opts {
        qos: QoS::AtLeastOnce,
        no_local: false,
        retain_as_published: false,
        id: None,
    };
    println!("replicas of the broker's tables, same types, N = {N} (bytes per entry):");
    println!(
        "  size_of Opts (= SubOpts's fields)            {:>5}",
        size_of::<Opts>()
    );

    let l0 = live();
    let mut tree: SubscriptionTree<(u32, u32), Opts> = SubscriptionTree::new();
    for (i, f) in filters.iter().enumerate() {
        tree.subscribe(f, (i as u32, 0), opts);
    }
    let l1 = live();
    println!(
        "  SubscriptionTree<(u32, u32), Opts> entry    {:>7.1}",
        per(l1 - l0)
    );
    black_box(&tree);

    let l0 = live();
    let maps: Vec<BTreeMap<SubscriptionFilter, Opts>> = filters
        .iter()
        .map(|f| {
            let mut m = BTreeMap::new();
            m.insert(f.clone(), opts);
            m
        })
        .collect();
    let l1 = live();
    println!(
        "  BTreeMap<SubscriptionFilter, Opts>, 1 entry {:>7.1}  (one B-tree leaf; filter text shared)",
        per(l1 - l0) - size_of::<BTreeMap<SubscriptionFilter, Opts>>() as f64 * (maps.capacity() as f64 / N as f64)
    );
    black_box(&maps);

    // The connection alone: a ServerConnection as the broker configures
    // it (manual acknowledgements), fed the recorded CONNECT and SUBSCRIBE.
    let rec = record(connect_packet);
    let now = Instant::now();
    let mut config = ServerConfig::default();
    config.ack_mode = AckMode::Manual;
    let mut conns: Vec<ServerConnection> = Vec::with_capacity(N);
    let mut kept = Vec::with_capacity(N);
    let l0 = live();
    for _ in 0..N {
        conns.push(ServerConnection::new(config.clone(), now));
    }
    let l1 = live();
    for (c, r) in conns.iter_mut().zip(&rec) {
        c.handle_read(now, &r.connect);
        match c.poll_event() {
            Some(SEvent::Connect(connect)) => kept.push(connect.client_id.clone()),
            other => panic!("{other:?}"),
        }
        c.accept(now, Accept::new()).unwrap();
        while c.poll_transmit().is_some() {}
        while c.poll_event().is_some() {}
    }
    let l2 = live();
    let mut filters_kept = Vec::with_capacity(N);
    for (c, r) in conns.iter_mut().zip(&rec) {
        c.handle_read(now, &r.subscribe);
        match c.poll_event() {
            Some(SEvent::Subscribe(sub)) => {
                filters_kept.push(sub.subscriptions[0].filter.clone());
                c.suback(
                    now,
                    sub.packet_id,
                    vec![SubAckReasonCode::GrantedQoS1],
                    AckProperties::default(),
                )
                .unwrap();
            }
            other => panic!("{other:?}"),
        }
        while c.poll_transmit().is_some() {}
        while c.poll_event().is_some() {}
    }
    let l3 = live();
    println!(
        "  ServerConnection heap: new {:.1}, + CONNECT/CONNACK {:.1} (client id kept), \
         + SUBSCRIBE/SUBACK {:.1} (filter kept)",
        per(l1 - l0),
        per(l2 - l1),
        per(l3 - l2)
    );
    black_box((&conns, &kept, &filters_kept));
    drop((conns, kept, filters_kept));

    let ids: Vec<MqttString> = (0..N)
        .map(|i| MqttString::try_from(format!("client-{i:06}")).unwrap())
        .collect();
    let l0 = live();
    let mut by: HashMap<MqttString, (u32, u32)> = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        by.insert(id.clone(), (i as u32, 0));
    }
    let l1 = live();
    println!(
        "  HashMap<MqttString, Key> entry              {:>7.1}  ({} buckets for {N})",
        per(l1 - l0),
        by.capacity()
    );
    black_box(&by);
    println!();
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("size_of (bytes), inline parts of what the broker keeps per session:");
    for (name, n) in [
        ("ServerConnection", size_of::<ServerConnection>()),
        ("SessionState", size_of::<SessionState>()),
        ("Option<SessionState>", size_of::<Option<SessionState>>()),
        ("MqttString", size_of::<MqttString>()),
        ("Option<MqttString>", size_of::<Option<MqttString>>()),
        ("Option<LastWill>", size_of::<Option<LastWill>>()),
        (
            "Option<(LastWill, Instant)>",
            size_of::<Option<(LastWill, Instant)>>(),
        ),
        ("Option<Box<Connect>>", size_of::<Option<Box<Connect>>>()),
        ("Option<Instant>", size_of::<Option<Instant>>()),
        ("Option<ConnectionId>", size_of::<Option<ConnectionId>>()),
        ("SubscriptionFilter", size_of::<SubscriptionFilter>()),
        ("Publish", size_of::<Publish>()),
        ("Bytes", size_of::<Bytes>()),
        ("server::Event", size_of::<SEvent>()),
    ] {
        println!("  {name:<28} {n:>4}");
    }
    println!();
    replicas();
    measure("clean session (Clean Start 1, expiry 0)", false);
    measure("persistent session (Clean Start 0, expiry 3600 s)", true);
    measure_with("clean session (Clean Start 1, expiry 0)", false, false);
}
