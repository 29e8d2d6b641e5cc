//! The packet model: one struct per control packet, one [`Packet`] enum over
//! them, and the framing (fixed header, size limit, streaming decode).

mod ack;
mod auth;
mod connack;
mod connect;
mod disconnect;
mod publish;
mod suback;
mod subscribe;
mod unsuback;
mod unsubscribe;

pub use ack::{PubAck, PubComp, PubRec, PubRel};
pub use auth::Auth;
pub use connack::ConnAck;
pub use connect::{Connect, LastWill};
pub use disconnect::Disconnect;
pub use publish::{Publish, PublishRef};
pub use suback::SubAck;
pub use subscribe::{RetainHandling, Subscribe, Subscription, SubscriptionOptions};
pub use unsuback::UnsubAck;
pub use unsubscribe::Unsubscribe;

use crate::codec::{parse_vbi, put_vbi, vbi_len, Frame, Reader, MAX_VARIABLE_BYTE_INTEGER};
use crate::error::{DecodeError, EncodeError};
use crate::{PacketType, ProtocolVersion};
use alloc::boxed::Box;
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Any MQTT control packet, of any protocol version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT (boxed: it is the largest packet and comes once per
    /// connection, so every other packet stays small to move).
    Connect(Box<Connect>),
    /// CONNACK (boxed, like CONNECT).
    ConnAck(Box<ConnAck>),
    /// PUBLISH
    Publish(Publish),
    /// PUBACK
    PubAck(PubAck),
    /// PUBREC
    PubRec(PubRec),
    /// PUBREL
    PubRel(PubRel),
    /// PUBCOMP
    PubComp(PubComp),
    /// SUBSCRIBE
    Subscribe(Subscribe),
    /// SUBACK
    SubAck(SubAck),
    /// UNSUBSCRIBE
    Unsubscribe(Unsubscribe),
    /// UNSUBACK
    UnsubAck(UnsubAck),
    /// PINGREQ
    PingReq,
    /// PINGRESP
    PingResp,
    /// DISCONNECT
    Disconnect(Disconnect),
    /// AUTH (5.0 only; boxed: rare, and its four property fields would
    /// make every `Packet` larger than a PUBLISH).
    Auth(Box<Auth>),
}

/// A packet decoded by [`decode_ref`] from a borrowed buffer.
///
/// PUBLISH, the packet a receive loop sees most, is borrowed: a
/// [`PublishRef`] whose topic, payload and properties are slices of the
/// input, so decoding it allocates nothing and touches no reference count.
/// Every other packet is the owned [`Packet`]: acknowledgements (without
/// properties), PINGREQ and PINGRESP are built without allocating; the rest
/// (CONNECT, SUBSCRIBE, a 5.0 acknowledgement with properties, ...) are
/// decoded from a copy of their frame, one allocation no larger than the
/// packet (at most [`DecodeConfig::max_packet_size`]). Their fields are
/// then independent of the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketRef<'a> {
    /// PUBLISH, borrowed from the input.
    Publish(PublishRef<'a>),
    /// Any other packet, owned (never [`Packet::Publish`]).
    Other(Packet),
}

impl PacketRef<'_> {
    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            PacketRef::Publish(_) => PacketType::Publish,
            PacketRef::Other(p) => p.packet_type(),
        }
    }

    /// The owned [`Packet`] (a PUBLISH is copied, see
    /// [`PublishRef::to_publish`]).
    pub fn into_packet(self) -> Packet {
        match self {
            PacketRef::Publish(p) => Packet::Publish(p.to_publish()),
            PacketRef::Other(p) => p,
        }
    }
}

impl From<PacketRef<'_>> for Packet {
    fn from(p: PacketRef<'_>) -> Packet {
        p.into_packet()
    }
}

