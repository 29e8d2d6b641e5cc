//! Generators and checks shared by the property tests, the fuzz targets and
//! the corpus-replay test (feature `arbitrary`; hidden, not a stable API).
//!
//! - [`packet`] builds a *valid* packet for a protocol version from
//!   unstructured bytes: every packet type the version carries, every field
//!   and property, strings with multi-byte UTF-8 and U+FEFF, topics with
//!   empty levels, `$` topics, wildcard and `$share` filters, reason codes
//!   the version can encode. `encode` accepts it and `decode` gives it back.
//! - [`check_packet`] / [`check_roundtrip`]: encode, decode, compare, plus
//!   the length, size-limit, buffer and cross-version contracts.
//! - [`check_decode_any_chunking`]: any bytes, for every version, decoded
//!   whole and in chunks: no panic, same packets, same first error; and the
//!   borrowed decoder ([`decode_ref`]) agrees with the owned one
//!   ([`decode_whole_ref`], [`check_publish_ref`]).
//!
//! The fuzz targets `wire_roundtrip` and `wire_decode` call the two `check_`
//! functions on their input, and `tests/fuzz_corpus.rs` replays the committed
//! corpora through them, so a crash found once stays fixed.
//!
//! The checks panic when an invariant is broken: that is how a fuzzer or a
//! test learns of it. Assertion macros are used for that (they are not
//! flagged by the workspace lints); nothing here indexes or unwraps.

use crate::{
    decode, decode_bytes, decode_ref, AckProperties, Auth, AuthProperties, AuthReasonCode, ConnAck,
    ConnAckProperties, Connect, ConnectProperties, ConnectReasonCode, DecodeConfig, DecodeError,
    Delivery, Disconnect, DisconnectProperties, DisconnectReasonCode, Encode, EncodeError,
    FixedHeader, LastWill, MqttString, Packet, PacketId, PacketRef, PacketType, ProtocolVersion,
    PubAck, PubAckReasonCode, PubComp, PubRec, PubRel, PubRelReasonCode, Publish,
    PublishProperties, PublishPropertiesRef, PublishRef, QoS, RetainHandling, SubAck,
    SubAckReasonCode, Subscribe, SubscribeProperties, Subscription, SubscriptionId,
    SubscriptionIds, SubscriptionOptions, TopicFilter, TopicName, UnsubAck, UnsubAckReasonCode,
    Unsubscribe, UnsubscribeProperties, UserProperties, WillProperties, DEFAULT_MAX_PACKET_SIZE,
    MAX_PACKET_SIZE, MAX_STRING_LEN,
};
use ::arbitrary::{Arbitrary, Error, Result, Unstructured};
use alloc::string::String;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use core::num::{NonZeroU16, NonZeroU32};

/// The three protocol versions, oldest first.
pub const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V3_1,
    ProtocolVersion::V3_1_1,
    ProtocolVersion::V5,
];

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

/// Characters strings are drawn from (besides any `char` now and then):
/// ASCII, 2-, 3- and 4-byte UTF-8, U+FEFF (kept, MQTT-1.5.4-3), control
/// characters and non-characters (allowed: the spec only says SHOULD NOT,
/// MQTT-1.5.4-2 forbids U+0000 alone), the boundaries of each UTF-8 length,
/// and the topic separator and wildcards.
const CHARS: &str = "abcxZ07-_. $/+#éßΩ€中\u{FEFF}\u{FFFD}\u{1}\u{1F}\u{7F}\u{80}\u{7FF}\u{800}\
                     \u{D7FF}\u{E000}\u{FFFF}\u{10000}😀𝄞\u{10FFFF}";

/// True with probability `num / den`, and false once `u` is exhausted (so
/// that running out of input gives the simplest packet, not the largest).
fn chance(u: &mut Unstructured<'_>, num: u16, den: u16) -> Result<bool> {
    Ok(u.int_in_range(1..=den)? > den - num)
}

/// A character other than U+0000 for which `allowed` holds.
fn any_char(u: &mut Unstructured<'_>, allowed: fn(char) -> bool) -> Result<char> {
    let c = if chance(u, 1, 8)? {
        char::arbitrary(u)?
    } else {
        let i = u.int_in_range(0..=CHARS.chars().count() - 1)?;
        CHARS.chars().nth(i).unwrap_or('a')
    };
    Ok(if c != '\0' && allowed(c) { c } else { 'q' })
}

/// A length: mostly tiny, sometimes up to 40, rarely a few hundred (so the
/// Remaining Length takes two bytes).
fn small_len(u: &mut Unstructured<'_>) -> Result<usize> {
    Ok(match u.int_in_range(0u8..=31)? {
        31 => u.int_in_range(0..=400)?,
        25..=30 => u.int_in_range(0..=40)?,
        _ => u.int_in_range(0..=6)?,
    })
}

fn text(u: &mut Unstructured<'_>, allowed: fn(char) -> bool) -> Result<String> {
    let n = small_len(u)?;
    let mut s = String::new();
    for _ in 0..n {
        s.push(any_char(u, allowed)?);
    }
    Ok(s)
}

/// A valid UTF-8 Encoded String; very rarely one of the longest lengths
/// (65,535 bytes, ending in a multi-byte character).
pub fn string(u: &mut Unstructured<'_>) -> Result<MqttString> {
    let s = if chance(u, 1, 2000)? {
        let tail = *u.choose(&["", "é", "€", "😀", "\u{FEFF}"])?;
        let mut s = "s".repeat(MAX_STRING_LEN - tail.len() - usize::from(chance(u, 1, 2)?));
        s.push_str(tail);
        s
    } else {
        text(u, |_| true)?
    };
    MqttString::try_from(s).map_err(|_| Error::IncorrectFormat)
}

fn is_level_char(c: char) -> bool {
    !matches!(c, '/' | '+' | '#')
}

/// One topic level (possibly empty), without `/`, `+` or `#`.
fn level(u: &mut Unstructured<'_>, s: &mut String) -> Result<()> {
    if chance(u, 1, 4)? {
        return Ok(());
    }
    let n = if chance(u, 1, 16)? {
        small_len(u)?
    } else {
        u.int_in_range(1..=6)?
    };
    for _ in 0..n {
        s.push(any_char(u, is_level_char)?);
    }
    Ok(())
}

