//! `SessionState`: building it from parts, exporting it from a client with
//! messages in flight and resuming it in a new `Client` (resent with DUP
//! and their original packet identifiers), and its serde JSON form.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::num::NonZeroU16;

use bytes::Bytes;
use common::{message, Dir, Pair};
use mqtt_session::client::{Client, ClientConfig};
use mqtt_session::server::ServerConfig;
use mqtt_session::{OutboundMessage, SessionState, SessionStateError};
use mqtt_wire::{Connect, Delivery, MqttString, Packet, PacketId, ProtocolVersion, Publish, QoS};

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn publish(topic: &str, qos: QoS, id: u16, payload: &'static [u8]) -> Publish {
    let mut p = message(topic, qos, payload.to_vec());
    if qos != QoS::AtMostOnce {
        p.delivery = Delivery::new(qos, pid(id));
    }
    p
}

// ---------------------------------------------------------------------------
// from_parts
// ---------------------------------------------------------------------------

#[test]
fn from_parts_refuses_two_outbound_entries_with_one_packet_id() {
    let a = publish("a", QoS::AtLeastOnce, 5, b"1");
    let b = publish("b", QoS::ExactlyOnce, 5, b"2");
    assert_eq!(
        SessionState::from_parts(
            5,
            vec![
                OutboundMessage::Publish(a.clone()),
                OutboundMessage::Publish(b)
            ],
            vec![]
        ),
        Err(SessionStateError::DuplicatePacketId(5))
    );
    // A PUBLISH and a PUBREL cannot share an identifier either.
    assert_eq!(
        SessionState::from_parts(
            5,
            vec![
                OutboundMessage::Publish(a),
                OutboundMessage::Release(pid(5))
            ],
            vec![]
        ),
        Err(SessionStateError::DuplicatePacketId(5))
    );
}

#[test]
fn from_parts_refuses_duplicate_inbound_ids() {
    assert_eq!(
        SessionState::from_parts(0, vec![], vec![pid(3), pid(4), pid(3)]),
        Err(SessionStateError::DuplicatePacketId(3))
    );
}

#[test]
fn from_parts_refuses_messages_it_cannot_resend() {
    // QoS 0: nothing to keep.
    let q0 = publish("a", QoS::AtMostOnce, 0, b"x");
    assert_eq!(
        SessionState::from_parts(0, vec![OutboundMessage::Publish(q0)], vec![]),
        Err(SessionStateError::NotResendable)
    );
    // No topic name (only an alias, which dies with the connection).
    let mut alias_only = publish("a", QoS::AtLeastOnce, 1, b"x");
    alias_only.topic = None;
    alias_only.properties.topic_alias = NonZeroU16::new(1);
    assert_eq!(
        SessionState::from_parts(0, vec![OutboundMessage::Publish(alias_only)], vec![]),
        Err(SessionStateError::NotResendable)
    );
}

#[test]
fn from_parts_keeps_resend_order_and_marks_dup() {
    let mut a = publish("a", QoS::AtLeastOnce, 9, b"a");
    a.properties.topic_alias = NonZeroU16::new(2); // a connection's alias
    let b = publish("b", QoS::ExactlyOnce, 4, b"b");
    let s = SessionState::from_parts(
        9,
        vec![
            OutboundMessage::Publish(a.clone()),
            OutboundMessage::Release(pid(3)),
            OutboundMessage::Publish(b.clone()),
        ],
        vec![pid(7), pid(2)],
    )
    .unwrap();
    assert!(!s.is_empty());
    assert_eq!(s.next_packet_id(), 9);
    let out = s.outbound();
    assert_eq!(out.len(), 3);
    // In the order given, not by packet id.
    assert_eq!(
        out.iter()
            .map(|m| m.packet_id().unwrap().get())
            .collect::<Vec<_>>(),
        vec![9, 3, 4]
    );
    match (&out[0], &out[1], &out[2]) {
        (
            OutboundMessage::Publish(pa),
            OutboundMessage::Release(r),
            OutboundMessage::Publish(pb),
        ) => {
            // Any later send is a re-delivery (MQTT-3.3.1-1).
            assert!(pa.dup && pb.dup);
            assert_eq!(
                pa.properties.topic_alias, None,
                "aliases do not outlive a connection"
            );
            assert_eq!((&pa.topic, &pa.payload), (&a.topic, &a.payload));
            assert_eq!(
                (&pb.topic, &pb.payload, pb.qos()),
                (&b.topic, &b.payload, QoS::ExactlyOnce)
            );
            assert_eq!(r.get(), 3);
        }
        other => panic!("{other:?}"),
    }
    let mut inbound: Vec<u16> = s.inbound_qos2().iter().map(|id| id.get()).collect();
    inbound.sort_unstable();
    assert_eq!(inbound, vec![2, 7]);
    assert!(SessionState::new().is_empty());
    assert!(SessionState::from_parts(0, vec![], vec![])
        .unwrap()
        .is_empty());
}

