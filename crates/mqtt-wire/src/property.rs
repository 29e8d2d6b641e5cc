//! MQTT 5.0 properties (§2.2.2): the 27 identifiers, the value types, and a
//! property struct per packet that accepts only what the spec allows there.
//!
//! A property that may appear once and appears twice is
//! [`DecodeError::DuplicateProperty`]; User Property may repeat (order kept)
//! and Subscription Identifier may repeat in PUBLISH. Repeated properties are
//! kept as the wire bytes of their run, so decoding them allocates nothing
//! when they are contiguous (the common case).

use crate::codec::{put_prefixed, put_vbi, vbi_len, Frame, Reader, MAX_VARIABLE_BYTE_INTEGER};
use crate::error::{DecodeError, EncodeError};
use crate::string::MqttString;
use crate::topic::TopicName;
use bytes::{BufMut, Bytes, BytesMut};
use core::fmt;
use core::num::{NonZeroU16, NonZeroU32};

macro_rules! property_ids {
    ($( $(#[$doc:meta])* $name:ident = $id:literal, )+) => {
        /// A property identifier (MQTT 5.0 §2.2.2.2).
        #[non_exhaustive]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum PropertyId {
            $( $(#[$doc])* $name = $id, )+
        }

        impl PropertyId {
            /// All 27 properties.
            pub const ALL: &'static [PropertyId] = &[$(PropertyId::$name),+];

            /// The identifier for a number, if it names a property.
            pub const fn from_id(id: u32) -> Option<Self> {
                match id {
                    $( $id => Some(PropertyId::$name), )+
                    _ => None,
                }
            }
        }
    };
}

property_ids! {
    /// Byte: 0 unspecified bytes, 1 UTF-8 (PUBLISH, Will).
    PayloadFormatIndicator = 0x01,
    /// Four Byte Integer, seconds (PUBLISH, Will).
    MessageExpiryInterval = 0x02,
    /// UTF-8 string (PUBLISH, Will).
    ContentType = 0x03,
    /// UTF-8 string, a Topic Name (PUBLISH, Will).
    ResponseTopic = 0x08,
    /// Binary Data (PUBLISH, Will).
    CorrelationData = 0x09,
    /// Variable Byte Integer 1..268,435,455 (PUBLISH, SUBSCRIBE).
    SubscriptionIdentifier = 0x0B,
    /// Four Byte Integer, seconds (CONNECT, CONNACK, DISCONNECT).
    SessionExpiryInterval = 0x11,
    /// UTF-8 string (CONNACK).
    AssignedClientIdentifier = 0x12,
    /// Two Byte Integer, seconds (CONNACK).
    ServerKeepAlive = 0x13,
    /// UTF-8 string (CONNECT, CONNACK, AUTH).
    AuthenticationMethod = 0x15,
    /// Binary Data (CONNECT, CONNACK, AUTH).
    AuthenticationData = 0x16,
    /// Byte 0 or 1 (CONNECT).
    RequestProblemInformation = 0x17,
    /// Four Byte Integer, seconds (Will).
    WillDelayInterval = 0x18,
    /// Byte 0 or 1 (CONNECT).
    RequestResponseInformation = 0x19,
    /// UTF-8 string (CONNACK).
    ResponseInformation = 0x1A,
    /// UTF-8 string (CONNACK, DISCONNECT).
    ServerReference = 0x1C,
    /// UTF-8 string (CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK,
    /// UNSUBACK, DISCONNECT, AUTH).
    ReasonString = 0x1F,
    /// Two Byte Integer, not 0 (CONNECT, CONNACK).
    ReceiveMaximum = 0x21,
    /// Two Byte Integer (CONNECT, CONNACK).
    TopicAliasMaximum = 0x22,
    /// Two Byte Integer, not 0 (PUBLISH).
    TopicAlias = 0x23,
    /// Byte 0 or 1 (CONNACK).
    MaximumQoS = 0x24,
    /// Byte 0 or 1 (CONNACK).
    RetainAvailable = 0x25,
    /// UTF-8 String Pair, may repeat (every packet with properties).
    UserProperty = 0x26,
    /// Four Byte Integer, not 0 (CONNECT, CONNACK).
    MaximumPacketSize = 0x27,
    /// Byte 0 or 1 (CONNACK).
    WildcardSubscriptionAvailable = 0x28,
    /// Byte 0 or 1 (CONNACK).
    SubscriptionIdentifierAvailable = 0x29,
    /// Byte 0 or 1 (CONNACK).
    SharedSubscriptionAvailable = 0x2A,
}

/// Payload Format Indicator values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum PayloadFormat {
    /// 0: unspecified bytes.
    #[default]
    Unspecified,
    /// 1: UTF-8 encoded character data.
    Utf8,
}

/// Maximum QoS a server accepts (absent means QoS 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum MaximumQoS {
    /// 0
    AtMostOnce,
    /// 1
    AtLeastOnce,
}

impl From<MaximumQoS> for crate::QoS {
    fn from(m: MaximumQoS) -> Self {
        match m {
            MaximumQoS::AtMostOnce => crate::QoS::AtMostOnce,
            MaximumQoS::AtLeastOnce => crate::QoS::AtLeastOnce,
        }
    }
}

/// A Subscription Identifier: 1 to 268,435,455.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(NonZeroU32);

impl SubscriptionId {
    /// The largest identifier.
    pub const MAX: u32 = MAX_VARIABLE_BYTE_INTEGER;

    /// An identifier, if `v` is in 1..=268,435,455.
    pub const fn new(v: u32) -> Option<Self> {
        match NonZeroU32::new(v) {
            Some(n) if v <= Self::MAX => Some(SubscriptionId(n)),
            _ => None,
        }
    }

    /// The value.
    pub const fn get(self) -> u32 {
        self.0.get()
    }
}

/// A value type that a property can hold.
pub(crate) trait PropValue: Sized {
    fn read(r: &mut Reader<'_>, id: PropertyId) -> Result<Self, DecodeError>;
    fn len(&self) -> usize;
    fn write<B: BufMut>(&self, b: &mut B);
    /// Whether the value fits its wire form (binary data: 65,535 bytes).
    fn check_encode(&self) -> Result<(), EncodeError> {
        Ok(())
    }
}

impl PropValue for u16 {
    fn read(r: &mut Reader<'_>, _: PropertyId) -> Result<Self, DecodeError> {
        r.u16()
    }
    fn len(&self) -> usize {
        2
    }
    fn write<B: BufMut>(&self, b: &mut B) {
        b.put_u16(*self)
    }
}

impl PropValue for u32 {
    fn read(r: &mut Reader<'_>, _: PropertyId) -> Result<Self, DecodeError> {
        r.u32()
    }
    fn len(&self) -> usize {
        4
    }
    fn write<B: BufMut>(&self, b: &mut B) {
        b.put_u32(*self)
    }
}

/// A Two Byte Integer that must not be 0 (Topic Alias, Receive Maximum).
// Out of line: shared by the property decoder of every packet but PUBLISH,
// whose property loop reads the value inline (passing its cursor out of
// line kept the cursor in memory: 40 instructions more per borrowed 5.0
// PUBLISH, callgrind, benches/instr.sh).
#[inline(never)]
pub(crate) fn read_nonzero_u16<F: Frame>(
    r: &mut Reader<'_, F>,
    id: PropertyId,
) -> Result<NonZeroU16, DecodeError> {
    NonZeroU16::new(r.u16()?).ok_or(DecodeError::InvalidPropertyValue(id))
}

/// A Byte that must be 0 or 1.
#[inline]
pub(crate) fn read_flag<F: Frame>(
    r: &mut Reader<'_, F>,
    id: PropertyId,
) -> Result<bool, DecodeError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::InvalidPropertyValue(id)),
    }
}

