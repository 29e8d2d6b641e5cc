//! DISCONNECT and AUTH diagnostics (Reason String, User Properties) are
//! dropped when they would push the packet over the receiver's Maximum
//! Packet Size (MQTT-3.14.2-3/4, MQTT-3.15.2-2/3), on both sides.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::num::NonZeroU32;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use mqtt_session::client::{Client, ClientConfig, Event as ClientEvent};
use mqtt_session::server::{Accept, Event as ServerEvent, ServerConfig, ServerConnection};
use mqtt_session::CloseReason;
use mqtt_wire::{
    AuthProperties, AuthReasonCode, ConnAck, Connect, ConnectReasonCode, DecodeConfig,
    DisconnectProperties, DisconnectReasonCode, MqttString, Packet, ProtocolVersion,
    MAX_PACKET_SIZE,
};

const LIMIT: u32 = 24;

fn long_diagnostics() -> (MqttString, MqttString, MqttString) {
    let long = MqttString::try_from("x".repeat(200)).unwrap();
    (long.clone(), MqttString::from_static("k"), long)
}

/// Every packet in `bytes`, with its encoded size.
fn packets(bytes: &[u8], v: ProtocolVersion) -> Vec<(Packet, usize)> {
    let cfg = DecodeConfig::new(v).with_max_packet_size(MAX_PACKET_SIZE);
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    loop {
        let before = buf.len();
        match mqtt_wire::decode(&mut buf, &cfg).unwrap() {
            Some(p) => out.push((p, before - buf.len())),
            None => break,
        }
    }
    assert!(buf.is_empty());
    out
}

/// A server connection whose client announced Maximum Packet Size `LIMIT`
/// (and an authentication method when `auth`), after the CONNECT event.
fn server(auth: bool) -> (ServerConnection, Instant) {
    let now = Instant::now();
    let mut s = ServerConnection::new(ServerConfig::default(), now);
    let mut c = Connect::new(ProtocolVersion::V5, MqttString::from_static("c"));
    c.properties.maximum_packet_size = NonZeroU32::new(LIMIT);
    if auth {
        c.properties.authentication_method = Some(MqttString::from_static("M"));
    }
    let mut b = BytesMut::new();
    mqtt_wire::Encode::encode(&c, ProtocolVersion::V5, &mut b).unwrap();
    s.handle_read(now, &b);
    assert!(matches!(s.poll_event(), Some(ServerEvent::Connect(_))));
    (s, now)
}

#[test]
fn mqtt5_3_14_2_3_3_14_2_4_server_disconnect_drops_diagnostics_to_fit() {
    let (mut s, now) = server(false);
    s.accept(now, Accept::new()).unwrap();
    let _connack = s.poll_transmit().unwrap();
    let (reason, k, v) = long_diagnostics();
    let mut props = DisconnectProperties::default();
    props.reason_string = Some(reason);
    props.user_properties.push(k, v);
    s.disconnect(now, DisconnectReasonCode::ServerShuttingDown, props)
        .unwrap();
    let out = packets(&s.poll_transmit().unwrap(), ProtocolVersion::V5);
    match out.as_slice() {
        [(Packet::Disconnect(d), size)] => {
            assert!(*size <= LIMIT as usize, "{size} > {LIMIT}");
            assert_eq!(d.reason_code, DisconnectReasonCode::ServerShuttingDown);
            assert!(d.properties.reason_string.is_none());
            assert!(d.properties.user_properties.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(s.is_closed());
}

#[test]
fn mqtt5_3_14_2_3_3_14_2_4_server_disconnect_keeps_diagnostics_that_fit() {
    let (mut s, now) = server(false);
    s.accept(now, Accept::new()).unwrap();
    let _connack = s.poll_transmit().unwrap();
    let mut props = DisconnectProperties::default();
    props.reason_string = Some(MqttString::from_static("bye"));
    s.disconnect(now, DisconnectReasonCode::ServerShuttingDown, props)
        .unwrap();
    let out = packets(&s.poll_transmit().unwrap(), ProtocolVersion::V5);
    match out.as_slice() {
        [(Packet::Disconnect(d), _)] => {
            assert_eq!(d.properties.reason_string.as_ref().unwrap(), "bye");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mqtt5_3_15_2_2_3_15_2_3_server_auth_drops_diagnostics_to_fit() {
    let (mut s, now) = server(true);
    let (reason, k, v) = long_diagnostics();
    let mut props = AuthProperties::default();
    props.reason_string = Some(reason);
    props.user_properties.push(k, v);
    s.auth_continue(now, Some(Bytes::from_static(b"n")), props)
        .unwrap();
    let out = packets(&s.poll_transmit().unwrap(), ProtocolVersion::V5);
    match out.as_slice() {
        [(Packet::Auth(a), size)] => {
            assert!(*size <= LIMIT as usize, "{size} > {LIMIT}");
            assert_eq!(a.reason_code, AuthReasonCode::ContinueAuthentication);
            assert_eq!(a.properties.authentication_method.as_ref().unwrap(), "M");
            assert_eq!(
                &a.properties.authentication_data.as_ref().unwrap()[..],
                b"n"
            );
            assert!(a.properties.reason_string.is_none());
            assert!(a.properties.user_properties.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mqtt5_3_14_2_3_3_14_2_4_client_disconnect_drops_diagnostics_to_fit() {
    let now = Instant::now();
    let connect = Connect::new(ProtocolVersion::V5, MqttString::from_static("c"));
    let mut c = Client::new(ClientConfig::new(connect));
    c.connect(now).unwrap();
    let _connect = c.poll_transmit().unwrap();
    let mut ack = ConnAck::new(ConnectReasonCode::Success);
    ack.properties.maximum_packet_size = NonZeroU32::new(LIMIT);
    let mut b = BytesMut::new();
    mqtt_wire::Encode::encode(&ack, ProtocolVersion::V5, &mut b).unwrap();
    c.handle_read(now, &b);
    assert!(matches!(
        c.poll_event(),
        Some(ClientEvent::Connected { .. })
    ));
    let (reason, k, v) = long_diagnostics();
    let mut props = DisconnectProperties::default();
    props.reason_string = Some(reason);
    props.user_properties.push(k, v);
    c.disconnect(now, DisconnectReasonCode::UnspecifiedError, props)
        .unwrap();
    let out = packets(&c.poll_transmit().unwrap(), ProtocolVersion::V5);
    match out.as_slice() {
        [(Packet::Disconnect(d), size)] => {
            assert!(*size <= LIMIT as usize, "{size} > {LIMIT}");
            assert_eq!(d.reason_code, DisconnectReasonCode::UnspecifiedError);
            assert!(d.properties.reason_string.is_none());
            assert!(d.properties.user_properties.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c.poll_event(),
        Some(ClientEvent::Disconnected(CloseReason::LocalDisconnect(
            DisconnectReasonCode::UnspecifiedError
        )))
    ));
}
