//! PUBLISH properties (MQTT 5.0 §3.3.2.3) in a compact form.
//!
//! A `Publish` is moved several times per message (decoder, session, broker
//! queue, one clone per subscriber), so its size is paid on every hop. The
//! three properties a session or broker reads or rewrites per message are
//! plain fields; the other five (Response Topic, Correlation Data, Content
//! Type, User Properties, Subscription Identifiers) are kept as their
//! validated wire entries: one slice of the received packet, forwarded with
//! one copy, read through accessors. `PublishProperties` is 48 bytes where a
//! field per property took 176.

use crate::codec::{parse_vbi, put_prefixed, put_vbi, vbi_len, Frame, Reader};
use crate::error::{DecodeError, EncodeError};
use crate::property::{
    check_binary, PayloadFormat, PropValue, PropertyId, RunProp, SubscriptionId, SubscriptionIds,
    UserProperties,
};
use crate::string::MqttString;
use crate::topic::{check_topic_name, TopicName};
use crate::PacketType;
use bytes::{BufMut, Bytes, BytesMut};
use core::fmt;
use core::hash::{Hash, Hasher};
use core::num::NonZeroU16;

/// The properties kept as wire entries, in the order `PartialEq` and `Hash`
/// compare them.
const COLD: [PropertyId; 5] = [
    PropertyId::ResponseTopic,
    PropertyId::CorrelationData,
    PropertyId::ContentType,
    PropertyId::UserProperty,
    PropertyId::SubscriptionIdentifier,
];

/// PUBLISH properties (MQTT 5.0 §3.3.2.3).
///
/// Payload Format Indicator, Message Expiry Interval and Topic Alias are
/// fields. Response Topic, Correlation Data, Content Type, User Properties
/// and Subscription Identifiers are read with accessors
/// ([`response_topic`](Self::response_topic), ...) and replaced with setters
/// ([`set_response_topic`](Self::set_response_topic), ...); decoding keeps
/// them as one slice of the packet (no allocation), and a broker forwards
/// them with one copy. A setter rebuilds that slice (one allocation), so set
/// them when building a message, not per delivery where avoidable.
///
/// Equality and hashing are by value: two property sets are equal when every
/// property is, whatever order the wire carried them in (User Properties and
/// Subscription Identifiers compare in order, as their order is meaningful).
///
/// ```
/// use mqtt_wire::{MqttString, PublishProperties, TopicName, UserProperties};
/// let mut p = PublishProperties::new();
/// p.message_expiry_interval = Some(60);
/// p.set_response_topic(Some(TopicName::from_static("replies/42").unwrap()));
/// p.set_user_properties(
///     [(MqttString::from_static("unit"), MqttString::from_static("C"))]
///         .into_iter()
///         .collect::<UserProperties>(),
/// );
/// assert_eq!(p.response_topic().unwrap().as_str(), "replies/42");
/// assert_eq!(p.user_properties().len(), 1);
/// assert!(p.content_type().is_none());
/// ```
#[derive(Clone, Default)]
pub struct PublishProperties {
    /// Whether the payload is UTF-8.
    pub payload_format_indicator: Option<PayloadFormat>,
    /// Lifetime of the message in seconds.
    pub message_expiry_interval: Option<u32>,
    /// Topic Alias standing for the topic name (never 0, MQTT-3.3.2-8).
    pub topic_alias: Option<NonZeroU16>,
    /// The wire entries (identifier included) of the properties in `COLD`,
    /// validated. Empty when there are none.
    rest: Rest,
    /// `rest` runs from the first such entry of a received packet to the
    /// end of its property block and also holds entries of the field
    /// properties that came after that first one; those are skipped when
    /// `rest` is read or written. (A sender that writes the field
    /// properties first, as this crate's encoder does, gives a `rest` that
    /// is copied in one piece.)
    mixed: bool,
}

/// The kept entries: `None` when there are none, so a message without
/// them (every 3.1.1 one) builds and drops no `Bytes` for them (dropping
/// an empty `Bytes` is still a call through its vtable).
#[derive(Clone, Default)]
struct Rest(Option<Bytes>);

impl Rest {
    fn slice(&self, range: core::ops::Range<usize>) -> Bytes {
        match &self.0 {
            Some(b) => b.slice(range),
            None => Bytes::new(),
        }
    }
}

impl From<Bytes> for Rest {
    fn from(b: Bytes) -> Self {
        Rest(if b.is_empty() { None } else { Some(b) })
    }
}

impl core::ops::Deref for Rest {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or(&[])
    }
}