/// A valid Topic Name: 1 to 6 levels, empty levels included (`a//b`, `/a`,
/// `a/`, `/`), sometimes a `$` first level.
pub fn topic_name(u: &mut Unstructured<'_>) -> Result<TopicName> {
    let mut s = String::new();
    if chance(u, 1, 10)? {
        s.push_str(u.choose(&["$SYS", "$", "$share"])?);
        s.push('/');
    }
    let levels = u.int_in_range(1..=6)?;
    for i in 0..levels {
        if i > 0 {
            s.push('/');
        }
        level(u, &mut s)?;
    }
    if s.is_empty() {
        s.push_str(u.choose(&["/", "a", "é"])?);
    }
    TopicName::try_from(s).map_err(|_| Error::IncorrectFormat)
}

/// A valid Topic Filter: levels that are `+`, text or empty, maybe `#` last;
/// sometimes a shared subscription `$share/{group}/{filter}`.
pub fn topic_filter(u: &mut Unstructured<'_>) -> Result<TopicFilter> {
    let mut s = String::new();
    if chance(u, 1, 8)? {
        s.push_str("$share/");
        let start = s.len();
        for _ in 0..u.int_in_range(1..=5)? {
            s.push(any_char(u, is_level_char)?);
        }
        if s.len() == start {
            s.push('g');
        }
        s.push('/');
    }
    let start = s.len();
    let levels = u.int_in_range(1..=6)?;
    for i in 0..levels {
        if i > 0 {
            s.push('/');
        }
        match u.int_in_range(0u8..=9)? {
            0 | 1 => s.push('+'),
            2 if i + 1 == levels => s.push('#'),
            _ => level(u, &mut s)?,
        }
    }
    if s.len() == start {
        s.push(*u.choose(&['#', '+', 'a'])?);
    }
    TopicFilter::try_from(s).map_err(|_| Error::IncorrectFormat)
}

/// Bytes for a payload or Binary Data: mostly short, rarely up to
/// `huge_max` (the first bytes from `u`, the rest a counting pattern).
fn blob(u: &mut Unstructured<'_>, huge_max: usize) -> Result<Bytes> {
    let n = if chance(u, 1, 500)? {
        u.int_in_range(huge_max.saturating_sub(1000)..=huge_max)?
    } else {
        small_len(u)?
    };
    let head = u.bytes(n.min(u.len()).min(64))?;
    let mut v = Vec::with_capacity(n);
    v.extend_from_slice(head);
    v.extend((v.len()..n).map(|i| i as u8));
    Ok(Bytes::from(v))
}

/// Binary Data (two-byte length: at most 65,535 bytes).
pub fn binary(u: &mut Unstructured<'_>) -> Result<Bytes> {
    blob(u, usize::from(u16::MAX))
}

/// A PUBLISH payload (sometimes above 16,384 bytes and even 65,535, so the
/// Remaining Length takes three bytes).
pub fn payload(u: &mut Unstructured<'_>) -> Result<Bytes> {
    blob(u, 70_000)
}

fn u16_val(u: &mut Unstructured<'_>) -> Result<u16> {
    Ok(match u.int_in_range(0u8..=7)? {
        0 => 0,
        1 => 1,
        2 => u16::MAX,
        _ => u16::arbitrary(u)?,
    })
}

fn u32_val(u: &mut Unstructured<'_>) -> Result<u32> {
    Ok(match u.int_in_range(0u8..=7)? {
        0 => 0,
        1 => 1,
        2 => u32::MAX,
        _ => u32::arbitrary(u)?,
    })
}

fn nz16(u: &mut Unstructured<'_>) -> Result<NonZeroU16> {
    Ok(NonZeroU16::new(u16_val(u)?).unwrap_or(NonZeroU16::MAX))
}

fn nz32(u: &mut Unstructured<'_>) -> Result<NonZeroU32> {
    Ok(NonZeroU32::new(u32_val(u)?).unwrap_or(NonZeroU32::MAX))
}

/// A non-zero Packet Identifier (MQTT-2.3.1-1), often a boundary value.
pub fn packet_id(u: &mut Unstructured<'_>) -> Result<PacketId> {
    Ok(PacketId::from(nz16(u)?))
}

/// A Subscription Identifier, often at a Variable Byte Integer boundary.
pub fn subscription_id(u: &mut Unstructured<'_>) -> Result<SubscriptionId> {
    let v = match u.int_in_range(0u8..=11)? {
        0 => 1,
        1 => 127,
        2 => 128,
        3 => 16_383,
        4 => 16_384,
        5 => 2_097_151,
        6 => 2_097_152,
        7 => SubscriptionId::MAX,
        _ => u.int_in_range(1..=SubscriptionId::MAX)?,
    };
    SubscriptionId::new(v).ok_or(Error::IncorrectFormat)
}

fn opt<'a, T>(
    u: &mut Unstructured<'a>,
    f: impl FnOnce(&mut Unstructured<'a>) -> Result<T>,
) -> Result<Option<T>> {
    if chance(u, 1, 2)? {
        f(u).map(Some)
    } else {
        Ok(None)
    }
}

fn boolean(u: &mut Unstructured<'_>) -> Result<bool> {
    bool::arbitrary(u)
}

/// 0 to 3 User Properties (names and values may repeat and be empty),
/// built with `push` or `FromIterator`.
pub fn user_properties(u: &mut Unstructured<'_>) -> Result<UserProperties> {
    let n = u.int_in_range(0..=3)?;
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        pairs.push((string(u)?, string(u)?));
    }
    Ok(if chance(u, 1, 2)? {
        pairs.into_iter().collect()
    } else {
        let mut up = UserProperties::new();
        for (k, v) in pairs {
            up.push(k, v);
        }
        up
    })
}

/// 0 to 3 Subscription Identifiers (for a PUBLISH).
pub fn subscription_ids(u: &mut Unstructured<'_>) -> Result<SubscriptionIds> {
    let n = u.int_in_range(0..=3)?;
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(subscription_id(u)?);
    }
    Ok(if chance(u, 1, 2)? {
        ids.into_iter().collect()
    } else {
        let mut s = SubscriptionIds::new();
        for id in ids {
            s.push(id);
        }
        s
    })
}