// ---------------------------------------------------------------------------
// Export from a client, resume in a new one
// ---------------------------------------------------------------------------

fn connect(version: ProtocolVersion) -> Connect {
    let mut c = Connect::new(version, MqttString::from_static("persisted"));
    c.clean_start = false;
    if version.is_v5() {
        c.properties.session_expiry_interval = Some(600);
    }
    c
}

/// A connected pair whose client holds, in this order: a QoS 2 message
/// whose PUBREL awaits PUBCOMP (`rel`), then QoS 1, QoS 2 and QoS 1
/// messages never acknowledged (`pubs`, in publish order).
fn client_with_messages_in_flight(
    version: ProtocolVersion,
) -> (Pair, PacketId, Vec<(PacketId, Publish)>) {
    let mut pair = Pair::new(ClientConfig::new(connect(version)), ServerConfig::default());
    pair.run();
    assert!(pair.client.is_connected());
    let rel = pair
        .client_publish(message("s/rel", QoS::ExactlyOnce, b"rel".to_vec()))
        .unwrap()
        .unwrap();
    // One step: the PUBLISH reaches the server, its PUBREC the client,
    // which writes the PUBREL.
    pair.step();
    pair.c2s.hold = true; // the PUBREL and what follows never arrive
    pair.run();
    assert_eq!(
        pair.client.session_state().outbound(),
        vec![OutboundMessage::Release(rel)]
    );
    let mut pubs = Vec::new();
    for (topic, qos, body) in [
        ("s/a", QoS::AtLeastOnce, b"one".as_slice()),
        ("s/b", QoS::ExactlyOnce, b"two".as_slice()),
        ("s/a", QoS::AtLeastOnce, b"three".as_slice()),
    ] {
        let m = message(topic, qos, body.to_vec());
        let id = pair.client_publish(m.clone()).unwrap().unwrap();
        pubs.push((id, m));
    }
    pair.run();
    assert_eq!(
        pair.server_app.received.len(),
        1,
        "only the first message arrived"
    );
    (pair, rel, pubs)
}

