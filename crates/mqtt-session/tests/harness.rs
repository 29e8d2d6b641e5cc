//! Property tests on the deterministic harness (`common::Pair`): random
//! schedules of publishes in both directions, transport faults (drops at
//! any byte, byte-at-a-time and trickled delivery, delays, withheld bytes),
//! clock steps and session losses, for MQTT 3.1.1 and 5.0. After every
//! step the harness checks its invariants (in-flight within the peer's
//! Receive Maximum, counted on the wire too; no timer armed in the past;
//! the client's outbound table equals what its application has in flight).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::num::NonZeroU16;
use std::time::{Duration, Instant};

use common::{message, Dir, Outbox, Pair, Transfer, Wire};
use mqtt_session::client::ClientConfig;
use mqtt_session::server::ServerConfig;
use mqtt_session::{CloseReason, Error};
use mqtt_wire::{Connect, MqttString, Packet, ProtocolVersion, Publish, QoS};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Schedules
// ---------------------------------------------------------------------------

/// One thing that happens in a schedule.
#[derive(Debug, Clone)]
enum Op {
    /// The client application queues a message.
    ClientPublish { topic: u8, qos: u8, len: u8 },
    /// The server application queues a message for the client.
    ServerPublish { topic: u8, qos: u8, len: u8 },
    /// The network moves bytes for a few steps.
    Steps(u8),
    /// The clock moves (milliseconds).
    Advance(u16),
    /// The transport fails now (whatever is in the pipes is lost).
    Drop,
    /// New delivery behaviour for one direction.
    Faults {
        to_server: bool,
        transfer: u8,
        delay: u8,
        hold: bool,
    },
    /// The server forgets the session before the next CONNECT.
    LoseSession,
    /// The client application restarts from its persisted session, with
    /// this Clean Start.
    Restart { clean_start: bool },
}

fn op(with_loss: bool) -> BoxedStrategy<Op> {
    let publish = (0..3u8, 0..3u8, 0..24u8);
    let base = prop_oneof![
        6 => publish.clone().prop_map(|(topic, qos, len)| Op::ClientPublish { topic, qos, len }),
        4 => publish.prop_map(|(topic, qos, len)| Op::ServerPublish { topic, qos, len }),
        6 => (1..12u8).prop_map(Op::Steps),
        2 => (0..3000u16).prop_map(Op::Advance),
        1 => Just(Op::Drop),
        2 => (any::<bool>(), 0..4u8, 0..4u8, prop::bool::weighted(0.1)).prop_map(
            |(to_server, transfer, delay, hold)| Op::Faults { to_server, transfer, delay, hold }
        ),
    ];
    if with_loss {
        prop_oneof![
            20 => base,
            1 => Just(Op::LoseSession),
            1 => any::<bool>().prop_map(|clean_start| Op::Restart { clean_start }),
        ]
        .boxed()
    } else {
        prop_oneof![
            20 => base,
            1 => Just(Op::Restart { clean_start: false }),
        ]
        .boxed()
    }
}

fn schedule(with_loss: bool, max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(with_loss), 1..max_len)
}

