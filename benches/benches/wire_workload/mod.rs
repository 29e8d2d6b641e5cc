//! Workloads and codec adapters shared by the `wire` criterion bench and the
//! `wire_instr` callgrind driver.
//!
//! Every codec is driven through its own public API, the way an application
//! would use it: a decoder is handed the received bytes in the form its API
//! takes (a `BytesMut` socket buffer, or a byte slice) and returns one packet
//! at a time, which the loop drops; an encoder appends packets to one output
//! buffer. The input streams are written by mqtt-wire's encoder and every
//! peer's output is checked against them once, outside the timed loops
//! ([`check`]).

use bytes::{Bytes, BytesMut};
use std::hint::black_box;

/// Packets per stream: criterion's `Throughput::Elements`, so the reports
/// read as packets per second.
pub const N: usize = 10_000;
/// The topic of every PUBLISH.
pub const TOPIC: &str = "home/floor1/room23/temperature";
/// The topic filter of the SUBSCRIBE of the mixed stream.
pub const FILTER: &str = "home/+/+/temperature";
/// Client identifier of the CONNECT of the mixed stream.
pub const CLIENT_ID: &str = "sensor-0042";
/// 5.0 PUBLISH properties: a content type and one user property.
pub const CONTENT_TYPE: &str = "text/plain";
/// Name and value of the user property.
pub const USER_PROP: (&str, &str) = ("unit", "C");
/// Largest packet every decoder is configured to accept.
pub const MAX_PACKET: u32 = 1024 * 1024;

/// The protocol version of a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ver {
    /// MQTT 3.1.1
    V311,
    /// MQTT 5.0 (PUBLISH with a content type and a user property)
    V5,
}

impl Ver {
    pub fn label(self) -> &'static str {
        match self {
            Ver::V311 => "3.1.1",
            Ver::V5 => "5.0",
        }
    }
}

/// One workload: a stream of [`N`] packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// `N` identical PUBLISH packets.
    Publish {
        ver: Ver,
        /// QoS 1 (packet id 1) when true, else QoS 0.
        qos1: bool,
        payload: usize,
    },
    /// CONNECT, SUBSCRIBE, PUBLISH (QoS 1, 16 B), PUBACK, PINGREQ, repeated
    /// `N / 5` times.
    Mixed(Ver),
}

impl Workload {
    pub fn ver(self) -> Ver {
        match self {
            Workload::Publish { ver, .. } | Workload::Mixed(ver) => ver,
        }
    }

    /// A short name for reports: `3.1.1/publish/qos0/16B`.
    pub fn name(self) -> String {
        match self {
            Workload::Publish { ver, qos1, payload } => {
                let size = if payload >= 1024 {
                    format!("{}KiB", payload / 1024)
                } else {
                    format!("{payload}B")
                };
                format!(
                    "{}/publish/qos{}/{size}",
                    ver.label(),
                    if qos1 { 1 } else { 0 }
                )
            }
            Workload::Mixed(ver) => format!("{}/mixed", ver.label()),
        }
    }

    /// Every workload of the issue: PUBLISH of 16 B, 256 B and 4 KiB at
    /// QoS 0 and 1 for 3.1.1 and 5.0, then the mixed streams.
    pub fn all() -> Vec<Workload> {
        let mut v = Vec::new();
        for ver in [Ver::V311, Ver::V5] {
            for payload in [16, 256, 4096] {
                for qos1 in [false, true] {
                    v.push(Workload::Publish { ver, qos1, payload });
                }
            }
        }
        v.push(Workload::Mixed(Ver::V311));
        v.push(Workload::Mixed(Ver::V5));
        v
    }

    /// The packets of one cycle of the stream, as payload sizes / kinds.
    fn payload_len(self) -> usize {
        match self {
            Workload::Publish { payload, .. } => payload,
            Workload::Mixed(_) => 16,
        }
    }

    fn qos1(self) -> bool {
        match self {
            Workload::Publish { qos1, .. } => qos1,
            Workload::Mixed(_) => true,
        }
    }
}

/// The payload bytes of a workload (deterministic, printable).
pub fn payload(w: Workload) -> Vec<u8> {
    (0..w.payload_len())
        .map(|i| b"0123456789abcdef"[i % 16])
        .collect()
}

/// The stream of `N` packets of `w`, as mqtt-wire encodes it.
pub fn stream(w: Workload) -> Bytes {
    use mqtt_wire::Encode;
    // Not through `Ours::encode_all`: callgrind counts that by name.
    let (cycle, v) = Ours::build(w);
    let mut out = BytesMut::new();
    for i in 0..N {
        cycle[i % cycle.len()].encode(v, &mut out).unwrap();
    }
    out.freeze()
}