/// Default for [`DecodeConfig::max_packet_size`]: 1 MiB.
///
/// The protocol allows 256 MiB; a decoder that accepted that from any peer
/// would let one connection hold 256 MiB of memory. Raise it where large
/// payloads are expected.
pub const DEFAULT_MAX_PACKET_SIZE: u32 = 1024 * 1024;

/// Largest packet the protocol can express: a 5-byte fixed header plus a
/// Remaining Length of 268,435,455.
pub const MAX_PACKET_SIZE: u32 = MAX_VARIABLE_BYTE_INTEGER + 5;

/// Settings for [`decode`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeConfig {
    /// The connection's protocol version (CONNECT is decoded whatever this
    /// says, since it announces its own).
    pub version: ProtocolVersion,
    /// Largest packet accepted, fixed header included (the Maximum Packet
    /// Size this side announces in 5.0). Default
    /// [`DEFAULT_MAX_PACKET_SIZE`].
    pub max_packet_size: u32,
}

impl DecodeConfig {
    /// Settings for `version` with the default limits.
    pub const fn new(version: ProtocolVersion) -> Self {
        DecodeConfig {
            version,
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
        }
    }

    /// Sets the maximum packet size.
    pub const fn with_max_packet_size(mut self, max: u32) -> Self {
        self.max_packet_size = max;
        self
    }
}

/// A parsed fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// The packet type.
    pub packet_type: PacketType,
    /// The four flag bits (already checked).
    pub flags: u8,
    /// The Remaining Length.
    pub remaining_length: usize,
    /// Bytes the fixed header takes (2 to 5).
    pub header_len: usize,
}

impl FixedHeader {
    /// Parses the fixed header at the start of `buf`: `Ok(None)` when `buf`
    /// ends inside it. Checks the packet type, the flags and the size limit,
    /// so a packet too large is refused before its body is awaited.
    #[inline]
    pub fn parse(buf: &[u8], cfg: &DecodeConfig) -> Result<Option<FixedHeader>, DecodeError> {
        let Some((&first, rest)) = buf.split_first() else {
            return Ok(None);
        };
        // One bit test decides type and flags together; the precise error
        // (and AUTH, valid in 5.0 only) is worked out off the fast path.
        if !(first_byte_valid(first) || (first == AUTH_FIRST_BYTE && cfg.version.is_v5())) {
            return Err(first_byte_error(first, cfg.version));
        }
        let Some(packet_type) = PacketType::from_u8(first >> 4) else {
            return Err(DecodeError::ReservedPacketType(first >> 4));
        };
        let flags = first & 0x0f;
        // Remaining Length: one byte below 128 (every small packet).
        let (remaining_length, n) = match rest.first() {
            Some(&b) if b < 0x80 => (usize::from(b), 1),
            _ => match parse_vbi(rest)? {
                Some((v, n)) => (v as usize, n),
                None => return Ok(None),
            },
        };
        let header_len = 1 + n;
        let size = header_len + remaining_length;
        if size > cfg.max_packet_size as usize {
            return Err(DecodeError::PacketTooLarge {
                size,
                max: cfg.max_packet_size,
            });
        }
        Ok(Some(FixedHeader {
            packet_type,
            flags,
            remaining_length,
            header_len,
        }))
    }

    /// Size of the whole packet.
    #[inline]
    pub fn packet_len(&self) -> usize {
        self.header_len + self.remaining_length
    }
}

/// The first byte of an AUTH packet (type 15, flags 0): valid in 5.0 only.
const AUTH_FIRST_BYTE: u8 = 0xf0;

/// Whether a first byte (packet type and flags) is valid in every version,
/// by MQTT 5.0 §2.1.3 / 3.1.1 §2.2.2; AUTH is left out (5.0 only).
const fn first_byte_ok(b: u8) -> bool {
    let flags = b & 0x0f;
    match b >> 4 {
        // PUBLISH: QoS 3 is malformed, and so is DUP at QoS 0.
        3 => {
            let qos = (flags >> 1) & 0b11;
            qos != 3 && !(qos == 0 && flags & 0b1000 != 0)
        }
        // PUBREL, SUBSCRIBE, UNSUBSCRIBE.
        6 | 8 | 10 => flags == 0b0010,
        1..=14 => flags == 0,
        _ => false,
    }
}

