//! A share group member whose session ends: its unacknowledged QoS 1
//! copies and its queued copies go to another member (MQTT 5.0 §4.8.2);
//! an interrupted QoS 2 copy does not (MQTT-4.8.2-5, in tests/broker.rs).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::collections::BTreeSet;

use common::*;
use mqtt_broker::BrokerConfig;
use mqtt_wire::QoS;

#[test]
fn unacknowledged_qos1_of_an_ended_member_goes_to_another_member() {
    let mut w = World::new(BrokerConfig::default());
    let publ = w.add(v5("pub"));
    let a = w.add(v5("a")); // session ends with the connection
    let b = w.add(v5("b"));
    w.connect(publ);
    w.connect(a);
    w.connect(b);
    w.subscribe(a, "$share/g/job", QoS::AtLeastOnce);
    w.subscribe(b, "$share/g/job", QoS::AtLeastOnce);
    // a receives but never acknowledges.
    w.peers[a].hold_out = true;
    let sent: BTreeSet<String> = (0..6).map(|n| format!("j{n}")).collect();
    for j in &sent {
        w.publish(publ, msg("job", j.as_bytes(), QoS::AtLeastOnce));
    }
    let to_a: BTreeSet<String> = w.take(a).iter().map(text).collect();
    assert!(!to_a.is_empty(), "round robin gave a some jobs");
    let mut to_b: BTreeSet<String> = w.take(b).iter().map(text).collect();
    assert!(to_b.is_disjoint(&to_a));
    // a goes away for good: what it held reaches b.
    w.drop_conn(a);
    to_b.extend(w.take(b).iter().map(text));
    assert_eq!(to_b, sent, "every job reaches the remaining member");
}

#[test]
fn plain_subscriptions_are_not_rerouted() {
    let mut w = World::new(BrokerConfig::default());
    let publ = w.add(v5("pub"));
    let a = w.add(v5("a"));
    let b = w.add(v5("b"));
    w.connect(publ);
    w.connect(a);
    w.connect(b);
    w.subscribe(a, "job", QoS::AtLeastOnce);
    w.subscribe(b, "$share/g/other", QoS::AtLeastOnce);
    w.peers[a].hold_out = true;
    w.publish(publ, msg("job", b"mine", QoS::AtLeastOnce));
    assert_eq!(w.take(a).len(), 1);
    w.drop_conn(a);
    assert!(w.take(b).is_empty());
}