fn pick<T: Copy>(u: &mut Unstructured<'_>, all: &[T]) -> Result<T> {
    u.choose(all).copied()
}

// ---------------------------------------------------------------------------
// Properties (5.0)
// ---------------------------------------------------------------------------

/// Whether to leave a property set empty (common on the wire, and it
/// exercises the short forms of the acknowledgements).
fn none_at_all(u: &mut Unstructured<'_>) -> Result<bool> {
    Ok(!chance(u, 2, 3)?)
}

/// CONNECT properties; Authentication Data only with a Method.
pub fn connect_properties(u: &mut Unstructured<'_>) -> Result<ConnectProperties> {
    if none_at_all(u)? {
        return Ok(ConnectProperties::default());
    }
    let authentication_method = opt(u, string)?;
    let authentication_data = match authentication_method {
        Some(_) => opt(u, binary)?,
        None => None,
    };
    Ok(ConnectProperties {
        session_expiry_interval: opt(u, u32_val)?,
        receive_maximum: opt(u, nz16)?,
        maximum_packet_size: opt(u, nz32)?,
        topic_alias_maximum: opt(u, u16_val)?,
        request_response_information: opt(u, boolean)?,
        request_problem_information: opt(u, boolean)?,
        authentication_method,
        authentication_data,
        user_properties: user_properties(u)?,
    })
}

/// Will Properties.
pub fn will_properties(u: &mut Unstructured<'_>) -> Result<WillProperties> {
    if none_at_all(u)? {
        return Ok(WillProperties::default());
    }
    Ok(WillProperties {
        will_delay_interval: opt(u, u32_val)?,
        payload_format_indicator: opt(u, Arbitrary::arbitrary)?,
        message_expiry_interval: opt(u, u32_val)?,
        content_type: opt(u, string)?,
        response_topic: opt(u, topic_name)?,
        correlation_data: opt(u, binary)?,
        user_properties: user_properties(u)?,
    })
}

/// CONNACK properties; Authentication Data only with a Method.
pub fn connack_properties(u: &mut Unstructured<'_>) -> Result<ConnAckProperties> {
    if none_at_all(u)? {
        return Ok(ConnAckProperties::default());
    }
    let authentication_method = opt(u, string)?;
    let authentication_data = match authentication_method {
        Some(_) => opt(u, binary)?,
        None => None,
    };
    Ok(ConnAckProperties {
        session_expiry_interval: opt(u, u32_val)?,
        receive_maximum: opt(u, nz16)?,
        maximum_qos: opt(u, Arbitrary::arbitrary)?,
        retain_available: opt(u, boolean)?,
        maximum_packet_size: opt(u, nz32)?,
        assigned_client_identifier: opt(u, string)?,
        topic_alias_maximum: opt(u, u16_val)?,
        reason_string: opt(u, string)?,
        wildcard_subscription_available: opt(u, boolean)?,
        subscription_identifiers_available: opt(u, boolean)?,
        shared_subscription_available: opt(u, boolean)?,
        server_keep_alive: opt(u, u16_val)?,
        response_information: opt(u, string)?,
        server_reference: opt(u, string)?,
        authentication_method,
        authentication_data,
        user_properties: user_properties(u)?,
    })
}

/// PUBLISH properties (Topic Alias never 0, MQTT-3.3.2-8).
pub fn publish_properties(u: &mut Unstructured<'_>) -> Result<PublishProperties> {
    if none_at_all(u)? {
        return Ok(PublishProperties::default());
    }
    let mut p = PublishProperties::new();
    p.payload_format_indicator = opt(u, Arbitrary::arbitrary)?;
    p.message_expiry_interval = opt(u, u32_val)?;
    p.topic_alias = opt(u, nz16)?;
    p.set_response_topic(opt(u, topic_name)?);
    // `binary` stays within 65,535 bytes, so this cannot fail.
    let _ = p.set_correlation_data(opt(u, binary)?);
    p.set_content_type(opt(u, string)?);
    p.set_user_properties(user_properties(u)?);
    p.set_subscription_identifiers(subscription_ids(u)?);
    Ok(p)
}

/// Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK.
pub fn ack_properties(u: &mut Unstructured<'_>) -> Result<AckProperties> {
    if none_at_all(u)? {
        return Ok(AckProperties::default());
    }
    Ok(AckProperties {
        reason_string: opt(u, string)?,
        user_properties: user_properties(u)?,
    })
}

/// SUBSCRIBE properties.
pub fn subscribe_properties(u: &mut Unstructured<'_>) -> Result<SubscribeProperties> {
    if none_at_all(u)? {
        return Ok(SubscribeProperties::default());
    }
    Ok(SubscribeProperties {
        subscription_identifier: opt(u, subscription_id)?,
        user_properties: user_properties(u)?,
    })
}

/// DISCONNECT properties.
pub fn disconnect_properties(u: &mut Unstructured<'_>) -> Result<DisconnectProperties> {
    if none_at_all(u)? {
        return Ok(DisconnectProperties::default());
    }
    Ok(DisconnectProperties {
        session_expiry_interval: opt(u, u32_val)?,
        reason_string: opt(u, string)?,
        server_reference: opt(u, string)?,
        user_properties: user_properties(u)?,
    })
}

/// AUTH properties: always with an Authentication Method (omitting it is a
/// Protocol Error, MQTT 5.0 §3.15.2.2.2).
pub fn auth_properties(u: &mut Unstructured<'_>) -> Result<AuthProperties> {
    Ok(AuthProperties {
        authentication_method: Some(string(u)?),
        authentication_data: opt(u, binary)?,
        reason_string: opt(u, string)?,
        user_properties: user_properties(u)?,
    })
}

// ---------------------------------------------------------------------------
// Packets
// ---------------------------------------------------------------------------

