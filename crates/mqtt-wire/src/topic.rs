//! Topic Names and Topic Filters: MQTT 5.0 §4.7, MQTT 3.1.1 §4.7.
//!
//! The codec owns these types because it must validate the topic of every
//! PUBLISH it decodes; `mqtt-topic` re-exports them and adds matching, shared
//! subscriptions and the subscription tree.

use crate::string::{check_str, MqttString, StringError};
use bytes::Bytes;
use core::fmt;

/// A Topic Name: the topic a PUBLISH is sent to.
///
/// 1 to 65,535 bytes of UTF-8 without U+0000 (MQTT-4.7.3-1..3), and no
/// wildcard characters `+` or `#` (MQTT-4.7.0-1, MQTT-3.3.2-2). Empty
/// levels (`a//b`, `/a`, `a/`) are legal and distinct.
///
/// ```
/// use mqtt_wire::TopicName;
/// assert!(TopicName::try_from("home/kitchen/temperature").is_ok());
/// assert!(TopicName::try_from("home/+/temperature").is_err());
/// assert!(TopicName::try_from("").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicName(MqttString);

/// A Topic Filter: what a SUBSCRIBE or UNSUBSCRIBE names.
///
/// 1 to 65,535 bytes of UTF-8 without U+0000; `#` only as the whole last
/// level (MQTT-4.7.1-1), `+` only as a whole level (MQTT-4.7.1-2). A shared
/// subscription (`$share/group/filter`) is a valid filter too; its parts are
/// checked by `mqtt-topic`.
///
/// ```
/// use mqtt_wire::TopicFilter;
/// assert!(TopicFilter::try_from("sport/tennis/+/#").is_ok());
/// assert!(TopicFilter::try_from("sport/tennis#").is_err());
/// assert!(TopicFilter::try_from("sport+").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicFilter(MqttString);

/// Why a string is not a valid Topic Name or Topic Filter.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicError {
    /// Zero length (MQTT-4.7.3-1).
    Empty,
    /// Not a valid UTF-8 Encoded String (too long, ill-formed, or holds
    /// U+0000: MQTT-4.7.3-2, MQTT-4.7.3-3).
    String(StringError),
    /// A Topic Name holds `+` or `#` (MQTT-4.7.0-1, MQTT-3.3.2-2).
    WildcardInName,
    /// `#` is not the whole last level of a filter (MQTT-4.7.1-1).
    MultiLevelWildcardMisplaced,
    /// `+` does not fill a whole level of a filter (MQTT-4.7.1-2).
    SingleLevelWildcardMisplaced,
}

impl TopicError {
    /// The statement of MQTT 5.0 that the input breaks.
    pub fn spec_id(&self) -> &'static str {
        match self {
            TopicError::Empty => "MQTT-4.7.3-1",
            TopicError::String(StringError::NullCharacter) => "MQTT-4.7.3-2",
            TopicError::String(StringError::TooLong { .. }) => "MQTT-4.7.3-3",
            TopicError::String(e) => e.spec_id(),
            TopicError::WildcardInName => "MQTT-4.7.0-1",
            TopicError::MultiLevelWildcardMisplaced => "MQTT-4.7.1-1",
            TopicError::SingleLevelWildcardMisplaced => "MQTT-4.7.1-2",
        }
    }
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            TopicError::Empty => "topic is empty",
            TopicError::String(StringError::TooLong { len }) => {
                return write!(
                    f,
                    "topic of {len} bytes is longer than 65535 ({})",
                    self.spec_id()
                )
            }
            TopicError::String(StringError::InvalidUtf8) => "topic is not well-formed UTF-8",
            TopicError::String(StringError::NullCharacter) => "topic contains U+0000",
            TopicError::WildcardInName => "topic name contains a wildcard",
            TopicError::MultiLevelWildcardMisplaced => {
                "'#' must be the whole last level of a topic filter"
            }
            TopicError::SingleLevelWildcardMisplaced => {
                "'+' must fill a whole level of a topic filter"
            }
        };
        write!(f, "{what} ({})", self.spec_id())
    }
}

