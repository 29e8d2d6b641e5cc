//! Property tests of the broker on the deterministic harness: random
//! schedules of publishes, connection drops, withheld bytes, reconnects and
//! clock steps, with 5.0 and 3.1.1 clients mixed, checked against the
//! delivery guarantees, the counters, the memory bounds and the ACL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU16;
use std::time::Duration;

use common::*;
use mqtt_broker::{BrokerConfig, ClientInfo, Hooks};
use mqtt_session::client::Event as ClientEvent;
use mqtt_topic::SubscriptionFilter;
use mqtt_wire::{
    Connect, ConnectReasonCode, Packet, PubAckReasonCode, QoS, SubAckReasonCode, TopicName,
};
use proptest::prelude::*;

/// 128 cases unless `PROPTEST_CASES` says otherwise (for longer hunts).
fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 128;
    }
    c
}

const TOPICS: [&str; 3] = ["t/a", "t/b", "t/c"];

#[derive(Debug, Clone)]
enum Op {
    /// Client publishes to a topic at a QoS.
    Publish {
        client: usize,
        topic: usize,
        qos: u8,
    },
    /// Abrupt close of a client's transport.
    Drop(usize),
    /// A disconnected client connects again (Clean Start 0).
    Reconnect(usize),
    /// Withhold (or release) one direction of a client's pipe.
    Hold { client: usize, out: bool, on: bool },
    /// Time passes.
    Advance(u8),
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..n, 0..TOPICS.len(), 0u8..3).prop_map(|(client, topic, qos)| Op::Publish { client, topic, qos }),
        1 => (0..n).prop_map(Op::Drop),
        2 => (0..n).prop_map(Op::Reconnect),
        1 => (0..n, any::<bool>(), any::<bool>()).prop_map(|(client, out, on)| Op::Hold { client, out, on }),
        1 => (1u8..40).prop_map(Op::Advance),
    ]
}

/// A persistent client of either version.
fn persistent(name: &str, v5: bool, receive_maximum: u16) -> Connect {
    if v5 {
        let mut c = persistent5(name, 3600);
        c.properties.receive_maximum = NonZeroU16::new(receive_maximum);
        c
    } else {
        persistent311(name)
    }
}

fn qos(n: u8) -> QoS {
    QoS::from_u8(n).unwrap()
}

/// Runs a schedule. Clients 0..n publish and subscribe ("t/#" at QoS 2, so
/// nothing is downgraded). Returns the world and what each publisher
/// published successfully: (client, topic, qos, payload).
fn run_schedule(
    versions: &[(bool, u16)],
    ops: &[Op],
    filter: &str,
) -> (World, Vec<(usize, usize, QoS, String)>) {
    let mut w = World::new(BrokerConfig::default());
    let n = versions.len();
    for (i, (v5, rm)) in versions.iter().enumerate() {
        let c = w.add(persistent(&format!("c{i}"), *v5, *rm));
        w.connect(c);
        let ack = w.subscribe(c, filter, QoS::ExactlyOnce);
        assert_eq!(ack.reason_codes, vec![SubAckReasonCode::GrantedQoS2]);
    }
    let mut sent = Vec::new();
    let mut seq = 0u32;
    for o in ops {
        match *o {
            Op::Publish {
                client,
                topic,
                qos: q,
            } => {
                let client = client % n;
                if !w.peers[client].client.is_connected() {
                    continue;
                }
                seq += 1;
                let body = format!("{client}/{topic}/{seq}");
                let m = msg(TOPICS[topic], body.as_bytes(), qos(q));
                match w.try_publish(client, m) {
                    Ok(_) => sent.push((client, topic, qos(q), body)),
                    Err(mqtt_session::Error::WindowFull) => {}
                    Err(e) => panic!("publish refused: {e:?}"),
                }
                w.run();
            }
            Op::Drop(c) => w.drop_conn(c % n),
            Op::Reconnect(c) => {
                let c = c % n;
                if !w.is_open(c) {
                    w.connect(c);
                }
            }
            Op::Hold { client, out, on } => {
                let p = &mut w.peers[client % n];
                if out {
                    p.hold_out = on;
                } else {
                    p.hold_in = on;
                }
                w.run();
            }
            Op::Advance(s) => w.advance(Duration::from_secs(u64::from(s))),
        }
    }
    // Heal everything and bring every client back.
    for p in &mut w.peers {
        p.hold_in = false;
        p.hold_out = false;
    }
    w.run();
    for round in 0..3 {
        for c in 0..n {
            if !w.is_open(c) {
                w.connect(c);
            }
        }
        w.advance(Duration::from_secs(1));
        if round == 2 {
            for c in 0..n {
                assert!(w.peers[c].client.is_connected(), "client {c} not back");
            }
        }
    }
    (w, sent)
}