fn qos_of(n: u8) -> QoS {
    match n {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn client_config(version: ProtocolVersion, receive_maximum: u16) -> ClientConfig {
    let mut c = Connect::new(version, MqttString::from_static("prop-client"));
    c.clean_start = false;
    c.keep_alive = 5;
    if version.is_v5() {
        c.properties.session_expiry_interval = Some(3600);
        c.properties.receive_maximum = NonZeroU16::new(receive_maximum);
        c.properties.topic_alias_maximum = Some(2);
    }
    ClientConfig::new(c)
}

fn server_config(receive_maximum: u16) -> ServerConfig {
    let mut s = ServerConfig::default();
    s.receive_maximum = NonZeroU16::new(receive_maximum).unwrap();
    s.topic_alias_maximum = 2;
    s
}

/// The applications' side of a run: queues in front of `publish` (which
/// refuses with `WindowFull` when the window is full), and every message
/// created, keyed by its sequence number (the first 4 payload bytes).
#[derive(Default)]
struct Traffic {
    next_seq: u32,
    originals: BTreeMap<u32, Publish>,
    client_queue: VecDeque<Publish>,
    server_queue: VecDeque<Publish>,
    client_accepted: Vec<u32>,
    server_accepted: Vec<u32>,
}

impl Traffic {
    fn create(&mut self, topic: u8, qos: u8, len: u8) -> Publish {
        self.next_seq += 1;
        let seq = self.next_seq;
        let mut payload = seq.to_be_bytes().to_vec();
        payload.extend((0..len).map(|i| (seq as u8).wrapping_mul(31).wrapping_add(i)));
        let m = message(&format!("t/{topic}"), qos_of(qos), payload);
        self.originals.insert(seq, m.clone());
        m
    }

    /// Publishes from the queues, in order, while the sessions take them.
    fn flush(&mut self, pair: &mut Pair) {
        while pair.client.is_connected() {
            let Some(m) = self.client_queue.front().cloned() else {
                break;
            };
            match pair.client_publish(m.clone()) {
                Ok(_) => {
                    self.client_queue.pop_front();
                    self.client_accepted.push(seq_of(&m));
                }
                Err(Error::WindowFull) => break,
                Err(e) => panic!("client publish refused: {e:?}"),
            }
        }
        while pair.server.is_connected() {
            let Some(m) = self.server_queue.front().cloned() else {
                break;
            };
            match pair.server_publish(m.clone()) {
                Ok(_) => {
                    self.server_queue.pop_front();
                    self.server_accepted.push(seq_of(&m));
                }
                Err(Error::WindowFull) => break,
                Err(e) => panic!("server publish refused: {e:?}"),
            }
        }
    }

    fn settled(&self, pair: &Pair) -> bool {
        pair.client.is_connected()
            && self.client_queue.is_empty()
            && self.server_queue.is_empty()
            && pair.client_app.outbox.in_flight.is_empty()
            && pair.server_app.outbox.in_flight.is_empty()
            && pair.c2s.pending() == 0
            && pair.s2c.pending() == 0
    }
}

fn seq_of(p: &Publish) -> u32 {
    let b: [u8; 4] = p.payload[..4].try_into().unwrap();
    u32::from_be_bytes(b)
}

/// Connects (reconnecting as needed) on a healed network until CONNACK
/// has arrived, then restores the pipes' fault settings.
fn complete_connection(pair: &mut Pair) {
    let saved = [
        (pair.c2s.transfer, pair.c2s.delay, pair.c2s.hold),
        (pair.s2c.transfer, pair.s2c.delay, pair.s2c.hold),
    ];
    pair.c2s.heal();
    pair.s2c.heal();
    for _ in 0..100 {
        if !pair.is_linked() {
            pair.reconnect().expect("connect after a close");
        }
        pair.run();
        if pair.client.is_connected() {
            break;
        }
        pair.advance(Duration::from_millis(500));
    }
    assert!(
        pair.client.is_connected(),
        "no connection on a healed network"
    );
    (pair.c2s.transfer, pair.c2s.delay, pair.c2s.hold) = saved[0];
    (pair.s2c.transfer, pair.s2c.delay, pair.s2c.hold) = saved[1];
}

/// Runs `ops`, then heals the network and lets everything complete.
fn run_schedule(pair: &mut Pair, ops: &[Op]) -> Traffic {
    let mut t = Traffic::default();
    pair.run();
    for op in ops {
        match *op {
            Op::ClientPublish { topic, qos, len } => {
                let m = t.create(topic, qos, len);
                t.client_queue.push_back(m);
            }
            Op::ServerPublish { topic, qos, len } => {
                let m = t.create(topic, qos, len);
                t.server_queue.push_back(m);
            }
            Op::Steps(n) => {
                for _ in 0..n {
                    pair.step();
                    t.flush(pair);
                }
            }
            Op::Advance(ms) => pair.advance(Duration::from_millis(u64::from(ms))),
            Op::Drop => pair.drop_connection(),
            Op::Faults {
                to_server,
                transfer,
                delay,
                hold,
            } => {
                let pipe = if to_server {
                    &mut pair.c2s
                } else {
                    &mut pair.s2c
                };
                pipe.transfer = match transfer {
                    0 => Transfer::All,
                    1 => Transfer::ByteAtATime,
                    n => Transfer::Trickle(usize::from(n) * 3 - 4),
                };
                pipe.delay = u64::from(delay);
                pipe.hold = hold;
            }
            // A session is only lost across a connection whose CONNACK
            // arrives: when the server drops a session and its CONNACK
            // (Session Present 0) is lost, client and server disagree and
            // MQTT itself cannot keep its guarantees. So these transitions
            // run on a healed network.
            Op::LoseSession => {
                complete_connection(pair);
                pair.drop_connection();
                pair.server_app.lose_session = true;
                complete_connection(pair);
            }
            Op::Restart { clean_start } => {
                complete_connection(pair);
                pair.drop_connection();
                pair.restart_client(clean_start);
                complete_connection(pair);
            }
        }
        if !pair.is_linked() {
            pair.reconnect().expect("connect after a close");
        }
        t.flush(pair);
    }
    // Heal the network and let everything complete.
    pair.c2s.heal();
    pair.s2c.heal();
    pair.server_app.lose_session = false;
    for _ in 0..200 {
        if !pair.is_linked() {
            pair.reconnect().expect("connect after a close");
        }
        pair.run();
        t.flush(pair);
        pair.run();
        if t.settled(pair) {
            return t;
        }
        pair.advance(Duration::from_millis(500));
    }
    panic!(
        "did not settle: client {:?} in flight, server {:?} in flight, queues {} / {}",
        pair.client_app.outbox.in_flight.keys().collect::<Vec<_>>(),
        pair.server_app.outbox.in_flight.keys().collect::<Vec<_>>(),
        t.client_queue.len(),
        t.server_queue.len()
    );
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

/// Delivery properties of one direction: `accepted` messages (sequence
/// numbers, in publish order) against what the receiver's application got
/// and what the sender's application was told.
fn check_delivery(
    what: &str,
    t: &Traffic,
    accepted: &[u32],
    received: &[Publish],
    outbox: &Outbox,
    loss_possible: bool,
) {
    let accepted_set: BTreeSet<u32> = accepted.iter().copied().collect();
    let lost: BTreeSet<u32> = outbox.lost.iter().map(seq_of).collect();
    let completed: BTreeSet<u32> = outbox.completed.iter().map(seq_of).collect();
    if !loss_possible {
        assert!(
            lost.is_empty(),
            "{what}: messages lost without a session loss: {lost:?}"
        );
    }
    let mut count: BTreeMap<u32, usize> = BTreeMap::new();
    for p in received {
        let seq = seq_of(p);
        assert!(
            accepted_set.contains(&seq),
            "{what}: {seq} delivered but never accepted"
        );
        let orig = &t.originals[&seq];
        assert_eq!(p.topic, orig.topic, "{what}: {seq} topic");
        assert_eq!(p.payload, orig.payload, "{what}: {seq} payload");
        assert_eq!(p.qos(), orig.qos(), "{what}: {seq} QoS");
        *count.entry(seq).or_default() += 1;
    }
    for seq in accepted {
        let n = count.get(seq).copied().unwrap_or(0);
        let is_lost = lost.contains(seq);
        match t.originals[seq].qos() {
            QoS::AtMostOnce => assert!(n <= 1, "{what}: QoS 0 message {seq} delivered {n} times"),
            QoS::AtLeastOnce => assert!(
                n >= 1 || is_lost,
                "{what}: QoS 1 message {seq} never delivered and not reported lost"
            ),
            QoS::ExactlyOnce => {
                assert!(n <= 1, "{what}: QoS 2 message {seq} delivered {n} times");
                assert!(
                    n == 1 || is_lost,
                    "{what}: QoS 2 message {seq} never delivered and not reported lost"
                );
            }
        }
        if t.originals[seq].qos() != QoS::AtMostOnce {
            // Nothing vanishes silently: acknowledged or reported lost,
            // exactly one of them.
            assert!(
                completed.contains(seq) != is_lost,
                "{what}: message {seq} acknowledged: {}, reported lost: {is_lost}",
                completed.contains(seq)
            );
        }
    }
    // MQTT-4.6.0-1: per topic, the first deliveries of QoS 1/2 messages
    // come in publish order (sequence numbers are assigned in that order).
    let mut first = BTreeSet::new();
    let mut last: HashMap<String, u32> = HashMap::new();
    for p in received.iter().filter(|p| p.qos() != QoS::AtMostOnce) {
        let seq = seq_of(p);
        if first.insert(seq) {
            let topic = p.topic.as_ref().unwrap().as_str().to_owned();
            if let Some(prev) = last.insert(topic.clone(), seq) {
                assert!(
                    seq > prev,
                    "{what}: on {topic}, message {seq} first delivered after {prev}"
                );
            }
        }
    }
}

/// Wire properties of one direction's QoS 1/2 PUBLISH packets:
/// MQTT-4.4.0-1 (resent on reconnect with DUP 1 and the original packet
/// identifier, only when the session is present, never within a
/// connection) and MQTT-4.6.0-1 (on each connection they go out in their
/// original order).
fn check_wire(what: &str, wire: &[Wire], dir: Dir) {
    let session_present: HashMap<u32, bool> = wire
        .iter()
        .filter_map(|w| match &w.packet {
            Packet::ConnAck(c) => Some((w.conn, c.session_present)),
            _ => None,
        })
        .collect();
    let mut first: HashMap<u32, (u32, u16)> = HashMap::new();
    let mut last_in_conn: HashMap<u32, u32> = HashMap::new();
    for w in wire.iter().filter(|w| w.dir == dir) {
        let Packet::Publish(p) = &w.packet else {
            continue;
        };
        let Some(id) = p.packet_id() else {
            continue;
        };
        let seq = seq_of(p);
        if let Some(prev) = last_in_conn.insert(w.conn, seq) {
            assert!(
                seq > prev,
                "{what}: MQTT-4.6.0-1: on connection {}, message {seq} sent after {prev}",
                w.conn
            );
        }
        match first.get(&seq) {
            None => {
                assert!(!p.dup, "{what}: first send of {seq} has DUP 1");
                first.insert(seq, (w.conn, id.get()));
            }
            Some(&(conn, id0)) => {
                assert!(
                    w.conn > conn,
                    "{what}: {seq} sent twice on connection {conn}"
                );
                assert!(p.dup, "{what}: MQTT-4.4.0-1: resend of {seq} without DUP");
                assert_eq!(
                    id.get(),
                    id0,
                    "{what}: MQTT-4.4.0-1: resend of {seq} with another packet id"
                );
                assert_eq!(
                    session_present.get(&w.conn),
                    Some(&true),
                    "{what}: MQTT-4.4.0-1: {seq} resent on connection {} without a session present",
                    w.conn
                );
            }
        }
    }
}

fn check_all(pair: &Pair, t: &Traffic, loss_possible: bool) {
    check_delivery(
        "client->server",
        t,
        &t.client_accepted,
        &pair.server_app.received,
        &pair.client_app.outbox,
        loss_possible,
    );
    check_delivery(
        "server->client",
        t,
        &t.server_accepted,
        &pair.client_app.received,
        &pair.server_app.outbox,
        loss_possible,
    );
    check_wire("client->server", &pair.wire, Dir::ToServer);
    check_wire("server->client", &pair.wire, Dir::ToClient);
}

fn qos_flows(version: ProtocolVersion, server_rm: u16, client_rm: u16, ops: &[Op], loss: bool) {
    let mut pair = Pair::new(client_config(version, client_rm), server_config(server_rm));
    let t = run_schedule(&mut pair, ops);
    check_all(&pair, &t, loss);
}

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases(256))]

    /// MQTT 5.0: across drops at any byte, delays and restarts, with the
    /// session resumed (Clean Start 0, Session Expiry > 0): every QoS 1
    /// message is delivered at least once, every QoS 2 message exactly
    /// once, in both directions; unacknowledged messages are resent with
    /// DUP and their original ids (MQTT-4.4.0-1) in their original order
    /// (MQTT-4.6.0-1); per topic, first deliveries are in publish order.
    #[test]
    fn mqtt5_4_4_0_1_4_6_0_1_qos_resent_in_order_across_reconnects(
        server_rm in 1..=5u16,
        client_rm in 1..=5u16,
        ops in schedule(false, 120),
    ) {
        qos_flows(ProtocolVersion::V5, server_rm, client_rm, &ops, false);
    }

    /// MQTT 3.1.1: the same with CleanSession 0 (MQTT-4.4.0-1,
    /// MQTT-4.6.0-1). The server's Receive Maximum is not announced in
    /// 3.1.1; a small configured one must not break the flows.
    #[test]
    fn mqtt311_4_4_0_1_4_6_0_1_qos_resent_in_order_across_reconnects(
        server_rm in 1..=5u16,
        ops in schedule(false, 120),
    ) {
        qos_flows(ProtocolVersion::V3_1_1, server_rm, 0, &ops, false);
    }

    /// MQTT 5.0, sessions lost (the server forgets them, or the client
    /// restarts with Clean Start 1): nothing vanishes silently. Every
    /// accepted QoS 1/2 message is acknowledged or reported lost
    /// (`Event::SessionLost` on the client, the discarded session on the
    /// server), and nothing is resent on a connection without a session
    /// present (MQTT-4.4.0-1).
    #[test]
    fn mqtt5_4_4_0_1_lost_session_reported_never_resent(
        server_rm in 1..=5u16,
        client_rm in 1..=5u16,
        ops in schedule(true, 120),
    ) {
        qos_flows(ProtocolVersion::V5, server_rm, client_rm, &ops, true);
    }

    /// MQTT 3.1.1: the same (MQTT-4.4.0-1).
    #[test]
    fn mqtt311_4_4_0_1_lost_session_reported_never_resent(
        server_rm in 1..=5u16,
        ops in schedule(true, 120),
    ) {
        qos_flows(ProtocolVersion::V3_1_1, server_rm, 0, &ops, true);
    }

    /// MQTT 5.0 flow control under load: the client never has more QoS 1/2
    /// PUBLISHes unacknowledged than the server's Receive Maximum
    /// (MQTT-3.3.4-7), the server never more than the client's
    /// (MQTT-3.3.4-9), counted both by the sessions and on the wire; the
    /// send quota starts non-zero (MQTT-4.9.0-1) and `WindowFull` comes
    /// only when it is used up (MQTT-4.9.0-2).
    #[test]
    fn mqtt5_3_3_4_7_3_3_4_9_4_9_0_1_4_9_0_2_in_flight_within_receive_maximum(
        server_rm in 1..=5u16,
        client_rm in 1..=5u16,
        burst in prop::collection::vec((any::<bool>(), 0..3u8, 1..3u8), 1..60),
        delay in 0..4u64,
    ) {
        let mut pair = Pair::new(
            client_config(ProtocolVersion::V5, client_rm),
            server_config(server_rm),
        );
        pair.c2s.delay = delay;
        pair.s2c.delay = delay;
        pair.run();
        let mut t = Traffic::default();
        for (to_server, topic, qos) in burst {
            let m = t.create(topic, qos, 4);
            if to_server {
                t.client_queue.push_back(m);
            } else {
                t.server_queue.push_back(m);
            }
        }
        let (mut max_c, mut max_s) = (0, 0);
        let mut rounds = 0;
        while !t.settled(&pair) {
            rounds += 1;
            prop_assert!(rounds < 10_000, "flow control stalled");
            t.flush(&mut pair);
            max_c = max_c.max(pair.client.in_flight());
            max_s = max_s.max(pair.server.in_flight());
            pair.step();
        }
        prop_assert!(max_c <= usize::from(server_rm));
        prop_assert!(max_s <= usize::from(client_rm));
        // MQTT-4.9.0-1: the quota starts above zero, so the work was done.
        prop_assert!(t.client_queue.is_empty() && t.server_queue.is_empty());
        check_all(&pair, &t, false);
    }
}