/// Length of the packet at the start of `b` (fixed header included), for
/// the peers whose slice decoder does not say how much it consumed.
#[inline]
pub fn frame_len(b: &[u8]) -> usize {
    let mut len = 0usize;
    for i in 0..4 {
        let byte = b[1 + i];
        len |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return 2 + i + len;
        }
    }
    panic!("bad remaining length")
}

/// What the benches need of a codec, in its own types.
pub trait Codec {
    const NAME: &'static str;
    /// Whether the codec speaks `v`.
    fn supports(v: Ver) -> bool;

    /// Decoder input, made from the stream outside the timed loop.
    type DecIn;
    fn dec_prepare(stream: &Bytes) -> Self::DecIn;
    /// Decodes every packet, dropping each; returns how many.
    fn decode_all(input: &mut Self::DecIn, v: Ver) -> usize;

    /// One cycle of the workload's packets in the codec's model.
    type Pkts;
    fn build(w: Workload) -> Self::Pkts;
    /// Encoder input made from the cycle outside the timed loop (a codec
    /// whose encoder consumes packets gets `N` clones here).
    type EncIn;
    fn enc_prepare(cycle: &Self::Pkts) -> Self::EncIn;
    /// Appends the `N` packets of the stream to `out` (cleared first);
    /// returns the bytes written.
    fn encode_all(input: &mut Self::EncIn, out: &mut BytesMut) -> usize;
}

// ---------------------------------------------------------------- mqtt-wire

/// mqtt-wire, decoding from a `BytesMut` socket buffer with [`mqtt_wire::decode`].
pub struct Ours;

fn wire_version(v: Ver) -> mqtt_wire::ProtocolVersion {
    match v {
        Ver::V311 => mqtt_wire::ProtocolVersion::V3_1_1,
        Ver::V5 => mqtt_wire::ProtocolVersion::V5,
    }
}

fn wire_publish(w: Workload) -> mqtt_wire::Publish {
    use mqtt_wire::{Delivery, MqttString, PacketId, Publish, TopicName, UserProperties};
    let mut p = Publish::new(TopicName::try_from(TOPIC).unwrap(), Bytes::from(payload(w)));
    if w.qos1() {
        p = p.with_delivery(Delivery::AtLeastOnce(PacketId::new(1).unwrap()));
    }
    if w.ver() == Ver::V5 {
        p.properties
            .set_content_type(Some(MqttString::try_from(CONTENT_TYPE).unwrap()));
        p.properties.set_user_properties(
            [(
                MqttString::try_from(USER_PROP.0).unwrap(),
                MqttString::try_from(USER_PROP.1).unwrap(),
            )]
            .into_iter()
            .collect::<UserProperties>(),
        );
    }
    p
}

impl Codec for Ours {
    const NAME: &'static str = "mqtt-wire";
    fn supports(_: Ver) -> bool {
        true
    }

    type DecIn = BytesMut;
    fn dec_prepare(stream: &Bytes) -> BytesMut {
        BytesMut::from(&stream[..])
    }
    #[inline(never)]
    fn decode_all(buf: &mut BytesMut, v: Ver) -> usize {
        let cfg = mqtt_wire::DecodeConfig::new(wire_version(v)).with_max_packet_size(MAX_PACKET);
        let mut n = 0;
        while let Some(p) = mqtt_wire::decode(buf, &cfg).unwrap() {
            black_box(&p);
            n += 1;
        }
        n
    }

    type Pkts = (Vec<mqtt_wire::Packet>, mqtt_wire::ProtocolVersion);
    fn build(w: Workload) -> Self::Pkts {
        use mqtt_wire::{
            Connect, MqttString, Packet, PacketId, PubAck, QoS, Subscribe, SubscriptionOptions,
            TopicFilter,
        };
        let publish = Packet::Publish(wire_publish(w));
        let packets = match w {
            Workload::Publish { .. } => vec![publish],
            Workload::Mixed(v) => vec![
                Packet::from(Connect::new(
                    wire_version(v),
                    MqttString::try_from(CLIENT_ID).unwrap(),
                )),
                Packet::Subscribe(Subscribe::new(
                    PacketId::new(1).unwrap(),
                    TopicFilter::try_from(FILTER).unwrap(),
                    SubscriptionOptions::new(QoS::AtLeastOnce),
                )),
                publish,
                Packet::PubAck(PubAck::new(PacketId::new(1).unwrap())),
                Packet::PingReq,
            ],
        };
        (packets, wire_version(w.ver()))
    }
    type EncIn = Self::Pkts;
    fn enc_prepare(cycle: &Self::Pkts) -> Self::EncIn {
        cycle.clone()
    }
    #[inline(never)]
    fn encode_all((cycle, v): &mut Self::EncIn, out: &mut BytesMut) -> usize {
        use mqtt_wire::Encode;
        out.clear();
        let mut n = 0;
        for i in 0..N {
            n += cycle[i % cycle.len()].encode(*v, out).unwrap();
        }
        n
    }
}

