//! Matching one Topic Filter against one Topic Name (MQTT 5.0 §4.7,
//! MQTT 3.1.1 §4.7).

use crate::{TopicFilter, TopicName};

/// Whether `filter` matches `name`.
///
/// Levels are compared byte for byte: no normalisation, case folding or
/// substitution (MQTT-4.7.3-4). `+` matches exactly one level (which may be
/// empty), `#` matches the parent level and any number of levels below it.
/// A filter whose first character is `+` or `#` never matches a name whose
/// first character is `$` (MQTT-4.7.2-1), so `#` does not see `$SYS/...`.
///
/// The loop is iterative: a filter of 32,768 levels costs time, not stack.
///
/// ```
/// use mqtt_topic::{matches, TopicFilter, TopicName};
/// let f = |s| TopicFilter::try_from(s).unwrap();
/// let n = |s| TopicName::try_from(s).unwrap();
/// assert!(matches(&f("sport/tennis/player1/#"), &n("sport/tennis/player1")));
/// assert!(matches(&f("sport/+"), &n("sport/")));
/// assert!(!matches(&f("sport/+"), &n("sport")));
/// assert!(!matches(&f("#"), &n("$SYS/uptime")));
/// assert!(matches(&f("$SYS/#"), &n("$SYS/uptime")));
/// ```
pub fn matches(filter: &TopicFilter, name: &TopicName) -> bool {
    matches_bytes(filter.as_bytes(), name.as_bytes())
}