/// [`first_byte_ok`] of the byte values `64 * k .. 64 * k + 64`, as bits.
const fn first_byte_word(k: u8) -> u64 {
    let mut w = 0u64;
    let mut i = 0u8;
    while i < 64 {
        if first_byte_ok(k * 64 + i) {
            w |= 1 << i;
        }
        i += 1;
    }
    w
}

/// [`first_byte_ok`] of every byte value, as a 256-bit set.
const FIRST_BYTES: [u64; 4] = [
    first_byte_word(0),
    first_byte_word(1),
    first_byte_word(2),
    first_byte_word(3),
];

#[inline(always)]
fn first_byte_valid(b: u8) -> bool {
    // `b >> 6` is below 4, so `get` never misses (and compiles to no check).
    let word = FIRST_BYTES.get(usize::from(b >> 6)).copied().unwrap_or(0);
    (word >> (b & 63)) & 1 != 0
}

/// Why a first byte that [`first_byte_valid`] refused is invalid.
#[cold]
#[inline(never)]
fn first_byte_error(first: u8, v: ProtocolVersion) -> DecodeError {
    let ty = first >> 4;
    match PacketType::from_u8(ty) {
        Some(PacketType::Auth) if !v.is_v5() => DecodeError::ReservedPacketType(ty),
        Some(t) => match check_flags(t, first & 0x0f) {
            Err(e) => e,
            // Unreachable: the table and `check_flags` state the same rules.
            Ok(()) => DecodeError::ReservedPacketType(ty),
        },
        None => DecodeError::ReservedPacketType(ty),
    }
}

/// MQTT 5.0 §2.1.3 / 3.1.1 §2.2.2: the flags of every packet type.
fn check_flags(t: PacketType, flags: u8) -> Result<(), DecodeError> {
    if t == PacketType::Publish {
        let qos = (flags >> 1) & 0b11;
        if qos == 3 {
            return Err(DecodeError::InvalidQoS);
        }
        if qos == 0 && flags & 0b1000 != 0 {
            return Err(DecodeError::DupWithQoS0);
        }
        return Ok(());
    }
    if flags != t.fixed_flags() {
        return Err(DecodeError::InvalidFlags { packet: t, flags });
    }
    Ok(())
}

/// Decodes one packet from the front of `buf`.
///
/// - `Ok(None)`: `buf` holds only part of a packet; nothing was consumed.
///   Read more bytes and call again.
/// - `Ok(Some(packet))`: exactly one packet was split off the front of
///   `buf`; its strings and payload are slices of that memory (no copy).
/// - `Err(e)`: the stream is broken; close the connection (sending a
///   DISCONNECT with `e.reason_code()` in 5.0). A packet larger than
///   `cfg.max_packet_size` is refused as soon as its fixed header is in,
///   before its body is buffered.
///
/// ```
/// use bytes::BytesMut;
/// use mqtt_wire::{decode, DecodeConfig, Packet, ProtocolVersion};
///
/// let cfg = DecodeConfig::new(ProtocolVersion::V3_1_1);
/// let mut buf = BytesMut::from(&[0xc0, 0x00, 0xd0][..]); // PINGREQ, then half a PINGRESP
/// assert_eq!(decode(&mut buf, &cfg), Ok(Some(Packet::PingReq)));
/// assert_eq!(decode(&mut buf, &cfg), Ok(None));
/// assert_eq!(&buf[..], &[0xd0]); // untouched
/// ```
#[inline]
pub fn decode(buf: &mut BytesMut, cfg: &DecodeConfig) -> Result<Option<Packet>, DecodeError> {
    let Some(h) = FixedHeader::parse(buf, cfg)? else {
        return Ok(None);
    };
    let len = h.packet_len();
    if buf.len() < len {
        return Ok(None);
    }
    // PUBLISH, the common case, is built straight into the result: going
    // through `decode_body(..).map(Some)` costs a copy of the whole
    // `Packet` per step.
    if h.packet_type == PacketType::Publish {
        let frame = buf.split_to(len).freeze();
        return Publish::decode_with(frame, h.header_len, h.flags, cfg.version, |p| {
            Some(Packet::Publish(p))
        });
    }
    if let Some(p) = buf
        .get(h.header_len..len)
        .and_then(|b| decode_small(h.packet_type, b, cfg.version))
    {
        buf.advance(len);
        return Ok(Some(p));
    }
    let mut frame = buf.split_to(len).freeze();
    frame.advance(h.header_len);
    Packet::decode_other(h.packet_type, h.flags, frame, cfg.version).map(Some)
}