/// One entry of a validated property block: its identifier, where its value
/// starts and where the entry ends.
#[derive(Clone, Copy)]
struct Entry {
    id: PropertyId,
    start: usize,
    value: usize,
    end: usize,
}

/// The entry at `at` of validated property bytes; `None` at the end (or on
/// bytes that were not validated, which ends iteration instead of
/// panicking).
fn entry_at(b: &[u8], at: usize) -> Option<Entry> {
    let (raw_id, n) = parse_vbi(b.get(at..)?).ok()??;
    let id = PropertyId::from_id(raw_id)?;
    let value = at + n;
    let prefixed = |at: usize| -> Option<usize> {
        match b.get(at..at + 2)? {
            [h, l] => Some(at + 2 + usize::from(u16::from_be_bytes([*h, *l]))),
            _ => None,
        }
    };
    let end = match id {
        PropertyId::PayloadFormatIndicator => value + 1,
        PropertyId::TopicAlias => value + 2,
        PropertyId::MessageExpiryInterval => value + 4,
        PropertyId::ResponseTopic | PropertyId::CorrelationData | PropertyId::ContentType => {
            prefixed(value)?
        }
        PropertyId::UserProperty => prefixed(prefixed(value)?)?,
        PropertyId::SubscriptionIdentifier => value + parse_vbi(b.get(value..)?).ok()??.1,
        _ => return None,
    };
    if end > b.len() {
        return None;
    }
    Some(Entry {
        id,
        start: at,
        value,
        end,
    })
}

fn is_cold(id: PropertyId) -> bool {
    COLD.contains(&id)
}

/// The kept entries of `rest` (validated property bytes); when `mixed`,
/// entries of the field properties between them are skipped.
fn kept_entries(rest: &[u8], mixed: bool) -> impl Iterator<Item = Entry> + '_ {
    let mut at = 0;
    core::iter::from_fn(move || loop {
        let e = entry_at(rest, at)?;
        at = e.end;
        if !mixed || is_cold(e.id) {
            return Some(e);
        }
    })
}

/// What the property decoder read, before it becomes a
/// [`PublishProperties`] (owned, `S` = [`Bytes`]) or a
/// [`PublishPropertiesRef`] (borrowed, `S` = `&[u8]`).
pub(crate) struct RawProps<S> {
    pub(crate) payload_format_indicator: Option<PayloadFormat>,
    pub(crate) message_expiry_interval: Option<u32>,
    pub(crate) topic_alias: Option<NonZeroU16>,
    /// The kept entries and what follows them, as for
    /// `PublishProperties::rest`.
    pub(crate) rest: Option<S>,
    pub(crate) mixed: bool,
}

impl<S> RawProps<S> {
    /// No properties.
    #[inline(always)]
    pub(crate) const fn empty() -> Self {
        RawProps {
            payload_format_indicator: None,
            message_expiry_interval: None,
            topic_alias: None,
            rest: None,
            mixed: false,
        }
    }
}

