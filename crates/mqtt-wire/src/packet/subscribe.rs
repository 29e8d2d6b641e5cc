//! SUBSCRIBE (MQTT 5.0 §3.8, 3.1.1 §3.8).

use super::{read_packet_id, v5_only, PacketBody};
use crate::codec::{put_prefixed, Reader};
use crate::error::{DecodeError, EncodeError};
use crate::property::SubscribeProperties;
use crate::topic::check_topic_filter;
use crate::{PacketId, PacketType, ProtocolVersion, QoS, TopicFilter};
use alloc::vec::Vec;
use bytes::BufMut;

/// A request for one or more subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet Identifier, echoed by the SUBACK.
    pub packet_id: PacketId,
    /// The subscriptions, at least one (MQTT-3.8.3-2).
    pub subscriptions: Vec<Subscription>,
    /// 5.0 properties.
    pub properties: SubscribeProperties,
}

/// One Topic Filter with its options.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subscription {
    /// The filter.
    pub filter: TopicFilter,
    /// The options.
    pub options: SubscriptionOptions,
}

/// Subscription Options (MQTT 5.0 §3.8.3.1). 3.1.1 has only the QoS; the
/// other fields must keep their defaults for a 3.1.1 peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct SubscriptionOptions {
    /// Maximum QoS.
    pub qos: QoS,
    /// No Local: do not send this client's own publishes back.
    pub no_local: bool,
    /// Retain As Published: keep the RETAIN flag on forwarded publishes.
    pub retain_as_published: bool,
    /// When to send retained messages.
    pub retain_handling: RetainHandling,
}

/// Retain Handling option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum RetainHandling {
    /// 0: send retained messages at subscribe.
    #[default]
    SendAtSubscribe,
    /// 1: send them only if the subscription did not exist.
    SendIfNew,
    /// 2: do not send them.
    DoNotSend,
}

impl SubscriptionOptions {
    /// Options with QoS `qos` and defaults otherwise.
    pub fn new(qos: QoS) -> Self {
        SubscriptionOptions {
            qos,
            ..Default::default()
        }
    }

    fn to_byte(self) -> u8 {
        (self.qos as u8)
            | (u8::from(self.no_local) << 2)
            | (u8::from(self.retain_as_published) << 3)
            | ((self.retain_handling as u8) << 4)
    }

    fn from_byte(b: u8, v: ProtocolVersion) -> Result<Self, DecodeError> {
        // 5.0: bits 7-6 reserved (MQTT-3.8.3-5); 3.1.1: bits 7-2 reserved
        // (MQTT-3.8.3-4 of 3.1.1). QoS 3 is malformed in both.
        let reserved = if v.is_v5() { 0xc0 } else { 0xfc };
        if b & reserved != 0 {
            return Err(DecodeError::InvalidSubscriptionOptions(b));
        }
        let qos = QoS::from_u8(b & 0b11).ok_or(DecodeError::InvalidSubscriptionOptions(b))?;
        let retain_handling = match (b >> 4) & 0b11 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(DecodeError::InvalidRetainHandling),
        };
        Ok(SubscriptionOptions {
            qos,
            no_local: b & 0x04 != 0,
            retain_as_published: b & 0x08 != 0,
            retain_handling,
        })
    }
}

impl Subscribe {
    /// A SUBSCRIBE for one filter.
    pub fn new(packet_id: PacketId, filter: TopicFilter, options: SubscriptionOptions) -> Self {
        Subscribe {
            packet_id,
            subscriptions: alloc::vec![Subscription { filter, options }],
            properties: SubscribeProperties::default(),
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>, v: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(r)?;
        let properties = if v.is_v5() {
            SubscribeProperties::decode(r)?
        } else {
            SubscribeProperties::default()
        };
        let mut subscriptions = Vec::new();
        while !r.is_empty() {
            let b = r.binary()?;
            check_topic_filter(&b).map_err(DecodeError::InvalidTopicFilter)?;
            let filter = TopicFilter::from_checked(b);
            let options = SubscriptionOptions::from_byte(r.u8()?, v)?;
            subscriptions.push(Subscription { filter, options });
        }
        if subscriptions.is_empty() {
            return Err(DecodeError::EmptyPayload {
                packet: PacketType::Subscribe,
            });
        }
        Ok(Subscribe {
            packet_id,
            subscriptions,
            properties,
        })
    }
}

impl PacketBody for Subscribe {
    const TYPE: PacketType = PacketType::Subscribe;

    fn validate(&self, v: ProtocolVersion) -> Result<(), EncodeError> {
        if self.subscriptions.is_empty() {
            return Err(EncodeError::EmptyPayload {
                packet: PacketType::Subscribe,
            });
        }
        v5_only(v, !self.properties.is_empty(), "SUBSCRIBE properties")?;
        let extra = self
            .subscriptions
            .iter()
            .any(|s| s.options.to_byte() & 0xfc != 0);
        v5_only(v, extra, "subscription options other than QoS")?;
        self.properties.validate()
    }

    fn body_len(&self, v: ProtocolVersion) -> usize {
        let props = if v.is_v5() {
            self.properties.wire_len()
        } else {
            0
        };
        2 + props
            + self
                .subscriptions
                .iter()
                .map(|s| 3 + s.filter.len())
                .sum::<usize>()
    }

    fn write_body<B: BufMut>(&self, v: ProtocolVersion, buf: &mut B) {
        buf.put_u16(self.packet_id.get());
        if v.is_v5() {
            self.properties.encode(buf);
        }
        for s in &self.subscriptions {
            put_prefixed(buf, s.filter.as_bytes());
            buf.put_u8(s.options.to_byte());
        }
    }
}