/// [`decode`] for input already in a [`Bytes`] (for example a WebSocket
/// message): same contract, splitting the packet off the front of `buf`.
// The body repeats `decode` on purpose: one generic function over both
// buffer types measured 41 more instructions per decoded PUBLISH
// (callgrind, benches/instr.sh).
#[inline]
pub fn decode_bytes(buf: &mut Bytes, cfg: &DecodeConfig) -> Result<Option<Packet>, DecodeError> {
    let Some(h) = FixedHeader::parse(buf, cfg)? else {
        return Ok(None);
    };
    let len = h.packet_len();
    if buf.len() < len {
        return Ok(None);
    }
    // PUBLISH, the common case, is built straight into the result: going
    // through `decode_body(..).map(Some)` costs a copy of the whole
    // `Packet` per step.
    if h.packet_type == PacketType::Publish {
        let frame = buf.split_to(len);
        return Publish::decode_with(frame, h.header_len, h.flags, cfg.version, |p| {
            Some(Packet::Publish(p))
        });
    }
    if let Some(p) = buf
        .get(h.header_len..len)
        .and_then(|b| decode_small(h.packet_type, b, cfg.version))
    {
        buf.advance(len);
        return Ok(Some(p));
    }
    let mut frame = buf.split_to(len);
    frame.advance(h.header_len);
    Packet::decode_other(h.packet_type, h.flags, frame, cfg.version).map(Some)
}

/// Decodes one packet from the front of a borrowed buffer, without taking
/// ownership of it: the decoder for input that is consumed before the next
/// read (a receive loop that handles each PUBLISH in place).
///
/// - `Ok(None)`: `buf` holds only part of a packet. Read more bytes and call
///   again with the whole buffered input.
/// - `Ok(Some((packet, n)))`: the packet is the first `n` bytes of `buf`;
///   drop them before the next call. A PUBLISH is a [`PublishRef`] borrowing
///   `buf` (no allocation, no reference count); other packets are owned
///   (see [`PacketRef`]).
/// - `Err(e)`: as [`decode`].
///
/// Same checks, same errors as [`decode`], by the same parser: for any
/// input, `decode_ref` succeeds exactly when `decode` does, with the same
/// packet ([`PacketRef::into_packet`]) and the same length consumed.
///
/// ```
/// use mqtt_wire::{decode_ref, DecodeConfig, Packet, PacketRef, ProtocolVersion};
///
/// let cfg = DecodeConfig::new(ProtocolVersion::V3_1_1);
/// // A PUBLISH to "a/b" with payload "hi", a PINGREQ, half a PINGRESP.
/// let input = [0x30, 0x07, 0x00, 0x03, b'a', b'/', b'b', b'h', b'i', 0xc0, 0x00, 0xd0];
/// let mut at = 0;
/// let mut topics = Vec::new();
/// while let Some((packet, n)) = decode_ref(&input[at..], &cfg).unwrap() {
///     match packet {
///         PacketRef::Publish(p) => topics.push(p.topic().unwrap_or_default().to_owned()),
///         PacketRef::Other(p) => assert_eq!(p, Packet::PingReq),
///     }
///     at += n;
/// }
/// assert_eq!(topics, ["a/b"]);
/// assert_eq!(&input[at..], &[0xd0]); // keep it for the next read
/// ```
#[inline]
pub fn decode_ref<'a>(
    buf: &'a [u8],
    cfg: &DecodeConfig,
) -> Result<Option<(PacketRef<'a>, usize)>, DecodeError> {
    let Some(h) = FixedHeader::parse(buf, cfg)? else {
        return Ok(None);
    };
    let len = h.packet_len();
    let Some(frame) = buf.get(..len) else {
        return Ok(None);
    };
    if h.packet_type == PacketType::Publish {
        return PublishRef::decode_at(frame, h.header_len, h.flags, cfg.version)
            .map(|p| Some((PacketRef::Publish(p), len)));
    }
    let body = frame.get(h.header_len..).unwrap_or(&[]);
    if let Some(p) = decode_small(h.packet_type, body, cfg.version) {
        return Ok(Some((PacketRef::Other(p), len)));
    }
    // Every other packet holds slices of its frame: decoded from a copy
    // (bounded by the size limit checked above).
    Packet::decode_other(
        h.packet_type,
        h.flags,
        Bytes::copy_from_slice(body),
        cfg.version,
    )
    .map(|p| Some((PacketRef::Other(p), len)))
}

