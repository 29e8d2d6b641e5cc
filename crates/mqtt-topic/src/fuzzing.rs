//! Checks shared by the fuzz targets (`fuzz/fuzz_targets/topic_*.rs`), the
//! corpus-replay test and the property tests. Not a stable API.
//!
//! Each check panics when the crate disagrees with a deliberately simple
//! oracle: a second, independent reading of the rules (string splitting and
//! a linear scan over every stored filter).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use crate::{
    matches_bytes, Match, RetainedIndex, ShareError, SharedFilter, SubscriptionFilter,
    SubscriptionTree, TopicFilter, TopicName,
};
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;

/// Levels the generated topics are built from: `$` levels, empty levels,
/// multi-byte UTF-8, look-alikes that must not match, and the wildcards.
pub const LEVELS: [&str; 14] = [
    "a",
    "b",
    "sport",
    "",
    "$SYS",
    "$share",
    "\u{e9}",
    "e\u{301}",
    "\u{65e5}\u{672c}",
    "A",
    "a b",
    "+",
    "#",
    "+",
];

/// Longer levels, chosen by level bytes of 0xC0 and above: lengths around
/// the tree's word-at-a-time compares (7, 8, 9 bytes) and its inline label
/// limit (15 to 18 bytes), look-alikes of one length that differ in their
/// last byte or in a middle one, and multi-byte UTF-8 crossing those
/// boundaries.
pub const LONG_LEVELS: [&str; 14] = [
    "abcdefg",
    "abcdefh",
    "abcdefgh",
    "abcdefgi",
    "abcdefghi",
    "temperature",
    "temperaturf",
    "0123456789abcde",
    "0123456789abcdef",
    "0123456x89abcdef",
    "0123456789abcdefg",
    "0123456789abcdefh",
    "0123456789abcdefgh",
    "\u{65e5}\u{672c}\u{65e5}\u{672c}\u{65e5}\u{672c}",
];

/// Most levels a generated topic has: more than the tree splits a name
/// into up front (16), so the scanning lookup is exercised too.
pub const MAX_TOPIC_LEVELS: usize = 20;

/// ShareNames used by generated shared subscriptions.
pub const GROUPS: [&str; 3] = ["g", "h", "gr\u{fc}n"];

/// A topic as a list of level choices: a byte below 0xC0 indexes
/// [`LEVELS`], a higher one [`LONG_LEVELS`]; at most [`MAX_TOPIC_LEVELS`]
/// levels.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct Topic(pub Vec<u8>);

impl Topic {
    fn levels(&self) -> impl Iterator<Item = &'static str> + '_ {
        let n = self.0.len().clamp(1, MAX_TOPIC_LEVELS);
        (0..n).map(|i| {
            let b = usize::from(*self.0.get(i).unwrap_or(&0));
            match b.checked_sub(0xC0) {
                Some(long) => LONG_LEVELS[long % LONG_LEVELS.len()],
                None => LEVELS[b % LEVELS.len()],
            }
        })
    }

    /// A valid filter: a `#` that is not last becomes `+`.
    pub fn filter(&self) -> String {
        let levels: Vec<&str> = self.levels().collect();
        let last = levels.len() - 1;
        let fixed: Vec<&str> = levels
            .iter()
            .enumerate()
            .map(|(i, l)| if *l == "#" && i != last { "+" } else { l })
            .collect();
        non_empty(fixed.join("/"))
    }

    /// A valid name: wildcards become `x`.
    pub fn name(&self) -> String {
        let levels: Vec<&str> = self
            .levels()
            .map(|l| if l == "+" || l == "#" { "x" } else { l })
            .collect();
        non_empty(levels.join("/"))
    }
}

/// A topic is at least one character (MQTT-4.7.3-1): one empty level is `/`'s
/// half, so use `a` instead.
fn non_empty(s: String) -> String {
    if s.is_empty() {
        "a".to_string()
    } else {
        s
    }
}

