//! Conformance tests of the symmetric QoS flow rules: the sender and
//! receiver statements of MQTT 3.1.1 and 5.0 (packet identifiers, DUP, the
//! QoS 0/1/2 flows, delivery retry, flow control, topic aliases per
//! connection, DISCONNECT, errors, enhanced authentication methods).
//!
//! The flows are the same code on both sides, so every generic test runs
//! against the [`Client`] *and* the [`ServerConnection`], each driven by a
//! scripted fake peer: packets built with `mqtt_wire` types and encoded with
//! [`Encode`] go in, and what the session writes is decoded with
//! [`mqtt_wire::decode`] and checked. Time is a fake clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::VecDeque;
use std::num::{NonZeroU16, NonZeroU32};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_session::client::{AuthFailed, Authenticator, Client, ClientConfig, Event as ClientEvent};
use mqtt_session::server::{Accept, Event as ServerEvent, ServerConfig, ServerConnection};
use mqtt_session::{AckMode, CloseReason, Error};
use mqtt_wire::{
    Auth, AuthProperties, AuthReasonCode, ConnAck, ConnAckProperties, Connect, ConnectReasonCode,
    DecodeConfig, DecodeError, Delivery, Disconnect, DisconnectProperties, DisconnectReasonCode,
    Encode, MqttString, Packet, PacketId, ProtocolVersion, PubAck, PubAckReasonCode, PubComp,
    PubRec, PubRel, PubRelReasonCode, Publish, QoS, SubAck, SubAckReasonCode, Subscribe,
    SubscriptionOptions, TopicFilter, TopicName, MAX_PACKET_SIZE,
};

const V5: ProtocolVersion = ProtocolVersion::V5;
const V311: ProtocolVersion = ProtocolVersion::V3_1_1;

// ---------------------------------------------------------------------------
// Wire helpers
// ---------------------------------------------------------------------------

fn topic(s: &'static str) -> TopicName {
    TopicName::from_static(s).unwrap()
}

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn wire(v: ProtocolVersion, p: impl Into<Packet>) -> Vec<u8> {
    let mut b = BytesMut::new();
    p.into().encode(v, &mut b).expect("test packet encodes");
    b.to_vec()
}

fn decode_all(v: ProtocolVersion, bytes: &[u8]) -> Vec<Packet> {
    let cfg = DecodeConfig::new(v).with_max_packet_size(MAX_PACKET_SIZE);
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(p) = mqtt_wire::decode(&mut buf, &cfg).expect("the session wrote a bad packet") {
        out.push(p);
    }
    assert!(buf.is_empty(), "the session wrote a partial packet");
    out
}

/// A message from the application; the packet id is a placeholder the
/// session must replace.
fn msg(t: &'static str, qos: QoS) -> Publish {
    Publish::new(topic(t), Bytes::from_static(b"payload"))
        .with_delivery(Delivery::new(qos, pid(999)))
}

/// A message from the fake peer.
fn incoming(t: &'static str, delivery: Delivery) -> Publish {
    Publish::new(topic(t), Bytes::from_static(b"from-peer")).with_delivery(delivery)
}