/// [`matches()`] on raw bytes, for callers that hold validated text in another
/// form. The result is only meaningful for a valid filter and name; other
/// input gives an unspecified answer but never panics.
pub fn matches_bytes(filter: &[u8], name: &[u8]) -> bool {
    // MQTT-4.7.2-1: a leading wildcard does not match a leading '$'.
    if name.first() == Some(&b'$') && matches!(filter.first(), Some(b'+' | b'#')) {
        return false;
    }
    let mut f = filter.split(|&c| c == b'/');
    let mut n = name.split(|&c| c == b'/');
    loop {
        match (f.next(), n.next()) {
            // '#' matches what remains, including nothing ("a/#" matches "a").
            (Some(b"#"), _) => return true,
            (Some(b"+"), Some(_)) => {}
            (Some(fl), Some(nl)) => {
                if fl != nl {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TopicError;

    fn f(s: &str) -> TopicFilter {
        TopicFilter::try_from(s).unwrap()
    }
    fn n(s: &str) -> TopicName {
        TopicName::try_from(s).unwrap()
    }
    fn m(filter: &str, name: &str) -> bool {
        matches(&f(filter), &n(name))
    }

    #[test]
    fn spec_examples_multi_level() {
        // MQTT 5.0 §4.7.1.2 non-normative example.
        for name in [
            "sport/tennis/player1",
            "sport/tennis/player1/ranking",
            "sport/tennis/player1/score/wimbledon",
        ] {
            assert!(m("sport/tennis/player1/#", name), "{name}");
        }
        assert!(m("sport/#", "sport"));
        assert!(m("#", "sport/tennis"));
        assert!(!m("sport/tennis/player1/#", "sport/tennis/player2"));
    }

    #[test]
    fn spec_examples_single_level() {
        // MQTT 5.0 §4.7.1.3 non-normative example.
        assert!(m("sport/tennis/+", "sport/tennis/player1"));
        assert!(m("sport/tennis/+", "sport/tennis/player2"));
        assert!(!m("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(m("sport/+", "sport/"));
        assert!(!m("sport/+", "sport"));
        assert!(m("+/+", "/finance"));
        assert!(m("/+", "/finance"));
        assert!(!m("+", "/finance"));
        assert!(m("+/tennis/#", "sport/tennis/player1"));
        assert!(m("+/+/+", "a/b/c"));
        assert!(!m("+/+", "a"));
    }

    #[test]
    fn empty_levels_are_distinct() {
        assert!(m("a//b", "a//b"));
        assert!(!m("a//b", "a/b"));
        assert!(m("a/+/b", "a//b"));
        assert!(!m("/a", "a"));
        assert!(!m("a/", "a"));
        assert!(m("a/#", "a/"));
        assert!(m("+", "x"));
        assert!(m("/", "/"));
        assert!(m("+/+", "/"));
    }

    #[test]
    fn mqtt5_4_7_2_1_dollar_rule() {
        // MQTT-4.7.2-1 (5.0 and 3.1.1): filters beginning with a wildcard do
        // not match topic names beginning with '$'.
        assert!(!m("#", "$SYS/broker/clients"));
        assert!(!m("+/monitor/Clients", "$SYS/monitor/Clients"));
        assert!(!m("+", "$SYS"));
        assert!(!m("+/#", "$share"));
        assert!(m("$SYS/#", "$SYS/monitor/Clients"));
        assert!(m("$SYS/monitor/+", "$SYS/monitor/Clients"));
        assert!(m("$SYS/#", "$SYS"));
        // Only the first character counts: '$' further in is ordinary.
        assert!(m("#", "a/$SYS"));
        assert!(m("+/+", "a/$b"));
        assert!(m("a$/+", "a$/x"));
    }

    #[test]
    fn mqtt5_4_7_3_4_matching_is_byte_exact() {
        // MQTT-4.7.3-4: no normalisation, case folding or substitution.
        assert!(!m("Sport", "sport"));
        assert!(!m("ACCOUNTS", "Accounts"));
        // U+00E9 precomposed vs e + U+0301 combining: different bytes.
        assert!(!m("caf\u{e9}", "cafe\u{301}"));
        assert!(m("caf\u{e9}/+", "caf\u{e9}/\u{1F600}"));
        assert!(!m("a ", "a"));
        // A byte order mark is kept as it is.
        assert!(!m("\u{feff}a", "a"));
        assert!(m("\u{feff}a", "\u{feff}a"));
    }

    #[test]
    fn mqtt5_4_7_0_1_wildcards_only_in_filters() {
        // MQTT-4.7.0-1 (5.0) / MQTT-4.7.1-1 (3.1.1): wildcards may appear in
        // filters but never in names.
        for bad in ["+", "#", "a/+", "a/#", "a+b", "sport/tennis#", "#/a"] {
            assert_eq!(
                TopicName::try_from(bad),
                Err(TopicError::WildcardInName),
                "{bad}"
            );
            assert_eq!(TopicError::WildcardInName.spec_id(), "MQTT-4.7.0-1");
        }
        for good in ["+", "#", "a/+", "a/#", "+/+/#"] {
            assert!(TopicFilter::try_from(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn mqtt5_3_3_2_2_publish_topic_has_no_wildcards() {
        // MQTT-3.3.2-2 (5.0 and 3.1.1): the Topic Name of a PUBLISH holds no
        // wildcard; the codec decodes it as a TopicName, which refuses them.
        for bad in ["sport/+/x", "sport/#", "+", "a#"] {
            assert_eq!(TopicName::try_from(bad), Err(TopicError::WildcardInName));
        }
        assert!(TopicName::try_from("sport/tennis/player1").is_ok());
    }

    #[test]
    fn mqtt5_3_3_2_14_response_topic_has_no_wildcards() {
        // MQTT-3.3.2-14: a Response Topic is a Topic Name, so it is held as a
        // TopicName and cannot carry '+' or '#'.
        for bad in ["reply/+", "reply/#", "reply/to+me"] {
            assert_eq!(TopicName::try_from(bad), Err(TopicError::WildcardInName));
        }
        let ok = n("reply/client-7/req-42");
        assert!(matches(&f("reply/+/#"), &ok));
    }

    #[test]
    fn mqtt5_4_7_1_1_multi_level_wildcard_last() {
        // MQTT-4.7.1-1 (5.0) / MQTT-4.7.1-2 (3.1.1): '#' alone or after '/',
        // and always last.
        for ok in ["#", "a/#", "a/b/#", "/#", "+/#", "a//#"] {
            assert!(TopicFilter::try_from(ok).is_ok(), "{ok}");
        }
        for bad in ["a#", "a/#/b", "#/", "##", "a/b#", "#a", "a/#/#"] {
            let e = TopicFilter::try_from(bad).unwrap_err();
            assert_eq!(e, TopicError::MultiLevelWildcardMisplaced, "{bad}");
            assert_eq!(e.spec_id(), "MQTT-4.7.1-1");
        }
    }

    #[test]
    fn mqtt5_4_7_1_2_single_level_wildcard_whole_level() {
        // MQTT-4.7.1-2 (5.0) / MQTT-4.7.1-3 (3.1.1): '+' fills a whole level.
        for ok in ["+", "+/tennis/#", "sport/+/player1", "+/+", "/+", "+/"] {
            assert!(TopicFilter::try_from(ok).is_ok(), "{ok}");
        }
        for bad in ["sport+", "sport/+a", "a/++/b", "+a", "a+/b"] {
            let e = TopicFilter::try_from(bad).unwrap_err();
            assert_eq!(e, TopicError::SingleLevelWildcardMisplaced, "{bad}");
            assert_eq!(e.spec_id(), "MQTT-4.7.1-2");
        }
    }

    #[test]
    fn mqtt5_4_7_3_1_topics_not_empty() {
        // MQTT-4.7.3-1: at least one character.
        assert_eq!(TopicName::try_from(""), Err(TopicError::Empty));
        assert_eq!(TopicFilter::try_from(""), Err(TopicError::Empty));
        assert_eq!(TopicError::Empty.spec_id(), "MQTT-4.7.3-1");
        assert!(TopicName::try_from("/").is_ok());
        assert!(TopicFilter::try_from("/").is_ok());
    }

    #[test]
    fn mqtt5_4_7_3_2_no_null_character() {
        // MQTT-4.7.3-2: no U+0000.
        for bad in ["a\0", "\0", "a/\0/b"] {
            let e = TopicName::try_from(bad).unwrap_err();
            assert_eq!(e.spec_id(), "MQTT-4.7.3-2", "{bad:?}");
            let e = TopicFilter::try_from(bad).unwrap_err();
            assert_eq!(e.spec_id(), "MQTT-4.7.3-2", "{bad:?}");
        }
    }

    #[test]
    fn mqtt5_4_7_3_3_at_most_65535_bytes() {
        // MQTT-4.7.3-3: at most 65,535 bytes once encoded.
        let max = "a".repeat(65_535);
        assert!(TopicName::try_from(max.as_str()).is_ok());
        assert!(TopicFilter::try_from(max.as_str()).is_ok());
        let over = "a".repeat(65_536);
        assert_eq!(
            TopicName::try_from(over.as_str()).unwrap_err().spec_id(),
            "MQTT-4.7.3-3"
        );
        assert_eq!(
            TopicFilter::try_from(over.as_str()).unwrap_err().spec_id(),
            "MQTT-4.7.3-3"
        );
        // Multi-byte characters count in bytes: 21,845 x 3 = 65,535.
        let wide = "\u{20AC}".repeat(21_845);
        assert!(TopicName::try_from(wide.as_str()).is_ok());
        let wider = "\u{20AC}".repeat(21_846);
        assert!(TopicName::try_from(wider.as_str()).is_err());
    }

    #[test]
    fn deep_topics_match_without_recursion() {
        let name = "a/".repeat(32_767) + "a";
        let filter = "+/".repeat(32_767) + "#";
        assert!(m(&filter, &name));
        assert!(matches_bytes(b"a/#", b"a"));
    }
}
