//! PUBLISH (MQTT 5.0 §3.3, 3.1.1 §3.3).

use super::{read_packet_id, v5_only, PacketBody};
use crate::codec::{put_prefixed, Reader};
use crate::error::{DecodeError, EncodeError};
use crate::PublishProperties;
use crate::{Delivery, PacketId, PacketType, ProtocolVersion, QoS, TopicError, TopicName};
use bytes::{Buf, BufMut, Bytes};

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
        mut frame: Bytes,
        at: usize,
        flags: u8,
        v: ProtocolVersion,
        wrap: impl FnOnce(Publish) -> T,
    ) -> Result<T, DecodeError> {
        let mut r = Reader::new(&frame, PacketType::Publish);
        r.skip_to(at);
        let r = &mut r;
        // Flags were checked with the fixed header (QoS 3, DUP at QoS 0).
        let dup = flags & 0b1000 != 0;
        let retain = flags & 0b0001 != 0;
        let topic = r.topic_name()?;
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
            // Built in place: no properties to decode and move.
            let at = r.pos();
            frame.advance(at);
            return Ok(wrap(Publish {
                dup,
                delivery,
                retain,
                topic,
                payload: frame,
                properties: PublishProperties::default(),
            }));
        }
        let properties = PublishProperties::decode(r)?;
        if topic.is_none() && properties.topic_alias.is_none() {
            return Err(DecodeError::MissingTopic);
        }
        let at = r.pos();
        frame.advance(at);
        Ok(wrap(Publish {
            dup,
            delivery,
            retain,
            topic,
            payload: frame,
            properties,
        }))
    }

    #[inline]
    pub(crate) fn decode(body: Bytes, flags: u8, v: ProtocolVersion) -> Result<Self, DecodeError> {
        Self::decode_with(body, 0, flags, v, |p| p)
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
