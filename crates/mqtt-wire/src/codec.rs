//! Primitive data types (MQTT 5.0 §1.5): the read cursor and write helpers.
//!
//! Every read checks the bytes left first; a short packet is
//! [`DecodeError::UnexpectedEnd`], never a panic.

use crate::error::DecodeError;
use crate::string::{check_str, MqttString};
use crate::topic::{check_topic_name, TopicName};
use crate::PacketType;
use bytes::{BufMut, Bytes};

/// Largest value a Variable Byte Integer can hold (MQTT 5.0 §1.5.5).
pub const MAX_VARIABLE_BYTE_INTEGER: u32 = 268_435_455;

/// Parses a Variable Byte Integer at the start of `b`.
///
/// `Ok(None)`: `b` ends inside the integer. `Ok(Some((value, len)))`
/// otherwise. More than four bytes is malformed; a longer encoding than the
/// value needs breaks MQTT-1.5.5-1.
#[inline]
pub(crate) fn parse_vbi(b: &[u8]) -> Result<Option<(u32, usize)>, DecodeError> {
    // Fast path: one byte (lengths under 128, every property identifier).
    if let Some(&byte) = b.first() {
        if byte < 0x80 {
            return Ok(Some((u32::from(byte), 1)));
        }
    }
    let mut value = 0u32;
    for (i, &byte) in b.iter().take(4).enumerate() {
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Err(DecodeError::NonMinimalVariableByteInteger);
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if b.len() >= 4 {
        Err(DecodeError::MalformedVariableByteInteger)
    } else {
        Ok(None)
    }
}

/// Bytes a Variable Byte Integer of `v` takes.
#[inline]
pub(crate) const fn vbi_len(v: usize) -> usize {
    if v < 128 {
        1
    } else if v < 16_384 {
        2
    } else if v < 2_097_152 {
        3
    } else {
        4
    }
}

/// Writes `v` (at most [`MAX_VARIABLE_BYTE_INTEGER`]; callers check) as a
/// Variable Byte Integer.
#[inline]
pub(crate) fn put_vbi<B: BufMut>(buf: &mut B, mut v: usize) {
    loop {
        let mut byte = (v & 0x7f) as u8;
        v >>= 7;
        if v > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if v == 0 {
            return;
        }
    }
}

/// Writes a two-byte length and the bytes (length checked by the caller's
/// validation or by the string type's invariant).
#[inline]
pub(crate) fn put_prefixed<B: BufMut>(buf: &mut B, b: &[u8]) {
    buf.put_u16(b.len() as u16);
    buf.put_slice(b);
}

/// What a [`Reader`] reads from: the frame of one packet, which hands out
/// its fields as slices of itself. [`Bytes`] for the owned decoder (each
/// field a reference-counted slice), `&[u8]` for the borrowed one (each
/// field a plain slice), so one parser serves both and their rules cannot
/// drift apart.
pub(crate) trait Frame: Sized {
    /// A field of the frame.
    type Field;

    /// The frame's bytes.
    fn data(&self) -> &[u8];

    /// The field at `range`, which the caller has bounds-checked.
    fn field(&self, range: core::ops::Range<usize>) -> Self::Field;

    /// The frame from `at` to its end, the frame itself if it can be
    /// (the payload of a PUBLISH: no reference count taken for it).
    fn into_tail(self, at: usize) -> Self::Field;
}

impl Frame for Bytes {
    type Field = Bytes;

    #[inline(always)]
    fn data(&self) -> &[u8] {
        self
    }

    #[inline(always)]
    fn field(&self, range: core::ops::Range<usize>) -> Bytes {
        self.slice(range)
    }

    #[inline(always)]
    fn into_tail(mut self, at: usize) -> Bytes {
        bytes::Buf::advance(&mut self, at);
        self
    }
}

impl<'b> Frame for &'b [u8] {
    type Field = &'b [u8];

    #[inline(always)]
    fn data(&self) -> &[u8] {
        self
    }

    #[inline(always)]
    fn field(&self, range: core::ops::Range<usize>) -> &'b [u8] {
        self.get(range).unwrap_or_default()
    }

    #[inline(always)]
    fn into_tail(self, at: usize) -> &'b [u8] {
        self.get(at..).unwrap_or_default()
    }
}