/// Reads the Property Length and the properties after it: the one PUBLISH
/// property parser, for the owned and the borrowed decoder.
///
/// Every identifier a PUBLISH may carry is below 0x80, so it is read as
/// one byte and dispatched on directly; anything else (a longer
/// Variable Byte Integer, an unknown or foreign identifier) is an error
/// worked out by [`bad_property_id`].
#[inline]
pub(crate) fn decode_raw<'a, F: Frame>(
    r: &mut Reader<'a, F>,
) -> Result<RawProps<F::Field>, DecodeError> {
    let len = r.vbi()? as usize;
    // The entries are checked and skipped, not sliced out one by one: a
    // `Cursor` reads them (a `Reader`'s reads also test an index plus a
    // length for overflow); `end`, where the block ends in the frame, places
    // the kept span.
    let mut p = r.cursor(len)?;
    let end = r.pos();
    let mut out = RawProps::empty();
    if len == 0 {
        return Ok(out);
    }
    // Bit `id` is set once the single-valued property `id` is read.
    let mut seen = 0u64;
    // The bytes left where the first kept entry starts (0: none yet, as an
    // entry is never empty); `rest` runs from there to the end of the
    // block, so it is `mixed` when a field property's entry comes after it.
    let mut kept_len = 0usize;
    while !p.is_empty() {
        let entry = p.rest();
        match p.u8()? {
            PAYLOAD_FORMAT_INDICATOR => {
                let id = PropertyId::PayloadFormatIndicator;
                once(&mut seen, id)?;
                out.payload_format_indicator = Some(match p.u8()? {
                    0 => PayloadFormat::Unspecified,
                    1 => PayloadFormat::Utf8,
                    _ => return Err(DecodeError::InvalidPropertyValue(id)),
                });
                out.mixed |= kept_len != 0;
                continue;
            }
            MESSAGE_EXPIRY_INTERVAL => {
                once(&mut seen, PropertyId::MessageExpiryInterval)?;
                out.message_expiry_interval = Some(p.u32()?);
                out.mixed |= kept_len != 0;
                continue;
            }
            TOPIC_ALIAS => {
                let id = PropertyId::TopicAlias;
                once(&mut seen, id)?;
                out.topic_alias =
                    Some(NonZeroU16::new(p.u16()?).ok_or(DecodeError::InvalidPropertyValue(id))?);
                out.mixed |= kept_len != 0;
                continue;
            }
            RESPONSE_TOPIC => {
                once(&mut seen, PropertyId::ResponseTopic)?;
                // An empty Response Topic is not a Topic Name
                // (MQTT-3.3.2-14); no wildcards either.
                check_topic_name(p.prefixed()?).map_err(DecodeError::InvalidTopicName)?;
            }
            CORRELATION_DATA => {
                once(&mut seen, PropertyId::CorrelationData)?;
                p.prefixed()?;
            }
            CONTENT_TYPE => {
                once(&mut seen, PropertyId::ContentType)?;
                p.skip_string()?;
            }
            USER_PROPERTY => {
                // MQTT-1.5.7-1: both halves are UTF-8 Encoded Strings.
                p.skip_string()?;
                p.skip_string()?;
            }
            SUBSCRIPTION_IDENTIFIER => {
                let id = PropertyId::SubscriptionIdentifier;
                SubscriptionId::new(p.vbi()?).ok_or(DecodeError::InvalidPropertyValue(id))?;
            }
            _ => return Err(bad_property_id(entry, p.packet())),
        }
        kept_len = kept_len.max(entry.len());
    }
    if kept_len != 0 {
        out.rest = end
            .checked_sub(kept_len)
            .and_then(|start| r.field_from(start, end));
    }
    Ok(out)
}

// The identifiers of the PUBLISH properties, as the byte they are on the
// wire (all below 0x80, so one byte each).
const PAYLOAD_FORMAT_INDICATOR: u8 = PropertyId::PayloadFormatIndicator as u8;
const MESSAGE_EXPIRY_INTERVAL: u8 = PropertyId::MessageExpiryInterval as u8;
const CONTENT_TYPE: u8 = PropertyId::ContentType as u8;
const RESPONSE_TOPIC: u8 = PropertyId::ResponseTopic as u8;
const CORRELATION_DATA: u8 = PropertyId::CorrelationData as u8;
const SUBSCRIPTION_IDENTIFIER: u8 = PropertyId::SubscriptionIdentifier as u8;
const TOPIC_ALIAS: u8 = PropertyId::TopicAlias as u8;
const USER_PROPERTY: u8 = PropertyId::UserProperty as u8;

/// Marks the single-valued property `id` as read; a repeat is a Protocol
/// Error. `id` is a constant at every call, so this is one bit test.
#[inline(always)]
fn once(seen: &mut u64, id: PropertyId) -> Result<(), DecodeError> {
    let bit = 1u64 << (id as u8);
    if *seen & bit != 0 {
        return Err(DecodeError::DuplicateProperty(id));
    }
    *seen |= bit;
    Ok(())
}

/// The error for a property entry, `entry` up to the block's end, whose
/// first byte is not the identifier of a PUBLISH property: the Variable
/// Byte Integer's own error, an unknown identifier, or one PUBLISH may not
/// carry.
#[cold]
#[inline(never)]
fn bad_property_id(entry: &[u8], packet: PacketType) -> DecodeError {
    match parse_vbi(entry) {
        Err(e) => e,
        Ok(None) => DecodeError::UnexpectedEnd { packet },
        Ok(Some((raw_id, _))) => match PropertyId::from_id(raw_id) {
            None => DecodeError::UnknownProperty(raw_id),
            Some(property) => DecodeError::PropertyNotAllowed { property, packet },
        },
    }
}

