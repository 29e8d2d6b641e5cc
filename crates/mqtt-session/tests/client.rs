//! Conformance tests of the client layer: the statements the MQTT 3.1.1
//! and 5.0 standards put on a client (layer `client` of the spec tables),
//! enhanced authentication, topic aliases in both directions and misuse of
//! the API.
//!
//! The server is a scripted fake: packets are built with `mqtt_wire` types,
//! encoded with [`Encode`] and fed to the client; everything the client
//! writes is decoded with [`mqtt_wire::decode`] and checked packet by
//! packet. Time is a fake clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::num::{NonZeroU16, NonZeroU32};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_session::client::{AuthFailed, Authenticator, Client, ClientConfig, Event};
use mqtt_session::{AckMode, CloseReason, Error, OutboundMessage, SessionState};
use mqtt_wire::{
    Auth, AuthReasonCode, ConnAck, Connect, ConnectReasonCode, DecodeConfig, Delivery, Disconnect,
    DisconnectProperties, DisconnectReasonCode, Encode, MaximumQoS, MqttString, Packet, PacketId,
    ProtocolVersion, PubAck, PubAckReasonCode, PubComp, PubRec, PubRel, Publish, QoS, SubAck,
    SubAckReasonCode, SubscribeProperties, Subscription, SubscriptionId, SubscriptionOptions,
    TopicFilter, TopicName, UnsubAck, UnsubAckReasonCode, UnsubscribeProperties, MAX_PACKET_SIZE,
};

const V5: ProtocolVersion = ProtocolVersion::V5;
const V311: ProtocolVersion = ProtocolVersion::V3_1_1;

// ---------------------------------------------------------------------------
// The scripted fake server
// ---------------------------------------------------------------------------

fn topic(s: &'static str) -> TopicName {
    TopicName::from_static(s).unwrap()
}

fn filter(s: &'static str) -> TopicFilter {
    TopicFilter::from_static(s).unwrap()
}

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn msg(t: &'static str, qos: QoS) -> Publish {
    // The packet id given here is a placeholder: the client assigns its own.
    Publish::new(topic(t), Bytes::from_static(b"payload")).with_delivery(Delivery::new(qos, pid(1)))
}

fn sub(f: &'static str) -> Vec<Subscription> {
    vec![Subscription {
        filter: filter(f),
        options: SubscriptionOptions::new(QoS::AtLeastOnce),
    }]
}

/// The bytes a server would write for `p`.
fn wire(v: ProtocolVersion, p: impl Into<Packet>) -> Vec<u8> {
    let mut b = BytesMut::new();
    p.into().encode(v, &mut b).expect("test packet encodes");
    b.to_vec()
}

/// Decodes everything in `bytes`; a malformed or partial packet fails the
/// test.
fn decode_all(v: ProtocolVersion, bytes: &[u8]) -> Vec<Packet> {
    let cfg = DecodeConfig::new(v).with_max_packet_size(MAX_PACKET_SIZE);
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(p) = mqtt_wire::decode(&mut buf, &cfg).expect("the client wrote a bad packet") {
        out.push(p);
    }
    assert!(buf.is_empty(), "the client wrote a partial packet");
    out
}

fn connect_packet(v: ProtocolVersion) -> Connect {
    Connect::new(v, MqttString::from_static("client-1"))
}

fn connack() -> ConnAck {
    ConnAck::new(ConnectReasonCode::Success)
}

/// A client and the fake server's view of it.
struct H {
    c: Client,
    v: ProtocolVersion,
    t0: Instant,
    now: Instant,
}

impl H {
    fn new(cfg: ClientConfig) -> Self {
        Self::with_session(cfg, SessionState::new())
    }

    fn with_session(cfg: ClientConfig, s: SessionState) -> Self {
        let v = cfg.connect.protocol;
        let t0 = Instant::now();
        H {
            c: Client::with_session(cfg, s),
            v,
            t0,
            now: t0,
        }
    }

    /// Moves the fake clock to `t0 + ms`.
    fn at_ms(&mut self, ms: u64) {
        self.now = self.t0 + Duration::from_millis(ms);
    }

    /// Raw output chunks.
    fn out_raw(&mut self) -> Vec<Bytes> {
        let mut v = Vec::new();
        while let Some(b) = self.c.poll_transmit() {
            v.push(b);
        }
        v
    }

    /// Everything the client wrote since the last call, decoded.
    fn out(&mut self) -> Vec<Packet> {
        let v = self.v;
        self.out_raw()
            .iter()
            .flat_map(|b| decode_all(v, b))
            .collect()
    }

    fn assert_silent(&mut self) {
        let out = self.out();
        assert!(out.is_empty(), "expected no output, got {out:?}");
    }

    fn feed(&mut self, p: impl Into<Packet>) {
        let b = wire(self.v, p);
        self.c.handle_read(self.now, &b);
    }

    fn events(&mut self) -> Vec<Event> {
        let mut v = Vec::new();
        while let Some(e) = self.c.poll_event() {
            v.push(e);
        }
        v
    }

    /// `connect`, check the CONNECT, answer with `ack`, check `Connected`.
    fn handshake(&mut self, ack: ConnAck) -> Connect {
        self.c.connect(self.now).unwrap();
        let out = self.out();
        assert_eq!(out.len(), 1, "{out:?}");
        let Packet::Connect(c) = &out[0] else {
            panic!("first packet is not CONNECT: {out:?}")
        };
        let c = (**c).clone();
        self.feed(ack);
        assert!(self.c.is_connected(), "{:?}", self.events());
        c
    }
}

fn connected(v: ProtocolVersion) -> H {
    connected_with(ClientConfig::new(connect_packet(v)), connack())
}

fn connected_with(cfg: ClientConfig, ack: ConnAck) -> H {
    let mut h = H::new(cfg);
    h.handshake(ack);
    let ev = h.events();
    assert!(matches!(ev.as_slice(), [Event::Connected { .. }]), "{ev:?}");
    h
}