/// A read cursor over one packet body. Positions are absolute indices into
/// the frame, so fields can be sliced out of it without copying.
///
/// The position is a `u32`, widened for each read: the compiler then knows
/// that the position plus a length under 2^32 cannot overflow, so each read
/// is one bounds test (a `usize` position also carried an overflow test per
/// read, as `pos <= data.len()` is not known to it). So a frame must be at
/// most `u32::MAX` bytes: one the decoder splits off is at most 268,435,460
/// (a fixed header and the largest Remaining Length), and
/// [`Packet::decode_body`](crate::Packet::decode_body) refuses a longer
/// body.
pub(crate) struct Reader<'a, F: Frame = Bytes> {
    frame: &'a F,
    /// The frame up to this cursor's end: one bounds check per read.
    data: &'a [u8],
    pos: u32,
    packet: PacketType,
}

impl<'a, F: Frame> Reader<'a, F> {
    #[inline(always)]
    pub(crate) fn new(frame: &'a F, packet: PacketType) -> Self {
        debug_assert!(u32::try_from(frame.data().len()).is_ok());
        Reader {
            frame,
            data: frame.data(),
            pos: 0,
            packet,
        }
    }

    /// Starts reading at `pos` (a cursor over a frame that still holds
    /// its fixed header).
    #[inline]
    pub(crate) fn skip_to(&mut self, pos: usize) {
        // Past `u32::MAX`, past the end of any frame: every read is short.
        self.pos = u32::try_from(pos).unwrap_or(u32::MAX);
    }

    pub(crate) fn packet(&self) -> PacketType {
        self.packet
    }

    #[inline]
    pub(crate) fn pos(&self) -> usize {
        self.pos as usize
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos())
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.pos() >= self.data.len()
    }

    fn short(&self) -> DecodeError {
        DecodeError::UnexpectedEnd {
            packet: self.packet,
        }
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let p = self.pos();
        let Some(&b) = self.data.get(p) else {
            return Err(self.short());
        };
        self.pos = (p + 1) as u32;
        Ok(b)
    }

    #[inline]
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        // `pos < 2^32`: `pos + 2` cannot overflow.
        let p = self.pos();
        let Some(&[a, b]) = self.data.get(p..p + 2) else {
            return Err(self.short());
        };
        self.pos = (p + 2) as u32;
        Ok(u16::from_be_bytes([a, b]))
    }

    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let p = self.pos();
        let Some(s) = self.data.get(p..p.saturating_add(n)) else {
            return Err(self.short());
        };
        // `p + n <= data.len()`, a frame's length: under 2^32.
        self.pos = (p + n) as u32;
        Ok(s)
    }

    /// A two-byte length and that many bytes after it (a UTF-8 Encoded
    /// String's or Binary Data's), returned with the position they start at.
    #[inline]
    pub(crate) fn prefixed(&mut self) -> Result<(usize, &'a [u8]), DecodeError> {
        let n = usize::from(self.u16()?);
        let start = self.pos();
        // `start < 2^32` and `n < 2^16`: no overflow.
        let Some(b) = self.data.get(start..start + n) else {
            return Err(self.short());
        };
        self.pos = (start + n) as u32;
        Ok((start, b))
    }

    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        // As in `u16`, no overflow.
        let p = self.pos();
        let Some(&[a, b, c, d]) = self.data.get(p..p + 4) else {
            return Err(self.short());
        };
        self.pos = (p + 4) as u32;
        Ok(u32::from_be_bytes([a, b, c, d]))
    }

    #[inline]
    pub(crate) fn vbi(&mut self) -> Result<u32, DecodeError> {
        let p = self.pos();
        let rest = self.data.get(p..).ok_or_else(|| self.short())?;
        match parse_vbi(rest)? {
            Some((v, n)) => {
                self.pos = (p + n) as u32;
                Ok(v)
            }
            None => Err(self.short()),
        }
    }

    /// The field from `start` to `end` (already read; `None` beyond the
    /// cursor's end).
    #[inline]
    pub(crate) fn field_from(&self, start: usize, end: usize) -> Option<F::Field> {
        self.data.get(start..end)?;
        Some(self.frame.field(start..end))
    }

    /// Checks a UTF-8 Encoded String and moves past it, without taking a
    /// reference to the frame (for values kept as raw bytes).
    #[inline]
    pub(crate) fn skip_string(&mut self) -> Result<(), DecodeError> {
        let (_, b) = self.prefixed()?;
        check_str(b)?;
        Ok(())
    }

    /// A Topic Name, checked; `None` when the string is empty (allowed only
    /// where a Topic Alias stands in, which the caller decides).
    #[inline]
    pub(crate) fn topic_field(&mut self) -> Result<Option<F::Field>, DecodeError> {
        let (start, b) = self.prefixed()?;
        if b.is_empty() {
            return Ok(None);
        }
        check_topic_name(b).map_err(DecodeError::InvalidTopicName)?;
        Ok(Some(self.frame.field(start..start + b.len())))
    }

    /// A cursor over the next `n` bytes; `self` moves past them.
    pub(crate) fn sub(&mut self, n: usize) -> Result<Reader<'a, F>, DecodeError> {
        let end = self.pos().saturating_add(n);
        let Some(data) = self.data.get(..end) else {
            return Err(self.short());
        };
        let r = Reader {
            frame: self.frame,
            data,
            pos: self.pos,
            packet: self.packet,
        };
        self.pos = end as u32;
        Ok(r)
    }

    /// A [`Cursor`] over the next `n` bytes; `self` moves past them.
    #[inline]
    pub(crate) fn cursor(&mut self, n: usize) -> Result<Cursor<'a>, DecodeError> {
        Ok(Cursor {
            rest: self.take(n)?,
            packet: self.packet,
        })
    }

    /// Every byte must have been read.
    #[inline]
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                packet: self.packet,
            })
        }
    }
}