/// Exports the client's session, round-trips it through JSON, resumes it
/// in a new `Client` and reconnects: the unacknowledged PUBLISHes are
/// resent with DUP 1, their original packet identifiers, in their original
/// order, and the PUBREL is resent (MQTT-4.4.0-1, MQTT-4.6.0-1).
fn resume_in_new_client(version: ProtocolVersion) {
    let (mut pair, rel, pubs) = client_with_messages_in_flight(version);
    let state = pair.client.session_state();
    // The export, in resend order: the PUBREL (its PUBREC arrived before
    // the others were published), then the PUBLISHes in publish order.
    let exported: Vec<u16> = state
        .outbound()
        .iter()
        .map(|m| m.packet_id().unwrap().get())
        .collect();
    let mut expected: Vec<u16> = vec![rel.get()];
    expected.extend(pubs.iter().map(|(id, _)| id.get()));
    assert_eq!(exported, expected);
    assert!(matches!(state.outbound()[0], OutboundMessage::Release(id) if id == rel));
    assert_eq!(state.next_packet_id(), pubs.last().unwrap().0.get());

    let json = serde_json::to_string(&state).unwrap();
    let restored: SessionState = serde_json::from_str(&json).unwrap();
    assert_eq!(restored.outbound(), state.outbound());
    assert_eq!(restored.inbound_qos2(), state.inbound_qos2());
    assert_eq!(restored.next_packet_id(), state.next_packet_id());

    // The old client is gone; a new one starts from the stored session.
    pair.drop_connection();
    pair.client = Client::with_session(ClientConfig::new(connect(version)), restored);
    pair.c2s.heal();
    pair.reconnect().unwrap();
    pair.run();
    assert_eq!(pair.client_app.connected, vec![false, true]);

    let resent: Vec<&Packet> = pair
        .wire
        .iter()
        .filter(|w| w.conn == 2 && w.dir == Dir::ToServer)
        .map(|w| &w.packet)
        .filter(|p| matches!(p, Packet::Publish(_) | Packet::PubRel(_)))
        .collect();
    let rels: Vec<u16> = resent
        .iter()
        .filter_map(|p| match p {
            Packet::PubRel(r) => Some(r.packet_id.get()),
            _ => None,
        })
        .collect();
    // The stored PUBREL is resent with its id; the second PUBREL belongs to
    // the resent QoS 2 message, after its PUBREC.
    assert_eq!(rels, vec![rel.get(), pubs[1].0.get()]);
    let publishes: Vec<&Publish> = resent
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(publishes.len(), pubs.len());
    for (p, (id, orig)) in publishes.iter().zip(&pubs) {
        assert!(p.dup, "resent with DUP 1");
        assert_eq!(p.packet_id(), Some(*id), "resent with its original id");
        assert_eq!(p.qos(), orig.qos());
        assert_eq!(p.payload, orig.payload);
        // 5.0 may replace the topic by an alias defined on this connection.
        assert!(p.topic.is_none() || p.topic == orig.topic);
    }
    // All delivered once, all completed.
    let got: Vec<&Bytes> = pair
        .server_app
        .received
        .iter()
        .map(|p| &p.payload)
        .collect();
    assert_eq!(
        got,
        vec![
            &Bytes::from_static(b"rel"),
            &pubs[0].1.payload,
            &pubs[1].1.payload,
            &pubs[2].1.payload
        ]
    );
    assert!(pair.client_app.outbox.in_flight.is_empty());
    assert_eq!(pair.client_app.outbox.completed.len(), 4);
    assert!(pair.client.session_state().is_empty());
    // Packet identifiers go on from the stored counter.
    let next = pair
        .client_publish(message("s/c", QoS::AtLeastOnce, b"four".to_vec()))
        .unwrap()
        .unwrap();
    assert!(pubs.iter().all(|(id, _)| *id != next) && next != rel);
}

#[test]
fn mqtt5_4_4_0_1_4_6_0_1_exported_session_resent_by_new_client() {
    resume_in_new_client(ProtocolVersion::V5);
}

#[test]
fn mqtt311_4_4_0_1_4_6_0_1_exported_session_resent_by_new_client() {
    resume_in_new_client(ProtocolVersion::V3_1_1);
}

/// The restored client meets a server without the session (Session
/// Present 0): nothing is resent (MQTT-4.4.0-1: never otherwise), and the
/// application is told what was lost, in publish order, DUP cleared.
fn restored_session_not_present(version: ProtocolVersion) {
    let (mut pair, rel, pubs) = client_with_messages_in_flight(version);
    let state = pair.client.session_state();
    pair.drop_connection();
    pair.client = Client::with_session(ClientConfig::new(connect(version)), state);
    pair.server_app.lose_session = true;
    pair.c2s.heal();
    pair.reconnect().unwrap();
    pair.run();
    assert_eq!(pair.client_app.connected, vec![false, false]);
    let lost = pair
        .client_app
        .events
        .iter()
        .find_map(|e| match e {
            mqtt_session::client::Event::SessionLost {
                unacknowledged,
                unreleased,
            } => Some((unacknowledged.clone(), unreleased.clone())),
            _ => None,
        })
        .expect("SessionLost reported");
    assert_eq!(lost.1, vec![rel]);
    assert_eq!(lost.0.len(), pubs.len());
    for (p, (id, orig)) in lost.0.iter().zip(&pubs) {
        assert_eq!(p.packet_id(), Some(*id));
        assert_eq!((&p.topic, &p.payload), (&orig.topic, &orig.payload));
        assert!(!p.dup);
    }
    let resent = pair
        .wire
        .iter()
        .filter(|w| w.conn == 2 && w.dir == Dir::ToServer)
        .filter(|w| matches!(w.packet, Packet::Publish(_) | Packet::PubRel(_)))
        .count();
    assert_eq!(resent, 0);
    assert!(pair.client.session_state().is_empty());
}