// ---------------------------------------------------------------------------
// Keep alive
// ---------------------------------------------------------------------------

fn keep_alive_pair(version: ProtocolVersion, k: u16) -> Pair {
    let mut c = Connect::new(version, MqttString::from_static("ka-client"));
    c.keep_alive = k;
    let mut pair = Pair::new(ClientConfig::new(c), ServerConfig::default());
    pair.run();
    assert!(pair.client.is_connected());
    pair
}

/// Times of the packets the client wrote on connection 1.
fn client_packet_times(pair: &Pair) -> Vec<(Instant, bool)> {
    pair.wire
        .iter()
        .filter(|w| w.dir == Dir::ToServer && w.conn == 1)
        .map(|w| (w.at, matches!(w.packet, Packet::PingReq)))
        .collect()
}

/// Quiet periods and occasional QoS 0 traffic: the client never lets more
/// than Keep Alive pass between its packets, sending PINGREQ when it has
/// nothing else to send, and the server answers each one.
fn client_pings_within_keep_alive(version: ProtocolVersion, k: u16, activity: &[(u32, bool)]) {
    let mut pair = keep_alive_pair(version, k);
    for &(permille, publish) in activity {
        if publish {
            pair.client_publish(message("t/ka", QoS::AtMostOnce, vec![1]))
                .unwrap();
            pair.run();
        }
        // Up to 2k per step: timers must fire at their deadlines.
        pair.advance(Duration::from_millis(
            u64::from(k) * u64::from(permille) * 2,
        ));
        pair.run();
    }
    assert!(
        pair.client_app.disconnects.is_empty(),
        "{:?}",
        pair.client_app.disconnects
    );
    assert!(
        pair.server_app.closes.is_empty(),
        "{:?}",
        pair.server_app.closes
    );
    let ka = Duration::from_secs(u64::from(k));
    let times = client_packet_times(&pair);
    for w in times.windows(2) {
        assert!(
            w[1].0 - w[0].0 <= ka,
            "{:?} between client packets, keep alive {k} s",
            w[1].0 - w[0].0
        );
    }
    let last = times.last().unwrap().0;
    assert!(
        pair.now - last <= ka,
        "{:?} silent at the end",
        pair.now - last
    );
    // Each PINGREQ is answered by a PINGRESP at once (the network is prompt).
    for &(at, _) in times.iter().filter(|(_, ping)| *ping) {
        assert!(
            pair.wire
                .iter()
                .any(|w| w.dir == Dir::ToClient && w.at == at && w.packet == Packet::PingResp),
            "PINGREQ at {:?} not answered",
            at - pair.t0
        );
    }
}

