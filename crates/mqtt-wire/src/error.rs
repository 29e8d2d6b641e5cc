//! Decode and encode errors.
//!
//! A [`DecodeError`] says who broke which rule (with the spec statement id
//! where the spec numbers it) and maps to the MQTT 5.0 reason code to put in
//! the DISCONNECT or CONNACK that answers it. An [`EncodeError`] is a misuse
//! of the API by the caller: nothing has been written when it is returned.

use crate::property::PropertyId;
use crate::reason::{ConnectReasonCode, DisconnectReasonCode};
use crate::string::StringError;
use crate::topic::TopicError;
use crate::{PacketType, ProtocolVersion};
use core::fmt;

/// Why received bytes are not a valid MQTT packet.
///
/// After an error the connection must be closed (with a DISCONNECT carrying
/// [`reason_code`](Self::reason_code) in 5.0); the stream cannot be
/// resynchronised.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// The packet's declared size exceeds the configured maximum. Detected
    /// from the fixed header alone, before the body is buffered.
    PacketTooLarge {
        /// Total size the fixed header declares (header included).
        size: usize,
        /// The configured maximum packet size.
        max: u32,
    },
    /// A Variable Byte Integer runs over four bytes (MQTT 5.0 §1.5.5).
    MalformedVariableByteInteger,
    /// A Variable Byte Integer uses more bytes than its value needs
    /// (MQTT-1.5.5-1).
    NonMinimalVariableByteInteger,
    /// Packet type 0, or 15 (AUTH) before MQTT 5.0: reserved.
    ReservedPacketType(u8),
    /// Fixed-header flags differ from the table (MQTT-2.1.3-1,
    /// MQTT-2.2.2-1, MQTT-3.6.1-1, MQTT-3.8.1-1, MQTT-3.10.1-1,
    /// MQTT-3.14.1-1, MQTT-3.15.1-1).
    InvalidFlags {
        /// The packet type.
        packet: PacketType,
        /// The four flag bits received.
        flags: u8,
    },
    /// PUBLISH with both QoS bits set (MQTT-3.3.1-4).
    InvalidQoS,
    /// PUBLISH with DUP set at QoS 0 (MQTT-3.3.1-2).
    DupWithQoS0,
    /// The packet ended before a field it must hold.
    UnexpectedEnd {
        /// The packet type.
        packet: PacketType,
    },
    /// Bytes left over after the last field of the packet.
    TrailingBytes {
        /// The packet type.
        packet: PacketType,
    },
    /// A string field breaks the UTF-8 Encoded String rules (MQTT-1.5.4-1,
    /// MQTT-1.5.4-2, MQTT-1.5.7-1).
    InvalidString(StringError),
    /// The Topic Name of a PUBLISH, a Will Topic or a Response Topic is not
    /// a valid Topic Name (MQTT-3.3.2-1, MQTT-3.3.2-2, MQTT-4.7.3-1).
    InvalidTopicName(TopicError),
    /// A Topic Filter of a SUBSCRIBE or UNSUBSCRIBE is not valid
    /// (MQTT-3.8.3-1, MQTT-3.10.3-1, MQTT-4.7.1-1, MQTT-4.7.1-2).
    InvalidTopicFilter(TopicError),
    /// A 5.0 PUBLISH has an empty Topic Name and no Topic Alias.
    MissingTopic,
    /// Packet Identifier 0 where a non-zero one is required (MQTT-2.3.1-1).
    ZeroPacketId,
    /// CONNECT names a protocol or level this crate does not speak.
    UnsupportedProtocol {
        /// The Protocol Level byte, when the name was recognised far enough
        /// to read it (0 otherwise).
        level: u8,
    },
    /// CONNECT reserved flag bit 0 is set (MQTT-3.1.2-3).
    ConnectReservedFlag,
    /// Will QoS or Will Retain set while the Will Flag is 0 (MQTT-3.1.2-11,
    /// MQTT-3.1.2-13, MQTT-3.1.2-15 in 3.1.1).
    WillFlagsWithoutWill,
    /// Will QoS 3 (MQTT-3.1.2-12; MQTT-3.1.2-14 in 3.1.1).
    InvalidWillQoS,
    /// Password Flag set without the User Name Flag before 5.0
    /// (MQTT-3.1.2-22 of 3.1.1).
    PasswordWithoutUsername,
    /// CONNACK Acknowledge Flags bits 7..1 are not 0 (MQTT-3.2.2-1).
    InvalidConnAckFlags,
    /// A reason code or return code outside the packet's list
    /// (MQTT-3.2.2-8, MQTT-3.4.2-1, MQTT-3.5.2-1, MQTT-3.6.2-1, MQTT-3.7.2-1,
    /// MQTT-3.9.3-2, MQTT-3.11.3-2, MQTT-3.14.2-1, MQTT-3.15.2-1).
    InvalidReasonCode {
        /// The packet type.
        packet: PacketType,
        /// The byte received.
        code: u8,
    },
    /// A SUBSCRIBE, SUBACK, UNSUBSCRIBE or UNSUBACK (5.0) without a single
    /// entry (MQTT-3.8.3-2, MQTT-3.8.3-3, MQTT-3.10.3-2).
    EmptyPayload {
        /// The packet type.
        packet: PacketType,
    },
    /// Subscription Options with reserved bits set or QoS 3 (MQTT-3.8.3-5;
    /// MQTT-3.8.3-4 in 3.1.1).
    InvalidSubscriptionOptions(u8),
    /// Retain Handling 3 in Subscription Options (a Protocol Error).
    InvalidRetainHandling,
    /// An identifier that is not one of the 27 MQTT 5.0 properties.
    UnknownProperty(u32),
    /// A property the packet may not carry.
    PropertyNotAllowed {
        /// The property.
        property: PropertyId,
        /// The packet type.
        packet: PacketType,
    },
    /// A property that may appear once appears again.
    DuplicateProperty(PropertyId),
    /// A property value outside its range (e.g. Receive Maximum 0, Topic
    /// Alias 0 (MQTT-3.3.2-8), a byte flag other than 0 or 1).
    InvalidPropertyValue(PropertyId),
    /// Authentication Data without an Authentication Method.
    AuthDataWithoutMethod,
}

