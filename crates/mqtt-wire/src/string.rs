//! UTF-8 Encoded Strings: MQTT 5.0 §1.5.4, MQTT 3.1.1 §1.5.3.

use bytes::Bytes;
use core::fmt;

/// Longest string the two-byte length prefix can describe.
pub const MAX_STRING_LEN: usize = u16::MAX as usize;

/// A UTF-8 Encoded String as MQTT defines it: well-formed UTF-8 (so no
/// surrogates, MQTT-1.5.4-1), no U+0000 (MQTT-1.5.4-2), at most 65,535
/// bytes. A byte order mark (U+FEFF) is kept as it is (MQTT-1.5.4-3).
///
/// The text is held in a [`Bytes`], so a string decoded from a packet is a
/// slice of the packet's buffer: cloning it bumps a reference count.
///
/// ```
/// use mqtt_wire::MqttString;
/// let s = MqttString::try_from("sensor-7").unwrap();
/// assert_eq!(s.as_str(), "sensor-7");
/// assert!(MqttString::try_from("a\0b").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MqttString(Bytes);

/// Why bytes are not a valid MQTT UTF-8 Encoded String.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StringError {
    /// Longer than 65,535 bytes, the most a two-byte length can state.
    TooLong {
        /// The length that was offered.
        len: usize,
    },
    /// Not well-formed UTF-8, or it encodes a surrogate (MQTT-1.5.4-1,
    /// MQTT-1.5.3-1).
    InvalidUtf8,
    /// Holds U+0000 (MQTT-1.5.4-2, MQTT-1.5.3-2).
    NullCharacter,
}

impl MqttString {
    /// The empty string (a valid MQTT string, e.g. an empty client id).
    pub const fn new() -> Self {
        MqttString(Bytes::new())
    }

    /// A string from a `'static` literal, without copying.
    ///
    /// # Panics
    /// If `s` breaks a rule of [`MqttString`]. Use `try_from` for input that
    /// is not a literal.
    #[allow(clippy::panic)] // documented: for literals written by the programmer
    pub fn from_static(s: &'static str) -> Self {
        match check_str(s.as_bytes()) {
            Ok(()) => MqttString(Bytes::from_static(s.as_bytes())),
            Err(e) => panic!("invalid MQTT string literal {s:?}: {e}"),
        }
    }

    /// Wraps bytes already checked by [`check_str`].
    pub(crate) fn from_checked(b: Bytes) -> Self {
        MqttString(b)
    }

    /// The text. Re-checks UTF-8 (linear, no `unsafe`); prefer
    /// [`as_bytes`](Self::as_bytes) where bytes do.
    pub fn as_str(&self) -> &str {
        // The invariant makes this Ok; "" is unreachable.
        core::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The UTF-8 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The underlying buffer.
    pub fn as_inner(&self) -> &Bytes {
        &self.0
    }

    /// Gives up the wrapper, returning the buffer.
    pub fn into_inner(self) -> Bytes {
        self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Whether `b` is all ASCII without 0x00 (and, with `WILD`, without `+` and
/// `#`): the common case, checked eight bytes at a time (SWAR), the tail as
/// the last eight bytes (overlapping); strings under eight bytes a byte at a
/// time.
///
/// Per word `w`: while every byte is below 0x80, adding 0x7F to each byte
/// carries into no other byte and sets a byte's high bit exactly when the
/// byte is not 0; `(w | 0x08) ^ '+'` is 0 exactly at `+` (0x2B) and `#`
/// (0x23), which differ only in bit 3. A byte of 0x80 or more can make those
/// sums carry, but it is caught by the high bits of `w` themselves, so the
/// answer is exact.
#[inline(always)]
pub(crate) fn plain_ascii<const WILD: bool>(b: &[u8]) -> bool {
    const HI: u64 = 0x8080_8080_8080_8080;
    const K: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const LO: u64 = 0x0101_0101_0101_0101;
    if b.len() < 8 {
        // Short strings (property names, "C"): a byte at a time is cheaper
        // than assembling a padded word.
        return b
            .iter()
            .all(|&c| c.wrapping_sub(1) < 0x7f && !(WILD && (c | 0x08) == b'+'));
    }
    // `high`: OR of the words (a high bit means a non-ASCII byte); `ok`:
    // AND of the per-byte "not 0 (and not a wildcard)" high bits.
    let mut high = 0u64;
    let mut ok = HI;
    let mut word = |w: u64| {
        high |= w;
        let mut t = w.wrapping_add(K);
        if WILD {
            t &= ((w | (LO * 0x08)) ^ (LO * u64::from(b'+'))).wrapping_add(K);
        }
        ok &= t;
    };
    let mut words = b.chunks_exact(8);
    for c in &mut words {
        if let Ok(a) = <[u8; 8]>::try_from(c) {
            word(u64::from_le_bytes(a));
        }
    }
    if !words.remainder().is_empty() {
        if let Some(Ok(a)) = b
            .len()
            .checked_sub(8)
            .and_then(|start| b.get(start..))
            .map(<[u8; 8]>::try_from)
        {
            word(u64::from_le_bytes(a));
        }
    }
    (high | !ok) & HI == 0
}

/// Checks every rule of [`MqttString`] in one pass (ASCII fast path
/// inlined, the rest out of line).
#[inline]
pub(crate) fn check_str(b: &[u8]) -> Result<(), StringError> {
    if b.len() <= MAX_STRING_LEN && plain_ascii::<false>(b) {
        return Ok(());
    }
    check_str_slow(b)
}

#[inline(never)]
fn check_str_slow(b: &[u8]) -> Result<(), StringError> {
    if b.len() > MAX_STRING_LEN {
        return Err(StringError::TooLong { len: b.len() });
    }
    let mut high = 0u8;
    let mut nul = false;
    for &c in b {
        high |= c;
        nul |= c == 0;
    }
    if high >= 0x80 && core::str::from_utf8(b).is_err() {
        return Err(StringError::InvalidUtf8);
    }
    if nul {
        return Err(StringError::NullCharacter);
    }
    Ok(())
}

impl StringError {
    /// The statement of MQTT 5.0 that the input breaks.
    pub fn spec_id(&self) -> &'static str {
        match self {
            StringError::TooLong { .. } => "MQTT-1.5.4",
            StringError::InvalidUtf8 => "MQTT-1.5.4-1",
            StringError::NullCharacter => "MQTT-1.5.4-2",
        }
    }
}

impl fmt::Display for StringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StringError::TooLong { len } => {
                write!(f, "string of {len} bytes is longer than 65535 (MQTT-1.5.4)")
            }
            StringError::InvalidUtf8 => {
                f.write_str("string is not well-formed UTF-8 (MQTT-1.5.4-1)")
            }
            StringError::NullCharacter => f.write_str("string contains U+0000 (MQTT-1.5.4-2)"),
        }
    }
}

