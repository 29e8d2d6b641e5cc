//! UNSUBACK (MQTT 5.0 §3.11, 3.1.1 §3.11).

use super::{read_packet_id, v5_only, PacketBody};
use crate::codec::Reader;
use crate::error::{DecodeError, EncodeError};
use crate::property::AckProperties;
use crate::reason::UnsubAckReasonCode;
use crate::{PacketId, PacketType, ProtocolVersion};
use alloc::vec::Vec;
use bytes::BufMut;

/// The answer to UNSUBSCRIBE.
///
/// In 5.0 it carries one reason code per filter. A 3.1.1 UNSUBACK carries
/// none: it means every filter was handled. So for 3.1.1 `reason_codes`
/// decodes empty, and encodes only when every code is `Success` (which the
/// 3.1.1 packet says by itself); any other code is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// Identifier of the UNSUBSCRIBE (MQTT-2.2.1-6).
    pub packet_id: PacketId,
    /// One code per filter (5.0).
    pub reason_codes: Vec<UnsubAckReasonCode>,
    /// 5.0 properties.
    pub properties: AckProperties,
}

impl UnsubAck {
    /// An UNSUBACK with `reason_codes`.
    pub fn new(packet_id: PacketId, reason_codes: Vec<UnsubAckReasonCode>) -> Self {
        UnsubAck {
            packet_id,
            reason_codes,
            properties: AckProperties::default(),
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>, v: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(r)?;
        let mut p = UnsubAck::new(packet_id, Vec::new());
        if v.is_v5() {
            p.properties = AckProperties::decode(r)?;
            p.reason_codes.reserve(r.remaining());
            while !r.is_empty() {
                let code = r.u8()?;
                let rc =
                    UnsubAckReasonCode::from_code(code).ok_or(DecodeError::InvalidReasonCode {
                        packet: PacketType::UnsubAck,
                        code,
                    })?;
                p.reason_codes.push(rc);
            }
            if p.reason_codes.is_empty() {
                return Err(DecodeError::EmptyPayload {
                    packet: PacketType::UnsubAck,
                });
            }
        }
        r.finish()?;
        Ok(p)
    }
}

impl PacketBody for UnsubAck {
    const TYPE: PacketType = PacketType::UnsubAck;

    fn validate(&self, v: ProtocolVersion) -> Result<(), EncodeError> {
        if v.is_v5() && self.reason_codes.is_empty() {
            return Err(EncodeError::EmptyPayload {
                packet: PacketType::UnsubAck,
            });
        }
        v5_only(v, !self.properties.is_empty(), "UNSUBACK properties")?;
        let other = self
            .reason_codes
            .iter()
            .any(|c| *c != UnsubAckReasonCode::Success);
        v5_only(v, other, "an UNSUBACK reason code other than Success")?;
        self.properties.validate()
    }

    fn body_len(&self, v: ProtocolVersion) -> usize {
        if v.is_v5() {
            2 + self.properties.wire_len() + self.reason_codes.len()
        } else {
            2
        }
    }

    fn write_body<B: BufMut>(&self, v: ProtocolVersion, buf: &mut B) {
        buf.put_u16(self.packet_id.get());
        if v.is_v5() {
            self.properties.encode(buf);
            for c in &self.reason_codes {
                buf.put_u8(c.code());
            }
        }
    }
}
