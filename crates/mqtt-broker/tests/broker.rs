//! Conformance tests of the broker core: every statement of layer `broker`
//! in the 3.1.1 and 5.0 normative lists, checked end to end through real
//! `mqtt-session` clients on the deterministic harness (`common`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::num::NonZeroU16;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use mqtt_broker::BrokerConfig;
use mqtt_session::client::Event as ClientEvent;
use mqtt_session::CloseReason;
use mqtt_wire::{
    Connect, DisconnectReasonCode, LastWill, MqttString, Packet, PayloadFormat, PubAckReasonCode,
    Publish, QoS, RetainHandling, SubAckReasonCode, SubscribeProperties, Subscription,
    SubscriptionOptions, TopicFilter, TopicName, UnsubAckReasonCode, UserProperties,
};

fn world() -> common::World {
    World::new(BrokerConfig::default())
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A connected 5.0 client subscribed to `filter` at QoS 2.
fn watcher(w: &mut World, name: &str, filter: &str) -> usize {
    let i = w.add(v5(name));
    w.connect(i);
    let ack = w.subscribe(i, filter, QoS::ExactlyOnce);
    assert_eq!(ack.reason_codes, vec![SubAckReasonCode::GrantedQoS2]);
    i
}

fn will(topic: &str, payload: &[u8]) -> LastWill {
    LastWill::new(
        TopicName::try_from(topic).unwrap(),
        Bytes::copy_from_slice(payload),
    )
}

fn with_will(mut c: Connect, w: LastWill) -> Connect {
    c.will = Some(w);
    c
}

fn with_delay(mut w: LastWill, delay: u32) -> LastWill {
    w.properties.will_delay_interval = Some(delay);
    w
}

fn session_present(w: &World, i: usize) -> bool {
    let ack = w.last_connack(i).expect("a CONNACK");
    assert_eq!(ack.reason_code, mqtt_wire::ConnectReasonCode::Success);
    ack.session_present
}

fn ids(m: &Publish) -> Vec<u32> {
    let mut v: Vec<u32> = m
        .properties
        .subscription_identifiers()
        .iter()
        .map(|i| i.get())
        .collect();
    v.sort_unstable();
    v
}

fn user_props(pairs: &[(&str, &str)]) -> UserProperties {
    let mut up = UserProperties::new();
    for (k, v) in pairs {
        up.push(
            MqttString::try_from(*k).unwrap(),
            MqttString::try_from(*v).unwrap(),
        );
    }
    up
}

fn pairs(up: &UserProperties) -> Vec<(String, String)> {
    up.iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.as_str().to_owned()))
        .collect()
}

// ---------------------------------------------------------------------
// MQTT 3.1.1: sessions
// ---------------------------------------------------------------------

#[test]
fn mqtt311_3_1_2_4_clean_session_0_resumes_and_keeps_session() {
    let mut w = world();
    let sub = w.add(persistent311("sub"));
    let publ = w.add(v311("pub"));
    w.connect(sub);
    assert!(!session_present(&w, sub));
    w.subscribe(sub, "a/#", QoS::AtLeastOnce);
    w.disconnect(sub, DisconnectReasonCode::NormalDisconnection);
    assert!(!w.is_open(sub));
    // The server kept the session (subscription included) after the
    // disconnection.
    w.connect(publ);
    w.publish(publ, msg("a/1", b"while away", QoS::AtLeastOnce));
    w.connect(sub);
    assert!(session_present(&w, sub));
    assert_eq!(w.take_payloads(sub), vec!["while away"]);
    w.publish(publ, msg("a/2", b"online", QoS::AtLeastOnce));
    assert_eq!(w.take_payloads(sub), vec!["online"]);
}

#[test]
fn mqtt311_3_1_2_5_offline_qos1_qos2_messages_stored() {
    let mut w = world();
    let sub = w.add(persistent311("sub"));
    let publ = w.add(v311("pub"));
    w.connect(sub);
    w.subscribe(sub, "t", QoS::ExactlyOnce);
    w.drop_conn(sub);
    w.connect(publ);
    w.publish(publ, msg("t", b"q0", QoS::AtMostOnce));
    w.publish(publ, msg("t", b"q1", QoS::AtLeastOnce));
    w.publish(publ, msg("t", b"q2", QoS::ExactlyOnce));
    w.connect(sub);
    let got = w.take(sub);
    // QoS 1 and 2 were stored; QoS 0 may be (it is not by default).
    let texts: Vec<_> = got.iter().map(text).collect();
    assert_eq!(texts, vec!["q1", "q2"]);
    assert_eq!(got[0].qos(), QoS::AtLeastOnce);
    assert_eq!(got[1].qos(), QoS::ExactlyOnce);
}

#[test]
fn mqtt311_3_1_2_6_clean_session_1_discards_and_is_never_reused() {
    let mut w = world();
    let sub = w.add(persistent311("sub"));
    let publ = w.add(v311("pub"));
    w.connect(publ);
    w.connect(sub);
    w.subscribe(sub, "t", QoS::AtLeastOnce);
    w.drop_conn(sub);
    w.publish(publ, msg("t", b"queued", QoS::AtLeastOnce));
    // Reconnect with CleanSession 1: the old session (subscription and
    // queued message) is gone.
    w.peers[sub].client =
        mqtt_session::client::Client::new(mqtt_session::client::ClientConfig::new(v311("sub")));
    w.connect(sub);
    assert!(!session_present(&w, sub));
    assert!(w.take(sub).is_empty());
    assert_eq!(w.stats().subscriptions, 0, "old subscription survived");
    assert_eq!(w.stats().sessions, 2);
    w.publish(publ, msg("t", b"after", QoS::AtLeastOnce));
    assert!(w.take(sub).is_empty(), "old subscription survived");
    // The clean session lives only for that connection.
    w.subscribe(sub, "t", QoS::AtLeastOnce);
    w.disconnect(sub, DisconnectReasonCode::NormalDisconnection);
    w.publish(publ, msg("t", b"gone", QoS::AtLeastOnce));
    w.peers[sub].client = mqtt_session::client::Client::new(
        mqtt_session::client::ClientConfig::new(persistent311("sub")),
    );
    w.connect(sub);
    assert!(!session_present(&w, sub), "a clean session was reused");
    assert!(w.take(sub).is_empty());
}

#[test]
fn mqtt311_3_1_2_7_retained_messages_survive_session_end() {
    let mut w = world();
    let publ = w.add(v311("pub"));
    w.connect(publ);
    w.publish(publ, retained("r/t", b"kept", QoS::AtLeastOnce));
    w.disconnect(publ, DisconnectReasonCode::NormalDisconnection);
    // The publisher's (clean) session is over; the retained message stays.
    assert_eq!(w.stats().sessions, 0);
    let sub = w.add(v311("sub"));
    w.connect(sub);
    w.subscribe(sub, "r/#", QoS::AtLeastOnce);
    let got = w.take(sub);
    assert_eq!(got.len(), 1);
    assert_eq!(text(&got[0]), "kept");
    assert!(got[0].retain);
}

#[test]
fn mqtt311_3_1_2_8_3_1_2_10_will_published_on_abrupt_close_then_removed() {
    let mut w = world();
    let watch = watcher(&mut w, "watch", "will/#");
    let dev = w.add(with_will(persistent311("dev"), will("will/dev", b"gone")));
    w.connect(dev);
    assert!(w.take(watch).is_empty(), "Will published while connected");
    w.drop_conn(dev);
    assert_eq!(w.take_payloads(watch), vec!["gone"]);
    // Published once: removed from the session. A reconnection without a
    // Will, then a second abrupt close, publishes nothing.
    let mut c = persistent311("dev");
    c.will = None;
    w.peers[dev].client =
        mqtt_session::client::Client::new(mqtt_session::client::ClientConfig::new(c));
    w.connect(dev);
    w.drop_conn(dev);
    assert!(w.take(watch).is_empty(), "Will published twice");
    assert_eq!(w.stats().wills_published, 1);
}

#[test]
fn mqtt311_3_1_2_10_3_14_4_3_will_discarded_on_disconnect() {
    let mut w = world();
    let watch = watcher(&mut w, "watch", "will/#");
    let dev = w.add(with_will(persistent311("dev"), will("will/dev", b"gone")));
    w.connect(dev);
    w.disconnect(dev, DisconnectReasonCode::NormalDisconnection);
    assert!(!w.is_open(dev));
    assert!(w.take(watch).is_empty(), "Will published after DISCONNECT");
    // And it does not come back with the session either.
    let mut c = persistent311("dev");
    c.will = None;
    w.peers[dev].client =
        mqtt_session::client::Client::new(mqtt_session::client::ClientConfig::new(c));
    w.connect(dev);
    assert!(session_present(&w, dev));
    w.drop_conn(dev);
    assert!(w.take(watch).is_empty());
    assert_eq!(w.stats().wills_published, 0);
}

#[test]
fn mqtt311_3_1_2_12_no_will_flag_nothing_published() {
    let mut w = world();
    let watch = watcher(&mut w, "watch", "#");
    let dev = w.add(v311("dev"));
    w.connect(dev);
    w.drop_conn(dev);
    assert!(w.take(watch).is_empty());
    assert_eq!(w.stats().wills_published, 0);
}