fn expect_publish(p: &Packet) -> &Publish {
    match p {
        Packet::Publish(p) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

fn packet_ids(out: &[Packet]) -> Vec<u16> {
    out.iter()
        .map(|p| match p {
            Packet::Publish(p) => p.packet_id().unwrap().get(),
            Packet::PubAck(a) => a.packet_id.get(),
            Packet::PubRec(a) => a.packet_id.get(),
            Packet::PubRel(a) => a.packet_id.get(),
            Packet::PubComp(a) => a.packet_id.get(),
            Packet::Subscribe(s) => s.packet_id.get(),
            Packet::Unsubscribe(u) => u.packet_id.get(),
            other => panic!("no packet id in {other:?}"),
        })
        .collect()
}

/// A message the fake server sends.
fn server_publish(t: &'static str, delivery: Delivery) -> Publish {
    Publish::new(topic(t), Bytes::from_static(b"from-server")).with_delivery(delivery)
}

// ---------------------------------------------------------------------------
// MQTT-3.1.0-1: the first packet is CONNECT
// ---------------------------------------------------------------------------

fn first_packet_is_connect(v: ProtocolVersion) {
    let mut cfg = ClientConfig::new(connect_packet(v));
    cfg.connect.clean_start = false;
    let mut h = H::new(cfg);
    // Before any connection nothing can be sent.
    assert_eq!(
        h.c.publish(h.now, msg("a", QoS::AtLeastOnce)),
        Err(Error::NotConnected)
    );
    assert_eq!(
        h.c.subscribe(h.now, sub("a/#"), SubscribeProperties::default()),
        Err(Error::NotConnected)
    );
    h.c.handle_timeout(h.now + Duration::from_secs(3600));
    h.assert_silent();

    h.c.connect(h.now).unwrap();
    // While awaiting CONNACK, no other packet may go before it.
    assert_eq!(
        h.c.publish(h.now, msg("a", QoS::AtMostOnce)),
        Err(Error::NotConnected)
    );
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(matches!(out[0], Packet::Connect(_)), "{out:?}");
    h.feed(connack());
    assert!(h.c.is_connected());

    // A message left in flight when the transport drops...
    h.c.publish(h.now, msg("a", QoS::AtLeastOnce)).unwrap();
    h.out();
    h.c.handle_closed(h.now);
    h.events();
    // ...does not go out before the CONNECT of the next transport.
    h.c.connect(h.now).unwrap();
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    let Packet::Connect(c) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(c.protocol, v);
    // It is resent only once the connection is accepted.
    let mut ack = connack();
    ack.session_present = true;
    h.feed(ack);
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(expect_publish(&out[0]).dup);
}

#[test]
fn mqtt311_3_1_0_1_first_packet_is_connect() {
    first_packet_is_connect(V311);
}

#[test]
fn mqtt5_3_1_0_1_first_packet_is_connect() {
    first_packet_is_connect(V5);
}

// ---------------------------------------------------------------------------
// MQTT-2.3.1-2 / MQTT-2.2.1-3 / MQTT-2.3.1-3: packet identifiers
// ---------------------------------------------------------------------------

/// New SUBSCRIBE, UNSUBSCRIBE and QoS 1/2 PUBLISH get non-zero identifiers
/// not in use; the counter wraps past 65535 to 1, never 0, skipping ids in
/// use.
fn fresh_nonzero_ids(v: ProtocolVersion) {
    let mut h = connected(v);
    let ids = vec![
        h.c.publish(h.now, msg("a", QoS::AtLeastOnce))
            .unwrap()
            .unwrap(),
        h.c.subscribe(h.now, sub("a/+"), SubscribeProperties::default())
            .unwrap(),
        h.c.publish(h.now, msg("a", QoS::ExactlyOnce))
            .unwrap()
            .unwrap(),
        h.c.unsubscribe(h.now, vec![filter("a/+")], UnsubscribeProperties::default())
            .unwrap(),
    ];
    // QoS 0 takes none.
    assert_eq!(h.c.publish(h.now, msg("a", QoS::AtMostOnce)), Ok(None));
    let mut sorted: Vec<u16> = ids.iter().map(|i| i.get()).collect();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 4, "identifiers reused: {ids:?}");
    // The wire carries exactly the identifiers returned.
    let out = h.out();
    let mut on_wire = packet_ids(&out[..4]);
    on_wire.sort_unstable();
    assert_eq!(on_wire, sorted);
    assert!(matches!(&out[4], Packet::Publish(p) if p.qos() == QoS::AtMostOnce));

    // Wrap-around: the counter stands at 65534 and ids 65535 and 1 are in
    // flight from the stored session: the next new ones are 2, then 3.
    let stored = SessionState::from_parts(
        65534,
        vec![
            OutboundMessage::Publish(
                msg("a", QoS::AtLeastOnce).with_delivery(Delivery::AtLeastOnce(pid(65535))),
            ),
            OutboundMessage::Release(pid(1)),
        ],
        vec![],
    )
    .unwrap();
    let mut cfg = ClientConfig::new(connect_packet(v));
    cfg.connect.clean_start = false;
    let mut h = H::with_session(cfg, stored);
    let mut ack = connack();
    ack.session_present = true;
    h.handshake(ack);
    let resent = h.out();
    assert_eq!(packet_ids(&resent), vec![65535, 1]);
    let a =
        h.c.publish(h.now, msg("a", QoS::AtLeastOnce))
            .unwrap()
            .unwrap();
    let b =
        h.c.subscribe(h.now, sub("b"), SubscribeProperties::default())
            .unwrap();
    assert_eq!((a.get(), b.get()), (2, 3));
    assert_eq!(packet_ids(&h.out()), vec![2, 3]);
}

#[test]
fn mqtt311_2_3_1_2_new_requests_get_unused_ids() {
    fresh_nonzero_ids(V311);
}

#[test]
fn mqtt5_2_2_1_3_new_requests_get_unused_nonzero_ids() {
    fresh_nonzero_ids(V5);
}

/// Resends keep their identifier; an identifier becomes free only after
/// PUBACK, PUBCOMP, SUBACK or UNSUBACK. Every identifier but two is made
/// busy by a stored session so exhaustion shows exactly which ones are free.
fn ids_free_only_after_ack(v: ProtocolVersion) {
    let outbound: Vec<OutboundMessage> = (1..=u16::MAX)
        .filter(|&i| i != 100 && i != 200)
        .map(|i| {
            let qos = if i == 300 {
                QoS::ExactlyOnce
            } else {
                QoS::AtLeastOnce
            };
            OutboundMessage::Publish(
                Publish::new(topic("t"), Bytes::new()).with_delivery(Delivery::new(qos, pid(i))),
            )
        })
        .collect();
    let stored = SessionState::from_parts(0, outbound, vec![]).unwrap();
    let mut cfg = ClientConfig::new(connect_packet(v));
    cfg.connect.clean_start = false;
    let mut h = H::with_session(cfg, stored);
    let mut ack = connack();
    ack.session_present = true;
    h.handshake(ack);

    // MQTT-2.3.1-3: the resends reuse the same identifiers, in order.
    let resent = h.out();
    assert_eq!(resent.len(), 65533);
    assert!(resent.iter().all(|p| expect_publish(p).dup));
    let ids = packet_ids(&resent);
    assert_eq!(&ids[..3], &[1, 2, 3]);
    assert!(!ids.contains(&100) && !ids.contains(&200));

    let s =
        h.c.subscribe(h.now, sub("x"), SubscribeProperties::default())
            .unwrap();
    assert_eq!(s.get(), 100);
    let p =
        h.c.publish(h.now, msg("x", QoS::AtLeastOnce))
            .unwrap()
            .unwrap();
    assert_eq!(p.get(), 200);
    h.out();
    let exhausted = |h: &mut H| {
        assert_eq!(
            h.c.publish(h.now, msg("x", QoS::AtLeastOnce)),
            Err(Error::PacketIdsExhausted)
        );
        assert_eq!(
            h.c.unsubscribe(h.now, vec![filter("x")], UnsubscribeProperties::default()),
            Err(Error::PacketIdsExhausted)
        );
        h.assert_silent();
    };
    exhausted(&mut h);

    // PUBACK frees its identifier.
    h.feed(PubAck::new(pid(5)));
    assert_eq!(
        h.c.publish(h.now, msg("x", QoS::AtLeastOnce)),
        Ok(Some(pid(5)))
    );
    h.out();
    exhausted(&mut h);

    // PUBREC does not (the PUBREL keeps it), PUBCOMP does.
    h.feed(PubRec::new(pid(300)));
    assert_eq!(packet_ids(&h.out()), vec![300]);
    exhausted(&mut h);
    h.feed(PubComp::new(pid(300)));
    assert_eq!(
        h.c.publish(h.now, msg("x", QoS::AtLeastOnce)),
        Ok(Some(pid(300)))
    );
    h.out();
    exhausted(&mut h);

    // SUBACK frees the SUBSCRIBE's identifier, UNSUBACK the UNSUBSCRIBE's.
    h.feed(SubAck::new(pid(100), vec![SubAckReasonCode::GrantedQoS1]));
    let u =
        h.c.unsubscribe(h.now, vec![filter("x")], UnsubscribeProperties::default())
            .unwrap();
    assert_eq!(u.get(), 100);
    h.out();
    exhausted(&mut h);
    let codes = if v.is_v5() {
        vec![UnsubAckReasonCode::Success]
    } else {
        vec![]
    };
    h.feed(UnsubAck::new(pid(100), codes));
    assert_eq!(
        h.c.publish(h.now, msg("x", QoS::AtLeastOnce)),
        Ok(Some(pid(100)))
    );
    assert!(h.c.is_connected());
}

#[test]
fn mqtt311_2_3_1_3_resends_keep_id_freed_only_by_ack() {
    ids_free_only_after_ack(V311);
}

#[test]
fn mqtt5_2_2_1_3_ids_in_use_until_acknowledged() {
    ids_free_only_after_ack(V5);
}

// ---------------------------------------------------------------------------
// MQTT-3.1.3-7: empty client id needs CleanSession 1 (3.1.1)
// ---------------------------------------------------------------------------

#[test]
fn mqtt311_3_1_3_7_empty_client_id_needs_clean_session() {
    let mut connect = Connect::new(V311, MqttString::from_static(""));
    connect.clean_start = false;
    let mut h = H::new(ClientConfig::new(connect));
    assert!(matches!(h.c.connect(h.now), Err(Error::NotAllowed(_))));
    h.assert_silent();
    assert!(h.c.is_closed());

    let connect = Connect::new(V311, MqttString::from_static(""));
    let mut h = H::new(ClientConfig::new(connect));
    h.c.connect(h.now).unwrap();
    let out = h.out();
    let [Packet::Connect(c)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert!(c.client_id.is_empty());
    assert!(c.clean_start);
}

// ---------------------------------------------------------------------------
// MQTT-3.14.4-1 / MQTT-3.14.4-2 (3.1.1 client): after DISCONNECT
// ---------------------------------------------------------------------------

#[test]
fn mqtt311_3_14_4_1_3_14_4_2_nothing_after_disconnect() {
    let mut h = connected(V311);
    h.c.publish(h.now, msg("a", QoS::AtLeastOnce)).unwrap();
    h.out();
    h.c.disconnect(
        h.now,
        DisconnectReasonCode::NormalDisconnection,
        DisconnectProperties::default(),
    )
    .unwrap();
    let out = h.out();
    assert_eq!(out.len(), 1);
    assert!(matches!(out[0], Packet::Disconnect(_)), "{out:?}");
    // MQTT-3.14.4-1: the session tells the caller to close the transport.
    assert!(h.c.is_closed());
    assert!(!h.c.is_connected());
    assert_eq!(h.c.poll_timeout(), None, "no timer on a closed connection");
    let ev = h.events();
    assert!(
        matches!(
            ev.last(),
            Some(Event::Disconnected(CloseReason::LocalDisconnect(
                DisconnectReasonCode::NormalDisconnection
            )))
        ),
        "{ev:?}"
    );
    // MQTT-3.14.4-2: nothing more: no PUBLISH, no PUBACK for what still
    // arrives, no PINGREQ, no second DISCONNECT.
    assert_eq!(
        h.c.publish(h.now, msg("a", QoS::AtMostOnce)),
        Err(Error::NotConnected)
    );
    h.feed(server_publish("a", Delivery::AtLeastOnce(pid(9))));
    h.feed(PubAck::new(pid(1)));
    h.c.handle_timeout(h.now + Duration::from_secs(600));
    assert!(h
        .c
        .disconnect(
            h.now,
            DisconnectReasonCode::NormalDisconnection,
            DisconnectProperties::default()
        )
        .is_err());
    h.assert_silent();
    assert!(h.events().is_empty());
}

// ---------------------------------------------------------------------------
// MQTT-4.5.0-2: every received PUBLISH is acknowledged per its QoS
// ---------------------------------------------------------------------------

fn acks_every_publish(v: ProtocolVersion) {
    let mut h = connected(v);
    // Messages on topics the client never subscribed to, and the
    // application never even looks at the events: still acknowledged.
    h.feed(server_publish("never/subscribed", Delivery::AtMostOnce));
    h.feed(server_publish("x", Delivery::AtLeastOnce(pid(11))));
    h.feed(server_publish("y", Delivery::ExactlyOnce(pid(12))));
    let out = h.out();
    assert_eq!(
        out,
        vec![
            Packet::PubAck(PubAck::new(pid(11))),
            Packet::PubRec(PubRec::new(pid(12)))
        ]
    );
    h.feed(PubRel::new(pid(12)));
    assert_eq!(h.out(), vec![Packet::PubComp(PubComp::new(pid(12)))]);
    assert_eq!(h.events().len(), 3);
}

#[test]
fn mqtt311_4_5_0_2_acknowledges_every_publish() {
    acks_every_publish(V311);
}

#[test]
fn mqtt5_4_5_0_2_acknowledges_every_publish() {
    acks_every_publish(V5);
}

// ---------------------------------------------------------------------------
// MQTT-4.6.0-2 / MQTT-4.6.0-3: PUBACK and PUBREC in arrival order
// ---------------------------------------------------------------------------

fn acks_in_arrival_order(v: ProtocolVersion) {
    let cfg = ClientConfig::new(connect_packet(v)).with_ack_mode(AckMode::Manual);
    let mut h = connected_with(cfg, connack());
    h.feed(server_publish("a", Delivery::AtLeastOnce(pid(1))));
    h.feed(server_publish("a", Delivery::ExactlyOnce(pid(2))));
    h.feed(server_publish("a", Delivery::AtLeastOnce(pid(3))));
    h.feed(server_publish("a", Delivery::ExactlyOnce(pid(4))));
    h.feed(server_publish("a", Delivery::AtLeastOnce(pid(5))));
    assert_eq!(h.events().len(), 5);
    h.assert_silent();
    // The application acknowledges out of order: 5, 3, 4, 1, 2.
    for i in [5, 3, 4] {
        h.c.ack(h.now, pid(i), PubAckReasonCode::Success).unwrap();
    }
    h.assert_silent(); // all wait for message 1
    h.c.ack(h.now, pid(1), PubAckReasonCode::Success).unwrap();
    assert_eq!(h.out(), vec![Packet::PubAck(PubAck::new(pid(1)))]);
    h.c.ack(h.now, pid(2), PubAckReasonCode::Success).unwrap();
    assert_eq!(
        h.out(),
        vec![
            Packet::PubRec(PubRec::new(pid(2))),
            Packet::PubAck(PubAck::new(pid(3))),
            Packet::PubRec(PubRec::new(pid(4))),
            Packet::PubAck(PubAck::new(pid(5))),
        ]
    );
    // Acknowledging twice is misuse.
    assert_eq!(
        h.c.ack(h.now, pid(1), PubAckReasonCode::Success),
        Err(Error::UnknownPacketId(pid(1)))
    );
    h.assert_silent();
}

#[test]
fn mqtt311_4_6_0_2_4_6_0_3_acks_in_arrival_order() {
    acks_in_arrival_order(V311);
}

#[test]
fn mqtt5_4_6_0_2_4_6_0_3_acks_in_arrival_order() {
    acks_in_arrival_order(V5);
}

// ---------------------------------------------------------------------------
// MQTT-4.6.0-4: PUBREL in PUBREC order
// ---------------------------------------------------------------------------

fn pubrel_in_pubrec_order(v: ProtocolVersion) {
    let mut cfg = ClientConfig::new(connect_packet(v));
    cfg.connect.clean_start = false;
    let mut h = connected_with(cfg, connack());
    let a =
        h.c.publish(h.now, msg("a", QoS::ExactlyOnce))
            .unwrap()
            .unwrap();
    let b =
        h.c.publish(h.now, msg("b", QoS::ExactlyOnce))
            .unwrap()
            .unwrap();
    let c =
        h.c.publish(h.now, msg("c", QoS::ExactlyOnce))
            .unwrap()
            .unwrap();
    h.out();
    for id in [c, a, b] {
        h.feed(PubRec::new(id));
    }
    assert_eq!(
        packet_ids(&h.out()),
        vec![c.get(), a.get(), b.get()],
        "PUBRELs in PUBREC order"
    );
    // Resent after a reconnection, still in PUBREC order.
    h.c.handle_closed(h.now);
    h.c.connect(h.now).unwrap();
    h.out();
    let mut ack = connack();
    ack.session_present = true;
    h.feed(ack);
    let out = h.out();
    assert!(
        out.iter().all(|p| matches!(p, Packet::PubRel(_))),
        "{out:?}"
    );
    assert_eq!(packet_ids(&out), vec![c.get(), a.get(), b.get()]);
}

#[test]
fn mqtt311_4_6_0_4_pubrel_in_pubrec_order() {
    pubrel_in_pubrec_order(V311);
}

#[test]
fn mqtt5_4_6_0_4_pubrel_in_pubrec_order() {
    pubrel_in_pubrec_order(V5);
}

// ---------------------------------------------------------------------------
// MQTT-3.1.2-21 / MQTT-3.2.2-21: Server Keep Alive replaces ours
// ---------------------------------------------------------------------------

#[test]
fn mqtt5_3_1_2_21_3_2_2_21_server_keep_alive_replaces_ours() {
    let mut connect = connect_packet(V5);
    connect.keep_alive = 60;
    let mut ack = connack();
    ack.properties.server_keep_alive = Some(5);
    let mut h = connected_with(ClientConfig::new(connect), ack);
    assert_eq!(h.c.server_limits().keep_alive, 5);
    // The PINGREQ is due 5 s after the last packet, not 60 s.
    assert_eq!(h.c.poll_timeout(), Some(h.t0 + Duration::from_secs(5)));
    h.at_ms(4_999);
    h.c.handle_timeout(h.now);
    h.assert_silent();
    h.at_ms(5_000);
    h.c.handle_timeout(h.now);
    assert_eq!(h.out(), vec![Packet::PingReq]);

    // Server Keep Alive 0 turns keep-alive off entirely.
    let mut connect = connect_packet(V5);
    connect.keep_alive = 10;
    let mut ack = connack();
    ack.properties.server_keep_alive = Some(0);
    let mut h = connected_with(ClientConfig::new(connect), ack);
    assert_eq!(h.c.poll_timeout(), None);
    h.c.handle_timeout(h.now + Duration::from_secs(3600));
    h.assert_silent();
}

// ---------------------------------------------------------------------------
// Enhanced authentication (MQTT 5.0 §4.12)
// ---------------------------------------------------------------------------

const METHOD: &str = "TEST-SCRAM";

/// A small challenge/response method: start sends `client-first`, a
/// `challenge` is answered with `response`, the server's proof must be
/// `server-proof`.
struct TestAuth {
    log: Arc<Mutex<Vec<String>>>,
}

impl Authenticator for TestAuth {
    fn method(&self) -> MqttString {
        MqttString::from_static(METHOD)
    }

    fn start(&mut self) -> Option<Bytes> {
        self.log.lock().unwrap().push("start".into());
        Some(Bytes::from_static(b"client-first"))
    }

    fn challenge(&mut self, data: Option<&Bytes>) -> Result<Option<Bytes>, AuthFailed> {
        self.log.lock().unwrap().push("challenge".into());
        match data.map(|d| &d[..]) {
            Some(b"challenge") => Ok(Some(Bytes::from_static(b"response"))),
            _ => Err(AuthFailed),
        }
    }

    fn finish(&mut self, data: Option<&Bytes>) -> Result<(), AuthFailed> {
        self.log.lock().unwrap().push("finish".into());
        match data.map(|d| &d[..]) {
            Some(b"server-proof") => Ok(()),
            _ => Err(AuthFailed),
        }
    }
}

fn auth_client() -> (H, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let cfg = ClientConfig::new(connect_packet(V5))
        .with_authenticator(Box::new(TestAuth { log: log.clone() }));
    (H::new(cfg), log)
}

fn server_auth(code: AuthReasonCode, method: &'static str, data: &'static [u8]) -> Auth {
    let mut a = Auth::new(code);
    a.properties.authentication_method = Some(MqttString::from_static(method));
    a.properties.authentication_data = Some(Bytes::from_static(data));
    a
}

fn auth_connack(data: &'static [u8]) -> ConnAck {
    let mut ack = connack();
    ack.properties.authentication_method = Some(MqttString::from_static(METHOD));
    ack.properties.authentication_data = Some(Bytes::from_static(data));
    ack
}

fn expect_auth(out: &[Packet], code: AuthReasonCode, data: &[u8]) {
    let [Packet::Auth(a)] = out else {
        panic!("expected one AUTH, got {out:?}")
    };
    assert_eq!(a.reason_code, code);
    assert_eq!(
        a.properties
            .authentication_method
            .as_ref()
            .map(|m| m.as_str()),
        Some(METHOD),
        "MQTT-4.12.0-5: same method"
    );
    assert_eq!(a.properties.authentication_data.as_deref(), Some(data));
}

/// Connects through one challenge round: CONNECT, AUTH 0x18 both ways,
/// CONNACK with the same method and the server's proof.
fn auth_connected() -> (H, Arc<Mutex<Vec<String>>>) {
    let (mut h, log) = auth_client();
    h.c.connect(h.now).unwrap();
    let out = h.out();
    let [Packet::Connect(c)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(
        c.properties
            .authentication_method
            .as_ref()
            .map(|m| m.as_str()),
        Some(METHOD)
    );
    assert_eq!(
        c.properties.authentication_data.as_deref(),
        Some(&b"client-first"[..])
    );
    h.feed(server_auth(
        AuthReasonCode::ContinueAuthentication,
        METHOD,
        b"challenge",
    ));
    expect_auth(
        &h.out(),
        AuthReasonCode::ContinueAuthentication,
        b"response",
    );
    assert!(!h.c.is_connected());
    h.feed(auth_connack(b"server-proof"));
    assert!(h.c.is_connected());
    assert!(matches!(h.events().as_slice(), [Event::Connected { .. }]));
    assert_eq!(
        *log.lock().unwrap(),
        vec!["start", "challenge", "finish"],
        "the authenticator saw every step"
    );
    (h, log)
}

#[test]
fn enhanced_auth_connect_challenge_and_connack() {
    let (mut h, _) = auth_connected();
    // The connection works normally afterwards.
    h.c.publish(h.now, msg("a", QoS::AtMostOnce)).unwrap();
    assert_eq!(h.out().len(), 1);
}

#[test]
fn mqtt5_4_12_0_3_auth_reply_uses_continue_authentication() {
    // During connect.
    let (mut h, _) = auth_client();
    h.c.connect(h.now).unwrap();
    h.out();
    for _ in 0..3 {
        h.feed(server_auth(
            AuthReasonCode::ContinueAuthentication,
            METHOD,
            b"challenge",
        ));
        expect_auth(
            &h.out(),
            AuthReasonCode::ContinueAuthentication,
            b"response",
        );
    }
    // During re-authentication.
    let (mut h, _) = auth_connected();
    h.c.reauthenticate(h.now).unwrap();
    h.out();
    h.feed(server_auth(
        AuthReasonCode::ContinueAuthentication,
        METHOD,
        b"challenge",
    ));
    expect_auth(
        &h.out(),
        AuthReasonCode::ContinueAuthentication,
        b"response",
    );
}

#[test]
fn mqtt5_4_12_1_1_reauthentication_uses_same_method() {
    let (mut h, log) = auth_connected();
    h.c.reauthenticate(h.now).unwrap();
    expect_auth(&h.out(), AuthReasonCode::ReAuthenticate, b"client-first");
    // A second one while the first is running is misuse.
    assert!(matches!(
        h.c.reauthenticate(h.now),
        Err(Error::InvalidState(_))
    ));
    h.assert_silent();
    h.feed(server_auth(
        AuthReasonCode::ContinueAuthentication,
        METHOD,
        b"challenge",
    ));
    expect_auth(
        &h.out(),
        AuthReasonCode::ContinueAuthentication,
        b"response",
    );
    h.feed(server_auth(
        AuthReasonCode::Success,
        METHOD,
        b"server-proof",
    ));
    assert_eq!(h.events(), vec![Event::Reauthenticated]);
    assert!(h.c.is_connected());
    h.assert_silent();
    assert_eq!(log.lock().unwrap()[3..], ["start", "challenge", "finish"]);
    // Messages keep flowing during and after a re-authentication.
    h.c.reauthenticate(h.now).unwrap();
    h.out();
    h.c.publish(h.now, msg("a", QoS::AtLeastOnce)).unwrap();
    assert_eq!(h.out().len(), 1);
}

#[test]
fn mqtt5_4_12_0_7_no_auth_without_method() {
    let mut h = connected(V5);
    assert!(matches!(
        h.c.reauthenticate(h.now),
        Err(Error::NotAllowed(_))
    ));
    h.assert_silent();
    // An AUTH from the server is a protocol error; the client closes and
    // does not answer with AUTH.
    h.feed(server_auth(
        AuthReasonCode::ContinueAuthentication,
        METHOD,
        b"challenge",
    ));
    let out = h.out();
    assert!(!out.iter().any(|p| matches!(p, Packet::Auth(_))), "{out:?}");
    assert!(
        matches!(out.as_slice(), [Packet::Disconnect(d)] if d.reason_code == DisconnectReasonCode::ProtocolError),
        "{out:?}"
    );
    assert!(h.c.is_closed());
    // The CONNECT itself carried no method.
    let mut h = H::new(ClientConfig::new(connect_packet(V5)));
    h.c.connect(h.now).unwrap();
    let out = h.out();
    let [Packet::Connect(c)] = out.as_slice() else {
        panic!()
    };
    assert!(c.properties.authentication_method.is_none());
    // Enhanced authentication cannot be used with 3.1.1.
    let log = Arc::new(Mutex::new(Vec::new()));
    let cfg =
        ClientConfig::new(connect_packet(V311)).with_authenticator(Box::new(TestAuth { log }));
    let mut h = H::new(cfg);
    assert_eq!(
        h.c.connect(h.now),
        Err(Error::NotInVersion("enhanced authentication"))
    );
    h.assert_silent();
}

#[test]
fn mqtt5_3_1_2_30_only_auth_or_disconnect_before_connack() {
    let (mut h, _) = auth_client();
    h.c.connect(h.now).unwrap();
    h.out();
    assert_eq!(
        h.c.publish(h.now, msg("a", QoS::AtMostOnce)),
        Err(Error::NotConnected)
    );
    assert_eq!(
        h.c.subscribe(h.now, sub("a"), SubscribeProperties::default()),
        Err(Error::NotConnected)
    );
    assert_eq!(
        h.c.unsubscribe(h.now, vec![filter("a")], UnsubscribeProperties::default()),
        Err(Error::NotConnected)
    );
    assert!(h.c.reauthenticate(h.now).is_err());
    // No PINGREQ either, however long the exchange takes (until the connect
    // timeout).
    h.c.handle_timeout(h.now + Duration::from_secs(29));
    h.assert_silent();
    h.feed(server_auth(
        AuthReasonCode::ContinueAuthentication,
        METHOD,
        b"challenge",
    ));
    expect_auth(
        &h.out(),
        AuthReasonCode::ContinueAuthentication,
        b"response",
    );
    // DISCONNECT is allowed.
    h.c.disconnect(
        h.now,
        DisconnectReasonCode::NormalDisconnection,
        DisconnectProperties::default(),
    )
    .unwrap();
    let out = h.out();
    assert!(matches!(out.as_slice(), [Packet::Disconnect(_)]), "{out:?}");
    assert!(h.c.is_closed());
}

#[test]
fn enhanced_auth_failures_close_the_connection() {
    // The server's proof does not check out in CONNACK: the client closes.
    let (mut h, _) = auth_client();
    h.c.connect(h.now).unwrap();
    h.out();
    h.feed(auth_connack(b"forged-proof"));
    assert!(h.c.is_closed());
    let ev = h.events();
    assert!(
        matches!(
            ev.last(),
            Some(Event::Disconnected(CloseReason::AuthenticationFailed))
        ),
        "{ev:?}"
    );
    let out = h.out();
    assert!(
        out.iter()
            .all(|p| matches!(p, Packet::Disconnect(d) if d.reason_code.is_error())),
        "{out:?}"
    );

    // The method cannot answer the challenge: closed without an answer.
    let (mut h, _) = auth_client();
    h.c.connect(h.now).unwrap();
    h.out();
    h.feed(server_auth(
        AuthReasonCode::ContinueAuthentication,
        METHOD,
        b"gibberish",
    ));
    assert!(h.c.is_closed());
    assert!(!h.out().iter().any(|p| matches!(p, Packet::Auth(_))));
    assert!(matches!(
        h.events().last(),
        Some(Event::Disconnected(CloseReason::AuthenticationFailed))
    ));

    // CONNACK names another method (or none): MQTT-4.12.0-5 broken.
    for method in [Some("OTHER"), None] {
        let (mut h, _) = auth_client();
        h.c.connect(h.now).unwrap();
        h.out();
        let mut ack = connack();
        ack.properties.authentication_method = method.map(MqttString::from_static);
        h.feed(ack);
        assert!(h.c.is_closed());
        assert!(!h.c.is_connected());
        assert!(matches!(
            h.events().last(),
            Some(Event::Disconnected(CloseReason::ProtocolViolation { .. }))
        ));
    }

    // The server refuses the method.
    let (mut h, _) = auth_client();
    h.c.connect(h.now).unwrap();
    h.out();
    h.feed(ConnAck::new(ConnectReasonCode::BadAuthenticationMethod));
    assert!(h.c.is_closed());
    let ev = h.events();
    let Some(Event::Disconnected(reason)) = ev.last() else {
        panic!("{ev:?}")
    };
    assert_eq!(
        reason.refusal(),
        Some(ConnectReasonCode::BadAuthenticationMethod)
    );

    // A failed re-authentication closes with DISCONNECT 0x87.
    let (mut h, _) = auth_connected();
    h.c.reauthenticate(h.now).unwrap();
    h.out();
    h.feed(server_auth(
        AuthReasonCode::Success,
        METHOD,
        b"forged-proof",
    ));
    assert!(h.c.is_closed());
    assert_eq!(
        h.out(),
        vec![Packet::Disconnect(Disconnect::new(
            DisconnectReasonCode::NotAuthorized
        ))]
    );
    assert!(matches!(
        h.events().last(),
        Some(Event::Disconnected(CloseReason::AuthenticationFailed))
    ));

    // An AUTH with a different method during re-authentication.
    let (mut h, _) = auth_connected();
    h.c.reauthenticate(h.now).unwrap();
    h.out();
    h.feed(server_auth(
        AuthReasonCode::ContinueAuthentication,
        "OTHER",
        b"challenge",
    ));
    assert!(h.c.is_closed());
    let out = h.out();
    assert!(
        matches!(out.as_slice(), [Packet::Disconnect(d)] if d.reason_code == DisconnectReasonCode::ProtocolError),
        "{out:?}"
    );
}

// ---------------------------------------------------------------------------
// CONNACK: Session Present (MQTT-3.2.2-4, MQTT-3.2.2-5)
// ---------------------------------------------------------------------------

#[test]
fn mqtt5_3_2_2_4_session_present_without_session_closes() {
    // Clean Start 1: the client holds no session state.
    let mut h = H::new(ClientConfig::new(connect_packet(V5)));
    h.c.connect(h.now).unwrap();
    h.out();
    let mut ack = connack();
    ack.session_present = true;
    h.feed(ack);
    assert!(h.c.is_closed());
    assert!(!h.c.is_connected());
    let out = h.out();
    assert!(
        matches!(out.as_slice(), [Packet::Disconnect(d)] if d.reason_code == DisconnectReasonCode::ProtocolError),
        "{out:?}"
    );
    let ev = h.events();
    assert!(
        !ev.iter().any(|e| matches!(e, Event::Connected { .. })),
        "{ev:?}"
    );
    assert!(matches!(
        ev.last(),
        Some(Event::Disconnected(CloseReason::ProtocolViolation { .. }))
    ));
}

#[test]
fn mqtt5_3_2_2_5_session_present_0_discards_session() {
    let mut cfg = ClientConfig::new(connect_packet(V5));
    cfg.connect.clean_start = false;
    let mut h = connected_with(cfg, connack());
    let q1 =
        h.c.publish(h.now, msg("one", QoS::AtLeastOnce))
            .unwrap()
            .unwrap();
    let q2 =
        h.c.publish(h.now, msg("two", QoS::ExactlyOnce))
            .unwrap()
            .unwrap();
    let q3 =
        h.c.publish(h.now, msg("three", QoS::ExactlyOnce))
            .unwrap()
            .unwrap();
    h.out();
    h.feed(PubRec::new(q3)); // q3 is awaiting PUBCOMP
    h.out();
    assert!(!h.c.session_state().is_empty());
    h.c.handle_closed(h.now);
    h.events();
    h.c.connect(h.now).unwrap();
    h.out();
    h.feed(connack()); // Session Present 0
    assert!(h.c.is_connected());
    // Nothing of the old session is resent...
    h.assert_silent();
    assert_eq!(h.c.in_flight(), 0);
    assert!(h.c.session_state().is_empty());
    // ...and the application is told what was lost.
    let ev = h.events();
    let lost = ev
        .iter()
        .find_map(|e| match e {
            Event::SessionLost {
                unacknowledged,
                unreleased,
            } => Some((unacknowledged.clone(), unreleased.clone())),
            _ => None,
        })
        .expect("SessionLost event");
    let topics: Vec<&str> = lost
        .0
        .iter()
        .map(|p| p.topic.as_ref().unwrap().as_str())
        .collect();
    assert_eq!(topics, vec!["one", "two"]);
    assert_eq!(lost.1, vec![q3]);
    // Acknowledgements for the discarded messages are ignored.
    for id in [q1, q2] {
        h.feed(PubAck::new(id));
    }
    h.feed(PubComp::new(q3));
    assert!(h.c.is_connected());
    assert!(h.events().is_empty());
}

// ---------------------------------------------------------------------------
// CONNACK limits: MQTT-3.2.2-11, -14, -15
// ---------------------------------------------------------------------------

#[test]
fn mqtt5_3_2_2_11_never_above_maximum_qos() {
    let mut ack = connack();
    ack.properties.maximum_qos = Some(MaximumQoS::AtLeastOnce);
    let mut h = connected_with(ClientConfig::new(connect_packet(V5)), ack);
    assert_eq!(
        h.c.publish(h.now, msg("a", QoS::ExactlyOnce)),
        Err(Error::QoSNotSupported {
            maximum: QoS::AtLeastOnce
        })
    );
    h.assert_silent();
    assert_eq!(h.c.in_flight(), 0);
    h.c.publish(h.now, msg("a", QoS::AtLeastOnce)).unwrap();
    let out = h.out();
    assert_eq!(expect_publish(&out[0]).qos(), QoS::AtLeastOnce);

    let mut ack = connack();
    ack.properties.maximum_qos = Some(MaximumQoS::AtMostOnce);
    let mut h = connected_with(ClientConfig::new(connect_packet(V5)), ack);
    for q in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        assert!(matches!(
            h.c.publish(h.now, msg("a", q)),
            Err(Error::QoSNotSupported { .. })
        ));
    }
    h.assert_silent();
    h.c.publish(h.now, msg("a", QoS::AtMostOnce)).unwrap();
    assert_eq!(expect_publish(&h.out()[0]).qos(), QoS::AtMostOnce);
}

#[test]
fn mqtt5_3_2_2_14_no_retain_when_unavailable() {
    let mut ack = connack();
    ack.properties.retain_available = Some(false);
    let mut h = connected_with(ClientConfig::new(connect_packet(V5)), ack);
    for q in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        assert_eq!(
            h.c.publish(h.now, msg("a", q).with_retain(true)),
            Err(Error::RetainNotSupported)
        );
    }
    h.assert_silent();
    assert_eq!(h.c.in_flight(), 0);
    h.c.publish(h.now, msg("a", QoS::AtLeastOnce)).unwrap();
    assert!(!expect_publish(&h.out()[0]).retain);
}

#[test]
fn mqtt5_3_2_2_15_never_above_server_maximum_packet_size() {
    const MAX: u32 = 64;
    let mut ack = connack();
    ack.properties.maximum_packet_size = NonZeroU32::new(MAX);
    let mut cfg = ClientConfig::new(connect_packet(V5));
    cfg.connect.keep_alive = 1;
    cfg.connect.clean_start = false;
    let mut h = connected_with(cfg, ack.clone());
    let check_sizes = |h: &mut H| {
        for chunk in h.out_raw() {
            let v = h.v;
            let cfg = DecodeConfig::new(v).with_max_packet_size(MAX);
            let mut buf = BytesMut::from(&chunk[..]);
            // Each packet decodes under the server's limit.
            while let Some(_p) = mqtt_wire::decode(&mut buf, &cfg).expect("within the limit") {}
            assert!(buf.is_empty());
        }
    };
    let big = Publish::new(topic("big"), Bytes::from(vec![b'x'; MAX as usize]));
    for q in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let r =
            h.c.publish(h.now, big.clone().with_delivery(Delivery::new(q, pid(1))));
        assert!(
            matches!(r, Err(Error::PacketTooLarge { max: MAX, size }) if size > MAX as usize),
            "{r:?}"
        );
    }
    assert_eq!(h.c.in_flight(), 0);
    let long = TopicFilter::try_from("f".repeat(MAX as usize).as_str()).unwrap();
    let sub_long = vec![Subscription {
        filter: long.clone(),
        options: SubscriptionOptions::new(QoS::AtMostOnce),
    }];
    assert!(matches!(
        h.c.subscribe(h.now, sub_long, SubscribeProperties::default()),
        Err(Error::PacketTooLarge { .. })
    ));
    assert!(matches!(
        h.c.unsubscribe(h.now, vec![long], UnsubscribeProperties::default()),
        Err(Error::PacketTooLarge { .. })
    ));
    h.assert_silent();
    // What fits goes out, and fits.
    h.c.publish(h.now, msg("small", QoS::ExactlyOnce)).unwrap();
    h.c.subscribe(h.now, sub("s/#"), SubscribeProperties::default())
        .unwrap();
    h.feed(server_publish("in", Delivery::AtLeastOnce(pid(4))));
    h.at_ms(1_000);
    h.c.handle_timeout(h.now);
    check_sizes(&mut h);
    assert!(h.c.is_connected());

    // A stored message larger than the new connection's limit is not sent.
    let stored = SessionState::from_parts(
        7,
        vec![
            OutboundMessage::Publish(big.clone().with_delivery(Delivery::AtLeastOnce(pid(7)))),
            OutboundMessage::Publish(
                msg("ok", QoS::AtLeastOnce).with_delivery(Delivery::AtLeastOnce(pid(8))),
            ),
        ],
        vec![],
    )
    .unwrap();
    let mut cfg = ClientConfig::new(connect_packet(V5));
    cfg.connect.clean_start = false;
    let mut h = H::with_session(cfg, stored);
    ack.session_present = true;
    h.handshake(ack);
    let out = h.out();
    assert_eq!(
        packet_ids(&out),
        vec![8],
        "only what fits is resent: {out:?}"
    );
    // ... and the one that does not is reported, never dropped silently.
    let dropped: Vec<Publish> = std::iter::from_fn(|| h.c.poll_event())
        .filter_map(|e| match e {
            Event::Dropped(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0].payload.len(), MAX as usize);
    assert!(!dropped[0].dup);
}

// ---------------------------------------------------------------------------
// Topic aliases: MQTT-3.2.2-17/18, MQTT-3.3.2-9/10
// ---------------------------------------------------------------------------

/// (alias, topic on the wire) of each PUBLISH.
fn alias_view(out: &[Packet]) -> Vec<(Option<u16>, Option<String>)> {
    out.iter()
        .map(|p| {
            let p = expect_publish(p);
            (
                p.properties.topic_alias.map(NonZeroU16::get),
                p.topic.as_ref().map(|t| t.as_str().to_owned()),
            )
        })
        .collect()
}

#[test]
fn mqtt5_3_2_2_17_3_3_2_9_outbound_aliases_within_server_maximum() {
    let mut ack = connack();
    ack.properties.topic_alias_maximum = Some(2);
    let mut h = connected_with(ClientConfig::new(connect_packet(V5)), ack);
    for t in ["t/1", "t/2", "t/3", "t/4", "t/1", "t/2", "t/3"] {
        h.c.publish(h.now, msg(t, QoS::AtMostOnce)).unwrap();
    }
    h.c.publish(h.now, msg("t/2", QoS::AtLeastOnce)).unwrap();
    let view = alias_view(&h.out());
    let s = |t: &str| Some(t.to_owned());
    assert_eq!(
        view,
        vec![
            (Some(1), s("t/1")),
            (Some(2), s("t/2")),
            (None, s("t/3")), // no alias left: the full topic
            (None, s("t/4")),
            (Some(1), None), // alias alone
            (Some(2), None),
            (None, s("t/3")),
            (Some(2), None),
        ]
    );
    assert!(view.iter().all(|(a, _)| a.unwrap_or(0) <= 2));
    // The application may not pick an alias itself.
    let mut m = msg("t/1", QoS::AtMostOnce);
    m.properties.topic_alias = NonZeroU16::new(1);
    assert!(matches!(h.c.publish(h.now, m), Err(Error::NotAllowed(_))));
    h.assert_silent();
}

#[test]
fn mqtt5_3_2_2_18_no_aliases_without_server_maximum() {
    // No Topic Alias Maximum in CONNACK (0 by default).
    let mut h = connected(V5);
    for t in ["t/1", "t/1", "t/2", "t/1"] {
        h.c.publish(h.now, msg(t, QoS::AtLeastOnce)).unwrap();
    }
    let view = alias_view(&h.out());
    assert!(
        view.iter().all(|(a, t)| a.is_none() && t.is_some()),
        "{view:?}"
    );
    // An explicit 0 is the same.
    let mut ack = connack();
    ack.properties.topic_alias_maximum = Some(0);
    let mut h = connected_with(ClientConfig::new(connect_packet(V5)), ack);
    h.c.publish(h.now, msg("t/1", QoS::AtMostOnce)).unwrap();
    h.c.publish(h.now, msg("t/1", QoS::AtMostOnce)).unwrap();
    assert!(alias_view(&h.out()).iter().all(|(a, _)| a.is_none()));
    // Aliases switched off in the config, though the server allows them.
    let mut ack = connack();
    ack.properties.topic_alias_maximum = Some(10);
    let mut cfg = ClientConfig::new(connect_packet(V5));
    cfg.topic_aliases = false;
    let mut h = connected_with(cfg, ack);
    h.c.publish(h.now, msg("t/1", QoS::AtMostOnce)).unwrap();
    h.c.publish(h.now, msg("t/1", QoS::AtMostOnce)).unwrap();
    assert!(alias_view(&h.out()).iter().all(|(a, _)| a.is_none()));
}

fn aliased(t: Option<&'static str>, alias: u16, delivery: Delivery) -> Publish {
    let mut p =
        Publish::new(topic("placeholder"), Bytes::from_static(b"x")).with_delivery(delivery);
    p.topic = t.map(topic);
    p.properties.topic_alias = NonZeroU16::new(alias);
    p
}

#[test]
fn mqtt5_3_3_2_10_inbound_aliases_up_to_our_maximum() {
    let mut cfg = ClientConfig::new(connect_packet(V5));
    cfg.connect.properties.topic_alias_maximum = Some(3);
    let mut h = connected_with(cfg, connack());
    h.feed(aliased(Some("a/1"), 1, Delivery::AtMostOnce));
    h.feed(aliased(Some("a/2"), 2, Delivery::AtMostOnce));
    h.feed(aliased(Some("a/3"), 3, Delivery::AtLeastOnce(pid(1))));
    h.feed(aliased(None, 3, Delivery::AtMostOnce));
    h.feed(aliased(None, 1, Delivery::ExactlyOnce(pid(2))));
    // Redefining an alias replaces its topic.
    h.feed(aliased(Some("b/1"), 1, Delivery::AtMostOnce));
    h.feed(aliased(None, 1, Delivery::AtMostOnce));
    h.feed(aliased(None, 2, Delivery::AtMostOnce));
    let topics: Vec<String> = h
        .events()
        .into_iter()
        .map(|e| match e {
            Event::Publish(p) => {
                assert!(p.properties.topic_alias.is_none(), "alias resolved");
                p.topic.unwrap().as_str().to_owned()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        topics,
        vec!["a/1", "a/2", "a/3", "a/3", "a/1", "b/1", "b/1", "a/2"]
    );
    assert!(h.c.is_connected());
    // Acknowledged normally.
    assert_eq!(packet_ids(&h.out()), vec![1, 2]);

    // Above our maximum: DISCONNECT 0x94.
    h.feed(aliased(Some("a/4"), 4, Delivery::AtMostOnce));
    let out = h.out();
    assert_eq!(
        out,
        vec![Packet::Disconnect(Disconnect::new(
            DisconnectReasonCode::TopicAliasInvalid
        ))]
    );
    assert!(h.c.is_closed());
    assert!(!h.events().iter().any(|e| matches!(e, Event::Publish(_))));

    // Without a Topic Alias Maximum in CONNECT any alias is invalid.
    let mut h = connected(V5);
    h.feed(aliased(Some("a/1"), 1, Delivery::AtMostOnce));
    assert_eq!(
        h.out(),
        vec![Packet::Disconnect(Disconnect::new(
            DisconnectReasonCode::TopicAliasInvalid
        ))]
    );
    assert!(h.c.is_closed());
}

#[test]
fn inbound_alias_never_defined_is_a_protocol_error() {
    let mut cfg = ClientConfig::new(connect_packet(V5));
    cfg.connect.properties.topic_alias_maximum = Some(3);
    let mut h = connected_with(cfg, connack());
    h.feed(aliased(None, 2, Delivery::AtMostOnce));
    assert_eq!(
        h.out(),
        vec![Packet::Disconnect(Disconnect::new(
            DisconnectReasonCode::ProtocolError
        ))]
    );
    assert!(h.c.is_closed());
}

// ---------------------------------------------------------------------------
// MQTT-3.3.4-6: no Subscription Identifier from the client
// ---------------------------------------------------------------------------

#[test]
fn mqtt5_3_3_4_6_no_subscription_identifier_in_client_publish() {
    let mut h = connected(V5);
    let mut m = msg("a", QoS::AtLeastOnce);
    m.properties
        .set_subscription_identifiers(std::iter::once(SubscriptionId::new(7).unwrap()).collect());
    assert!(matches!(h.c.publish(h.now, m), Err(Error::NotAllowed(_))));
    h.assert_silent();
    assert_eq!(h.c.in_flight(), 0);
    // Every PUBLISH the client does write has none.
    h.c.publish(h.now, msg("a", QoS::AtLeastOnce)).unwrap();
    assert!(expect_publish(&h.out()[0])
        .properties
        .subscription_identifiers()
        .is_empty());
}

// ---------------------------------------------------------------------------
// MQTT-3.3.4-8 and misuse: the send quota
// ---------------------------------------------------------------------------

#[test]
fn mqtt5_3_3_4_8_full_window_holds_back_only_publish() {
    let mut ack = connack();
    ack.properties.receive_maximum = NonZeroU16::new(1);
    let mut cfg = ClientConfig::new(connect_packet(V5));
    cfg.connect.keep_alive = 2;
    let mut h = connected_with(cfg, ack);
    let first =
        h.c.publish(h.now, msg("a", QoS::AtLeastOnce))
            .unwrap()
            .unwrap();
    h.out();
    // Quota zero: another QoS 1/2 PUBLISH is refused...
    assert_eq!(
        h.c.publish(h.now, msg("a", QoS::ExactlyOnce)),
        Err(Error::WindowFull)
    );
    h.assert_silent();
    // ...but everything else still flows.
    h.c.publish(h.now, msg("q0", QoS::AtMostOnce)).unwrap();
    h.c.subscribe(h.now, sub("s"), SubscribeProperties::default())
        .unwrap();
    h.c.unsubscribe(h.now, vec![filter("s")], UnsubscribeProperties::default())
        .unwrap();
    h.feed(server_publish("in", Delivery::AtLeastOnce(pid(40))));
    h.feed(server_publish("in", Delivery::ExactlyOnce(pid(41))));
    h.feed(PubRel::new(pid(41)));
    let out = h.out();
    let kinds: Vec<&str> = out
        .iter()
        .map(|p| match p {
            Packet::Publish(_) => "PUBLISH",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubComp(_) => "PUBCOMP",
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            "PUBLISH",
            "SUBSCRIBE",
            "UNSUBSCRIBE",
            "PUBACK",
            "PUBREC",
            "PUBCOMP"
        ]
    );
    h.at_ms(2_000);
    h.c.handle_timeout(h.now);
    assert_eq!(h.out(), vec![Packet::PingReq]);
    // The acknowledgement reopens the window.
    h.feed(PubAck::new(first));
    assert!(h.c.publish(h.now, msg("a", QoS::ExactlyOnce)).is_ok());
    h.c.disconnect(
        h.now,
        DisconnectReasonCode::NormalDisconnection,
        DisconnectProperties::default(),
    )
    .unwrap();
    let out = h.out();
    assert!(matches!(out.last(), Some(Packet::Disconnect(_))), "{out:?}");
}

#[test]
fn misuse_publish_when_not_connected_sends_nothing() {
    for v in [V311, V5] {
        let mut h = H::new(ClientConfig::new(connect_packet(v)));
        for q in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            assert_eq!(h.c.publish(h.now, msg("a", q)), Err(Error::NotConnected));
        }
        assert_eq!(
            h.c.ack(h.now, pid(1), PubAckReasonCode::Success),
            Err(Error::NotConnected)
        );
        assert!(h
            .c
            .disconnect(
                h.now,
                DisconnectReasonCode::NormalDisconnection,
                DisconnectProperties::default()
            )
            .is_err());
        h.assert_silent();
        assert!(h.c.session_state().is_empty());
        assert!(h.events().is_empty());
        // Also after a connection ended.
        let mut h = connected(v);
        h.c.handle_closed(h.now);
        assert_eq!(
            h.c.publish(h.now, msg("a", QoS::AtLeastOnce)),
            Err(Error::NotConnected)
        );
        h.assert_silent();
        assert!(h.c.session_state().is_empty());
    }
}

#[test]
fn misuse_window_full_sends_nothing_and_changes_nothing() {
    let mut ack = connack();
    ack.properties.receive_maximum = NonZeroU16::new(2);
    let mut h = connected_with(ClientConfig::new(connect_packet(V5)), ack);
    let a =
        h.c.publish(h.now, msg("a", QoS::AtLeastOnce))
            .unwrap()
            .unwrap();
    let b =
        h.c.publish(h.now, msg("b", QoS::ExactlyOnce))
            .unwrap()
            .unwrap();
    h.out();
    let before = h.c.session_state();
    for q in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        assert_eq!(h.c.publish(h.now, msg("c", q)), Err(Error::WindowFull));
    }
    h.assert_silent();
    assert_eq!(h.c.session_state(), before);
    assert_eq!(h.c.in_flight(), 2);
    // A PUBREC does not free a slot (the PUBREL is still in flight); the
    // PUBCOMP does.
    h.feed(PubRec::new(b));
    h.out();
    assert_eq!(
        h.c.publish(h.now, msg("c", QoS::AtLeastOnce)),
        Err(Error::WindowFull)
    );
    h.feed(PubComp::new(b));
    let c =
        h.c.publish(h.now, msg("c", QoS::AtLeastOnce))
            .unwrap()
            .unwrap();
    assert_ne!(c, a);
    assert_eq!(packet_ids(&h.out()), vec![c.get()]);
}

#[test]
fn misuse_second_connect_is_refused() {
    for v in [V311, V5] {
        let mut h = H::new(ClientConfig::new(connect_packet(v)));
        h.c.connect(h.now).unwrap();
        h.out();
        // While connecting.
        assert!(matches!(h.c.connect(h.now), Err(Error::InvalidState(_))));
        h.assert_silent();
        h.feed(connack());
        h.events();
        // While connected.
        assert!(matches!(h.c.connect(h.now), Err(Error::InvalidState(_))));
        h.assert_silent();
        assert!(h.c.is_connected());
        assert!(h.events().is_empty());
    }
}

#[test]
fn qos1_acknowledgement_events_carry_the_id() {
    let mut h = connected(V5);
    let id =
        h.c.publish(h.now, msg("a", QoS::AtLeastOnce))
            .unwrap()
            .unwrap();
    h.out();
    let mut ack = PubAck::new(id);
    ack.reason_code = PubAckReasonCode::NoMatchingSubscribers;
    h.feed(ack.clone());
    assert_eq!(h.events(), vec![Event::PubAck(ack)]);
    assert_eq!(h.c.in_flight(), 0);
}
