//! Conformance tests for the server side of one connection
//! ([`ServerConnection`]), driven by a scripted fake client: packets are
//! built with `mqtt_wire` types and encoded (or written as raw bytes where
//! a packet must be malformed), fed to `handle_read`, and everything the
//! server writes is decoded back with `mqtt_wire::decode`. Time is a fake
//! clock (`t0 + n`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::num::{NonZeroU16, NonZeroU32};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_session::server::{Accept, Event, ServerConfig, ServerConnection};
use mqtt_session::{AckMode, CloseReason, Error, OutboundMessage, SessionState};
use mqtt_wire::{
    AckProperties, Auth, AuthProperties, AuthReasonCode, ConnAck, ConnAckProperties, Connect,
    ConnectReasonCode, DecodeConfig, DecodeError, Delivery, Disconnect, DisconnectProperties,
    DisconnectReasonCode, Encode, LastWill, MaximumQoS, MqttString, Packet, PacketId,
    ProtocolVersion, PubAck, PubAckReasonCode, PubComp, PubRec, PubRel, Publish, QoS,
    SubAckReasonCode, Subscribe, Subscription, SubscriptionId, SubscriptionOptions, TopicFilter,
    TopicName, UnsubAckReasonCode, Unsubscribe, MAX_PACKET_SIZE,
};

const V5: ProtocolVersion = ProtocolVersion::V5;
const V311: ProtocolVersion = ProtocolVersion::V3_1_1;

// ---------------------------------------------------------------------------
// The scripted fake client
// ---------------------------------------------------------------------------

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn topic(s: &str) -> TopicName {
    TopicName::try_from(s.to_owned()).unwrap()
}

fn filter(s: &str) -> TopicFilter {
    TopicFilter::try_from(s.to_owned()).unwrap()
}

fn mstr(s: &str) -> MqttString {
    MqttString::try_from(s.to_owned()).unwrap()
}

fn enc<P: Encode>(v: ProtocolVersion, p: &P) -> Vec<u8> {
    let mut b = BytesMut::new();
    p.encode(v, &mut b).unwrap();
    b.to_vec()
}

/// Decodes everything the server wrote, as `v` packets, with the size of
/// each one on the wire. Panics on bytes that are not whole valid packets.
fn decode_sized(v: ProtocolVersion, bytes: &[u8]) -> Vec<(Packet, usize)> {
    let cfg = DecodeConfig::new(v).with_max_packet_size(MAX_PACKET_SIZE);
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while !buf.is_empty() {
        let before = buf.len();
        match mqtt_wire::decode(&mut buf, &cfg) {
            Ok(Some(p)) => out.push((p, before - buf.len())),
            other => panic!(
                "server wrote undecodable bytes: {other:?}, rest {:?}",
                &buf[..]
            ),
        }
    }
    out
}

fn connect(v: ProtocolVersion, id: &str) -> Connect {
    Connect::new(v, mstr(id))
}

fn publish(t: &str, payload: &'static [u8], qos: QoS, id: u16) -> Publish {
    Publish::new(topic(t), Bytes::from_static(payload)).with_delivery(Delivery::new(qos, pid(id)))
}

fn subscribe(id: u16, filters: &[(&str, QoS)]) -> Subscribe {
    let mut s = Subscribe::new(
        pid(id),
        filter(filters[0].0),
        SubscriptionOptions::new(filters[0].1),
    );
    for (f, q) in &filters[1..] {
        s.subscriptions.push(Subscription {
            filter: filter(f),
            options: SubscriptionOptions::new(*q),
        });
    }
    s
}

fn unsubscribe(id: u16, filters: &[&str]) -> Unsubscribe {
    let mut u = Unsubscribe::new(pid(id), filter(filters[0]));
    for f in &filters[1..] {
        u.filters.push(filter(f));
    }
    u
}

/// A scripted client talking to one `ServerConnection`.
struct Fake {
    v: ProtocolVersion,
    t0: Instant,
    now: Instant,
    s: ServerConnection,
}

impl Fake {
    fn new(v: ProtocolVersion, config: ServerConfig) -> Self {
        let t0 = Instant::now();
        Fake {
            v,
            t0,
            now: t0,
            s: ServerConnection::new(config, t0),
        }
    }

    /// Moves the fake clock to `t0 + ms`.
    fn at_ms(&mut self, ms: u64) {
        self.now = self.t0 + Duration::from_millis(ms);
    }

    fn send<P: Encode>(&mut self, p: &P) {
        let b = enc(self.v, p);
        self.s.handle_read(self.now, &b);
    }

    fn raw(&mut self, b: &[u8]) {
        self.s.handle_read(self.now, b);
    }

    fn out_bytes(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        while let Some(b) = self.s.poll_transmit() {
            v.extend_from_slice(&b);
        }
        v
    }

    fn out_sized(&mut self) -> Vec<(Packet, usize)> {
        let b = self.out_bytes();
        decode_sized(self.v, &b)
    }

    fn out(&mut self) -> Vec<Packet> {
        self.out_sized().into_iter().map(|(p, _)| p).collect()
    }

    fn events(&mut self) -> Vec<Event> {
        let mut v = Vec::new();
        while let Some(e) = self.s.poll_event() {
            v.push(e);
        }
        v
    }

    /// Expects exactly one event, `Connect`, and returns it.
    fn expect_connect(&mut self) -> Connect {
        match self.events().as_slice() {
            [Event::Connect(c)] => (**c).clone(),
            other => panic!("expected one Connect event, got {other:?}"),
        }
    }

    /// Expects the events to end with `Closed` and returns its reason.
    fn expect_closed(&mut self) -> CloseReason {
        let ev = self.events();
        assert!(self.s.is_closed(), "connection not closed; events {ev:?}");
        match ev.last() {
            Some(Event::Closed(r)) => r.clone(),
            _ => panic!("expected a Closed event last, got {ev:?}"),
        }
    }

    fn accept(&mut self, a: Accept) -> ConnAck {
        self.s.accept(self.now, a).unwrap();
        let out = self.out();
        match out.first() {
            Some(Packet::ConnAck(c)) => (**c).clone(),
            other => panic!("expected CONNACK first, got {other:?}"),
        }
    }
}

/// A connection through CONNECT and a plain accept; the CONNACK is checked
/// to be 0x00 and drained.
fn connected_with(v: ProtocolVersion, config: ServerConfig, c: Connect) -> Fake {
    let mut f = Fake::new(v, config);
    f.send(&c);
    f.expect_connect();
    f.s.accept(f.now, Accept::new()).unwrap();
    match f.out().as_slice() {
        [Packet::ConnAck(a)] => assert_eq!(a.reason_code, ConnectReasonCode::Success),
        other => panic!("expected one CONNACK, got {other:?}"),
    }
    assert!(f.s.is_connected());
    f
}

fn connected(v: ProtocolVersion) -> Fake {
    connected_with(v, ServerConfig::default(), connect(v, "c1"))
}

fn config(edit: impl FnOnce(&mut ServerConfig)) -> ServerConfig {
    let mut c = ServerConfig::default();
    edit(&mut c);
    c
}

fn violation_code(r: &CloseReason) -> DisconnectReasonCode {
    match r {
        CloseReason::ProtocolViolation { code, .. } => *code,
        CloseReason::Malformed(e) => e.reason_code(),
        other => panic!("expected a protocol violation, got {other:?}"),
    }
}

/// The only packet written must be a DISCONNECT; returns its code.
fn single_disconnect(out: &[Packet]) -> DisconnectReasonCode {
    match out {
        [Packet::Disconnect(d)] => d.reason_code,
        other => panic!("expected one DISCONNECT, got {other:?}"),
    }
}