#[test]
fn mqtt311_3_1_2_16_3_1_2_17_will_retain_flag() {
    let mut w = world();
    let mut keep = will("will/keep", b"k");
    keep.retain = true;
    let plain = will("will/plain", b"p");
    let a = w.add(with_will(v311("a"), keep));
    let b = w.add(with_will(v311("b"), plain));
    w.connect(a);
    w.connect(b);
    let watch = watcher(&mut w, "watch", "will/#");
    w.drop_conn(a);
    w.drop_conn(b);
    assert_eq!(w.take_payloads(watch), vec!["k", "p"]);
    // Only the Will Retain 1 message is retained: a new subscriber gets it.
    let late = w.add(v311("late"));
    w.connect(late);
    w.subscribe(late, "will/#", QoS::AtLeastOnce);
    let got = w.take(late);
    assert_eq!(got.len(), 1);
    assert_eq!(topic(&got[0]), "will/keep");
    assert!(got[0].retain);
    assert_eq!(w.stats().retained_messages, 1);
}

#[test]
fn mqtt311_3_1_3_2_client_id_keys_the_session() {
    let mut w = world();
    let a = w.add(persistent311("alpha"));
    let b = w.add(persistent311("beta"));
    let publ = w.add(v311("pub"));
    w.connect(publ);
    w.connect(a);
    w.subscribe(a, "for/alpha", QoS::AtLeastOnce);
    w.drop_conn(a);
    // Another client id finds no session, and does not see alpha's.
    w.connect(b);
    assert!(!session_present(&w, b));
    w.publish(publ, msg("for/alpha", b"x", QoS::AtLeastOnce));
    assert!(w.take(b).is_empty());
    // The same client id, on a new transport, finds its session.
    w.connect(a);
    assert!(session_present(&w, a));
    assert_eq!(w.take_payloads(a), vec!["x"]);
}

#[test]
fn mqtt311_3_1_3_6_empty_client_id_gets_a_unique_one() {
    let mut w = world();
    let publ = w.add(v311("pub"));
    w.connect(publ);
    let mut anon = Vec::new();
    for n in 0..3 {
        let i = w.add(v311(""));
        let ack = w.connect(i).expect("CONNACK");
        assert_eq!(ack.reason_code, mqtt_wire::ConnectReasonCode::Success);
        w.subscribe(i, &format!("anon/{n}"), QoS::AtLeastOnce);
        anon.push(i);
    }
    // Treated as if the client had sent that id: each has its own session;
    // equal ids would have taken each other over.
    for &i in &anon {
        assert!(w.is_open(i));
    }
    let ids: std::collections::BTreeSet<_> = w
        .events
        .iter()
        .filter_map(|e| match e {
            mqtt_broker::Event::Connected { client_id, .. } => Some(client_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 4, "assigned ids not unique: {ids:?}");
    for n in 0..3 {
        w.publish(publ, msg(&format!("anon/{n}"), b"hi", QoS::AtLeastOnce));
    }
    for &i in &anon {
        assert_eq!(w.take(i).len(), 1);
    }
}

#[test]
fn mqtt311_3_1_4_2_same_client_id_disconnects_existing_client() {
    let mut w = world();
    let first = w.add(persistent311("dup"));
    let second = w.add(persistent311("dup"));
    w.connect(first);
    w.subscribe(first, "t", QoS::AtLeastOnce);
    w.connect(second);
    assert!(w.is_open(second));
    assert!(!w.is_open(first), "the existing client stayed connected");
    assert!(w.peers[first]
        .events
        .iter()
        .any(|e| matches!(e, ClientEvent::Disconnected(CloseReason::TransportClosed))));
    // 3.1.1 has no server DISCONNECT: the transport is just closed.
    assert!(w.wire_disconnects(first).is_empty());
    assert_eq!(w.stats().connections, 1);
}

#[test]
fn mqtt311_3_1_4_3_clean_session_applied_after_connect() {
    let mut w = world();
    let publ = w.add(v311("pub"));
    w.connect(publ);
    // Takeover with CleanSession 0: the session goes on.
    let a = w.add(persistent311("c"));
    w.connect(a);
    w.subscribe(a, "t", QoS::AtLeastOnce);
    let b = w.add(persistent311("c"));
    w.connect(b);
    assert!(session_present(&w, b));
    w.publish(publ, msg("t", b"1", QoS::AtLeastOnce));
    assert_eq!(w.take_payloads(b), vec!["1"]);
    // Takeover with CleanSession 1: the session is discarded.
    let c = w.add(v311("c"));
    w.connect(c);
    assert!(!session_present(&w, c));
    assert_eq!(w.stats().subscriptions, 0);
    w.publish(publ, msg("t", b"2", QoS::AtLeastOnce));
    assert!(w.take(c).is_empty());
    assert!(w.take(b).is_empty());
}

// ---------------------------------------------------------------------
// MQTT 3.1.1: PUBLISH, retained messages, subscriptions
// ---------------------------------------------------------------------

/// A subscriber's PUBACK is withheld, its connection drops and comes back:
/// the broker's retransmission carries DUP 1; a publisher's DUP 1 resend is
/// forwarded with DUP 0.
fn dup_scenario(w: &mut World, publ: usize, sub: usize) {
    w.connect(publ);
    w.connect(sub);
    w.subscribe(sub, "d", QoS::AtLeastOnce);
    // Publisher's copy arrives, its PUBACK is withheld, it reconnects and
    // resends with DUP 1.
    w.peers[publ].hold_in = true;
    w.publish(publ, msg("d", b"m", QoS::AtLeastOnce));
    w.drop_conn(publ);
    w.peers[publ].hold_in = false;
    w.connect(publ);
    let resent: Vec<_> = w.peers[publ]
        .wire_out
        .iter()
        .filter_map(|(n, p)| match p {
            Packet::Publish(m) if *n == 2 => Some(m.dup),
            _ => None,
        })
        .collect();
    assert_eq!(resent, vec![true], "the publisher did not resend with DUP");
    let first = w.wire_publishes(sub);
    assert!(!first.is_empty());
    assert!(
        first.iter().all(|m| !m.dup),
        "inbound DUP propagated: {first:?}"
    );
    // Now the subscriber's acknowledgement is lost: the retransmission on
    // the next connection is flagged DUP.
    w.take(sub);
    w.peers[sub].hold_out = true;
    w.publish(publ, msg("d", b"n", QoS::AtLeastOnce));
    w.drop_conn(sub);
    w.peers[sub].hold_out = false;
    let before = w.wire_publishes(sub).len();
    w.connect(sub);
    let after = w.wire_publishes(sub);
    let again: Vec<_> = after[before..].iter().collect();
    assert_eq!(again.len(), 1);
    assert_eq!(text(again[0]), "n");
    assert!(again[0].dup, "retransmission without DUP");
}

#[test]
fn mqtt311_3_3_1_3_dup_not_propagated() {
    let mut w = world();
    let publ = w.add(persistent311("pub"));
    let sub = w.add(persistent311("sub"));
    dup_scenario(&mut w, publ, sub);
}

#[test]
fn mqtt311_3_3_1_5_retained_stored_with_its_qos() {
    let mut w = world();
    let publ = w.add(v311("pub"));
    w.connect(publ);
    w.publish(publ, retained("r/a", b"one", QoS::AtLeastOnce));
    assert_eq!(w.stats().retained_messages, 1);
    // A later subscriber of a matching filter gets it, at the stored QoS
    // (bounded by its grant).
    let s2 = w.add(v311("s2"));
    w.connect(s2);
    w.subscribe(s2, "r/+", QoS::ExactlyOnce);
    let got = w.take(s2);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].qos(), QoS::AtLeastOnce);
    let s0 = w.add(v311("s0"));
    w.connect(s0);
    w.subscribe(s0, "r/#", QoS::AtMostOnce);
    let got = w.take(s0);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].qos(), QoS::AtMostOnce);
}

#[test]
fn mqtt311_3_3_1_6_new_subscription_gets_latest_retained_of_each_topic() {
    let mut w = world();
    let publ = w.add(v311("pub"));
    w.connect(publ);
    w.publish(publ, retained("r/a", b"a1", QoS::AtMostOnce));
    w.publish(publ, retained("r/a", b"a2", QoS::AtMostOnce));
    w.publish(publ, retained("r/b", b"b1", QoS::AtLeastOnce));
    w.publish(publ, retained("x/c", b"c1", QoS::AtLeastOnce));
    let sub = w.add(v311("sub"));
    w.connect(sub);
    w.subscribe(sub, "r/#", QoS::AtLeastOnce);
    let mut got: Vec<_> = w.take(sub).iter().map(|m| (topic(m), text(m))).collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("r/a".to_owned(), "a2".to_owned()),
            ("r/b".to_owned(), "b1".to_owned())
        ]
    );
}

#[test]
fn mqtt311_3_3_1_7_retained_qos0_replaces_previous() {
    let mut w = world();
    let publ = w.add(v311("pub"));
    w.connect(publ);
    w.publish(publ, retained("r", b"old", QoS::ExactlyOnce));
    w.publish(publ, retained("r", b"new", QoS::AtMostOnce));
    let sub = w.add(v311("sub"));
    w.connect(sub);
    w.subscribe(sub, "r", QoS::ExactlyOnce);
    let got = w.take(sub);
    assert_eq!(got.len(), 1);
    assert_eq!(text(&got[0]), "new");
    assert_eq!(got[0].qos(), QoS::AtMostOnce);
}