impl core::error::Error for StringError {}

impl TryFrom<Bytes> for MqttString {
    type Error = StringError;
    fn try_from(b: Bytes) -> Result<Self, StringError> {
        check_str(&b)?;
        Ok(MqttString(b))
    }
}

impl TryFrom<&str> for MqttString {
    type Error = StringError;
    fn try_from(s: &str) -> Result<Self, StringError> {
        check_str(s.as_bytes())?;
        Ok(MqttString(Bytes::copy_from_slice(s.as_bytes())))
    }
}

impl TryFrom<alloc::string::String> for MqttString {
    type Error = StringError;
    fn try_from(s: alloc::string::String) -> Result<Self, StringError> {
        check_str(s.as_bytes())?;
        Ok(MqttString(Bytes::from(s)))
    }
}

impl AsRef<[u8]> for MqttString {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq<str> for MqttString {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for MqttString {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl fmt::Debug for MqttString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for MqttString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt5_1_5_4_1_rejects_ill_formed_utf8_and_surrogates() {
        // MQTT-1.5.4-1 / MQTT-1.5.3-1: ED A0 80 is U+D800 encoded as UTF-8.
        assert_eq!(check_str(b"\xed\xa0\x80"), Err(StringError::InvalidUtf8));
        assert_eq!(check_str(b"\xff"), Err(StringError::InvalidUtf8));
        assert_eq!(check_str(b"\xc3"), Err(StringError::InvalidUtf8));
        assert_eq!(check_str("ça va".as_bytes()), Ok(()));
    }

    #[test]
    fn mqtt5_1_5_4_2_rejects_null() {
        // MQTT-1.5.4-2 / MQTT-1.5.3-2
        assert_eq!(check_str(b"a\0"), Err(StringError::NullCharacter));
        assert_eq!(check_str("é\0".as_bytes()), Err(StringError::NullCharacter));
    }

    #[test]
    fn mqtt5_1_5_4_3_keeps_bom() {
        // MQTT-1.5.4-3 / MQTT-1.5.3-3: EF BB BF is kept, not stripped.
        let s = MqttString::try_from(Bytes::from_static(b"\xef\xbb\xbfA")).unwrap();
        assert_eq!(s.as_bytes(), b"\xef\xbb\xbfA");
        assert_eq!(s.as_str(), "\u{feff}A");
    }

    /// The word-at-a-time predicate against the plain per-byte rule: every
    /// byte value at every position of strings of 1 to 40 bytes, in a
    /// string of 'a' and in one of mixed ASCII.
    #[test]
    fn plain_ascii_matches_the_byte_rule() {
        fn rule(b: &[u8], wild: bool) -> bool {
            b.iter()
                .all(|&c| (1..0x80).contains(&c) && !(wild && (c == b'+' || c == b'#')))
        }
        for len in 1..=40usize {
            for base in [b'a', b'/'] {
                let mut s: alloc::vec::Vec<u8> = (0..len).map(|i| base + (i % 7) as u8).collect();
                for pos in 0..len {
                    let keep = s[pos];
                    for c in 0..=255u8 {
                        s[pos] = c;
                        assert_eq!(plain_ascii::<false>(&s), rule(&s, false), "{s:?}");
                        assert_eq!(plain_ascii::<true>(&s), rule(&s, true), "{s:?}");
                    }
                    s[pos] = keep;
                }
            }
        }
    }

    #[test]
    fn rejects_too_long() {
        let long = alloc::vec![b'a'; 65_536];
        assert_eq!(check_str(&long), Err(StringError::TooLong { len: 65_536 }));
        assert_eq!(check_str(&long[..65_535]), Ok(()));
    }
}
