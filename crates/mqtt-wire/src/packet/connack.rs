//! CONNACK (MQTT 5.0 §3.2, 3.1.1 §3.2).

use super::{v5_only, PacketBody};
use crate::codec::Reader;
use crate::error::{DecodeError, EncodeError};
use crate::property::ConnAckProperties;
use crate::reason::ConnectReasonCode;
use crate::{PacketType, ProtocolVersion};
use bytes::BufMut;

/// The server's answer to CONNECT.
///
/// For 3.1.1 and 3.1 the reason code is the Connect Return Code, mapped as
/// [`ConnectReasonCode`] documents; a code without a 3.1.1 equivalent is
/// refused on encode (use [`ConnectReasonCode::v3_equivalent`] first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Session Present.
    pub session_present: bool,
    /// Connect Reason Code / Return Code.
    pub reason_code: ConnectReasonCode,
    /// 5.0 properties.
    pub properties: ConnAckProperties,
}

impl ConnAck {
    /// A CONNACK with `reason_code`, no session present, no properties.
    pub fn new(reason_code: ConnectReasonCode) -> Self {
        ConnAck {
            session_present: false,
            reason_code,
            properties: ConnAckProperties::default(),
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>, v: ProtocolVersion) -> Result<Self, DecodeError> {
        let flags = r.u8()?;
        if flags & 0xfe != 0 {
            return Err(DecodeError::InvalidConnAckFlags);
        }
        let code = r.u8()?;
        let reason_code = if v.is_v5() {
            ConnectReasonCode::from_code(code)
        } else {
            ConnectReasonCode::from_v3(code)
        }
        .ok_or(DecodeError::InvalidReasonCode {
            packet: PacketType::ConnAck,
            code,
        })?;
        let properties = if v.is_v5() {
            ConnAckProperties::decode(r)?
        } else {
            ConnAckProperties::default()
        };
        if properties.authentication_data.is_some() && properties.authentication_method.is_none() {
            return Err(DecodeError::AuthDataWithoutMethod);
        }
        r.finish()?;
        Ok(ConnAck {
            session_present: flags & 1 != 0,
            reason_code,
            properties,
        })
    }
}

impl PacketBody for ConnAck {
    const TYPE: PacketType = PacketType::ConnAck;

    fn validate(&self, v: ProtocolVersion) -> Result<(), EncodeError> {
        v5_only(
            v,
            self.reason_code.to_v3().is_none(),
            "this CONNACK reason code",
        )?;
        v5_only(v, !self.properties.is_empty(), "CONNACK properties")?;
        self.properties.validate()
    }

    fn body_len(&self, v: ProtocolVersion) -> usize {
        2 + if v.is_v5() {
            self.properties.wire_len()
        } else {
            0
        }
    }

    fn write_body<B: BufMut>(&self, v: ProtocolVersion, buf: &mut B) {
        buf.put_u8(u8::from(self.session_present));
        if v.is_v5() {
            buf.put_u8(self.reason_code.code());
            self.properties.encode(buf);
        } else {
            // validate() refused codes without a 3.1.1 value.
            buf.put_u8(self.reason_code.to_v3().unwrap_or(3));
        }
    }
}