/// The Payload Format Indicator (0 or 1).
// Out of line: shared by the property decoder of every packet but PUBLISH,
// whose property loop reads the value inline (passing its cursor out of
// line kept the cursor in memory: 40 instructions more per borrowed 5.0
// PUBLISH, callgrind, benches/instr.sh).
#[inline(never)]
pub(crate) fn read_payload_format<F: Frame>(
    r: &mut Reader<'_, F>,
    id: PropertyId,
) -> Result<PayloadFormat, DecodeError> {
    Ok(if read_flag(r, id)? {
        PayloadFormat::Utf8
    } else {
        PayloadFormat::Unspecified
    })
}

/// A Subscription Identifier: a Variable Byte Integer of 1 to 268,435,455.
// Out of line: shared by the property decoder of every packet but PUBLISH,
// whose property loop reads the value inline (passing its cursor out of
// line kept the cursor in memory: 40 instructions more per borrowed 5.0
// PUBLISH, callgrind, benches/instr.sh).
#[inline(never)]
pub(crate) fn read_subscription_id<F: Frame>(
    r: &mut Reader<'_, F>,
    id: PropertyId,
) -> Result<SubscriptionId, DecodeError> {
    SubscriptionId::new(r.vbi()?).ok_or(DecodeError::InvalidPropertyValue(id))
}