/// mqtt-wire's borrowed decoder: `decode_ref` over a `&[u8]` (PUBLISH as a
/// `PublishRef` of the input, no reference count), the input held like
/// mqttrs's. Encodes like [`Ours`] (one encoder).
pub struct OursRef;

impl Codec for OursRef {
    const NAME: &'static str = "mqtt-wire-borrowed";
    fn supports(_: Ver) -> bool {
        true
    }

    type DecIn = Bytes;
    fn dec_prepare(stream: &Bytes) -> Bytes {
        stream.clone()
    }
    #[inline(never)]
    fn decode_all(buf: &mut Bytes, v: Ver) -> usize {
        let cfg = mqtt_wire::DecodeConfig::new(wire_version(v)).with_max_packet_size(MAX_PACKET);
        let mut rest: &[u8] = &buf[..];
        let mut n = 0;
        while let Some((p, len)) = mqtt_wire::decode_ref(rest, &cfg).unwrap() {
            black_box(&p);
            rest = &rest[len..];
            n += 1;
        }
        n
    }

    type Pkts = <Ours as Codec>::Pkts;
    fn build(w: Workload) -> Self::Pkts {
        Ours::build(w)
    }
    type EncIn = <Ours as Codec>::EncIn;
    fn enc_prepare(cycle: &Self::Pkts) -> Self::EncIn {
        Ours::enc_prepare(cycle)
    }
    fn encode_all(input: &mut Self::EncIn, out: &mut BytesMut) -> usize {
        Ours::encode_all(input, out)
    }
}

// ------------------------------------------------------------------ rumqttc

/// rumqttc 0.25: `mqttbytes::v4` and `v5::mqttbytes::v5`.
pub struct Rumqttc;

/// A packet of either of rumqttc's models.
// Unboxed on purpose: a box would add a pointer chase to the peer's timed
// encode loop that its own users do not pay.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum RumqttcPacket {
    V4(rumqttc::mqttbytes::v4::Packet),
    V5(rumqttc::v5::mqttbytes::v5::Packet),
}

impl Codec for Rumqttc {
    const NAME: &'static str = "rumqttc";
    fn supports(_: Ver) -> bool {
        true
    }

    type DecIn = BytesMut;
    fn dec_prepare(stream: &Bytes) -> BytesMut {
        BytesMut::from(&stream[..])
    }
    #[inline(never)]
    fn decode_all(buf: &mut BytesMut, v: Ver) -> usize {
        let mut n = 0;
        match v {
            Ver::V311 => {
                while !buf.is_empty() {
                    let p = rumqttc::mqttbytes::v4::Packet::read(buf, MAX_PACKET as usize).unwrap();
                    black_box(&p);
                    n += 1;
                }
            }
            Ver::V5 => {
                while !buf.is_empty() {
                    let p =
                        rumqttc::v5::mqttbytes::v5::Packet::read(buf, Some(MAX_PACKET)).unwrap();
                    black_box(&p);
                    n += 1;
                }
            }
        }
        n
    }