/// The packets that hold no slice of their frame, in their common valid
/// forms: an acknowledgement with at most a reason code (and an empty
/// property block), PINGREQ, PINGRESP. Decoded from the buffer in place, so
/// the frame is not split off and reference-counted (two atomic operations
/// per packet on the hot path of every QoS 1/2 flow). `None`: anything
/// else, including every malformed form, goes the general way (which
/// reports the precise error).
#[inline]
fn decode_small(ty: PacketType, body: &[u8], v: ProtocolVersion) -> Option<Packet> {
    use crate::{PacketId, PubAckReasonCode, PubRelReasonCode};
    let (id, rest) = match ty {
        PacketType::PingReq if body.is_empty() => return Some(Packet::PingReq),
        PacketType::PingResp if body.is_empty() => return Some(Packet::PingResp),
        PacketType::PubAck | PacketType::PubRec | PacketType::PubRel | PacketType::PubComp => {
            match body {
                [hi, lo, rest @ ..] => (PacketId::new(u16::from_be_bytes([*hi, *lo]))?, rest),
                _ => return None,
            }
        }
        _ => return None,
    };
    // 3.1.1: the identifier only. 5.0: a reason code may follow, then a
    // Property Length that must be 0 here.
    let code = match rest {
        [] => None,
        [c] | [c, 0] if v.is_v5() => Some(*c),
        _ => return None,
    };
    Some(match ty {
        PacketType::PubAck | PacketType::PubRec => {
            let reason = match code {
                None => PubAckReasonCode::Success,
                Some(c) => PubAckReasonCode::from_code(c)?,
            };
            if ty == PacketType::PubAck {
                Packet::PubAck(PubAck::new(id).with_reason(reason))
            } else {
                Packet::PubRec(PubRec::new(id).with_reason(reason))
            }
        }
        _ => {
            let reason = match code {
                None => PubRelReasonCode::Success,
                Some(c) => PubRelReasonCode::from_code(c)?,
            };
            if ty == PacketType::PubRel {
                Packet::PubRel(PubRel::new(id).with_reason(reason))
            } else {
                Packet::PubComp(PubComp::new(id).with_reason(reason))
            }
        }
    })
}