impl PropValue for NonZeroU16 {
    fn read(r: &mut Reader<'_>, id: PropertyId) -> Result<Self, DecodeError> {
        read_nonzero_u16(r, id)
    }
    fn len(&self) -> usize {
        2
    }
    fn write<B: BufMut>(&self, b: &mut B) {
        b.put_u16(self.get())
    }
}

impl PropValue for NonZeroU32 {
    fn read(r: &mut Reader<'_>, id: PropertyId) -> Result<Self, DecodeError> {
        NonZeroU32::new(r.u32()?).ok_or(DecodeError::InvalidPropertyValue(id))
    }
    fn len(&self) -> usize {
        4
    }
    fn write<B: BufMut>(&self, b: &mut B) {
        b.put_u32(self.get())
    }
}

impl PropValue for bool {
    fn read(r: &mut Reader<'_>, id: PropertyId) -> Result<Self, DecodeError> {
        read_flag(r, id)
    }
    fn len(&self) -> usize {
        1
    }
    fn write<B: BufMut>(&self, b: &mut B) {
        b.put_u8(u8::from(*self))
    }
}

impl PropValue for PayloadFormat {
    fn read(r: &mut Reader<'_>, id: PropertyId) -> Result<Self, DecodeError> {
        read_payload_format(r, id)
    }
    fn len(&self) -> usize {
        1
    }
    fn write<B: BufMut>(&self, b: &mut B) {
        b.put_u8(matches!(self, PayloadFormat::Utf8) as u8)
    }
}

impl PropValue for MaximumQoS {
    fn read(r: &mut Reader<'_>, id: PropertyId) -> Result<Self, DecodeError> {
        Ok(if bool::read(r, id)? {
            MaximumQoS::AtLeastOnce
        } else {
            MaximumQoS::AtMostOnce
        })
    }
    fn len(&self) -> usize {
        1
    }
    fn write<B: BufMut>(&self, b: &mut B) {
        b.put_u8(matches!(self, MaximumQoS::AtLeastOnce) as u8)
    }
}

impl PropValue for SubscriptionId {
    fn read(r: &mut Reader<'_>, id: PropertyId) -> Result<Self, DecodeError> {
        read_subscription_id(r, id)
    }
    fn len(&self) -> usize {
        vbi_len(self.get() as usize)
    }
    fn write<B: BufMut>(&self, b: &mut B) {
        put_vbi(b, self.get() as usize)
    }
}

impl PropValue for MqttString {
    fn read(r: &mut Reader<'_>, _: PropertyId) -> Result<Self, DecodeError> {
        r.string()
    }
    fn len(&self) -> usize {
        2 + MqttString::len(self)
    }
    fn write<B: BufMut>(&self, b: &mut B) {
        put_prefixed(b, self.as_bytes())
    }
}

impl PropValue for TopicName {
    fn read(r: &mut Reader<'_>, _: PropertyId) -> Result<Self, DecodeError> {
        // An empty Response Topic is not a Topic Name (MQTT-3.3.2-14).
        r.topic_name()?
            .ok_or(DecodeError::InvalidTopicName(crate::TopicError::Empty))
    }
    fn len(&self) -> usize {
        2 + TopicName::len(self)
    }
    fn write<B: BufMut>(&self, b: &mut B) {
        put_prefixed(b, self.as_bytes())
    }
}

