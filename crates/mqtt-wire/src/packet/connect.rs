//! CONNECT (MQTT 5.0 §3.1, 3.1.1 §3.1, 3.1 §3.1).

use super::{v5_only, PacketBody};
use crate::codec::{put_prefixed, Reader};
use crate::error::{DecodeError, EncodeError};
use crate::property::{check_binary, ConnectProperties, WillProperties};
use crate::{MqttString, PacketType, ProtocolVersion, QoS, TopicError, TopicName};
use bytes::{BufMut, Bytes};

/// The first packet of a connection. It announces the protocol version, so
/// it is decoded whatever version the decoder was set to, and encoded as
/// `protocol` says (the version passed to `encode` is not used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Protocol name and level: `MQIsdp`/3, `MQTT`/4 or `MQTT`/5.
    pub protocol: ProtocolVersion,
    /// Clean Start (5.0) / Clean Session (3.1.1).
    pub clean_start: bool,
    /// Keep Alive in seconds (0: off).
    pub keep_alive: u16,
    /// Client Identifier (may be empty: the server assigns one or refuses).
    pub client_id: MqttString,
    /// The Will Message, when the Will Flag is set.
    pub will: Option<LastWill>,
    /// User Name.
    pub username: Option<MqttString>,
    /// Password (3.1.1 requires a user name with it, MQTT-3.1.2-22).
    pub password: Option<Bytes>,
    /// 5.0 properties.
    pub properties: ConnectProperties,
}

/// The Will Message of a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    /// Will Topic.
    pub topic: TopicName,
    /// Will Payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will Retain.
    pub retain: bool,
    /// 5.0 Will Properties.
    pub properties: WillProperties,
}

impl LastWill {
    /// A QoS 0, non-retained will.
    pub fn new(topic: TopicName, payload: Bytes) -> Self {
        LastWill {
            topic,
            payload,
            qos: QoS::AtMostOnce,
            retain: false,
            properties: WillProperties::default(),
        }
    }
}

impl Connect {
    /// A CONNECT for `protocol` with clean start, keep alive 60 s, and
    /// nothing else.
    pub fn new(protocol: ProtocolVersion, client_id: MqttString) -> Self {
        Connect {
            protocol,
            clean_start: true,
            keep_alive: 60,
            client_id,
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties::default(),
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let name = r.binary()?;
        let level = r.u8()?;
        let protocol = match (&name[..], level) {
            (b"MQTT", 4) => ProtocolVersion::V3_1_1,
            (b"MQTT", 5) => ProtocolVersion::V5,
            (b"MQIsdp", 3) => ProtocolVersion::V3_1,
            (b"MQTT", _) | (b"MQIsdp", _) => {
                return Err(DecodeError::UnsupportedProtocol { level })
            }
            _ => return Err(DecodeError::UnsupportedProtocol { level: 0 }),
        };
        let v5 = protocol.is_v5();
        let flags = r.u8()?;
        if flags & 0x01 != 0 {
            return Err(DecodeError::ConnectReservedFlag);
        }
        let clean_start = flags & 0x02 != 0;
        let will_flag = flags & 0x04 != 0;
        let will_qos = (flags >> 3) & 0b11;
        let will_retain = flags & 0x20 != 0;
        let password_flag = flags & 0x40 != 0;
        let username_flag = flags & 0x80 != 0;
        if !will_flag && (will_qos != 0 || will_retain) {
            return Err(DecodeError::WillFlagsWithoutWill);
        }
        let will_qos = QoS::from_u8(will_qos).ok_or(DecodeError::InvalidWillQoS)?;
        if password_flag && !username_flag && !v5 {
            return Err(DecodeError::PasswordWithoutUsername);
        }
        let keep_alive = r.u16()?;
        let properties = if v5 {
            ConnectProperties::decode(r)?
        } else {
            ConnectProperties::default()
        };
        if properties.authentication_data.is_some() && properties.authentication_method.is_none() {
            return Err(DecodeError::AuthDataWithoutMethod);
        }
        // Payload order: MQTT-3.1.3-1.
        let client_id = r.string()?;
        let will = if will_flag {
            let properties = if v5 {
                WillProperties::decode(r)?
            } else {
                WillProperties::default()
            };
            let topic = r
                .topic_name()?
                .ok_or(DecodeError::InvalidTopicName(TopicError::Empty))?;
            let payload = r.binary()?;
            Some(LastWill {
                topic,
                payload,
                qos: will_qos,
                retain: will_retain,
                properties,
            })
        } else {
            None
        };
        let username = if username_flag {
            Some(r.string()?)
        } else {
            None
        };
        let password = if password_flag {
            Some(r.binary()?)
        } else {
            None
        };
        r.finish()?;
        Ok(Connect {
            protocol,
            clean_start,
            keep_alive,
            client_id,
            will,
            username,
            password,
            properties,
        })
    }
}

impl PacketBody for Connect {
    const TYPE: PacketType = PacketType::Connect;

    fn validate(&self, _: ProtocolVersion) -> Result<(), EncodeError> {
        let v = self.protocol;
        v5_only(v, !self.properties.is_empty(), "CONNECT properties")?;
        self.properties.validate()?;
        if let Some(w) = &self.will {
            v5_only(v, !w.properties.is_empty(), "will properties")?;
            w.properties.validate()?;
            check_binary("will payload", &w.payload)?;
        }
        if let Some(p) = &self.password {
            check_binary("password", p)?;
            if self.username.is_none() && !v.is_v5() {
                return Err(EncodeError::PasswordWithoutUsername);
            }
        }
        Ok(())
    }

    fn body_len(&self, _: ProtocolVersion) -> usize {
        let v = self.protocol;
        let mut n = 2 + v.protocol_name().len() + 1 + 1 + 2;
        if v.is_v5() {
            n += self.properties.wire_len();
        }
        n += 2 + self.client_id.len();
        if let Some(w) = &self.will {
            if v.is_v5() {
                n += w.properties.wire_len();
            }
            n += 2 + w.topic.len() + 2 + w.payload.len();
        }
        n += self.username.as_ref().map_or(0, |u| 2 + u.len());
        n += self.password.as_ref().map_or(0, |p| 2 + p.len());
        n
    }

    fn write_body<B: BufMut>(&self, _: ProtocolVersion, buf: &mut B) {
        let v = self.protocol;
        put_prefixed(buf, v.protocol_name().as_bytes());
        buf.put_u8(v.level());
        let mut flags = 0u8;
        if self.clean_start {
            flags |= 0x02;
        }
        if let Some(w) = &self.will {
            flags |= 0x04 | ((w.qos as u8) << 3);
            if w.retain {
                flags |= 0x20;
            }
        }
        if self.password.is_some() {
            flags |= 0x40;
        }
        if self.username.is_some() {
            flags |= 0x80;
        }
        buf.put_u8(flags);
        buf.put_u16(self.keep_alive);
        if v.is_v5() {
            self.properties.encode(buf);
        }
        put_prefixed(buf, self.client_id.as_bytes());
        if let Some(w) = &self.will {
            if v.is_v5() {
                w.properties.encode(buf);
            }
            put_prefixed(buf, w.topic.as_bytes());
            put_prefixed(buf, &w.payload);
        }
        if let Some(u) = &self.username {
            put_prefixed(buf, u.as_bytes());
        }
        if let Some(p) = &self.password {
            put_prefixed(buf, p);
        }
    }
}
