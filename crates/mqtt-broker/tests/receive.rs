//! Read authorization per delivery (`Hooks::may_receive`), and what
//! `Event::Connected` reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::*;
use mqtt_broker::{BrokerConfig, Event, Hooks, Recipient};
use mqtt_wire::{Connect, MqttString, ProtocolVersion, QoS, TopicName};

/// Everyone may subscribe anywhere; only `boss` may read `secret/...`.
#[derive(Default)]
struct SecretsForBoss {
    /// Every question asked: (client id, user, connected, topic).
    asked: Vec<(String, Option<String>, bool, String)>,
}

impl Hooks for SecretsForBoss {
    fn may_receive(&mut self, r: &Recipient<'_>, topic: &TopicName) -> bool {
        let user = r.username.map(|u| u.as_str().to_owned());
        self.asked.push((
            r.client_id.as_str().to_owned(),
            user.clone(),
            r.connection.is_some(),
            topic.as_str().to_owned(),
        ));
        !topic.as_str().starts_with("secret/") || user.as_deref() == Some("boss")
    }
}

fn as_user(mut c: Connect, user: &str) -> Connect {
    c.username = Some(MqttString::try_from(user).unwrap());
    c
}

#[test]
fn a_wildcard_subscription_does_not_leak_what_the_reader_may_not_read() {
    let mut w = World::with_hooks(BrokerConfig::default(), SecretsForBoss::default());
    let boss = w.add(as_user(v5("boss"), "boss"));
    let clerk = w.add(as_user(v5("clerk"), "clerk"));
    let publ = w.add(v5("pub"));
    for i in [boss, clerk, publ] {
        w.connect(i);
    }
    w.subscribe(boss, "#", QoS::AtLeastOnce);
    w.subscribe(clerk, "#", QoS::AtLeastOnce);
    w.publish(publ, msg("secret/plan", b"s", QoS::AtLeastOnce));
    w.publish(publ, msg("news/today", b"n", QoS::AtMostOnce));
    assert_eq!(w.take_payloads(boss), vec!["s", "n"]);
    assert_eq!(w.take_payloads(clerk), vec!["n"]);
    // Asked per recipient and message, with who the recipient is.
    let asked = &w.broker.hooks().asked;
    assert!(asked.contains(&(
        "clerk".into(),
        Some("clerk".into()),
        true,
        "secret/plan".into()
    )));
}

#[test]
fn retained_messages_sent_on_subscribe_are_checked_too() {
    let mut w = World::with_hooks(BrokerConfig::default(), SecretsForBoss::default());
    let publ = w.add(v5("pub"));
    w.connect(publ);
    w.publish(publ, retained("secret/r", b"hidden", QoS::AtLeastOnce));
    w.publish(publ, retained("open/r", b"shown", QoS::AtLeastOnce));
    let clerk = w.add(as_user(v5("clerk"), "clerk"));
    w.connect(clerk);
    w.subscribe(clerk, "+/r", QoS::AtLeastOnce);
    assert_eq!(w.take_payloads(clerk), vec!["shown"]);
    let boss = w.add(as_user(v5("boss"), "boss"));
    w.connect(boss);
    w.subscribe(boss, "+/r", QoS::AtLeastOnce);
    let mut got = w.take_payloads(boss);
    got.sort();
    assert_eq!(got, vec!["hidden", "shown"]);
}

#[test]
fn offline_sessions_are_checked_under_their_owner() {
    let mut w = World::with_hooks(BrokerConfig::default(), SecretsForBoss::default());
    let clerk = w.add(as_user(persistent5("clerk", 600), "clerk"));
    let publ = w.add(v5("pub"));
    w.connect(clerk);
    w.connect(publ);
    w.subscribe(clerk, "#", QoS::AtLeastOnce);
    w.drop_conn(clerk);
    w.publish(publ, msg("secret/x", b"no", QoS::AtLeastOnce));
    w.publish(publ, msg("open/x", b"yes", QoS::AtLeastOnce));
    let asked = &w.broker.hooks().asked;
    assert!(asked.contains(&(
        "clerk".into(),
        Some("clerk".into()),
        false,
        "secret/x".into()
    )));
    let again = w.add(as_user(persistent5("clerk", 600), "clerk"));
    assert!(w.connect(again).unwrap().session_present);
    assert_eq!(w.take_payloads(again), vec!["yes"]);
}

#[test]
fn a_share_group_picks_a_member_that_may_receive() {
    let mut w = World::with_hooks(BrokerConfig::default(), SecretsForBoss::default());
    let boss = w.add(as_user(v5("boss"), "boss"));
    let clerk = w.add(as_user(v5("clerk"), "clerk"));
    let publ = w.add(v5("pub"));
    for i in [boss, clerk, publ] {
        w.connect(i);
    }
    w.subscribe(boss, "$share/g/#", QoS::AtLeastOnce);
    w.subscribe(clerk, "$share/g/#", QoS::AtLeastOnce);
    // Secrets first, then open messages (the round robin alternates
    // between consecutive messages).
    for (topic, p) in [("secret/s", 's'), ("open/o", 'o')] {
        for i in 0..6 {
            w.publish(
                publ,
                msg(topic, format!("{p}{i}").as_bytes(), QoS::AtLeastOnce),
            );
        }
    }
    let b = w.take_payloads(boss);
    let c = w.take_payloads(clerk);
    // Every secret went to the boss; each message to exactly one member;
    // the open ones are still shared between both.
    assert_eq!(b.iter().filter(|p| p.starts_with('s')).count(), 6);
    assert!(c.iter().all(|p| p.starts_with('o')), "{c:?}");
    assert_eq!(b.len() + c.len(), 12);
    assert!(!c.is_empty(), "round robin still reaches the clerk");
}

#[test]
fn connected_event_names_user_and_version() {
    let mut w = World::new(BrokerConfig::default());
    let a = w.add(as_user(v311("a"), "alice"));
    let b = w.add(v5("b"));
    w.connect(a);
    w.connect(b);
    let connected: Vec<_> = w
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Connected {
                client_id,
                username,
                version,
                ..
            } => Some((
                client_id.to_string(),
                username.as_ref().map(|u| u.to_string()),
                *version,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        connected,
        vec![
            ("a".into(), Some("alice".into()), ProtocolVersion::V3_1_1),
            ("b".into(), None, ProtocolVersion::V5),
        ]
    );
}