/// A read cursor over bytes whose positions are not needed (the PUBLISH
/// property block, whose entries are checked and skipped): the unread bytes
/// themselves, each read splitting its bytes off the front. One length test
/// per read; a [`Reader`]'s reads, an index plus a length, also test that
/// sum for overflow, as the compiler cannot tell that the index is within
/// the data.
pub(crate) struct Cursor<'a> {
    rest: &'a [u8],
    packet: PacketType,
}

impl<'a> Cursor<'a> {
    pub(crate) fn packet(&self) -> PacketType {
        self.packet
    }

    /// The unread bytes.
    #[inline]
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn short(&self) -> DecodeError {
        DecodeError::UnexpectedEnd {
            packet: self.packet,
        }
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let Some((&b, rest)) = self.rest.split_first() else {
            return Err(self.short());
        };
        self.rest = rest;
        Ok(b)
    }

    #[inline]
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let Some((&b, rest)) = self.rest.split_first_chunk::<2>() else {
            return Err(self.short());
        };
        self.rest = rest;
        Ok(u16::from_be_bytes(b))
    }

    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let Some((&b, rest)) = self.rest.split_first_chunk::<4>() else {
            return Err(self.short());
        };
        self.rest = rest;
        Ok(u32::from_be_bytes(b))
    }

    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let Some((s, rest)) = self.rest.split_at_checked(n) else {
            return Err(self.short());
        };
        self.rest = rest;
        Ok(s)
    }

    /// A two-byte length and that many bytes after it (a UTF-8 Encoded
    /// String's or Binary Data's).
    #[inline]
    pub(crate) fn prefixed(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    /// Checks a UTF-8 Encoded String and moves past it.
    #[inline]
    pub(crate) fn skip_string(&mut self) -> Result<(), DecodeError> {
        check_str(self.prefixed()?)?;
        Ok(())
    }

    #[inline]
    pub(crate) fn vbi(&mut self) -> Result<u32, DecodeError> {
        let Some((v, n)) = parse_vbi(self.rest)? else {
            return Err(self.short());
        };
        // `n <= rest.len()`: `parse_vbi` read that many bytes.
        self.rest = self.rest.get(n..).unwrap_or_default();
        Ok(v)
    }
}