/// A valid packet of any type `version` can carry (AUTH only in 5.0), with
/// 5.0 properties and reason codes only for 5.0, so that encoding it for
/// `version` succeeds and decoding the bytes gives it back.
///
/// It never fails for lack of data (exhausted input gives defaults), only
/// if a generated value were invalid, which would be a bug here.
pub fn packet(u: &mut Unstructured<'_>, version: ProtocolVersion) -> Result<Packet> {
    let v5 = version.is_v5();
    // Weighted towards the packets with the most fields; exhausted input
    // gives a PUBLISH.
    let last: u8 = if v5 { 31 } else { 28 };
    Ok(match u.int_in_range(0..=last)? {
        0..=5 => Packet::Publish(publish(u, version)?),
        6..=8 => Packet::from(connect(u, version)?),
        9 | 10 => Packet::from(connack(u, version)?),
        11 | 12 => Packet::PubAck(PubAck {
            packet_id: packet_id(u)?,
            reason_code: pub_ack_code(u, v5)?,
            properties: ack_props_for(u, v5)?,
        }),
        13 => Packet::PubRec(PubRec {
            packet_id: packet_id(u)?,
            reason_code: pub_ack_code(u, v5)?,
            properties: ack_props_for(u, v5)?,
        }),
        14 => Packet::PubRel(PubRel {
            packet_id: packet_id(u)?,
            reason_code: pub_rel_code(u, v5)?,
            properties: ack_props_for(u, v5)?,
        }),
        15 => Packet::PubComp(PubComp {
            packet_id: packet_id(u)?,
            reason_code: pub_rel_code(u, v5)?,
            properties: ack_props_for(u, v5)?,
        }),
        16..=18 => Packet::Subscribe(subscribe(u, version)?),
        19 | 20 => Packet::SubAck(suback(u, version)?),
        21 | 22 => Packet::Unsubscribe(unsubscribe(u, version)?),
        23 | 24 => Packet::UnsubAck(unsuback(u, version)?),
        25 => Packet::PingReq,
        26 => Packet::PingResp,
        27 | 28 => Packet::Disconnect(disconnect(u, version)?),
        _ => Packet::from(auth(u)?),
    })
}

/// A PUBLISH: DUP only at QoS > 0; in 5.0 the topic may be left out when a
/// Topic Alias stands in.
pub fn publish(u: &mut Unstructured<'_>, version: ProtocolVersion) -> Result<Publish> {
    let delivery = match u.int_in_range(0u8..=2)? {
        0 => Delivery::AtMostOnce,
        1 => Delivery::AtLeastOnce(packet_id(u)?),
        _ => Delivery::ExactlyOnce(packet_id(u)?),
    };
    let dup = delivery != Delivery::AtMostOnce && boolean(u)?;
    let retain = boolean(u)?;
    let properties = if version.is_v5() {
        publish_properties(u)?
    } else {
        PublishProperties::default()
    };
    let topic = if properties.topic_alias.is_some() && chance(u, 1, 2)? {
        None
    } else {
        Some(topic_name(u)?)
    };
    Ok(Publish {
        dup,
        delivery,
        retain,
        topic,
        payload: payload(u)?,
        properties,
    })
}

/// A CONNECT announcing `version`; before 5.0 a password only with a user
/// name (MQTT-3.1.2-22 of 3.1.1).
pub fn connect(u: &mut Unstructured<'_>, version: ProtocolVersion) -> Result<Connect> {
    let v5 = version.is_v5();
    let properties = if v5 {
        connect_properties(u)?
    } else {
        ConnectProperties::default()
    };
    let will = opt(u, |u| {
        Ok(LastWill {
            topic: topic_name(u)?,
            payload: binary(u)?,
            qos: QoS::arbitrary(u)?,
            retain: boolean(u)?,
            properties: if v5 {
                will_properties(u)?
            } else {
                WillProperties::default()
            },
        })
    })?;
    let username = opt(u, string)?;
    let password = if username.is_some() || v5 {
        opt(u, binary)?
    } else {
        None
    };
    Ok(Connect {
        protocol: version,
        clean_start: boolean(u)?,
        keep_alive: u16_val(u)?,
        client_id: string(u)?,
        will,
        username,
        password,
        properties,
    })
}

/// A CONNACK; before 5.0 only the six Connect Return Codes. Session Present
/// only with Success (MQTT-3.2.2-6; MQTT-3.2.2-4 of 3.1.1).
pub fn connack(u: &mut Unstructured<'_>, version: ProtocolVersion) -> Result<ConnAck> {
    let reason_code = if version.is_v5() {
        pick(u, ConnectReasonCode::ALL)?
    } else {
        ConnectReasonCode::from_v3(u.int_in_range(0..=5)?).unwrap_or(ConnectReasonCode::Success)
    };
    Ok(ConnAck {
        session_present: reason_code == ConnectReasonCode::Success && boolean(u)?,
        reason_code,
        properties: if version.is_v5() {
            connack_properties(u)?
        } else {
            ConnAckProperties::default()
        },
    })
}

fn pub_ack_code(u: &mut Unstructured<'_>, v5: bool) -> Result<PubAckReasonCode> {
    if v5 {
        pick(u, PubAckReasonCode::ALL)
    } else {
        Ok(PubAckReasonCode::Success)
    }
}

fn pub_rel_code(u: &mut Unstructured<'_>, v5: bool) -> Result<PubRelReasonCode> {
    if v5 {
        pick(u, PubRelReasonCode::ALL)
    } else {
        Ok(PubRelReasonCode::Success)
    }
}

fn ack_props_for(u: &mut Unstructured<'_>, v5: bool) -> Result<AckProperties> {
    if v5 {
        ack_properties(u)
    } else {
        Ok(AckProperties::default())
    }
}

/// A SUBSCRIBE of 1 to 4 filters; before 5.0 options are only a QoS. No
/// Local is never set on a shared subscription (MQTT-3.8.3-4).
pub fn subscribe(u: &mut Unstructured<'_>, version: ProtocolVersion) -> Result<Subscribe> {
    let v5 = version.is_v5();
    let packet_id = packet_id(u)?;
    let properties = if v5 {
        subscribe_properties(u)?
    } else {
        SubscribeProperties::default()
    };
    let n = u.int_in_range(1..=4)?;
    let mut subscriptions = Vec::with_capacity(n);
    for _ in 0..n {
        let filter = topic_filter(u)?;
        let qos = QoS::arbitrary(u)?;
        let options = if v5 {
            let shared = filter.as_bytes().starts_with(b"$share/");
            SubscriptionOptions {
                qos,
                no_local: !shared && boolean(u)?,
                retain_as_published: boolean(u)?,
                retain_handling: RetainHandling::arbitrary(u)?,
            }
        } else {
            SubscriptionOptions::new(qos)
        };
        subscriptions.push(Subscription { filter, options });
    }
    Ok(Subscribe {
        packet_id,
        subscriptions,
        properties,
    })
}