impl PublishProperties {
    /// No properties.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        self.payload_format_indicator.is_none()
            && self.message_expiry_interval.is_none()
            && self.topic_alias.is_none()
            && self.rest.is_empty()
    }

    /// The entries kept in `rest` (field properties skipped).
    fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        kept_entries(&self.rest, self.mixed)
    }

    /// The entries of one property, as byte ranges of `rest`.
    fn entries_of(&self, id: PropertyId) -> impl Iterator<Item = Entry> + '_ {
        self.entries().filter(move |e| e.id == id)
    }

    /// The value of a once-only string or binary property.
    fn prefixed_value(&self, id: PropertyId) -> Option<Bytes> {
        let e = self.entries_of(id).next()?;
        Some(self.rest.slice(e.value + 2..e.end))
    }

    /// The entries of a repeatable property: a slice of `rest` when they are
    /// contiguous (always so for what this type built, and for a received
    /// packet that sends them together), otherwise a copy.
    fn run_of(&self, id: PropertyId) -> Bytes {
        let mut it = self.entries_of(id);
        let Some(first) = it.next() else {
            return Bytes::new();
        };
        let mut end = first.end;
        let mut copy: Option<BytesMut> = None;
        for e in it {
            match &mut copy {
                None if e.start == end => end = e.end,
                None => {
                    let mut m = BytesMut::new();
                    m.extend_from_slice(self.rest.get(first.start..end).unwrap_or(&[]));
                    m.extend_from_slice(self.rest.get(e.start..e.end).unwrap_or(&[]));
                    copy = Some(m);
                }
                Some(m) => m.extend_from_slice(self.rest.get(e.start..e.end).unwrap_or(&[])),
            }
        }
        match copy {
            Some(m) => m.freeze(),
            None => self.rest.slice(first.start..end),
        }
    }

    /// Topic for a response.
    pub fn response_topic(&self) -> Option<TopicName> {
        self.prefixed_value(PropertyId::ResponseTopic)
            .map(TopicName::from_checked)
    }

    /// Correlation data for a response.
    pub fn correlation_data(&self) -> Option<Bytes> {
        self.prefixed_value(PropertyId::CorrelationData)
    }

    /// Content type of the payload.
    pub fn content_type(&self) -> Option<MqttString> {
        self.prefixed_value(PropertyId::ContentType)
            .map(MqttString::from_checked)
    }

    /// User Properties, in the order received.
    pub fn user_properties(&self) -> UserProperties {
        UserProperties::from_raw(self.run_of(PropertyId::UserProperty))
    }

    /// Subscription Identifiers of the matching subscriptions (server to
    /// client only).
    pub fn subscription_identifiers(&self) -> SubscriptionIds {
        SubscriptionIds::from_raw(self.run_of(PropertyId::SubscriptionIdentifier))
    }

    /// Whether any Subscription Identifier is present (without building
    /// them).
    pub fn has_subscription_identifiers(&self) -> bool {
        self.entries_of(PropertyId::SubscriptionIdentifier)
            .next()
            .is_some()
    }

    /// Replaces every entry of `id` with `entries` (already encoded, `id`
    /// included). Keeps the other kept properties, drops field entries.
    fn replace(&mut self, id: PropertyId, entries: Bytes) {
        if entries.is_empty() && self.entries_of(id).next().is_none() {
            return; // clearing what is not there: no copy
        }
        let keep: usize = self
            .entries()
            .filter(|e| e.id != id)
            .map(|e| e.end - e.start)
            .sum();
        if keep == 0 {
            // Nothing else to keep: no copy.
            self.rest = Rest::from(entries);
        } else {
            let mut m = BytesMut::with_capacity(keep + entries.len());
            for e in self.entries().filter(|e| e.id != id) {
                m.extend_from_slice(self.rest.get(e.start..e.end).unwrap_or(&[]));
            }
            m.extend_from_slice(&entries);
            self.rest = Rest::from(m.freeze());
        }
        self.mixed = false;
    }

    /// Encodes one string or binary property entry.
    fn prefixed_entry(id: PropertyId, value: &[u8]) -> Bytes {
        let mut m = BytesMut::with_capacity(3 + value.len());
        m.put_u8(id as u8);
        put_prefixed(&mut m, value);
        m.freeze()
    }

    /// Sets or clears the Response Topic.
    pub fn set_response_topic(&mut self, topic: Option<TopicName>) {
        let id = PropertyId::ResponseTopic;
        match topic {
            Some(t) => self.replace(id, Self::prefixed_entry(id, t.as_bytes())),
            None => self.replace(id, Bytes::new()),
        }
    }

    /// Sets or clears the Correlation Data; more than 65,535 bytes is
    /// [`EncodeError::BinaryTooLong`] and changes nothing.
    pub fn set_correlation_data(&mut self, data: Option<Bytes>) -> Result<(), EncodeError> {
        let id = PropertyId::CorrelationData;
        match data {
            Some(d) => {
                check_binary("correlation data", &d)?;
                self.replace(id, Self::prefixed_entry(id, &d));
            }
            None => self.replace(id, Bytes::new()),
        }
        Ok(())
    }

    /// Sets or clears the Content Type.
    pub fn set_content_type(&mut self, content_type: Option<MqttString>) {
        let id = PropertyId::ContentType;
        match content_type {
            Some(c) => self.replace(id, Self::prefixed_entry(id, c.as_bytes())),
            None => self.replace(id, Bytes::new()),
        }
    }

    /// Replaces the User Properties (an empty set clears them).
    pub fn set_user_properties(&mut self, user_properties: UserProperties) {
        self.replace(PropertyId::UserProperty, user_properties.raw().clone());
    }

    /// Appends one User Property.
    pub fn push_user_property(&mut self, name: MqttString, value: MqttString) {
        let mut up = self.user_properties();
        up.push(name, value);
        self.set_user_properties(up);
    }

    /// Replaces the Subscription Identifiers (an empty set clears them).
    pub fn set_subscription_identifiers(&mut self, ids: SubscriptionIds) {
        self.replace(PropertyId::SubscriptionIdentifier, ids.raw().clone());
    }

    /// Length of the kept entries on the wire.
    fn rest_len(&self) -> usize {
        if self.mixed {
            self.entries().map(|e| e.end - e.start).sum()
        } else {
            self.rest.len()
        }
    }

    /// The owned properties of what [`decode_raw`] read.
    #[inline(always)]
    pub(crate) fn from_raw(raw: RawProps<Bytes>) -> Self {
        PublishProperties {
            payload_format_indicator: raw.payload_format_indicator,
            message_expiry_interval: raw.message_expiry_interval,
            topic_alias: raw.topic_alias,
            rest: Rest(raw.rest),
            mixed: raw.mixed,
        }
    }

    /// Reads the Property Length and the properties after it.
    #[cfg(test)]
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        decode_raw(r).map(Self::from_raw)
    }

    /// Checks that every value fits its wire form (always so: the setters
    /// check).
    pub(crate) fn validate(&self) -> Result<(), EncodeError> {
        Ok(())
    }

    /// Length of the properties, without the Property Length.
    #[inline]
    pub(crate) fn content_len(&self) -> usize {
        self.payload_format_indicator.map_or(0, |_| 2)
            + self.message_expiry_interval.map_or(0, |_| 5)
            + self.topic_alias.map_or(0, |_| 3)
            + self.rest_len()
    }

    /// Length with the Property Length in front.
    #[inline]
    pub(crate) fn wire_len(&self) -> usize {
        let n = self.content_len();
        vbi_len(n) + n
    }

    /// Writes the Property Length and the properties.
    #[inline]
    pub(crate) fn encode<B: BufMut>(&self, b: &mut B) {
        put_vbi(b, self.content_len());
        if let Some(v) = self.payload_format_indicator {
            b.put_u8(PropertyId::PayloadFormatIndicator as u8);
            v.write(b);
        }
        if let Some(v) = self.message_expiry_interval {
            b.put_u8(PropertyId::MessageExpiryInterval as u8);
            b.put_u32(v);
        }
        if let Some(v) = self.topic_alias {
            b.put_u8(PropertyId::TopicAlias as u8);
            b.put_u16(v.get());
        }
        if self.mixed {
            for e in self.entries() {
                b.put_slice(self.rest.get(e.start..e.end).unwrap_or(&[]));
            }
        } else {
            b.put_slice(&self.rest);
        }
    }
}