#[test]
fn mqtt311_3_3_1_8_3_3_1_9_retain_flag_new_vs_established_subscription() {
    let mut w = world();
    let publ = w.add(v311("pub"));
    let sub = w.add(v311("sub"));
    w.connect(publ);
    w.connect(sub);
    w.publish(publ, retained("r", b"before", QoS::AtLeastOnce));
    w.subscribe(sub, "r", QoS::AtLeastOnce);
    let got = w.take(sub);
    assert_eq!(got.len(), 1);
    assert!(got[0].retain, "sent for a new subscription: RETAIN 1");
    w.publish(publ, retained("r", b"live", QoS::AtLeastOnce));
    let got = w.take(sub);
    assert_eq!(got.len(), 1);
    assert!(!got[0].retain, "established subscription: RETAIN 0");
    // On the wire too.
    let wire = w.wire_publishes(sub);
    assert!(wire[0].retain && !wire[1].retain);
}

#[test]
fn mqtt311_3_3_1_10_3_3_1_11_empty_retained_forwarded_and_clears() {
    let mut w = world();
    let publ = w.add(v311("pub"));
    let sub = w.add(v311("sub"));
    w.connect(publ);
    w.connect(sub);
    w.publish(publ, retained("r", b"x", QoS::AtLeastOnce));
    w.subscribe(sub, "r", QoS::AtLeastOnce);
    w.take(sub);
    w.publish(publ, retained("r", b"", QoS::AtLeastOnce));
    // Forwarded normally.
    let got = w.take(sub);
    assert_eq!(got.len(), 1);
    assert!(got[0].payload.is_empty());
    // And the retained message is gone; the empty one is not stored.
    assert_eq!(w.stats().retained_messages, 0);
    let late = w.add(v311("late"));
    w.connect(late);
    w.subscribe(late, "r", QoS::AtLeastOnce);
    assert!(w.take(late).is_empty());
    // An empty retained message on a topic with none is not stored either.
    w.publish(publ, retained("other", b"", QoS::AtMostOnce));
    assert_eq!(w.stats().retained_messages, 0);
}

#[test]
fn mqtt311_3_3_1_12_non_retained_publish_leaves_retained_alone() {
    let mut w = world();
    let publ = w.add(v311("pub"));
    w.connect(publ);
    w.publish(publ, retained("r", b"kept", QoS::AtLeastOnce));
    w.publish(publ, msg("r", b"plain", QoS::AtLeastOnce));
    w.publish(publ, msg("r", b"", QoS::AtLeastOnce));
    w.publish(publ, msg("fresh", b"plain", QoS::AtLeastOnce));
    assert_eq!(w.stats().retained_messages, 1);
    let sub = w.add(v311("sub"));
    w.connect(sub);
    w.subscribe(sub, "#", QoS::AtLeastOnce);
    assert_eq!(w.take_payloads(sub), vec!["kept"]);
}

/// Publishes to several topics; the subscriber to `filter` receives
/// exactly the matching ones, each named with its own topic.
fn topic_match_scenario(w: &mut World, publ: usize, sub: usize) {
    w.connect(publ);
    w.connect(sub);
    w.subscribe(sub, "a/+/c", QoS::AtLeastOnce);
    w.subscribe(sub, "z/#", QoS::AtLeastOnce);
    for (t, _) in [
        ("a/b/c", true),
        ("a/b/d", false),
        ("a/x/c", true),
        ("a/b/c/d", false),
        ("z", true),
        ("z/q/r", true),
        ("zz", false),
        ("a/b/c", true),
    ] {
        w.publish(publ, msg(t, t.as_bytes(), QoS::AtLeastOnce));
    }
    let got = w.take(sub);
    let topics: Vec<_> = got.iter().map(topic).collect();
    assert_eq!(topics, vec!["a/b/c", "a/x/c", "z", "z/q/r", "a/b/c"]);
    for m in &got {
        // The topic name is the published one (the payload carries it).
        assert_eq!(topic(m), text(m));
    }
}

#[test]
fn mqtt311_3_3_2_3_topic_name_matches_subscription() {
    let mut w = world();
    let publ = w.add(v311("pub"));
    let sub = w.add(v311("sub"));
    topic_match_scenario(&mut w, publ, sub);
}

#[test]
fn mqtt311_3_3_5_1_overlapping_subscriptions_highest_qos() {
    let mut w = world();
    let publ = w.add(v311("pub"));
    let sub = w.add(v311("sub"));
    w.connect(publ);
    w.connect(sub);
    w.subscribe(sub, "o/+", QoS::AtMostOnce);
    w.subscribe(sub, "o/#", QoS::ExactlyOnce);
    w.subscribe(sub, "o/x", QoS::AtLeastOnce);
    w.publish(publ, msg("o/x", b"m", QoS::ExactlyOnce));
    let got = w.take(sub);
    assert!(!got.is_empty());
    assert!(
        got.iter().any(|m| m.qos() == QoS::ExactlyOnce),
        "highest maximum QoS not honoured: {got:?}"
    );
    // This broker sends one copy.
    assert_eq!(got.len(), 1);
}

#[test]
fn mqtt311_3_8_4_3_resubscribe_replaces_and_resends_retained() {
    let mut w = world();
    let publ = w.add(v311("pub"));
    let sub = w.add(v311("sub"));
    w.connect(publ);
    w.connect(sub);
    w.publish(publ, retained("r/1", b"ret", QoS::ExactlyOnce));
    w.subscribe(sub, "r/+", QoS::AtMostOnce);
    let got = w.take(sub);
    assert_eq!((got.len(), got[0].qos()), (1, QoS::AtMostOnce));
    let ack = w.subscribe(sub, "r/+", QoS::ExactlyOnce);
    assert_eq!(ack.reason_codes, vec![SubAckReasonCode::GrantedQoS2]);
    // Retained messages re-sent; the subscription replaced (new QoS, one
    // subscription, one copy).
    let got = w.take(sub);
    assert_eq!(got.len(), 1);
    assert_eq!(text(&got[0]), "ret");
    assert_eq!(got[0].qos(), QoS::ExactlyOnce);
    assert_eq!(w.stats().subscriptions, 1);
    w.publish(publ, msg("r/1", b"live", QoS::ExactlyOnce));
    let got = w.take(sub);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].qos(), QoS::ExactlyOnce);
}

/// Delivered QoS = min(published, granted), for every pair.
fn downgrade_scenario(w: &mut World, publ: usize, subs: [usize; 3]) {
    w.connect(publ);
    let qs = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];
    for (s, q) in subs.iter().zip(qs) {
        w.connect(*s);
        w.subscribe(*s, "q", q);
    }
    for pq in qs {
        w.publish(publ, msg("q", b"m", pq));
        for (s, sq) in subs.iter().zip(qs) {
            let got = w.take(*s);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].qos(), pq.min(sq), "published {pq:?}, granted {sq:?}");
        }
    }
}

#[test]
fn mqtt311_3_8_4_6_delivered_qos_is_min_of_published_and_granted() {
    let mut w = world();
    let publ = w.add(v311("pub"));
    let subs = [w.add(v311("s0")), w.add(v311("s1")), w.add(v311("s2"))];
    downgrade_scenario(&mut w, publ, subs);
}

fn unsubscribe_scenario(w: &mut World, publ: usize, sub: usize, v5: bool) {
    w.connect(publ);
    w.connect(sub);
    w.subscribe(sub, "u/+", QoS::AtLeastOnce);
    // Not the same characters: nothing removed, even though "u/x" matches.
    let ack = w.unsubscribe(sub, &["u/x"]);
    if v5 {
        assert_eq!(
            ack.reason_codes,
            vec![UnsubAckReasonCode::NoSubscriptionExisted]
        );
    }
    w.publish(publ, msg("u/x", b"1", QoS::AtLeastOnce));
    assert_eq!(w.take_payloads(sub), vec!["1"]);
    let ack = w.unsubscribe(sub, &["u/+"]);
    if v5 {
        assert_eq!(ack.reason_codes, vec![UnsubAckReasonCode::Success]);
    }
    assert_eq!(w.stats().subscriptions, 0);
    w.publish(publ, msg("u/x", b"2", QoS::AtLeastOnce));
    assert!(w.take(sub).is_empty());
}

#[test]
fn mqtt311_3_10_4_1_unsubscribe_compares_characters() {
    let mut w = world();
    let publ = w.add(v311("pub"));
    let sub = w.add(v311("sub"));
    unsubscribe_scenario(&mut w, publ, sub, false);
}

/// After UNSUBSCRIBE, nothing more is queued through that subscription,
/// also while the session is offline.
fn no_queue_after_unsubscribe(w: &mut World, publ: usize, sub: usize) {
    w.connect(publ);
    w.connect(sub);
    w.subscribe(sub, "k/1", QoS::AtLeastOnce);
    w.subscribe(sub, "k/2", QoS::AtLeastOnce);
    w.unsubscribe(sub, &["k/1"]);
    w.drop_conn(sub);
    w.publish(publ, msg("k/1", b"no", QoS::AtLeastOnce));
    w.publish(publ, msg("k/2", b"yes", QoS::AtLeastOnce));
    w.connect(sub);
    assert!(session_present(w, sub));
    assert_eq!(w.take_payloads(sub), vec!["yes"]);
}

#[test]
fn mqtt311_3_10_4_2_no_new_messages_after_unsubscribe() {
    let mut w = world();
    let publ = w.add(v311("pub"));
    let sub = w.add(persistent311("sub"));
    no_queue_after_unsubscribe(&mut w, publ, sub);
}

