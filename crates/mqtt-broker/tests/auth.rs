//! Authentication decisions that need the wrapper: `AuthDecision::Defer`,
//! `Event::Authenticate`, `Broker::authenticated`, under the connect
//! deadline.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::time::Duration;

use common::*;
use mqtt_broker::{AuthDecision, BrokerConfig, Error, Event, Hooks};
use mqtt_wire::{Connect, ConnectReasonCode};

/// Defers every CONNECT to the wrapper.
struct AskWrapper;

impl Hooks for AskWrapper {
    fn authenticate(&mut self, _: &Connect) -> AuthDecision {
        AuthDecision::Defer
    }
}

fn pending(w: &mut World<AskWrapper>) -> Vec<(mqtt_broker::ConnectionId, String)> {
    w.events
        .drain(..)
        .filter_map(|e| match e {
            Event::Authenticate { id, connect } => Some((id, connect.client_id.to_string())),
            _ => None,
        })
        .collect()
}

#[test]
fn deferred_connect_waits_for_the_wrapper_then_connects() {
    let mut w = World::with_hooks(BrokerConfig::default(), AskWrapper);
    let a = w.add(v5("a"));
    assert_eq!(w.connect(a), None, "no CONNACK before the decision");
    let asked = pending(&mut w);
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].1, "a");
    // Still undecided: nothing happens.
    w.broker
        .authenticated(asked[0].0, w.now, AuthDecision::Defer)
        .unwrap();
    w.run();
    assert_eq!(w.last_connack(a), None);
    // Allowed: the CONNACK goes out.
    w.broker
        .authenticated(asked[0].0, w.now, AuthDecision::Allow)
        .unwrap();
    w.run();
    assert_eq!(
        w.last_connack(a).unwrap().reason_code,
        ConnectReasonCode::Success
    );
    // A second answer has nothing to answer.
    assert_eq!(
        w.broker
            .authenticated(asked[0].0, w.now, AuthDecision::Allow),
        Err(Error::NoPendingAuthentication)
    );
}

#[test]
fn deferred_connect_refused_by_the_wrapper() {
    let mut w = World::with_hooks(BrokerConfig::default(), AskWrapper);
    let a = w.add(v5("a"));
    w.connect(a);
    let asked = pending(&mut w);
    w.broker
        .authenticated(
            asked[0].0,
            w.now,
            AuthDecision::Deny(ConnectReasonCode::BadUserNameOrPassword),
        )
        .unwrap();
    w.run();
    assert_eq!(
        w.last_connack(a).unwrap().reason_code,
        ConnectReasonCode::BadUserNameOrPassword
    );
    assert!(!w.is_open(a), "refused connection is closed");
    assert_eq!(w.stats().sessions, 0);
}

#[test]
fn unanswered_connect_closes_at_the_connect_deadline() {
    let cfg = BrokerConfig::default();
    let timeout = cfg.server.connect_timeout;
    let mut w = World::with_hooks(cfg, AskWrapper);
    let a = w.add(v5("a"));
    w.connect(a);
    let asked = pending(&mut w);
    w.advance(timeout - Duration::from_millis(1));
    assert!(w.is_open(a));
    w.advance(Duration::from_millis(2));
    assert!(!w.is_open(a), "closed at the deadline");
    assert_eq!(w.last_connack(a), None);
    // The late answer finds nothing.
    assert!(w
        .broker
        .authenticated(asked[0].0, w.now, AuthDecision::Allow)
        .is_err());
}

/// Enhanced authentication through the wrapper: CONNECT with a method,
/// AUTH exchange, then re-authentication.
struct Enhanced;

impl Hooks for Enhanced {
    fn authenticate_enhanced(&mut self, _: &Connect) -> AuthDecision {
        AuthDecision::Defer
    }
}

#[derive(Debug)]
struct Echo;

