//! Shared Subscriptions: `$share/{ShareName}/{filter}` (MQTT 5.0 §4.8.2).

use crate::{MqttString, TopicError, TopicFilter};
use bytes::Bytes;
use core::fmt;

/// The prefix that makes a filter a Shared Subscription.
pub const SHARE_PREFIX: &str = "$share/";

/// A parsed Shared Subscription filter, `$share/{ShareName}/{filter}`.
///
/// The ShareName is at least one character (MQTT-4.8.2-1) and holds no
/// `/`, `+` or `#`; it is followed by `/` and a valid Topic Filter
/// (MQTT-4.8.2-2). Both parts are slices of the input buffer (no copy when
/// parsed from [`Bytes`] or a [`TopicFilter`]).
///
/// ```
/// use mqtt_topic::{ShareError, SharedFilter};
/// let s = SharedFilter::try_from("$share/consumers/sport/+/score").unwrap();
/// assert_eq!(s.share_name(), "consumers");
/// assert_eq!(s.filter().as_str(), "sport/+/score");
/// assert_eq!(SharedFilter::try_from("$share//a"), Err(ShareError::EmptyShareName));
/// assert_eq!(SharedFilter::try_from("$share/g+/a"), Err(ShareError::ShareNameWildcard));
/// assert_eq!(SharedFilter::try_from("$share/g"), Err(ShareError::MissingFilter));
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedFilter {
    share_name: MqttString,
    filter: TopicFilter,
}

/// A subscription's filter once its `$share/` prefix, if any, is parsed:
/// what a broker stores in a [`SubscriptionTree`](crate::SubscriptionTree).
///
/// ```
/// use mqtt_topic::SubscriptionFilter;
/// let plain = SubscriptionFilter::try_from("a/+").unwrap();
/// assert!(matches!(plain, SubscriptionFilter::Plain(_)));
/// let shared = SubscriptionFilter::try_from("$share/g/a/+").unwrap();
/// assert!(matches!(shared, SubscriptionFilter::Shared(_)));
/// // `$share` without a slash is an ordinary filter.
/// assert!(matches!(
///     SubscriptionFilter::try_from("$share").unwrap(),
///     SubscriptionFilter::Plain(_)
/// ));
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum SubscriptionFilter {
    /// An ordinary (non-shared) filter.
    Plain(TopicFilter),
    /// A Shared Subscription.
    Shared(SharedFilter),
}

/// Why a string is not a valid Shared Subscription (or subscription) filter.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShareError {
    /// Does not begin with `$share/` (MQTT-4.8.2-1). Only returned by the
    /// [`SharedFilter`] parsers; [`SubscriptionFilter`] treats such input as
    /// a plain filter.
    NotShared,
    /// The ShareName is empty, as in `$share//a` (MQTT-4.8.2-1).
    EmptyShareName,
    /// The ShareName holds `+` or `#` (MQTT-4.8.2-2).
    ShareNameWildcard,
    /// No `/` and Topic Filter follow the ShareName, as in `$share/g`
    /// (MQTT-4.8.2-2).
    MissingFilter,
    /// The whole string, or the Topic Filter after the ShareName, breaks a
    /// topic rule (the inner error names it; an empty filter after
    /// `$share/g/` is [`TopicError::Empty`]).
    Filter(TopicError),
}

impl ShareError {
    /// The statement of MQTT 5.0 that the input breaks.
    pub fn spec_id(&self) -> &'static str {
        match self {
            ShareError::NotShared | ShareError::EmptyShareName => "MQTT-4.8.2-1",
            ShareError::ShareNameWildcard | ShareError::MissingFilter => "MQTT-4.8.2-2",
            ShareError::Filter(e) => e.spec_id(),
        }
    }
}

impl fmt::Display for ShareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            ShareError::NotShared => "shared subscription does not begin with \"$share/\"",
            ShareError::EmptyShareName => "shared subscription has an empty ShareName",
            ShareError::ShareNameWildcard => "ShareName contains '+' or '#'",
            ShareError::MissingFilter => "ShareName is not followed by '/' and a topic filter",
            ShareError::Filter(e) => return write!(f, "shared subscription: {e}"),
        };
        write!(f, "{what} ({})", self.spec_id())
    }
}

impl core::error::Error for ShareError {}

impl From<TopicError> for ShareError {
    fn from(e: TopicError) -> Self {
        ShareError::Filter(e)
    }
}

impl SharedFilter {
    /// The ShareName (the group), e.g. `consumers`.
    pub fn share_name(&self) -> &str {
        self.share_name.as_str()
    }

    /// The ShareName as a string value (a slice of the parsed buffer).
    pub fn share_name_str(&self) -> &MqttString {
        &self.share_name
    }