#[test]
fn mqtt311_4_1_0_1_4_1_0_2_session_state_kept_while_connected() {
    let mut w = world();
    let publ = w.add(v311("pub"));
    // CleanSession 1: the session lasts as long as the connection, however
    // long that is (keep-alive pings keep it up).
    let sub = w.add(v311("sub"));
    w.connect(publ);
    w.connect(sub);
    w.subscribe(sub, "s", QoS::AtLeastOnce);
    w.advance(secs(3 * 3600));
    assert!(w.is_open(sub) && w.is_open(publ));
    w.publish(publ, msg("s", b"late", QoS::AtLeastOnce));
    assert_eq!(w.take_payloads(sub), vec!["late"]);
    // CleanSession 0: kept across the disconnection too.
    let p = w.add(persistent311("p"));
    w.connect(p);
    w.subscribe(p, "s", QoS::AtLeastOnce);
    w.drop_conn(p);
    w.advance(secs(3600));
    w.publish(publ, msg("s", b"queued", QoS::AtLeastOnce));
    w.connect(p);
    assert!(session_present(&w, p));
    assert_eq!(w.take_payloads(p), vec!["queued"]);
}

/// A message goes into every matching session: online, offline, several
/// filters.
fn ownership_scenario(w: &mut World, publ: usize, online: usize, offline: usize, other: usize) {
    w.connect(publ);
    w.connect(online);
    w.connect(offline);
    w.connect(other);
    w.subscribe(online, "m/+", QoS::AtLeastOnce);
    w.subscribe(offline, "m/#", QoS::ExactlyOnce);
    w.subscribe(other, "n/#", QoS::ExactlyOnce);
    w.drop_conn(offline);
    w.publish(publ, msg("m/1", b"x", QoS::ExactlyOnce));
    assert_eq!(w.take_payloads(online), vec!["x"]);
    assert!(w.take(other).is_empty());
    w.connect(offline);
    assert_eq!(w.take_payloads(offline), vec!["x"]);
}

#[test]
fn mqtt311_4_5_0_1_message_added_to_every_matching_session() {
    let mut w = world();
    let publ = w.add(v311("pub"));
    let online = w.add(v311("on"));
    let offline = w.add(persistent311("off"));
    let other = w.add(v311("other"));
    ownership_scenario(&mut w, publ, online, offline, other);
}

/// Two publishers, two topics, QoS 1 and 2, a slow subscriber (Receive
/// Maximum 2, manual acknowledgements) that also goes offline: per
/// publisher, topic and QoS the order of arrival is kept.
fn order_scenario(w: &mut World, pubs: [usize; 2], sub: usize) {
    for p in pubs {
        w.connect(p);
    }
    w.connect(sub);
    w.subscribe(sub, "o/#", QoS::ExactlyOnce);
    let mut sent = Vec::new();
    for n in 0..40u32 {
        let p = pubs[(n % 2) as usize];
        let t = if n % 3 == 0 { "o/a" } else { "o/b" };
        let q = if n % 5 == 0 {
            QoS::ExactlyOnce
        } else {
            QoS::AtLeastOnce
        };
        let body = format!("{p}:{t}:{}:{n}", q as u8);
        w.publish(p, msg(t, body.as_bytes(), q));
        sent.push(body);
        if n == 17 {
            w.drop_conn(sub);
        }
        if n == 29 {
            w.connect(sub);
        }
        // Acknowledge what arrived (manual mode).
        ack_all(w, sub);
    }
    for _ in 0..50 {
        ack_all(w, sub);
    }
    let got: Vec<String> = w.take(sub).iter().map(text).collect();
    // First deliveries, grouped by (publisher, topic, QoS).
    let mut seen = std::collections::BTreeSet::new();
    let mut first = Vec::new();
    for g in got {
        if seen.insert(g.clone()) {
            first.push(g);
        }
    }
    assert_eq!(first.len(), sent.len(), "lost messages");
    let key = |s: &String| s.rsplit_once(':').unwrap().0.to_owned();
    let num = |s: &String| s.rsplit_once(':').unwrap().1.parse::<u32>().unwrap();
    let mut last: std::collections::BTreeMap<String, u32> = Default::default();
    for m in &first {
        if let Some(prev) = last.insert(key(m), num(m)) {
            assert!(prev < num(m), "out of order: {m} after {prev}; {first:?}");
        }
    }
}

fn ack_all(w: &mut World, i: usize) {
    let now = w.now;
    let pending: Vec<_> = w.peers[i]
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Publish(m) => m.packet_id(),
            _ => None,
        })
        .collect();
    w.peers[i]
        .events
        .retain(|e| !matches!(e, ClientEvent::Publish(_)));
    for id in pending {
        let _ = w.peers[i].client.ack(now, id, PubAckReasonCode::Success);
    }
    w.run();
}

#[test]
fn mqtt311_4_6_0_5_4_6_0_6_topics_ordered_per_publisher() {
    let mut w = world();
    let pubs = [w.add(v311("p1")), w.add(v311("p2"))];
    let sub = w.add_manual(persistent311("sub"));
    order_scenario(&mut w, pubs, sub);
}

// ---------------------------------------------------------------------
// MQTT 5.0: sessions
// ---------------------------------------------------------------------

#[test]
fn mqtt5_3_1_2_4_clean_start_discards_existing_session() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    w.connect(publ);
    let sub = w.add(persistent5("sub", 3600));
    w.connect(sub);
    w.subscribe(sub, "t", QoS::AtLeastOnce);
    w.drop_conn(sub);
    w.publish(publ, msg("t", b"queued", QoS::AtLeastOnce));
    let mut c = persistent5("sub", 3600);
    c.clean_start = true;
    let fresh = w.add(c);
    w.connect(fresh);
    assert!(!session_present(&w, fresh));
    assert!(
        w.take(fresh).is_empty(),
        "queued message of the old session"
    );
    w.publish(publ, msg("t", b"after", QoS::AtLeastOnce));
    assert!(w.take(fresh).is_empty(), "subscription of the old session");
    assert_eq!(w.stats().subscriptions, 0);
}

#[test]
fn mqtt5_3_1_2_5_clean_start_0_resumes_session() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    w.connect(publ);
    let sub = w.add(persistent5("sub", 3600));
    w.connect(sub);
    w.subscribe(sub, "t", QoS::ExactlyOnce);
    // An unacknowledged message in flight, and one queued while offline.
    w.peers[sub].hold_out = true;
    w.publish(publ, msg("t", b"in flight", QoS::ExactlyOnce));
    w.drop_conn(sub);
    w.peers[sub].hold_out = false;
    w.publish(publ, msg("t", b"queued", QoS::ExactlyOnce));
    w.connect(sub);
    assert!(session_present(&w, sub));
    // Both arrive, the first exactly once despite its retransmission.
    assert_eq!(w.take_payloads(sub), vec!["in flight", "queued"]);
    let wire: Vec<_> = w
        .wire_publishes(sub)
        .iter()
        .map(|m| (text(m), m.dup))
        .collect();
    assert_eq!(
        wire,
        vec![
            ("in flight".to_owned(), false),
            ("in flight".to_owned(), true),
            ("queued".to_owned(), false)
        ]
    );
}

#[test]
fn mqtt5_3_1_2_6_clean_start_0_without_session_creates_one() {
    let mut w = world();
    let sub = w.add(persistent5("new", 3600));
    w.connect(sub);
    assert!(!session_present(&w, sub));
    assert_eq!(w.stats().sessions, 1);
    w.subscribe(sub, "t", QoS::AtLeastOnce);
    w.drop_conn(sub);
    // The new session is the one resumed next time.
    w.connect(sub);
    assert!(session_present(&w, sub));
}

#[test]
fn mqtt5_3_1_2_7_will_stored_with_the_session() {
    let mut w = world();
    let watch = watcher(&mut w, "watch", "will/#");
    let dev = w.add(with_will(
        persistent5("dev", 600),
        with_delay(will("will/dev", b"bye"), 30),
    ));
    w.connect(dev);
    w.drop_conn(dev);
    // The connection is gone; the Will lives on in the session and goes out
    // when its delay passes.
    assert!(w.take(watch).is_empty());
    assert_eq!(w.stats().sessions, 2);
    w.advance(secs(30));
    assert_eq!(w.take_payloads(watch), vec!["bye"]);
}

#[test]
fn mqtt5_3_1_2_8_will_published_after_will_delay() {
    let mut w = world();
    let watch = watcher(&mut w, "watch", "will/#");
    let dev = w.add(with_will(
        persistent5("dev", 600),
        with_delay(will("will/dev", b"bye"), 10),
    ));
    w.connect(dev);
    w.drop_conn(dev);
    w.advance(secs(9));
    assert!(w.take(watch).is_empty(), "Will before its delay");
    w.advance(secs(1));
    assert_eq!(w.take_payloads(watch), vec!["bye"]);
    w.advance(secs(1000));
    assert!(w.take(watch).is_empty(), "Will published twice");
}

#[test]
fn mqtt5_3_1_2_8_will_published_when_session_ends_first() {
    let mut w = world();
    let watch = watcher(&mut w, "watch", "will/#");
    let dev = w.add(with_will(
        persistent5("dev", 5),
        with_delay(will("will/dev", b"bye"), 100),
    ));
    w.connect(dev);
    w.drop_conn(dev);
    w.advance(secs(4));
    assert!(w.take(watch).is_empty());
    w.advance(secs(1));
    assert_eq!(w.take_payloads(watch), vec!["bye"]);
    assert_eq!(w.stats().sessions, 1, "the session did not end");
    // Session Expiry 0: the session ends with the connection, so the Will
    // goes out at once whatever its delay.
    let d2 = w.add(with_will(
        v5("d2"),
        with_delay(will("will/d2", b"now"), 100),
    ));
    w.connect(d2);
    w.drop_conn(d2);
    assert_eq!(w.take_payloads(watch), vec!["now"]);
}