/// A SUBACK of 1 to 4 codes; before 5.0 only 0x00, 0x01, 0x02 and 0x80.
pub fn suback(u: &mut Unstructured<'_>, version: ProtocolVersion) -> Result<SubAck> {
    const V3: &[SubAckReasonCode] = &[
        SubAckReasonCode::GrantedQoS0,
        SubAckReasonCode::GrantedQoS1,
        SubAckReasonCode::GrantedQoS2,
        SubAckReasonCode::UnspecifiedError,
    ];
    let v5 = version.is_v5();
    let packet_id = packet_id(u)?;
    let properties = ack_props_for(u, v5)?;
    let all = if v5 { SubAckReasonCode::ALL } else { V3 };
    let n = u.int_in_range(1..=4)?;
    let mut reason_codes = Vec::with_capacity(n);
    for _ in 0..n {
        reason_codes.push(pick(u, all)?);
    }
    Ok(SubAck {
        packet_id,
        reason_codes,
        properties,
    })
}

/// An UNSUBSCRIBE of 1 to 4 filters.
pub fn unsubscribe(u: &mut Unstructured<'_>, version: ProtocolVersion) -> Result<Unsubscribe> {
    let packet_id = packet_id(u)?;
    let properties = if version.is_v5() {
        UnsubscribeProperties {
            user_properties: user_properties(u)?,
        }
    } else {
        UnsubscribeProperties::default()
    };
    let n = u.int_in_range(1..=4)?;
    let mut filters = Vec::with_capacity(n);
    for _ in 0..n {
        filters.push(topic_filter(u)?);
    }
    Ok(Unsubscribe {
        packet_id,
        filters,
        properties,
    })
}

/// An UNSUBACK: 1 to 4 codes in 5.0; none before (a 3.1.1 UNSUBACK carries
/// none and decodes with an empty list).
pub fn unsuback(u: &mut Unstructured<'_>, version: ProtocolVersion) -> Result<UnsubAck> {
    let v5 = version.is_v5();
    let packet_id = packet_id(u)?;
    let properties = ack_props_for(u, v5)?;
    let mut reason_codes = Vec::new();
    if v5 {
        for _ in 0..u.int_in_range(1..=4)? {
            reason_codes.push(pick(u, UnsubAckReasonCode::ALL)?);
        }
    }
    Ok(UnsubAck {
        packet_id,
        reason_codes,
        properties,
    })
}

/// A DISCONNECT; before 5.0 it carries nothing.
pub fn disconnect(u: &mut Unstructured<'_>, version: ProtocolVersion) -> Result<Disconnect> {
    Ok(if version.is_v5() {
        Disconnect {
            reason_code: pick(u, DisconnectReasonCode::ALL)?,
            properties: disconnect_properties(u)?,
        }
    } else {
        Disconnect::default()
    })
}