    type Pkts = Vec<RumqttcPacket>;
    fn build(w: Workload) -> Self::Pkts {
        match w.ver() {
            Ver::V311 => {
                use rumqttc::mqttbytes::v4::{Connect, Packet, PubAck, Publish, Subscribe};
                use rumqttc::mqttbytes::QoS;
                let qos = if w.qos1() {
                    QoS::AtLeastOnce
                } else {
                    QoS::AtMostOnce
                };
                let mut p = Publish::from_bytes(TOPIC, qos, Bytes::from(payload(w)));
                if w.qos1() {
                    p.pkid = 1;
                }
                let publish = Packet::Publish(p);
                let v = match w {
                    Workload::Publish { .. } => vec![publish],
                    Workload::Mixed(_) => {
                        let mut c = Connect::new(CLIENT_ID);
                        c.keep_alive = 60;
                        let mut s = Subscribe::new(FILTER, QoS::AtLeastOnce);
                        s.pkid = 1;
                        vec![
                            Packet::Connect(c),
                            Packet::Subscribe(s),
                            publish,
                            Packet::PubAck(PubAck::new(1)),
                            Packet::PingReq,
                        ]
                    }
                };
                v.into_iter().map(RumqttcPacket::V4).collect()
            }
            Ver::V5 => {
                use rumqttc::v5::mqttbytes::v5::{
                    Connect, Filter, Packet, PingReq, PubAck, Publish, PublishProperties, Subscribe,
                };
                use rumqttc::v5::mqttbytes::QoS;
                let qos = if w.qos1() {
                    QoS::AtLeastOnce
                } else {
                    QoS::AtMostOnce
                };
                let props = PublishProperties {
                    content_type: Some(CONTENT_TYPE.to_string()),
                    user_properties: vec![(USER_PROP.0.to_string(), USER_PROP.1.to_string())],
                    ..Default::default()
                };
                let mut p = Publish::new(TOPIC, qos, Bytes::from(payload(w)), Some(props));
                if w.qos1() {
                    p.pkid = 1;
                }
                let publish = Packet::Publish(p);
                let v = match w {
                    Workload::Publish { .. } => vec![publish],
                    Workload::Mixed(_) => {
                        let c = Connect {
                            keep_alive: 60,
                            client_id: CLIENT_ID.to_string(),
                            clean_start: true,
                            properties: None,
                        };
                        let mut s = Subscribe::new(Filter::new(FILTER, QoS::AtLeastOnce), None);
                        s.pkid = 1;
                        vec![
                            Packet::Connect(c, None, None),
                            Packet::Subscribe(s),
                            publish,
                            Packet::PubAck(PubAck::new(1, None)),
                            Packet::PingReq(PingReq),
                        ]
                    }
                };
                v.into_iter().map(RumqttcPacket::V5).collect()
            }
        }
    }
    type EncIn = Vec<RumqttcPacket>;
    fn enc_prepare(cycle: &Self::Pkts) -> Self::EncIn {
        cycle.clone()
    }
    #[inline(never)]
    fn encode_all(cycle: &mut Self::EncIn, out: &mut BytesMut) -> usize {
        out.clear();
        let mut n = 0;
        for i in 0..N {
            n += match &cycle[i % cycle.len()] {
                RumqttcPacket::V4(p) => p.write(out, MAX_PACKET as usize).unwrap(),
                RumqttcPacket::V5(p) => p.write(out, Some(MAX_PACKET)).unwrap(),
            };
        }
        n
    }
}

// -------------------------------------------------------------- rmqtt-codec

/// rmqtt-codec 0.3 (ntex-mqtt's codec): tokio-util `Decoder`/`Encoder`.
pub struct Rmqtt;

#[derive(Clone)]
pub enum RmqttPacket {
    V3(rmqtt_codec::v3::Packet),
    V5(rmqtt_codec::v5::Packet),
}

fn rmqtt_publish(w: Workload) -> rmqtt_codec::types::Publish {
    use bytestring::ByteString;
    use rmqtt_codec::types::{Publish, QoS};
    let properties = (w.ver() == Ver::V5).then(|| rmqtt_codec::v5::PublishProperties {
        content_type: Some(ByteString::from_static(CONTENT_TYPE)),
        user_properties: vec![(
            ByteString::from_static(USER_PROP.0),
            ByteString::from_static(USER_PROP.1),
        )],
        ..Default::default()
    });
    Publish {
        dup: false,
        retain: false,
        qos: if w.qos1() {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        },
        topic: ByteString::from_static(TOPIC),
        packet_id: w.qos1().then(|| std::num::NonZeroU16::new(1).unwrap()),
        payload: Bytes::from(payload(w)),
        properties,
    }
}

impl Codec for Rmqtt {
    const NAME: &'static str = "rmqtt-codec";
    fn supports(_: Ver) -> bool {
        true
    }

    type DecIn = BytesMut;
    fn dec_prepare(stream: &Bytes) -> BytesMut {
        BytesMut::from(&stream[..])
    }
    #[inline(never)]
    fn decode_all(buf: &mut BytesMut, v: Ver) -> usize {
        use tokio_util::codec::Decoder;
        let mut n = 0;
        match v {
            Ver::V311 => {
                let mut codec = rmqtt_codec::v3::Codec::new(MAX_PACKET);
                while let Some(p) = codec.decode(buf).unwrap() {
                    black_box(&p);
                    n += 1;
                }
            }
            Ver::V5 => {
                let mut codec = rmqtt_codec::v5::Codec::new(MAX_PACKET, MAX_PACKET);
                while let Some(p) = codec.decode(buf).unwrap() {
                    black_box(&p);
                    n += 1;
                }
            }
        }
        n
    }