    /// The Topic Filter after the ShareName, used for matching.
    pub fn filter(&self) -> &TopicFilter {
        &self.filter
    }

    /// Parses `$share/{ShareName}/{filter}` from a buffer, without copying.
    fn parse(b: Bytes) -> Result<SharedFilter, ShareError> {
        if !b.starts_with(SHARE_PREFIX.as_bytes()) {
            return Err(ShareError::NotShared);
        }
        // Length, UTF-8 and U+0000 rules over the whole string first, so the
        // ShareName is valid text too (MQTT-4.7.3-2, MQTT-4.7.3-3).
        let whole = MqttString::try_from(b.clone()).map_err(TopicError::String)?;
        let start = SHARE_PREFIX.len();
        let rest = whole.as_bytes().get(start..).unwrap_or(&[]);
        let slash = rest.iter().position(|&c| c == b'/');
        let name = match slash {
            Some(i) => rest.get(..i).unwrap_or(&[]),
            None => rest,
        };
        if name.is_empty() {
            return Err(ShareError::EmptyShareName);
        }
        if name.iter().any(|&c| c == b'+' || c == b'#') {
            return Err(ShareError::ShareNameWildcard);
        }
        let Some(i) = slash else {
            return Err(ShareError::MissingFilter);
        };
        let name_end = start + i;
        // Splitting at ASCII '/' keeps both halves valid UTF-8.
        let share_name =
            MqttString::try_from(b.slice(start..name_end)).map_err(TopicError::String)?;
        let filter = TopicFilter::try_from(b.slice(name_end + 1..))?;
        Ok(SharedFilter { share_name, filter })
    }
}

impl TryFrom<Bytes> for SharedFilter {
    type Error = ShareError;
    fn try_from(b: Bytes) -> Result<Self, ShareError> {
        SharedFilter::parse(b)
    }
}

impl TryFrom<&str> for SharedFilter {
    type Error = ShareError;
    fn try_from(s: &str) -> Result<Self, ShareError> {
        SharedFilter::parse(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl TryFrom<&TopicFilter> for SharedFilter {
    type Error = ShareError;
    fn try_from(f: &TopicFilter) -> Result<Self, ShareError> {
        SharedFilter::parse(f.as_mqtt_str().as_inner().clone())
    }
}

impl fmt::Debug for SharedFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"$share/{}/{}\"", self.share_name, self.filter)
    }
}

impl fmt::Display for SharedFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "$share/{}/{}", self.share_name, self.filter)
    }
}

impl SubscriptionFilter {
    /// Parses a subscription's filter: `$share/...` as a [`SharedFilter`],
    /// anything else as a plain [`TopicFilter`].
    fn parse(b: Bytes) -> Result<SubscriptionFilter, ShareError> {
        if b.starts_with(SHARE_PREFIX.as_bytes()) {
            SharedFilter::parse(b).map(SubscriptionFilter::Shared)
        } else {
            Ok(SubscriptionFilter::Plain(TopicFilter::try_from(b)?))
        }
    }

    /// The filter used for matching (for a shared one, the part after the
    /// ShareName).
    pub fn topic_filter(&self) -> &TopicFilter {
        match self {
            SubscriptionFilter::Plain(f) => f,
            SubscriptionFilter::Shared(s) => s.filter(),
        }
    }
}

impl TryFrom<Bytes> for SubscriptionFilter {
    type Error = ShareError;
    fn try_from(b: Bytes) -> Result<Self, ShareError> {
        SubscriptionFilter::parse(b)
    }
}