impl PropValue for Bytes {
    fn read(r: &mut Reader<'_>, _: PropertyId) -> Result<Self, DecodeError> {
        r.binary()
    }
    fn len(&self) -> usize {
        2 + Bytes::len(self)
    }
    fn write<B: BufMut>(&self, b: &mut B) {
        put_prefixed(b, self)
    }
    fn check_encode(&self) -> Result<(), EncodeError> {
        check_binary("binary property", self)
    }
}

/// Binary Data carries a two-byte length.
pub(crate) fn check_binary(field: &'static str, b: &[u8]) -> Result<(), EncodeError> {
    if b.len() > usize::from(u16::MAX) {
        return Err(EncodeError::BinaryTooLong {
            field,
            len: b.len(),
        });
    }
    Ok(())
}

/// A repeatable property kept as the wire bytes of its entries (identifier
/// included), so encoding is one copy and decoding a contiguous run is a
/// slice of the packet.
pub(crate) trait RunProp: Default {
    const ID: PropertyId;
    /// Reads one value, checking it.
    fn check(r: &mut Reader<'_>) -> Result<(), DecodeError>;
    fn raw(&self) -> &Bytes;
    fn from_raw(raw: Bytes) -> Self;
}

/// Collects the entries of one repeatable property while a property block is
/// decoded.
#[derive(Default)]
pub(crate) struct RunCollector {
    start: usize,
    end: usize,
    // Entries that were not contiguous: copied (allocates; rare).
    scattered: Option<BytesMut>,
}

impl RunCollector {
    pub(crate) fn push(&mut self, frame: &Bytes, start: usize, end: usize) {
        if self.start == self.end {
            self.start = start;
            self.end = end;
        } else if start == self.end && self.scattered.is_none() {
            self.end = end;
        } else {
            let buf = self.scattered.get_or_insert_with(|| {
                let mut m = BytesMut::new();
                m.extend_from_slice(frame.get(self.start..self.end).unwrap_or(&[]));
                m
            });
            buf.extend_from_slice(frame.get(start..end).unwrap_or(&[]));
        }
    }

    pub(crate) fn finish<T: RunProp>(self, frame: &Bytes) -> T {
        match self.scattered {
            Some(m) => T::from_raw(m.freeze()),
            None if self.start == self.end => T::default(),
            None => T::from_raw(frame.slice(self.start..self.end)),
        }
    }
}

/// User Properties (0x26): name/value string pairs, in the order received.
///
/// ```
/// use mqtt_wire::{MqttString, UserProperties};
/// let mut up = UserProperties::new();
/// up.push(MqttString::from_static("unit"), MqttString::from_static("C"));
/// let (k, v) = up.iter().next().unwrap();
/// assert_eq!((k.as_str(), v.as_str()), ("unit", "C"));
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct UserProperties(Bytes);

impl UserProperties {
    /// No user properties.
    pub const fn new() -> Self {
        UserProperties(Bytes::new())
    }

    /// Appends a pair (copies the entries encoded so far).
    pub fn push(&mut self, name: MqttString, value: MqttString) {
        let mut m = BytesMut::with_capacity(self.0.len() + 5 + name.len() + value.len());
        m.extend_from_slice(&self.0);
        m.put_u8(PropertyId::UserProperty as u8);
        put_prefixed(&mut m, name.as_bytes());
        put_prefixed(&mut m, value.as_bytes());
        self.0 = m.freeze();
    }