/// One operation on a [`SubscriptionTree`] or a [`RetainedIndex`].
#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    Insert {
        filter: Topic,
        key: u8,
        value: u8,
    },
    Remove {
        filter: Topic,
        key: u8,
    },
    InsertShared {
        group: u8,
        filter: Topic,
        key: u8,
        value: u8,
    },
    RemoveShared {
        group: u8,
        filter: Topic,
        key: u8,
    },
    Match {
        name: Topic,
    },
    Shrink,
    Retain {
        name: Topic,
        value: u8,
    },
    Unretain {
        name: Topic,
    },
    MatchRetained {
        filter: Topic,
    },
}

/// The direct reading of MQTT 5.0 §4.7 used as the oracle.
pub fn oracle_matches(filter: &str, name: &str) -> bool {
    if name.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let f: Vec<&str> = filter.split('/').collect();
    let n: Vec<&str> = name.split('/').collect();
    for (i, fl) in f.iter().enumerate() {
        if *fl == "#" {
            return true;
        }
        if i >= n.len() || (*fl != "+" && *fl != n[i]) {
            return false;
        }
    }
    f.len() == n.len()
}

fn oracle_string_ok(b: &[u8]) -> Option<&str> {
    let s = core::str::from_utf8(b).ok()?;
    (!s.is_empty() && s.len() <= 65_535 && !s.contains('\0')).then_some(s)
}

/// Whether `b` is a valid Topic Name, read directly from the rules.
pub fn oracle_name_ok(b: &[u8]) -> bool {
    oracle_string_ok(b).is_some_and(|s| !s.contains(['+', '#']))
}

/// Whether `b` is a valid Topic Filter, read directly from the rules.
pub fn oracle_filter_ok(b: &[u8]) -> bool {
    let Some(s) = oracle_string_ok(b) else {
        return false;
    };
    let levels: Vec<&str> = s.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| {
        (!l.contains('#') || (*l == "#" && i == levels.len() - 1))
            && (!l.contains('+') || *l == "+")
    })
}

/// `Some((share, filter))` if `b` is a valid shared subscription.
pub fn oracle_share(b: &[u8]) -> Option<(&str, &str)> {
    let s = oracle_string_ok(b)?;
    let rest = s.strip_prefix("$share/")?;
    let (name, filter) = rest.split_once('/')?;
    let ok = !name.is_empty() && !name.contains(['+', '#']) && oracle_filter_ok(filter.as_bytes());
    ok.then_some((name, filter))
}

/// Bytes into the name, filter and share parsers; `\n` splits the input
/// into a filter and a name for [`matches_bytes`].
pub fn check_parse(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    let name = TopicName::try_from(bytes.clone());
    assert_eq!(name.is_ok(), oracle_name_ok(data), "name {data:?}");
    let filter = TopicFilter::try_from(bytes.clone());
    assert_eq!(filter.is_ok(), oracle_filter_ok(data), "filter {data:?}");
    for e in [name.as_ref().err(), filter.as_ref().err()]
        .into_iter()
        .flatten()
    {
        assert!(e.spec_id().starts_with("MQTT-"));
        assert!(!e.to_string().is_empty());
    }
    if let (Ok(n), Ok(f)) = (&name, &filter) {
        // A name is a filter matching exactly itself.
        assert!(crate::matches(f, n));
        assert!(crate::matches(&TopicFilter::from(n.clone()), n));
        assert_eq!(n.levels().count(), f.levels().count());
    }

    let shared = SharedFilter::try_from(bytes.clone());
    match (&shared, oracle_share(data)) {
        (Ok(s), Some((share, f))) => {
            assert_eq!(s.share_name(), share);
            assert_eq!(s.filter().as_bytes(), f.as_bytes());
            assert_eq!(s.to_string().as_bytes(), data);
        }
        (Err(e), None) => {
            assert!(e.spec_id().starts_with("MQTT-"));
            assert!(!e.to_string().is_empty());
            if !data.starts_with(b"$share/") {
                assert_eq!(*e, ShareError::NotShared);
            }
        }
        (got, want) => panic!("share {data:?}: got {got:?}, oracle {want:?}"),
    }
    let sub = SubscriptionFilter::try_from(bytes);
    if data.starts_with(b"$share/") {
        assert_eq!(sub.is_ok(), shared.is_ok());
    } else {
        assert_eq!(sub.is_ok(), filter.is_ok());
    }
    if let Ok(s) = &sub {
        assert_eq!(s.to_string().as_bytes(), data);
    }

    if let Some(i) = data.iter().position(|&c| c == b'\n') {
        let (f, n) = (&data[..i], &data[i + 1..]);
        if oracle_filter_ok(f) && oracle_name_ok(n) {
            let (fs, ns) = (
                core::str::from_utf8(f).unwrap(),
                core::str::from_utf8(n).unwrap(),
            );
            assert_eq!(matches_bytes(f, n), oracle_matches(fs, ns), "{fs:?} {ns:?}");
            let mut t = SubscriptionTree::new();
            t.insert(&TopicFilter::try_from(fs).unwrap(), 0u8, ());
            let mut hit = false;
            t.for_each_match(&TopicName::try_from(ns).unwrap(), |_| hit = true);
            assert_eq!(hit, oracle_matches(fs, ns), "tree {fs:?} {ns:?}");
            let mut r = RetainedIndex::new();
            r.insert(TopicName::try_from(ns).unwrap(), ());
            let mut hit = false;
            r.for_each_match(&TopicFilter::try_from(fs).unwrap(), |_, _| hit = true);
            assert_eq!(hit, oracle_matches(fs, ns), "retained {fs:?} {ns:?}");
        }
    }
}