#[test]
fn mqtt5_3_1_2_8_no_will_after_normal_disconnect_or_reconnect() {
    let mut w = world();
    let watch = watcher(&mut w, "watch", "will/#");
    let a = w.add(with_will(v5("a"), will("will/a", b"a")));
    w.connect(a);
    w.disconnect(a, DisconnectReasonCode::NormalDisconnection);
    let b = w.add(with_will(
        persistent5("b", 600),
        with_delay(will("will/b", b"b"), 10),
    ));
    w.connect(b);
    w.drop_conn(b);
    w.advance(secs(5));
    w.connect(b);
    w.advance(secs(60));
    assert!(w.take(watch).is_empty());
    assert_eq!(w.stats().wills_published, 0);
}

#[test]
fn mqtt5_3_1_2_10_will_deleted_once_published_or_on_disconnect_0x00() {
    let mut w = world();
    let watch = watcher(&mut w, "watch", "will/#");
    // Published once, then gone: the resumed session (without a new Will)
    // publishes nothing on the next abrupt close.
    let a = w.add(with_will(persistent5("a", 600), will("will/a", b"a")));
    w.connect(a);
    w.drop_conn(a);
    assert_eq!(w.take_payloads(watch), vec!["a"]);
    let mut c = persistent5("a", 600);
    c.will = None;
    w.peers[a].client =
        mqtt_session::client::Client::new(mqtt_session::client::ClientConfig::new(c));
    w.connect(a);
    assert!(session_present(&w, a));
    w.drop_conn(a);
    w.advance(secs(700));
    assert!(w.take(watch).is_empty());
    // DISCONNECT 0x00 deletes a Will even with a delay and a session that
    // lives on.
    let b = w.add(with_will(
        persistent5("b", 600),
        with_delay(will("will/b", b"b"), 5),
    ));
    w.connect(b);
    w.disconnect(b, DisconnectReasonCode::NormalDisconnection);
    w.advance(secs(700));
    assert!(w.take(watch).is_empty());
    assert_eq!(w.stats().wills_published, 1);
}

#[test]
fn mqtt5_3_1_2_14_3_1_2_15_will_retain_flag() {
    let mut w = world();
    let mut keep = will("will/keep", b"k");
    keep.retain = true;
    let a = w.add(with_will(v5("a"), keep));
    let b = w.add(with_will(v5("b"), will("will/plain", b"p")));
    w.connect(a);
    w.connect(b);
    let mut o = SubscriptionOptions::new(QoS::AtLeastOnce);
    o.retain_as_published = true;
    let watch = w.add(v5("watch"));
    w.connect(watch);
    w.subscribe_opts(watch, "will/#", o, None);
    w.drop_conn(a);
    w.drop_conn(b);
    // With Retain As Published the watcher sees the flag the broker used.
    let got: Vec<_> = w.take(watch).iter().map(|m| (text(m), m.retain)).collect();
    assert_eq!(got, vec![("k".to_owned(), true), ("p".to_owned(), false)]);
    let late = w.add(v5("late"));
    w.connect(late);
    w.subscribe(late, "will/#", QoS::AtLeastOnce);
    assert_eq!(w.take_payloads(late), vec!["k"]);
}

#[test]
fn mqtt5_3_1_2_23_session_kept_while_expiry_above_0() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    w.connect(publ);
    let keep = w.add(persistent5("keep", 60));
    let zero = w.add(persistent5("zero", 0));
    for i in [keep, zero] {
        w.connect(i);
        w.subscribe(i, "t", QoS::AtLeastOnce);
        w.disconnect(i, DisconnectReasonCode::NormalDisconnection);
    }
    w.publish(publ, msg("t", b"m", QoS::AtLeastOnce));
    w.advance(secs(59));
    w.connect(keep);
    assert!(session_present(&w, keep));
    assert_eq!(w.take_payloads(keep), vec!["m"]);
    w.connect(zero);
    assert!(!session_present(&w, zero));
    assert!(w.take(zero).is_empty());
}

#[test]
fn mqtt5_3_1_3_2_client_id_keys_the_session() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    w.connect(publ);
    let a = w.add(persistent5("alpha", 600));
    let b = w.add(persistent5("beta", 600));
    w.connect(a);
    w.subscribe(a, "for/alpha", QoS::AtLeastOnce);
    w.drop_conn(a);
    w.connect(b);
    assert!(!session_present(&w, b));
    w.publish(publ, msg("for/alpha", b"x", QoS::AtLeastOnce));
    assert!(w.take(b).is_empty());
    // A different Client object with the same id finds the session.
    let a2 = w.add(persistent5("alpha", 600));
    w.connect(a2);
    assert!(session_present(&w, a2));
    assert_eq!(w.take_payloads(a2), vec!["x"]);
}

#[test]
fn mqtt5_3_1_3_6_assigned_client_ids_are_unique() {
    // Learn what a fresh broker assigns first ...
    let mut probe = world();
    let p = probe.add(v5(""));
    let first = probe
        .connect(p)
        .unwrap()
        .properties
        .assigned_client_identifier
        .expect("Assigned Client Identifier");
    // ... and make that id taken by a real client before asking.
    let mut w = world();
    let squatter = w.add(persistent5(first.as_str(), 600));
    w.connect(squatter);
    w.drop_conn(squatter);
    let mut seen = std::collections::BTreeSet::new();
    seen.insert(first.clone());
    for _ in 0..5 {
        let i = w.add(persistent5("", 600));
        let ack = w.connect(i).unwrap();
        let id = ack
            .properties
            .assigned_client_identifier
            .expect("Assigned Client Identifier");
        assert!(seen.insert(id.clone()), "{id:?} assigned twice");
        assert_eq!(w.peers[i].client.server_limits().client_id, id);
        assert!(w.is_open(i));
    }
    // The squatter's session was not taken over by an assigned id.
    let again = w.add(persistent5(first.as_str(), 600));
    w.connect(again);
    assert!(session_present(&w, again));
}

#[test]
fn mqtt5_3_1_3_9_no_will_if_reconnected_before_delay() {
    let mut w = world();
    let watch = watcher(&mut w, "watch", "will/#");
    let dev = w.add(with_will(
        persistent5("dev", 600),
        with_delay(will("will/dev", b"bye"), 20),
    ));
    w.connect(dev);
    w.drop_conn(dev);
    w.advance(secs(19));
    w.connect(dev);
    assert!(session_present(&w, dev));
    w.advance(secs(100));
    assert!(w.take(watch).is_empty());
    // The new connection's own Will still works.
    w.drop_conn(dev);
    w.advance(secs(20));
    assert_eq!(w.take_payloads(watch), vec!["bye"]);
}

#[test]
fn mqtt5_3_1_3_10_will_user_properties_in_order() {
    let mut w = world();
    let watch = watcher(&mut w, "watch", "will/#");
    let mut wl = will("will/dev", b"bye");
    let order = [("k", "1"), ("a", "2"), ("k", "3"), ("z", "")];
    wl.properties.user_properties = user_props(&order);
    wl.properties.content_type = Some(MqttString::from_static("text/plain"));
    wl.qos = QoS::AtLeastOnce;
    let dev = w.add(with_will(v5("dev"), wl));
    w.connect(dev);
    w.drop_conn(dev);
    let got = w.take(watch);
    assert_eq!(got.len(), 1);
    let want: Vec<_> = order
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(pairs(&got[0].properties.user_properties()), want);
    assert_eq!(got[0].properties.content_type().unwrap(), "text/plain");
    assert_eq!(got[0].qos(), QoS::AtLeastOnce);
}

#[test]
fn mqtt5_3_1_4_3_takeover_sends_0x8e_and_closes_old_connection() {
    let mut w = world();
    let old = w.add(persistent5("same", 600));
    let new = w.add(persistent5("same", 600));
    w.connect(old);
    w.subscribe(old, "t", QoS::AtLeastOnce);
    w.connect(new);
    assert!(session_present(&w, new));
    let d = w.wire_disconnects(old);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].reason_code, DisconnectReasonCode::SessionTakenOver);
    assert!(!w.is_open(old));
    assert!(w.peers[old].client.is_closed());
    assert!(w.is_open(new));
    assert_eq!(w.stats().connections, 1);
    assert!(w
        .events
        .iter()
        .any(|e| matches!(e, mqtt_broker::Event::Close(_))));
}

#[test]
fn mqtt5_3_1_4_4_clean_start_applied_after_connect() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    w.connect(publ);
    let a = w.add(persistent5("c", 600));
    w.connect(a);
    w.subscribe(a, "t", QoS::AtLeastOnce);
    // Takeover, Clean Start 0: resumed.
    let b = w.add(persistent5("c", 600));
    w.connect(b);
    assert!(session_present(&w, b));
    w.publish(publ, msg("t", b"1", QoS::AtLeastOnce));
    assert_eq!(w.take_payloads(b), vec!["1"]);
    // Takeover, Clean Start 1: discarded.
    let mut cc = persistent5("c", 600);
    cc.clean_start = true;
    let c = w.add(cc);
    w.connect(c);
    assert!(!session_present(&w, c));
    w.publish(publ, msg("t", b"2", QoS::AtLeastOnce));
    assert!(w.take(c).is_empty());
}