impl DecodeError {
    /// The statement id of the rule broken, where the spec numbers it.
    pub fn spec_id(&self) -> Option<&'static str> {
        use DecodeError::*;
        Some(match self {
            NonMinimalVariableByteInteger => "MQTT-1.5.5-1",
            InvalidFlags { packet, .. } => match packet {
                PacketType::PubRel => "MQTT-3.6.1-1",
                PacketType::Subscribe => "MQTT-3.8.1-1",
                PacketType::Unsubscribe => "MQTT-3.10.1-1",
                PacketType::Disconnect => "MQTT-3.14.1-1",
                PacketType::Auth => "MQTT-3.15.1-1",
                _ => "MQTT-2.1.3-1",
            },
            InvalidQoS => "MQTT-3.3.1-4",
            DupWithQoS0 => "MQTT-3.3.1-2",
            InvalidString(e) => e.spec_id(),
            InvalidTopicName(e) | InvalidTopicFilter(e) => e.spec_id(),
            ZeroPacketId => "MQTT-2.3.1-1",
            UnsupportedProtocol { .. } => "MQTT-3.1.2-2",
            ConnectReservedFlag => "MQTT-3.1.2-3",
            WillFlagsWithoutWill => "MQTT-3.1.2-11",
            InvalidWillQoS => "MQTT-3.1.2-12",
            PasswordWithoutUsername => "MQTT-3.1.2-22",
            InvalidConnAckFlags => "MQTT-3.2.2-1",
            InvalidReasonCode { packet, .. } => match packet {
                PacketType::ConnAck => "MQTT-3.2.2-8",
                PacketType::PubAck => "MQTT-3.4.2-1",
                PacketType::PubRec => "MQTT-3.5.2-1",
                PacketType::PubRel => "MQTT-3.6.2-1",
                PacketType::PubComp => "MQTT-3.7.2-1",
                PacketType::SubAck => "MQTT-3.9.3-2",
                PacketType::UnsubAck => "MQTT-3.11.3-2",
                PacketType::Disconnect => "MQTT-3.14.2-1",
                PacketType::Auth => "MQTT-3.15.2-1",
                _ => return None,
            },
            EmptyPayload { packet } => match packet {
                PacketType::Subscribe => "MQTT-3.8.3-2",
                PacketType::Unsubscribe => "MQTT-3.10.3-2",
                _ => return None,
            },
            InvalidSubscriptionOptions(_) => "MQTT-3.8.3-5",
            InvalidPropertyValue(PropertyId::TopicAlias) => "MQTT-3.3.2-8",
            _ => return None,
        })
    }

    /// The MQTT 5.0 reason code to send in the DISCONNECT that closes the
    /// connection because of this error.
    pub fn reason_code(&self) -> DisconnectReasonCode {
        use DecodeError::*;
        match self {
            PacketTooLarge { .. } => DisconnectReasonCode::PacketTooLarge,
            InvalidTopicName(_) | MissingTopic => DisconnectReasonCode::TopicNameInvalid,
            InvalidTopicFilter(_) => DisconnectReasonCode::TopicFilterInvalid,
            InvalidPropertyValue(PropertyId::TopicAlias) => DisconnectReasonCode::TopicAliasInvalid,
            ZeroPacketId
            | EmptyPayload { .. }
            | InvalidRetainHandling
            | DuplicateProperty(_)
            | InvalidPropertyValue(_)
            | AuthDataWithoutMethod => DisconnectReasonCode::ProtocolError,
            // A CONNECT problem is answered by a CONNACK, but a DISCONNECT
            // code is still asked for by callers that only hold this error.
            UnsupportedProtocol { .. } => DisconnectReasonCode::ProtocolError,
            _ => DisconnectReasonCode::MalformedPacket,
        }
    }

    /// The MQTT 5.0 CONNACK reason code for this error, when it was found
    /// in a CONNECT.
    pub fn connect_reason_code(&self) -> ConnectReasonCode {
        match self {
            DecodeError::UnsupportedProtocol { .. } => {
                ConnectReasonCode::UnsupportedProtocolVersion
            }
            DecodeError::PacketTooLarge { .. } => ConnectReasonCode::PacketTooLarge,
            DecodeError::InvalidTopicName(_) => ConnectReasonCode::TopicNameInvalid,
            e if e.reason_code() == DisconnectReasonCode::ProtocolError => {
                ConnectReasonCode::ProtocolError
            }
            _ => ConnectReasonCode::MalformedPacket,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DecodeError::*;
        match self {
            PacketTooLarge { size, max } => {
                write!(f, "packet of {size} bytes exceeds the maximum of {max}")?
            }
            MalformedVariableByteInteger => {
                f.write_str("variable byte integer longer than 4 bytes")?
            }
            NonMinimalVariableByteInteger => {
                f.write_str("variable byte integer not in its shortest form")?
            }
            ReservedPacketType(t) => write!(f, "reserved packet type {t}")?,
            InvalidFlags { packet, flags } => {
                write!(f, "invalid fixed header flags {flags:#06b} for {packet:?}")?
            }
            InvalidQoS => f.write_str("PUBLISH with QoS 3")?,
            DupWithQoS0 => f.write_str("PUBLISH with DUP set at QoS 0")?,
            UnexpectedEnd { packet } => write!(f, "{packet:?} ended before its last field")?,
            TrailingBytes { packet } => write!(f, "bytes left over at the end of {packet:?}")?,
            InvalidString(e) => return write!(f, "{e}"),
            InvalidTopicName(e) => return write!(f, "invalid topic name: {e}"),
            InvalidTopicFilter(e) => return write!(f, "invalid topic filter: {e}"),
            MissingTopic => f.write_str("PUBLISH with an empty topic name and no topic alias")?,
            ZeroPacketId => f.write_str("packet identifier 0")?,
            UnsupportedProtocol { level } => {
                write!(f, "unsupported protocol name or level {level}")?
            }
            ConnectReservedFlag => f.write_str("CONNECT reserved flag is set")?,
            WillFlagsWithoutWill => f.write_str("will QoS or retain set without the will flag")?,
            InvalidWillQoS => f.write_str("will QoS 3")?,
            PasswordWithoutUsername => f.write_str("password flag set without user name flag")?,
            InvalidConnAckFlags => f.write_str("CONNACK reserved flag bits are set")?,
            InvalidReasonCode { packet, code } => {
                write!(f, "reason code {code:#04x} is not valid in {packet:?}")?
            }
            EmptyPayload { packet } => write!(f, "{packet:?} without a single entry")?,
            InvalidSubscriptionOptions(b) => {
                write!(f, "invalid subscription options byte {b:#04x}")?
            }
            InvalidRetainHandling => f.write_str("retain handling 3")?,
            UnknownProperty(id) => write!(f, "unknown property identifier {id:#04x}")?,
            PropertyNotAllowed { property, packet } => {
                write!(f, "property {property:?} is not allowed in {packet:?}")?
            }
            DuplicateProperty(p) => write!(f, "property {p:?} appears more than once")?,
            InvalidPropertyValue(p) => write!(f, "invalid value for property {p:?}")?,
            AuthDataWithoutMethod => {
                f.write_str("authentication data without an authentication method")?
            }
        }
        match self.spec_id() {
            Some(id) => write!(f, " ({id})"),
            None => Ok(()),
        }
    }
}