/// When PINGRESP never comes (the server's bytes are withheld), the client
/// reports `Disconnected(KeepAliveTimeout)` within its ping timeout (the
/// keep alive by default) of the PINGREQ.
fn client_reports_missing_pingresp(version: ProtocolVersion, k: u16, steps: &[u32]) {
    let mut pair = keep_alive_pair(version, k);
    pair.s2c.hold = true;
    let ka = Duration::from_secs(u64::from(k));
    let mut i = 0;
    while pair.client_app.disconnects.is_empty() {
        assert!(pair.elapsed() <= ka * 4, "client never timed out");
        let permille = steps[i % steps.len()];
        i += 1;
        pair.advance(Duration::from_millis(u64::from(k) * u64::from(permille)));
        pair.run();
    }
    let (at, reason) = pair.client_app.disconnects[0].clone();
    assert_eq!(reason, CloseReason::KeepAliveTimeout);
    let times = client_packet_times(&pair);
    let (ping_at, _) = *times
        .iter()
        .find(|(_, ping)| *ping)
        .expect("a PINGREQ before the timeout");
    assert!(
        ping_at - pair.t0 <= ka,
        "first PINGREQ later than keep alive"
    );
    assert!(
        at >= ping_at && at - ping_at <= ka,
        "timeout {:?} after PINGREQ",
        at - ping_at
    );
}