impl TryFrom<&str> for SubscriptionFilter {
    type Error = ShareError;
    fn try_from(s: &str) -> Result<Self, ShareError> {
        SubscriptionFilter::parse(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl TryFrom<TopicFilter> for SubscriptionFilter {
    type Error = ShareError;
    fn try_from(f: TopicFilter) -> Result<Self, ShareError> {
        if f.as_bytes().starts_with(SHARE_PREFIX.as_bytes()) {
            SharedFilter::try_from(&f).map(SubscriptionFilter::Shared)
        } else {
            Ok(SubscriptionFilter::Plain(f))
        }
    }
}

impl From<SharedFilter> for SubscriptionFilter {
    fn from(s: SharedFilter) -> Self {
        SubscriptionFilter::Shared(s)
    }
}

impl fmt::Display for SubscriptionFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubscriptionFilter::Plain(p) => fmt::Display::fmt(p, f),
            SubscriptionFilter::Shared(s) => fmt::Display::fmt(s, f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqtt_wire::StringError;

    #[test]
    fn mqtt5_4_8_2_1_share_prefix_and_non_empty_share_name() {
        // MQTT-4.8.2-1: begins "$share/" and names a ShareName of at least
        // one character.
        let s = SharedFilter::try_from("$share/g/a").unwrap();
        assert_eq!(s.share_name(), "g");
        assert_eq!(s.filter().as_str(), "a");
        for bad in ["$share//a", "$share/", "$share//", "$share//#"] {
            let e = SharedFilter::try_from(bad).unwrap_err();
            assert_eq!(e, ShareError::EmptyShareName, "{bad}");
            assert_eq!(e.spec_id(), "MQTT-4.8.2-1");
        }
        for not in [
            "$SHARE/g/a",
            "share/g/a",
            "$share",
            "$sharex/g/a",
            "a/$share/g/a",
        ] {
            assert_eq!(
                SharedFilter::try_from(not),
                Err(ShareError::NotShared),
                "{not}"
            );
            // ... and as a subscription filter it is an ordinary one.
            assert!(matches!(
                SubscriptionFilter::try_from(not),
                Ok(SubscriptionFilter::Plain(_))
            ));
        }
        // Multi-byte ShareNames are fine.
        let s = SharedFilter::try_from("$share/gr\u{fc}ppe/#").unwrap();
        assert_eq!(s.share_name(), "gr\u{fc}ppe");
    }

    #[test]
    fn mqtt5_4_8_2_2_share_name_and_filter_rules() {
        // MQTT-4.8.2-2: ShareName excludes '/', '+', '#', is followed by '/',
        // and that '/' is followed by a valid Topic Filter.
        for bad in [
            "$share/+/a",
            "$share/#/a",
            "$share/a+/b",
            "$share/g#",
            "$share/+",
        ] {
            let e = SharedFilter::try_from(bad).unwrap_err();
            assert_eq!(e, ShareError::ShareNameWildcard, "{bad}");
            assert_eq!(e.spec_id(), "MQTT-4.8.2-2");
        }
        assert_eq!(
            SharedFilter::try_from("$share/group"),
            Err(ShareError::MissingFilter)
        );
        assert_eq!(ShareError::MissingFilter.spec_id(), "MQTT-4.8.2-2");
        // '/' ends the ShareName: what follows is the filter, checked as one.
        assert_eq!(
            SharedFilter::try_from("$share/g/"),
            Err(ShareError::Filter(TopicError::Empty))
        );
        assert_eq!(
            SharedFilter::try_from("$share/g/a#"),
            Err(ShareError::Filter(TopicError::MultiLevelWildcardMisplaced))
        );
        assert_eq!(
            SharedFilter::try_from("$share/g/a+/b"),
            Err(ShareError::Filter(TopicError::SingleLevelWildcardMisplaced))
        );
        let s = SharedFilter::try_from("$share/g//a/+/#").unwrap();
        assert_eq!(s.share_name(), "g");
        assert_eq!(s.filter().as_str(), "/a/+/#");
        let s = SharedFilter::try_from("$share/g/$share/h/x").unwrap();
        assert_eq!(s.filter().as_str(), "$share/h/x");
    }

    #[test]
    fn share_string_rules_checked_on_the_whole() {
        assert_eq!(
            SharedFilter::try_from("$share/g\0/a"),
            Err(ShareError::Filter(TopicError::String(
                StringError::NullCharacter
            )))
        );
        let b = Bytes::from_static(b"$share/\xff/a");
        assert_eq!(
            SharedFilter::try_from(b),
            Err(ShareError::Filter(TopicError::String(
                StringError::InvalidUtf8
            )))
        );
        let long = alloc::format!("$share/g/{}", "a".repeat(65_535));
        assert_eq!(
            SharedFilter::try_from(long.as_str()).unwrap_err().spec_id(),
            "MQTT-4.7.3-3"
        );
    }

    #[test]
    fn from_topic_filter_is_zero_copy_and_round_trips() {
        let tf = TopicFilter::try_from("$share/g/sport/#").unwrap();
        let sf = SubscriptionFilter::try_from(tf.clone()).unwrap();
        assert_eq!(alloc::format!("{sf}"), "$share/g/sport/#");
        assert_eq!(sf.topic_filter().as_str(), "sport/#");
        let SubscriptionFilter::Shared(s) = sf else {
            panic!("not shared")
        };
        assert_eq!(
            s.filter().as_bytes().as_ptr(),
            tf.as_bytes().get(9..).unwrap().as_ptr()
        );
        // A "$share/+/x" TopicFilter is rejected as a share with the share rule.
        let tf = TopicFilter::try_from("$share/+/x").unwrap();
        assert_eq!(
            SubscriptionFilter::try_from(tf),
            Err(ShareError::ShareNameWildcard)
        );
        let e = ShareError::ShareNameWildcard;
        assert!(alloc::format!("{e}").contains("MQTT-4.8.2-2"));
    }
}