impl core::error::Error for DecodeError {}

impl From<StringError> for DecodeError {
    fn from(e: StringError) -> Self {
        DecodeError::InvalidString(e)
    }
}

/// Why a packet cannot be encoded. Nothing was written.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncodeError {
    /// The encoded packet would be larger than the limit given to a checked
    /// encode (the peer's Maximum Packet Size).
    PacketTooLarge {
        /// Size of the encoded packet.
        size: usize,
        /// The limit.
        max: u32,
    },
    /// The Remaining Length would exceed 268,435,455.
    RemainingLengthTooLarge(usize),
    /// The buffer cannot take the whole packet.
    BufferTooSmall {
        /// Bytes the packet needs.
        needed: usize,
        /// Bytes the buffer has room for.
        remaining: usize,
    },
    /// The packet holds content the protocol version cannot carry (5.0
    /// properties, reason codes or subscription options for a 3.1.1 peer,
    /// AUTH before 5.0, ...). Refused rather than dropped.
    NotInVersion {
        /// What cannot be carried.
        what: &'static str,
        /// The version asked for.
        version: ProtocolVersion,
    },
    /// A binary field (password, will payload, correlation data,
    /// authentication data) is longer than 65,535 bytes.
    BinaryTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// A PUBLISH without a topic name and without a topic alias.
    MissingTopic,
    /// DUP set on a QoS 0 PUBLISH (MQTT-3.3.1-2).
    DupWithQoS0,
    /// A SUBSCRIBE, UNSUBSCRIBE or SUBACK with no entries (MQTT-3.8.3-2,
    /// MQTT-3.10.3-2), or a 5.0 UNSUBACK with no reason codes.
    EmptyPayload {
        /// The packet type.
        packet: PacketType,
    },
    /// A password without a user name, which 3.1.1 forbids (MQTT-3.1.2-22).
    PasswordWithoutUsername,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use EncodeError::*;
        match self {
            PacketTooLarge { size, max } => {
                write!(
                    f,
                    "packet of {size} bytes exceeds the peer's maximum of {max}"
                )
            }
            RemainingLengthTooLarge(n) => {
                write!(f, "remaining length {n} exceeds 268435455")
            }
            BufferTooSmall { needed, remaining } => {
                write!(
                    f,
                    "buffer has room for {remaining} bytes, the packet needs {needed}"
                )
            }
            NotInVersion { what, version } => write!(f, "{what} cannot be sent in {version}"),
            BinaryTooLong { field, len } => {
                write!(f, "{field} of {len} bytes is longer than 65535")
            }
            MissingTopic => f.write_str("PUBLISH has neither a topic name nor a topic alias"),
            DupWithQoS0 => f.write_str("DUP set on a QoS 0 PUBLISH (MQTT-3.3.1-2)"),
            EmptyPayload { packet } => write!(f, "{packet:?} without a single entry"),
            PasswordWithoutUsername => {
                f.write_str("password without user name before MQTT 5.0 (MQTT-3.1.2-22)")
            }
        }
    }
}

impl core::error::Error for EncodeError {}