impl PartialEq for PublishProperties {
    fn eq(&self, other: &Self) -> bool {
        self.payload_format_indicator == other.payload_format_indicator
            && self.message_expiry_interval == other.message_expiry_interval
            && self.topic_alias == other.topic_alias
            && COLD.iter().all(|&id| {
                self.entries_of(id)
                    .map(|e| self.rest.get(e.start..e.end))
                    .eq(other.entries_of(id).map(|e| other.rest.get(e.start..e.end)))
            })
    }
}

impl Eq for PublishProperties {}

impl Hash for PublishProperties {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.payload_format_indicator.hash(state);
        self.message_expiry_interval.hash(state);
        self.topic_alias.hash(state);
        for id in COLD {
            for e in self.entries_of(id) {
                self.rest.get(e.start..e.end).hash(state);
            }
        }
    }
}

impl fmt::Debug for PublishProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishProperties")
            .field("payload_format_indicator", &self.payload_format_indicator)
            .field("message_expiry_interval", &self.message_expiry_interval)
            .field("topic_alias", &self.topic_alias)
            .field("response_topic", &self.response_topic())
            .field("correlation_data", &self.correlation_data())
            .field("content_type", &self.content_type())
            .field("user_properties", &self.user_properties())
            .field("subscription_identifiers", &self.subscription_identifiers())
            .finish()
    }
}