impl mqtt_session::client::Authenticator for Echo {
    fn method(&self) -> mqtt_wire::MqttString {
        mqtt_wire::MqttString::from_static("ECHO")
    }
    fn start(&mut self) -> Option<bytes::Bytes> {
        Some(bytes::Bytes::from_static(b"hello"))
    }
    fn challenge(
        &mut self,
        data: Option<&bytes::Bytes>,
    ) -> Result<Option<bytes::Bytes>, mqtt_session::client::AuthFailed> {
        Ok(data.cloned())
    }
    fn finish(&mut self, _: Option<&bytes::Bytes>) -> Result<(), mqtt_session::client::AuthFailed> {
        Ok(())
    }
}

#[test]
fn enhanced_authentication_and_reauthentication_through_the_wrapper() {
    use mqtt_session::client::{ClientConfig, Event as ClientEvent};
    let mut w = World::with_hooks(BrokerConfig::default(), Enhanced);
    let a = w.add_config(ClientConfig::new(v5("a")).with_authenticator(Box::new(Echo)));
    w.connect(a);
    let (id, data) = match w
        .events
        .drain(..)
        .find(|e| matches!(e, Event::Authenticate { .. }))
    {
        Some(Event::Authenticate { id, connect }) => {
            (id, connect.properties.authentication_data.clone())
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(data.as_deref(), Some(&b"hello"[..]));
    // One round: the broker challenges, the client echoes.
    w.broker
        .auth_continue(id, w.now, Some(bytes::Bytes::from_static(b"prove")))
        .unwrap();
    w.run();
    let step = w.events.drain(..).find_map(|e| match e {
        Event::AuthStep { auth, .. } => Some(auth),
        _ => None,
    });
    let step = step.expect("the client's AUTH reaches the wrapper");
    assert_eq!(
        step.properties.authentication_data.as_deref(),
        Some(&b"prove"[..])
    );
    w.broker
        .authenticated(id, w.now, AuthDecision::Allow)
        .unwrap();
    w.run();
    let ack = w.last_connack(a).expect("CONNACK");
    assert_eq!(ack.reason_code, ConnectReasonCode::Success);
    assert_eq!(
        ack.properties.authentication_method.as_ref().unwrap(),
        "ECHO"
    );

    // Re-authentication: AUTH 0x19 reaches the wrapper, which accepts it.
    w.peers[a].client.reauthenticate(w.now).unwrap();
    w.run();
    let step = w.events.drain(..).find_map(|e| match e {
        Event::AuthStep { auth, .. } => Some(auth),
        _ => None,
    });
    assert_eq!(
        step.expect("re-authentication reaches the wrapper")
            .reason_code,
        mqtt_wire::AuthReasonCode::ReAuthenticate
    );
    w.broker.reauthenticated(id, w.now, None).unwrap();
    w.run();
    assert!(w.peers[a]
        .events
        .iter()
        .any(|e| matches!(e, ClientEvent::Reauthenticated)));
    assert!(w.is_open(a));
}

fn as_user(mut c: Connect, user: &str) -> Connect {
    c.username = Some(mqtt_wire::MqttString::try_from(user).unwrap());
    c
}

#[test]
fn another_user_cannot_take_a_client_id_by_default() {
    use mqtt_wire::QoS;
    let mut w = World::new(BrokerConfig::default());
    let admin = w.add(as_user(persistent5("box", 600), "admin"));
    let publ = w.add(v5("pub"));
    w.connect(admin);
    w.connect(publ);
    w.subscribe(admin, "secret/#", QoS::AtLeastOnce);
    // While the owner is connected: refused, and the owner is untouched
    // (no DISCONNECT 0x8E, still delivered to).
    let guest = w.add(as_user(persistent5("box", 600), "guest"));
    let ack = w.connect(guest).expect("CONNACK");
    assert_eq!(ack.reason_code, ConnectReasonCode::NotAuthorized);
    assert!(!w.is_open(guest));
    assert!(w.is_open(admin));
    assert!(w.wire_disconnects(admin).is_empty());
    w.publish(publ, msg("secret/a", b"live", QoS::AtLeastOnce));
    assert_eq!(w.take_payloads(admin), vec!["live".to_owned()]);
    // While the owner is away: refused too, and its queued messages stay.
    w.drop_conn(admin);
    w.publish(publ, msg("secret/b", b"queued", QoS::AtLeastOnce));
    let guest2 = w.add(as_user(persistent5("box", 600), "guest"));
    let ack = w.connect(guest2).expect("CONNACK");
    assert_eq!(ack.reason_code, ConnectReasonCode::NotAuthorized);
    // Anonymous is another user as well.
    let anon = w.add(persistent5("box", 600));
    let ack = w.connect(anon).expect("CONNACK");
    assert_eq!(ack.reason_code, ConnectReasonCode::NotAuthorized);
    // The owner resumes its session with what was queued.
    let again = w.add(as_user(persistent5("box", 600), "admin"));
    assert!(w.connect(again).expect("CONNACK").session_present);
    assert_eq!(w.take_payloads(again), vec!["queued".to_owned()]);
}

/// Lets any user replace another user's session.
struct ReplaceAllowed;

impl Hooks for ReplaceAllowed {
    fn may_replace_session(
        &mut self,
        _: &mqtt_broker::ClientInfo<'_>,
        owner: Option<&mqtt_wire::MqttString>,
    ) -> bool {
        assert_eq!(owner.map(|o| o.as_str()), Some("admin"));
        true
    }
}

#[test]
fn mqtt5_3_1_4_3_allowed_replacement_takes_over_with_a_fresh_session() {
    use mqtt_wire::{DisconnectReasonCode, QoS};
    let mut w = World::with_hooks(BrokerConfig::default(), ReplaceAllowed);
    let admin = w.add(as_user(persistent5("box", 600), "admin"));
    let publ = w.add(v5("pub"));
    w.connect(admin);
    w.connect(publ);
    w.subscribe(admin, "secret/#", QoS::AtLeastOnce);
    let guest = w.add(as_user(persistent5("box", 600), "guest"));
    let ack = w.connect(guest).expect("CONNACK");
    assert_eq!(ack.reason_code, ConnectReasonCode::Success);
    // MQTT-3.1.4-3: the old connection gets DISCONNECT 0x8E.
    let d = w.wire_disconnects(admin);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].reason_code, DisconnectReasonCode::SessionTakenOver);
    // The admin's session (its subscription) is not the guest's.
    assert!(!ack.session_present, "a foreign session is not resumed");
    w.publish(publ, msg("secret/b", b"later", QoS::AtLeastOnce));
    assert!(
        w.take(guest).is_empty(),
        "nothing of the admin's reaches the guest"
    );
}