// ---------------------------------------------------------------------
// MQTT 5.0: PUBLISH and retained messages
// ---------------------------------------------------------------------

#[test]
fn mqtt5_3_3_1_3_outgoing_dup_only_for_retransmission() {
    let mut w = world();
    let publ = w.add(persistent5("pub", 600));
    let sub = w.add(persistent5("sub", 600));
    dup_scenario(&mut w, publ, sub);
}

#[test]
fn mqtt5_3_3_1_5_retained_stored_and_replaced() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    w.connect(publ);
    w.publish(publ, retained("r", b"one", QoS::AtLeastOnce));
    w.publish(publ, retained("r", b"two", QoS::AtLeastOnce));
    assert_eq!(w.stats().retained_messages, 1);
    let sub = w.add(v5("sub"));
    w.connect(sub);
    w.subscribe(sub, "r", QoS::AtLeastOnce);
    assert_eq!(w.take_payloads(sub), vec!["two"]);
}

#[test]
fn mqtt5_3_3_1_6_empty_retained_forwarded_and_clears() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    let sub = w.add(v5("sub"));
    w.connect(publ);
    w.connect(sub);
    w.publish(publ, retained("r", b"x", QoS::AtLeastOnce));
    w.subscribe(sub, "r", QoS::AtLeastOnce);
    w.take(sub);
    w.publish(publ, retained("r", b"", QoS::AtLeastOnce));
    let got = w.take(sub);
    assert_eq!(got.len(), 1);
    assert!(got[0].payload.is_empty());
    let late = w.add(v5("late"));
    w.connect(late);
    w.subscribe(late, "r", QoS::AtLeastOnce);
    assert!(w.take(late).is_empty());
    assert_eq!(w.stats().retained_messages, 0);
}

#[test]
fn mqtt5_3_3_1_7_zero_byte_message_never_retained() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    w.connect(publ);
    w.publish(publ, retained("e", b"", QoS::ExactlyOnce));
    assert_eq!(w.stats().retained_messages, 0);
    let sub = w.add(v5("sub"));
    w.connect(sub);
    w.subscribe(sub, "#", QoS::ExactlyOnce);
    assert!(w.take(sub).is_empty());
}

#[test]
fn mqtt5_3_3_1_8_retain_0_does_not_touch_retained() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    w.connect(publ);
    w.publish(publ, retained("r", b"kept", QoS::AtLeastOnce));
    w.publish(publ, msg("r", b"other", QoS::AtLeastOnce));
    w.publish(publ, msg("r", b"", QoS::AtLeastOnce));
    w.publish(publ, msg("n", b"new", QoS::AtLeastOnce));
    let sub = w.add(v5("sub"));
    w.connect(sub);
    w.subscribe(sub, "#", QoS::AtLeastOnce);
    assert_eq!(w.take_payloads(sub), vec!["kept"]);
    assert_eq!(w.stats().retained_messages, 1);
}

fn sub_rh(w: &mut World, i: usize, filter: &str, rh: RetainHandling) -> Vec<String> {
    let mut o = SubscriptionOptions::new(QoS::AtLeastOnce);
    o.retain_handling = rh;
    w.subscribe_opts(i, filter, o, None);
    w.take_payloads(i)
}

#[test]
fn mqtt5_3_3_1_9_retain_handling_0_sends_retained_at_subscribe() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    w.connect(publ);
    w.publish(publ, retained("r/a", b"a", QoS::AtLeastOnce));
    let sub = w.add(v5("sub"));
    w.connect(sub);
    assert_eq!(
        sub_rh(&mut w, sub, "r/#", RetainHandling::SendAtSubscribe),
        vec!["a"]
    );
    // Also when the subscription already exists.
    assert_eq!(
        sub_rh(&mut w, sub, "r/#", RetainHandling::SendAtSubscribe),
        vec!["a"]
    );
    let got = w.wire_publishes(sub);
    assert!(got.iter().all(|m| m.retain));
}

#[test]
fn mqtt5_3_3_1_10_retain_handling_1_only_for_new_subscription() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    w.connect(publ);
    w.publish(publ, retained("r/a", b"a", QoS::AtLeastOnce));
    let sub = w.add(v5("sub"));
    w.connect(sub);
    assert_eq!(
        sub_rh(&mut w, sub, "r/#", RetainHandling::SendIfNew),
        vec!["a"]
    );
    assert!(sub_rh(&mut w, sub, "r/#", RetainHandling::SendIfNew).is_empty());
    // A different filter is a new subscription.
    assert_eq!(
        sub_rh(&mut w, sub, "r/+", RetainHandling::SendIfNew),
        vec!["a"]
    );
}

#[test]
fn mqtt5_3_3_1_11_retain_handling_2_sends_none() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    w.connect(publ);
    w.publish(publ, retained("r/a", b"a", QoS::AtLeastOnce));
    let sub = w.add(v5("sub"));
    w.connect(sub);
    assert!(sub_rh(&mut w, sub, "r/#", RetainHandling::DoNotSend).is_empty());
    // The subscription works for new messages.
    w.publish(publ, msg("r/a", b"live", QoS::AtLeastOnce));
    assert_eq!(w.take_payloads(sub), vec!["live"]);
}

#[test]
fn mqtt5_3_3_1_12_3_3_1_13_retain_as_published() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    let rap0 = w.add(v5("rap0"));
    let rap1 = w.add(v5("rap1"));
    w.connect(publ);
    w.connect(rap0);
    w.connect(rap1);
    w.subscribe(rap0, "t", QoS::AtLeastOnce);
    let mut o = SubscriptionOptions::new(QoS::AtLeastOnce);
    o.retain_as_published = true;
    w.subscribe_opts(rap1, "t", o, None);
    w.publish(publ, retained("t", b"r", QoS::AtLeastOnce));
    w.publish(publ, msg("t", b"n", QoS::AtLeastOnce));
    let flags = |v: Vec<Publish>| v.iter().map(|m| m.retain).collect::<Vec<_>>();
    assert_eq!(flags(w.take(rap0)), vec![false, false]);
    assert_eq!(flags(w.take(rap1)), vec![true, false]);
}

#[test]
fn mqtt5_3_3_2_3_topic_name_matches_subscription() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    // The subscriber allows topic aliases: names are still resolved right.
    let mut c = v5("sub");
    c.properties.topic_alias_maximum = Some(4);
    let sub = w.add(c);
    topic_match_scenario(&mut w, publ, sub);
}

#[test]
fn mqtt5_3_3_2_4_3_3_2_15_3_3_2_16_3_3_2_17_3_3_2_18_3_3_2_20_properties_forwarded_unchanged() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    let online = w.add(v5("online"));
    let offline = w.add(persistent5("offline", 600));
    w.connect(publ);
    w.connect(online);
    w.connect(offline);
    w.subscribe(online, "p/#", QoS::AtLeastOnce);
    w.subscribe(offline, "p/+", QoS::ExactlyOnce);
    w.drop_conn(offline);
    let order = [
        ("b", "2"),
        ("a", "1"),
        ("b", "0"),
        ("dup", "dup"),
        ("dup", "dup"),
    ];
    let mut m = retained("p/x", b"{\"v\":1}", QoS::AtLeastOnce);
    m.properties.payload_format_indicator = Some(PayloadFormat::Utf8);
    m.properties
        .set_content_type(Some(MqttString::from_static("application/json")));
    m.properties
        .set_response_topic(Some(TopicName::try_from("reply/here").unwrap()));
    m.properties
        .set_correlation_data(Some(Bytes::from_static(&[0, 1, 2, 0xff])))
        .unwrap();
    m.properties.set_user_properties(user_props(&order));
    w.publish(publ, m.clone());
    w.connect(offline);
    let late = w.add(v5("late"));
    w.connect(late);
    w.subscribe(late, "p/x", QoS::AtLeastOnce);
    let want: Vec<_> = order
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    // Live, queued for an offline session, retained: all the same.
    for i in [online, offline, late] {
        let got = w.take(i);
        assert_eq!(got.len(), 1, "client {i}");
        let p = &got[0].properties;
        assert_eq!(p.payload_format_indicator, Some(PayloadFormat::Utf8));
        assert_eq!(p.content_type(), m.properties.content_type());
        assert_eq!(p.response_topic(), m.properties.response_topic());
        assert_eq!(p.correlation_data(), m.properties.correlation_data());
        assert_eq!(pairs(&p.user_properties()), want);
        assert_eq!(got[0].payload, m.payload);
    }
}

#[test]
fn mqtt5_3_3_2_5_3_3_2_6_message_expiry_while_waiting() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    let online = w.add(v5("online"));
    let offline = w.add(persistent5("offline", 600));
    w.connect(publ);
    w.connect(online);
    w.connect(offline);
    w.subscribe(online, "e", QoS::AtLeastOnce);
    w.subscribe(offline, "e", QoS::AtLeastOnce);
    w.drop_conn(offline);
    for (body, exp) in [("short", 3u32), ("long", 10), ("none", 0)] {
        let mut m = msg("e", body.as_bytes(), QoS::AtLeastOnce);
        if exp > 0 {
            m.properties.message_expiry_interval = Some(exp);
        }
        w.publish(publ, m);
    }
    // Delivered at once: nothing waited, the interval is unchanged.
    let live: Vec<_> = w
        .take(online)
        .iter()
        .map(|m| (text(m), m.properties.message_expiry_interval))
        .collect();
    assert_eq!(
        live,
        vec![
            ("short".to_owned(), Some(3)),
            ("long".to_owned(), Some(10)),
            ("none".to_owned(), None)
        ]
    );
    w.advance(secs(4));
    w.connect(offline);
    let got: Vec<_> = w
        .take(offline)
        .iter()
        .map(|m| (text(m), m.properties.message_expiry_interval))
        .collect();
    // "short" expired while queued; "long" waited 4 s of its 10.
    assert_eq!(
        got,
        vec![("long".to_owned(), Some(6)), ("none".to_owned(), None)]
    );
    assert_eq!(w.stats().messages_expired, 1);
}