fn check_delivery(w: &World, sent: &[(usize, usize, QoS, String)]) -> Result<(), TestCaseError> {
    for (s, p) in w.peers.iter().enumerate() {
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        let mut first = Vec::new();
        for m in &p.received {
            let body = std::str::from_utf8(&m.payload).unwrap();
            let e = count.entry(body).or_default();
            if *e == 0 {
                first.push(body.to_owned());
            }
            *e += 1;
        }
        // Every publisher finished its QoS 1/2 flows.
        prop_assert_eq!(
            p.client.in_flight(),
            0,
            "client {} has messages in flight",
            s
        );
        for (_, _, q, body) in sent {
            let got = count.get(body.as_str()).copied().unwrap_or(0);
            match q {
                QoS::AtMostOnce => {
                    prop_assert!(got <= 1, "QoS 0 {} delivered {} times to {}", body, got, s)
                }
                QoS::AtLeastOnce => prop_assert!(got >= 1, "QoS 1 {} lost for {}", body, s),
                QoS::ExactlyOnce => {
                    prop_assert_eq!(got, 1, "QoS 2 {} delivered {} times to {}", body, got, s)
                }
            }
        }
        // Nothing invented.
        let all: BTreeSet<&str> = sent.iter().map(|x| x.3.as_str()).collect();
        for b in count.keys() {
            prop_assert!(all.contains(b), "{} never published", b);
        }
        // Per publisher and topic, first deliveries in publish order.
        let mut last: BTreeMap<(String, String), u32> = BTreeMap::new();
        for b in &first {
            let mut it = b.split('/');
            let (pc, t, n) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            let n: u32 = n.parse().unwrap();
            if let Some(prev) = last.insert((pc.to_owned(), t.to_owned()), n) {
                prop_assert!(prev < n, "client {}: {} after seq {}", s, b, prev);
            }
        }
    }
    Ok(())
}

