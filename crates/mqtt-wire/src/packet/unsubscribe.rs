//! UNSUBSCRIBE (MQTT 5.0 §3.10, 3.1.1 §3.10).

use super::{read_packet_id, v5_only, PacketBody};
use crate::codec::{put_prefixed, Reader};
use crate::error::{DecodeError, EncodeError};
use crate::property::UnsubscribeProperties;
use crate::topic::check_topic_filter;
use crate::{PacketId, PacketType, ProtocolVersion, TopicFilter};
use alloc::vec::Vec;
use bytes::BufMut;

/// A request to remove subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet Identifier, echoed by the UNSUBACK.
    pub packet_id: PacketId,
    /// The filters, at least one (MQTT-3.10.3-2).
    pub filters: Vec<TopicFilter>,
    /// 5.0 properties.
    pub properties: UnsubscribeProperties,
}

impl Unsubscribe {
    /// An UNSUBSCRIBE for one filter.
    pub fn new(packet_id: PacketId, filter: TopicFilter) -> Self {
        Unsubscribe {
            packet_id,
            filters: alloc::vec![filter],
            properties: UnsubscribeProperties::default(),
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>, v: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(r)?;
        let properties = if v.is_v5() {
            UnsubscribeProperties::decode(r)?
        } else {
            UnsubscribeProperties::default()
        };
        let mut filters = Vec::new();
        while !r.is_empty() {
            let b = r.binary()?;
            check_topic_filter(&b).map_err(DecodeError::InvalidTopicFilter)?;
            filters.push(TopicFilter::from_checked(b));
        }
        if filters.is_empty() {
            return Err(DecodeError::EmptyPayload {
                packet: PacketType::Unsubscribe,
            });
        }
        Ok(Unsubscribe {
            packet_id,
            filters,
            properties,
        })
    }
}

impl PacketBody for Unsubscribe {
    const TYPE: PacketType = PacketType::Unsubscribe;

    fn validate(&self, v: ProtocolVersion) -> Result<(), EncodeError> {
        if self.filters.is_empty() {
            return Err(EncodeError::EmptyPayload {
                packet: PacketType::Unsubscribe,
            });
        }
        v5_only(v, !self.properties.is_empty(), "UNSUBSCRIBE properties")?;
        self.properties.validate()
    }

    fn body_len(&self, v: ProtocolVersion) -> usize {
        let props = if v.is_v5() {
            self.properties.wire_len()
        } else {
            0
        };
        2 + props + self.filters.iter().map(|f| 2 + f.len()).sum::<usize>()
    }

    fn write_body<B: BufMut>(&self, v: ProtocolVersion, buf: &mut B) {
        buf.put_u16(self.packet_id.get());
        if v.is_v5() {
            self.properties.encode(buf);
        }
        for f in &self.filters {
            put_prefixed(buf, f.as_bytes());
        }
    }
}