impl core::error::Error for TopicError {}

impl From<StringError> for TopicError {
    fn from(e: StringError) -> Self {
        TopicError::String(e)
    }
}

/// Checks a Topic Name in one pass over the bytes (ASCII fast path inlined,
/// the rest out of line).
#[inline]
pub(crate) fn check_topic_name(b: &[u8]) -> Result<(), TopicError> {
    if !b.is_empty()
        && b.len() <= crate::string::MAX_STRING_LEN
        && crate::string::plain_ascii::<true>(b)
    {
        return Ok(());
    }
    check_topic_name_slow(b)
}

#[inline(never)]
fn check_topic_name_slow(b: &[u8]) -> Result<(), TopicError> {
    if b.is_empty() {
        return Err(TopicError::Empty);
    }
    if b.len() > crate::string::MAX_STRING_LEN {
        return Err(StringError::TooLong { len: b.len() }.into());
    }
    let mut high = 0u8;
    let mut bad = false;
    let mut wild = false;
    for &c in b {
        high |= c;
        bad |= c == 0;
        wild |= c == b'+' || c == b'#';
    }
    if high >= 0x80 && core::str::from_utf8(b).is_err() {
        return Err(StringError::InvalidUtf8.into());
    }
    if bad {
        return Err(StringError::NullCharacter.into());
    }
    if wild {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Checks a Topic Filter: string rules, then the wildcard placement rules.
pub(crate) fn check_topic_filter(b: &[u8]) -> Result<(), TopicError> {
    if b.is_empty() {
        return Err(TopicError::Empty);
    }
    check_str(b)?;
    if wildcards_placed(b) {
        return Ok(());
    }
    misplaced_wildcard(b)
}

/// Whether every `+` in `b` is a whole level and every `#` the whole last
/// level, found eight bytes at a time: a filter without wildcards costs a
/// few instructions per word, and each wildcard a look at its neighbours.
/// The same rules as [`misplaced_wildcard`], which names the error.
///
/// Per word `w`, `x = (w | 0x08..) ^ '+'..` is 0 exactly at the bytes `+`
/// (0x2B) and `#` (0x23), which differ only in bit 3; the zero bytes of
/// `x` are found without carries between bytes (`(x & 0x7F..) + 0x7F..`
/// sets a byte's high bit when its low seven bits are not all 0, and `x`
/// itself when its high bit is), so the answer is exact for any byte.
#[inline]
fn wildcards_placed(b: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const K: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // `+` fills its level, `#` its level and is last.
    let placed = |i: usize| -> bool {
        let Some(&c) = b.get(i) else {
            return true;
        };
        let after = i + 1;
        let starts_level = i == 0 || b.get(i - 1) == Some(&b'/');
        let ends_level = match b.get(after) {
            None => true,
            Some(&n) => n == b'/' && c == b'+',
        };
        starts_level && ends_level
    };
    if b.len() < 8 {
        return b
            .iter()
            .enumerate()
            .all(|(i, &c)| (c | 0x08) != b'+' || placed(i));
    }
    // The wildcards of the word at `at` (`at + 8 <= b.len()`).
    let word_ok = |at: usize| -> bool {
        let Some(Ok(a)) = b.get(at..at + 8).map(<[u8; 8]>::try_from) else {
            return false;
        };
        let x = (u64::from_le_bytes(a) | (LO * 0x08)) ^ (LO * u64::from(b'+'));
        let mut wild = !(((x & K) + K) | x | K);
        while wild != 0 {
            if !placed(at + (wild.trailing_zeros() / 8) as usize) {
                return false;
            }
            wild &= wild - 1;
        }
        true
    };
    let mut at = 0;
    while at + 8 <= b.len() {
        if !word_ok(at) {
            return false;
        }
        at += 8;
    }
    // The last bytes as the word ending at the end (overlapping).
    at == b.len() || word_ok(b.len() - 8)
}

/// The wildcard placement rules, level by level: the error for a filter
/// [`wildcards_placed`] refused (`Ok` if it has none).
#[cold]
#[inline(never)]
fn misplaced_wildcard(b: &[u8]) -> Result<(), TopicError> {
    let mut levels = b.split(|&c| c == b'/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        if level.contains(&b'#') && (level != b"#" || !last) {
            return Err(TopicError::MultiLevelWildcardMisplaced);
        }
        if level.contains(&b'+') && level != b"+" {
            return Err(TopicError::SingleLevelWildcardMisplaced);
        }
    }
    Ok(())
}

macro_rules! topic_type {
    ($ty:ident, $check:ident) => {
        impl $ty {
            /// Validates `s` (borrowed from a `'static` literal, no copy).
            pub fn from_static(s: &'static str) -> Result<Self, TopicError> {
                $check(s.as_bytes())?;
                Ok($ty(MqttString::from_checked(Bytes::from_static(
                    s.as_bytes(),
                ))))
            }

            /// Wraps bytes that passed the check.
            pub(crate) fn from_checked(b: Bytes) -> Self {
                $ty(MqttString::from_checked(b))
            }

            /// The text (re-checks UTF-8; see [`MqttString::as_str`]).
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }

            /// The UTF-8 bytes.
            pub fn as_bytes(&self) -> &[u8] {
                self.0.as_bytes()
            }

            /// As an [`MqttString`].
            pub fn as_mqtt_str(&self) -> &MqttString {
                &self.0
            }

            /// Gives up the wrapper.
            pub fn into_inner(self) -> MqttString {
                self.0
            }

            /// Length in bytes (never 0).
            pub fn len(&self) -> usize {
                self.0.len()
            }

            /// Always false: topics are at least one byte long. Present for
            /// the `len`/`is_empty` convention.
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }

            /// The levels, split on `/` (a topic of `n` slashes has `n + 1`).
            pub fn levels(&self) -> impl Iterator<Item = &[u8]> + '_ {
                self.0.as_bytes().split(|&c| c == b'/')
            }
        }

        impl TryFrom<Bytes> for $ty {
            type Error = TopicError;
            fn try_from(b: Bytes) -> Result<Self, TopicError> {
                $check(&b)?;
                Ok($ty::from_checked(b))
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = TopicError;
            fn try_from(s: &str) -> Result<Self, TopicError> {
                $check(s.as_bytes())?;
                Ok($ty::from_checked(Bytes::copy_from_slice(s.as_bytes())))
            }
        }

        impl TryFrom<alloc::string::String> for $ty {
            type Error = TopicError;
            fn try_from(s: alloc::string::String) -> Result<Self, TopicError> {
                $check(s.as_bytes())?;
                Ok($ty::from_checked(Bytes::from(s)))
            }
        }

        impl TryFrom<MqttString> for $ty {
            type Error = TopicError;
            fn try_from(s: MqttString) -> Result<Self, TopicError> {
                $check(s.as_bytes())?;
                Ok($ty(s))
            }
        }

        impl AsRef<[u8]> for $ty {
            fn as_ref(&self) -> &[u8] {
                self.0.as_bytes()
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0.as_bytes() == other.as_bytes()
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.0.as_bytes() == other.as_bytes()
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

topic_type!(TopicName, check_topic_name);
topic_type!(TopicFilter, check_topic_filter);

impl TopicFilter {
    /// Whether the filter holds a `+` or `#` level.
    pub fn has_wildcards(&self) -> bool {
        self.as_bytes().iter().any(|&c| c == b'+' || c == b'#')
    }
}

impl From<TopicName> for TopicFilter {
    /// Every Topic Name is a valid Topic Filter that matches only itself.
    fn from(n: TopicName) -> Self {
        TopicFilter(n.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    /// The word-at-a-time wildcard check accepts exactly what the
    /// level-by-level one does (MQTT-4.7.1-1, MQTT-4.7.1-2): every filter
    /// of up to 8 bytes over `a / + #`, then 20,000 pseudo-random ones of
    /// 9 to 40 bytes over the same bytes plus the two bytes of `é` and
    /// 0xAB and 0xA3 (`+` and `#` with the high bit set, which are not
    /// wildcards).
    #[test]
    fn mqtt_4_7_1_word_check_agrees_with_the_level_check() {
        let small = [b'a', b'/', b'+', b'#'];
        let mut b = alloc::vec::Vec::new();
        for len in 1..=8u32 {
            for mut n in 0..4usize.pow(len) {
                b.clear();
                for _ in 0..len {
                    b.push(small[n % 4]);
                    n /= 4;
                }
                assert_eq!(
                    wildcards_placed(&b),
                    misplaced_wildcard(&b).is_ok(),
                    "{b:?}"
                );
            }
        }
        let wide = [b'a', b'/', b'+', b'#', 0xc3, 0xa9, 0xab, 0xa3, b'/', b'+'];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = 9 + (seed % 32) as usize;
            b.clear();
            let mut r = seed;
            for _ in 0..len {
                r = r.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                b.push(wide[(r >> 60) as usize % wide.len()]);
            }
            assert_eq!(
                wildcards_placed(&b),
                misplaced_wildcard(&b).is_ok(),
                "{b:?}"
            );
        }
    }

    #[test]
    fn names() {
        for ok in ["a", "/", "a//b", "/a", "a/", "$SYS/x", "ü/€", " "] {
            assert_eq!(check_topic_name(ok.as_bytes()), Ok(()), "{ok}");
        }
        assert_eq!(check_topic_name(b""), Err(TopicError::Empty));
        assert_eq!(check_topic_name(b"a/+"), Err(TopicError::WildcardInName));
        assert_eq!(check_topic_name(b"#"), Err(TopicError::WildcardInName));
        assert_eq!(
            check_topic_name(b"a\0"),
            Err(TopicError::String(StringError::NullCharacter))
        );
        assert_eq!(
            check_topic_name(b"a\xff"),
            Err(TopicError::String(StringError::InvalidUtf8))
        );
    }

    #[test]
    fn filters() {
        for ok in [
            "#",
            "+",
            "a/#",
            "+/+",
            "/+",
            "a/+/b",
            "sport/tennis/player1/#",
            "a//#",
            "$share/g/#",
        ] {
            assert_eq!(check_topic_filter(ok.as_bytes()), Ok(()), "{ok}");
        }
        for (bad, e) in [
            ("a#", TopicError::MultiLevelWildcardMisplaced),
            ("#/a", TopicError::MultiLevelWildcardMisplaced),
            ("a/#/", TopicError::MultiLevelWildcardMisplaced),
            ("##", TopicError::MultiLevelWildcardMisplaced),
            ("a+", TopicError::SingleLevelWildcardMisplaced),
            ("+a/b", TopicError::SingleLevelWildcardMisplaced),
            ("++", TopicError::SingleLevelWildcardMisplaced),
            ("", TopicError::Empty),
        ] {
            assert_eq!(check_topic_filter(bad.as_bytes()), Err(e), "{bad}");
        }
    }

    #[test]
    fn messages_cite_the_topic_rule() {
        let e = check_topic_name(b"a\0").unwrap_err();
        assert_eq!(e.spec_id(), "MQTT-4.7.3-2");
        assert!(e.to_string().ends_with("(MQTT-4.7.3-2)"), "{e}");
        assert!(TopicError::Empty.to_string().contains("MQTT-4.7.3-1"));
    }

    #[test]
    fn deep_filter_has_no_recursion() {
        let deep = "+/".repeat(32_767) + "#";
        assert_eq!(check_topic_filter(deep.as_bytes()), Ok(()));
    }
}