fn check_stats(w: &World, n: usize) -> Result<(), TestCaseError> {
    let st = w.stats();
    prop_assert_eq!(st.bytes_in, w.fed);
    prop_assert_eq!(st.bytes_out, w.taken);
    prop_assert_eq!(
        st.connections,
        w.peers.iter().filter(|p| p.conn.is_some()).count()
    );
    prop_assert_eq!(st.sessions, n);
    prop_assert_eq!(st.subscriptions, n);
    prop_assert_eq!(st.retained_messages, 0);
    prop_assert_eq!(st.messages_dropped, 0);
    prop_assert_eq!(st.messages_expired, 0);
    let fed_publishes = w
        .peers
        .iter()
        .flat_map(|p| &p.wire_out)
        .filter(|(_, p)| matches!(p, Packet::Publish(_)))
        .count() as u64;
    let first_sends = w
        .peers
        .iter()
        .flat_map(|p| &p.wire_in)
        .filter(|(_, p)| matches!(p, Packet::Publish(m) if !m.dup))
        .count() as u64;
    prop_assert!(
        st.messages_in <= fed_publishes,
        "{} in, {} fed",
        st.messages_in,
        fed_publishes
    );
    prop_assert!(
        st.messages_out >= first_sends,
        "{} out, {} first sends",
        st.messages_out,
        first_sends
    );
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// No QoS 1/2 message to a persistent session is lost across drops and
    /// reconnects; QoS 2 exactly once end to end; per-publisher per-topic
    /// order of first deliveries; the counters agree with the wire.
    #[test]
    fn persistent_sessions_lose_nothing_and_keep_order(
        versions in prop::collection::vec((any::<bool>(), 1u16..4), 2..5),
        ops in prop::collection::vec(op(4), 1..60),
    ) {
        let (w, sent) = run_schedule(&versions, &ops, "t/#");
        check_delivery(&w, &sent)?;
        check_stats(&w, versions.len())?;
    }

    /// Every client in one share group: each QoS 1 message reaches some
    /// member at least once, each QoS 2 message exactly one member exactly
    /// once, across drops and reconnects.
    #[test]
    fn shared_group_loses_nothing_and_duplicates_no_qos2(
        versions in prop::collection::vec((any::<bool>(), 1u16..4), 2..5),
        ops in prop::collection::vec(op(4), 1..60),
    ) {
        let (w, sent) = run_schedule(&versions, &ops, "$share/g/t/#");
        let mut count: BTreeMap<String, usize> = BTreeMap::new();
        for p in &w.peers {
            prop_assert_eq!(p.client.in_flight(), 0);
            for m in &p.received {
                *count.entry(text(m)).or_default() += 1;
            }
        }
        for (_, _, q, body) in &sent {
            let got = count.get(body).copied().unwrap_or(0);
            match q {
                QoS::AtMostOnce => prop_assert!(got <= 1, "QoS 0 {} delivered {} times", body, got),
                QoS::AtLeastOnce => prop_assert!(got >= 1, "QoS 1 {} lost", body),
                QoS::ExactlyOnce => prop_assert_eq!(got, 1, "QoS 2 {} delivered {} times", body, got),
            }
        }
        prop_assert_eq!(w.stats().messages_dropped, 0);
    }

    /// With a tiny queue bound, an offline subscriber's queue never holds
    /// more than the bound: the excess is dropped and counted, the oldest
    /// messages are kept, and nothing beyond the bound is delivered later.
    #[test]
    fn offline_queue_stays_within_bounds(
        max_msgs in 1usize..5,
        max_bytes in 20usize..200,
        sizes in prop::collection::vec(0usize..40, 0..25),
        sub_v5 in any::<bool>(),
    ) {
        let mut cfg = BrokerConfig::default();
        cfg.max_queued_messages = max_msgs;
        cfg.max_queued_bytes = max_bytes;
        let mut w = World::new(cfg);
        let sub = w.add(persistent("sub", sub_v5, 100));
        let publ = w.add(v5("pub"));
        w.connect(sub);
        w.subscribe(sub, "q", QoS::AtLeastOnce);
        w.drop_conn(sub);
        w.connect(publ);
        // What the bounds admit, in order: "q" is 1 byte of topic.
        let mut admitted = Vec::new();
        let (mut count, mut bytes) = (0usize, 0usize);
        for (n, len) in sizes.iter().enumerate() {
            let mut body = format!("{n}:");
            while body.len() < *len { body.push('x'); }
            let size = 1 + body.len();
            w.publish(publ, msg("q", body.as_bytes(), QoS::AtLeastOnce));
            if count < max_msgs && bytes + size <= max_bytes {
                count += 1;
                bytes += size;
                admitted.push(body);
            }
            let dropped = w.stats().messages_dropped;
            prop_assert_eq!(dropped as usize, n + 1 - admitted.len());
        }
        w.connect(sub);
        let got = w.take_payloads(sub);
        prop_assert_eq!(got, admitted);
    }

    /// A slow online subscriber (Receive Maximum 1, never acknowledging):
    /// one message in flight, at most `max` waiting, the rest dropped.
    #[test]
    fn slow_consumer_queue_stays_within_bounds(max_msgs in 1usize..5, n in 0usize..20) {
        let mut cfg = BrokerConfig::default();
        cfg.max_queued_messages = max_msgs;
        let mut w = World::new(cfg);
        let mut c = v5("slow");
        c.properties.receive_maximum = NonZeroU16::new(1);
        let slow = w.add_manual(c);
        let publ = w.add(v5("pub"));
        w.connect(slow);
        w.connect(publ);
        w.subscribe(slow, "q", QoS::AtLeastOnce);
        for k in 0..n {
            w.publish(publ, msg("q", format!("{k}").as_bytes(), QoS::AtLeastOnce));
        }
        let kept = n.min(1 + max_msgs);
        prop_assert_eq!(w.stats().messages_dropped as usize, n - kept);
        // Acknowledge everything: exactly the kept ones arrive, in order.
        let mut got = Vec::new();
        for _ in 0..(n + 2) {
            let now = w.now;
            for m in w.take(slow) {
                got.push(text(&m));
                w.peers[slow].client.ack(now, m.packet_id().unwrap(), PubAckReasonCode::Success).unwrap();
            }
            w.run();
        }
        let want: Vec<String> = (0..kept).map(|k| k.to_string()).collect();
        prop_assert_eq!(got, want);
    }
}

// ---------------------------------------------------------------------
// Authorization
// ---------------------------------------------------------------------

/// Clients named `admin*` may do anything. Others may not publish to
/// `secret/...` or `ro/...`, and may not subscribe to filters that could
/// match `secret/...` (first level `secret`, `+` or `#`).
#[derive(Debug, Default)]
struct Acl;

fn admin(c: &ClientInfo<'_>) -> bool {
    c.client_id.as_str().starts_with("admin")
}

impl Hooks for Acl {
    fn may_publish(&mut self, client: &ClientInfo<'_>, topic: &TopicName) -> bool {
        let t = topic.as_str();
        admin(client) || !(t.starts_with("secret/") || t.starts_with("ro/"))
    }

    fn may_subscribe(&mut self, client: &ClientInfo<'_>, filter: &SubscriptionFilter) -> bool {
        let first = filter
            .topic_filter()
            .as_str()
            .split('/')
            .next()
            .unwrap_or("");
        admin(client) || !matches!(first, "secret" | "+" | "#")
    }
}

const ACL_TOPICS: [&str; 5] = ["secret/x", "ro/x", "pub/x", "secret/y/z", "ro/y"];
const ACL_FILTERS: [&str; 9] = [
    "#",
    "+/x",
    "secret/#",
    "ro/#",
    "pub/#",
    "$share/g/#",
    "$share/g/secret/+",
    "secret/x",
    "+/+",
];

