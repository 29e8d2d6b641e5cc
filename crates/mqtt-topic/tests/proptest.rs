//! Property tests: the tree, the retained index and `matches` against the
//! naive oracle of `mqtt_topic::fuzzing` (a linear scan with a direct
//! matcher), over topics with `$` levels, empty levels, multi-byte UTF-8
//! and shared groups.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use mqtt_topic::fuzzing::{oracle_matches, run_ops, Op, Topic, GROUPS};
use mqtt_topic::{
    matches, Match, RetainedIndex, SharedFilter, SubscriptionTree, TopicFilter, TopicName,
};
use proptest::prelude::*;

/// Mostly short topics (shared prefixes, so lookups meet); now and then
/// one deeper than the tree splits up front (16 levels).
fn topic() -> impl Strategy<Value = Topic> {
    prop_oneof![
        9 => prop::collection::vec(any::<u8>(), 1..7),
        1 => prop::collection::vec(any::<u8>(), 15..=mqtt_topic::fuzzing::MAX_TOPIC_LEVELS),
    ]
    .prop_map(Topic)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (topic(), any::<u8>(), any::<u8>())
            .prop_map(|(filter, key, value)| Op::Insert { filter, key, value }),
        3 => (topic(), any::<u8>()).prop_map(|(filter, key)| Op::Remove { filter, key }),
        2 => (any::<u8>(), topic(), any::<u8>(), any::<u8>())
            .prop_map(|(group, filter, key, value)| Op::InsertShared { group, filter, key, value }),
        1 => (any::<u8>(), topic(), any::<u8>())
            .prop_map(|(group, filter, key)| Op::RemoveShared { group, filter, key }),
        3 => topic().prop_map(|name| Op::Match { name }),
        1 => Just(Op::Shrink),
        2 => (topic(), any::<u8>()).prop_map(|(name, value)| Op::Retain { name, value }),
        1 => topic().prop_map(|name| Op::Unretain { name }),
        2 => topic().prop_map(|filter| Op::MatchRetained { filter }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// `matches` agrees with the oracle (MQTT-4.7.1-1/2, MQTT-4.7.2-1,
    /// MQTT-4.7.3-4 byte-exact comparison).
    #[test]
    fn matches_agrees_with_oracle(f in topic(), n in topic()) {
        let (fs, ns) = (f.filter(), n.name());
        let got = matches(&TopicFilter::try_from(fs.as_str()).unwrap(), &TopicName::try_from(ns.as_str()).unwrap());
        prop_assert_eq!(got, oracle_matches(&fs, &ns), "{} {}", fs, ns);
    }

    /// A tree of random filters (plain and shared) reports exactly what a
    /// linear scan reports, for random names.
    #[test]
    fn tree_equals_linear_scan(
        filters in prop::collection::vec((topic(), any::<u8>(), any::<bool>()), 0..60),
        names in prop::collection::vec(topic(), 1..20),
    ) {
        let mut tree = SubscriptionTree::new();
        let mut all = Vec::new();
        for (i, (f, g, is_shared)) in filters.iter().enumerate() {
            let fs = f.filter();
            let key = i as u32;
            if *is_shared {
                let g = GROUPS[usize::from(*g) % GROUPS.len()];
                let s = SharedFilter::try_from(format!("$share/{g}/{fs}").as_str()).unwrap();
                tree.insert_shared(&s, key, ());
                all.push((fs, key, true));
            } else {
                tree.insert(&TopicFilter::try_from(fs.as_str()).unwrap(), key, ());
                all.push((fs, key, false));
            }
        }
        tree.check_invariants().unwrap();
        for n in &names {
            let ns = n.name();
            let mut got = Vec::new();
            tree.for_each_match(&TopicName::try_from(ns.as_str()).unwrap(), |m| match m {
                Match::Subscriber { key, .. } => got.push(*key),
                Match::Shared(g) => got.extend(g.members().iter().map(|(k, _)| *k)),
            });
            got.sort_unstable();
            let want: Vec<u32> = all.iter().filter(|(f, _, _)| oracle_matches(f, &ns)).map(|(_, k, _)| *k).collect();
            prop_assert_eq!(got, want, "name {}", ns);
        }
    }

    /// Wide nodes (more children than the hashed index's switch-over, up to
    /// 40 per node) through inserts and removals: every lookup equals a
    /// linear scan, and removing what is left empties the tree.
    #[test]
    fn wide_tree_equals_linear_scan(
        filters in prop::collection::vec(prop::collection::vec(0u8..44, 1..5), 0..150),
        removals in prop::collection::vec(any::<prop::sample::Index>(), 0..100),
        names in prop::collection::vec(prop::collection::vec(0u8..42, 1..5), 1..30),
    ) {
        // Levels 0..40 are literal (`l0`..`l39`, short and long), 40 and 41
        // empty and `$x`, 42 '+', 43 '#'.
        let level = |c: u8, last: bool| match c {
            0..=19 => format!("l{c}"),
            20..=39 => format!("a-long-level-name-{c}"),
            40 => String::new(),
            41 => "$x".into(),
            42 => "+".into(),
            _ if last => "#".into(),
            _ => "+".into(),
        };
        let text = |t: &Vec<u8>| {
            let l: Vec<String> = t.iter().enumerate().map(|(i, &c)| level(c, i + 1 == t.len())).collect();
            let s = l.join("/");
            if s.is_empty() { "e".to_string() } else { s }
        };
        let mut tree = SubscriptionTree::new();
        let mut all: Vec<(String, u32)> = Vec::new();
        for (i, f) in filters.iter().enumerate() {
            let fs = text(f);
            // Every other filter ends in '#', so that the tree (not only the
            // exact-filter table) gets wide nodes.
            let fs = if i % 2 == 1 && !fs.ends_with('#') { format!("{fs}/#") } else { fs };
            tree.insert(&TopicFilter::try_from(fs.as_str()).unwrap(), i as u32, ());
            all.retain(|(g, k)| !(g == &fs && *k == i as u32));
            all.push((fs, i as u32));
        }
        for r in &removals {
            if all.is_empty() { break; }
            let (fs, k) = all.swap_remove(r.index(all.len()));
            prop_assert_eq!(tree.remove(&TopicFilter::try_from(fs.as_str()).unwrap(), &k), Some(()));
        }
        tree.check_invariants().unwrap();
        for n in &names {
            let ns = text(n);
            let mut got = Vec::new();
            tree.for_each_match(&TopicName::try_from(ns.as_str()).unwrap(), |m| {
                if let Match::Subscriber { key, .. } = m { got.push(*key) }
            });
            got.sort_unstable();
            let mut want: Vec<u32> = all.iter().filter(|(f, _)| oracle_matches(f, &ns)).map(|(_, k)| *k).collect();
            want.sort_unstable();
            prop_assert_eq!(got, want, "name {}", ns);
        }
        for (fs, k) in all.drain(..) {
            prop_assert_eq!(tree.remove(&TopicFilter::try_from(fs.as_str()).unwrap(), &k), Some(()));
        }
        prop_assert_eq!((tree.node_count(), tree.heap_bytes()), (0, 0));
    }

    /// Mostly exact filters (kept in the hash table beside the tree), with
    /// several subscribers each, replaced, removed in random order and
    /// interleaved with lookups (also of `$` names, which exact filters do
    /// match), `get` and `len` checked against a model; the tree left over
    /// equals a fresh one, holds the same bytes once trimmed, and removing
    /// the rest returns every byte.
    #[test]
    fn exact_filters_insert_replace_remove(
        ops in prop::collection::vec(
            (0u8..4, prop::collection::vec(0u8..12, 1..5), 0u32..6, any::<u8>()),
            0..300,
        ),
        shared in prop::collection::vec((prop::collection::vec(0u8..12, 1..5), 0u32..6), 0..8),
    ) {
        // Levels: literal (short, long, `$x`, empty) and, rarely, wildcards.
        let level = |c: u8, first: bool, last: bool| match c {
            0..=3 => format!("l{c}"),
            4..=6 => format!("a-longer-level-of-more-than-16-bytes-{c}"),
            7 if first => "$x".into(),
            7 | 8 => String::new(),
            9 => "k".into(),
            10 => "+".into(),
            _ if last => "#".into(),
            _ => "m".into(),
        };
        let text = |t: &Vec<u8>| {
            let l: Vec<String> = t.iter().enumerate()
                .map(|(i, &c)| level(c, i == 0, i + 1 == t.len())).collect();
            let s = l.join("/");
            if s.is_empty() { "e".to_string() } else { s }
        };
        let name_of = |t: &Vec<u8>| text(t).replace('#', "h").replace('+', "p");
        let mut tree = SubscriptionTree::new();
        let mut model: std::collections::BTreeMap<(String, u32), u8> = Default::default();
        for (f, k) in &shared {
            let s = SharedFilter::try_from(format!("$share/g/{}", text(f)).as_str()).unwrap();
            tree.insert_shared(&s, *k, 0);
        }
        let n_shared = tree.len();
        let check = |tree: &SubscriptionTree<u32, u8>, model: &std::collections::BTreeMap<(String, u32), u8>, ns: &str| {
            let mut got = Vec::new();
            tree.for_each_match(&TopicName::try_from(ns).unwrap(), |m| {
                if let Match::Subscriber { key, value } = m { got.push((*key, *value)) }
            });
            got.sort_unstable();
            let mut want: Vec<(u32, u8)> = model.iter()
                .filter(|((f, _), _)| oracle_matches(f, ns)).map(|((_, k), v)| (*k, *v)).collect();
            want.sort_unstable();
            (got, want)
        };
        for (op, t, key, value) in &ops {
            let fs = text(t);
            let filter = TopicFilter::try_from(fs.as_str()).unwrap();
            match op {
                0 | 1 => {
                    let old = tree.insert(&filter, *key, *value);
                    prop_assert_eq!(old, model.insert((fs.clone(), *key), *value));
                }
                2 => {
                    prop_assert_eq!(tree.remove(&filter, key), model.remove(&(fs.clone(), *key)));
                }
                _ => {
                    let ns = name_of(t);
                    let (got, want) = check(&tree, &model, &ns);
                    prop_assert_eq!(got, want, "name {}", ns);
                }
            }
            prop_assert_eq!(tree.get(&filter, key), model.get(&(fs.clone(), *key)));
            prop_assert_eq!(tree.len(), model.len() + n_shared);
        }
        tree.check_invariants().unwrap();
        for ((fs, _), _) in model.iter() {
            let ns = fs.replace('#', "h").replace('+', "p");
            let (got, want) = check(&tree, &model, &ns);
            prop_assert_eq!(got, want, "name {}", ns);
        }
        let mut fresh = SubscriptionTree::new();
        for (f, k) in &shared {
            let s = SharedFilter::try_from(format!("$share/g/{}", text(f)).as_str()).unwrap();
            fresh.insert_shared(&s, *k, 0);
        }
        for ((fs, k), v) in model.iter().rev() {
            fresh.insert(&TopicFilter::try_from(fs.as_str()).unwrap(), *k, *v);
        }
        prop_assert!(tree == fresh);
        let mut trimmed = tree.clone();
        trimmed.shrink_to_fit();
        fresh.shrink_to_fit();
        prop_assert_eq!(trimmed.heap_bytes(), fresh.heap_bytes());
        prop_assert!(trimmed == fresh);
        trimmed.check_invariants().unwrap();
        for ((fs, k), v) in std::mem::take(&mut model) {
            prop_assert_eq!(tree.remove(&TopicFilter::try_from(fs.as_str()).unwrap(), &k), Some(v));
            prop_assert_eq!(trimmed.remove(&TopicFilter::try_from(fs.as_str()).unwrap(), &k), Some(v));
        }
        for (f, k) in &shared {
            let s = SharedFilter::try_from(format!("$share/g/{}", text(f)).as_str()).unwrap();
            tree.remove_shared(&s, k);
            trimmed.remove_shared(&s, k);
        }
        tree.check_invariants().unwrap();
        prop_assert_eq!((tree.len(), tree.node_count(), tree.heap_bytes()), (0, 0, 0));
        prop_assert_eq!((trimmed.len(), trimmed.node_count(), trimmed.heap_bytes()), (0, 0, 0));
    }

    /// The retained index reports exactly the stored names a filter matches.
    #[test]
    fn retained_equals_linear_scan(
        names in prop::collection::vec(topic(), 0..60),
        filters in prop::collection::vec(topic(), 1..20),
    ) {
        let mut idx = RetainedIndex::new();
        let mut stored = std::collections::BTreeSet::new();
        for n in &names {
            let ns = n.name();
            idx.insert(TopicName::try_from(ns.as_str()).unwrap(), ());
            stored.insert(ns);
        }
        for f in &filters {
            let fs = f.filter();
            let mut got = Vec::new();
            idx.for_each_match(&TopicFilter::try_from(fs.as_str()).unwrap(), |n, _| got.push(n.to_string()));
            got.sort();
            let want: Vec<String> = stored.iter().filter(|n| oracle_matches(&fs, n)).cloned().collect();
            prop_assert_eq!(got, want, "filter {}", fs);
        }
    }

    /// Insert/remove/match sequences: every lookup equals the oracle, and the
    /// tree (and retained index) left over equals a fresh one built from what
    /// remains, in structure and, once trimmed, in heap bytes; emptying it
    /// returns all memory.
    #[test]
    fn op_sequences_leave_a_fresh_tree(ops in prop::collection::vec(op(), 0..80)) {
        run_ops(&ops);
    }
}