/// An AUTH (5.0 only): the empty short form (Success, no properties), or a
/// reason code with an Authentication Method.
pub fn auth(u: &mut Unstructured<'_>) -> Result<Auth> {
    Ok(if !chance(u, 4, 5)? {
        Auth::new(AuthReasonCode::Success)
    } else {
        Auth {
            reason_code: pick(u, AuthReasonCode::ALL)?,
            properties: auth_properties(u)?,
        }
    })
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

/// Fuzz entry `wire_roundtrip`: a version and a valid packet built from
/// `data`, then [`check_packet`].
pub fn check_roundtrip(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(version) = ProtocolVersion::arbitrary(&mut u) else {
        return;
    };
    let p = packet(&mut u, version);
    assert!(p.is_ok(), "the generator failed: {p:?}");
    if let Ok(p) = p {
        check_packet(&p, version);
    }
}

/// Every encode/decode contract for one valid packet `p` of `version`:
///
/// - `encode` succeeds, writes `encoded_len` bytes and the right type;
/// - `encode_checked` accepts a limit of exactly that size and refuses one
///   byte less with `PacketTooLarge`; a buffer one byte short is refused
///   with `BufferTooSmall` and nothing is written;
/// - `decode` and `decode_bytes` give `p` back, consuming exactly the
///   packet (a trailing PINGREQ stays for the next call);
/// - the decoder's maximum packet size accepts exactly the encoded size;
/// - every proper prefix is `Ok(None)` and consumes nothing;
/// - for the other versions, encoding either fails with `NotInVersion` (or
///   the documented `EmptyPayload` / `MissingTopic`), or decodes to the
///   same packet: content is refused, never silently dropped.
pub fn check_packet(p: &Packet, version: ProtocolVersion) {
    let len = p.encoded_len(version);
    let mut out = BytesMut::new();
    let written = p.encode(version, &mut out);
    assert_eq!(written, Ok(len), "encode of {p:?} for {version}");
    assert_eq!(out.len(), len, "encoded_len of {p:?} for {version}");
    let bytes = out.freeze();
    assert_eq!(
        bytes.first().map(|b| b >> 4),
        Some(p.packet_type() as u8),
        "packet type of {p:?}"
    );

    // The peer's Maximum Packet Size: exactly the size passes, one less not.
    let max = u32::try_from(len).unwrap_or(u32::MAX);
    let mut again = BytesMut::new();
    assert_eq!(p.encode_checked(version, max, &mut again), Ok(len));
    assert_eq!(
        again.freeze(),
        bytes,
        "encode_checked writes what encode does"
    );
    let mut refused = BytesMut::new();
    assert_eq!(
        p.encode_checked(version, max - 1, &mut refused),
        Err(EncodeError::PacketTooLarge {
            size: len,
            max: max - 1
        }),
        "{p:?} for {version}"
    );
    assert!(refused.is_empty(), "a refused encode writes nothing");

    // A buffer one byte short: refused, untouched.
    let mut short = alloc::vec![0u8; len - 1];
    let mut slice = short.as_mut_slice();
    assert_eq!(
        p.encode(version, &mut slice),
        Err(EncodeError::BufferTooSmall {
            needed: len,
            remaining: len - 1
        })
    );
    assert!(
        short.iter().all(|&b| b == 0),
        "a refused encode writes nothing"
    );

    // Decode, with the next packet already buffered behind it.
    let cfg = DecodeConfig::new(version).with_max_packet_size(MAX_PACKET_SIZE);
    let mut buf = BytesMut::from(bytes.as_ref());
    buf.extend_from_slice(&[0xc0, 0x00]);
    assert_eq!(decode(&mut buf, &cfg), Ok(Some(p.clone())), "{version}");
    assert_eq!(
        buf.as_ref(),
        &[0xc0, 0x00],
        "decode consumes exactly one packet"
    );
    assert_eq!(decode(&mut buf, &cfg), Ok(Some(Packet::PingReq)));
    assert_eq!(decode(&mut buf, &cfg), Ok(None));

    let mut b = bytes.clone();
    assert_eq!(decode_bytes(&mut b, &cfg), Ok(Some(p.clone())));
    assert!(b.is_empty());

    // The borrowed decoder: the same packet, the same length, and a
    // PUBLISH view that agrees with the owned one field by field.
    let mut trailing = bytes.to_vec();
    trailing.extend_from_slice(&[0xc0, 0x00]);
    let got = decode_ref(&trailing, &cfg);
    assert!(
        matches!(&got, Ok(Some((_, n))) if *n == len),
        "decode_ref of {p:?}: {got:?}"
    );
    if let Ok(Some((r, _))) = got {
        if let (PacketRef::Publish(r), Packet::Publish(o)) = (&r, p) {
            check_publish_ref(r, o);
        }
        assert_eq!(r.into_packet(), *p, "decode_ref, {version}");
    }

    // The decoder's limit agrees with the encoder's size.
    let exact = DecodeConfig::new(version).with_max_packet_size(max);
    let mut buf = BytesMut::from(bytes.as_ref());
    assert_eq!(decode(&mut buf, &exact), Ok(Some(p.clone())));
    let below = DecodeConfig::new(version).with_max_packet_size(max - 1);
    let mut buf = BytesMut::from(bytes.as_ref());
    assert_eq!(
        decode(&mut buf, &below),
        Err(DecodeError::PacketTooLarge {
            size: len,
            max: max - 1
        })
    );
    assert_eq!(
        buf.len(),
        len,
        "refused from the fixed header, nothing consumed"
    );

    // Every proper prefix waits for more and consumes nothing (all of them
    // for small packets, a sample for large ones).
    let step = (len / 512).max(1);
    for cut in (0..len).step_by(step).chain([len - 1]) {
        let prefix = bytes.get(..cut).unwrap_or_default();
        let mut buf = BytesMut::from(prefix);
        assert_eq!(decode(&mut buf, &cfg), Ok(None), "prefix of {cut}/{len}");
        assert_eq!(buf.len(), cut, "Ok(None) consumes nothing");
        assert_eq!(decode_ref(prefix, &cfg), Ok(None), "prefix of {cut}/{len}");
    }

    check_accessors(p);
    check_other_versions(p, version);
}

/// Encoding for a version that cannot carry everything in `p` is refused,
/// never lossy (the one documented exception: a 3.1.1 UNSUBACK carries no
/// reason codes, so only all-`Success` codes are encoded, and come back as
/// none).
#[allow(clippy::panic)] // a broken contract is reported by panicking
fn check_other_versions(p: &Packet, version: ProtocolVersion) {
    for other in VERSIONS {
        if other == version {
            continue;
        }
        let mut out = BytesMut::new();
        match p.encode(other, &mut out) {
            Ok(n) => {
                assert_eq!(n, p.encoded_len(other));
                let cfg = DecodeConfig::new(other).with_max_packet_size(MAX_PACKET_SIZE);
                let got = decode(&mut out, &cfg);
                let want = match p {
                    Packet::UnsubAck(a) if !other.is_v5() => {
                        assert!(
                            a.reason_codes
                                .iter()
                                .all(|c| *c == UnsubAckReasonCode::Success),
                            "3.1.1 UNSUBACK encoded with a failure code: {p:?}"
                        );
                        let mut a = a.clone();
                        a.reason_codes.clear();
                        Packet::UnsubAck(a)
                    }
                    _ => p.clone(),
                };
                assert_eq!(got, Ok(Some(want)), "{p:?} encoded for {other}");
                assert!(out.is_empty());
            }
            Err(EncodeError::NotInVersion { version: v, .. }) => {
                assert_eq!(v, other);
                assert!(out.is_empty(), "a refused encode writes nothing");
            }
            Err(e @ EncodeError::EmptyPayload { .. }) => {
                // Only a 3.1.1 UNSUBACK (no codes) sent to a 5.0 peer.
                assert!(
                    other.is_v5() && matches!(p, Packet::UnsubAck(a) if a.reason_codes.is_empty()),
                    "{e:?} for {p:?} in {other}"
                );
            }
            Err(EncodeError::MissingTopic) => {
                // Only a 5.0 PUBLISH relying on a Topic Alias sent to 3.1.1.
                assert!(
                    !other.is_v5() && matches!(p, Packet::Publish(x) if x.topic.is_none()),
                    "MissingTopic for {p:?} in {other}"
                );
            }
            Err(e) => panic!("unexpected {e:?} encoding {p:?} for {other}"),
        }
    }
}

/// What decoding a byte stream gave: the packets, then the first error (the
/// stream stops there) or the bytes left waiting for more.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Packets decoded, in order.
    pub packets: Vec<Packet>,
    /// The error that stopped decoding.
    pub error: Option<DecodeError>,
    /// Bytes left in the buffer at the end (0 after an error).
    pub leftover: usize,
}