#[derive(Debug, Clone)]
enum AclOp {
    Subscribe {
        client: usize,
        filter: usize,
    },
    Publish {
        client: usize,
        topic: usize,
        retain: bool,
        qos: u8,
    },
    Drop(usize),
    Reconnect(usize),
}

fn acl_op() -> impl Strategy<Value = AclOp> {
    prop_oneof![
        2 => (0usize..4, 0..ACL_FILTERS.len()).prop_map(|(client, filter)| AclOp::Subscribe { client, filter }),
        5 => (0usize..4, 0..ACL_TOPICS.len(), any::<bool>(), 0u8..3)
            .prop_map(|(client, topic, retain, qos)| AclOp::Publish { client, topic, retain, qos }),
        1 => (0usize..4).prop_map(AclOp::Drop),
        1 => (0usize..4).prop_map(AclOp::Reconnect),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// No client other than an admin ever receives a message on
    /// `secret/...`, and every message on `secret/...` or `ro/...` comes
    /// from an admin: live, retained, queued, or as a Will.
    #[test]
    fn acl_never_bypassed(
        versions in prop::collection::vec(any::<bool>(), 4),
        wills in prop::collection::vec(prop::option::of(0..ACL_TOPICS.len()), 4),
        ops in prop::collection::vec(acl_op(), 1..50),
    ) {
        let mut w = World::with_hooks(BrokerConfig::default(), Acl);
        // Client 0 is the admin.
        for (i, v5) in versions.iter().enumerate() {
            let name = if i == 0 { "admin".to_owned() } else { format!("user{i}") };
            let mut c = persistent(&name, *v5, 10);
            if let Some(t) = wills[i] {
                let mut wl = mqtt_wire::LastWill::new(
                    TopicName::try_from(ACL_TOPICS[t]).unwrap(),
                    bytes::Bytes::from(format!("{name}:will")),
                );
                wl.retain = t % 2 == 0;
                c.will = Some(wl);
            }
            let c = w.add(c);
            let ack = w.connect(c).expect("CONNACK");
            // A Will the client may not publish refuses the connection.
            let forbidden = i != 0
                && wills[i].is_some_and(|t| ACL_TOPICS[t].starts_with("secret/") || ACL_TOPICS[t].starts_with("ro/"));
            let want = if forbidden {
                ConnectReasonCode::NotAuthorized
            } else {
                ConnectReasonCode::Success
            };
            prop_assert_eq!(ack.reason_code, want);
        }
        let mut seq = 0;
        for o in &ops {
            match *o {
                AclOp::Subscribe { client, filter } => {
                    if !w.peers[client].client.is_connected() { continue; }
                    let f = ACL_FILTERS[filter];
                    if f.starts_with("$share") && !versions[client] { continue; }
                    let ack = w.subscribe(client, f, QoS::AtLeastOnce);
                    let first = f.trim_start_matches("$share/g/").split('/').next().unwrap();
                    let denied = client != 0 && matches!(first, "secret" | "+" | "#");
                    let code = ack.reason_codes[0];
                    if denied {
                        let want = if versions[client] {
                            SubAckReasonCode::NotAuthorized
                        } else {
                            SubAckReasonCode::UnspecifiedError
                        };
                        prop_assert_eq!(code, want);
                    } else {
                        prop_assert_eq!(code, SubAckReasonCode::GrantedQoS1);
                    }
                }
                AclOp::Publish { client, topic, retain, qos: q } => {
                    if !w.peers[client].client.is_connected() { continue; }
                    seq += 1;
                    let who = if client == 0 { "admin".to_owned() } else { format!("user{client}") };
                    let m = msg(ACL_TOPICS[topic], format!("{who}:{seq}").as_bytes(), qos(q))
                        .with_retain(retain);
                    let _ = w.try_publish(client, m);
                    w.run();
                }
                AclOp::Drop(c) => w.drop_conn(c),
                AclOp::Reconnect(c) => {
                    if !w.is_open(c) {
                        w.connect(c);
                    }
                }
            }
        }
        for c in 0..4 {
            if !w.is_open(c) {
                w.connect(c);
            }
        }
        for (i, p) in w.peers.iter().enumerate() {
            for m in p.events.iter().filter_map(|e| match e {
                ClientEvent::Publish(m) => Some(m),
                _ => None,
            }) {
                let t = topic(m);
                let body = text(m);
                if i != 0 {
                    prop_assert!(!t.starts_with("secret/"), "client {} got {} on {}", i, body, t);
                }
                if t.starts_with("secret/") || t.starts_with("ro/") {
                    prop_assert!(body.starts_with("admin:"), "{} on {} reached client {}", body, t, i);
                }
            }
        }
    }
}