impl Packet {
    /// Decodes a body whose fixed header `h` has been parsed; `body` holds
    /// exactly the Remaining Length bytes. Fields of the packet are slices
    /// of `body`.
    ///
    /// A body over `u32::MAX` bytes (longer than any Remaining Length) is
    /// [`DecodeError::PacketTooLarge`]: the read cursor's positions are
    /// `u32`s.
    #[inline]
    pub fn decode_body(
        h: &FixedHeader,
        body: Bytes,
        version: ProtocolVersion,
    ) -> Result<Packet, DecodeError> {
        if u32::try_from(body.len()).is_err() {
            return Err(DecodeError::PacketTooLarge {
                size: h.header_len.saturating_add(body.len()),
                max: u32::MAX,
            });
        }
        if h.packet_type == PacketType::Publish {
            // The payload takes over `body` itself: one reference count
            // fewer per PUBLISH than slicing it out.
            return Publish::decode(body, h.flags, version).map(Packet::Publish);
        }
        Self::decode_other(h.packet_type, h.flags, body, version)
    }

    /// Every packet but PUBLISH: kept out of line so the PUBLISH path of
    /// [`decode`] inlines into the caller's loop.
    #[inline(never)]
    fn decode_other(
        ty: PacketType,
        flags: u8,
        body: Bytes,
        version: ProtocolVersion,
    ) -> Result<Packet, DecodeError> {
        let mut r = Reader::new(&body, ty);
        let r = &mut r;
        let v = version;
        Ok(match ty {
            PacketType::Connect => Packet::Connect(Box::new(Connect::decode(r)?)),
            PacketType::ConnAck => Packet::ConnAck(Box::new(ConnAck::decode(r, v)?)),
            // Returned above; kept for exhaustiveness.
            PacketType::Publish => Packet::Publish(Publish::decode(body.clone(), flags, v)?),
            PacketType::PubAck => Packet::PubAck(PubAck::decode(r, v)?),
            PacketType::PubRec => Packet::PubRec(PubRec::decode(r, v)?),
            PacketType::PubRel => Packet::PubRel(PubRel::decode(r, v)?),
            PacketType::PubComp => Packet::PubComp(PubComp::decode(r, v)?),
            PacketType::Subscribe => Packet::Subscribe(Subscribe::decode(r, v)?),
            PacketType::SubAck => Packet::SubAck(SubAck::decode(r, v)?),
            PacketType::Unsubscribe => Packet::Unsubscribe(Unsubscribe::decode(r, v)?),
            PacketType::UnsubAck => Packet::UnsubAck(UnsubAck::decode(r, v)?),
            PacketType::PingReq => {
                r.finish()?;
                Packet::PingReq
            }
            PacketType::PingResp => {
                r.finish()?;
                Packet::PingResp
            }
            PacketType::Disconnect => Packet::Disconnect(Disconnect::decode(r, v)?),
            PacketType::Auth => Packet::Auth(Box::new(Auth::decode(r, v)?)),
        })
    }

    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(_) => PacketType::Publish,
            Packet::PubAck(_) => PacketType::PubAck,
            Packet::PubRec(_) => PacketType::PubRec,
            Packet::PubRel(_) => PacketType::PubRel,
            Packet::PubComp(_) => PacketType::PubComp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }
}

/// Encoding of a packet for a protocol version.
///
/// Implemented by [`Packet`] and by each packet struct, so a PUBLISH can be
/// encoded without wrapping it.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use mqtt_wire::{Delivery, Encode, PacketId, ProtocolVersion, Publish, TopicName};
///
/// let publish = Publish::new(
///     TopicName::from_static("a/b").unwrap(),
///     Bytes::from_static(b"hi"),
/// )
/// .with_delivery(Delivery::AtLeastOnce(PacketId::new(10).unwrap()));
/// let mut buf = BytesMut::new();
/// let n = publish.encode(ProtocolVersion::V3_1_1, &mut buf).unwrap();
/// assert_eq!(n, publish.encoded_len(ProtocolVersion::V3_1_1));
/// assert_eq!(&buf[..], &[0x32, 9, 0, 3, b'a', b'/', b'b', 0, 10, b'h', b'i']);
/// ```
pub trait Encode {
    /// Bytes [`encode`](Self::encode) writes for `version`, computed without
    /// encoding (meaningless if `encode` would fail).
    fn encoded_len(&self, version: ProtocolVersion) -> usize;