/// The properties of a borrowed PUBLISH ([`PublishRef`](crate::PublishRef)):
/// what a [`PublishProperties`] holds, as views of the decoder's input.
///
/// The three field properties are fields; the others are read through
/// accessors that return slices of the input (validated by the decoder;
/// the `&str` accessors run `str::from_utf8` again, as
/// [`MqttString::as_str`] does, since this crate has no `unsafe`).
/// Equality is by value, as for [`PublishProperties`].
///
/// ```
/// use mqtt_wire::{decode_ref, DecodeConfig, PacketRef, ProtocolVersion};
///
/// // 5.0 PUBLISH to "t", properties: content type "a/b", user property k=v.
/// let wire = [
///     0x30, 18, 0, 1, b't', 13, // header, topic, Property Length
///     0x03, 0, 3, b'a', b'/', b'b', // content type
///     0x26, 0, 1, b'k', 0, 1, b'v', // user property
///     b'h', // payload
/// ];
/// let cfg = DecodeConfig::new(ProtocolVersion::V5);
/// let Some((PacketRef::Publish(p), _)) = decode_ref(&wire, &cfg).unwrap() else {
///     panic!("a PUBLISH");
/// };
/// assert_eq!(p.properties().content_type(), Some("a/b"));
/// assert_eq!(p.properties().user_properties().collect::<Vec<_>>(), [("k", "v")]);
/// ```
#[derive(Clone, Copy, Default)]
pub struct PublishPropertiesRef<'a> {
    /// Whether the payload is UTF-8.
    pub payload_format_indicator: Option<PayloadFormat>,
    /// Lifetime of the message in seconds.
    pub message_expiry_interval: Option<u32>,
    /// Topic Alias standing for the topic name (never 0, MQTT-3.3.2-8).
    pub topic_alias: Option<NonZeroU16>,
    /// The validated wire entries of the other properties (see
    /// `PublishProperties::rest`); empty when there are none.
    rest: &'a [u8],
    /// `rest` also holds entries of the field properties, to be skipped.
    mixed: bool,
}

impl<'a> PublishPropertiesRef<'a> {
    /// The borrowed properties of what [`decode_raw`] read.
    #[inline(always)]
    pub(crate) fn from_raw(raw: RawProps<&'a [u8]>) -> Self {
        PublishPropertiesRef {
            payload_format_indicator: raw.payload_format_indicator,
            message_expiry_interval: raw.message_expiry_interval,
            topic_alias: raw.topic_alias,
            rest: raw.rest.unwrap_or(&[]),
            mixed: raw.mixed,
        }
    }

    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        self.payload_format_indicator.is_none()
            && self.message_expiry_interval.is_none()
            && self.topic_alias.is_none()
            && self.rest.is_empty()
    }

    /// The entries of one kept property.
    fn entries_of(&self, id: PropertyId) -> impl Iterator<Item = Entry> + 'a {
        kept_entries(self.rest, self.mixed).filter(move |e| e.id == id)
    }

    /// The value of a once-only string or binary property.
    fn prefixed_value(&self, id: PropertyId) -> Option<&'a [u8]> {
        let e = self.entries_of(id).next()?;
        self.rest.get(e.value + 2..e.end)
    }

    /// Topic for a response.
    pub fn response_topic(&self) -> Option<&'a str> {
        core::str::from_utf8(self.prefixed_value(PropertyId::ResponseTopic)?).ok()
    }

    /// Correlation data for a response.
    pub fn correlation_data(&self) -> Option<&'a [u8]> {
        self.prefixed_value(PropertyId::CorrelationData)
    }

    /// Content type of the payload.
    pub fn content_type(&self) -> Option<&'a str> {
        core::str::from_utf8(self.prefixed_value(PropertyId::ContentType)?).ok()
    }

    /// User Properties (name, value), in the order received.
    pub fn user_properties(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let rest = self.rest;
        self.entries_of(PropertyId::UserProperty)
            .filter_map(move |e| {
                // The value of an entry: a name and a value, each a two-byte
                // length and the bytes (checked by the decoder).
                let name = prefixed_str(rest, e.value)?;
                let value = prefixed_str(rest, e.value + 2 + name.len())?;
                Some((name, value))
            })
    }

    /// Subscription Identifiers of the matching subscriptions (server to
    /// client only), in the order received.
    pub fn subscription_identifiers(&self) -> impl Iterator<Item = SubscriptionId> + 'a {
        let rest = self.rest;
        self.entries_of(PropertyId::SubscriptionIdentifier)
            .filter_map(move |e| {
                let (v, _) = parse_vbi(rest.get(e.value..e.end)?).ok()??;
                SubscriptionId::new(v)
            })
    }

    /// The owned [`PublishProperties`] (the kept entries copied: one
    /// allocation when there are any).
    pub fn to_properties(&self) -> PublishProperties {
        self.owned_with(Bytes::copy_from_slice(self.rest))
    }

    /// The owned properties, with `rest` (a copy of `self.rest`) as their
    /// kept entries.
    pub(crate) fn owned_with(self, rest: Bytes) -> PublishProperties {
        PublishProperties {
            payload_format_indicator: self.payload_format_indicator,
            message_expiry_interval: self.message_expiry_interval,
            topic_alias: self.topic_alias,
            rest: Rest::from(rest),
            mixed: self.mixed,
        }
    }

    /// The kept entries as they were on the wire.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