fn published_ids(out: &[Packet]) -> Vec<u16> {
    out.iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => p.packet_id().map(PacketId::get),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------
// CONNECT and CONNACK
// ---------------------------------------------------------------------------

#[test]
fn mqtt311_3_1_4_4_3_2_0_1_3_2_2_1_accepted_connect_gets_connack_0_first() {
    let mut f = Fake::new(V311, ServerConfig::default());
    f.send(&connect(V311, "dev1"));
    let c = f.expect_connect();
    assert_eq!(c.client_id, "dev1");
    // Nothing is written before the application answers.
    assert!(f.out_bytes().is_empty());
    f.s.accept(f.now, Accept::new()).unwrap();
    let b = f.out_bytes();
    // CONNACK, Session Present 0, return code 0 (3.1.1 §3.2).
    assert_eq!(b, [0x20, 0x02, 0x00, 0x00]);
    assert!(f.s.is_connected());
}

#[test]
fn mqtt5_3_1_4_5_3_2_0_1_3_2_2_2_accepted_connect_gets_connack_0x00_first() {
    let mut f = Fake::new(V5, ServerConfig::default());
    f.send(&connect(V5, "dev1"));
    f.expect_connect();
    assert!(f.out_bytes().is_empty());
    let ack = f.accept(Accept::new());
    assert_eq!(ack.reason_code, ConnectReasonCode::Success);
    assert!(!ack.session_present);
    assert!(f.s.is_connected());
}

#[test]
fn mqtt311_3_2_2_1_clean_session_never_session_present() {
    let mut f = Fake::new(V311, ServerConfig::default());
    f.send(&connect(V311, "dev1")); // CleanSession 1
    f.expect_connect();
    // Claiming a session for a CleanSession 1 client is refused, nothing sent.
    let mut a = Accept::new();
    a.session_present = true;
    assert!(matches!(f.s.accept(f.now, a), Err(Error::InvalidState(_))));
    assert!(f.out_bytes().is_empty());
    assert!(matches!(
        f.s.accept(f.now, Accept::resume(SessionState::new())),
        Err(Error::InvalidState(_))
    ));
    assert!(f.out_bytes().is_empty());
    let ack = f.accept(Accept::new());
    assert!(!ack.session_present);
    assert_eq!(ack.reason_code, ConnectReasonCode::Success);
}

#[test]
fn mqtt5_3_2_2_2_clean_start_never_session_present() {
    let mut f = Fake::new(V5, ServerConfig::default());
    f.send(&connect(V5, "dev1")); // Clean Start 1
    f.expect_connect();
    assert!(matches!(
        f.s.accept(f.now, Accept::resume(SessionState::new())),
        Err(Error::InvalidState(_))
    ));
    assert!(f.out_bytes().is_empty());
    let ack = f.accept(Accept::new());
    assert!(!ack.session_present);
    assert_eq!(ack.reason_code, ConnectReasonCode::Success);
}

fn session_present_follows_stored_state(v: ProtocolVersion) {
    let mut c = connect(v, "dev1");
    c.clean_start = false;
    // Stored state: Session Present 1.
    let mut f = Fake::new(v, ServerConfig::default());
    f.send(&c);
    f.expect_connect();
    let ack = f.accept(Accept::resume(SessionState::new()));
    assert!(ack.session_present);
    assert_eq!(ack.reason_code, ConnectReasonCode::Success);
    // No stored state: Session Present 0.
    let mut f = Fake::new(v, ServerConfig::default());
    f.send(&c);
    f.expect_connect();
    let ack = f.accept(Accept::new());
    assert!(!ack.session_present);
    assert_eq!(ack.reason_code, ConnectReasonCode::Success);
}

#[test]
fn mqtt311_3_2_2_2_3_2_2_3_session_present_follows_stored_state() {
    session_present_follows_stored_state(V311);
}

#[test]
fn mqtt5_3_2_2_3_session_present_follows_stored_state() {
    session_present_follows_stored_state(V5);
}

#[test]
fn mqtt311_3_2_2_4_3_2_2_5_refusal_has_session_present_0_then_closes() {
    let mut c = connect(V311, "dev1");
    c.clean_start = false;
    let mut f = Fake::new(V311, ServerConfig::default());
    f.send(&c);
    f.expect_connect();
    // A success code is not a refusal.
    assert!(f
        .s
        .reject(f.now, ConnectReasonCode::Success, Default::default())
        .is_err());
    assert!(f.out_bytes().is_empty());
    f.s.reject(f.now, ConnectReasonCode::NotAuthorized, Default::default())
        .unwrap();
    // CONNACK, Session Present 0, return code 5 (not authorized).
    assert_eq!(f.out_bytes(), [0x20, 0x02, 0x00, 0x05]);
    let r = f.expect_closed();
    assert_eq!(r.refusal(), Some(ConnectReasonCode::NotAuthorized));
    assert_eq!(f.s.poll_timeout(), None);
    // Closed: nothing more is read or written.
    f.send(&Packet::PingReq);
    assert!(f.out_bytes().is_empty());
    assert!(f.events().is_empty());
}

#[test]
fn mqtt5_3_2_2_6_3_2_2_7_refusal_has_session_present_0_then_closes() {
    let mut c = connect(V5, "dev1");
    c.clean_start = false;
    let mut f = Fake::new(V5, ServerConfig::default());
    f.send(&c);
    f.expect_connect();
    f.s.reject(f.now, ConnectReasonCode::ServerBusy, Default::default())
        .unwrap();
    match f.out().as_slice() {
        [Packet::ConnAck(a)] => {
            assert_eq!(a.reason_code, ConnectReasonCode::ServerBusy);
            assert!(!a.session_present);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(f.expect_closed(), CloseReason::Refused(_)));
    f.send(&Packet::PingReq);
    assert!(f.out_bytes().is_empty());
    assert!(f.events().is_empty());
}

#[test]
fn mqtt311_3_2_2_6_no_fitting_return_code_closes_without_connack() {
    let mut f = Fake::new(V311, ServerConfig::default());
    f.send(&connect(V311, "dev1"));
    f.expect_connect();
    // The application closes instead of answering: no CONNACK at all.
    f.s.disconnect(
        f.now,
        DisconnectReasonCode::UnspecifiedError,
        Default::default(),
    )
    .unwrap();
    assert!(f.out_bytes().is_empty());
    assert!(matches!(f.expect_closed(), CloseReason::LocalDisconnect(_)));
}

#[test]
fn mqtt311_3_1_0_2_second_connect_closes_without_a_packet() {
    let mut f = connected(V311);
    let mut b = enc(V311, &connect(V311, "dev1"));
    b.extend(enc(V311, &Packet::PingReq)); // not processed after the close
    f.raw(&b);
    // 3.1.1 has no server DISCONNECT: the network connection is just closed.
    assert!(f.out_bytes().is_empty());
    let r = f.expect_closed();
    assert_eq!(violation_code(&r), DisconnectReasonCode::ProtocolError);
}

#[test]
fn mqtt5_3_1_0_2_3_2_0_2_second_connect_is_protocol_error_no_second_connack() {
    let mut f = connected(V5);
    let mut b = enc(V5, &connect(V5, "dev1"));
    b.extend(enc(V5, &Packet::PingReq));
    f.raw(&b);
    // No second CONNACK, no PINGRESP: DISCONNECT 0x82 only.
    assert_eq!(
        single_disconnect(&f.out()),
        DisconnectReasonCode::ProtocolError
    );
    let r = f.expect_closed();
    assert_eq!(violation_code(&r), DisconnectReasonCode::ProtocolError);
}

#[test]
fn mqtt5_3_2_0_2_at_most_one_connack() {
    let mut f = Fake::new(V5, ServerConfig::default());
    f.send(&connect(V5, "dev1"));
    f.expect_connect();
    f.accept(Accept::new());
    // A second answer of any kind is refused and writes nothing.
    assert!(matches!(
        f.s.accept(f.now, Accept::new()),
        Err(Error::InvalidState(_))
    ));
    assert!(matches!(
        f.s.reject(f.now, ConnectReasonCode::NotAuthorized, Default::default()),
        Err(Error::InvalidState(_))
    ));
    assert!(f.out_bytes().is_empty());
    assert!(f.s.is_connected());
    // A refused connection cannot be accepted afterwards either.
    let mut f = Fake::new(V5, ServerConfig::default());
    f.send(&connect(V5, "dev1"));
    f.expect_connect();
    f.s.reject(f.now, ConnectReasonCode::Banned, Default::default())
        .unwrap();
    assert_eq!(f.out().len(), 1);
    assert!(f.s.accept(f.now, Accept::new()).is_err());
    assert!(f.out_bytes().is_empty());
}

/// A 3.1.1 / 5.0 CONNECT with its protocol name's last byte replaced.
fn connect_with_name_byte(v: ProtocolVersion, last: u8) -> Vec<u8> {
    let mut b = enc(v, &connect(v, "dev1"));
    // 0x10, remaining length (1 byte), 0x00 0x04 'M' 'Q' 'T' 'T', level
    assert_eq!(&b[2..8], b"\x00\x04MQTT");
    b[7] = last;
    b
}

#[test]
fn mqtt311_3_1_2_1_unknown_protocol_name_closed_without_connack() {
    let mut f = Fake::new(V311, ServerConfig::default());
    let mut b = connect_with_name_byte(V311, b'X');
    b.extend(enc(V311, &Packet::PingReq));
    f.raw(&b);
    assert!(f.out_bytes().is_empty());
    let r = f.expect_closed();
    assert!(
        matches!(
            r,
            CloseReason::Malformed(DecodeError::UnsupportedProtocol { .. })
        ),
        "{r:?}"
    );
}

#[test]
fn mqtt5_3_1_2_1_unknown_protocol_name_closed_without_connack() {
    let mut f = Fake::new(V5, ServerConfig::default());
    f.raw(&connect_with_name_byte(V5, b'X'));
    // The server does not continue under MQTT rules; it may send CONNACK
    // 0x84 but here sends nothing, and closes.
    assert!(f.out_bytes().is_empty());
    let r = f.expect_closed();
    assert!(
        matches!(
            r,
            CloseReason::Malformed(DecodeError::UnsupportedProtocol { .. })
        ),
        "{r:?}"
    );
}

fn unsupported_level_refused(v: ProtocolVersion) {
    let mut f = Fake::new(v, ServerConfig::default());
    let mut b = enc(v, &connect(v, "dev1"));
    b[8] = 6; // protocol level 6: not a version this server speaks
    b.extend(enc(V311, &Packet::PingReq));
    f.raw(&b);
    // The client's version is unknown, so the CONNACK uses the form every
    // version reads: return code 0x01 (unacceptable protocol version).
    let out = f.out_bytes();
    assert_eq!(out, [0x20, 0x02, 0x00, 0x01]);
    let r = f.expect_closed();
    assert_eq!(
        r.refusal(),
        Some(ConnectReasonCode::UnsupportedProtocolVersion)
    );
}

#[test]
fn mqtt311_3_1_2_2_unsupported_level_connack_0x01_then_close() {
    unsupported_level_refused(V311);
}

#[test]
fn mqtt5_3_1_2_2_unsupported_version_connack_then_close() {
    unsupported_level_refused(V5);
}

fn accepts_short_alnum_ids(v: ProtocolVersion) {
    let ids = [
        "a",
        "Z",
        "0",
        "abc123XYZ",
        "0123456789abcdefghijABC", // 23 bytes
        "zyxwvutsrqponmlkjihgfed",
    ];
    for id in ids {
        assert!(id.len() <= 23);
        for clean in [true, false] {
            let mut c = connect(v, id);
            c.clean_start = clean;
            let mut f = Fake::new(v, ServerConfig::default());
            f.send(&c);
            // Surfaced for the application, not refused by the connection.
            assert_eq!(f.expect_connect().client_id, id);
            assert!(f.out_bytes().is_empty());
            let ack = f.accept(Accept::new());
            assert_eq!(ack.reason_code, ConnectReasonCode::Success);
        }
    }
}

#[test]
fn mqtt311_3_1_3_5_accepts_1_to_23_alphanumeric_client_ids() {
    accepts_short_alnum_ids(V311);
}

#[test]
fn mqtt5_3_1_3_5_accepts_1_to_23_alphanumeric_client_ids() {
    accepts_short_alnum_ids(V5);
}

#[test]
fn mqtt311_3_1_3_8_empty_id_with_clean_session_0_refused_0x02() {
    let mut c = connect(V311, "");
    c.clean_start = false;
    let mut f = Fake::new(V311, ServerConfig::default());
    let mut b = enc(V311, &c);
    b.extend(enc(V311, &Packet::PingReq));
    f.raw(&b);
    // CONNACK 0x02 (identifier rejected), Session Present 0, and close;
    // the application never sees it, the PINGREQ is not answered.
    assert_eq!(f.out_bytes(), [0x20, 0x02, 0x00, 0x02]);
    let ev = f.events();
    assert!(!ev.iter().any(|e| matches!(e, Event::Connect(_))), "{ev:?}");
    assert!(matches!(
        ev.last(),
        Some(Event::Closed(r)) if r.refusal() == Some(ConnectReasonCode::ClientIdentifierNotValid)
    ));
    assert!(f.s.is_closed());
    // With CleanSession 1 an empty identifier is the application's call.
    let mut f = Fake::new(V311, ServerConfig::default());
    f.send(&connect(V311, ""));
    assert!(f.expect_connect().client_id.is_empty());
    assert!(f.out_bytes().is_empty());
}

#[test]
fn mqtt311_3_1_3_9_rejected_client_id_connack_0x02_then_close() {
    let mut f = Fake::new(V311, ServerConfig::default());
    f.send(&connect(V311, "taken-id"));
    f.expect_connect();
    f.s.reject(
        f.now,
        ConnectReasonCode::ClientIdentifierNotValid,
        Default::default(),
    )
    .unwrap();
    assert_eq!(f.out_bytes(), [0x20, 0x02, 0x00, 0x02]);
    assert_eq!(
        f.expect_closed().refusal(),
        Some(ConnectReasonCode::ClientIdentifierNotValid)
    );
}

#[test]
fn mqtt5_3_1_3_8_rejected_client_id_connack_0x85_then_close() {
    let mut f = Fake::new(V5, ServerConfig::default());
    f.send(&connect(V5, "taken-id"));
    f.expect_connect();
    f.s.reject(
        f.now,
        ConnectReasonCode::ClientIdentifierNotValid,
        Default::default(),
    )
    .unwrap();
    match f.out().as_slice() {
        [Packet::ConnAck(a)] => {
            assert_eq!(u8::from(a.reason_code), 0x85);
            assert!(!a.session_present);
        }
        other => panic!("{other:?}"),
    }
    assert!(f.s.is_closed());
    assert_eq!(
        f.expect_closed().refusal(),
        Some(ConnectReasonCode::ClientIdentifierNotValid)
    );
}

fn malformed_connect_closed_silently(v: ProtocolVersion) {
    // Reserved flag (bit 0 of the Connect Flags) set.
    let mut b = enc(v, &connect(v, "dev1"));
    assert_eq!(b[9], 0x02); // Clean Start only
    b[9] |= 0x01;
    let mut f = Fake::new(v, ServerConfig::default());
    f.raw(&b);
    assert!(f.out_bytes().is_empty());
    assert_eq!(
        f.expect_closed(),
        CloseReason::Malformed(DecodeError::ConnectReservedFlag)
    );
    // A first packet other than CONNECT: closed, nothing written.
    let mut f = Fake::new(v, ServerConfig::default());
    f.send(&Packet::PingReq);
    assert!(f.out_bytes().is_empty());
    assert!(f.s.is_closed());
    // Bytes that are no packet at all (reserved type 0).
    let mut f = Fake::new(v, ServerConfig::default());
    f.raw(&[0x00, 0x00]);
    assert!(f.out_bytes().is_empty());
    assert!(matches!(f.expect_closed(), CloseReason::Malformed(_)));
}

#[test]
fn mqtt311_3_1_4_1_malformed_connect_closed_without_connack() {
    malformed_connect_closed_silently(V311);
}

#[test]
fn mqtt5_3_1_4_1_malformed_connect_closed_without_connack() {
    malformed_connect_closed_silently(V5);
}

/// CONNECT followed, in the same read, by packets the client may send
/// before the CONNACK.
fn connect_then_more(v: ProtocolVersion) -> Vec<u8> {
    let mut b = enc(v, &connect(v, "dev1"));
    b.extend(enc(v, &subscribe(1, &[("a/#", QoS::AtLeastOnce)])));
    b.extend(enc(v, &publish("a/b", b"x", QoS::AtLeastOnce, 2)));
    b.extend(enc(v, &Packet::PingReq));
    b
}

fn input_after_refusal_discarded(v: ProtocolVersion) {
    let mut f = Fake::new(v, ServerConfig::default());
    f.raw(&connect_then_more(v));
    f.expect_connect();
    assert!(f.out_bytes().is_empty());
    f.s.reject(
        f.now,
        ConnectReasonCode::BadUserNameOrPassword,
        Default::default(),
    )
    .unwrap();
    // Only the CONNACK; no SUBACK, PUBACK or PINGRESP, no events but Closed.
    match f.out().as_slice() {
        [Packet::ConnAck(a)] => {
            assert_eq!(a.reason_code, ConnectReasonCode::BadUserNameOrPassword)
        }
        other => panic!("{other:?}"),
    }
    let ev = f.events();
    assert!(matches!(ev.as_slice(), [Event::Closed(_)]), "{ev:?}");
    // Data arriving later is not processed either.
    f.send(&publish("a/b", b"y", QoS::AtLeastOnce, 3));
    f.send(&Packet::PingReq);
    assert!(f.out_bytes().is_empty());
    assert!(f.events().is_empty());
}

#[test]
fn mqtt311_3_1_4_5_data_after_rejected_connect_not_processed() {
    input_after_refusal_discarded(V311);
}

#[test]
fn mqtt5_3_1_4_6_data_after_rejected_connect_ignored() {
    input_after_refusal_discarded(V5);
}

fn input_before_connack_processed_after_accept(v: ProtocolVersion) {
    let mut f = Fake::new(v, ServerConfig::default());
    f.raw(&connect_then_more(v));
    f.expect_connect();
    // Buffered, not answered before the CONNACK.
    assert!(f.out_bytes().is_empty());
    f.s.accept(f.now, Accept::new()).unwrap();
    let out = f.out();
    assert!(matches!(out[0], Packet::ConnAck(_)), "{out:?}");
    assert!(
        matches!(&out[1], Packet::PubAck(a) if a.packet_id == pid(2)),
        "{out:?}"
    );
    assert_eq!(out[2], Packet::PingResp);
    assert_eq!(out.len(), 3);
    let ev = f.events();
    assert!(
        matches!(&ev[0], Event::Subscribe(s) if s.packet_id == pid(1)),
        "{ev:?}"
    );
    assert!(
        matches!(&ev[1], Event::Publish(p) if p.packet_id() == Some(pid(2))),
        "{ev:?}"
    );
    assert_eq!(ev.len(), 2);
}

#[test]
fn mqtt311_3_2_0_1_packets_sent_before_connack_wait_for_accept() {
    input_before_connack_processed_after_accept(V311);
}

#[test]
fn mqtt5_3_2_0_1_packets_sent_before_connack_wait_for_accept() {
    input_before_connack_processed_after_accept(V5);
}

fn nothing_before_connack(v: ProtocolVersion) {
    let mut f = Fake::new(v, ServerConfig::default());
    // Before CONNECT and before the answer, every command that would
    // write a packet is refused.
    for step in 0..2 {
        if step == 1 {
            f.send(&connect(v, "dev1"));
            f.expect_connect();
        }
        let msg = publish("a", b"x", QoS::AtMostOnce, 1);
        assert_eq!(f.s.publish(f.now, msg), Err(Error::NotConnected));
        let msg = publish("a", b"x", QoS::AtLeastOnce, 1);
        assert_eq!(f.s.publish(f.now, msg), Err(Error::NotConnected));
        assert_eq!(
            f.s.suback(
                f.now,
                pid(1),
                vec![SubAckReasonCode::GrantedQoS0],
                Default::default()
            ),
            Err(Error::NotConnected)
        );
        assert_eq!(
            f.s.unsuback(f.now, pid(1), vec![], Default::default()),
            Err(Error::NotConnected)
        );
        assert_eq!(
            f.s.ack(f.now, pid(1), PubAckReasonCode::Success),
            Err(Error::NotConnected)
        );
        assert!(f.s.auth_continue(f.now, None, Default::default()).is_err());
        assert!(f.out_bytes().is_empty());
    }
    // The answer is still possible, and CONNACK is the first packet.
    f.s.accept(f.now, Accept::new()).unwrap();
    assert!(matches!(f.out().as_slice(), [Packet::ConnAck(_)]));
}

#[test]
fn mqtt311_3_2_0_1_no_packet_before_connack() {
    nothing_before_connack(V311);
}

#[test]
fn mqtt5_3_2_0_1_no_packet_other_than_auth_before_connack() {
    nothing_before_connack(V5);
}

#[test]
fn mqtt5_3_1_4_2_failed_authentication_refused_and_closed() {
    for code in [
        ConnectReasonCode::BadUserNameOrPassword,
        ConnectReasonCode::NotAuthorized,
        ConnectReasonCode::Banned,
    ] {
        let mut c = connect(V5, "dev1");
        c.username = Some(mstr("user"));
        c.password = Some(Bytes::from_static(b"wrong"));
        let mut f = Fake::new(V5, ServerConfig::default());
        f.send(&c);
        let got = f.expect_connect();
        assert_eq!(got.username.as_ref().map(MqttString::as_str), Some("user"));
        f.s.reject(f.now, code, Default::default()).unwrap();
        match f.out().as_slice() {
            [Packet::ConnAck(a)] => assert_eq!(a.reason_code, code),
            other => panic!("{other:?}"),
        }
        assert_eq!(f.expect_closed().refusal(), Some(code));
        // CONNACK is the only packet; no DISCONNECT follows a refusal.
        assert!(f
            .s
            .disconnect(
                f.now,
                DisconnectReasonCode::NotAuthorized,
                Default::default()
            )
            .is_err());
        assert!(f.out_bytes().is_empty());
    }
}

#[test]
fn connect_deadline_closes_silently() {
    // No CONNECT at all.
    let mut f = Fake::new(V5, ServerConfig::default());
    let deadline = f.t0 + Duration::from_secs(10);
    assert_eq!(f.s.poll_timeout(), Some(deadline));
    f.at_ms(9_999);
    f.s.handle_timeout(f.now); // spurious: nothing happens
    assert!(!f.s.is_closed());
    assert!(f.events().is_empty());
    f.at_ms(10_000);
    f.s.handle_timeout(f.now);
    assert!(f.out_bytes().is_empty());
    assert_eq!(f.expect_closed(), CloseReason::ConnectTimeout);
    assert_eq!(f.s.poll_timeout(), None);

    // CONNECT arrived but the application never answered: same deadline,
    // counted from the transport's acceptance; no CONNACK is written.
    let mut f = Fake::new(V311, ServerConfig::default());
    f.at_ms(4_000);
    f.send(&connect(V311, "dev1"));
    f.expect_connect();
    assert_eq!(f.s.poll_timeout(), Some(f.t0 + Duration::from_secs(10)));
    f.at_ms(10_000);
    f.s.handle_timeout(f.now);
    assert!(f.out_bytes().is_empty());
    assert_eq!(f.expect_closed(), CloseReason::ConnectTimeout);
    assert!(f.s.accept(f.now, Accept::new()).is_err());
    assert!(f.out_bytes().is_empty());
}

#[test]
fn mqtt5_3_2_2_22_client_keep_alive_enforced_without_server_keep_alive() {
    let mut c = connect(V5, "dev1");
    c.keep_alive = 10;
    let mut f = Fake::new(V5, ServerConfig::default());
    f.send(&c);
    f.expect_connect();
    let ack = f.accept(Accept::new());
    assert_eq!(ack.properties.server_keep_alive, None);
    // 1.5 times the client's Keep Alive from the last packet received.
    assert_eq!(f.s.poll_timeout(), Some(f.t0 + Duration::from_secs(15)));
    f.at_ms(10_000);
    f.send(&Packet::PingReq);
    assert_eq!(f.out(), [Packet::PingResp]);
    assert_eq!(f.s.poll_timeout(), Some(f.t0 + Duration::from_secs(25)));
    f.at_ms(24_999);
    f.s.handle_timeout(f.now);
    assert!(!f.s.is_closed());
    f.at_ms(25_000);
    f.s.handle_timeout(f.now);
    assert_eq!(
        single_disconnect(&f.out()),
        DisconnectReasonCode::KeepAliveTimeout
    );
    assert_eq!(f.expect_closed(), CloseReason::KeepAliveTimeout);

    // With a Server Keep Alive, that one is announced and enforced.
    let mut f = Fake::new(V5, config(|c| c.server_keep_alive = Some(4)));
    f.send(&c);
    f.expect_connect();
    let ack = f.accept(Accept::new());
    assert_eq!(ack.properties.server_keep_alive, Some(4));
    assert_eq!(f.s.poll_timeout(), Some(f.t0 + Duration::from_secs(6)));
    f.at_ms(6_000);
    f.s.handle_timeout(f.now);
    assert_eq!(f.expect_closed(), CloseReason::KeepAliveTimeout);
}

#[test]
fn mqtt311_keep_alive_expiry_closes_without_packet() {
    let mut c = connect(V311, "dev1");
    c.keep_alive = 2;
    let mut f = Fake::new(V311, ServerConfig::default());
    f.send(&c);
    f.expect_connect();
    f.accept(Accept::new());
    assert_eq!(f.s.poll_timeout(), Some(f.t0 + Duration::from_secs(3)));
    f.at_ms(3_000);
    f.s.handle_timeout(f.now);
    assert!(f.out_bytes().is_empty());
    assert_eq!(f.expect_closed(), CloseReason::KeepAliveTimeout);
}

#[test]
fn mqtt5_3_1_3_7_3_2_2_16_empty_client_id_gets_assigned_identifier() {
    let mut f = Fake::new(V5, ServerConfig::default());
    f.send(&connect(V5, ""));
    assert!(f.expect_connect().client_id.is_empty());
    // Accepting without assigning one is refused: the CONNACK must carry it.
    assert!(matches!(
        f.s.accept(f.now, Accept::new()),
        Err(Error::NotAllowed(_))
    ));
    assert!(f.out_bytes().is_empty());
    assert!(!f.s.is_connected());
    let ack = f.accept(Accept::new().with_assigned_client_id(mstr("auto-7f3a")));
    assert_eq!(ack.reason_code, ConnectReasonCode::Success);
    assert_eq!(
        ack.properties
            .assigned_client_identifier
            .as_ref()
            .map(MqttString::as_str),
        Some("auto-7f3a")
    );
    assert!(f.s.is_connected());
}

#[test]
fn mqtt5_3_1_2_28_response_information_only_when_requested() {
    for requested in [None, Some(false), Some(true)] {
        let mut c = connect(V5, "dev1");
        c.properties.request_response_information = requested;
        let mut f = Fake::new(V5, ServerConfig::default());
        f.send(&c);
        f.expect_connect();
        let mut a = Accept::new();
        a.properties.response_information = Some(mstr("reply/dev1"));
        let ack = f.accept(a);
        let sent = ack.properties.response_information.is_some();
        assert_eq!(sent, requested == Some(true), "requested {requested:?}");
    }
}

#[test]
fn mqtt5_3_2_2_9_maximum_qos_announced_in_connack() {
    for (max, announced) in [
        (QoS::AtMostOnce, Some(MaximumQoS::AtMostOnce)),
        (QoS::AtLeastOnce, Some(MaximumQoS::AtLeastOnce)),
        (QoS::ExactlyOnce, None), // absent means 2
    ] {
        let mut f = Fake::new(V5, config(|c| c.maximum_qos = max));
        f.send(&connect(V5, "dev1"));
        f.expect_connect();
        let ack = f.accept(Accept::new());
        assert_eq!(ack.properties.maximum_qos, announced);
    }
}

#[test]
fn mqtt5_3_2_2_10_limited_maximum_qos_still_accepts_subscribe_qos2() {
    let mut f = connected_with(
        V5,
        config(|c| c.maximum_qos = QoS::AtMostOnce),
        connect(V5, "dev1"),
    );
    f.send(&subscribe(
        4,
        &[
            ("a", QoS::ExactlyOnce),
            ("b", QoS::AtLeastOnce),
            ("c", QoS::AtMostOnce),
        ],
    ));
    let ev = f.events();
    assert!(matches!(ev.as_slice(), [Event::Subscribe(s)] if s.subscriptions.len() == 3));
    assert!(f.out_bytes().is_empty());
    // The application grants at most QoS 0; the subscription stands.
    f.s.suback(
        f.now,
        pid(4),
        vec![SubAckReasonCode::GrantedQoS0; 3],
        Default::default(),
    )
    .unwrap();
    match f.out().as_slice() {
        [Packet::SubAck(a)] => {
            assert_eq!(a.reason_codes, vec![SubAckReasonCode::GrantedQoS0; 3])
        }
        other => panic!("{other:?}"),
    }
    assert!(f.s.is_connected());
}

#[test]
fn mqtt5_3_2_2_12_will_qos_above_maximum_refused_0x9b() {
    let mut c = connect(V5, "dev1");
    let mut w = LastWill::new(topic("dev1/status"), Bytes::from_static(b"gone"));
    w.qos = QoS::ExactlyOnce;
    c.will = Some(w);
    let mut f = Fake::new(V5, config(|c| c.maximum_qos = QoS::AtLeastOnce));
    f.send(&c);
    match f.out().as_slice() {
        [Packet::ConnAck(a)] => {
            assert_eq!(a.reason_code, ConnectReasonCode::QoSNotSupported);
            assert!(!a.session_present);
        }
        other => panic!("{other:?}"),
    }
    let ev = f.events();
    assert!(!ev.iter().any(|e| matches!(e, Event::Connect(_))));
    assert!(f.s.is_closed());
}

#[test]
fn mqtt5_3_2_2_13_will_retain_without_retain_support_refused_0x9a() {
    let mut c = connect(V5, "dev1");
    let mut w = LastWill::new(topic("dev1/status"), Bytes::from_static(b"gone"));
    w.retain = true;
    c.will = Some(w);
    let mut f = Fake::new(V5, config(|c| c.retain_available = false));
    f.send(&c);
    match f.out().as_slice() {
        [Packet::ConnAck(a)] => assert_eq!(a.reason_code, ConnectReasonCode::RetainNotSupported),
        other => panic!("{other:?}"),
    }
    assert!(f.s.is_closed());
    // A Will without retain is fine on the same server.
    let mut c = connect(V5, "dev1");
    c.will = Some(LastWill::new(
        topic("dev1/status"),
        Bytes::from_static(b"gone"),
    ));
    let mut f = Fake::new(V5, config(|c| c.retain_available = false));
    f.send(&c);
    f.expect_connect();
}

fn long_text(n: usize) -> MqttString {
    mstr(&"r".repeat(n))
}

#[test]
fn mqtt5_3_2_2_19_3_2_2_20_connack_diagnostics_dropped_to_fit_client_limit() {
    for limit in [None, Some(64u32)] {
        let mut c = connect(V5, "dev1");
        c.properties.maximum_packet_size = limit.and_then(NonZeroU32::new);
        let mut f = Fake::new(V5, ServerConfig::default());
        f.send(&c);
        f.expect_connect();
        let mut a = Accept::new();
        a.properties.reason_string = Some(long_text(100));
        a.properties
            .user_properties
            .push(mstr("k"), mstr(&"v".repeat(100)));
        f.s.accept(f.now, a).unwrap();
        let out = f.out_sized();
        let (ack, size) = match out.as_slice() {
            [(Packet::ConnAck(a), n)] => (a, *n),
            other => panic!("{other:?}"),
        };
        assert_eq!(ack.reason_code, ConnectReasonCode::Success);
        match limit {
            None => {
                assert!(ack.properties.reason_string.is_some());
                assert_eq!(ack.properties.user_properties.len(), 1);
            }
            Some(max) => {
                assert!(size <= max as usize, "{size} > {max}");
                assert!(ack.properties.reason_string.is_none());
                assert!(ack.properties.user_properties.is_empty());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Enhanced authentication
// ---------------------------------------------------------------------------

fn auth(code: AuthReasonCode, method: &str, data: &'static [u8]) -> Auth {
    let mut a = Auth::new(code);
    a.properties.authentication_method = Some(mstr(method));
    a.properties.authentication_data = Some(Bytes::from_static(data));
    a
}

fn connect_with_method(method: &str) -> Connect {
    let mut c = connect(V5, "dev1");
    c.properties.authentication_method = Some(mstr(method));
    c.properties.authentication_data = Some(Bytes::from_static(b"client-first"));
    c
}

fn single_auth(out: &[Packet]) -> Auth {
    match out {
        [Packet::Auth(a)] => (**a).clone(),
        other => panic!("expected one AUTH, got {other:?}"),
    }
}

#[test]
fn mqtt5_4_12_0_2_enhanced_auth_continue_then_accept_carries_method() {
    let mut f = Fake::new(V5, ServerConfig::default());
    f.send(&connect_with_method("SCRAM-SHA-1"));
    let c = f.expect_connect();
    assert_eq!(
        c.properties
            .authentication_method
            .as_ref()
            .map(MqttString::as_str),
        Some("SCRAM-SHA-1")
    );
    f.s.auth_continue(
        f.now,
        Some(Bytes::from_static(b"server-first")),
        Default::default(),
    )
    .unwrap();
    let a = single_auth(&f.out());
    assert_eq!(a.reason_code, AuthReasonCode::ContinueAuthentication);
    assert_eq!(u8::from(a.reason_code), 0x18);
    assert_eq!(
        a.properties
            .authentication_method
            .as_ref()
            .map(MqttString::as_str),
        Some("SCRAM-SHA-1")
    );
    assert_eq!(
        a.properties.authentication_data.as_deref(),
        Some(&b"server-first"[..])
    );
    // The client answers; the application sees it.
    f.send(&auth(
        AuthReasonCode::ContinueAuthentication,
        "SCRAM-SHA-1",
        b"client-final",
    ));
    match f.events().as_slice() {
        [Event::Auth(a)] => {
            assert_eq!(
                a.properties.authentication_data.as_deref(),
                Some(&b"client-final"[..])
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(f.out_bytes().is_empty());
    let mut acc = Accept::new();
    acc.properties.authentication_data = Some(Bytes::from_static(b"server-final"));
    let ack = f.accept(acc);
    assert_eq!(ack.reason_code, ConnectReasonCode::Success);
    assert_eq!(
        ack.properties
            .authentication_method
            .as_ref()
            .map(MqttString::as_str),
        Some("SCRAM-SHA-1")
    );
    assert_eq!(
        ack.properties.authentication_data.as_deref(),
        Some(&b"server-final"[..])
    );
}

#[test]
fn mqtt5_4_12_0_2_reauthentication_continue_and_success() {
    let mut f = connected_with(V5, ServerConfig::default(), connect_with_method("K"));
    // No re-authentication in progress: success is refused.
    assert!(f.s.auth_success(f.now, None, Default::default()).is_err());
    assert!(f.s.auth_continue(f.now, None, Default::default()).is_err());
    assert!(f.out_bytes().is_empty());
    f.send(&auth(AuthReasonCode::ReAuthenticate, "K", b"again"));
    match f.events().as_slice() {
        [Event::Auth(a)] => assert_eq!(a.reason_code, AuthReasonCode::ReAuthenticate),
        other => panic!("{other:?}"),
    }
    f.s.auth_continue(f.now, Some(Bytes::from_static(b"chal")), Default::default())
        .unwrap();
    let a = single_auth(&f.out());
    assert_eq!(a.reason_code, AuthReasonCode::ContinueAuthentication);
    assert_eq!(
        a.properties
            .authentication_method
            .as_ref()
            .map(MqttString::as_str),
        Some("K")
    );
    f.send(&auth(AuthReasonCode::ContinueAuthentication, "K", b"resp"));
    assert!(matches!(f.events().as_slice(), [Event::Auth(_)]));
    f.s.auth_success(f.now, None, Default::default()).unwrap();
    let a = single_auth(&f.out());
    assert_eq!(a.reason_code, AuthReasonCode::Success);
    assert_eq!(
        a.properties
            .authentication_method
            .as_ref()
            .map(MqttString::as_str),
        Some("K")
    );
    // Over: a second success is refused, the connection stays up.
    assert!(f.s.auth_success(f.now, None, Default::default()).is_err());
    assert!(f.out_bytes().is_empty());
    assert!(f.s.is_connected());
    // Application traffic still flows.
    f.send(&Packet::PingReq);
    assert_eq!(f.out(), [Packet::PingResp]);
}

#[test]
fn mqtt5_4_12_0_1_unsupported_method_refused_0x8c() {
    let mut f = Fake::new(V5, ServerConfig::default());
    f.send(&connect_with_method("UNKNOWN-MECH"));
    f.expect_connect();
    f.s.reject(
        f.now,
        ConnectReasonCode::BadAuthenticationMethod,
        Default::default(),
    )
    .unwrap();
    match f.out().as_slice() {
        [Packet::ConnAck(a)] => {
            assert_eq!(u8::from(a.reason_code), 0x8C);
            assert!(!a.session_present);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        f.expect_closed().refusal(),
        Some(ConnectReasonCode::BadAuthenticationMethod)
    );
}

#[test]
fn mqtt5_4_12_0_4_authentication_rejected_at_any_step_closes() {
    // During the CONNECT exchange, after one AUTH round.
    let mut f = Fake::new(V5, ServerConfig::default());
    f.send(&connect_with_method("K"));
    f.expect_connect();
    f.s.auth_continue(f.now, None, Default::default()).unwrap();
    single_auth(&f.out());
    f.send(&auth(
        AuthReasonCode::ContinueAuthentication,
        "K",
        b"bad-proof",
    ));
    assert!(matches!(f.events().as_slice(), [Event::Auth(_)]));
    f.s.reject(f.now, ConnectReasonCode::NotAuthorized, Default::default())
        .unwrap();
    match f.out().as_slice() {
        [Packet::ConnAck(a)] => assert_eq!(a.reason_code, ConnectReasonCode::NotAuthorized),
        other => panic!("{other:?}"),
    }
    assert!(f.s.is_closed());
    assert_eq!(
        f.expect_closed().refusal(),
        Some(ConnectReasonCode::NotAuthorized)
    );

    // During a re-authentication: DISCONNECT with the failure and close.
    let mut f = connected_with(V5, ServerConfig::default(), connect_with_method("K"));
    f.send(&auth(AuthReasonCode::ReAuthenticate, "K", b"again"));
    assert!(matches!(f.events().as_slice(), [Event::Auth(_)]));
    f.s.disconnect(
        f.now,
        DisconnectReasonCode::NotAuthorized,
        Default::default(),
    )
    .unwrap();
    assert_eq!(
        single_disconnect(&f.out()),
        DisconnectReasonCode::NotAuthorized
    );
    assert!(f.s.is_closed());
}

#[test]
fn mqtt5_4_12_0_6_no_method_no_auth_and_no_method_in_connack() {
    let mut f = Fake::new(V5, ServerConfig::default());
    f.send(&connect(V5, "dev1"));
    f.expect_connect();
    assert!(matches!(
        f.s.auth_continue(f.now, Some(Bytes::from_static(b"x")), Default::default()),
        Err(Error::NotAllowed(_))
    ));
    assert!(f.out_bytes().is_empty());
    // Even when the application puts one in, the CONNACK carries no method.
    let mut a = Accept::new();
    a.properties.authentication_method = Some(mstr("K"));
    a.properties.authentication_data = Some(Bytes::from_static(b"x"));
    let ack = f.accept(a);
    assert_eq!(ack.properties.authentication_method, None);
    assert_eq!(ack.properties.authentication_data, None);
    assert!(f.s.auth_continue(f.now, None, Default::default()).is_err());
    assert!(f.out_bytes().is_empty());
}

#[test]
fn mqtt5_auth_from_client_without_method_closes() {
    // Before the CONNACK: closed without any packet (no DISCONNECT before a
    // successful CONNACK).
    let mut f = Fake::new(V5, ServerConfig::default());
    f.send(&connect(V5, "dev1"));
    f.expect_connect();
    f.send(&auth(AuthReasonCode::ContinueAuthentication, "K", b"x"));
    assert!(f.out_bytes().is_empty());
    assert_eq!(
        violation_code(&f.expect_closed()),
        DisconnectReasonCode::ProtocolError
    );
    // After the CONNACK: DISCONNECT 0x82.
    let mut f = connected(V5);
    f.send(&auth(AuthReasonCode::ReAuthenticate, "K", b"x"));
    assert_eq!(
        single_disconnect(&f.out()),
        DisconnectReasonCode::ProtocolError
    );
    assert_eq!(
        violation_code(&f.expect_closed()),
        DisconnectReasonCode::ProtocolError
    );
}

#[test]
fn mqtt5_auth_with_another_method_closes() {
    let mut f = connected_with(V5, ServerConfig::default(), connect_with_method("K"));
    f.send(&auth(AuthReasonCode::ReAuthenticate, "OTHER", b"x"));
    assert_eq!(
        single_disconnect(&f.out()),
        DisconnectReasonCode::ProtocolError
    );
    assert!(f.s.is_closed());
}

// ---------------------------------------------------------------------------
// DISCONNECT from the server, violations
// ---------------------------------------------------------------------------

#[test]
fn mqtt5_3_14_0_1_no_disconnect_before_successful_connack() {
    // Application gives up before answering: nothing written.
    let mut f = Fake::new(V5, ServerConfig::default());
    f.send(&connect(V5, "dev1"));
    f.expect_connect();
    f.s.disconnect(f.now, DisconnectReasonCode::ServerBusy, Default::default())
        .unwrap();
    assert!(f.out_bytes().is_empty());
    assert!(f.s.is_closed());
    // Refused: the CONNACK only, never a DISCONNECT after it.
    let mut f = Fake::new(V5, ServerConfig::default());
    f.send(&connect(V5, "dev1"));
    f.expect_connect();
    f.s.reject(f.now, ConnectReasonCode::NotAuthorized, Default::default())
        .unwrap();
    assert!(matches!(f.out().as_slice(), [Packet::ConnAck(_)]));
    assert!(f
        .s
        .disconnect(f.now, DisconnectReasonCode::ServerBusy, Default::default())
        .is_err());
    assert!(f.out_bytes().is_empty());
    // Connect timeout: nothing.
    let mut f = Fake::new(V5, ServerConfig::default());
    f.at_ms(10_000);
    f.s.handle_timeout(f.now);
    assert!(f.out_bytes().is_empty());
    // After a CONNACK 0x00, DISCONNECT is sent.
    let mut f = connected(V5);
    f.s.disconnect(
        f.now,
        DisconnectReasonCode::ServerShuttingDown,
        Default::default(),
    )
    .unwrap();
    assert_eq!(
        single_disconnect(&f.out()),
        DisconnectReasonCode::ServerShuttingDown
    );
    assert_eq!(
        f.expect_closed(),
        CloseReason::LocalDisconnect(DisconnectReasonCode::ServerShuttingDown)
    );
}

#[test]
fn mqtt5_3_14_2_2_server_disconnect_has_no_session_expiry() {
    let mut f = connected(V5);
    let mut p = DisconnectProperties::default();
    p.session_expiry_interval = Some(300);
    p.reason_string = Some(mstr("maintenance"));
    f.s.disconnect(f.now, DisconnectReasonCode::AdministrativeAction, p)
        .unwrap();
    match f.out().as_slice() {
        [Packet::Disconnect(d)] => {
            assert_eq!(d.reason_code, DisconnectReasonCode::AdministrativeAction);
            assert_eq!(d.properties.session_expiry_interval, None);
            assert_eq!(
                d.properties.reason_string.as_ref().map(MqttString::as_str),
                Some("maintenance")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mqtt311_server_disconnect_writes_nothing() {
    let mut f = connected(V311);
    f.s.disconnect(
        f.now,
        DisconnectReasonCode::ServerShuttingDown,
        Default::default(),
    )
    .unwrap();
    assert!(f.out_bytes().is_empty());
    assert!(f.s.is_closed());
}

/// Sends `bad` (followed by a PINGREQ that must not be answered) and
/// expects a DISCONNECT with `code` and a matching close reason.
fn expect_violation(f: &mut Fake, bad: Vec<u8>, code: DisconnectReasonCode) {
    let mut b = bad;
    b.extend(enc(f.v, &Packet::PingReq));
    f.raw(&b);
    let out = f.out();
    let ev = f.events();
    assert!(f.s.is_closed(), "not closed; out {out:?} events {ev:?}");
    let reason = match ev.last() {
        Some(Event::Closed(r)) => r.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(violation_code(&reason), code, "{reason:?}");
    if f.v.is_v5() {
        // The violating packet is not delivered nor acknowledged.
        assert_eq!(single_disconnect(&out), code, "{out:?}");
        assert!(!ev.iter().any(|e| matches!(e, Event::Publish(_))), "{ev:?}");
    } else {
        assert!(out.is_empty(), "{out:?}");
    }
}

#[test]
fn mqtt5_4_13_1_1_protocol_errors_close_with_reason_code() {
    // PUBLISH above Maximum QoS: 0x9B.
    let mut f = connected_with(
        V5,
        config(|c| c.maximum_qos = QoS::AtLeastOnce),
        connect(V5, "c"),
    );
    let bad = enc(V5, &publish("a", b"x", QoS::ExactlyOnce, 1));
    expect_violation(&mut f, bad, DisconnectReasonCode::QoSNotSupported);

    // RETAIN without Retain Available: 0x9A.
    let mut f = connected_with(V5, config(|c| c.retain_available = false), connect(V5, "c"));
    let bad = enc(
        V5,
        &publish("a", b"x", QoS::AtMostOnce, 1).with_retain(true),
    );
    expect_violation(&mut f, bad, DisconnectReasonCode::RetainNotSupported);

    // Subscription Identifier in a client's PUBLISH: 0x82.
    let mut f = connected(V5);
    let mut p = publish("a", b"x", QoS::AtLeastOnce, 1);
    p.properties
        .set_subscription_identifiers(std::iter::once(SubscriptionId::new(5).unwrap()).collect());
    expect_violation(&mut f, enc(V5, &p), DisconnectReasonCode::ProtocolError);

    // Receive Maximum exceeded: 0x93 (QoS 2 counts until PUBREL).
    let mut f = connected_with(
        V5,
        config(|c| c.receive_maximum = NonZeroU16::new(2).unwrap()),
        connect(V5, "c"),
    );
    f.send(&publish("a", b"1", QoS::ExactlyOnce, 1));
    f.send(&publish("a", b"2", QoS::ExactlyOnce, 2));
    assert_eq!(f.out().len(), 2); // two PUBRECs
    assert_eq!(f.events().len(), 2);
    let bad = enc(V5, &publish("a", b"3", QoS::ExactlyOnce, 3));
    expect_violation(&mut f, bad, DisconnectReasonCode::ReceiveMaximumExceeded);

    // Topic Alias above the maximum announced: 0x94.
    let mut f = connected_with(V5, config(|c| c.topic_alias_maximum = 3), connect(V5, "c"));
    let mut p = publish("a", b"x", QoS::AtMostOnce, 1);
    p.properties.topic_alias = NonZeroU16::new(4);
    expect_violation(&mut f, enc(V5, &p), DisconnectReasonCode::TopicAliasInvalid);

    // No Local on a shared subscription: 0x82 (MQTT-3.8.3-4).
    let mut f = connected(V5);
    let mut s = subscribe(1, &[("$share/g/a", QoS::AtMostOnce)]);
    s.subscriptions[0].options.no_local = true;
    expect_violation(&mut f, enc(V5, &s), DisconnectReasonCode::ProtocolError);

    // A packet only servers send: 0x82.
    let mut f = connected(V5);
    let bad = enc(V5, &Packet::PingResp);
    expect_violation(&mut f, bad, DisconnectReasonCode::ProtocolError);
}

#[test]
fn mqtt5_4_13_1_1_malformed_packet_closes_with_0x81() {
    let mut f = connected(V5);
    // PUBACK with reserved fixed-header flags set.
    expect_violation(
        &mut f,
        vec![0x41, 0x02, 0x00, 0x01],
        DisconnectReasonCode::MalformedPacket,
    );
    // A Remaining Length that does not match the body (PINGREQ with one).
    let mut f = connected(V5);
    expect_violation(
        &mut f,
        vec![0xC0, 0x01, 0x00],
        DisconnectReasonCode::MalformedPacket,
    );
    // Events say why: the decode error.
    let mut f = connected(V5);
    f.raw(&[0x41, 0x02, 0x00, 0x01]);
    assert!(matches!(
        f.expect_closed(),
        CloseReason::Malformed(DecodeError::InvalidFlags { .. })
    ));
}

#[test]
fn mqtt311_protocol_errors_close_without_packet() {
    let mut f = connected(V311);
    expect_violation(
        &mut f,
        vec![0x41, 0x02, 0x00, 0x01],
        DisconnectReasonCode::MalformedPacket,
    );
    let mut f = connected(V311);
    let bad = enc(V311, &connect(V311, "again"));
    expect_violation(&mut f, bad, DisconnectReasonCode::ProtocolError);
    // AUTH does not exist in 3.1.1: malformed.
    let mut f = connected(V311);
    expect_violation(
        &mut f,
        vec![0xF0, 0x00],
        DisconnectReasonCode::MalformedPacket,
    );
}

#[test]
fn mqtt5_3_8_3_4_no_local_on_shared_subscription_is_protocol_error() {
    let mut f = connected(V5);
    let mut s = subscribe(
        9,
        &[
            ("a/b", QoS::AtMostOnce),
            ("$share/grp/a/b", QoS::AtLeastOnce),
        ],
    );
    s.subscriptions[0].options.no_local = true; // fine on a normal one
    s.subscriptions[1].options.no_local = true;
    f.send(&s);
    assert_eq!(
        single_disconnect(&f.out()),
        DisconnectReasonCode::ProtocolError
    );
    let ev = f.events();
    assert!(
        !ev.iter().any(|e| matches!(e, Event::Subscribe(_))),
        "{ev:?}"
    );
    assert!(f.s.is_closed());
    // Without No Local the shared subscription is surfaced.
    let mut f = connected(V5);
    f.send(&subscribe(9, &[("$share/grp/a/b", QoS::AtLeastOnce)]));
    assert!(matches!(f.events().as_slice(), [Event::Subscribe(_)]));
}

// ---------------------------------------------------------------------------
// PINGREQ
// ---------------------------------------------------------------------------

fn every_pingreq_answered(v: ProtocolVersion) {
    let mut f = connected(v);
    let mut b = Vec::new();
    for _ in 0..3 {
        b.extend(enc(v, &Packet::PingReq));
    }
    f.raw(&b);
    assert_eq!(
        f.out(),
        [Packet::PingResp, Packet::PingResp, Packet::PingResp]
    );
    f.send(&Packet::PingReq);
    assert_eq!(f.out_bytes(), [0xD0, 0x00]);
    assert!(f.events().is_empty());
}

#[test]
fn mqtt311_3_12_4_1_every_pingreq_gets_pingresp() {
    every_pingreq_answered(V311);
}

#[test]
fn mqtt5_3_12_4_1_every_pingreq_gets_pingresp() {
    every_pingreq_answered(V5);
}

// ---------------------------------------------------------------------------
// SUBSCRIBE / SUBACK
// ---------------------------------------------------------------------------

fn single_suback(out: &[Packet]) -> (u16, Vec<SubAckReasonCode>) {
    match out {
        [Packet::SubAck(a)] => (a.packet_id.get(), a.reason_codes.clone()),
        other => panic!("expected one SUBACK, got {other:?}"),
    }
}

fn suback_echoes_ids(v: ProtocolVersion) {
    let mut f = connected(v);
    f.send(&subscribe(7, &[("a", QoS::AtMostOnce)]));
    f.send(&subscribe(300, &[("b", QoS::AtLeastOnce)]));
    let ev = f.events();
    assert_eq!(ev.len(), 2);
    assert!(f.out_bytes().is_empty());
    // Answered in any order, each SUBACK carries its SUBSCRIBE's id.
    f.s.suback(
        f.now,
        pid(300),
        vec![SubAckReasonCode::GrantedQoS1],
        Default::default(),
    )
    .unwrap();
    assert_eq!(
        single_suback(&f.out()),
        (300, vec![SubAckReasonCode::GrantedQoS1])
    );
    f.s.suback(
        f.now,
        pid(7),
        vec![SubAckReasonCode::GrantedQoS0],
        Default::default(),
    )
    .unwrap();
    assert_eq!(
        single_suback(&f.out()),
        (7, vec![SubAckReasonCode::GrantedQoS0])
    );
    // Answered once: a second answer is misuse.
    assert_eq!(
        f.s.suback(
            f.now,
            pid(7),
            vec![SubAckReasonCode::GrantedQoS0],
            Default::default()
        ),
        Err(Error::UnknownPacketId(pid(7)))
    );
    assert!(f.out_bytes().is_empty());
}

#[test]
fn mqtt311_2_3_1_7_3_8_4_1_3_8_4_2_suback_echoes_packet_id() {
    suback_echoes_ids(V311);
}

#[test]
fn mqtt5_2_2_1_6_3_8_4_1_3_8_4_2_suback_echoes_packet_id() {
    suback_echoes_ids(V5);
}

fn suback_one_code_per_filter_in_order(v: ProtocolVersion) {
    let mut f = connected(v);
    f.send(&subscribe(
        12,
        &[
            ("x/1", QoS::ExactlyOnce),
            ("x/2", QoS::AtLeastOnce),
            ("x/+", QoS::AtMostOnce),
        ],
    ));
    match f.events().as_slice() {
        [Event::Subscribe(s)] => {
            let filters: Vec<&str> = s.subscriptions.iter().map(|s| s.filter.as_str()).collect();
            assert_eq!(filters, ["x/1", "x/2", "x/+"]);
        }
        other => panic!("{other:?}"),
    }
    // The wrong number of codes is refused and writes nothing.
    for n in [0, 2, 4] {
        let codes = vec![SubAckReasonCode::GrantedQoS0; n];
        assert!(f
            .s
            .suback(f.now, pid(12), codes, Default::default())
            .is_err());
        assert!(f.out_bytes().is_empty());
    }
    // One combined SUBACK, codes in filter order (granted QoS or failure).
    let codes = vec![
        SubAckReasonCode::GrantedQoS2,
        SubAckReasonCode::UnspecifiedError,
        SubAckReasonCode::GrantedQoS0,
    ];
    f.s.suback(f.now, pid(12), codes.clone(), Default::default())
        .unwrap();
    assert_eq!(single_suback(&f.out()), (12, codes));
}

#[test]
fn mqtt311_3_8_4_4_3_8_4_5_3_9_3_1_one_suback_one_code_per_filter_in_order() {
    suback_one_code_per_filter_in_order(V311);
}

#[test]
fn mqtt5_3_8_4_5_3_8_4_6_3_8_4_7_3_9_3_1_one_suback_one_code_per_filter_in_order() {
    suback_one_code_per_filter_in_order(V5);
}

#[test]
fn mqtt311_3_8_4_5_v5_failure_codes_sent_as_0x80() {
    let mut f = connected(V311);
    f.send(&subscribe(
        3,
        &[("a", QoS::AtLeastOnce), ("b", QoS::AtLeastOnce)],
    ));
    f.events();
    f.s.suback(
        f.now,
        pid(3),
        vec![
            SubAckReasonCode::GrantedQoS1,
            SubAckReasonCode::NotAuthorized,
        ],
        Default::default(),
    )
    .unwrap();
    // SUBACK, id 3, return codes 0x01 and 0x80: the only failure 3.1.1 has.
    assert_eq!(f.out_bytes(), [0x90, 0x04, 0x00, 0x03, 0x01, 0x80]);
}

#[test]
fn mqtt5_3_8_4_7_v5_failure_codes_kept() {
    let mut f = connected(V5);
    f.send(&subscribe(
        3,
        &[("a", QoS::AtLeastOnce), ("b", QoS::AtLeastOnce)],
    ));
    f.events();
    let codes = vec![
        SubAckReasonCode::NotAuthorized,
        SubAckReasonCode::GrantedQoS1,
    ];
    f.s.suback(f.now, pid(3), codes.clone(), Default::default())
        .unwrap();
    assert_eq!(single_suback(&f.out()), (3, codes));
}

#[test]
fn mqtt311_3_8_3_2_wildcard_filters_refused_when_unsupported() {
    let mut f = connected_with(
        V311,
        config(|c| c.wildcard_subscriptions = false),
        connect(V311, "c"),
    );
    f.send(&subscribe(
        5,
        &[
            ("a/b", QoS::AtLeastOnce),
            ("a/#", QoS::AtLeastOnce),
            ("+/b", QoS::AtMostOnce),
        ],
    ));
    assert!(matches!(f.events().as_slice(), [Event::Subscribe(_)]));
    // Even if the application grants them, the wildcard filters fail.
    f.s.suback(
        f.now,
        pid(5),
        vec![
            SubAckReasonCode::GrantedQoS1,
            SubAckReasonCode::GrantedQoS1,
            SubAckReasonCode::GrantedQoS0,
        ],
        Default::default(),
    )
    .unwrap();
    assert_eq!(
        single_suback(&f.out()),
        (
            5,
            vec![
                SubAckReasonCode::GrantedQoS1,
                SubAckReasonCode::UnspecifiedError,
                SubAckReasonCode::UnspecifiedError
            ]
        )
    );
    assert!(f.s.is_connected());
}

#[test]
fn mqtt5_wildcard_unsupported_is_disconnect_0xa2() {
    let mut f = connected_with(
        V5,
        config(|c| c.wildcard_subscriptions = false),
        connect(V5, "c"),
    );
    let bad = enc(V5, &subscribe(5, &[("a/#", QoS::AtLeastOnce)]));
    expect_violation(
        &mut f,
        bad,
        DisconnectReasonCode::WildcardSubscriptionsNotSupported,
    );
}

fn big_ack_properties() -> AckProperties {
    let mut p = AckProperties::default();
    p.reason_string = Some(long_text(200));
    p.user_properties.push(mstr("k"), mstr(&"v".repeat(200)));
    p
}

#[test]
fn mqtt5_3_9_2_1_3_9_2_2_suback_diagnostics_dropped_to_fit_client_limit() {
    for limit in [None, Some(100u32)] {
        let mut c = connect(V5, "c");
        c.properties.maximum_packet_size = limit.and_then(NonZeroU32::new);
        let mut f = connected_with(V5, ServerConfig::default(), c);
        f.send(&subscribe(2, &[("a", QoS::AtMostOnce)]));
        f.events();
        f.s.suback(
            f.now,
            pid(2),
            vec![SubAckReasonCode::GrantedQoS0],
            big_ack_properties(),
        )
        .unwrap();
        match f.out_sized().as_slice() {
            [(Packet::SubAck(a), n)] => {
                assert_eq!(a.packet_id, pid(2));
                assert_eq!(a.reason_codes, [SubAckReasonCode::GrantedQoS0]);
                let dropped =
                    a.properties.reason_string.is_none() && a.properties.user_properties.is_empty();
                match limit {
                    None => assert!(!dropped),
                    Some(max) => {
                        assert!(dropped);
                        assert!(*n <= max as usize);
                    }
                }
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn mqtt5_3_11_2_1_3_11_2_2_unsuback_diagnostics_dropped_to_fit_client_limit() {
    for limit in [None, Some(100u32)] {
        let mut c = connect(V5, "c");
        c.properties.maximum_packet_size = limit.and_then(NonZeroU32::new);
        let mut f = connected_with(V5, ServerConfig::default(), c);
        f.send(&unsubscribe(2, &["a"]));
        f.events();
        f.s.unsuback(
            f.now,
            pid(2),
            vec![UnsubAckReasonCode::Success],
            big_ack_properties(),
        )
        .unwrap();
        match f.out_sized().as_slice() {
            [(Packet::UnsubAck(a), n)] => {
                assert_eq!(a.packet_id, pid(2));
                assert_eq!(a.reason_codes, [UnsubAckReasonCode::Success]);
                let dropped =
                    a.properties.reason_string.is_none() && a.properties.user_properties.is_empty();
                match limit {
                    None => assert!(!dropped),
                    Some(max) => {
                        assert!(dropped);
                        assert!(*n <= max as usize);
                    }
                }
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn mqtt5_3_1_2_29_no_diagnostics_unless_problem_information_requested() {
    let mut c = connect(V5, "c");
    c.properties.request_problem_information = Some(false);
    c.properties.authentication_method = Some(mstr("K"));
    let mut f = Fake::new(V5, ServerConfig::default());
    f.send(&c);
    f.expect_connect();
    // AUTH: no Reason String / User Properties.
    let mut ap = AuthProperties::default();
    ap.reason_string = Some(mstr("more"));
    ap.user_properties.push(mstr("k"), mstr("v"));
    f.s.auth_continue(f.now, None, ap).unwrap();
    let a = single_auth(&f.out());
    assert!(a.properties.reason_string.is_none());
    assert!(a.properties.user_properties.is_empty());
    // CONNACK may carry them.
    let mut acc = Accept::new();
    acc.properties.reason_string = Some(mstr("welcome"));
    acc.properties.user_properties.push(mstr("k"), mstr("v"));
    let ack = f.accept(acc);
    assert!(ack.properties.reason_string.is_some());
    assert_eq!(ack.properties.user_properties.len(), 1);
    // SUBACK and UNSUBACK: stripped.
    f.send(&subscribe(1, &[("a", QoS::AtMostOnce)]));
    f.send(&unsubscribe(2, &["a"]));
    f.events();
    let mut p = AckProperties::default();
    p.reason_string = Some(mstr("why"));
    p.user_properties.push(mstr("k"), mstr("v"));
    f.s.suback(
        f.now,
        pid(1),
        vec![SubAckReasonCode::GrantedQoS0],
        p.clone(),
    )
    .unwrap();
    f.s.unsuback(f.now, pid(2), vec![UnsubAckReasonCode::Success], p.clone())
        .unwrap();
    let out = f.out();
    assert_eq!(out.len(), 2);
    for pkt in &out {
        let props = match pkt {
            Packet::SubAck(a) => &a.properties,
            Packet::UnsubAck(a) => &a.properties,
            other => panic!("{other:?}"),
        };
        assert!(props.reason_string.is_none(), "{pkt:?}");
        assert!(props.user_properties.is_empty(), "{pkt:?}");
    }
    // DISCONNECT may carry them.
    let mut dp = DisconnectProperties::default();
    dp.reason_string = Some(mstr("bye"));
    dp.user_properties.push(mstr("k"), mstr("v"));
    f.s.disconnect(f.now, DisconnectReasonCode::ServerShuttingDown, dp)
        .unwrap();
    match f.out().as_slice() {
        [Packet::Disconnect(d)] => {
            assert!(d.properties.reason_string.is_some());
            assert_eq!(d.properties.user_properties.len(), 1);
        }
        other => panic!("{other:?}"),
    }

    // Control: when requested (default), SUBACK keeps them.
    let mut f = connected(V5);
    f.send(&subscribe(1, &[("a", QoS::AtMostOnce)]));
    f.events();
    f.s.suback(f.now, pid(1), vec![SubAckReasonCode::GrantedQoS0], p)
        .unwrap();
    match f.out().as_slice() {
        [Packet::SubAck(a)] => {
            assert!(a.properties.reason_string.is_some());
            assert_eq!(a.properties.user_properties.len(), 1);
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------
// UNSUBSCRIBE / UNSUBACK
// ---------------------------------------------------------------------------

#[test]
fn mqtt311_2_3_1_7_3_10_4_4_3_10_4_5_3_10_4_6_one_unsuback_same_id() {
    let mut f = connected(V311);
    // Nothing is subscribed: the UNSUBACK is still sent, once for all.
    f.send(&unsubscribe(0x1234, &["a", "b/#", "c/+"]));
    match f.events().as_slice() {
        [Event::Unsubscribe(u)] => assert_eq!(u.filters.len(), 3),
        other => panic!("{other:?}"),
    }
    f.s.unsuback(f.now, pid(0x1234), vec![], Default::default())
        .unwrap();
    // UNSUBACK: fixed header, remaining length 2, the packet id.
    assert_eq!(f.out_bytes(), [0xB0, 0x02, 0x12, 0x34]);
    assert_eq!(
        f.s.unsuback(f.now, pid(0x1234), vec![], Default::default()),
        Err(Error::UnknownPacketId(pid(0x1234)))
    );
    assert!(f.out_bytes().is_empty());
}

#[test]
fn mqtt5_2_2_1_6_3_10_4_4_3_10_4_5_3_10_4_6_3_11_3_1_one_unsuback_codes_in_order() {
    let mut f = connected(V5);
    f.send(&unsubscribe(77, &["a", "b/#", "c/+"]));
    match f.events().as_slice() {
        [Event::Unsubscribe(u)] => {
            let fs: Vec<&str> = u.filters.iter().map(TopicFilter::as_str).collect();
            assert_eq!(fs, ["a", "b/#", "c/+"]);
        }
        other => panic!("{other:?}"),
    }
    for n in [0, 2, 4] {
        let codes = vec![UnsubAckReasonCode::Success; n];
        assert!(f
            .s
            .unsuback(f.now, pid(77), codes, Default::default())
            .is_err());
        assert!(f.out_bytes().is_empty());
    }
    let codes = vec![
        UnsubAckReasonCode::NoSubscriptionExisted,
        UnsubAckReasonCode::Success,
        UnsubAckReasonCode::NotAuthorized,
    ];
    f.s.unsuback(f.now, pid(77), codes.clone(), Default::default())
        .unwrap();
    match f.out().as_slice() {
        [Packet::UnsubAck(a)] => {
            assert_eq!(a.packet_id, pid(77));
            assert_eq!(a.reason_codes, codes);
        }
        other => panic!("{other:?}"),
    }
}

fn deliveries_completed_after_unsubscribe(v: ProtocolVersion) {
    let mut f = connected(v);
    let q1 =
        f.s.publish(f.now, publish("a/x", b"1", QoS::AtLeastOnce, 1))
            .unwrap()
            .unwrap();
    let q2 =
        f.s.publish(f.now, publish("a/y", b"2", QoS::ExactlyOnce, 1))
            .unwrap()
            .unwrap();
    assert_eq!(f.out().len(), 2);
    f.send(&unsubscribe(3, &["a/#"]));
    f.events();
    let codes = if v.is_v5() {
        vec![UnsubAckReasonCode::Success]
    } else {
        vec![]
    };
    f.s.unsuback(f.now, pid(3), codes, Default::default())
        .unwrap();
    assert!(matches!(f.out().as_slice(), [Packet::UnsubAck(_)]));
    assert_eq!(f.s.in_flight(), 2);
    // The flows already started run to completion.
    f.send(&PubAck::new(q1));
    assert!(matches!(f.events().as_slice(), [Event::PubAck(a)] if a.packet_id == q1));
    f.send(&PubRec::new(q2));
    match f.out().as_slice() {
        [Packet::PubRel(r)] => assert_eq!(r.packet_id, q2),
        other => panic!("{other:?}"),
    }
    f.send(&PubComp::new(q2));
    assert!(matches!(f.events().as_slice(), [Event::PubComp(c)] if c.packet_id == q2));
    assert_eq!(f.s.in_flight(), 0);
}

#[test]
fn mqtt311_3_10_4_3_started_deliveries_completed_after_unsubscribe() {
    deliveries_completed_after_unsubscribe(V311);
}

#[test]
fn mqtt5_3_10_4_3_started_deliveries_completed_after_unsubscribe() {
    deliveries_completed_after_unsubscribe(V5);
}

// ---------------------------------------------------------------------------
// PUBLISH to the client: packet ids, limits, aliases
// ---------------------------------------------------------------------------

fn server_packet_ids_unused_nonzero(v: ProtocolVersion) {
    let mut f = connected(v);
    let mut used = BTreeSet::new();
    for i in 0..20u16 {
        let qos = if i % 3 == 0 {
            QoS::ExactlyOnce
        } else {
            QoS::AtLeastOnce
        };
        // The id in the message is replaced by a fresh one.
        let id =
            f.s.publish(f.now, publish("t", b"x", qos, 1))
                .unwrap()
                .unwrap();
        assert!(used.insert(id.get()), "id {} handed out twice", id.get());
    }
    let out = f.out();
    let wire: BTreeSet<u16> = published_ids(&out).into_iter().collect();
    assert_eq!(wire, used);
    assert!(!wire.contains(&0));
    // QoS 0 has no identifier.
    assert_eq!(
        f.s.publish(f.now, publish("t", b"x", QoS::AtMostOnce, 1)),
        Ok(None)
    );
    match f.out().as_slice() {
        [Packet::Publish(p)] => assert_eq!(p.packet_id(), None),
        other => panic!("{other:?}"),
    }

    // Wrap-around: every id but 3 is in use; the next ones handed out are
    // the free ids only, and an id freed by its acknowledgement is reused.
    let outbound: Vec<OutboundMessage> = (1..=u16::MAX)
        .filter(|&n| n != 3 && n != 40_000)
        .map(|n| OutboundMessage::Publish(publish("t", b"x", QoS::AtLeastOnce, n)))
        .collect();
    let session = SessionState::from_parts(u16::MAX - 1, outbound, vec![]).unwrap();
    let mut c = connect(v, "c1");
    c.clean_start = false;
    let mut f = Fake::new(v, ServerConfig::default());
    f.send(&c);
    f.expect_connect();
    f.s.accept(f.now, Accept::resume(session)).unwrap();
    let _ = f.out_bytes();
    let a = f.s.publish(f.now, publish("t", b"n", QoS::AtLeastOnce, 1));
    let b = f.s.publish(f.now, publish("t", b"n", QoS::AtLeastOnce, 1));
    let got: BTreeSet<u16> = [a, b].iter().map(|r| r.unwrap().unwrap().get()).collect();
    assert_eq!(got, BTreeSet::from([3, 40_000]));
    // All 65,535 in use: refused (the window of 65,535 is full too), never
    // reused, nothing written.
    let _ = f.out_bytes();
    let r = f.s.publish(f.now, publish("t", b"n", QoS::AtLeastOnce, 1));
    assert!(
        matches!(r, Err(Error::PacketIdsExhausted | Error::WindowFull)),
        "{r:?}"
    );
    assert!(f.out_bytes().is_empty());
    f.send(&PubAck::new(pid(500)));
    assert!(matches!(f.events().as_slice(), [Event::PubAck(_)]));
    assert_eq!(
        f.s.publish(f.now, publish("t", b"n", QoS::AtLeastOnce, 1)),
        Ok(Some(pid(500)))
    );
}

#[test]
fn mqtt311_2_3_1_4_server_packet_ids_unused_and_reused_after_ack() {
    server_packet_ids_unused_nonzero(V311);
}

#[test]
fn mqtt5_2_2_1_4_server_packet_ids_unused_and_reused_after_ack() {
    server_packet_ids_unused_nonzero(V5);
}

#[test]
fn mqtt5_3_1_2_24_3_1_2_25_oversize_message_not_sent_and_treated_as_delivered() {
    let mut c = connect(V5, "c1");
    c.properties.maximum_packet_size = NonZeroU32::new(64);
    c.clean_start = false;
    let mut f = connected_with(V5, ServerConfig::default(), c.clone());
    let big = Publish::new(topic("big"), Bytes::from(vec![b'x'; 100]))
        .with_delivery(Delivery::AtLeastOnce(pid(1)));
    let r = f.s.publish(f.now, big.clone());
    assert!(
        matches!(r, Err(Error::PacketTooLarge { max: 64, .. })),
        "{r:?}"
    );
    assert!(f.out_bytes().is_empty());
    // Nothing kept for it: not in flight, not in the session.
    assert_eq!(f.s.in_flight(), 0);
    let small =
        f.s.publish(f.now, publish("small", b"x", QoS::AtLeastOnce, 1))
            .unwrap();
    assert!(small.is_some());
    for (p, n) in f.out_sized() {
        assert!(n <= 64, "{p:?} is {n} bytes");
    }
    f.send(&PubAck::new(small.unwrap()));
    f.events();

    // A stored message that no longer fits the client's new limit is
    // dropped on resume, as if delivered.
    let mut f = connected_with(V5, ServerConfig::default(), {
        let mut c = connect(V5, "c1");
        c.clean_start = false;
        c
    });
    let id = f.s.publish(f.now, big).unwrap().unwrap();
    let _ = f.out_bytes();
    f.s.handle_closed(f.now);
    let session = f.s.take_session().unwrap();
    assert_eq!(session.outbound().len(), 1);
    let mut f = Fake::new(V5, ServerConfig::default());
    f.send(&c); // Maximum Packet Size 64 now
    f.expect_connect();
    f.s.accept(f.now, Accept::resume(session)).unwrap();
    let out = f.out_sized();
    assert!(
        matches!(out.as_slice(), [(Packet::ConnAck(_), _)]),
        "{out:?}"
    );
    assert_eq!(f.s.in_flight(), 0);
    // The id is free again.
    f.s.handle_closed(f.now);
    let s = f.s.take_session().unwrap();
    assert!(
        s.outbound().iter().all(|m| m.packet_id() != Some(id)),
        "{s:?}"
    );
}

#[test]
fn mqtt5_3_1_2_26_3_1_2_27_3_3_2_11_outbound_topic_aliases_within_client_maximum() {
    let topics = ["a", "b", "c", "a", "c", "b", "d", "a"];
    for tam in [None, Some(0u16), Some(2)] {
        let mut c = connect(V5, "c1");
        c.properties.topic_alias_maximum = tam;
        let mut f = connected_with(V5, ServerConfig::default(), c);
        for t in topics {
            f.s.publish(f.now, publish(t, b"x", QoS::AtMostOnce, 1))
                .unwrap();
        }
        let out = f.out();
        assert_eq!(out.len(), topics.len());
        // The client's view: resolve aliases as a receiver would.
        let mut table: Vec<Option<TopicName>> = vec![None; 3];
        let max = tam.unwrap_or(0);
        let mut used_alias = false;
        for (p, want) in out.iter().zip(topics) {
            let Packet::Publish(p) = p else {
                panic!("{p:?}")
            };
            let resolved = match p.properties.topic_alias {
                None => p.topic.clone().unwrap(),
                Some(alias) => {
                    used_alias = true;
                    assert!(alias.get() <= max, "alias {alias} above maximum {max}");
                    let slot = &mut table[usize::from(alias.get())];
                    if let Some(t) = &p.topic {
                        *slot = Some(t.clone());
                    }
                    slot.clone().expect("alias used before it was defined")
                }
            };
            assert_eq!(resolved.as_str(), want);
        }
        assert_eq!(used_alias, max > 0, "tam {tam:?}");
    }
}

#[test]
fn mqtt5_3_3_4_10_receive_maximum_does_not_hold_back_other_packets() {
    let mut c = connect(V5, "c1");
    c.properties.receive_maximum = NonZeroU16::new(1);
    let mut f = connected_with(V5, ServerConfig::default(), c);
    let id =
        f.s.publish(f.now, publish("t", b"1", QoS::AtLeastOnce, 1))
            .unwrap()
            .unwrap();
    assert_eq!(
        f.s.publish(f.now, publish("t", b"2", QoS::AtLeastOnce, 1)),
        Err(Error::WindowFull)
    );
    assert_eq!(published_ids(&f.out()), [id.get()]);
    // Quota zero: PINGRESP, SUBACK, UNSUBACK, PUBACK, PUBREC, PUBCOMP and
    // QoS 0 messages still go out.
    f.send(&Packet::PingReq);
    f.send(&subscribe(10, &[("s", QoS::AtLeastOnce)]));
    f.send(&unsubscribe(11, &["s"]));
    f.send(&publish("in", b"1", QoS::AtLeastOnce, 20));
    f.send(&publish("in", b"2", QoS::ExactlyOnce, 21));
    f.send(&PubRel::new(pid(21)));
    f.events();
    f.s.suback(
        f.now,
        pid(10),
        vec![SubAckReasonCode::GrantedQoS1],
        Default::default(),
    )
    .unwrap();
    f.s.unsuback(
        f.now,
        pid(11),
        vec![UnsubAckReasonCode::Success],
        Default::default(),
    )
    .unwrap();
    f.s.publish(f.now, publish("t", b"q0", QoS::AtMostOnce, 1))
        .unwrap();
    let out = f.out();
    assert!(matches!(out[0], Packet::PingResp), "{out:?}");
    assert!(
        matches!(&out[1], Packet::PubAck(a) if a.packet_id == pid(20)),
        "{out:?}"
    );
    assert!(
        matches!(&out[2], Packet::PubRec(a) if a.packet_id == pid(21)),
        "{out:?}"
    );
    assert!(
        matches!(&out[3], Packet::PubComp(a) if a.packet_id == pid(21)),
        "{out:?}"
    );
    assert!(
        matches!(&out[4], Packet::SubAck(a) if a.packet_id == pid(10)),
        "{out:?}"
    );
    assert!(
        matches!(&out[5], Packet::UnsubAck(a) if a.packet_id == pid(11)),
        "{out:?}"
    );
    assert!(
        matches!(&out[6], Packet::Publish(p) if p.qos() == QoS::AtMostOnce),
        "{out:?}"
    );
    assert_eq!(out.len(), 7);
}

// ---------------------------------------------------------------------------
// PUBLISH from the client
// ---------------------------------------------------------------------------

#[test]
fn mqtt5_3_3_2_12_accepts_every_topic_alias_up_to_announced_maximum() {
    let mut f = Fake::new(V5, ServerConfig::default());
    f.send(&connect(V5, "c1"));
    f.expect_connect();
    let ack = f.accept(Accept::new());
    let max = ack.properties.topic_alias_maximum.unwrap();
    assert!(max >= 2);
    // Define every alias 1..=max, then use each without a topic.
    for alias in 1..=max {
        let mut p = publish(&format!("t/{alias}"), b"x", QoS::AtMostOnce, 1);
        p.properties.topic_alias = NonZeroU16::new(alias);
        f.send(&p);
    }
    for alias in (1..=max).rev() {
        let mut p = publish("unused", b"y", QoS::AtLeastOnce, alias);
        p.topic = None;
        p.properties.topic_alias = NonZeroU16::new(alias);
        f.send(&p);
    }
    let ev = f.events();
    assert_eq!(ev.len(), 2 * usize::from(max));
    let seen: Vec<String> = ev
        .iter()
        .map(|e| match e {
            Event::Publish(p) => {
                // The application sees the topic, not the alias.
                assert_eq!(p.properties.topic_alias, None);
                p.topic.as_ref().unwrap().as_str().to_owned()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    let mut want: Vec<String> = (1..=max).map(|a| format!("t/{a}")).collect();
    want.extend((1..=max).rev().map(|a| format!("t/{a}")));
    assert_eq!(seen, want);
    assert!(f.s.is_connected());
    // One above: Topic Alias invalid.
    let mut p = publish("t", b"x", QoS::AtMostOnce, 1);
    p.properties.topic_alias = NonZeroU16::new(max + 1);
    f.send(&p);
    assert_eq!(
        single_disconnect(&f.out()[max as usize..]),
        DisconnectReasonCode::TopicAliasInvalid
    );
}

#[test]
fn mqtt311_3_3_5_2_unauthorized_publish_acked_normally_or_closed() {
    let cfg = config(|c| c.ack_mode = AckMode::Manual);
    // Acknowledged normally.
    let mut f = connected_with(V311, cfg.clone(), connect(V311, "c"));
    f.send(&publish("forbidden", b"x", QoS::AtLeastOnce, 5));
    f.send(&publish("forbidden", b"y", QoS::ExactlyOnce, 6));
    assert_eq!(f.events().len(), 2);
    assert!(f.out_bytes().is_empty()); // waits for the application
                                       // 3.1.1 has no negative acknowledgement.
    assert_eq!(
        f.s.ack(f.now, pid(5), PubAckReasonCode::NotAuthorized),
        Err(Error::NotInVersion("PUBACK/PUBREC reason code"))
    );
    assert!(f.out_bytes().is_empty());
    f.s.ack(f.now, pid(5), PubAckReasonCode::Success).unwrap();
    f.s.ack(f.now, pid(6), PubAckReasonCode::Success).unwrap();
    assert_eq!(
        f.out_bytes(),
        [0x40, 0x02, 0x00, 0x05, 0x50, 0x02, 0x00, 0x06]
    );
    // Or the connection is closed.
    let mut f = connected_with(V311, cfg, connect(V311, "c"));
    f.send(&publish("forbidden", b"x", QoS::AtLeastOnce, 5));
    f.events();
    f.s.disconnect(
        f.now,
        DisconnectReasonCode::NotAuthorized,
        Default::default(),
    )
    .unwrap();
    assert!(f.out_bytes().is_empty());
    assert!(f.s.is_closed());
}

#[test]
fn mqtt5_3_3_5_2_unauthorized_publish_acked_0x87_or_closed() {
    let cfg = config(|c| c.ack_mode = AckMode::Manual);
    let mut f = connected_with(V5, cfg.clone(), connect(V5, "c"));
    f.send(&publish("forbidden", b"x", QoS::AtLeastOnce, 5));
    f.send(&publish("forbidden", b"y", QoS::ExactlyOnce, 6));
    assert_eq!(f.events().len(), 2);
    assert!(f.out_bytes().is_empty());
    f.s.ack(f.now, pid(5), PubAckReasonCode::NotAuthorized)
        .unwrap();
    f.s.ack(f.now, pid(6), PubAckReasonCode::NotAuthorized)
        .unwrap();
    match f.out().as_slice() {
        [Packet::PubAck(a), Packet::PubRec(r)] => {
            assert_eq!((a.packet_id, u8::from(a.reason_code)), (pid(5), 0x87));
            assert_eq!((r.packet_id, u8::from(r.reason_code)), (pid(6), 0x87));
        }
        other => panic!("{other:?}"),
    }
    // The refused QoS 2 id is free: the same id is a new message.
    f.send(&publish("ok", b"z", QoS::ExactlyOnce, 6));
    assert!(matches!(f.events().as_slice(), [Event::Publish(_)]));
    // Or the connection is closed.
    let mut f = connected_with(V5, cfg, connect(V5, "c"));
    f.send(&publish("forbidden", b"x", QoS::AtLeastOnce, 5));
    f.events();
    f.s.disconnect(
        f.now,
        DisconnectReasonCode::NotAuthorized,
        Default::default(),
    )
    .unwrap();
    assert_eq!(
        single_disconnect(&f.out()),
        DisconnectReasonCode::NotAuthorized
    );
    assert!(f.s.is_closed());
}

// ---------------------------------------------------------------------------
// Session hand-over and misuse
// ---------------------------------------------------------------------------

fn session_resumed_on_new_connection(v: ProtocolVersion) {
    let mut c = connect(v, "c1");
    c.clean_start = false;
    if v.is_v5() {
        c.properties.session_expiry_interval = Some(600);
    }
    let mut f = connected_with(v, ServerConfig::default(), c.clone());
    let a =
        f.s.publish(f.now, publish("t/a", b"a", QoS::AtLeastOnce, 1))
            .unwrap()
            .unwrap();
    let b =
        f.s.publish(f.now, publish("t/b", b"b", QoS::ExactlyOnce, 1))
            .unwrap()
            .unwrap();
    let r =
        f.s.publish(f.now, publish("t/r", b"r", QoS::ExactlyOnce, 1))
            .unwrap()
            .unwrap();
    let first = f.out();
    assert!(first
        .iter()
        .all(|p| matches!(p, Packet::Publish(p) if !p.dup)));
    f.send(&PubRec::new(r)); // r is now at the PUBREL stage
    assert!(matches!(f.out().as_slice(), [Packet::PubRel(_)]));
    // An inbound QoS 2 message received, PUBREL not yet arrived.
    f.send(&publish("in", b"i", QoS::ExactlyOnce, 9));
    assert!(matches!(f.events().as_slice(), [Event::Publish(_)]));
    assert!(matches!(f.out().as_slice(), [Packet::PubRec(_)]));
    // Not before the close.
    assert!(f.s.take_session().is_none());
    f.s.handle_closed(f.now);
    assert_eq!(f.expect_closed(), CloseReason::TransportClosed);
    let s = f.s.take_session().unwrap();
    assert_eq!(s.inbound_qos2(), [pid(9)]);
    let ids: Vec<_> = s.outbound().iter().map(|m| m.packet_id()).collect();
    assert_eq!(ids, [Some(a), Some(b), Some(r)]);

    // The client comes back.
    let mut f = Fake::new(v, ServerConfig::default());
    f.send(&c);
    f.expect_connect();
    f.s.accept(f.now, Accept::resume(s)).unwrap();
    let out = f.out();
    match out.as_slice() {
        [Packet::ConnAck(ack), Packet::Publish(pa), Packet::Publish(pb), Packet::PubRel(rel)] => {
            assert!(ack.session_present);
            assert_eq!(
                (pa.packet_id(), pa.dup, pa.qos()),
                (Some(a), true, QoS::AtLeastOnce)
            );
            assert_eq!(pa.topic.as_ref().unwrap().as_str(), "t/a");
            assert_eq!(
                (pb.packet_id(), pb.dup, pb.qos()),
                (Some(b), true, QoS::ExactlyOnce)
            );
            assert_eq!(rel.packet_id, r);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(f.s.in_flight(), 3);
    // The client's repeat of message 9 is acknowledged, not delivered again.
    let mut again = publish("in", b"i", QoS::ExactlyOnce, 9);
    again.dup = true;
    f.send(&again);
    assert!(f.events().is_empty());
    assert!(matches!(f.out().as_slice(), [Packet::PubRec(p)] if p.packet_id == pid(9)));
    f.send(&PubRel::new(pid(9)));
    assert!(matches!(f.out().as_slice(), [Packet::PubComp(p)] if p.packet_id == pid(9)));
    // The resumed flows complete.
    f.send(&PubAck::new(a));
    f.send(&PubRec::new(b));
    f.send(&PubComp::new(r));
    let ev = f.events();
    assert!(
        matches!(&ev[0], Event::PubAck(x) if x.packet_id == a),
        "{ev:?}"
    );
    assert!(
        matches!(&ev[1], Event::PubComp(x) if x.packet_id == r),
        "{ev:?}"
    );
    assert!(matches!(f.out().as_slice(), [Packet::PubRel(x)] if x.packet_id == b));
    // A new message does not reuse an id still in flight.
    let n =
        f.s.publish(f.now, publish("t/n", b"n", QoS::AtLeastOnce, 1))
            .unwrap()
            .unwrap();
    assert_ne!(n, b);
}

#[test]
fn mqtt311_session_taken_after_close_and_resumed() {
    session_resumed_on_new_connection(V311);
}

#[test]
fn mqtt5_session_taken_after_close_and_resumed() {
    session_resumed_on_new_connection(V5);
}

#[test]
fn take_session_only_once_and_only_after_close() {
    let mut c = connect(V5, "c1");
    c.clean_start = false;
    let mut f = connected_with(V5, ServerConfig::default(), c);
    f.s.publish(f.now, publish("t", b"x", QoS::AtLeastOnce, 1))
        .unwrap();
    assert!(f.s.take_session().is_none());
    f.s.disconnect(
        f.now,
        DisconnectReasonCode::NormalDisconnection,
        Default::default(),
    )
    .unwrap();
    let s = f.s.take_session().unwrap();
    assert_eq!(s.outbound().len(), 1);
    // Documented: `None` when already taken.
    assert!(f.s.take_session().is_none());
}

#[test]
fn misuse_is_refused_without_bytes_and_changes_nothing() {
    let mut f = connected(V5);
    // Accept twice.
    assert!(matches!(
        f.s.accept(f.now, Accept::new()),
        Err(Error::InvalidState(_))
    ));
    // SUBACK / UNSUBACK / ack for requests that do not exist.
    assert_eq!(
        f.s.suback(
            f.now,
            pid(42),
            vec![SubAckReasonCode::GrantedQoS0],
            Default::default()
        ),
        Err(Error::UnknownPacketId(pid(42)))
    );
    assert_eq!(
        f.s.unsuback(
            f.now,
            pid(42),
            vec![UnsubAckReasonCode::Success],
            Default::default()
        ),
        Err(Error::UnknownPacketId(pid(42)))
    );
    let manual = config(|c| c.ack_mode = AckMode::Manual);
    let mut m = connected_with(V5, manual, connect(V5, "m"));
    assert_eq!(
        m.s.ack(m.now, pid(42), PubAckReasonCode::Success),
        Err(Error::UnknownPacketId(pid(42)))
    );
    assert!(m.out_bytes().is_empty());
    // A Topic Alias or no topic in a message to send.
    let mut p = publish("t", b"x", QoS::AtMostOnce, 1);
    p.properties.topic_alias = NonZeroU16::new(1);
    assert!(matches!(f.s.publish(f.now, p), Err(Error::NotAllowed(_))));
    assert!(f.out_bytes().is_empty());
    assert!(f.events().is_empty());
    // Still connected and working.
    assert!(f.s.is_connected());
    let id =
        f.s.publish(f.now, publish("t", b"x", QoS::AtLeastOnce, 1))
            .unwrap();
    assert!(id.is_some());
    assert_eq!(published_ids(&f.out()), [id.unwrap().get()]);
    // After the close, everything is refused.
    f.s.handle_closed(f.now);
    assert_eq!(
        f.s.publish(f.now, publish("t", b"x", QoS::AtMostOnce, 1)),
        Err(Error::NotConnected)
    );
    assert!(f
        .s
        .disconnect(
            f.now,
            DisconnectReasonCode::NormalDisconnection,
            Default::default()
        )
        .is_err());
    assert!(f.out_bytes().is_empty());
}

#[test]
fn mqtt5_subscribe_reusing_pending_id_answered_0x91() {
    let mut f = connected(V5);
    f.send(&subscribe(4, &[("a", QoS::AtMostOnce)]));
    f.send(&subscribe(
        4,
        &[("b", QoS::AtMostOnce), ("c", QoS::AtMostOnce)],
    ));
    assert_eq!(f.events().len(), 1);
    assert_eq!(
        single_suback(&f.out()),
        (4, vec![SubAckReasonCode::PacketIdentifierInUse; 2])
    );
    // The first one is still answerable.
    f.s.suback(
        f.now,
        pid(4),
        vec![SubAckReasonCode::GrantedQoS0],
        Default::default(),
    )
    .unwrap();
    assert_eq!(
        single_suback(&f.out()),
        (4, vec![SubAckReasonCode::GrantedQoS0])
    );
}

#[test]
fn mqtt311_disconnect_from_client_closes_with_reason() {
    let mut f = connected(V311);
    f.send(&Disconnect::new(DisconnectReasonCode::NormalDisconnection));
    let r = f.expect_closed();
    assert!(matches!(r, CloseReason::PeerDisconnected(_)));
    assert!(!r.publishes_will());
}

#[test]
fn mqtt5_3_2_2_7_refusal_with_server_reference_then_close() {
    let mut f = Fake::new(V5, ServerConfig::default());
    f.send(&connect(V5, "dev1"));
    f.expect_connect();
    let mut p = ConnAckProperties::default();
    p.server_reference = Some(mstr("other.example:1883"));
    f.s.reject(f.now, ConnectReasonCode::UseAnotherServer, p.clone())
        .unwrap();
    match f.out().as_slice() {
        [Packet::ConnAck(a)] => {
            assert_eq!(u8::from(a.reason_code), 0x9C);
            assert!(!a.session_present);
            assert_eq!(
                a.properties
                    .server_reference
                    .as_ref()
                    .map(MqttString::as_str),
                Some("other.example:1883")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(f.s.is_closed());
    // A 3.1.1 client gets the nearest return code, without properties.
    let mut f = Fake::new(V311, ServerConfig::default());
    f.send(&connect(V311, "dev1"));
    f.expect_connect();
    f.s.reject(f.now, ConnectReasonCode::UseAnotherServer, p)
        .unwrap();
    assert_eq!(f.out_bytes(), [0x20, 0x02, 0x00, 0x03]);
    assert!(f.s.is_closed());
}
