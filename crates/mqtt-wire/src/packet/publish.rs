//! PUBLISH (MQTT 5.0 §3.3, 3.1.1 §3.3).

use super::{read_packet_id, v5_only, PacketBody};
use crate::codec::{put_prefixed, Frame, Reader};
use crate::error::{DecodeError, EncodeError};
use crate::publish_properties::{decode_raw, RawProps};
use crate::{Delivery, PacketId, PacketType, ProtocolVersion, QoS, TopicError, TopicName};
use crate::{PublishProperties, PublishPropertiesRef};
use bytes::{BufMut, Bytes, BytesMut};

/// An application message.
///
/// Decoding one allocates nothing: topic, payload and property strings are
/// slices of the received buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// DUP: this may be a re-delivery (never set at QoS 0, MQTT-3.3.1-2).
    pub dup: bool,
    /// QoS and, for QoS 1 and 2, the Packet Identifier.
    pub delivery: Delivery,
    /// RETAIN.
    pub retain: bool,
    /// Topic Name; `None` only in 5.0 when `properties.topic_alias` stands
    /// in for it (the packet then carries an empty topic).
    pub topic: Option<TopicName>,
    /// Payload.
    pub payload: Bytes,
    /// 5.0 properties (must be empty for 3.1.1).
    pub properties: PublishProperties,
}

impl Publish {
    /// A QoS 0 message to `topic`, no retain, no properties.
    pub fn new(topic: TopicName, payload: Bytes) -> Self {
        Publish {
            dup: false,
            delivery: Delivery::AtMostOnce,
            retain: false,
            topic: Some(topic),
            payload,
            properties: PublishProperties::default(),
        }
    }

    /// Sets QoS and Packet Identifier.
    pub fn with_delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// Sets RETAIN.
    pub fn with_retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }

    /// The QoS.
    pub fn qos(&self) -> QoS {
        self.delivery.qos()
    }

    /// The Packet Identifier (QoS 1 and 2).
    pub fn packet_id(&self) -> Option<PacketId> {
        self.delivery.packet_id()
    }

    /// Decodes a PUBLISH whose body starts at byte `at` of `frame` and
    /// runs to its end, and hands it to `wrap` (so the caller's packet and
    /// result are built in place, not moved into): the topic and property
    /// entries are slices of `frame`, and the payload is `frame` itself,
    /// advanced (one reference count fewer than slicing it out).
    #[inline(always)]
    pub(crate) fn decode_with<T>(
        frame: Bytes,
        at: usize,
        flags: u8,
        v: ProtocolVersion,
        wrap: impl FnOnce(Publish) -> T,
    ) -> Result<T, DecodeError> {
        parse(frame, at, flags, v, |p| {
            wrap(Publish {
                dup: p.dup,
                delivery: p.delivery,
                retain: p.retain,
                topic: p.topic.map(TopicName::from_checked),
                payload: p.payload,
                properties: PublishProperties::from_raw(p.properties),
            })
        })
    }

    #[inline]
    pub(crate) fn decode(body: Bytes, flags: u8, v: ProtocolVersion) -> Result<Self, DecodeError> {
        Self::decode_with(body, 0, flags, v, |p| p)
    }
}

/// A PUBLISH as the one parser reads it, its fields slices `S` of the frame
/// ([`Bytes`] for [`Publish`], `&[u8]` for [`PublishRef`]).
struct Parts<S> {
    dup: bool,
    delivery: Delivery,
    retain: bool,
    /// The checked Topic Name; `None` when empty (a Topic Alias stands in).
    topic: Option<S>,
    properties: RawProps<S>,
    payload: S,
}