    type Pkts = Vec<RmqttPacket>;
    fn build(w: Workload) -> Self::Pkts {
        use bytestring::ByteString;
        use rmqtt_codec::types::QoS;
        let pid = std::num::NonZeroU16::new(1).unwrap();
        let publish = Box::new(rmqtt_publish(w));
        match w.ver() {
            Ver::V311 => {
                use rmqtt_codec::v3::{Connect, Packet};
                let publish = Packet::Publish(publish);
                let v = match w {
                    Workload::Publish { .. } => vec![publish],
                    Workload::Mixed(_) => vec![
                        Packet::Connect(Box::new(Connect {
                            protocol: rmqtt_codec::types::Protocol(4),
                            clean_session: true,
                            keep_alive: 60,
                            client_id: ByteString::from_static(CLIENT_ID),
                            ..Default::default()
                        })),
                        Packet::Subscribe {
                            packet_id: pid,
                            topic_filters: vec![(
                                ByteString::from_static(FILTER),
                                QoS::AtLeastOnce,
                            )],
                        },
                        publish,
                        Packet::PublishAck { packet_id: pid },
                        Packet::PingRequest,
                    ],
                };
                v.into_iter().map(RmqttPacket::V3).collect()
            }
            Ver::V5 => {
                use rmqtt_codec::v5::{
                    Connect, Packet, PublishAck, Subscribe, SubscriptionOptions,
                };
                let publish = Packet::Publish(publish);
                let v = match w {
                    Workload::Publish { .. } => vec![publish],
                    Workload::Mixed(_) => vec![
                        Packet::Connect(Box::new(Connect {
                            clean_start: true,
                            keep_alive: 60,
                            client_id: ByteString::from_static(CLIENT_ID),
                            ..Default::default()
                        })),
                        Packet::Subscribe(Subscribe {
                            packet_id: pid,
                            id: None,
                            user_properties: Vec::new(),
                            topic_filters: vec![(
                                ByteString::from_static(FILTER),
                                SubscriptionOptions {
                                    qos: QoS::AtLeastOnce,
                                    ..Default::default()
                                },
                            )],
                        }),
                        publish,
                        Packet::PublishAck(PublishAck {
                            packet_id: pid,
                            ..Default::default()
                        }),
                        Packet::PingRequest,
                    ],
                };
                v.into_iter().map(RmqttPacket::V5).collect()
            }
        }
    }
    /// Its `Encoder` takes packets by value: `N` clones, made untimed.
    type EncIn = Vec<RmqttPacket>;
    fn enc_prepare(cycle: &Self::Pkts) -> Self::EncIn {
        (0..N).map(|i| cycle[i % cycle.len()].clone()).collect()
    }
    #[inline(never)]
    fn encode_all(input: &mut Self::EncIn, out: &mut BytesMut) -> usize {
        use tokio_util::codec::Encoder;
        out.clear();
        let mut v3 = rmqtt_codec::v3::Codec::new(MAX_PACKET);
        let mut v5 = rmqtt_codec::v5::Codec::new(MAX_PACKET, MAX_PACKET);
        for p in input.drain(..) {
            match p {
                RmqttPacket::V3(p) => v3.encode(p, out).unwrap(),
                RmqttPacket::V5(p) => v5.encode(p, out).unwrap(),
            }
        }
        out.len()
    }
}

// ------------------------------------------------------- mqtt-protocol-core

/// mqtt-protocol-core 0.7: its `PacketBuilder` framer, then the packet's
/// `parse` (what its `Connection::recv` does before the protocol logic).
pub struct ProtocolCore;

impl Codec for ProtocolCore {
    const NAME: &'static str = "mqtt-protocol-core";
    fn supports(_: Ver) -> bool {
        true
    }

    type DecIn = Bytes;
    fn dec_prepare(stream: &Bytes) -> Bytes {
        stream.clone()
    }
    #[inline(never)]
    fn decode_all(buf: &mut Bytes, v: Ver) -> usize {
        use mqtt_protocol_core::mqtt::common::Cursor;
        use mqtt_protocol_core::mqtt::connection::{PacketBuildResult, PacketBuilder, PacketData};
        use mqtt_protocol_core::mqtt::packet::{v3_1_1, v5_0};
        let mut builder = PacketBuilder::with_maximum_packet_size(MAX_PACKET);
        let mut cursor = Cursor::new(&buf[..]);
        let mut n = 0;
        loop {
            let raw = match builder.feed(&mut cursor) {
                PacketBuildResult::Complete(raw) => raw,
                PacketBuildResult::Incomplete => break,
                PacketBuildResult::Error(e) => panic!("{e:?}"),
            };
            let flags = raw.flags();
            match (v, raw.packet_type(), &raw.data) {
                (Ver::V311, 3, PacketData::Publish(arc)) => {
                    black_box(&v3_1_1::Publish::parse(flags, arc.clone()).unwrap());
                }
                (Ver::V5, 3, PacketData::Publish(arc)) => {
                    black_box(&v5_0::Publish::parse(flags, arc.clone()).unwrap());
                }
                (Ver::V311, 1, _) => {
                    black_box(&raw.parse_exact(v3_1_1::Connect::parse).unwrap());
                }
                (Ver::V5, 1, _) => {
                    black_box(&raw.parse_exact(v5_0::Connect::parse).unwrap());
                }
                (Ver::V311, 8, _) => {
                    black_box(&raw.parse_exact(v3_1_1::Subscribe::parse).unwrap());
                }
                (Ver::V5, 8, _) => {
                    black_box(&raw.parse_exact(v5_0::Subscribe::parse).unwrap());
                }
                (Ver::V311, 4, _) => {
                    black_box(&raw.parse_exact(v3_1_1::Puback::parse).unwrap());
                }
                (Ver::V5, 4, _) => {
                    black_box(&raw.parse_exact(v5_0::Puback::parse).unwrap());
                }
                (Ver::V311, 12, _) => {
                    black_box(&raw.parse_exact(v3_1_1::Pingreq::parse).unwrap());
                }
                (Ver::V5, 12, _) => {
                    black_box(&raw.parse_exact(v5_0::Pingreq::parse).unwrap());
                }
                (_, t, _) => panic!("unexpected packet type {t}"),
            }
            black_box(&raw);
            n += 1;
        }
        n
    }

