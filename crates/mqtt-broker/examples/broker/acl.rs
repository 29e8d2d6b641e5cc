//! mosquitto's acl_file syntax.
//!
//! ```text
//! # lines before any `user` line: for clients without a user name
//! topic read public/#
//! user alice
//! topic readwrite alice/#
//! topic deny alice/secret
//! # patterns: for every client; %c is the client id, %u the user name
//! pattern write clients/%c/status
//! ```
//!
//! `topic [read|write|readwrite|deny] TOPIC` (no access word: readwrite).
//! A `deny` wins over any grant. With an ACL file, what no line grants is
//! refused.
//!
//! Publishing is checked per message with `mqtt_topic::matches`. The core
//! checks subscriptions once, at SUBSCRIBE (it has no per-delivery read
//! hook), so a subscription is granted only when every topic its filter
//! can match is readable: `a/+` is granted by `topic read a/#`, `#` is not
//! granted by `topic read a/#` (mosquitto would grant it and filter each
//! message). A filter that overlaps a `deny` topic is refused.

use std::collections::HashMap;
use std::error::Error;
use std::path::Path;

use mqtt_topic::{matches, matches_bytes, SubscriptionFilter, TopicFilter, TopicName};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl Access {
    fn reads(self) -> bool {
        matches!(self, Access::Read | Access::ReadWrite)
    }

    fn writes(self) -> bool {
        matches!(self, Access::Write | Access::ReadWrite)
    }
}

#[derive(Debug, Clone)]
struct Rule {
    access: Access,
    topic: TopicFilter,
}

#[derive(Debug, Clone)]
struct Pattern {
    access: Access,
    /// The topic with `%c` / `%u` still in it.
    template: String,
}

/// A parsed ACL file.
#[derive(Debug, Default)]
pub(crate) struct Acl {
    anonymous: Vec<Rule>,
    users: HashMap<String, Vec<Rule>>,
    patterns: Vec<Pattern>,
}

/// One line's access and topic: `[read|write|readwrite|deny] TOPIC`.
fn access_and_topic(rest: &str) -> (Access, &str) {
    let rest = rest.trim();
    if let Some((word, topic)) = rest.split_once(' ') {
        let access = match word {
            "read" => Some(Access::Read),
            "write" => Some(Access::Write),
            "readwrite" => Some(Access::ReadWrite),
            "deny" => Some(Access::Deny),
            _ => None,
        };
        if let Some(a) = access {
            return (a, topic.trim());
        }
    }
    (Access::ReadWrite, rest)
}