#[test]
fn mqtt5_4_4_0_1_restored_session_not_present_reported_lost() {
    restored_session_not_present(ProtocolVersion::V5);
}

#[test]
fn mqtt311_4_4_0_1_restored_session_not_present_reported_lost() {
    restored_session_not_present(ProtocolVersion::V3_1_1);
}

// ---------------------------------------------------------------------------
// serde
// ---------------------------------------------------------------------------

fn rich_state() -> SessionState {
    let mut a = publish("x/1", QoS::AtLeastOnce, 11, b"\x00\xffbinary");
    a.properties
        .set_content_type(Some(MqttString::from_static("application/octet-stream")));
    a.properties.message_expiry_interval = Some(30);
    a.retain = true;
    let b = publish("x/2", QoS::ExactlyOnce, 2, b"");
    SessionState::from_parts(
        11,
        vec![
            OutboundMessage::Publish(a),
            OutboundMessage::Release(pid(65535)),
            OutboundMessage::Publish(b),
        ],
        vec![pid(1), pid(40000)],
    )
    .unwrap()
}

#[test]
fn serde_json_round_trip() {
    let s = rich_state();
    let json = serde_json::to_string(&s).unwrap();
    let back: SessionState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    assert_eq!(back.outbound(), s.outbound());
    match &back.outbound()[0] {
        OutboundMessage::Publish(p) => {
            assert_eq!(
                p.properties.content_type().unwrap(),
                "application/octet-stream"
            );
            assert_eq!(p.properties.message_expiry_interval, Some(30));
            assert!(p.retain && p.dup);
            assert_eq!(&p.payload[..], b"\x00\xffbinary");
        }
        other => panic!("{other:?}"),
    }
    let empty: SessionState =
        serde_json::from_str(&serde_json::to_string(&SessionState::new()).unwrap()).unwrap();
    assert!(empty.is_empty());
}

/// Stored forms that do not make a valid session are refused.
#[test]
fn serde_json_refuses_corrupt_state() {
    let good = serde_json::to_value(rich_state()).unwrap();
    let outbound_at = |v: &serde_json::Value, i: usize| v["outbound"][i].clone();
    assert!(outbound_at(&good, 0).get("Publish").is_some(), "{good}");

    // Bytes that are not a PUBLISH.
    let mut v = good.clone();
    v["outbound"][0] = serde_json::json!({ "Publish": [1, 2, 3] });
    assert!(serde_json::from_value::<SessionState>(v).is_err());
    // A PUBLISH with trailing bytes.
    let mut v = good.clone();
    let mut bytes: Vec<u8> =
        serde_json::from_value(outbound_at(&good, 0)["Publish"].clone()).unwrap();
    bytes.push(0);
    v["outbound"][0] = serde_json::json!({ "Publish": bytes });
    assert!(serde_json::from_value::<SessionState>(v).is_err());
    // Packet identifier 0.
    let mut v = good.clone();
    v["outbound"][1] = serde_json::json!({ "Release": 0 });
    assert!(serde_json::from_value::<SessionState>(v).is_err());
    let mut v = good.clone();
    v["inbound_qos2"] = serde_json::json!([0]);
    assert!(serde_json::from_value::<SessionState>(v).is_err());
    // Two entries with one identifier.
    let mut v = good.clone();
    v["outbound"][1] = serde_json::json!({ "Release": 11 });
    assert!(serde_json::from_value::<SessionState>(v).is_err());
    let mut v = good;
    v["inbound_qos2"] = serde_json::json!([5, 5]);
    assert!(serde_json::from_value::<SessionState>(v).is_err());
}