impl<'a> Reader<'a, Bytes> {
    pub(crate) fn frame(&self) -> &'a Bytes {
        self.frame
    }

    /// `n` bytes as a zero-copy slice of the frame.
    #[inline]
    pub(crate) fn bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if n > self.remaining() {
            return Err(self.short());
        }
        let p = self.pos();
        let s = self.frame.slice(p..p + n);
        self.pos = (p + n) as u32;
        Ok(s)
    }

    /// Binary Data: two-byte length, then the bytes.
    #[inline]
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.u16()?;
        self.bytes(usize::from(n))
    }

    /// A UTF-8 Encoded String.
    #[inline]
    pub(crate) fn string(&mut self) -> Result<MqttString, DecodeError> {
        let b = self.binary()?;
        check_str(&b)?;
        Ok(MqttString::from_checked(b))
    }

    /// A Topic Name; `None` when the string is empty (allowed only where a
    /// Topic Alias stands in, which the caller decides).
    #[inline]
    pub(crate) fn topic_name(&mut self) -> Result<Option<TopicName>, DecodeError> {
        let b = self.binary()?;
        if b.is_empty() {
            return Ok(None);
        }
        check_topic_name(&b).map_err(DecodeError::InvalidTopicName)?;
        Ok(Some(TopicName::from_checked(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn vbi_examples_from_the_spec() {
        // MQTT 5.0 §1.5.5 table: boundaries of 1..4 byte encodings.
        let cases: &[(u32, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xff, 0x7f]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xff, 0xff, 0x7f]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xff, 0xff, 0xff, 0x7f]),
        ];
        for &(v, enc) in cases {
            assert_eq!(parse_vbi(enc), Ok(Some((v, enc.len()))));
            let mut out = Vec::new();
            put_vbi(&mut out, v as usize);
            assert_eq!(out, enc);
            assert_eq!(vbi_len(v as usize), enc.len());
        }
    }

    #[test]
    fn mqtt5_1_5_5_1_rejects_non_minimal_vbi() {
        // MQTT-1.5.5-1: 0 written in two bytes, 127 written in three.
        assert_eq!(
            parse_vbi(&[0x80, 0x00]),
            Err(DecodeError::NonMinimalVariableByteInteger)
        );
        assert_eq!(
            parse_vbi(&[0xff, 0x80, 0x00]),
            Err(DecodeError::NonMinimalVariableByteInteger)
        );
    }

    #[test]
    fn cursor_reads_split_off_the_front_and_short_reads_fail() {
        let end = DecodeError::UnexpectedEnd {
            packet: PacketType::Publish,
        };
        let data = [0x07, 0x00, 0x02, b'a', b'b', 0x80, 0x01, 0, 0, 0, 9];
        let frame = Bytes::copy_from_slice(&data);
        let mut r = Reader::new(&frame, PacketType::Publish);
        let mut c = r.cursor(data.len()).unwrap();
        assert!(r.is_empty());
        assert_eq!(c.u8(), Ok(7));
        assert_eq!(c.prefixed(), Ok(&b"ab"[..]));
        assert_eq!(c.vbi(), Ok(128));
        assert_eq!(c.rest(), &[0, 0, 0, 9]);
        assert_eq!(c.u32(), Ok(9));
        assert!(c.is_empty());
        assert_eq!(c.u8(), Err(end));
        assert_eq!(c.u16(), Err(end));
        assert_eq!(c.u32(), Err(end));
        assert_eq!(c.vbi(), Err(end));
        // The cursor ends where it was made to, inside the string.
        let mut c = Reader::new(&frame, PacketType::Publish).cursor(4).unwrap();
        assert_eq!(c.u8(), Ok(7));
        assert_eq!(c.prefixed(), Err(end));
        let mut c = Reader::new(&frame, PacketType::Publish).cursor(3).unwrap();
        assert_eq!(c.take(4), Err(end));
        assert_eq!(c.rest(), &[0x07, 0x00, 0x02]);
        assert_eq!(c.take(3), Ok(&[0x07, 0x00, 0x02][..]));
        assert!(Reader::new(&frame, PacketType::Publish)
            .cursor(data.len() + 1)
            .is_err());
    }

    #[test]
    fn rejects_five_byte_vbi_and_waits_for_partial() {
        assert_eq!(
            parse_vbi(&[0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::MalformedVariableByteInteger)
        );
        assert_eq!(parse_vbi(&[0xff, 0xff, 0xff]), Ok(None));
        assert_eq!(parse_vbi(&[]), Ok(None));
    }
}