#[test]
fn a_restored_session_keeps_its_owner() {
    use mqtt_broker::{StoredSession, StoredSubscription};
    use mqtt_wire::QoS;
    let mut w = World::new(BrokerConfig::default());
    let stored = StoredSession {
        client_id: mqtt_wire::MqttString::from_static("box"),
        owner: Some(mqtt_wire::MqttString::from_static("alice")),
        expiry: 600,
        subscriptions: vec![(
            mqtt_topic::SubscriptionFilter::try_from("t/#").unwrap(),
            StoredSubscription {
                qos: QoS::AtLeastOnce,
                no_local: false,
                retain_as_published: false,
                subscription_id: None,
            },
        )],
        messages: vec![(1, msg("t/1", b"kept", QoS::AtLeastOnce))],
    };
    w.broker.restore(w.now, vec![stored], vec![]).unwrap();
    // Not the first to come, but the owner, resumes it.
    let mallory = w.add(as_user(persistent5("box", 600), "mallory"));
    let ack = w.connect(mallory).expect("CONNACK");
    assert_eq!(ack.reason_code, ConnectReasonCode::NotAuthorized);
    let alice = w.add(as_user(persistent5("box", 600), "alice"));
    assert!(w.connect(alice).expect("CONNACK").session_present);
    assert_eq!(w.take_payloads(alice), vec!["kept".to_owned()]);
}