    /// The pairs, in order. The strings are slices of the packet.
    pub fn iter(&self) -> impl Iterator<Item = (MqttString, MqttString)> + '_ {
        let mut pos = 0usize;
        core::iter::from_fn(move || {
            // Entry: id, u16 len, name, u16 len, value. The bytes were
            // checked when built, so a mismatch just ends the iteration.
            let name = prefixed_at(&self.0, pos + 1)?;
            let value_at = pos + 3 + name.len();
            let value = prefixed_at(&self.0, value_at)?;
            pos = value_at + 2 + value.len();
            Some((
                MqttString::from_checked(name),
                MqttString::from_checked(value),
            ))
        })
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn prefixed_at(b: &Bytes, at: usize) -> Option<Bytes> {
    let len = match b.get(at..at + 2)? {
        [h, l] => usize::from(u16::from_be_bytes([*h, *l])),
        _ => return None,
    };
    if b.len() < at + 2 + len {
        return None;
    }
    Some(b.slice(at + 2..at + 2 + len))
}

impl RunProp for UserProperties {
    const ID: PropertyId = PropertyId::UserProperty;
    fn check(r: &mut Reader<'_>) -> Result<(), DecodeError> {
        // MQTT-1.5.7-1: both halves are UTF-8 Encoded Strings.
        r.skip_string()?;
        r.skip_string()?;
        Ok(())
    }
    fn raw(&self) -> &Bytes {
        &self.0
    }
    fn from_raw(raw: Bytes) -> Self {
        UserProperties(raw)
    }
}

impl FromIterator<(MqttString, MqttString)> for UserProperties {
    fn from_iter<I: IntoIterator<Item = (MqttString, MqttString)>>(iter: I) -> Self {
        let mut m = BytesMut::new();
        for (k, v) in iter {
            m.put_u8(PropertyId::UserProperty as u8);
            put_prefixed(&mut m, k.as_bytes());
            put_prefixed(&mut m, v.as_bytes());
        }
        UserProperties(m.freeze())
    }
}

impl fmt::Debug for UserProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Subscription Identifiers (0x0B) of a PUBLISH sent by a server: one per
/// matching subscription that has one, so it may repeat.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct SubscriptionIds(Bytes);

impl SubscriptionIds {
    /// None.
    pub const fn new() -> Self {
        SubscriptionIds(Bytes::new())
    }

    /// Appends an identifier (copies the entries encoded so far).
    pub fn push(&mut self, id: SubscriptionId) {
        let mut m = BytesMut::with_capacity(self.0.len() + 5);
        m.extend_from_slice(&self.0);
        m.put_u8(PropertyId::SubscriptionIdentifier as u8);
        put_vbi(&mut m, id.get() as usize);
        self.0 = m.freeze();
    }

    /// The identifiers, in order.
    pub fn iter(&self) -> impl Iterator<Item = SubscriptionId> + '_ {
        let mut pos = 0usize;
        core::iter::from_fn(move || {
            let (v, n) = crate::codec::parse_vbi(self.0.get(pos + 1..)?).ok()??;
            pos += 1 + n;
            SubscriptionId::new(v)
        })
    }

    /// Number of identifiers.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl RunProp for SubscriptionIds {
    const ID: PropertyId = PropertyId::SubscriptionIdentifier;
    fn check(r: &mut Reader<'_>) -> Result<(), DecodeError> {
        SubscriptionId::read(r, Self::ID).map(|_| ())
    }
    fn raw(&self) -> &Bytes {
        &self.0
    }
    fn from_raw(raw: Bytes) -> Self {
        SubscriptionIds(raw)
    }
}

impl FromIterator<SubscriptionId> for SubscriptionIds {
    fn from_iter<I: IntoIterator<Item = SubscriptionId>>(iter: I) -> Self {
        let mut m = BytesMut::new();
        for id in iter {
            m.put_u8(PropertyId::SubscriptionIdentifier as u8);
            put_vbi(&mut m, id.get() as usize);
        }
        SubscriptionIds(m.freeze())
    }
}

impl fmt::Debug for SubscriptionIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(SubscriptionId::get))
            .finish()
    }
}