/// A client whose bytes no longer reach the server: the server closes the
/// connection (KeepAliveTimeout) 1.5 keep alive periods after the last
/// packet it received, not before.
fn server_closes_silent_client(
    version: ProtocolVersion,
    k: u16,
    before: &[(u32, bool)],
    steps: &[u32],
) {
    let mut pair = keep_alive_pair(version, k);
    for &(permille, publish) in before {
        if publish {
            pair.client_publish(message("t/ka", QoS::AtLeastOnce, vec![2]))
                .unwrap();
            pair.run();
        }
        pair.advance(Duration::from_millis(u64::from(k) * u64::from(permille)));
        pair.run();
    }
    pair.c2s.hold = true;
    let last = client_packet_times(&pair).last().unwrap().0;
    let ka = Duration::from_secs(u64::from(k));
    let mut i = 0;
    while pair.server_app.closes.is_empty() {
        assert!(pair.now - last <= ka * 3, "server never closed");
        let permille = steps[i % steps.len()];
        i += 1;
        pair.advance(Duration::from_millis(u64::from(k) * u64::from(permille)));
        pair.run();
    }
    let (at, reason) = pair.server_app.closes[0].clone();
    assert_eq!(reason, CloseReason::KeepAliveTimeout);
    let limit = ka * 3 / 2;
    assert!(
        at - last >= limit,
        "closed {:?} after the last packet, before 1.5 x {k} s",
        at - last
    );
    assert!(
        at - last <= limit,
        "closed {:?} after the last packet, after 1.5 x {k} s",
        at - last
    );
}

