//! SUBACK (MQTT 5.0 §3.9, 3.1.1 §3.9).

use super::{read_packet_id, v5_only, PacketBody};
use crate::codec::Reader;
use crate::error::{DecodeError, EncodeError};
use crate::property::AckProperties;
use crate::reason::SubAckReasonCode;
use crate::{PacketId, PacketType, ProtocolVersion};
use alloc::vec::Vec;
use bytes::BufMut;

/// The answer to SUBSCRIBE: one reason code per requested subscription, in
/// order. A 3.1.1 peer understands only 0x00, 0x01, 0x02 and 0x80.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Identifier of the SUBSCRIBE (MQTT-2.2.1-6).
    pub packet_id: PacketId,
    /// One code per subscription.
    pub reason_codes: Vec<SubAckReasonCode>,
    /// 5.0 properties.
    pub properties: AckProperties,
}

impl SubAck {
    /// A SUBACK with `reason_codes`.
    pub fn new(packet_id: PacketId, reason_codes: Vec<SubAckReasonCode>) -> Self {
        SubAck {
            packet_id,
            reason_codes,
            properties: AckProperties::default(),
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>, v: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(r)?;
        let properties = if v.is_v5() {
            AckProperties::decode(r)?
        } else {
            AckProperties::default()
        };
        let mut reason_codes = Vec::with_capacity(r.remaining());
        while !r.is_empty() {
            let code = r.u8()?;
            let rc = SubAckReasonCode::from_code(code)
                .filter(|c| v.is_v5() || c.in_v3())
                .ok_or(DecodeError::InvalidReasonCode {
                    packet: PacketType::SubAck,
                    code,
                })?;
            reason_codes.push(rc);
        }
        if reason_codes.is_empty() {
            return Err(DecodeError::EmptyPayload {
                packet: PacketType::SubAck,
            });
        }
        Ok(SubAck {
            packet_id,
            reason_codes,
            properties,
        })
    }
}

impl PacketBody for SubAck {
    const TYPE: PacketType = PacketType::SubAck;

    fn validate(&self, v: ProtocolVersion) -> Result<(), EncodeError> {
        if self.reason_codes.is_empty() {
            return Err(EncodeError::EmptyPayload {
                packet: PacketType::SubAck,
            });
        }
        v5_only(v, !self.properties.is_empty(), "SUBACK properties")?;
        v5_only(
            v,
            self.reason_codes.iter().any(|c| !c.in_v3()),
            "this SUBACK reason code",
        )?;
        self.properties.validate()
    }

    fn body_len(&self, v: ProtocolVersion) -> usize {
        let props = if v.is_v5() {
            self.properties.wire_len()
        } else {
            0
        };
        2 + props + self.reason_codes.len()
    }

    fn write_body<B: BufMut>(&self, v: ProtocolVersion, buf: &mut B) {
        buf.put_u16(self.packet_id.get());
        if v.is_v5() {
            self.properties.encode(buf);
        }
        for c in &self.reason_codes {
            buf.put_u8(c.code());
        }
    }
}