/// Parses the PUBLISH whose body starts at byte `at` of `frame` and runs to
/// its end, and hands its parts to `build`: every rule of MQTT 5.0 §3.3 /
/// 3.1.1 §3.3 that the body can break, for the owned and the borrowed
/// decoder alike. The flags were checked with the fixed header (QoS 3, DUP
/// at QoS 0).
///
/// `build` is called where the parts are complete (twice in the code, once
/// per version family), so the caller's packet is built in place from
/// values in registers: returning the parts instead cost 20 instructions
/// per 3.1.1 PUBLISH on the owned path (callgrind, benches/instr.sh).
#[inline(always)]
fn parse<F: Frame, T>(
    frame: F,
    at: usize,
    flags: u8,
    v: ProtocolVersion,
    build: impl FnOnce(Parts<F::Field>) -> T,
) -> Result<T, DecodeError> {
    let mut r = Reader::new(&frame, PacketType::Publish);
    r.skip_to(at);
    let r = &mut r;
    let dup = flags & 0b1000 != 0;
    let retain = flags & 0b0001 != 0;
    let topic = r.topic_field()?;
    let delivery = match (flags >> 1) & 0b11 {
        0 => Delivery::AtMostOnce,
        1 => Delivery::AtLeastOnce(read_packet_id(r)?),
        2 => Delivery::ExactlyOnce(read_packet_id(r)?),
        _ => return Err(DecodeError::InvalidQoS),
    };
    if !v.is_v5() {
        if topic.is_none() {
            return Err(DecodeError::InvalidTopicName(TopicError::Empty));
        }
        let at = r.pos();
        return Ok(build(Parts {
            dup,
            delivery,
            retain,
            topic,
            properties: RawProps::empty(),
            payload: frame.into_tail(at),
        }));
    }
    let properties = decode_raw(r)?;
    if topic.is_none() && properties.topic_alias.is_none() {
        return Err(DecodeError::MissingTopic);
    }
    let at = r.pos();
    Ok(build(Parts {
        dup,
        delivery,
        retain,
        topic,
        properties,
        payload: frame.into_tail(at),
    }))
}

/// A PUBLISH borrowed from the decoder's input: what [`decode_ref`]
/// returns. Topic, payload and properties are slices of the input buffer,
/// so it lives as long as that buffer; nothing is reference-counted or
/// allocated. It was checked by the same parser, with the same errors, as
/// the owned [`Publish`]; [`to_publish`](Self::to_publish) makes one.
///
/// [`decode_ref`]: crate::decode_ref
///
/// ```
/// use mqtt_wire::{decode_ref, DecodeConfig, PacketRef, ProtocolVersion, QoS};
///
/// let wire = [0x30, 0x0a, 0x00, 0x03, b'a', b'/', b'b', b'h', b'e', b'l', b'l', b'o'];
/// let cfg = DecodeConfig::new(ProtocolVersion::V3_1_1);
/// let Some((PacketRef::Publish(p), used)) = decode_ref(&wire, &cfg).unwrap() else {
///     panic!("a PUBLISH");
/// };
/// assert_eq!(used, wire.len());
/// assert_eq!(p.topic(), Some("a/b"));
/// assert_eq!(p.payload(), b"hello");
/// assert_eq!(p.qos(), QoS::AtMostOnce);
/// // The owned packet, when it must outlive the buffer.
/// let owned = p.to_publish();
/// assert_eq!(owned.topic.unwrap().as_str(), "a/b");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishRef<'a> {
    dup: bool,
    delivery: Delivery,
    retain: bool,
    /// The checked Topic Name; empty when a Topic Alias stands in.
    topic: &'a [u8],
    payload: &'a [u8],
    properties: PublishPropertiesRef<'a>,
}

impl<'a> PublishRef<'a> {
    /// Decodes a PUBLISH whose body starts at byte `at` of `frame` and runs
    /// to its end.
    #[inline(always)]
    pub(crate) fn decode_at(
        frame: &'a [u8],
        at: usize,
        flags: u8,
        v: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        parse(frame, at, flags, v, |p| PublishRef {
            dup: p.dup,
            delivery: p.delivery,
            retain: p.retain,
            topic: p.topic.unwrap_or_default(),
            payload: p.payload,
            properties: PublishPropertiesRef::from_raw(p.properties),
        })
    }