/// Feeds `chunks` one by one into a `BytesMut`, decoding after each until
/// `Ok(None)` or an error, and checks the streaming contract on the way:
/// `Ok(None)` consumes nothing and only happens when the buffer holds less
/// than a packet; `Ok(Some)` consumes exactly the packet its fixed header
/// announces.
pub fn decode_chunks<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
    cfg: &DecodeConfig,
) -> Outcome {
    let mut out = Outcome::default();
    let mut buf = BytesMut::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            let header = FixedHeader::parse(&buf, cfg);
            match decode(&mut buf, cfg) {
                Ok(Some(p)) => {
                    let h = header.ok().flatten();
                    assert_eq!(
                        h.map(|h| h.packet_len()),
                        Some(before - buf.len()),
                        "success consumes exactly one packet"
                    );
                    out.packets.push(p);
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before, "Ok(None) consumes nothing");
                    if let Ok(Some(h)) = header {
                        assert!(h.packet_len() > before, "Ok(None) with a whole packet");
                    }
                    break;
                }
                Err(e) => {
                    if let Err(from_header) = header {
                        assert_eq!(from_header, e, "the fixed header's error");
                    }
                    check_error(&e);
                    out.error = Some(e);
                    return out;
                }
            }
        }
    }
    out.leftover = buf.len();
    out
}

/// A decode error formats, and maps to a reason code that reports a
/// failure; its spec id, when it has one, is an MQTT statement id and the
/// message names a statement id too. (Not necessarily the same one: a
/// U+0000 in a topic is `MQTT-4.7.3-2` by `spec_id` and is displayed with
/// the string rule `MQTT-1.5.4-2`.)
pub fn check_error(e: &DecodeError) {
    let text = alloc::format!("{e}");
    assert!(!text.is_empty());
    assert!(e.reason_code().is_error(), "{e:?}");
    assert!(e.connect_reason_code().is_error(), "{e:?}");
    if let Some(id) = e.spec_id() {
        assert!(id.starts_with("MQTT-"), "{e:?}: {id}");
        assert!(text.contains("(MQTT-"), "{text} does not name a rule");
    }
}

/// [`decode_chunks`] over one `Bytes` with `decode_bytes`.
pub fn decode_whole_bytes(data: &[u8], cfg: &DecodeConfig) -> Outcome {
    let mut out = Outcome::default();
    let mut buf = Bytes::copy_from_slice(data);
    loop {
        let before = buf.len();
        match decode_bytes(&mut buf, cfg) {
            Ok(Some(p)) => out.packets.push(p),
            Ok(None) => {
                assert_eq!(buf.len(), before, "Ok(None) consumes nothing");
                out.leftover = buf.len();
                return out;
            }
            Err(e) => {
                out.error = Some(e);
                return out;
            }
        }
    }
}

/// [`decode_chunks`] over one slice with the borrowed [`decode_ref`]: each
/// PUBLISH is checked against its owned copy ([`check_publish_ref`]) and
/// every packet is converted to the owned [`Packet`] to be compared. Also
/// checks that `Ok(Some((_, n)))` reports the length the fixed header
/// announces and `Ok(None)` happens only when less than a packet is left.
pub fn decode_whole_ref(data: &[u8], cfg: &DecodeConfig) -> Outcome {
    let mut out = Outcome::default();
    let mut rest = data;
    loop {
        let header = FixedHeader::parse(rest, cfg);
        match decode_ref(rest, cfg) {
            Ok(Some((p, n))) => {
                let h = header.ok().flatten();
                assert_eq!(h.map(|h| h.packet_len()), Some(n), "decode_ref's length");
                assert!(n > 0 && n <= rest.len());
                let packet = match p {
                    PacketRef::Publish(r) => {
                        let owned = r.to_publish();
                        check_publish_ref(&r, &owned);
                        assert_eq!(PacketRef::Publish(r).packet_type(), PacketType::Publish);
                        Packet::Publish(owned)
                    }
                    PacketRef::Other(p) => {
                        assert_ne!(p.packet_type(), PacketType::Publish);
                        p
                    }
                };
                out.packets.push(packet);
                rest = rest.get(n..).unwrap_or_default();
            }
            Ok(None) => {
                if let Ok(Some(h)) = header {
                    assert!(h.packet_len() > rest.len(), "Ok(None) with a whole packet");
                }
                out.leftover = rest.len();
                return out;
            }
            Err(e) => {
                if let Err(from_header) = header {
                    assert_eq!(from_header, e, "the fixed header's error");
                }
                out.error = Some(e);
                return out;
            }
        }
    }
}

/// A borrowed PUBLISH agrees with the owned one, accessor by accessor
/// (topic, payload, flags, every property), and formats.
pub fn check_publish_ref(r: &PublishRef<'_>, o: &Publish) {
    let _ = alloc::format!("{r:?}");
    assert_eq!(r.dup(), o.dup);
    assert_eq!(r.delivery(), o.delivery);
    assert_eq!(r.qos(), o.qos());
    assert_eq!(r.packet_id(), o.packet_id());
    assert_eq!(r.retain(), o.retain);
    assert_eq!(r.topic(), o.topic.as_ref().map(TopicName::as_str));
    assert_eq!(
        r.topic_bytes(),
        o.topic.as_ref().map_or(&[][..], TopicName::as_bytes)
    );
    assert_eq!(r.payload(), &o.payload[..]);
    let (rp, op): (&PublishPropertiesRef<'_>, &PublishProperties) = (r.properties(), &o.properties);
    assert_eq!(rp.is_empty(), op.is_empty());
    assert_eq!(rp.payload_format_indicator, op.payload_format_indicator);
    assert_eq!(rp.message_expiry_interval, op.message_expiry_interval);
    assert_eq!(rp.topic_alias, op.topic_alias);
    assert_eq!(
        rp.response_topic(),
        op.response_topic().as_ref().map(TopicName::as_str)
    );
    assert_eq!(rp.correlation_data(), op.correlation_data().as_deref());
    assert_eq!(
        rp.content_type(),
        op.content_type().as_ref().map(MqttString::as_str)
    );
    let owned_up: Vec<(MqttString, MqttString)> = op.user_properties().iter().collect();
    assert!(rp
        .user_properties()
        .eq(owned_up.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
    assert!(rp
        .subscription_identifiers()
        .eq(op.subscription_identifiers().iter()));
    assert_eq!(&rp.to_properties(), op);
    assert_eq!(&r.to_publish(), o);
    assert_eq!(&Publish::from(*r), o);
}

/// Splits `data` into chunks whose sizes cycle through `sizes` (a size of 0
/// counts as 1; no sizes: one chunk).
pub fn chunk_by_sizes<'a>(data: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = match sizes.get(i % sizes.len().max(1)) {
            Some(&n) => n.clamp(1, rest.len()),
            None => rest.len(),
        };
        let (head, tail) = rest.split_at(n);
        chunks.push(head);
        rest = tail;
        i += 1;
    }
    chunks
}