proptest! {
    #![proptest_config(cases(200))]

    /// MQTT-3.1.2-23 (3.1.1): the client sends PINGREQ so that no more than
    /// Keep Alive passes between its packets; the server answers.
    #[test]
    fn mqtt311_3_1_2_23_client_pings_within_keep_alive(
        k in 1..=30u16,
        activity in prop::collection::vec((0..1000u32, prop::bool::weighted(0.3)), 1..30),
    ) {
        client_pings_within_keep_alive(ProtocolVersion::V3_1_1, k, &activity);
    }

    /// MQTT-3.1.2-20 (5.0): the same.
    #[test]
    fn mqtt5_3_1_2_20_client_pings_within_keep_alive(
        k in 1..=30u16,
        activity in prop::collection::vec((0..1000u32, prop::bool::weighted(0.3)), 1..30),
    ) {
        client_pings_within_keep_alive(ProtocolVersion::V5, k, &activity);
    }

    /// MQTT-3.1.2-23 (3.1.1): without PINGRESP the client gives up and
    /// reports `KeepAliveTimeout`.
    #[test]
    fn mqtt311_3_1_2_23_client_reports_keep_alive_timeout_without_pingresp(
        k in 1..=30u16,
        steps in prop::collection::vec(1..1500u32, 1..10),
    ) {
        client_reports_missing_pingresp(ProtocolVersion::V3_1_1, k, &steps);
    }

    /// MQTT-3.1.2-20 (5.0): the same.
    #[test]
    fn mqtt5_3_1_2_20_client_reports_keep_alive_timeout_without_pingresp(
        k in 1..=30u16,
        steps in prop::collection::vec(1..1500u32, 1..10),
    ) {
        client_reports_missing_pingresp(ProtocolVersion::V5, k, &steps);
    }

    /// MQTT-3.1.2-24 (3.1.1): the server closes a client silent for 1.5
    /// times the Keep Alive.
    #[test]
    fn mqtt311_3_1_2_24_server_closes_silent_client_after_one_and_a_half_keep_alive(
        k in 1..=30u16,
        before in prop::collection::vec((0..1500u32, any::<bool>()), 0..8),
        steps in prop::collection::vec(1..1500u32, 1..10),
    ) {
        server_closes_silent_client(ProtocolVersion::V3_1_1, k, &before, &steps);
    }

    /// MQTT-3.1.2-22 (5.0): the same.
    #[test]
    fn mqtt5_3_1_2_22_server_closes_silent_client_after_one_and_a_half_keep_alive(
        k in 1..=30u16,
        before in prop::collection::vec((0..1500u32, any::<bool>()), 0..8),
        steps in prop::collection::vec(1..1500u32, 1..10),
    ) {
        server_closes_silent_client(ProtocolVersion::V5, k, &before, &steps);
    }
}