/// What a lookup reports, in a comparable form: plain `(key, value)` pairs
/// and `(ShareName, members)` groups, sorted.
type Seen = (Vec<(u8, u8)>, Vec<(String, Vec<(u8, u8)>)>);

/// The state the oracle keeps: every subscription in a flat map.
#[derive(Default)]
struct Model {
    /// (ShareName or none, filter, key) -> value.
    subs: BTreeMap<(Option<String>, String, u8), u8>,
    retained: BTreeMap<String, u8>,
}

impl Model {
    fn matches(&self, name: &str) -> Seen {
        let mut plain = Vec::new();
        let mut groups: BTreeMap<(String, String), Vec<(u8, u8)>> = BTreeMap::new();
        for ((share, filter, key), value) in &self.subs {
            if oracle_matches(filter, name) {
                match share {
                    None => plain.push((*key, *value)),
                    Some(s) => groups
                        .entry((s.clone(), filter.clone()))
                        .or_default()
                        .push((*key, *value)),
                }
            }
        }
        plain.sort();
        let mut g: Vec<(String, Vec<(u8, u8)>)> =
            groups.into_iter().map(|((s, _), m)| (s, m)).collect();
        g.sort();
        (plain, g)
    }

    fn tree(&self) -> SubscriptionTree<u8, u8> {
        let mut t = SubscriptionTree::new();
        for ((share, filter, key), value) in &self.subs {
            let f = TopicFilter::try_from(filter.as_str()).unwrap();
            match share {
                None => t.insert(&f, *key, *value),
                Some(s) => t.insert_shared(&shared(s, filter), *key, *value),
            };
        }
        t
    }
}

fn shared(group: &str, filter: &str) -> SharedFilter {
    SharedFilter::try_from(alloc::format!("$share/{group}/{filter}").as_str()).unwrap()
}

fn tree_matches(t: &SubscriptionTree<u8, u8>, name: &str) -> Seen {
    let mut plain = Vec::new();
    let mut groups = Vec::new();
    t.for_each_match(&TopicName::try_from(name).unwrap(), |m| match m {
        Match::Subscriber { key, value } => plain.push((*key, *value)),
        Match::Shared(g) => groups.push((g.share_name().to_string(), g.members().to_vec())),
    });
    plain.sort();
    groups.sort();
    (plain, groups)
}