    /// DUP: this may be a re-delivery.
    pub fn dup(&self) -> bool {
        self.dup
    }

    /// QoS and, for QoS 1 and 2, the Packet Identifier.
    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// The QoS.
    pub fn qos(&self) -> QoS {
        self.delivery.qos()
    }

    /// The Packet Identifier (QoS 1 and 2).
    pub fn packet_id(&self) -> Option<PacketId> {
        self.delivery.packet_id()
    }

    /// RETAIN.
    pub fn retain(&self) -> bool {
        self.retain
    }

    /// The Topic Name; `None` only in 5.0 when the Topic Alias stands in
    /// for it. Runs `str::from_utf8` on the checked bytes (see
    /// [`topic_bytes`](Self::topic_bytes) for the free form).
    pub fn topic(&self) -> Option<&'a str> {
        if self.topic.is_empty() {
            return None;
        }
        core::str::from_utf8(self.topic).ok()
    }

    /// The Topic Name's bytes (valid UTF-8, checked by the decoder); empty
    /// when the Topic Alias stands in for it.
    pub fn topic_bytes(&self) -> &'a [u8] {
        self.topic
    }

    /// The payload.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The 5.0 properties (empty for 3.1.1).
    pub fn properties(&self) -> &PublishPropertiesRef<'a> {
        &self.properties
    }

    /// The owned [`Publish`]: topic, property entries and payload copied
    /// into one buffer (one allocation), then sliced as the owned decoder
    /// would.
    pub fn to_publish(&self) -> Publish {
        let rest = self.properties.rest();
        let mut m = BytesMut::with_capacity(self.topic.len() + rest.len() + self.payload.len());
        m.extend_from_slice(self.topic);
        m.extend_from_slice(rest);
        m.extend_from_slice(self.payload);
        let mut all = m.freeze();
        let topic = all.split_to(self.topic.len());
        let rest = all.split_to(rest.len());
        Publish {
            dup: self.dup,
            delivery: self.delivery,
            retain: self.retain,
            topic: if topic.is_empty() {
                None
            } else {
                Some(TopicName::from_checked(topic))
            },
            payload: all,
            properties: self.properties.owned_with(rest),
        }
    }
}

impl From<PublishRef<'_>> for Publish {
    fn from(p: PublishRef<'_>) -> Publish {
        p.to_publish()
    }
}

impl PacketBody for Publish {
    const TYPE: PacketType = PacketType::Publish;

    #[inline]
    fn flags(&self) -> u8 {
        (u8::from(self.dup) << 3) | ((self.delivery.qos() as u8) << 1) | u8::from(self.retain)
    }

    #[inline]
    fn validate(&self, v: ProtocolVersion) -> Result<(), EncodeError> {
        if self.dup && self.delivery == Delivery::AtMostOnce {
            return Err(EncodeError::DupWithQoS0);
        }
        if self.topic.is_none() && (!v.is_v5() || self.properties.topic_alias.is_none()) {
            return Err(EncodeError::MissingTopic);
        }
        if v.is_v5() {
            self.properties.validate()
        } else {
            v5_only(v, !self.properties.is_empty(), "PUBLISH properties")
        }
    }

    #[inline]
    fn body_len(&self, v: ProtocolVersion) -> usize {
        let topic = 2 + self.topic.as_ref().map_or(0, TopicName::len);
        let id = if self.delivery == Delivery::AtMostOnce {
            0
        } else {
            2
        };
        let props = if v.is_v5() {
            self.properties.wire_len()
        } else {
            0
        };
        topic + id + props + self.payload.len()
    }

    #[inline]
    fn write_body<B: BufMut>(&self, v: ProtocolVersion, buf: &mut B) {
        put_prefixed(
            buf,
            self.topic.as_ref().map_or(&[][..], TopicName::as_bytes),
        );
        if let Some(id) = self.delivery.packet_id() {
            buf.put_u16(id.get());
        }
        if v.is_v5() {
            self.properties.encode(buf);
        }
        buf.put_slice(&self.payload);
    }
}