fn expect_publish(p: &Packet) -> &Publish {
    match p {
        Packet::Publish(p) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Both sides behind one interface
// ---------------------------------------------------------------------------

/// The events both sides have in common.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Publish(Publish),
    PubAck(PubAck),
    PubRecFailed(PubRec),
    PubComp(PubComp),
    Closed(CloseReason),
    Other(String),
}

/// Connection settings of a test, for either side.
#[derive(Debug, Clone, Copy)]
struct Opts {
    v: ProtocolVersion,
    ack_mode: AckMode,
    /// Receive Maximum the session under test announces.
    our_receive_max: Option<u16>,
    /// Topic Alias Maximum the session under test announces.
    our_alias_max: u16,
    /// What the fake peer announces.
    peer_receive_max: Option<u16>,
    peer_max_packet: Option<u32>,
    peer_alias_max: u16,
}

impl Opts {
    fn new(v: ProtocolVersion) -> Self {
        Opts {
            v,
            ack_mode: AckMode::Auto,
            our_receive_max: None,
            our_alias_max: 0,
            peer_receive_max: None,
            peer_max_packet: None,
            peer_alias_max: 0,
        }
    }

    fn manual(mut self) -> Self {
        self.ack_mode = AckMode::Manual;
        self
    }
}

trait Side {
    fn read(&mut self, now: Instant, bytes: &[u8]);
    fn transmit(&mut self) -> Option<Bytes>;
    fn event(&mut self) -> Option<Ev>;
    fn publish(&mut self, now: Instant, p: Publish) -> Result<Option<PacketId>, Error>;
    fn ack(&mut self, now: Instant, id: PacketId, code: PubAckReasonCode) -> Result<(), Error>;
    fn disconnect(&mut self, now: Instant, code: DisconnectReasonCode) -> Result<(), Error>;
    fn timeout(&mut self, now: Instant);
    fn is_closed(&self) -> bool;
    fn in_flight(&self) -> usize;
    /// Drops the transport and connects again resuming the session (Clean
    /// Start 0, Session Present 1). The first packet written afterwards is
    /// the CONNECT (client) or CONNACK (server).
    fn reconnect(&mut self, now: Instant);
}

// ---- the client, facing a fake server ----

struct ClientSide {
    c: Client,
    connack: ConnAck,
    v: ProtocolVersion,
}

impl ClientSide {
    fn start(o: Opts, now: Instant) -> Self {
        let mut connect = Connect::new(o.v, MqttString::from_static("flow-client"));
        connect.clean_start = false;
        connect.keep_alive = 0;
        let mut connack = ConnAck::new(ConnectReasonCode::Success);
        if o.v.is_v5() {
            connect.properties.receive_maximum = o.our_receive_max.and_then(NonZeroU16::new);
            connect.properties.topic_alias_maximum = Some(o.our_alias_max);
            let p = &mut connack.properties;
            p.receive_maximum = o.peer_receive_max.and_then(NonZeroU16::new);
            p.maximum_packet_size = o.peer_max_packet.and_then(NonZeroU32::new);
            p.topic_alias_maximum = Some(o.peer_alias_max);
        }
        let cfg = ClientConfig::new(connect).with_ack_mode(o.ack_mode);
        let mut s = ClientSide {
            c: Client::new(cfg),
            connack,
            v: o.v,
        };
        s.handshake(now, false);
        s
    }

    fn handshake(&mut self, now: Instant, session_present: bool) {
        self.c.connect(now).unwrap();
        let mut ack = self.connack.clone();
        ack.session_present = session_present;
        self.c.handle_read(now, &wire(self.v, ack));
        assert!(self.c.is_connected());
        while self.c.poll_event().is_some() {}
    }
}

impl Side for ClientSide {
    fn read(&mut self, now: Instant, bytes: &[u8]) {
        self.c.handle_read(now, bytes);
    }
    fn transmit(&mut self) -> Option<Bytes> {
        self.c.poll_transmit()
    }
    fn event(&mut self) -> Option<Ev> {
        Some(match self.c.poll_event()? {
            ClientEvent::Publish(p) => Ev::Publish(p),
            ClientEvent::PubAck(a) => Ev::PubAck(a),
            ClientEvent::PubRecFailed(r) => Ev::PubRecFailed(r),
            ClientEvent::PubComp(c) => Ev::PubComp(c),
            ClientEvent::Disconnected(r) => Ev::Closed(r),
            other => Ev::Other(format!("{other:?}")),
        })
    }
    fn publish(&mut self, now: Instant, p: Publish) -> Result<Option<PacketId>, Error> {
        self.c.publish(now, p)
    }
    fn ack(&mut self, now: Instant, id: PacketId, code: PubAckReasonCode) -> Result<(), Error> {
        self.c.ack(now, id, code)
    }
    fn disconnect(&mut self, now: Instant, code: DisconnectReasonCode) -> Result<(), Error> {
        self.c
            .disconnect(now, code, DisconnectProperties::default())
    }
    fn timeout(&mut self, now: Instant) {
        self.c.handle_timeout(now);
    }
    fn is_closed(&self) -> bool {
        self.c.is_closed()
    }
    fn in_flight(&self) -> usize {
        self.c.in_flight()
    }
    fn reconnect(&mut self, now: Instant) {
        self.c.handle_closed(now);
        while self.c.poll_event().is_some() {}
        self.handshake(now, true);
    }
}

// ---- the server connection, facing a fake client ----

struct ServerSide {
    s: ServerConnection,
    cfg: ServerConfig,
    connect: Connect,
    v: ProtocolVersion,
}

impl ServerSide {
    fn start(o: Opts, now: Instant) -> Self {
        let mut cfg = ServerConfig::default();
        cfg.ack_mode = o.ack_mode;
        if let Some(n) = o.our_receive_max.and_then(NonZeroU16::new) {
            cfg.receive_maximum = n;
        }
        cfg.topic_alias_maximum = o.our_alias_max;
        let mut connect = Connect::new(o.v, MqttString::from_static("flow-client"));
        connect.clean_start = false;
        connect.keep_alive = 0;
        if o.v.is_v5() {
            let p = &mut connect.properties;
            p.receive_maximum = o.peer_receive_max.and_then(NonZeroU16::new);
            p.maximum_packet_size = o.peer_max_packet.and_then(NonZeroU32::new);
            p.topic_alias_maximum = Some(o.peer_alias_max);
        }
        let s = ServerConnection::new(cfg.clone(), now);
        let mut side = ServerSide {
            s,
            cfg,
            connect,
            v: o.v,
        };
        side.handshake(now, None);
        side
    }

    fn handshake(&mut self, now: Instant, session: Option<mqtt_session::SessionState>) {
        self.s.handle_read(now, &wire(self.v, self.connect.clone()));
        match self.s.poll_event() {
            Some(ServerEvent::Connect(_)) => {}
            other => panic!("{other:?}"),
        }
        let accept = match session {
            Some(s) => Accept::resume(s),
            None => Accept::new(),
        };
        self.s.accept(now, accept).unwrap();
        assert!(self.s.is_connected());
    }
}

impl Side for ServerSide {
    fn read(&mut self, now: Instant, bytes: &[u8]) {
        self.s.handle_read(now, bytes);
    }
    fn transmit(&mut self) -> Option<Bytes> {
        self.s.poll_transmit()
    }
    fn event(&mut self) -> Option<Ev> {
        Some(match self.s.poll_event()? {
            ServerEvent::Publish(p) => Ev::Publish(p),
            ServerEvent::PubAck(a) => Ev::PubAck(a),
            ServerEvent::PubRecFailed(r) => Ev::PubRecFailed(r),
            ServerEvent::PubComp(c) => Ev::PubComp(c),
            ServerEvent::Closed(r) => Ev::Closed(r),
            other => Ev::Other(format!("{other:?}")),
        })
    }
    fn publish(&mut self, now: Instant, p: Publish) -> Result<Option<PacketId>, Error> {
        self.s.publish(now, p)
    }
    fn ack(&mut self, now: Instant, id: PacketId, code: PubAckReasonCode) -> Result<(), Error> {
        self.s.ack(now, id, code)
    }
    fn disconnect(&mut self, now: Instant, code: DisconnectReasonCode) -> Result<(), Error> {
        self.s
            .disconnect(now, code, DisconnectProperties::default())
    }
    fn timeout(&mut self, now: Instant) {
        self.s.handle_timeout(now);
    }
    fn is_closed(&self) -> bool {
        self.s.is_closed()
    }
    fn in_flight(&self) -> usize {
        self.s.in_flight()
    }
    fn reconnect(&mut self, now: Instant) {
        self.s.handle_closed(now);
        while self.s.poll_event().is_some() {}
        let session = self
            .s
            .take_session()
            .expect("closed connection has a session");
        self.s = ServerConnection::new(self.cfg.clone(), now);
        self.handshake(now, Some(session));
    }
}

/// One session under test with its fake peer.
struct T {
    s: Box<dyn Side>,
    name: &'static str,
    v: ProtocolVersion,
    now: Instant,
    pending: VecDeque<Packet>,
}

impl T {
    fn client(o: Opts) -> T {
        let t0 = Instant::now();
        Self::wrap(Box::new(ClientSide::start(o, t0)), "client", o.v, t0)
    }

    fn server(o: Opts) -> T {
        let t0 = Instant::now();
        Self::wrap(Box::new(ServerSide::start(o, t0)), "server", o.v, t0)
    }

    fn wrap(s: Box<dyn Side>, name: &'static str, v: ProtocolVersion, t0: Instant) -> T {
        let mut t = T {
            s,
            name,
            v,
            now: t0,
            pending: VecDeque::new(),
        };
        t.expect_handshake();
        t
    }

    /// The handshake packet (CONNECT from the client, CONNACK from the
    /// server) must come first; what follows stays for `out`.
    fn expect_handshake(&mut self) {
        self.pull();
        match self.pending.pop_front() {
            Some(Packet::Connect(_)) if self.name == "client" => {}
            Some(Packet::ConnAck(c)) if self.name == "server" => {
                assert_eq!(c.reason_code, ConnectReasonCode::Success)
            }
            other => panic!(
                "{}: expected the handshake packet, got {other:?}",
                self.name
            ),
        }
    }

    fn pull(&mut self) {
        while let Some(b) = self.s.transmit() {
            self.pending.extend(decode_all(self.v, &b));
        }
    }

    /// Raw chunks written (nothing may be pending).
    fn out_raw(&mut self) -> Vec<Bytes> {
        assert!(self.pending.is_empty());
        let mut v = Vec::new();
        while let Some(b) = self.s.transmit() {
            v.push(b);
        }
        v
    }

    fn out(&mut self) -> Vec<Packet> {
        self.pull();
        self.pending.drain(..).collect()
    }

    fn assert_silent(&mut self) {
        let out = self.out();
        assert!(
            out.is_empty(),
            "{}: expected no output, got {out:?}",
            self.name
        );
    }

    fn feed(&mut self, p: impl Into<Packet>) {
        let b = wire(self.v, p);
        self.s.read(self.now, &b);
    }

    fn events(&mut self) -> Vec<Ev> {
        let mut v = Vec::new();
        while let Some(e) = self.s.event() {
            v.push(e);
        }
        v
    }

    fn publish(&mut self, p: Publish) -> Result<Option<PacketId>, Error> {
        self.s.publish(self.now, p)
    }

    fn publish_id(&mut self, p: Publish) -> PacketId {
        self.publish(p).unwrap().expect("QoS 1/2 has an id")
    }

    fn ack(&mut self, id: PacketId, code: PubAckReasonCode) -> Result<(), Error> {
        self.s.ack(self.now, id, code)
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.s.timeout(self.now);
    }

    fn reconnect(&mut self) {
        let left = self.out();
        assert!(left.is_empty(), "{}: unread output {left:?}", self.name);
        self.s.reconnect(self.now);
        self.expect_handshake();
    }
}

/// The session under test on each side, with the same settings.
fn sides(o: Opts) -> [T; 2] {
    [T::client(o), T::server(o)]
}

fn ids_of(out: &[Packet]) -> Vec<(&'static str, u16)> {
    out.iter()
        .map(|p| match p {
            Packet::Publish(p) => ("PUBLISH", p.packet_id().map_or(0, PacketId::get)),
            Packet::PubAck(a) => ("PUBACK", a.packet_id.get()),
            Packet::PubRec(a) => ("PUBREC", a.packet_id.get()),
            Packet::PubRel(a) => ("PUBREL", a.packet_id.get()),
            Packet::PubComp(a) => ("PUBCOMP", a.packet_id.get()),
            other => panic!("not a flow packet: {other:?}"),
        })
        .collect()
}

fn only_publishes(ev: &[Ev]) -> Vec<&Publish> {
    ev.iter()
        .filter_map(|e| match e {
            Ev::Publish(p) => Some(p),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------
// MQTT-2.3.1-6 (3.1.1) / MQTT-2.2.1-5 (5.0): acks echo the identifier
// ---------------------------------------------------------------------------

fn acks_echo_packet_id(v: ProtocolVersion) {
    for mut t in sides(Opts::new(v)) {
        // Receiver side.
        t.feed(incoming("a", Delivery::AtLeastOnce(pid(0x1234))));
        t.feed(incoming("a", Delivery::ExactlyOnce(pid(0xbeef))));
        t.feed(PubRel::new(pid(0xbeef)));
        assert_eq!(
            ids_of(&t.out()),
            vec![("PUBACK", 0x1234), ("PUBREC", 0xbeef), ("PUBCOMP", 0xbeef)],
            "{}",
            t.name
        );
        // Sender side: the PUBREL carries the PUBLISH's identifier.
        let a = t.publish_id(msg("x", QoS::ExactlyOnce));
        let b = t.publish_id(msg("x", QoS::ExactlyOnce));
        t.out();
        t.feed(PubRec::new(b));
        t.feed(PubRec::new(a));
        assert_eq!(
            ids_of(&t.out()),
            vec![("PUBREL", b.get()), ("PUBREL", a.get())],
            "{}",
            t.name
        );
        // Manual acknowledgements too.
        let mut m = if v.is_v5() {
            T::client(Opts::new(v).manual())
        } else {
            T::server(Opts::new(v).manual())
        };
        m.feed(incoming("a", Delivery::AtLeastOnce(pid(77))));
        m.feed(incoming("a", Delivery::ExactlyOnce(pid(78))));
        m.ack(pid(77), PubAckReasonCode::Success).unwrap();
        m.ack(pid(78), PubAckReasonCode::Success).unwrap();
        assert_eq!(ids_of(&m.out()), vec![("PUBACK", 77), ("PUBREC", 78)]);
    }
}

#[test]
fn mqtt311_2_3_1_6_acks_echo_packet_id() {
    acks_echo_packet_id(V311);
}

#[test]
fn mqtt5_2_2_1_5_acks_echo_packet_id() {
    acks_echo_packet_id(V5);
}

// ---------------------------------------------------------------------------
// MQTT-3.3.1-1: DUP on re-delivery
// ---------------------------------------------------------------------------

fn redelivery_sets_dup(v: ProtocolVersion) {
    for mut t in sides(Opts::new(v)) {
        let mut first = msg("d/1", QoS::AtLeastOnce);
        first.dup = true; // the application's DUP is not trusted
        let a = t.publish_id(first);
        let b = t.publish_id(msg("d/2", QoS::ExactlyOnce));
        let out = t.out();
        assert!(
            out.iter().all(|p| !expect_publish(p).dup),
            "{}: {out:?}",
            t.name
        );
        t.reconnect();
        let out = t.out();
        assert_eq!(out.len(), 2, "{}: {out:?}", t.name);
        for (p, (id, name)) in out.iter().zip([(a, "d/1"), (b, "d/2")]) {
            let p = expect_publish(p);
            assert!(p.dup, "{}: re-delivery without DUP", t.name);
            assert_eq!(p.packet_id(), Some(id));
            assert_eq!(p.topic.as_ref().unwrap().as_str(), name);
            assert_eq!(&p.payload[..], b"payload");
        }
        // A new message is still sent with DUP 0.
        t.publish(msg("d/3", QoS::AtLeastOnce)).unwrap();
        assert!(!expect_publish(&t.out()[0]).dup);
    }
}

#[test]
fn mqtt311_3_3_1_1_redelivery_sets_dup() {
    redelivery_sets_dup(V311);
}

#[test]
fn mqtt5_3_3_1_1_redelivery_sets_dup() {
    redelivery_sets_dup(V5);
}

// ---------------------------------------------------------------------------
// MQTT-3.3.2-7: Topic Alias mappings belong to one connection
// ---------------------------------------------------------------------------

fn aliased(t: Option<&'static str>, alias: u16, delivery: Delivery) -> Publish {
    let mut p = incoming("placeholder", delivery);
    p.topic = t.map(topic);
    p.properties.topic_alias = NonZeroU16::new(alias);
    p
}

#[test]
fn mqtt5_3_3_2_7_topic_aliases_reset_on_new_connection() {
    let mut o = Opts::new(V5);
    o.our_alias_max = 5;
    o.peer_alias_max = 5;
    for mut t in sides(o) {
        // Receiver: the peer's mapping is forgotten on the next connection.
        t.feed(aliased(Some("alias/topic"), 1, Delivery::AtMostOnce));
        t.feed(aliased(None, 1, Delivery::AtMostOnce));
        let ev = t.events();
        assert_eq!(only_publishes(&ev).len(), 2, "{}", t.name);
        t.reconnect();
        t.feed(aliased(None, 1, Delivery::AtMostOnce));
        let out = t.out();
        assert_eq!(
            out,
            vec![Packet::Disconnect(Disconnect::new(
                DisconnectReasonCode::ProtocolError
            ))],
            "{}",
            t.name
        );
        assert!(t.s.is_closed());
        assert!(only_publishes(&t.events()).is_empty(), "{}", t.name);
    }
    for mut t in sides(o) {
        // Sender: a new connection starts without aliases, so the topic
        // name is sent again with the alias.
        t.publish(msg("out/topic", QoS::AtMostOnce)).unwrap();
        t.publish(msg("out/topic", QoS::AtLeastOnce)).unwrap();
        let out = t.out();
        let p0 = expect_publish(&out[0]);
        let p1 = expect_publish(&out[1]);
        assert_eq!(p0.properties.topic_alias, NonZeroU16::new(1));
        assert!(p0.topic.is_some());
        assert!(p1.topic.is_none(), "{}: alias alone", t.name);
        t.reconnect();
        let out = t.out();
        // The resent message carries its topic name: the old alias is void.
        let resent = expect_publish(&out[0]).clone();
        assert!(resent.dup);
        assert_eq!(
            resent.topic.as_ref().unwrap().as_str(),
            "out/topic",
            "{}",
            t.name
        );
        // An alias used later on this connection is one defined on it.
        t.publish(msg("out/topic", QoS::AtMostOnce)).unwrap();
        let out = t.out();
        let p = expect_publish(&out[0]);
        if p.topic.is_none() {
            assert_eq!(p.properties.topic_alias, resent.properties.topic_alias);
            assert!(resent.properties.topic_alias.is_some(), "{}", t.name);
        }
    }
}

// ---------------------------------------------------------------------------
// MQTT-3.3.4-1: the receiver answers per QoS
// ---------------------------------------------------------------------------

fn receiver_answers_per_qos(v: ProtocolVersion) {
    for mut t in sides(Opts::new(v)) {
        t.feed(incoming("q/0", Delivery::AtMostOnce));
        t.assert_silent();
        t.feed(incoming("q/1", Delivery::AtLeastOnce(pid(1))));
        assert_eq!(
            t.out(),
            vec![Packet::PubAck(PubAck::new(pid(1)))],
            "{}",
            t.name
        );
        t.feed(incoming("q/2", Delivery::ExactlyOnce(pid(2))));
        assert_eq!(
            t.out(),
            vec![Packet::PubRec(PubRec::new(pid(2)))],
            "{}",
            t.name
        );
        let ev = t.events();
        let qos: Vec<QoS> = only_publishes(&ev).iter().map(|p| p.qos()).collect();
        assert_eq!(
            qos,
            vec![QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce],
            "{}",
            t.name
        );
    }
}

#[test]
fn mqtt311_3_3_4_1_receiver_answers_per_qos() {
    receiver_answers_per_qos(V311);
}

#[test]
fn mqtt5_3_3_4_1_receiver_answers_per_qos() {
    receiver_answers_per_qos(V5);
}

// ---------------------------------------------------------------------------
// MQTT-3.4.2-2/3, 3.5.2-2/3, 3.6.2-2/3, 3.7.2-2/3: acks and the peer's
// Maximum Packet Size
// ---------------------------------------------------------------------------

/// The session builds PUBACK, PUBREC, PUBREL and PUBCOMP itself, with a
/// reason code at most (the manual `ack` takes no properties): there is
/// never a Reason String or User Property to omit. This checks that every
/// such acknowledgement, successful or not, carries no properties and fits a
/// small Maximum Packet Size of the peer.
#[test]
fn mqtt5_3_4_2_2_to_3_7_2_3_acks_carry_no_diagnostics_and_fit_peer_maximum() {
    const MAX: u32 = 24;
    let mut o = Opts::new(V5).manual();
    o.peer_max_packet = Some(MAX);
    for mut t in sides(o) {
        t.feed(incoming("a", Delivery::AtLeastOnce(pid(1))));
        t.feed(incoming("a", Delivery::AtLeastOnce(pid(2))));
        t.feed(incoming("a", Delivery::ExactlyOnce(pid(3))));
        t.feed(incoming("a", Delivery::ExactlyOnce(pid(4))));
        t.ack(pid(1), PubAckReasonCode::Success).unwrap();
        t.ack(pid(2), PubAckReasonCode::NotAuthorized).unwrap();
        t.ack(pid(3), PubAckReasonCode::Success).unwrap();
        t.ack(pid(4), PubAckReasonCode::ImplementationSpecificError)
            .unwrap();
        t.feed(PubRel::new(pid(3)));
        t.feed(PubRel::new(pid(555))); // unknown: PUBCOMP 0x92
        let a = t.publish_id(msg("s", QoS::ExactlyOnce));
        t.feed(PubRec::new(a));
        t.feed(PubRec::new(pid(556))); // unknown: PUBREL 0x92
        let mut kinds = Vec::new();
        for chunk in t.out_raw() {
            let cfg = DecodeConfig::new(V5).with_max_packet_size(MAX);
            let mut buf = BytesMut::from(&chunk[..]);
            while let Some(p) = mqtt_wire::decode(&mut buf, &cfg).expect("fits the peer's limit") {
                let props_empty = match &p {
                    Packet::PubAck(a) => a.properties.is_empty(),
                    Packet::PubRec(a) => a.properties.is_empty(),
                    Packet::PubRel(a) => a.properties.is_empty(),
                    Packet::PubComp(a) => a.properties.is_empty(),
                    Packet::Publish(_) => true,
                    other => panic!("{other:?}"),
                };
                assert!(props_empty, "{}: {p:?}", t.name);
                kinds.push(ids_of(std::slice::from_ref(&p))[0]);
            }
        }
        assert_eq!(
            kinds,
            vec![
                ("PUBACK", 1),
                ("PUBACK", 2),
                ("PUBREC", 3),
                ("PUBREC", 4),
                ("PUBCOMP", 3),
                ("PUBCOMP", 555),
                ("PUBLISH", a.get()),
                ("PUBREL", a.get()),
                ("PUBREL", 556),
            ],
            "{}: every acknowledgement was sent",
            t.name
        );
    }
}

// ---------------------------------------------------------------------------
// MQTT-3.14.4-1 / MQTT-3.14.4-2 (5.0, both senders): after DISCONNECT
// ---------------------------------------------------------------------------

#[test]
fn mqtt5_3_14_4_1_3_14_4_2_nothing_after_disconnect() {
    for (mut t, code) in sides(Opts::new(V5)).into_iter().zip([
        DisconnectReasonCode::NormalDisconnection,
        DisconnectReasonCode::ServerShuttingDown,
    ]) {
        t.publish(msg("a", QoS::AtLeastOnce)).unwrap();
        t.out();
        t.s.disconnect(t.now, code).unwrap();
        assert_eq!(
            t.out(),
            vec![Packet::Disconnect(Disconnect::new(code))],
            "{}",
            t.name
        );
        // MQTT-3.14.4-2 (5.0): the session says the transport must close.
        assert!(t.s.is_closed(), "{}", t.name);
        let ev = t.events();
        assert!(
            matches!(ev.last(), Some(Ev::Closed(CloseReason::LocalDisconnect(c))) if *c == code),
            "{}: {ev:?}",
            t.name
        );
        // MQTT-3.14.4-1 (5.0): nothing more is sent.
        assert_eq!(
            t.publish(msg("a", QoS::AtMostOnce)),
            Err(Error::NotConnected),
            "{}",
            t.name
        );
        t.feed(incoming("a", Delivery::AtLeastOnce(pid(3))));
        t.feed(incoming("a", Delivery::ExactlyOnce(pid(4))));
        t.feed(PubAck::new(pid(1)));
        t.advance(Duration::from_secs(3600));
        assert!(t.s.disconnect(t.now, code).is_err());
        t.assert_silent();
        assert!(t.events().is_empty(), "{}", t.name);
    }
}

// ---------------------------------------------------------------------------
// MQTT-4.3.1-1: QoS 0
// ---------------------------------------------------------------------------

fn qos0_sender(v: ProtocolVersion) {
    for mut t in sides(Opts::new(v)) {
        let mut m = msg("zero", QoS::AtMostOnce);
        m.dup = true;
        assert_eq!(t.publish(m), Ok(None));
        let out = t.out();
        let p = expect_publish(&out[0]);
        assert_eq!(p.qos(), QoS::AtMostOnce, "{}", t.name);
        assert!(!p.dup, "{}: QoS 0 with DUP", t.name);
        assert_eq!(t.s.in_flight(), 0);
        // Nothing is kept: a reconnection resends nothing.
        t.reconnect();
        t.assert_silent();
    }
}

#[test]
fn mqtt311_4_3_1_1_qos0_sent_with_dup_0() {
    qos0_sender(V311);
}

#[test]
fn mqtt5_4_3_1_1_qos0_sent_with_dup_0() {
    qos0_sender(V5);
}

// ---------------------------------------------------------------------------
// MQTT-4.3.2-1..3 (5.0), MQTT-4.3.2-1 (3.1.1): the QoS 1 sender
// ---------------------------------------------------------------------------

fn qos1_sender(v: ProtocolVersion) {
    for mut t in sides(Opts::new(v)) {
        let ids: Vec<PacketId> = (0..3)
            .map(|_| t.publish_id(msg("one", QoS::AtLeastOnce)))
            .collect();
        let out = t.out();
        // Fresh, distinct identifiers (not the placeholder), QoS 1, DUP 0.
        assert_eq!(out.len(), 3);
        for (p, id) in out.iter().zip(&ids) {
            let p = expect_publish(p);
            assert_eq!(p.delivery, Delivery::AtLeastOnce(*id), "{}", t.name);
            assert!(!p.dup);
        }
        let mut raw: Vec<u16> = ids.iter().map(|i| i.get()).collect();
        raw.dedup();
        assert_eq!(raw.len(), 3, "{}: {ids:?}", t.name);
        assert_eq!(t.s.in_flight(), 3);
        // Only the matching PUBACK acknowledges it: not another id, not a
        // PUBREC or PUBCOMP.
        t.feed(PubAck::new(pid(4242)));
        t.feed(PubComp::new(ids[0]));
        assert_eq!(t.s.in_flight(), 3, "{}", t.name);
        assert!(!t.events().iter().any(|e| matches!(e, Ev::PubAck(_))));
        // Still unacknowledged: resent on the next connection.
        t.reconnect();
        assert_eq!(
            ids_of(&t.out()),
            ids.iter().map(|i| ("PUBLISH", i.get())).collect::<Vec<_>>(),
            "{}",
            t.name
        );
        // A new message does not take an identifier still in flight.
        let fresh = t.publish_id(msg("one", QoS::AtLeastOnce));
        assert!(!ids.contains(&fresh), "{}", t.name);
        t.out();
        t.feed(PubAck::new(ids[1]));
        assert_eq!(
            t.events(),
            vec![Ev::PubAck(PubAck::new(ids[1]))],
            "{}",
            t.name
        );
        assert_eq!(t.s.in_flight(), 3);
        // A repeated PUBACK changes nothing.
        t.feed(PubAck::new(ids[1]));
        assert!(t.events().is_empty());
        t.reconnect();
        assert_eq!(
            ids_of(&t.out()),
            vec![
                ("PUBLISH", ids[0].get()),
                ("PUBLISH", ids[2].get()),
                ("PUBLISH", fresh.get())
            ],
            "{}: the acknowledged one is not resent",
            t.name
        );
    }
}

#[test]
fn mqtt311_4_3_2_1_qos1_sender() {
    qos1_sender(V311);
}

#[test]
fn mqtt5_4_3_2_1_4_3_2_2_4_3_2_3_qos1_sender() {
    qos1_sender(V5);
}

// ---------------------------------------------------------------------------
// MQTT-4.3.2-4/5 (5.0), MQTT-4.3.2-2 (3.1.1): the QoS 1 receiver
// ---------------------------------------------------------------------------

fn qos1_receiver(v: ProtocolVersion) {
    for mut t in sides(Opts::new(v)) {
        t.feed(incoming("r", Delivery::AtLeastOnce(pid(5))));
        assert_eq!(t.out(), vec![Packet::PubAck(PubAck::new(pid(5)))]);
        // The same identifier again, even with DUP: a new publication,
        // delivered and acknowledged again.
        let mut again = incoming("r", Delivery::AtLeastOnce(pid(5)));
        again.dup = true;
        t.feed(again);
        assert_eq!(
            t.out(),
            vec![Packet::PubAck(PubAck::new(pid(5)))],
            "{}",
            t.name
        );
        assert_eq!(only_publishes(&t.events()).len(), 2, "{}", t.name);
    }
    // Manual mode: the PUBACK waits for the application, then carries the id.
    for mut t in sides(Opts::new(v).manual()) {
        t.feed(incoming("r", Delivery::AtLeastOnce(pid(6))));
        t.assert_silent();
        assert_eq!(only_publishes(&t.events()).len(), 1);
        t.ack(pid(6), PubAckReasonCode::Success).unwrap();
        assert_eq!(
            t.out(),
            vec![Packet::PubAck(PubAck::new(pid(6)))],
            "{}",
            t.name
        );
        t.feed(incoming("r", Delivery::AtLeastOnce(pid(6))));
        assert_eq!(only_publishes(&t.events()).len(), 1, "{}", t.name);
    }
}

#[test]
fn mqtt311_4_3_2_2_qos1_receiver() {
    qos1_receiver(V311);
}

#[test]
fn mqtt5_4_3_2_4_4_3_2_5_qos1_receiver() {
    qos1_receiver(V5);
}

// ---------------------------------------------------------------------------
// MQTT-4.3.3-1..6 (5.0), MQTT-4.3.3-1 (3.1.1): the QoS 2 sender
// ---------------------------------------------------------------------------

fn qos2_first_send(v: ProtocolVersion) {
    for mut t in sides(Opts::new(v)) {
        let a = t.publish_id(msg("two", QoS::ExactlyOnce));
        let b = t.publish_id(msg("two", QoS::ExactlyOnce));
        assert_ne!(a, b);
        let out = t.out();
        for (p, id) in out.iter().zip([a, b]) {
            let p = expect_publish(p);
            assert_eq!(p.delivery, Delivery::ExactlyOnce(id), "{}", t.name);
            assert!(!p.dup, "{}", t.name);
        }
    }
}

fn qos2_unacknowledged_until_pubrec(v: ProtocolVersion) {
    for mut t in sides(Opts::new(v)) {
        let a = t.publish_id(msg("two", QoS::ExactlyOnce));
        t.out();
        // Neither a PUBACK nor a PUBCOMP stands for the PUBREC.
        t.feed(PubAck::new(a));
        t.feed(PubComp::new(a));
        assert_eq!(t.s.in_flight(), 1);
        assert!(t.events().is_empty(), "{}", t.name);
        t.assert_silent();
        t.reconnect();
        let out = t.out();
        assert_eq!(ids_of(&out), vec![("PUBLISH", a.get())], "{}", t.name);
        assert!(expect_publish(&out[0]).dup);
    }
}

fn qos2_pubrel_after_pubrec(v: ProtocolVersion) {
    for mut t in sides(Opts::new(v)) {
        let a = t.publish_id(msg("two", QoS::ExactlyOnce));
        t.out();
        t.feed(PubRec::new(a));
        assert_eq!(t.out(), vec![Packet::PubRel(PubRel::new(a))], "{}", t.name);
        // No completion event yet.
        assert!(t.events().is_empty());
        if v.is_v5() {
            // A PUBREC reason below 0x80 that is not 0x00 still continues.
            let b = t.publish_id(msg("two", QoS::ExactlyOnce));
            t.out();
            t.feed(PubRec::new(b).with_reason(PubAckReasonCode::NoMatchingSubscribers));
            assert_eq!(t.out(), vec![Packet::PubRel(PubRel::new(b))], "{}", t.name);
        }
    }
}

fn qos2_pubrel_until_pubcomp_publish_never_resent(v: ProtocolVersion) {
    for mut t in sides(Opts::new(v)) {
        let a = t.publish_id(msg("two", QoS::ExactlyOnce));
        t.out();
        t.feed(PubRec::new(a));
        t.out();
        // A repeated PUBREC gets the PUBREL again, never the PUBLISH.
        t.feed(PubRec::new(a));
        assert_eq!(t.out(), vec![Packet::PubRel(PubRel::new(a))], "{}", t.name);
        // A PUBACK does not complete it.
        t.feed(PubAck::new(a));
        assert_eq!(t.s.in_flight(), 1);
        // On the next connection the PUBREL is resent, not the PUBLISH.
        t.reconnect();
        assert_eq!(t.out(), vec![Packet::PubRel(PubRel::new(a))], "{}", t.name);
        t.reconnect();
        assert_eq!(t.out(), vec![Packet::PubRel(PubRel::new(a))], "{}", t.name);
        t.feed(PubComp::new(a));
        assert_eq!(t.events(), vec![Ev::PubComp(PubComp::new(a))], "{}", t.name);
        assert_eq!(t.s.in_flight(), 0);
        t.reconnect();
        t.assert_silent();
    }
}

#[test]
fn mqtt311_4_3_3_1_qos2_sender() {
    qos2_first_send(V311);
    qos2_unacknowledged_until_pubrec(V311);
    qos2_pubrel_after_pubrec(V311);
    qos2_pubrel_until_pubcomp_publish_never_resent(V311);
}

#[test]
fn mqtt5_4_3_3_1_4_3_3_2_qos2_first_send() {
    qos2_first_send(V5);
}

#[test]
fn mqtt5_4_3_3_3_publish_unacknowledged_until_pubrec() {
    qos2_unacknowledged_until_pubrec(V5);
}

#[test]
fn mqtt5_4_3_3_4_pubrel_same_id_after_pubrec() {
    qos2_pubrel_after_pubrec(V5);
}

#[test]
fn mqtt5_4_3_3_5_4_3_3_6_pubrel_until_pubcomp_publish_never_resent() {
    qos2_pubrel_until_pubcomp_publish_never_resent(V5);
}

/// Message expiry is the broker's to apply before it hands a message to a
/// session; once sent, the session never drops a QoS 2 message, however
/// long it waits.
#[test]
fn mqtt5_4_3_3_7_inflight_qos2_never_expired() {
    for mut t in sides(Opts::new(V5)) {
        let mut m = msg("exp", QoS::ExactlyOnce);
        m.properties.message_expiry_interval = Some(1);
        let a = t.publish_id(m);
        t.out();
        t.advance(Duration::from_secs(3600));
        assert_eq!(t.s.in_flight(), 1);
        t.reconnect();
        let out = t.out();
        assert_eq!(ids_of(&out), vec![("PUBLISH", a.get())], "{}", t.name);
        t.advance(Duration::from_secs(3600));
        t.feed(PubRec::new(a));
        assert_eq!(t.out(), vec![Packet::PubRel(PubRel::new(a))], "{}", t.name);
        t.advance(Duration::from_secs(3600));
        t.reconnect();
        assert_eq!(t.out(), vec![Packet::PubRel(PubRel::new(a))], "{}", t.name);
        t.feed(PubComp::new(a));
        assert_eq!(t.events(), vec![Ev::PubComp(PubComp::new(a))], "{}", t.name);
    }
}

// ---------------------------------------------------------------------------
// MQTT-4.3.3-8..13 (5.0), MQTT-4.3.3-2 (3.1.1): the QoS 2 receiver
// ---------------------------------------------------------------------------

fn qos2_pubrec_same_id(v: ProtocolVersion) {
    for mut t in sides(Opts::new(v)) {
        t.feed(incoming("r", Delivery::ExactlyOnce(pid(300))));
        t.feed(incoming("r", Delivery::ExactlyOnce(pid(301))));
        assert_eq!(
            t.out(),
            vec![
                Packet::PubRec(PubRec::new(pid(300))),
                Packet::PubRec(PubRec::new(pid(301)))
            ],
            "{}",
            t.name
        );
        assert_eq!(only_publishes(&t.events()).len(), 2);
    }
}

fn qos2_duplicates_not_redelivered(v: ProtocolVersion) {
    for mut t in sides(Opts::new(v)) {
        t.feed(incoming("r", Delivery::ExactlyOnce(pid(7))));
        assert_eq!(t.out(), vec![Packet::PubRec(PubRec::new(pid(7)))]);
        assert_eq!(only_publishes(&t.events()).len(), 1);
        for dup in [true, false] {
            let mut p = incoming("r", Delivery::ExactlyOnce(pid(7)));
            p.dup = dup;
            t.feed(p);
            assert_eq!(
                t.out(),
                vec![Packet::PubRec(PubRec::new(pid(7)))],
                "{}",
                t.name
            );
            assert!(
                only_publishes(&t.events()).is_empty(),
                "{}: delivered twice",
                t.name
            );
        }
        // Also across a new connection (the session keeps the state).
        t.reconnect();
        t.assert_silent();
        let mut p = incoming("r", Delivery::ExactlyOnce(pid(7)));
        p.dup = true;
        t.feed(p);
        assert_eq!(
            t.out(),
            vec![Packet::PubRec(PubRec::new(pid(7)))],
            "{}",
            t.name
        );
        assert!(only_publishes(&t.events()).is_empty(), "{}", t.name);
        t.feed(PubRel::new(pid(7)));
        assert_eq!(
            t.out(),
            vec![Packet::PubComp(PubComp::new(pid(7)))],
            "{}",
            t.name
        );
    }
    // Manual mode: the duplicate arrives before the application answered.
    for mut t in sides(Opts::new(v).manual()) {
        t.feed(incoming("r", Delivery::ExactlyOnce(pid(8))));
        let mut p = incoming("r", Delivery::ExactlyOnce(pid(8)));
        p.dup = true;
        t.feed(p);
        assert_eq!(only_publishes(&t.events()).len(), 1, "{}", t.name);
        t.assert_silent();
        t.ack(pid(8), PubAckReasonCode::Success).unwrap();
        assert_eq!(
            t.out(),
            vec![Packet::PubRec(PubRec::new(pid(8)))],
            "{}",
            t.name
        );
    }
}

fn qos2_pubcomp_same_id(v: ProtocolVersion) {
    for mut t in sides(Opts::new(v)) {
        t.feed(incoming("r", Delivery::ExactlyOnce(pid(21))));
        t.feed(incoming("r", Delivery::ExactlyOnce(pid(22))));
        t.out();
        t.feed(PubRel::new(pid(22)));
        t.feed(PubRel::new(pid(21)));
        assert_eq!(
            t.out(),
            vec![
                Packet::PubComp(PubComp::new(pid(22))),
                Packet::PubComp(PubComp::new(pid(21)))
            ],
            "{}",
            t.name
        );
        // A repeated PUBREL (our PUBCOMP was lost) is answered again.
        t.feed(PubRel::new(pid(21)));
        let out = t.out();
        let [Packet::PubComp(c)] = out.as_slice() else {
            panic!("{}: {out:?}", t.name)
        };
        assert_eq!(c.packet_id, pid(21));
        if v.is_v5() {
            assert_eq!(c.reason_code, PubRelReasonCode::PacketIdentifierNotFound);
        }
    }
}

fn qos2_new_message_after_pubcomp(v: ProtocolVersion) {
    for mut t in sides(Opts::new(v)) {
        t.feed(incoming("first", Delivery::ExactlyOnce(pid(9))));
        t.feed(PubRel::new(pid(9)));
        t.out();
        t.feed(incoming("second", Delivery::ExactlyOnce(pid(9))));
        assert_eq!(t.out(), vec![Packet::PubRec(PubRec::new(pid(9)))]);
        let ev = t.events();
        let topics: Vec<&str> = only_publishes(&ev)
            .iter()
            .map(|p| p.topic.as_ref().unwrap().as_str())
            .collect();
        assert_eq!(topics, vec!["first", "second"], "{}", t.name);
    }
}

#[test]
fn mqtt311_4_3_3_2_qos2_receiver() {
    qos2_pubrec_same_id(V311);
    qos2_duplicates_not_redelivered(V311);
    qos2_pubcomp_same_id(V311);
    qos2_new_message_after_pubcomp(V311);
}

#[test]
fn mqtt5_4_3_3_8_pubrec_same_id() {
    qos2_pubrec_same_id(V5);
}

#[test]
fn mqtt5_4_3_3_10_duplicate_qos2_publish_not_redelivered() {
    qos2_duplicates_not_redelivered(V5);
}

#[test]
fn mqtt5_4_3_3_11_pubcomp_same_id() {
    qos2_pubcomp_same_id(V5);
}

#[test]
fn mqtt5_4_3_3_12_new_message_after_pubcomp() {
    qos2_new_message_after_pubcomp(V5);
}

#[test]
fn mqtt5_4_3_3_9_new_message_after_failed_pubrec() {
    for mut t in sides(Opts::new(V5).manual()) {
        t.feed(incoming("refused", Delivery::ExactlyOnce(pid(12))));
        t.ack(pid(12), PubAckReasonCode::NotAuthorized).unwrap();
        assert_eq!(
            t.out(),
            vec![Packet::PubRec(
                PubRec::new(pid(12)).with_reason(PubAckReasonCode::NotAuthorized)
            )],
            "{}",
            t.name
        );
        // The identifier is free: the next PUBLISH with it is a new message
        // (even with DUP set), delivered again.
        let mut p = incoming("again", Delivery::ExactlyOnce(pid(12)));
        p.dup = true;
        t.feed(p);
        let ev = t.events();
        let topics: Vec<&str> = only_publishes(&ev)
            .iter()
            .map(|p| p.topic.as_ref().unwrap().as_str())
            .collect();
        assert_eq!(topics, vec!["refused", "again"], "{}", t.name);
        t.ack(pid(12), PubAckReasonCode::Success).unwrap();
        assert_eq!(
            t.out(),
            vec![Packet::PubRec(PubRec::new(pid(12)))],
            "{}",
            t.name
        );
        // A PUBREL for the refused flow would now complete the new one.
        t.feed(PubRel::new(pid(12)));
        assert_eq!(t.out(), vec![Packet::PubComp(PubComp::new(pid(12)))]);
    }
}

#[test]
fn mqtt5_4_3_3_13_ack_sequence_continues_after_expiry() {
    for mut t in sides(Opts::new(V5)) {
        let mut p = incoming("exp", Delivery::ExactlyOnce(pid(13)));
        p.properties.message_expiry_interval = Some(1);
        t.feed(p.clone());
        assert_eq!(t.out(), vec![Packet::PubRec(PubRec::new(pid(13)))]);
        t.advance(Duration::from_secs(600));
        // The repeat still gets its PUBREC and the PUBREL its PUBCOMP.
        p.dup = true;
        t.feed(p);
        assert_eq!(
            t.out(),
            vec![Packet::PubRec(PubRec::new(pid(13)))],
            "{}",
            t.name
        );
        t.advance(Duration::from_secs(600));
        t.feed(PubRel::new(pid(13)));
        assert_eq!(
            t.out(),
            vec![Packet::PubComp(PubComp::new(pid(13)))],
            "{}",
            t.name
        );
        assert!(!t.s.is_closed());
    }
}

// ---------------------------------------------------------------------------
// MQTT-4.4.0-2: a failed acknowledgement counts as acknowledged
// ---------------------------------------------------------------------------

#[test]
fn mqtt5_4_4_0_2_failed_ack_is_not_retransmitted() {
    let mut o = Opts::new(V5);
    o.peer_receive_max = Some(2);
    for mut t in sides(o) {
        let a = t.publish_id(msg("a", QoS::AtLeastOnce));
        let b = t.publish_id(msg("b", QoS::ExactlyOnce));
        t.out();
        assert_eq!(
            t.publish(msg("c", QoS::AtLeastOnce)),
            Err(Error::WindowFull)
        );
        let puback = PubAck::new(a).with_reason(PubAckReasonCode::QuotaExceeded);
        let pubrec = PubRec::new(b).with_reason(PubAckReasonCode::NotAuthorized);
        t.feed(puback.clone());
        t.feed(pubrec.clone());
        // No PUBREL for a refused QoS 2 message.
        t.assert_silent();
        assert_eq!(
            t.events(),
            vec![Ev::PubAck(puback), Ev::PubRecFailed(pubrec)],
            "{}",
            t.name
        );
        // Both count as acknowledged: the quota is back...
        assert_eq!(t.s.in_flight(), 0);
        t.publish_id(msg("c", QoS::AtLeastOnce));
        t.out();
        // ...and they are never sent again.
        t.reconnect();
        let out = t.out();
        assert_eq!(out.len(), 1, "{}: {out:?}", t.name);
        assert_eq!(
            expect_publish(&out[0]).topic.as_ref().unwrap().as_str(),
            "c"
        );
    }
}

// ---------------------------------------------------------------------------
// MQTT-4.8.0-1 / MQTT-4.8.0-2 (3.1.1): errors close the connection
// ---------------------------------------------------------------------------

fn violation_closes(v: ProtocolVersion) {
    // A PUBREL for a message whose PUBREC was not sent yet.
    for mut t in sides(Opts::new(v).manual()) {
        t.feed(incoming("a", Delivery::ExactlyOnce(pid(1))));
        t.feed(PubRel::new(pid(1)));
        assert!(t.s.is_closed(), "{}", t.name);
        let ev = t.events();
        assert!(
            matches!(
                ev.last(),
                Some(Ev::Closed(CloseReason::ProtocolViolation { .. }))
            ),
            "{}: {ev:?}",
            t.name
        );
        let out = t.out();
        if v.is_v5() {
            assert_eq!(
                out,
                vec![Packet::Disconnect(Disconnect::new(
                    DisconnectReasonCode::ProtocolError
                ))],
                "{}",
                t.name
            );
        } else {
            // 3.1.1 has no DISCONNECT to a client; the client just closes.
            assert!(out.is_empty(), "{}: {out:?}", t.name);
        }
        // Nothing more is processed on that connection.
        t.feed(incoming("a", Delivery::AtLeastOnce(pid(2))));
        t.assert_silent();
        assert!(t.events().is_empty());
    }
    // A packet only the other side sends.
    let mut t = T::client(Opts::new(v));
    let f = TopicFilter::from_static("a/b").unwrap();
    t.feed(Subscribe::new(
        pid(1),
        f,
        SubscriptionOptions::new(QoS::AtMostOnce),
    ));
    assert!(t.s.is_closed());
    let mut t = T::server(Opts::new(v));
    t.feed(SubAck::new(pid(1), vec![SubAckReasonCode::GrantedQoS0]));
    assert!(t.s.is_closed());
    // A second CONNACK / CONNECT.
    let mut t = T::client(Opts::new(v));
    t.feed(ConnAck::new(ConnectReasonCode::Success));
    assert!(t.s.is_closed());
    let mut t = T::server(Opts::new(v));
    t.feed(Connect::new(v, MqttString::from_static("again")));
    assert!(t.s.is_closed());
}

#[test]
fn mqtt311_4_8_0_1_protocol_violation_closes() {
    violation_closes(V311);
    violation_closes(V5);
}

/// A transient error: the packet cannot be processed for lack of
/// resources (it is larger than the session's buffer limit). The header
/// alone is refused and the connection closes.
#[test]
fn mqtt311_4_8_0_2_transient_error_closes() {
    // The client accepts packets up to 1 MiB by default; the server's limit
    // is set to 1 KiB here.
    let mut client = T::client(Opts::new(V311));
    let mut server = {
        let t0 = Instant::now();
        let mut cfg = ServerConfig::default();
        cfg.max_packet_size = 1024;
        let mut s = ServerConnection::new(cfg, t0);
        s.handle_read(
            t0,
            &wire(V311, Connect::new(V311, MqttString::from_static("x"))),
        );
        assert!(matches!(s.poll_event(), Some(ServerEvent::Connect(_))));
        s.accept(t0, Accept::new()).unwrap();
        T::wrap(
            Box::new(ServerSide {
                s,
                cfg: ServerConfig::default(),
                connect: Connect::new(V311, MqttString::from_static("x")),
                v: V311,
            }),
            "server",
            V311,
            t0,
        )
    };
    for (t, remaining) in [(&mut client, 2 * 1024 * 1024u32), (&mut server, 4096)] {
        // A QoS 1 PUBLISH header declaring `remaining` bytes; only the
        // header arrives.
        let mut header = vec![0x32u8];
        let mut n = remaining;
        loop {
            let mut b = (n % 128) as u8;
            n /= 128;
            if n > 0 {
                b |= 0x80;
            }
            header.push(b);
            if n == 0 {
                break;
            }
        }
        header.extend_from_slice(&[0x00, 0x01, b'a', 0x00, 0x01]);
        t.s.read(t.now, &header);
        assert!(t.s.is_closed(), "{}", t.name);
        let ev = t.events();
        assert!(
            matches!(
                ev.last(),
                Some(Ev::Closed(CloseReason::Malformed(
                    DecodeError::PacketTooLarge { .. }
                )))
            ),
            "{}: {ev:?}",
            t.name
        );
        assert!(only_publishes(&ev).is_empty());
        t.assert_silent();
    }
}

// ---------------------------------------------------------------------------
// MQTT-4.9.0-3: with zero send quota, everything else goes on
// ---------------------------------------------------------------------------

#[test]
fn mqtt5_4_9_0_3_zero_quota_other_packets_processed() {
    let mut o = Opts::new(V5);
    o.peer_receive_max = Some(1);
    for mut t in sides(o) {
        let a = t.publish_id(msg("a", QoS::AtLeastOnce));
        t.out();
        assert_eq!(
            t.publish(msg("b", QoS::ExactlyOnce)),
            Err(Error::WindowFull)
        );
        t.assert_silent();
        // QoS 0 still goes out, inbound flows are still answered.
        t.publish(msg("q0", QoS::AtMostOnce)).unwrap();
        t.feed(incoming("in", Delivery::AtLeastOnce(pid(50))));
        t.feed(incoming("in", Delivery::ExactlyOnce(pid(51))));
        t.feed(PubRel::new(pid(51)));
        assert_eq!(
            ids_of(&t.out()),
            vec![
                ("PUBLISH", 0),
                ("PUBACK", 50),
                ("PUBREC", 51),
                ("PUBCOMP", 51)
            ],
            "{}",
            t.name
        );
        assert_eq!(only_publishes(&t.events()).len(), 2);
        // The acknowledgement reopens the quota.
        t.feed(PubAck::new(a));
        t.publish_id(msg("b", QoS::ExactlyOnce));
        assert_eq!(t.out().len(), 1);
    }
    // Server side: PINGREQ is still answered.
    let mut t = T::server(o);
    t.publish_id(msg("a", QoS::AtLeastOnce));
    t.out();
    t.s.read(t.now, &[0xc0, 0x00]);
    assert_eq!(t.out(), vec![Packet::PingResp]);
}

// ---------------------------------------------------------------------------
// MQTT-4.12.0-5: every AUTH and the CONNACK repeat the CONNECT's method
// ---------------------------------------------------------------------------

const METHOD: &str = "TEST-METHOD";

struct EchoAuth {
    fail_finish: bool,
}

impl Authenticator for EchoAuth {
    fn method(&self) -> MqttString {
        MqttString::from_static(METHOD)
    }
    fn start(&mut self) -> Option<Bytes> {
        Some(Bytes::from_static(b"hello"))
    }
    fn challenge(&mut self, data: Option<&Bytes>) -> Result<Option<Bytes>, AuthFailed> {
        Ok(data.cloned())
    }
    fn finish(&mut self, _data: Option<&Bytes>) -> Result<(), AuthFailed> {
        if self.fail_finish {
            Err(AuthFailed)
        } else {
            Ok(())
        }
    }
}

fn method_of(p: &Packet) -> Option<&str> {
    match p {
        Packet::Connect(c) => c.properties.authentication_method.as_ref(),
        Packet::ConnAck(c) => c.properties.authentication_method.as_ref(),
        Packet::Auth(a) => a.properties.authentication_method.as_ref(),
        other => panic!("{other:?}"),
    }
    .map(MqttString::as_str)
}

fn auth(code: AuthReasonCode, method: &'static str) -> Auth {
    let mut a = Auth::new(code);
    a.properties.authentication_method = Some(MqttString::from_static(method));
    a.properties.authentication_data = Some(Bytes::from_static(b"data"));
    a
}

fn drain(b: impl FnMut() -> Option<Bytes>) -> Vec<Packet> {
    let mut b = b;
    let mut out = Vec::new();
    while let Some(x) = b() {
        out.extend(decode_all(V5, &x));
    }
    out
}

#[test]
fn mqtt5_4_12_0_5_auth_method_repeated_everywhere() {
    let now = Instant::now();
    // Client side: CONNECT, its AUTH answers and re-authentication carry
    // the method; a CONNACK or AUTH with another method closes.
    let cfg = ClientConfig::new(Connect::new(V5, MqttString::from_static("c")))
        .with_authenticator(Box::new(EchoAuth { fail_finish: false }));
    let mut c = Client::new(cfg);
    c.connect(now).unwrap();
    c.handle_read(
        now,
        &wire(V5, auth(AuthReasonCode::ContinueAuthentication, METHOD)),
    );
    let mut ack = ConnAck::new(ConnectReasonCode::Success);
    ack.properties.authentication_method = Some(MqttString::from_static(METHOD));
    c.handle_read(now, &wire(V5, ack));
    assert!(c.is_connected());
    c.reauthenticate(now).unwrap();
    c.handle_read(
        now,
        &wire(V5, auth(AuthReasonCode::ContinueAuthentication, METHOD)),
    );
    let out = drain(|| c.poll_transmit());
    assert_eq!(out.len(), 4, "{out:?}");
    assert!(out.iter().all(|p| method_of(p) == Some(METHOD)), "{out:?}");
    c.handle_read(
        now,
        &wire(V5, auth(AuthReasonCode::ContinueAuthentication, "OTHER")),
    );
    assert!(c.is_closed());

    // Server side: the AUTH it sends and the CONNACK carry the CONNECT's
    // method, whatever the application put in the properties.
    let mut connect = Connect::new(V5, MqttString::from_static("c"));
    connect.properties.authentication_method = Some(MqttString::from_static(METHOD));
    let mut s = ServerConnection::new(ServerConfig::default(), now);
    s.handle_read(now, &wire(V5, connect.clone()));
    assert!(matches!(s.poll_event(), Some(ServerEvent::Connect(_))));
    let mut props = AuthProperties::default();
    props.authentication_method = Some(MqttString::from_static("OTHER"));
    s.auth_continue(now, Some(Bytes::from_static(b"challenge")), props)
        .unwrap();
    s.handle_read(
        now,
        &wire(V5, auth(AuthReasonCode::ContinueAuthentication, METHOD)),
    );
    assert!(matches!(s.poll_event(), Some(ServerEvent::Auth(_))));
    let mut accept = Accept::new();
    accept.properties = ConnAckProperties::default();
    accept.properties.authentication_method = Some(MqttString::from_static("OTHER"));
    s.accept(now, accept).unwrap();
    let out = drain(|| s.poll_transmit());
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(matches!(out[0], Packet::Auth(_)));
    assert!(matches!(out[1], Packet::ConnAck(_)));
    assert!(out.iter().all(|p| method_of(p) == Some(METHOD)), "{out:?}");
    // An AUTH from the client with another method closes.
    s.handle_read(
        now,
        &wire(V5, auth(AuthReasonCode::ReAuthenticate, "OTHER")),
    );
    assert!(s.is_closed());
    let out = drain(|| s.poll_transmit());
    assert_eq!(
        out,
        vec![Packet::Disconnect(Disconnect::new(
            DisconnectReasonCode::ProtocolError
        ))]
    );

    // Without a method in CONNECT, the CONNACK carries none either.
    let mut s = ServerConnection::new(ServerConfig::default(), now);
    s.handle_read(
        now,
        &wire(V5, Connect::new(V5, MqttString::from_static("c"))),
    );
    s.poll_event();
    let mut accept = Accept::new();
    accept.properties.authentication_method = Some(MqttString::from_static("OTHER"));
    s.accept(now, accept).unwrap();
    let out = drain(|| s.poll_transmit());
    assert_eq!(method_of(&out[0]), None);
}

// ---------------------------------------------------------------------------
// MQTT-4.12.1-2: a failed re-authentication closes the connection
// ---------------------------------------------------------------------------

#[test]
fn mqtt5_4_12_1_2_failed_reauthentication_closes() {
    let now = Instant::now();
    // A method that succeeds once and fails on re-authentication.
    struct OnceAuth(u32);
    impl Authenticator for OnceAuth {
        fn method(&self) -> MqttString {
            MqttString::from_static(METHOD)
        }
        fn start(&mut self) -> Option<Bytes> {
            None
        }
        fn challenge(&mut self, _d: Option<&Bytes>) -> Result<Option<Bytes>, AuthFailed> {
            Ok(None)
        }
        fn finish(&mut self, _d: Option<&Bytes>) -> Result<(), AuthFailed> {
            self.0 += 1;
            if self.0 == 1 {
                Ok(())
            } else {
                Err(AuthFailed)
            }
        }
    }
    let cfg = ClientConfig::new(Connect::new(V5, MqttString::from_static("c")))
        .with_authenticator(Box::new(OnceAuth(0)));
    let mut c = Client::new(cfg);
    c.connect(now).unwrap();
    let mut ack = ConnAck::new(ConnectReasonCode::Success);
    ack.properties.authentication_method = Some(MqttString::from_static(METHOD));
    c.handle_read(now, &wire(V5, ack));
    assert!(c.is_connected());
    c.reauthenticate(now).unwrap();
    drain(|| c.poll_transmit());
    c.handle_read(now, &wire(V5, auth(AuthReasonCode::Success, METHOD)));
    assert!(c.is_closed());
    assert_eq!(
        drain(|| c.poll_transmit()),
        vec![Packet::Disconnect(Disconnect::new(
            DisconnectReasonCode::NotAuthorized
        ))]
    );
    let mut last = None;
    while let Some(e) = c.poll_event() {
        last = Some(e);
    }
    assert_eq!(
        last,
        Some(ClientEvent::Disconnected(CloseReason::AuthenticationFailed))
    );

    // Server: the application refuses the re-authentication and
    // disconnects; nothing is processed afterwards.
    let mut connect = Connect::new(V5, MqttString::from_static("c"));
    connect.properties.authentication_method = Some(MqttString::from_static(METHOD));
    let mut s = ServerConnection::new(ServerConfig::default(), now);
    s.handle_read(now, &wire(V5, connect));
    s.poll_event();
    s.accept(now, Accept::new()).unwrap();
    drain(|| s.poll_transmit());
    s.handle_read(now, &wire(V5, auth(AuthReasonCode::ReAuthenticate, METHOD)));
    assert!(matches!(s.poll_event(), Some(ServerEvent::Auth(_))));
    s.disconnect(
        now,
        DisconnectReasonCode::NotAuthorized,
        DisconnectProperties::default(),
    )
    .unwrap();
    assert!(s.is_closed());
    assert_eq!(
        drain(|| s.poll_transmit()),
        vec![Packet::Disconnect(Disconnect::new(
            DisconnectReasonCode::NotAuthorized
        ))]
    );
    s.handle_read(
        now,
        &wire(V5, auth(AuthReasonCode::ContinueAuthentication, METHOD)),
    );
    assert!(drain(|| s.poll_transmit()).is_empty());
    // A second AUTH 0x19 while one is running is a protocol error.
    let mut connect = Connect::new(V5, MqttString::from_static("c"));
    connect.properties.authentication_method = Some(MqttString::from_static(METHOD));
    let mut s = ServerConnection::new(ServerConfig::default(), now);
    s.handle_read(now, &wire(V5, connect));
    s.poll_event();
    s.accept(now, Accept::new()).unwrap();
    drain(|| s.poll_transmit());
    s.handle_read(now, &wire(V5, auth(AuthReasonCode::ReAuthenticate, METHOD)));
    s.handle_read(now, &wire(V5, auth(AuthReasonCode::ReAuthenticate, METHOD)));
    assert!(s.is_closed());
}

// ---------------------------------------------------------------------------
// MQTT-4.13.2-1: CONNACK or DISCONNECT of 0x80 or more closes, sent or not
// ---------------------------------------------------------------------------

#[test]
fn mqtt5_4_13_2_1_error_connack_or_disconnect_closes() {
    let now = Instant::now();
    // Client receives a refusal: closed, and what follows in the same read
    // is not processed.
    let mut c = Client::new(ClientConfig::new(Connect::new(
        V5,
        MqttString::from_static("c"),
    )));
    c.connect(now).unwrap();
    drain(|| c.poll_transmit());
    let mut bytes = wire(V5, ConnAck::new(ConnectReasonCode::NotAuthorized));
    bytes.extend(wire(V5, incoming("x", Delivery::AtLeastOnce(pid(1)))));
    c.handle_read(now, &bytes);
    assert!(c.is_closed());
    assert!(drain(|| c.poll_transmit()).is_empty());
    let ev: Vec<_> = std::iter::from_fn(|| c.poll_event()).collect();
    assert!(
        matches!(ev.as_slice(), [ClientEvent::Disconnected(r)] if r.refusal() == Some(ConnectReasonCode::NotAuthorized)),
        "{ev:?}"
    );
    // Client receives DISCONNECT 0x8B.
    let mut t = T::client(Opts::new(V5));
    t.feed(Disconnect::new(DisconnectReasonCode::ServerShuttingDown));
    assert!(t.s.is_closed());
    t.feed(incoming("x", Delivery::AtLeastOnce(pid(1))));
    t.assert_silent();
    // Either side sends DISCONNECT with an error code: closed.
    for mut t in sides(Opts::new(V5)) {
        t.s.disconnect(t.now, DisconnectReasonCode::UnspecifiedError)
            .unwrap();
        assert!(t.s.is_closed(), "{}", t.name);
    }
    // The client's DISCONNECT 0x80 with a Reason String too large for the
    // server's limit: sent without it (MQTT-3.14.2-3), and closed all the
    // same.
    let mut c = Client::new(ClientConfig::new(Connect::new(
        V5,
        MqttString::from_static("c"),
    )));
    c.connect(now).unwrap();
    let mut ack = ConnAck::new(ConnectReasonCode::Success);
    ack.properties.maximum_packet_size = NonZeroU32::new(16);
    c.handle_read(now, &wire(V5, ack));
    assert!(c.is_connected());
    drain(|| c.poll_transmit());
    let mut props = DisconnectProperties::default();
    props.reason_string = Some(MqttString::from_static(
        "a reason string longer than sixteen bytes",
    ));
    c.disconnect(now, DisconnectReasonCode::UnspecifiedError, props)
        .unwrap();
    assert!(c.is_closed());
    assert_eq!(
        drain(|| c.poll_transmit()),
        vec![Packet::Disconnect(Disconnect::new(
            DisconnectReasonCode::UnspecifiedError
        ))]
    );
    // The server receives DISCONNECT 0x80.
    let mut t = T::server(Opts::new(V5));
    t.feed(Disconnect::new(DisconnectReasonCode::UnspecifiedError));
    assert!(t.s.is_closed());

    // The server refuses: CONNACK 0x87, then closed.
    let mut s = ServerConnection::new(ServerConfig::default(), now);
    s.handle_read(
        now,
        &wire(V5, Connect::new(V5, MqttString::from_static("c"))),
    );
    s.poll_event();
    s.reject(
        now,
        ConnectReasonCode::NotAuthorized,
        ConnAckProperties::default(),
    )
    .unwrap();
    assert!(s.is_closed());
    let out = drain(|| s.poll_transmit());
    assert!(
        matches!(out.as_slice(), [Packet::ConnAck(a)] if a.reason_code == ConnectReasonCode::NotAuthorized),
        "{out:?}"
    );
    // Not even the CONNACK fits the client's limit: not sent, still closed.
    let mut connect = Connect::new(V5, MqttString::from_static("c"));
    connect.properties.maximum_packet_size = NonZeroU32::new(4);
    let mut s = ServerConnection::new(ServerConfig::default(), now);
    s.handle_read(now, &wire(V5, connect.clone()));
    s.poll_event();
    s.reject(
        now,
        ConnectReasonCode::NotAuthorized,
        ConnAckProperties::default(),
    )
    .unwrap();
    assert!(s.is_closed());
    assert!(drain(|| s.poll_transmit()).is_empty());
    let ev: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(
        matches!(ev.as_slice(), [ServerEvent::Closed(r)] if r.refusal() == Some(ConnectReasonCode::NotAuthorized)),
        "{ev:?}"
    );
    // A DISCONNECT whose Reason String does not fit the client's limit is
    // sent without it, and the connection is closed.
    let mut s = ServerConnection::new(ServerConfig::default(), now);
    connect.properties.maximum_packet_size = NonZeroU32::new(30);
    s.handle_read(now, &wire(V5, connect));
    s.poll_event();
    s.accept(now, Accept::new()).unwrap();
    drain(|| s.poll_transmit());
    let mut props = DisconnectProperties::default();
    props.reason_string = Some(MqttString::from_static(
        "a reason string that cannot fit in thirty bytes",
    ));
    s.disconnect(now, DisconnectReasonCode::AdministrativeAction, props)
        .unwrap();
    assert!(s.is_closed());
    assert_eq!(
        drain(|| s.poll_transmit()),
        vec![Packet::Disconnect(Disconnect::new(
            DisconnectReasonCode::AdministrativeAction
        ))]
    );
}
