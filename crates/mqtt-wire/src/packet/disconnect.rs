//! DISCONNECT (MQTT 5.0 §3.14, 3.1.1 §3.14).

use super::{v5_only, PacketBody};
use crate::codec::Reader;
use crate::error::{DecodeError, EncodeError};
use crate::property::DisconnectProperties;
use crate::reason::DisconnectReasonCode;
use crate::{PacketType, ProtocolVersion};
use bytes::BufMut;

/// The last packet of a connection. In 3.1.1 only the client sends it and
/// it carries nothing: only `NormalDisconnection` without properties can be
/// encoded for such a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// Reason code (5.0).
    pub reason_code: DisconnectReasonCode,
    /// Properties (5.0).
    pub properties: DisconnectProperties,
}

impl Disconnect {
    /// A DISCONNECT with `reason_code` and no properties.
    pub fn new(reason_code: DisconnectReasonCode) -> Self {
        Disconnect {
            reason_code,
            properties: DisconnectProperties::default(),
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>, v: ProtocolVersion) -> Result<Self, DecodeError> {
        let mut p = Disconnect::new(DisconnectReasonCode::NormalDisconnection);
        if v.is_v5() && !r.is_empty() {
            let code = r.u8()?;
            p.reason_code =
                DisconnectReasonCode::from_code(code).ok_or(DecodeError::InvalidReasonCode {
                    packet: PacketType::Disconnect,
                    code,
                })?;
            if !r.is_empty() {
                p.properties = DisconnectProperties::decode(r)?;
            }
        }
        r.finish()?;
        Ok(p)
    }
}

impl Default for Disconnect {
    fn default() -> Self {
        Disconnect::new(DisconnectReasonCode::NormalDisconnection)
    }
}

impl PacketBody for Disconnect {
    const TYPE: PacketType = PacketType::Disconnect;

    fn validate(&self, v: ProtocolVersion) -> Result<(), EncodeError> {
        let other = self.reason_code != DisconnectReasonCode::NormalDisconnection;
        v5_only(v, other, "a DISCONNECT reason code")?;
        v5_only(v, !self.properties.is_empty(), "DISCONNECT properties")?;
        self.properties.validate()
    }

    fn body_len(&self, v: ProtocolVersion) -> usize {
        if !v.is_v5() {
            0
        } else if self.properties.is_empty() {
            usize::from(self.reason_code != DisconnectReasonCode::NormalDisconnection)
        } else {
            1 + self.properties.wire_len()
        }
    }

    fn write_body<B: BufMut>(&self, v: ProtocolVersion, buf: &mut B) {
        if self.body_len(v) > 0 {
            buf.put_u8(self.reason_code.code());
            if !self.properties.is_empty() {
                self.properties.encode(buf);
            }
        }
    }
}