    type Pkts = Vec<mqtt_protocol_core::mqtt::packet::Packet>;
    fn build(w: Workload) -> Self::Pkts {
        use mqtt_protocol_core::mqtt::packet::{
            v3_1_1, v5_0, ContentType, Packet, Property, Qos, SubEntry, SubOpts, UserProperty,
        };
        let qos = if w.qos1() {
            Qos::AtLeastOnce
        } else {
            Qos::AtMostOnce
        };
        let entry = || SubEntry::new(FILTER, SubOpts::new().set_qos(Qos::AtLeastOnce)).unwrap();
        match w.ver() {
            Ver::V311 => {
                let mut b = v3_1_1::Publish::builder()
                    .topic_name(TOPIC)
                    .unwrap()
                    .qos(qos)
                    .payload(payload(w));
                if w.qos1() {
                    b = b.packet_id(1u16);
                }
                let publish = Packet::V3_1_1Publish(b.build().unwrap());
                match w {
                    Workload::Publish { .. } => vec![publish],
                    Workload::Mixed(_) => vec![
                        Packet::V3_1_1Connect(
                            v3_1_1::Connect::builder()
                                .client_id(CLIENT_ID)
                                .unwrap()
                                .keep_alive(60)
                                .clean_session(true)
                                .build()
                                .unwrap(),
                        ),
                        Packet::V3_1_1Subscribe(
                            v3_1_1::Subscribe::builder()
                                .packet_id(1u16)
                                .entries(vec![entry()])
                                .build()
                                .unwrap(),
                        ),
                        publish,
                        Packet::V3_1_1Puback(
                            v3_1_1::Puback::builder().packet_id(1u16).build().unwrap(),
                        ),
                        Packet::V3_1_1Pingreq(v3_1_1::Pingreq::new()),
                    ],
                }
            }
            Ver::V5 => {
                let props = vec![
                    Property::ContentType(ContentType::new(CONTENT_TYPE).unwrap()),
                    Property::UserProperty(UserProperty::new(USER_PROP.0, USER_PROP.1).unwrap()),
                ];
                let mut b = v5_0::Publish::builder()
                    .topic_name(TOPIC)
                    .unwrap()
                    .qos(qos)
                    .props(props)
                    .payload(payload(w));
                if w.qos1() {
                    b = b.packet_id(1u16);
                }
                let publish = Packet::V5_0Publish(b.build().unwrap());
                match w {
                    Workload::Publish { .. } => vec![publish],
                    Workload::Mixed(_) => vec![
                        Packet::V5_0Connect(
                            v5_0::Connect::builder()
                                .client_id(CLIENT_ID)
                                .unwrap()
                                .keep_alive(60)
                                .clean_start(true)
                                .build()
                                .unwrap(),
                        ),
                        Packet::V5_0Subscribe(
                            v5_0::Subscribe::builder()
                                .packet_id(1u16)
                                .entries(vec![entry()])
                                .build()
                                .unwrap(),
                        ),
                        publish,
                        Packet::V5_0Puback(
                            v5_0::Puback::builder().packet_id(1u16).build().unwrap(),
                        ),
                        Packet::V5_0Pingreq(v5_0::Pingreq::new()),
                    ],
                }
            }
        }
    }
    type EncIn = Self::Pkts;
    fn enc_prepare(cycle: &Self::Pkts) -> Self::EncIn {
        cycle.clone()
    }
    #[inline(never)]
    fn encode_all(cycle: &mut Self::EncIn, out: &mut BytesMut) -> usize {
        use mqtt_protocol_core::mqtt::packet::GenericPacketTrait;
        out.clear();
        for i in 0..N {
            for s in cycle[i % cycle.len()].to_buffers() {
                out.extend_from_slice(&s);
            }
        }
        out.len()
    }
}

