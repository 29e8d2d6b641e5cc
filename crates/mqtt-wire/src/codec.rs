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
pub(crate) struct Reader<'a, F: Frame = Bytes> {
    frame: &'a F,
    /// The frame up to this cursor's end: one bounds check per read.
    data: &'a [u8],
    pos: usize,
    packet: PacketType,
}

impl<'a, F: Frame> Reader<'a, F> {
    #[inline(always)]
    pub(crate) fn new(frame: &'a F, packet: PacketType) -> Self {
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
        self.pos = pos;
    }

    pub(crate) fn packet(&self) -> PacketType {
        self.packet
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The bytes from `start` to this cursor's end (`None` past it).
    pub(crate) fn data_from(&self, start: usize) -> Option<&'a [u8]> {
        self.data.get(start..)
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn short(&self) -> DecodeError {
        DecodeError::UnexpectedEnd {
            packet: self.packet,
        }
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let Some(&b) = self.data.get(self.pos) else {
            return Err(self.short());
        };
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        // `pos <= data.len() <= isize::MAX`: `pos + 2` cannot overflow.
        let p = self.pos;
        let Some(&[a, b]) = self.data.get(p..p + 2) else {
            return Err(self.short());
        };
        self.pos = p + 2;
        Ok(u16::from_be_bytes([a, b]))
    }

    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let Some(s) = self.data.get(self.pos..self.pos.saturating_add(n)) else {
            return Err(self.short());
        };
        self.pos += n;
        Ok(s)
    }

    /// A two-byte length and that many bytes after it (a UTF-8 Encoded
    /// String's or Binary Data's), returned with the position they start at.
    #[inline]
    pub(crate) fn prefixed(&mut self) -> Result<(usize, &'a [u8]), DecodeError> {
        let n = usize::from(self.u16()?);
        let start = self.pos;
        // `start <= data.len()` and `n < 2^16`: no overflow.
        let Some(b) = self.data.get(start..start + n) else {
            return Err(self.short());
        };
        self.pos = start + n;
        Ok((start, b))
    }

    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        // As in `u16`, no overflow.
        let p = self.pos;
        let Some(&[a, b, c, d]) = self.data.get(p..p + 4) else {
            return Err(self.short());
        };
        self.pos = p + 4;
        Ok(u32::from_be_bytes([a, b, c, d]))
    }

    #[inline]
    pub(crate) fn vbi(&mut self) -> Result<u32, DecodeError> {
        let rest = self.data.get(self.pos..).ok_or_else(|| self.short())?;
        match parse_vbi(rest)? {
            Some((v, n)) => {
                self.pos += n;
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
        let end = self.pos.saturating_add(n);
        let Some(data) = self.data.get(..end) else {
            return Err(self.short());
        };
        let r = Reader {
            frame: self.frame,
            data,
            pos: self.pos,
            packet: self.packet,
        };
        self.pos = end;
        Ok(r)
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
        let s = self.frame.slice(self.pos..self.pos + n);
        self.pos += n;
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
    fn rejects_five_byte_vbi_and_waits_for_partial() {
        assert_eq!(
            parse_vbi(&[0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::MalformedVariableByteInteger)
        );
        assert_eq!(parse_vbi(&[0xff, 0xff, 0xff]), Ok(None));
        assert_eq!(parse_vbi(&[]), Ok(None));
    }
}