/// Applies `ops` to a tree and a retained index, checking each lookup
/// against the oracle, the invariants after each change, and at the end
/// that both equal fresh ones built from what remains (structure, and heap
/// bytes once trimmed).
pub fn run_ops(ops: &[Op]) {
    let mut tree: SubscriptionTree<u8, u8> = SubscriptionTree::new();
    let mut ret: RetainedIndex<u8> = RetainedIndex::new();
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Insert { filter, key, value } => {
                let fs = filter.filter();
                let key = key % 8;
                let f = TopicFilter::try_from(fs.as_str()).unwrap();
                let old = tree.insert(&f, key, *value);
                assert_eq!(old, model.subs.insert((None, fs, key), *value));
            }
            Op::Remove { filter, key } => {
                let fs = filter.filter();
                let key = key % 8;
                let f = TopicFilter::try_from(fs.as_str()).unwrap();
                assert_eq!(tree.remove(&f, &key), model.subs.remove(&(None, fs, key)));
            }
            Op::InsertShared {
                group,
                filter,
                key,
                value,
            } => {
                let g = GROUPS[usize::from(*group) % GROUPS.len()];
                let fs = filter.filter();
                let key = key % 8;
                let old = tree.insert_shared(&shared(g, &fs), key, *value);
                assert_eq!(old, model.subs.insert((Some(g.into()), fs, key), *value));
            }
            Op::RemoveShared { group, filter, key } => {
                let g = GROUPS[usize::from(*group) % GROUPS.len()];
                let fs = filter.filter();
                let key = key % 8;
                let got = tree.remove_shared(&shared(g, &fs), &key);
                assert_eq!(got, model.subs.remove(&(Some(g.into()), fs, key)));
            }
            Op::Match { name } => {
                let ns = name.name();
                assert_eq!(tree_matches(&tree, &ns), model.matches(&ns), "name {ns:?}");
            }
            Op::Shrink => {
                tree.shrink_to_fit();
                ret.shrink_to_fit();
            }
            Op::Retain { name, value } => {
                let ns = name.name();
                let n = TopicName::try_from(ns.as_str()).unwrap();
                assert_eq!(ret.insert(n, *value), model.retained.insert(ns, *value));
            }
            Op::Unretain { name } => {
                let ns = name.name();
                let n = TopicName::try_from(ns.as_str()).unwrap();
                assert_eq!(ret.remove(&n), model.retained.remove(&ns));
            }
            Op::MatchRetained { filter } => {
                let fs = filter.filter();
                let mut got = Vec::new();
                ret.for_each_match(&TopicFilter::try_from(fs.as_str()).unwrap(), |n, v| {
                    got.push((n.to_string(), *v))
                });
                got.sort();
                let want: Vec<(String, u8)> = model
                    .retained
                    .iter()
                    .filter(|(n, _)| oracle_matches(&fs, n))
                    .map(|(n, v)| (n.clone(), *v))
                    .collect();
                assert_eq!(got, want, "filter {fs:?}");
            }
        }
        tree.check_invariants().unwrap();
        assert_eq!(tree.len(), model.subs.len());
        assert_eq!(ret.len(), model.retained.len());
    }
    // The tree equals one built from scratch from what remains...
    let mut fresh = model.tree();
    assert!(tree == fresh, "tree differs from a fresh one");
    assert_eq!(tree.node_count(), fresh.node_count());
    // ... and holds the same memory once both are trimmed.
    tree.shrink_to_fit();
    fresh.shrink_to_fit();
    assert_eq!(tree.heap_bytes(), fresh.heap_bytes());
    let mut fresh_ret = RetainedIndex::new();
    for (n, v) in &model.retained {
        fresh_ret.insert(TopicName::try_from(n.as_str()).unwrap(), *v);
    }
    assert_eq!(ret.node_count(), fresh_ret.node_count());
    ret.shrink_to_fit();
    fresh_ret.shrink_to_fit();
    assert_eq!(ret.heap_bytes(), fresh_ret.heap_bytes());
    // Emptying everything gives all memory back.
    let keys: Vec<_> = model.subs.keys().cloned().collect();
    for (share, filter, key) in keys {
        let got = match &share {
            None => tree.remove(&TopicFilter::try_from(filter.as_str()).unwrap(), &key),
            Some(g) => tree.remove_shared(&shared(g, &filter), &key),
        };
        assert!(got.is_some());
    }
    for n in model.retained.keys() {
        assert!(ret
            .remove(&TopicName::try_from(n.as_str()).unwrap())
            .is_some());
    }
    assert_eq!((tree.node_count(), tree.heap_bytes()), (0, 0));
    assert_eq!((ret.node_count(), ret.heap_bytes()), (0, 0));
}

/// The `topic_tree_ops` fuzz target: bytes into an [`Op`] sequence.
pub fn check_tree_ops(data: &[u8]) {
    if let Ok(ops) = Vec::<Op>::arbitrary_take_rest(Unstructured::new(data)) {
        run_ops(&ops);
    }
}