// --------------------------------------------------------------- mqtt-proto

/// mqtt-proto 0.4: `v3::Packet::decode` / `v5::Packet::decode` on a slice
/// holding exactly one packet (its decoder does not report the bytes it
/// consumed, so the frame length is read with [`frame_len`]).
pub struct MqttProto;

// Unboxed on purpose: a box would add a pointer chase to the peer's timed
// encode loop that its own users do not pay.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum MqttProtoPacket {
    V3(mqtt_proto::v3::Packet),
    V5(mqtt_proto::v5::Packet),
}

impl Codec for MqttProto {
    const NAME: &'static str = "mqtt-proto";
    fn supports(_: Ver) -> bool {
        true
    }

    type DecIn = Bytes;
    fn dec_prepare(stream: &Bytes) -> Bytes {
        stream.clone()
    }
    #[inline(never)]
    fn decode_all(buf: &mut Bytes, v: Ver) -> usize {
        let b = &buf[..];
        let mut pos = 0;
        let mut n = 0;
        while pos < b.len() {
            let len = frame_len(&b[pos..]);
            let frame = &b[pos..pos + len];
            match v {
                Ver::V311 => {
                    black_box(&mqtt_proto::v3::Packet::decode(frame).unwrap().unwrap());
                }
                Ver::V5 => {
                    black_box(&mqtt_proto::v5::Packet::decode(frame).unwrap().unwrap());
                }
            }
            pos += len;
            n += 1;
        }
        n
    }

    type Pkts = Vec<MqttProtoPacket>;
    fn build(w: Workload) -> Self::Pkts {
        use mqtt_proto::{Pid, QoS, QosPid, TopicFilter, TopicName};
        use std::sync::Arc;
        let pid = Pid::try_from(1).unwrap();
        let qos_pid = if w.qos1() {
            QosPid::Level1(pid)
        } else {
            QosPid::Level0
        };
        let topic = TopicName::try_from(TOPIC).unwrap();
        let filter = TopicFilter::try_from(FILTER).unwrap();
        let client_id: Arc<str> = Arc::from(CLIENT_ID);
        match w.ver() {
            Ver::V311 => {
                use mqtt_proto::v3::{Connect, Packet, Publish, Subscribe};
                let publish =
                    Packet::Publish(Publish::new(qos_pid, topic, Bytes::from(payload(w))));
                let v = match w {
                    Workload::Publish { .. } => vec![publish],
                    Workload::Mixed(_) => vec![
                        Packet::Connect(Connect::new(client_id, 60)),
                        Packet::Subscribe(Subscribe::new(pid, vec![(filter, QoS::Level1)])),
                        publish,
                        Packet::Puback(pid),
                        Packet::Pingreq,
                    ],
                };
                v.into_iter().map(MqttProtoPacket::V3).collect()
            }
            Ver::V5 => {
                use mqtt_proto::v5::{
                    Connect, Packet, Puback, Publish, Subscribe, SubscriptionOptions, UserProperty,
                };
                let mut p = Publish::new(qos_pid, topic, Bytes::from(payload(w)));
                p.properties.content_type = Some(Arc::from(CONTENT_TYPE));
                p.properties.user_properties = vec![UserProperty {
                    name: Arc::from(USER_PROP.0),
                    value: Arc::from(USER_PROP.1),
                }];
                let publish = Packet::Publish(p);
                let v = match w {
                    Workload::Publish { .. } => vec![publish],
                    Workload::Mixed(_) => vec![
                        Packet::Connect(Connect::new(client_id, 60)),
                        Packet::Subscribe(Subscribe::new(
                            pid,
                            vec![(filter, SubscriptionOptions::new(QoS::Level1))],
                        )),
                        publish,
                        Packet::Puback(Puback::new_success(pid)),
                        Packet::Pingreq,
                    ],
                };
                v.into_iter().map(MqttProtoPacket::V5).collect()
            }
        }
    }
    type EncIn = Self::Pkts;
    fn enc_prepare(cycle: &Self::Pkts) -> Self::EncIn {
        cycle.clone()
    }
    #[inline(never)]
    fn encode_all(cycle: &mut Self::EncIn, out: &mut BytesMut) -> usize {
        out.clear();
        for i in 0..N {
            match &cycle[i % cycle.len()] {
                MqttProtoPacket::V3(p) => out.extend_from_slice(p.encode().unwrap().as_ref()),
                MqttProtoPacket::V5(p) => out.extend_from_slice(p.encode().unwrap().as_ref()),
            }
        }
        out.len()
    }
}