/// The UTF-8 string with a two-byte length at `at` of `b`.
fn prefixed_str(b: &[u8], at: usize) -> Option<&str> {
    let len = match b.get(at..at + 2)? {
        [h, l] => usize::from(u16::from_be_bytes([*h, *l])),
        _ => return None,
    };
    core::str::from_utf8(b.get(at + 2..at + 2 + len)?).ok()
}

impl PartialEq for PublishPropertiesRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.payload_format_indicator == other.payload_format_indicator
            && self.message_expiry_interval == other.message_expiry_interval
            && self.topic_alias == other.topic_alias
            && COLD.iter().all(|&id| {
                self.entries_of(id)
                    .map(|e| self.rest.get(e.start..e.end))
                    .eq(other.entries_of(id).map(|e| other.rest.get(e.start..e.end)))
            })
    }
}

impl Eq for PublishPropertiesRef<'_> {}

impl fmt::Debug for PublishPropertiesRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// A list printed from a fresh iterator.
        struct List<G>(G);
        impl<G: Fn() -> I, I: Iterator> fmt::Debug for List<G>
        where
            I::Item: fmt::Debug,
        {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries((self.0)()).finish()
            }
        }
        f.debug_struct("PublishPropertiesRef")
            .field("payload_format_indicator", &self.payload_format_indicator)
            .field("message_expiry_interval", &self.message_expiry_interval)
            .field("topic_alias", &self.topic_alias)
            .field("response_topic", &self.response_topic())
            .field("correlation_data", &self.correlation_data())
            .field("content_type", &self.content_type())
            .field("user_properties", &List(|| self.user_properties()))
            .field(
                "subscription_identifiers",
                &List(|| self.subscription_identifiers().map(SubscriptionId::get)),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PacketType;
    use alloc::vec::Vec;

    fn decode(block: &[u8]) -> Result<PublishProperties, DecodeError> {
        let mut framed = Vec::new();
        put_vbi(&mut framed, block.len());
        framed.extend_from_slice(block);
        let frame = Bytes::from(framed);
        let mut r = Reader::new(&frame, PacketType::Publish);
        PublishProperties::decode(&mut r)
    }

    fn encode(p: &PublishProperties) -> Vec<u8> {
        let mut out = Vec::new();
        p.encode(&mut out);
        assert_eq!(out.len(), p.wire_len());
        out
    }

    #[test]
    fn interleaved_field_entries_are_skipped_when_read_and_written() {
        // Content Type, Topic Alias, User Property, Message Expiry, User
        // Property: the field properties sit between the kept ones.
        let block = [
            0x03, 0, 1, b'c', // content type "c"
            0x23, 0, 7, // topic alias 7
            0x26, 0, 1, b'k', 0, 1, b'v', // user property k=v
            0x02, 0, 0, 0, 9, // message expiry 9
            0x26, 0, 1, b'x', 0, 1, b'y', // user property x=y
        ];
        let p = decode(&block).unwrap();
        assert_eq!(p.topic_alias, NonZeroU16::new(7));
        assert_eq!(p.message_expiry_interval, Some(9));
        assert_eq!(p.content_type().unwrap().as_str(), "c");
        let up: Vec<_> = p.user_properties().iter().collect();
        assert_eq!(up.len(), 2);
        assert_eq!((up[0].0.as_str(), up[0].1.as_str()), ("k", "v"));
        assert_eq!((up[1].0.as_str(), up[1].1.as_str()), ("x", "y"));
        // Written back: each property once, and it decodes to an equal set.
        let wire = encode(&p);
        assert_eq!(wire.len(), 1 + block.len());
        let again = decode(wire.get(1..).unwrap()).unwrap();
        assert_eq!(again, p);
        // Dropping the alias must not leave its entry in the kept bytes.
        let mut q = p.clone();
        q.topic_alias = None;
        let wire = encode(&q);
        assert_eq!(wire.len(), 1 + block.len() - 3);
        assert_eq!(decode(wire.get(1..).unwrap()).unwrap().topic_alias, None);
    }

    #[test]
    fn field_entries_before_or_after_the_kept_ones() {
        // Leading field entries: the kept bytes are one slice, not mixed.
        let leading = [
            0x01, 1, // payload format indicator: UTF-8
            0x02, 0, 0, 0, 9, // message expiry 9
            0x03, 0, 1, b'c', // content type "c"
        ];
        let p = decode(&leading).unwrap();
        assert!(!p.mixed);
        assert_eq!(&p.rest[..], &leading[7..]);
        assert_eq!(encode(&p).get(1..), Some(&leading[..]));
        // A trailing field entry is held in the kept bytes and skipped.
        let trailing = [
            0x03, 0, 1, b'c', // content type "c"
            0x23, 0, 7, // topic alias 7
        ];
        let mut q = decode(&trailing).unwrap();
        assert!(q.mixed);
        assert_eq!(q.content_type().unwrap().as_str(), "c");
        assert_eq!(q.topic_alias, NonZeroU16::new(7));
        assert_eq!(encode(&q).len(), 1 + trailing.len());
        q.topic_alias = None;
        let wire = encode(&q);
        assert_eq!(wire.get(1..), Some(&trailing[..4]));
        assert_eq!(decode(wire.get(1..).unwrap()).unwrap(), q);
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn publish_stays_small() {
        // Moved several times per message and cloned per subscriber.
        assert!(core::mem::size_of::<PublishProperties>() <= 48);
        assert!(core::mem::size_of::<crate::Publish>() <= 120);
    }

    #[test]
    fn setters_replace_and_clear() {
        let mut p = PublishProperties::new();
        p.set_content_type(Some(MqttString::from_static("a")));
        p.set_content_type(Some(MqttString::from_static("b")));
        assert_eq!(p.content_type().unwrap().as_str(), "b");
        assert_eq!(p.entries_of(PropertyId::ContentType).count(), 1);
        p.set_correlation_data(Some(Bytes::from_static(b"id")))
            .unwrap();
        let too_long = Bytes::from(alloc::vec![0u8; 65_536]);
        assert!(p.set_correlation_data(Some(too_long)).is_err());
        assert_eq!(p.correlation_data().unwrap(), Bytes::from_static(b"id"));
        p.set_subscription_identifiers(
            [
                SubscriptionId::new(5).unwrap(),
                SubscriptionId::new(300).unwrap(),
            ]
            .into_iter()
            .collect(),
        );
        assert!(p.has_subscription_identifiers());
        let ids: Vec<u32> = p
            .subscription_identifiers()
            .iter()
            .map(|i| i.get())
            .collect();
        assert_eq!(ids, [5, 300]);
        p.set_subscription_identifiers(SubscriptionIds::new());
        p.set_content_type(None);
        p.set_correlation_data(None).unwrap();
        assert!(p.is_empty());
    }

    #[test]
    fn equality_ignores_the_order_of_distinct_properties() {
        let a = decode(&[0x03, 0, 1, b'c', 0x09, 0, 1, 7]).unwrap();
        let b = decode(&[0x09, 0, 1, 7, 0x03, 0, 1, b'c']).unwrap();
        let c = decode(&[0x09, 0, 1, 8, 0x03, 0, 1, b'c']).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn duplicates_and_foreign_properties_are_rejected() {
        assert_eq!(
            decode(&[0x03, 0, 0, 0x03, 0, 0]),
            Err(DecodeError::DuplicateProperty(PropertyId::ContentType))
        );
        assert_eq!(
            decode(&[0x23, 0, 1, 0x23, 0, 2]),
            Err(DecodeError::DuplicateProperty(PropertyId::TopicAlias))
        );
        assert!(matches!(
            decode(&[0x11, 0, 0, 0, 1]),
            Err(DecodeError::PropertyNotAllowed { .. })
        ));
        assert!(matches!(
            decode(&[0x08, 0, 0]),
            Err(DecodeError::InvalidTopicName(_))
        ));
    }
}