    /// Writes the packet to `buf` and returns its length. Fails, writing
    /// nothing, when the packet holds what `version` cannot carry, a field
    /// is too long, or `buf` has no room.
    fn encode<B: BufMut>(
        &self,
        version: ProtocolVersion,
        buf: &mut B,
    ) -> Result<usize, EncodeError>;

    /// [`encode`](Self::encode), refusing a packet larger than `max_packet_size`
    /// (the peer's Maximum Packet Size).
    fn encode_checked<B: BufMut>(
        &self,
        version: ProtocolVersion,
        max_packet_size: u32,
        buf: &mut B,
    ) -> Result<usize, EncodeError>;
}

/// What every packet struct provides to the shared framing code.
pub(crate) trait PacketBody {
    const TYPE: PacketType;

    fn flags(&self) -> u8 {
        Self::TYPE.fixed_flags()
    }

    /// Checks the packet can be encoded for `v`.
    fn validate(&self, v: ProtocolVersion) -> Result<(), EncodeError>;

    /// The Remaining Length for `v`.
    fn body_len(&self, v: ProtocolVersion) -> usize;

    /// Writes the variable header and payload.
    fn write_body<B: BufMut>(&self, v: ProtocolVersion, buf: &mut B);
}

#[inline]
fn encode_framed<T: PacketBody, B: BufMut>(
    p: &T,
    v: ProtocolVersion,
    max: u32,
    buf: &mut B,
) -> Result<usize, EncodeError> {
    p.validate(v)?;
    let body = p.body_len(v);
    if body > MAX_VARIABLE_BYTE_INTEGER as usize {
        return Err(EncodeError::RemainingLengthTooLarge(body));
    }
    let total = 1 + vbi_len(body) + body;
    if total > max as usize {
        return Err(EncodeError::PacketTooLarge { size: total, max });
    }
    if buf.remaining_mut() < total {
        return Err(EncodeError::BufferTooSmall {
            needed: total,
            remaining: buf.remaining_mut(),
        });
    }
    buf.put_u8(((T::TYPE as u8) << 4) | p.flags());
    put_vbi(buf, body);
    p.write_body(v, buf);
    Ok(total)
}

impl<T: PacketBody> Encode for T {
    #[inline]
    fn encoded_len(&self, version: ProtocolVersion) -> usize {
        let body = self.body_len(version);
        1 + vbi_len(body) + body
    }

    #[inline]
    fn encode<B: BufMut>(
        &self,
        version: ProtocolVersion,
        buf: &mut B,
    ) -> Result<usize, EncodeError> {
        encode_framed(self, version, u32::MAX, buf)
    }

    #[inline]
    fn encode_checked<B: BufMut>(
        &self,
        version: ProtocolVersion,
        max_packet_size: u32,
        buf: &mut B,
    ) -> Result<usize, EncodeError> {
        encode_framed(self, version, max_packet_size, buf)
    }
}

/// PINGREQ and PINGRESP as encodable bodies.
struct Empty(PacketType);

impl Empty {
    fn encode<B: BufMut>(&self, max: u32, buf: &mut B) -> Result<usize, EncodeError> {
        if max < 2 {
            return Err(EncodeError::PacketTooLarge { size: 2, max });
        }
        if buf.remaining_mut() < 2 {
            return Err(EncodeError::BufferTooSmall {
                needed: 2,
                remaining: buf.remaining_mut(),
            });
        }
        buf.put_u8((self.0 as u8) << 4);
        buf.put_u8(0);
        Ok(2)
    }
}