#[test]
fn mqtt5_3_3_2_5_3_3_2_6_expiry_counted_behind_receive_maximum() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    let mut c = v5("slow");
    c.properties.receive_maximum = NonZeroU16::new(1);
    let slow = w.add_manual(c);
    w.connect(publ);
    w.connect(slow);
    w.subscribe(slow, "e", QoS::AtLeastOnce);
    for (body, exp) in [("first", 100u32), ("second", 10), ("third", 2)] {
        let mut m = msg("e", body.as_bytes(), QoS::AtLeastOnce);
        m.properties.message_expiry_interval = Some(exp);
        w.publish(publ, m);
    }
    assert_eq!(w.take_payloads(slow), vec!["first"]);
    w.advance(secs(3));
    ack_all(&mut w, slow);
    let got = w.take(slow);
    assert_eq!(got.len(), 1);
    assert_eq!(text(&got[0]), "second");
    assert_eq!(got[0].properties.message_expiry_interval, Some(7));
    ack_all(&mut w, slow);
    assert!(w.take(slow).is_empty(), "an expired message was delivered");
}

#[test]
fn mqtt5_3_3_4_2_3_3_4_3_3_3_4_4_overlapping_one_copy_all_ids_highest_qos() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    let sub = w.add(v5("sub"));
    w.connect(publ);
    w.connect(sub);
    w.subscribe_opts(
        sub,
        "o/+",
        SubscriptionOptions::new(QoS::AtMostOnce),
        Some(1),
    );
    w.subscribe_opts(
        sub,
        "o/#",
        SubscriptionOptions::new(QoS::ExactlyOnce),
        Some(7),
    );
    w.subscribe_opts(sub, "o/x", SubscriptionOptions::new(QoS::AtLeastOnce), None);
    w.publish(publ, msg("o/x", b"m", QoS::ExactlyOnce));
    let got = w.take(sub);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].qos(), QoS::ExactlyOnce);
    assert_eq!(ids(&got[0]), vec![1, 7]);
    // Only the matching subscriptions' identifiers.
    w.publish(publ, msg("o/y/z", b"n", QoS::AtLeastOnce));
    let got = w.take(sub);
    assert_eq!(got.len(), 1);
    assert_eq!(ids(&got[0]), vec![7]);
    assert_eq!(got[0].qos(), QoS::AtLeastOnce);
}

#[test]
fn mqtt5_3_3_4_5_shared_and_non_shared_copies_carry_own_ids() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    let sub = w.add(v5("sub"));
    w.connect(publ);
    w.connect(sub);
    w.subscribe_opts(
        sub,
        "$share/g/s/t",
        SubscriptionOptions::new(QoS::AtLeastOnce),
        Some(3),
    );
    w.subscribe_opts(
        sub,
        "s/t",
        SubscriptionOptions::new(QoS::AtLeastOnce),
        Some(4),
    );
    w.publish(publ, msg("s/t", b"m", QoS::AtLeastOnce));
    // One copy for the non-shared subscription, one for the share group
    // whose only member is this client: each with its own identifier.
    let got = w.take(sub);
    let mut got_ids: Vec<_> = got.iter().map(ids).collect();
    got_ids.sort();
    assert_eq!(got_ids, vec![vec![3], vec![4]]);
}

#[test]
fn mqtt5_3_8_3_3_no_local() {
    let mut w = world();
    let me = w.add(v5("me"));
    let other = w.add(v5("other"));
    w.connect(me);
    w.connect(other);
    let mut o = SubscriptionOptions::new(QoS::AtLeastOnce);
    o.no_local = true;
    w.subscribe_opts(me, "nl/#", o, None);
    w.subscribe(other, "nl/#", QoS::AtLeastOnce);
    w.publish(me, msg("nl/1", b"mine", QoS::AtLeastOnce));
    assert!(w.take(me).is_empty(), "No Local message came back");
    assert_eq!(w.take_payloads(other), vec!["mine"]);
    w.publish(other, msg("nl/1", b"theirs", QoS::AtLeastOnce));
    assert_eq!(w.take_payloads(me), vec!["theirs"]);
    // A plain overlapping subscription of the same client still gets it.
    w.subscribe(me, "nl/1", QoS::AtLeastOnce);
    w.publish(me, msg("nl/1", b"again", QoS::AtLeastOnce));
    assert_eq!(w.take_payloads(me), vec!["again"]);
}

#[test]
fn mqtt5_3_8_4_3_3_8_4_4_resubscribe_replaces_resends_retained_loses_nothing() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    let mut c = v5("sub");
    c.properties.receive_maximum = NonZeroU16::new(1);
    let sub = w.add_manual(c);
    w.connect(publ);
    w.connect(sub);
    w.publish(publ, retained("r/1", b"ret", QoS::AtLeastOnce));
    w.subscribe_opts(
        sub,
        "r/#",
        SubscriptionOptions::new(QoS::AtMostOnce),
        Some(1),
    );
    assert_eq!(w.take_payloads(sub), vec!["ret"]);
    w.subscribe_opts(
        sub,
        "r/#",
        SubscriptionOptions::new(QoS::AtLeastOnce),
        Some(2),
    );
    ack_all(&mut w, sub);
    assert_eq!(w.take_payloads(sub), vec!["ret"]);
    // Messages in flight and waiting behind Receive Maximum 1.
    for n in 0..3 {
        w.publish(
            publ,
            msg("r/2", format!("m{n}").as_bytes(), QoS::AtLeastOnce),
        );
    }
    // Replace it again, Retain Handling 0: the retained message is re-sent,
    // nothing waiting is lost.
    let ack = w.subscribe_opts(
        sub,
        "r/#",
        SubscriptionOptions::new(QoS::ExactlyOnce),
        Some(9),
    );
    assert_eq!(ack.reason_codes, vec![SubAckReasonCode::GrantedQoS2]);
    assert_eq!(w.stats().subscriptions, 1, "replaced, not added");
    for _ in 0..10 {
        ack_all(&mut w, sub);
    }
    let got = w.take(sub);
    let texts: Vec<_> = got.iter().map(text).collect();
    assert_eq!(texts, vec!["m0", "m1", "m2", "ret"]);
    let last = got.last().unwrap();
    assert!(last.retain);
    assert_eq!(ids(last), vec![9]);
    // New messages use the replacing options.
    w.publish(publ, msg("r/3", b"new", QoS::ExactlyOnce));
    ack_all(&mut w, sub);
    let got = w.take(sub);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].qos(), QoS::ExactlyOnce);
    assert_eq!(ids(&got[0]), vec![9]);
}

#[test]
fn mqtt5_3_8_4_8_delivered_qos_is_min_of_published_and_granted() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    let subs = [w.add(v5("s0")), w.add(v5("s1")), w.add(v5("s2"))];
    downgrade_scenario(&mut w, publ, subs);
}

#[test]
fn mqtt5_3_10_4_1_unsubscribe_compares_characters() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    let sub = w.add(v5("sub"));
    unsubscribe_scenario(&mut w, publ, sub, true);
}

#[test]
fn mqtt5_3_10_4_2_no_new_messages_after_unsubscribe() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    let sub = w.add(persistent5("sub", 600));
    no_queue_after_unsubscribe(&mut w, publ, sub);
}

#[test]
fn mqtt5_3_14_4_3_disconnect_0x00_drops_will_0x04_publishes_it() {
    let mut w = world();
    let watch = watcher(&mut w, "watch", "will/#");
    let a = w.add(with_will(v5("a"), will("will/a", b"a")));
    let b = w.add(with_will(v5("b"), will("will/b", b"b")));
    w.connect(a);
    w.connect(b);
    w.disconnect(a, DisconnectReasonCode::NormalDisconnection);
    w.disconnect(b, DisconnectReasonCode::DisconnectWithWillMessage);
    assert_eq!(w.take_payloads(watch), vec!["b"]);
}

#[test]
fn mqtt5_4_1_0_1_session_state_kept_while_connected() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    // Session Expiry 1 s, connected for hours: still there.
    let sub = w.add(persistent5("sub", 1));
    w.connect(publ);
    w.connect(sub);
    w.subscribe(sub, "s", QoS::AtLeastOnce);
    w.advance(secs(3 * 3600));
    assert!(w.is_open(sub));
    w.publish(publ, msg("s", b"x", QoS::AtLeastOnce));
    assert_eq!(w.take_payloads(sub), vec!["x"]);
    assert_eq!(w.stats().sessions, 2);
}

#[test]
fn mqtt5_4_1_0_2_session_discarded_after_expiry() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    w.connect(publ);
    let short = w.add(persistent5("short", 5));
    let long = w.add(persistent5("long", 60));
    for i in [short, long] {
        w.connect(i);
        w.subscribe(i, "s", QoS::AtLeastOnce);
        w.drop_conn(i);
    }
    w.publish(publ, msg("s", b"q", QoS::AtLeastOnce));
    w.advance(secs(4));
    assert_eq!(w.stats().sessions, 3, "expired too early");
    w.advance(secs(2));
    assert_eq!(w.stats().sessions, 2);
    assert_eq!(w.stats().subscriptions, 1);
    w.connect(short);
    assert!(!session_present(&w, short));
    assert!(w.take(short).is_empty());
    w.connect(long);
    assert!(session_present(&w, long));
    assert_eq!(w.take_payloads(long), vec!["q"]);
}