/// Chunk sizes from one seed byte: the low 3 bits choose the largest chunk
/// (1, 2, 3, 5, 8, 17, 64 or 1024 bytes), a xorshift seeded with the byte
/// draws each size.
fn sizes_from_seed(seed: u8, n: usize) -> Vec<usize> {
    const LIMITS: [u32; 8] = [1, 2, 3, 5, 8, 17, 64, 1024];
    let limit = LIMITS.get(usize::from(seed & 7)).copied().unwrap_or(1);
    let mut x = 0x9e37_79b9u32 ^ u32::from(seed).wrapping_mul(0x0101_0101);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x % limit) as usize + 1
        })
        .collect()
}

/// A small maximum packet size from the seed (2 to 254 bytes), so that
/// refusals from the fixed header are exercised too.
fn small_max(seed: u8) -> u32 {
    2 + u32::from(seed >> 3) * 8
}

/// Fuzz entry `wire_decode`: byte 0 chooses the chunking (and a small
/// packet size limit), the rest is the stream. For every version and for
/// the default and the small limit, the stream decoded whole (with `decode`
/// and with `decode_bytes`) and in chunks gives the same packets and the
/// same first error; [`decode_chunks`] checks the streaming contract. Every
/// packet decoded is then re-encoded: encoding succeeds and decodes to the
/// same packet.
pub fn check_decode_any_chunking(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let sizes = sizes_from_seed(seed, 64);
    let chunks = chunk_by_sizes(stream, &sizes);
    for version in VERSIONS {
        for max in [DEFAULT_MAX_PACKET_SIZE, small_max(seed)] {
            let cfg = DecodeConfig::new(version).with_max_packet_size(max);
            let whole = decode_chunks([stream], &cfg);
            assert_eq!(
                decode_whole_bytes(stream, &cfg),
                whole,
                "decode_bytes, {version}"
            );
            assert_eq!(
                decode_whole_ref(stream, &cfg),
                whole,
                "decode_ref, {version}, max {max}"
            );
            assert_eq!(
                decode_chunks(chunks.iter().copied(), &cfg),
                whole,
                "chunked {sizes:?}, {version}, max {max}"
            );
            if max == DEFAULT_MAX_PACKET_SIZE {
                for p in &whole.packets {
                    check_reencode(p, version);
                }
            }
        }
    }
}

/// A decoded packet encodes for the version it was decoded with (a CONNECT
/// for its own), to `encoded_len` bytes that decode to the same packet.
pub fn check_reencode(p: &Packet, version: ProtocolVersion) {
    let mut out = BytesMut::new();
    let n = p.encode(version, &mut out);
    assert_eq!(
        n,
        Ok(p.encoded_len(version)),
        "re-encode {p:?} for {version}"
    );
    let cfg = DecodeConfig::new(version).with_max_packet_size(MAX_PACKET_SIZE);
    assert_eq!(decode(&mut out, &cfg), Ok(Some(p.clone())), "{version}");
    assert!(out.is_empty());
    check_accessors(p);
}

/// The accessors of a packet agree with its contents: User Properties and
/// Subscription Identifiers rebuilt from their iterators are equal to the
/// originals (so the wire-form storage holds exactly the entries it
/// yields), and formatting the packet does not panic.
pub fn check_accessors(p: &Packet) {
    let _ = alloc::format!("{p:?}");
    for up in user_properties_of(p) {
        let up = &up;
        let rebuilt: UserProperties = up.iter().collect();
        assert_eq!(&rebuilt, up, "user properties of {p:?}");
        assert_eq!(up.len(), up.iter().count());
        assert_eq!(up.is_empty(), up.iter().next().is_none());
    }
    if let Packet::Publish(x) = p {
        let ids = &x.properties.subscription_identifiers();
        let rebuilt: SubscriptionIds = ids.iter().collect();
        assert_eq!(&rebuilt, ids, "subscription identifiers of {p:?}");
        assert_eq!(ids.is_empty(), ids.iter().next().is_none());
        assert_eq!(ids.len(), ids.iter().count());
    }
}

/// Every User Properties list a packet holds.
fn user_properties_of(p: &Packet) -> Vec<UserProperties> {
    match p {
        Packet::Connect(c) => {
            let mut v = alloc::vec![c.properties.user_properties.clone()];
            v.extend(
                c.will
                    .as_ref()
                    .map(|w| w.properties.user_properties.clone()),
            );
            v
        }
        Packet::ConnAck(x) => alloc::vec![x.properties.user_properties.clone()],
        Packet::Publish(x) => alloc::vec![x.properties.user_properties()],
        Packet::PubAck(x) => alloc::vec![x.properties.user_properties.clone()],
        Packet::PubRec(x) => alloc::vec![x.properties.user_properties.clone()],
        Packet::PubRel(x) => alloc::vec![x.properties.user_properties.clone()],
        Packet::PubComp(x) => alloc::vec![x.properties.user_properties.clone()],
        Packet::Subscribe(x) => alloc::vec![x.properties.user_properties.clone()],
        Packet::SubAck(x) => alloc::vec![x.properties.user_properties.clone()],
        Packet::Unsubscribe(x) => alloc::vec![x.properties.user_properties.clone()],
        Packet::UnsubAck(x) => alloc::vec![x.properties.user_properties.clone()],
        Packet::Disconnect(x) => alloc::vec![x.properties.user_properties.clone()],
        Packet::Auth(x) => alloc::vec![x.properties.user_properties.clone()],
        Packet::PingReq | Packet::PingResp => Vec::new(),
    }
}

/// The packet types `version` can carry.
pub fn packet_types(version: ProtocolVersion) -> impl Iterator<Item = PacketType> {
    (1..=15)
        .filter_map(PacketType::from_u8)
        .filter(move |t| version.is_v5() || *t != PacketType::Auth)
}

/// Deterministic pseudo-random bytes (xorshift), for seeds and coverage
/// tests that must not depend on a random number crate.
pub fn xorshift_bytes(seed: u64, n: usize) -> alloc::vec::Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}