macro_rules! dispatch {
    ($self:ident, $p:ident => $e:expr, $empty:ident => $ee:expr) => {
        match $self {
            Packet::Connect($p) => $e,
            Packet::ConnAck($p) => $e,
            Packet::Publish($p) => $e,
            Packet::PubAck($p) => $e,
            Packet::PubRec($p) => $e,
            Packet::PubRel($p) => $e,
            Packet::PubComp($p) => $e,
            Packet::Subscribe($p) => $e,
            Packet::SubAck($p) => $e,
            Packet::Unsubscribe($p) => $e,
            Packet::UnsubAck($p) => $e,
            Packet::Disconnect($p) => $e,
            Packet::Auth($p) => $e,
            Packet::PingReq => {
                let $empty = Empty(PacketType::PingReq);
                $ee
            }
            Packet::PingResp => {
                let $empty = Empty(PacketType::PingResp);
                $ee
            }
        }
    };
}

impl Encode for Packet {
    fn encoded_len(&self, version: ProtocolVersion) -> usize {
        dispatch!(self, p => p.encoded_len(version), _e => 2)
    }

    fn encode<B: BufMut>(
        &self,
        version: ProtocolVersion,
        buf: &mut B,
    ) -> Result<usize, EncodeError> {
        dispatch!(self, p => p.encode(version, buf), e => e.encode(u32::MAX, buf))
    }

    fn encode_checked<B: BufMut>(
        &self,
        version: ProtocolVersion,
        max_packet_size: u32,
        buf: &mut B,
    ) -> Result<usize, EncodeError> {
        dispatch!(self, p => p.encode_checked(version, max_packet_size, buf), e => e.encode(max_packet_size, buf))
    }
}

macro_rules! from_packets {
    ($($ty:ident),+) => {$(
        impl From<$ty> for Packet {
            fn from(p: $ty) -> Packet {
                Packet::$ty(p)
            }
        }
    )+};
}

macro_rules! from_boxed_packets {
    ($($ty:ident),+) => {$(
        impl From<$ty> for Packet {
            fn from(p: $ty) -> Packet {
                Packet::$ty(Box::new(p))
            }
        }
    )+};
}

from_boxed_packets!(Connect, ConnAck, Auth);

from_packets!(
    Publish,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect
);

/// Reads a non-zero Packet Identifier (MQTT-2.3.1-1).
#[inline]
pub(crate) fn read_packet_id<F: Frame>(
    r: &mut Reader<'_, F>,
) -> Result<crate::PacketId, DecodeError> {
    crate::PacketId::new(r.u16()?).ok_or(DecodeError::ZeroPacketId)
}

/// Refuses 5.0-only content for an older peer.
#[inline]
pub(crate) fn v5_only(
    v: ProtocolVersion,
    present: bool,
    what: &'static str,
) -> Result<(), EncodeError> {
    if present && !v.is_v5() {
        return Err(EncodeError::NotInVersion { what, version: v });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first-byte table refuses exactly what the per-type rules refuse,
    /// with the same error, in every version.
    #[test]
    fn first_byte_table_matches_the_flag_rules() {
        for v in [
            ProtocolVersion::V3_1,
            ProtocolVersion::V3_1_1,
            ProtocolVersion::V5,
        ] {
            let cfg = DecodeConfig::new(v);
            for b in 0..=255u8 {
                let ty = b >> 4;
                let expected = match PacketType::from_u8(ty) {
                    Some(PacketType::Auth) if !v.is_v5() => {
                        Err(DecodeError::ReservedPacketType(ty))
                    }
                    Some(t) => check_flags(t, b & 0x0f).map(|()| t),
                    None => Err(DecodeError::ReservedPacketType(ty)),
                };
                let got = FixedHeader::parse(&[b, 0], &cfg).map(|h| h.map(|h| h.packet_type));
                assert_eq!(got, expected.map(Some), "first byte {b:#04x}, {v:?}");
            }
        }
    }
}