#[test]
fn mqtt5_4_5_0_1_message_added_to_every_matching_session() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    let online = w.add(v5("on"));
    let offline = w.add(persistent5("off", 600));
    let other = w.add(v5("other"));
    ownership_scenario(&mut w, publ, online, offline, other);
}

#[test]
fn mqtt5_4_6_0_5_4_6_0_6_topics_ordered_per_publisher() {
    let mut w = world();
    let pubs = [w.add(v5("p1")), w.add(v5("p2"))];
    let mut c = persistent5("sub", 600);
    c.properties.receive_maximum = NonZeroU16::new(2);
    let sub = w.add_manual(c);
    order_scenario(&mut w, pubs, sub);
}

// ---------------------------------------------------------------------
// MQTT 5.0: shared subscriptions
// ---------------------------------------------------------------------

#[test]
fn mqtt5_4_8_2_3_shared_delivery_at_members_granted_qos() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    let a = w.add(v5("a"));
    let b = w.add(v5("b"));
    w.connect(publ);
    w.connect(a);
    w.connect(b);
    w.subscribe(a, "$share/g/job/#", QoS::AtMostOnce);
    w.subscribe(b, "$share/g/job/#", QoS::ExactlyOnce);
    for n in 0..10 {
        w.publish(
            publ,
            msg("job/x", format!("{n}").as_bytes(), QoS::ExactlyOnce),
        );
    }
    let ga = w.take(a);
    let gb = w.take(b);
    // Each message to exactly one member.
    let mut all: Vec<_> = ga.iter().chain(&gb).map(text).collect();
    all.sort_by_key(|s| s.parse::<u32>().unwrap());
    assert_eq!(all, (0..10).map(|n| n.to_string()).collect::<Vec<_>>());
    assert!(!ga.is_empty() && !gb.is_empty(), "one member got nothing");
    assert!(ga.iter().all(|m| m.qos() == QoS::AtMostOnce));
    assert!(gb.iter().all(|m| m.qos() == QoS::ExactlyOnce));
}

/// Publishes QoS 2 jobs until member `a` (its outbound bytes withheld) got
/// one; returns that message's payload.
fn interrupt_qos2(w: &mut World, publ: usize, a: usize) -> String {
    w.peers[a].hold_out = true;
    for n in 0..10 {
        w.publish(
            publ,
            msg("job", format!("j{n}").as_bytes(), QoS::ExactlyOnce),
        );
        if let Some(m) = w.take(a).first() {
            return text(m);
        }
    }
    panic!("member a never chosen");
}

#[test]
fn mqtt5_4_8_2_4_interrupted_shared_qos2_completed_to_same_client() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    let a = w.add(persistent5("a", 600));
    let b = w.add(persistent5("b", 600));
    w.connect(publ);
    w.connect(a);
    w.connect(b);
    w.subscribe(a, "$share/g/job", QoS::ExactlyOnce);
    w.subscribe(b, "$share/g/job", QoS::ExactlyOnce);
    let job = interrupt_qos2(&mut w, publ, a);
    w.drop_conn(a);
    w.peers[a].hold_out = false;
    // More work meanwhile goes to b.
    w.publish(publ, msg("job", b"later", QoS::ExactlyOnce));
    let to_b: Vec<_> = w.take(b).iter().map(text).collect();
    assert!(to_b.contains(&"later".to_owned()));
    assert!(!to_b.contains(&job), "interrupted QoS 2 message sent to b");
    w.connect(a);
    // Resent to a (DUP, same packet id), completed, surfaced once.
    let wire: Vec<_> = w
        .wire_publishes(a)
        .into_iter()
        .filter(|m| text(m) == job)
        .collect();
    assert_eq!(wire.len(), 2);
    assert!(wire[1].dup);
    assert_eq!(wire[0].packet_id(), wire[1].packet_id());
    let pid = wire[0].packet_id().unwrap();
    assert!(w.peers[a]
        .wire_out
        .iter()
        .any(|(n, p)| *n == 2 && matches!(p, Packet::PubComp(c) if c.packet_id == pid)));
    assert!(w.take(a).is_empty(), "surfaced twice");
    assert!(w.take(b).iter().all(|m| text(m) != job));
}

#[test]
fn mqtt5_4_8_2_5_interrupted_shared_qos2_not_sent_to_others_when_session_ends() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    let a = w.add(persistent5("a", 5));
    let b = w.add(persistent5("b", 600));
    w.connect(publ);
    w.connect(a);
    w.connect(b);
    w.subscribe(a, "$share/g/job", QoS::ExactlyOnce);
    w.subscribe(b, "$share/g/job", QoS::ExactlyOnce);
    let job = interrupt_qos2(&mut w, publ, a);
    w.take(b);
    w.drop_conn(a);
    w.peers[a].hold_out = false;
    w.advance(secs(10));
    assert!(w.take(b).is_empty(), "interrupted QoS 2 message sent to b");
    w.connect(a);
    assert!(!session_present(&w, a));
    assert!(w
        .wire_publishes(a)
        .iter()
        .filter(|m| text(m) == job)
        .all(|m| !m.dup));
}

#[test]
fn mqtt5_4_8_2_6_shared_delivery_refused_is_not_retried_elsewhere() {
    let mut w = world();
    let publ = w.add(v5("pub"));
    let a = w.add_manual(v5("a"));
    let b = w.add(v5("b"));
    w.connect(publ);
    w.connect(a);
    w.connect(b);
    w.subscribe(a, "$share/g/job", QoS::ExactlyOnce);
    w.subscribe(b, "$share/g/job", QoS::ExactlyOnce);
    let mut refused = Vec::new();
    for (n, q) in [
        (0, QoS::AtLeastOnce),
        (1, QoS::ExactlyOnce),
        (2, QoS::AtLeastOnce),
        (3, QoS::ExactlyOnce),
    ] {
        w.publish(publ, msg("job", format!("j{n}").as_bytes(), q));
        let now = w.now;
        for m in w.take(a) {
            refused.push(text(&m));
            w.peers[a]
                .client
                .ack(
                    now,
                    m.packet_id().unwrap(),
                    PubAckReasonCode::UnspecifiedError,
                )
                .unwrap();
        }
        w.peers[a].events.clear();
        w.run();
    }
    assert!(!refused.is_empty(), "member a never chosen");
    w.advance(secs(60));
    let to_b: Vec<_> = w.take(b).iter().map(text).collect();
    for r in &refused {
        assert!(!to_b.contains(r), "{r} retried at b");
    }
    assert_eq!(refused.len() + to_b.len(), 4);
    assert!(w.take(a).is_empty(), "refused message resent to a");
}

// ---------------------------------------------------------------------
// Misc harness sanity and broker-level checks
// ---------------------------------------------------------------------

#[test]
fn harness_subscribe_many_filters_one_suback() {
    let mut w = world();
    let sub = w.add(v5("sub"));
    w.connect(sub);
    let subs = vec![
        Subscription {
            filter: TopicFilter::try_from("a").unwrap(),
            options: SubscriptionOptions::new(QoS::AtLeastOnce),
        },
        Subscription {
            filter: TopicFilter::try_from("b/#").unwrap(),
            options: SubscriptionOptions::new(QoS::ExactlyOnce),
        },
    ];
    let ack = w.subscribe_many(sub, subs, SubscribeProperties::default());
    assert_eq!(
        ack.reason_codes,
        vec![SubAckReasonCode::GrantedQoS1, SubAckReasonCode::GrantedQoS2]
    );
    assert_eq!(w.stats().bytes_in, w.fed);
    assert_eq!(w.stats().bytes_out, w.taken);
}

/// `ConnectionId::slot`: unique among open connections, reused once a
/// connection is gone (closed by its transport, or by the broker once its
/// `Event::Close` was reported), the id telling the uses apart.
#[test]
fn connection_slots_are_dense_and_reused() {
    use mqtt_broker::{Broker, Event};
    use std::time::Instant;

    let now = Instant::now();
    let mut b: Broker = Broker::new(BrokerConfig::default());
    let ids: Vec<_> = (0..3).map(|_| b.accept(now).unwrap()).collect();
    let mut slots: Vec<usize> = ids.iter().map(|id| id.slot()).collect();
    slots.sort_unstable();
    assert_eq!(slots, vec![0, 1, 2]);
    // Closed by the transport: free at once.
    b.handle_closed(ids[1], now);
    let again = b.accept(now).unwrap();
    assert_eq!(again.slot(), ids[1].slot());
    assert_ne!(again, ids[1]);
    // Closed by the broker: free once its Close was reported.
    b.close(ids[2], now).unwrap();
    let other = b.accept(now).unwrap();
    assert!(![0, 1, 2].contains(&other.slot()), "slot reused too early");
    while b.poll_transmit().is_some() {}
    let mut closed = false;
    while let Some(e) = b.poll_event() {
        closed |= e == Event::Close(ids[2]);
    }
    assert!(closed);
    let third = b.accept(now).unwrap();
    assert_eq!(third.slot(), ids[2].slot());
    assert_ne!(third, ids[2]);
}
