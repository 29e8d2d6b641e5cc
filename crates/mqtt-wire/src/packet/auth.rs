//! AUTH (MQTT 5.0 §3.15): enhanced authentication exchanges. 5.0 only.

use super::{v5_only, PacketBody};
use crate::codec::Reader;
use crate::error::{DecodeError, EncodeError};
use crate::property::AuthProperties;
use crate::reason::AuthReasonCode;
use crate::{PacketType, ProtocolVersion};
use bytes::BufMut;

/// One step of an enhanced authentication exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Reason code.
    pub reason_code: AuthReasonCode,
    /// Properties (Authentication Method and Data).
    pub properties: AuthProperties,
}

impl Auth {
    /// An AUTH with `reason_code` and no properties.
    pub fn new(reason_code: AuthReasonCode) -> Self {
        Auth {
            reason_code,
            properties: AuthProperties::default(),
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>, _: ProtocolVersion) -> Result<Self, DecodeError> {
        let mut p = Auth::new(AuthReasonCode::Success);
        if !r.is_empty() {
            let code = r.u8()?;
            p.reason_code =
                AuthReasonCode::from_code(code).ok_or(DecodeError::InvalidReasonCode {
                    packet: PacketType::Auth,
                    code,
                })?;
            if !r.is_empty() {
                p.properties = AuthProperties::decode(r)?;
            }
        }
        if p.properties.authentication_data.is_some()
            && p.properties.authentication_method.is_none()
        {
            return Err(DecodeError::AuthDataWithoutMethod);
        }
        r.finish()?;
        Ok(p)
    }
}

impl PacketBody for Auth {
    const TYPE: PacketType = PacketType::Auth;

    fn validate(&self, v: ProtocolVersion) -> Result<(), EncodeError> {
        v5_only(v, true, "AUTH")?;
        self.properties.validate()
    }

    fn body_len(&self, _: ProtocolVersion) -> usize {
        if self.reason_code == AuthReasonCode::Success && self.properties.is_empty() {
            0
        } else {
            1 + self.properties.wire_len()
        }
    }

    fn write_body<B: BufMut>(&self, v: ProtocolVersion, buf: &mut B) {
        if self.body_len(v) > 0 {
            buf.put_u8(self.reason_code.code());
            self.properties.encode(buf);
        }
    }
}