// ------------------------------------------------------------------- mqttrs

/// mqttrs 0.4 (3.1.1 only): `decode_slice` borrows from the input (zero
/// copy); it does not report the bytes consumed, so the frame length is
/// read with [`frame_len`]. `encode_slice` writes into a `&mut [u8]`.
pub struct Mqttrs;

impl Codec for Mqttrs {
    const NAME: &'static str = "mqttrs";
    fn supports(v: Ver) -> bool {
        v == Ver::V311
    }

    type DecIn = Bytes;
    fn dec_prepare(stream: &Bytes) -> Bytes {
        stream.clone()
    }
    #[inline(never)]
    fn decode_all(buf: &mut Bytes, _: Ver) -> usize {
        let b = &buf[..];
        let mut pos = 0;
        let mut n = 0;
        while pos < b.len() {
            let len = frame_len(&b[pos..]);
            black_box(&mqttrs::decode_slice(&b[pos..pos + len]).unwrap().unwrap());
            pos += len;
            n += 1;
        }
        n
    }

    /// mqttrs packets borrow their strings: the cycle keeps the payload.
    type Pkts = (Workload, Vec<u8>);
    fn build(w: Workload) -> Self::Pkts {
        (w, payload(w))
    }
    type EncIn = Self::Pkts;
    fn enc_prepare(cycle: &Self::Pkts) -> Self::EncIn {
        cycle.clone()
    }
    #[inline(never)]
    fn encode_all((w, payload): &mut Self::EncIn, out: &mut BytesMut) -> usize {
        use mqttrs::SubscribeTopic;
        use mqttrs::{Connect, Packet, Pid, Protocol, Publish, QoS, QosPid, Subscribe};
        let pid = Pid::try_from(1).unwrap();
        let publish = Packet::Publish(Publish {
            dup: false,
            qospid: if w.qos1() {
                QosPid::AtLeastOnce(pid)
            } else {
                QosPid::AtMostOnce
            },
            retain: false,
            topic_name: TOPIC,
            payload,
        });
        let cycle = match w {
            Workload::Publish { .. } => vec![publish],
            Workload::Mixed(_) => vec![
                Packet::Connect(Connect {
                    protocol: Protocol::MQTT311,
                    keep_alive: 60,
                    client_id: CLIENT_ID,
                    clean_session: true,
                    last_will: None,
                    username: None,
                    password: None,
                }),
                Packet::Subscribe(Subscribe {
                    pid,
                    topics: vec![SubscribeTopic {
                        topic_path: FILTER.to_string(),
                        qos: QoS::AtLeastOnce,
                    }],
                }),
                publish,
                Packet::Puback(pid),
                Packet::Pingreq,
            ],
        };
        // encode_slice writes into a slice: size the buffer once (it keeps
        // its length between iterations, so this is free after the first).
        let need = N * (8 + TOPIC.len() + FILTER.len() + CLIENT_ID.len() + payload.len());
        if out.len() < need {
            out.resize(need, 0);
        }
        let mut pos = 0;
        for i in 0..N {
            pos += mqttrs::encode_slice(&cycle[i % cycle.len()], &mut out[pos..]).unwrap();
        }
        pos
    }
}

// -------------------------------------------------------------------- checks

/// Decodes and encodes `w` once with codec `C` and checks the results
/// against mqtt-wire's stream: same packet count, and an encoding of the
/// same bytes (or, where a peer orders fields differently, the same
/// length). Returns a note for the report when only the length matches.
pub fn check<C: Codec>(w: Workload, stream: &Bytes) -> Option<String> {
    let mut input = C::dec_prepare(stream);
    let n = C::decode_all(&mut input, w.ver());
    assert_eq!(n, N, "{} decoded {n} packets of {}", C::NAME, w.name());
    let cycle = C::build(w);
    let mut out = BytesMut::new();
    let len = C::encode_all(&mut C::enc_prepare(&cycle), &mut out);
    let written = &out[..len];
    if written == &stream[..] {
        return None;
    }
    // A PUBLISH stream must come out the same size; in the mixed stream a
    // peer may legitimately spell an optional field out (a 5.0 PUBACK
    // reason code, say).
    if matches!(w, Workload::Publish { .. }) {
        assert_eq!(
            len,
            stream.len(),
            "{} encodes {} to a different length",
            C::NAME,
            w.name()
        );
    }
    Some(format!(
        "{}: {} encodes {len} bytes (mqtt-wire {}), not byte-identical",
        w.name(),
        C::NAME,
        stream.len()
    ))
}