impl Acl {
    /// Reads and parses `path`; an error names the file and the line.
    pub(crate) fn load(path: &Path) -> Result<Self, Box<dyn Error>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read ACL file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("ACL file {}: {e}", path.display()).into())
    }

    fn parse(text: &str) -> Result<Self, String> {
        let mut acl = Acl::default();
        let mut user: Option<String> = None;
        for (n, line) in text.lines().enumerate() {
            let n = n + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            match word {
                "user" => {
                    let name = rest.trim();
                    if name.is_empty() {
                        return Err(format!("line {n}: `user` needs a name"));
                    }
                    user = Some(name.to_owned());
                    acl.users.entry(name.to_owned()).or_default();
                }
                "topic" => {
                    let (access, topic) = access_and_topic(rest);
                    let topic = TopicFilter::try_from(topic.to_owned())
                        .map_err(|e| format!("line {n}: topic {topic:?}: {e}"))?;
                    let rule = Rule { access, topic };
                    match &user {
                        Some(u) => acl.users.entry(u.clone()).or_default().push(rule),
                        None => acl.anonymous.push(rule),
                    }
                }
                "pattern" => {
                    let (access, topic) = access_and_topic(rest);
                    let probe = topic.replace("%c", "c").replace("%u", "u");
                    TopicFilter::try_from(probe)
                        .map_err(|e| format!("line {n}: pattern {topic:?}: {e}"))?;
                    acl.patterns.push(Pattern {
                        access,
                        template: topic.to_owned(),
                    });
                }
                other => return Err(format!("line {n}: unknown directive {other:?}")),
            }
        }
        Ok(acl)
    }

    /// The client's rules, patterns substituted: (access, filter text).
    fn rules_for<'a>(
        &'a self,
        user: Option<&str>,
        client_id: &str,
    ) -> impl Iterator<Item = (Access, std::borrow::Cow<'a, str>)> + 'a {
        let fixed = match user {
            Some(u) => self.users.get(u).map_or(&[][..], Vec::as_slice),
            None => self.anonymous.as_slice(),
        };
        let fixed = fixed
            .iter()
            .map(|r| (r.access, std::borrow::Cow::Borrowed(r.topic.as_str())));
        // A wildcard in a client id or user name must not widen a pattern.
        let unsafe_value = |v: &str| v.contains(['+', '#']);
        let client_ok = !unsafe_value(client_id);
        let user_owned = user.map(str::to_owned);
        let client_owned = client_id.to_owned();
        let patterns = self.patterns.iter().filter_map(move |p| {
            if p.template.contains("%c") && !client_ok {
                return None;
            }
            let mut t = p.template.replace("%c", &client_owned);
            if t.contains("%u") {
                let u = user_owned.as_deref().filter(|u| !unsafe_value(u))?;
                t = t.replace("%u", u);
            }
            Some((p.access, std::borrow::Cow::Owned(t)))
        });
        fixed.chain(patterns)
    }

    /// May this client publish to `topic`?
    pub(crate) fn may_write(&self, user: Option<&str>, client_id: &str, topic: &TopicName) -> bool {
        self.topic_access(user, client_id, topic, Access::writes)
    }

    /// May this client receive a message published to `topic`? (Read
    /// access, checked per delivery.)
    pub(crate) fn may_read_topic(
        &self,
        user: Option<&str>,
        client_id: &str,
        topic: &TopicName,
    ) -> bool {
        self.topic_access(user, client_id, topic, Access::reads)
    }

    /// Whether a rule matching `topic` grants what `grants` asks and no
    /// `deny` rule matches it.
    fn topic_access(
        &self,
        user: Option<&str>,
        client_id: &str,
        topic: &TopicName,
        grants: fn(Access) -> bool,
    ) -> bool {
        let name = topic.as_bytes();
        let mut granted = false;
        for (access, filter) in self.rules_for(user, client_id) {
            if matches_bytes(filter.as_bytes(), name) {
                if access == Access::Deny {
                    return false;
                }
                granted |= grants(access);
            }
        }
        granted
    }

    /// May this client subscribe to `filter`?
    pub(crate) fn may_read(
        &self,
        user: Option<&str>,
        client_id: &str,
        filter: &SubscriptionFilter,
    ) -> bool {
        let f = match filter {
            SubscriptionFilter::Plain(f) => f,
            SubscriptionFilter::Shared(s) => s.filter(),
        };
        // A filter without wildcards is a topic name: match it directly.
        let as_name = TopicName::try_from(f.as_str().to_owned()).ok();
        let mut granted = false;
        for (access, acl) in self.rules_for(user, client_id) {
            let hit = if access == Access::Deny {
                overlaps(&acl, f.as_str())
            } else {
                match (&as_name, TopicFilter::try_from(acl.as_ref().to_owned())) {
                    (Some(name), Ok(acl)) => matches(&acl, name),
                    _ => covers(&acl, f.as_str()),
                }
            };
            if hit {
                if access == Access::Deny {
                    return false;
                }
                granted |= access.reads();
            }
        }
        granted
    }
}

/// Whether the first level is one a leading wildcard never matches.
fn dollar(s: &str) -> bool {
    s.starts_with('$')
}

fn wild(level: &str) -> bool {
    level == "+" || level == "#"
}