/// Defines a property struct: the fields a packet may carry, with decoding
/// (allowed set, duplicates), length and encoding.
macro_rules! properties {
    (
        $(#[$doc:meta])*
        $name:ident for $($packet:ident)|+ {
            $( $(#[$fdoc:meta])* $field:ident: $ty:ty = $id:ident, )*
        }
        many {
            $( $(#[$mdoc:meta])* $mfield:ident: $mty:ty, )+
        }
    ) => {
        $(#[$doc])*
        #[non_exhaustive]
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
        pub struct $name {
            $( $(#[$fdoc])* pub $field: Option<$ty>, )*
            $( $(#[$mdoc])* pub $mfield: $mty, )+
        }

        impl $name {
            /// No properties.
            pub fn new() -> Self {
                Self::default()
            }

            /// Whether no property is set.
            pub fn is_empty(&self) -> bool {
                true $( && self.$field.is_none() )* $( && self.$mfield.is_empty() )+
            }

            /// Reads the Property Length and the properties after it.
            pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                let len = r.vbi()? as usize;
                let mut p = r.sub(len)?;
                let mut out = Self::default();
                if len == 0 {
                    return Ok(out);
                }
                let frame = p.frame();
                #[allow(unused_mut, unused_variables)]
                let mut seen = 0u64;
                $( #[allow(non_snake_case)] let mut $mfield = RunCollector::default(); )+
                while !p.is_empty() {
                    let start = p.pos();
                    let raw_id = p.vbi()?;
                    let id = PropertyId::from_id(raw_id).ok_or(DecodeError::UnknownProperty(raw_id))?;
                    match id {
                        $( PropertyId::$id => {
                            let bit = 1u64 << (id as u8);
                            if seen & bit != 0 {
                                return Err(DecodeError::DuplicateProperty(id));
                            }
                            seen |= bit;
                            out.$field = Some(<$ty as PropValue>::read(&mut p, id)?);
                        } )*
                        $( id if id == <$mty as RunProp>::ID => {
                            <$mty as RunProp>::check(&mut p)?;
                            $mfield.push(frame, start, p.pos());
                        } )+
                        property => {
                            return Err(DecodeError::PropertyNotAllowed { property, packet: p.packet() });
                        }
                    }
                }
                $( out.$mfield = $mfield.finish(frame); )+
                Ok(out)
            }

            /// Checks that every value fits its wire form.
            pub(crate) fn validate(&self) -> Result<(), EncodeError> {
                $( if let Some(v) = &self.$field {
                    PropValue::check_encode(v)?;
                } )*
                Ok(())
            }

            /// Length of the properties, without the Property Length.
            pub(crate) fn content_len(&self) -> usize {
                0 $( + self.$field.as_ref().map_or(0, |v| 1 + PropValue::len(v)) )*
                  $( + RunProp::raw(&self.$mfield).len() )+
            }

            /// Length with the Property Length in front.
            pub(crate) fn wire_len(&self) -> usize {
                let n = self.content_len();
                vbi_len(n) + n
            }

            /// Writes the Property Length and the properties.
            pub(crate) fn encode<B: BufMut>(&self, b: &mut B) {
                put_vbi(b, self.content_len());
                $( if let Some(v) = &self.$field {
                    b.put_u8(PropertyId::$id as u8);
                    PropValue::write(v, b);
                } )*
                $( b.put_slice(RunProp::raw(&self.$mfield)); )+
            }
        }
    };
}

properties! {
    /// CONNECT properties (MQTT 5.0 §3.1.2.11).
    ConnectProperties for Connect {
        /// Seconds the session outlives the connection (absent: 0).
        session_expiry_interval: u32 = SessionExpiryInterval,
        /// QoS 1 and 2 publishes the client will process at once.
        receive_maximum: NonZeroU16 = ReceiveMaximum,
        /// Largest packet the client accepts.
        maximum_packet_size: NonZeroU32 = MaximumPacketSize,
        /// Highest topic alias the client accepts (absent: 0).
        topic_alias_maximum: u16 = TopicAliasMaximum,
        /// Whether the server may send Response Information.
        request_response_information: bool = RequestResponseInformation,
        /// Whether Reason String and User Properties may be sent on failures.
        request_problem_information: bool = RequestProblemInformation,
        /// Name of the enhanced authentication method.
        authentication_method: MqttString = AuthenticationMethod,
        /// Authentication data of the method.
        authentication_data: Bytes = AuthenticationData,
    }
    many {
        /// User Properties.
        user_properties: UserProperties,
    }
}

properties! {
    /// Will Properties in the CONNECT payload (MQTT 5.0 §3.1.3.2).
    WillProperties for Connect {
        /// Seconds the server waits before publishing the will.
        will_delay_interval: u32 = WillDelayInterval,
        /// Whether the will payload is UTF-8.
        payload_format_indicator: PayloadFormat = PayloadFormatIndicator,
        /// Lifetime of the will message in seconds.
        message_expiry_interval: u32 = MessageExpiryInterval,
        /// Content type of the will payload.
        content_type: MqttString = ContentType,
        /// Topic for a response to the will.
        response_topic: TopicName = ResponseTopic,
        /// Correlation data for a response.
        correlation_data: Bytes = CorrelationData,
    }
    many {
        /// User Properties.
        user_properties: UserProperties,
    }
}

properties! {
    /// CONNACK properties (MQTT 5.0 §3.2.2.3).
    ConnAckProperties for ConnAck {
        /// Session expiry the server applies instead of the client's.
        session_expiry_interval: u32 = SessionExpiryInterval,
        /// QoS 1 and 2 publishes the server will process at once.
        receive_maximum: NonZeroU16 = ReceiveMaximum,
        /// Highest QoS the server accepts (absent: 2).
        maximum_qos: MaximumQoS = MaximumQoS,
        /// Whether retained messages are supported (absent: yes).
        retain_available: bool = RetainAvailable,
        /// Largest packet the server accepts.
        maximum_packet_size: NonZeroU32 = MaximumPacketSize,
        /// Client id the server assigned to an empty one.
        assigned_client_identifier: MqttString = AssignedClientIdentifier,
        /// Highest topic alias the server accepts (absent: 0).
        topic_alias_maximum: u16 = TopicAliasMaximum,
        /// Human-readable diagnostic.
        reason_string: MqttString = ReasonString,
        /// Whether wildcard subscriptions are supported (absent: yes).
        wildcard_subscription_available: bool = WildcardSubscriptionAvailable,
        /// Whether subscription identifiers are supported (absent: yes).
        subscription_identifiers_available: bool = SubscriptionIdentifierAvailable,
        /// Whether shared subscriptions are supported (absent: yes).
        shared_subscription_available: bool = SharedSubscriptionAvailable,
        /// Keep alive the server imposes instead of the client's.
        server_keep_alive: u16 = ServerKeepAlive,
        /// Basis for response topics.
        response_information: MqttString = ResponseInformation,
        /// Another server to use.
        server_reference: MqttString = ServerReference,
        /// Name of the enhanced authentication method.
        authentication_method: MqttString = AuthenticationMethod,
        /// Authentication data.
        authentication_data: Bytes = AuthenticationData,
    }
    many {
        /// User Properties.
        user_properties: UserProperties,
    }
}

properties! {
    /// Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK.
    AckProperties for PubAck | PubRec | PubRel | PubComp | SubAck | UnsubAck {
        /// Human-readable diagnostic.
        reason_string: MqttString = ReasonString,
    }
    many {
        /// User Properties.
        user_properties: UserProperties,
    }
}

properties! {
    /// SUBSCRIBE properties (MQTT 5.0 §3.8.2.1).
    SubscribeProperties for Subscribe {
        /// Identifier reported back with every message this subscription
        /// delivers.
        subscription_identifier: SubscriptionId = SubscriptionIdentifier,
    }
    many {
        /// User Properties.
        user_properties: UserProperties,
    }
}

properties! {
    /// UNSUBSCRIBE properties (MQTT 5.0 §3.10.2.1).
    UnsubscribeProperties for Unsubscribe {
    }
    many {
        /// User Properties.
        user_properties: UserProperties,
    }
}

properties! {
    /// DISCONNECT properties (MQTT 5.0 §3.14.2.2).
    DisconnectProperties for Disconnect {
        /// New session expiry (client only; not from 0 to non-zero).
        session_expiry_interval: u32 = SessionExpiryInterval,
        /// Human-readable diagnostic.
        reason_string: MqttString = ReasonString,
        /// Another server to use (server only).
        server_reference: MqttString = ServerReference,
    }
    many {
        /// User Properties.
        user_properties: UserProperties,
    }
}

properties! {
    /// AUTH properties (MQTT 5.0 §3.15.2.2).
    AuthProperties for Auth {
        /// Name of the authentication method.
        authentication_method: MqttString = AuthenticationMethod,
        /// Authentication data.
        authentication_data: Bytes = AuthenticationData,
        /// Human-readable diagnostic.
        reason_string: MqttString = ReasonString,
    }
    many {
        /// User Properties.
        user_properties: UserProperties,
    }
}