// ---------------------------------------------------------------------------
// Clean Start discards the client's session when the CONNECT goes out
// ---------------------------------------------------------------------------

/// The client holds an unacknowledged QoS 2 message the server already
/// delivered. It restarts with Clean Start 1; the server receives that
/// CONNECT (and drops the session) but the CONNACK is lost. The client then
/// resumes with Clean Start 0: the server resumes the new, empty session,
/// so the old message must not be resent (it would be delivered twice); it
/// was reported lost when the clean CONNECT was sent.
fn clean_start_discards_before_connack(version: ProtocolVersion) {
    let mut pair = Pair::new(client_config(version, 5), server_config(5));
    pair.run();
    assert!(pair.client.is_connected());
    pair.s2c.hold = true; // the PUBREC never comes back
    pair.client_publish(message(
        "t/c",
        QoS::ExactlyOnce,
        7u32.to_be_bytes().to_vec(),
    ))
    .unwrap();
    pair.run();
    assert_eq!(pair.server_app.received.len(), 1);
    pair.drop_connection();
    pair.restart_client(true);
    pair.reconnect().unwrap();
    // Reported lost as soon as the clean CONNECT is sent.
    assert_eq!(
        pair.client_app.outbox.lost.len(),
        1,
        "{:?}",
        pair.client_app.events
    );
    pair.run(); // the server gets the CONNECT and drops the session; CONNACK held
    assert!(!pair.client.is_connected());
    pair.drop_connection();
    pair.restart_client(false);
    pair.s2c.hold = false;
    pair.reconnect().unwrap();
    pair.run();
    assert_eq!(pair.client_app.connected.last(), Some(&true));
    assert_eq!(
        pair.server_app.received.len(),
        1,
        "QoS 2 message delivered twice"
    );
    let resent = pair
        .wire
        .iter()
        .filter(|w| w.conn == 3 && matches!(&w.packet, Packet::Publish(_) | Packet::PubRel(_)))
        .count();
    assert_eq!(resent, 0, "the discarded session was resent");
}

#[test]
fn mqtt5_3_1_2_4_clean_start_discards_client_session_before_connack() {
    clean_start_discards_before_connack(ProtocolVersion::V5);
}

#[test]
fn mqtt311_3_1_2_6_clean_session_discards_client_session_before_connack() {
    clean_start_discards_before_connack(ProtocolVersion::V3_1_1);
}