/// Whether every topic that `filter` matches is matched by `acl`.
fn covers(acl: &str, filter: &str) -> bool {
    if dollar(filter) && acl.split('/').next().is_some_and(wild) {
        return false; // MQTT-4.7.2-1
    }
    let mut a = acl.split('/');
    let mut f = filter.split('/');
    loop {
        match (a.next(), f.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(l)) if l != "#" => {}
            (Some(x), Some(l)) if x == l && !wild(l) => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether some topic matches both filters.
fn overlaps(x: &str, y: &str) -> bool {
    let first_wild = |s: &str| s.split('/').next().is_some_and(wild);
    if (dollar(x) && first_wild(y)) || (dollar(y) && first_wild(x)) {
        return false;
    }
    let mut a = x.split('/');
    let mut b = y.split('/');
    loop {
        match (a.next(), b.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (Some(p), Some(q)) if p == "+" || q == "+" || p == q => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
// Tests: a failed unwrap is a failed test.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn acl(text: &str) -> Acl {
        Acl::parse(text).unwrap()
    }

    fn name(s: &str) -> TopicName {
        TopicName::try_from(s.to_owned()).unwrap()
    }

    fn sub(s: &str) -> SubscriptionFilter {
        SubscriptionFilter::try_from(s).unwrap()
    }

    #[test]
    fn users_anonymous_patterns_and_deny() {
        let a = acl("topic read public/#\n\
             user alice\n\
             topic readwrite alice/#\n\
             topic deny alice/secret\n\
             topic write sensors/+\n\
             pattern write clients/%c/status\n\
             pattern read users/%u/#\n");
        // anonymous
        assert!(a.may_read(None, "x", &sub("public/a")));
        assert!(a.may_read(None, "x", &sub("public/#")));
        assert!(!a.may_read(None, "x", &sub("#")));
        assert!(!a.may_write(None, "x", &name("public/a")));
        assert!(a.may_write(None, "x", &name("clients/x/status")));
        assert!(!a.may_write(None, "x", &name("clients/y/status")));
        // alice
        assert!(a.may_write(Some("alice"), "c", &name("alice/a/b")));
        assert!(!a.may_write(Some("alice"), "c", &name("alice/secret")));
        assert!(!a.may_read(Some("alice"), "c", &sub("alice/#")));
        assert!(a.may_read(Some("alice"), "c", &sub("alice/+/b")));
        assert!(a.may_read(Some("alice"), "c", &sub("$share/g/alice/x")));
        assert!(a.may_write(Some("alice"), "c", &name("sensors/t")));
        assert!(!a.may_read(Some("alice"), "c", &sub("sensors/t")));
        assert!(a.may_read(Some("alice"), "c", &sub("users/alice/x")));
        assert!(!a.may_read(Some("alice"), "c", &sub("users/bob/x")));
        assert!(!a.may_read(None, "c", &sub("users/alice/x")));
        // unknown user: nothing
        assert!(!a.may_read(Some("bob"), "c", &sub("public/a")));
        // a wildcard client id does not widen a pattern
        assert!(!a.may_write(None, "+", &name("clients/x/status")));
    }

    #[test]
    fn read_rights_per_delivered_topic() {
        let a = acl("topic read public/#\n\
             user alice\n\
             topic readwrite alice/#\n\
             topic deny alice/secret\n\
             topic write sensors/+\n\
             pattern read users/%u/#\n");
        assert!(a.may_read_topic(None, "x", &name("public/a/b")));
        assert!(!a.may_read_topic(None, "x", &name("alice/a")));
        assert!(a.may_read_topic(Some("alice"), "c", &name("alice/a")));
        assert!(!a.may_read_topic(Some("alice"), "c", &name("alice/secret")));
        // write-only is not read
        assert!(!a.may_read_topic(Some("alice"), "c", &name("sensors/t")));
        assert!(a.may_read_topic(Some("alice"), "c", &name("users/alice/x")));
        assert!(!a.may_read_topic(Some("alice"), "c", &name("users/bob/x")));
    }

    #[test]
    fn covers_and_overlaps() {
        assert!(covers("a/#", "a"));
        assert!(covers("a/#", "a/+/c"));
        assert!(covers("a/+", "a/+"));
        assert!(!covers("a/+", "a/#"));
        assert!(!covers("a/b", "a/+"));
        assert!(!covers("#", "$SYS/x"));
        assert!(overlaps("a/+", "+/b"));
        assert!(!overlaps("a/b", "a/c"));
        assert!(overlaps("#", "x/y"));
        assert!(!overlaps("#", "$SYS/#"));
    }

    #[test]
    fn rejects_bad_lines() {
        assert!(Acl::parse("frobnicate x\n").is_err());
        assert!(Acl::parse("topic read a/#/b\n").is_err());
        assert!(Acl::parse("user\n").is_err());
    }
}
