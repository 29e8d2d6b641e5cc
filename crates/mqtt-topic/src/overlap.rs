//! Overlapping subscriptions: one delivery per subscriber.

use crate::tree::{Match, SharedGroup, SubscriptionTree};
use crate::TopicName;
use alloc::vec::Vec;
use core::num::NonZeroU32;

/// Merges the matches of one publish per subscriber.
///
/// A client whose several (non-shared) subscriptions match one Topic Name
/// gets the message once, at the highest QoS of those subscriptions, and, in
/// MQTT 5.0, with the Subscription Identifiers of all of them
/// (MQTT-3.3.4-2, MQTT-3.3.4-4; 3.1.1: MQTT-3.3.5-1). Keep one `Overlaps` and reuse it: its
/// buffers are kept, so after warm-up a lookup allocates nothing.
///
/// `Q` is whatever orders delivery quality (a QoS enum, a `u8`).
///
/// ```
/// use core::num::NonZeroU32;
/// use mqtt_topic::{Overlaps, SubscriptionTree, TopicFilter, TopicName};
///
/// // Per subscription: (maximum QoS, subscription identifier).
/// let mut tree: SubscriptionTree<&str, (u8, Option<NonZeroU32>)> = SubscriptionTree::new();
/// let f = |s| TopicFilter::try_from(s).unwrap();
/// tree.insert(&f("a/+"), "alice", (0, NonZeroU32::new(1)));
/// tree.insert(&f("a/#"), "alice", (2, NonZeroU32::new(2)));
/// tree.insert(&f("a/b"), "bob", (1, None));
///
/// let mut o = Overlaps::new();
/// o.collect(&tree, &TopicName::try_from("a/b").unwrap(), |v| *v, |_group| {});
/// let d: Vec<_> = o.iter().map(|d| (*d.key, d.qos, d.subscription_ids.len())).collect();
/// assert_eq!(d, [("alice", 2, 2), ("bob", 1, 0)]);
/// ```
#[derive(Debug, Clone)]
pub struct Overlaps<K, Q> {
    raw: Vec<(K, Q, Option<NonZeroU32>)>,
    ids: Vec<NonZeroU32>,
    /// Per subscriber: index of its first `raw` entry, QoS, id range.
    out: Vec<(usize, Q, usize, usize)>,
}

/// One subscriber's merged delivery, from [`Overlaps::iter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery<'a, K, Q> {
    /// The subscriber.
    pub key: &'a K,
    /// The highest QoS among its matching subscriptions.
    pub qos: Q,
    /// The Subscription Identifiers of its matching subscriptions, ascending,
    /// without repeats (empty if none had one).
    pub subscription_ids: &'a [NonZeroU32],
}

impl<K: Ord, Q: Ord + Copy> Overlaps<K, Q> {
    /// Empty, allocates nothing until used.
    pub const fn new() -> Self {
        Overlaps {
            raw: Vec::new(),
            ids: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Forgets all entries, keeping the buffers.
    pub fn clear(&mut self) {
        self.raw.clear();
        self.ids.clear();
        self.out.clear();
    }

    /// Adds one matching subscription. Call [`finish`](Self::finish) after
    /// the last one.
    pub fn push(&mut self, key: K, qos: Q, subscription_id: Option<NonZeroU32>) {
        self.raw.push((key, qos, subscription_id));
    }

    /// Merges the pushed entries per subscriber.
    pub fn finish(&mut self) {
        self.ids.clear();
        self.out.clear();
        self.raw
            .sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.2.cmp(&b.2)));
        let mut i = 0;
        while let Some(first) = self.raw.get(i) {
            let id_start = self.ids.len();
            let mut qos = first.1;
            let mut j = i;
            while let Some(e) = self.raw.get(j).filter(|e| e.0 == first.0) {
                qos = qos.max(e.1);
                if let Some(id) = e.2 {
                    // Entries are sorted by id within a key: skip repeats.
                    if self.ids.len() == id_start || self.ids.last() != Some(&id) {
                        self.ids.push(id);
                    }
                }
                j += 1;
            }
            self.out.push((i, qos, id_start, self.ids.len()));
            i = j;
        }
    }

    /// Clears, then gathers every non-shared subscription of `tree` that
    /// matches `name` (`extract` gives a subscription's QoS and identifier),
    /// and merges them per subscriber. Matching Shared Subscription groups
    /// go to `shared` instead: each delivers separately (MQTT 5.0 §4.8.2).
    pub fn collect<'a, V, E, S>(
        &mut self,
        tree: &'a SubscriptionTree<K, V>,
        name: &TopicName,
        mut extract: E,
        mut shared: S,
    ) where
        K: Clone,
        E: FnMut(&'a V) -> (Q, Option<NonZeroU32>),
        S: FnMut(SharedGroup<'a, K, V>),
    {
        self.clear();
        tree.for_each_match(name, |m| match m {
            Match::Subscriber { key, value } => {
                let (q, id) = extract(value);
                self.raw.push((key.clone(), q, id));
            }
            Match::Shared(g) => shared(g),
        });
        self.finish();
    }

    /// Number of distinct subscribers after [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Whether no subscriber matched.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// The merged deliveries, one per subscriber, in key order.
    pub fn iter(&self) -> impl Iterator<Item = Delivery<'_, K, Q>> + '_ {
        self.out.iter().filter_map(|&(i, qos, a, b)| {
            Some(Delivery {
                key: &self.raw.get(i)?.0,
                qos,
                subscription_ids: self.ids.get(a..b)?,
            })
        })
    }
}

impl<K: Ord, Q: Ord + Copy> Default for Overlaps<K, Q> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SharedFilter, TopicFilter};
    use alloc::vec;

    fn id(n: u32) -> Option<NonZeroU32> {
        NonZeroU32::new(n)
    }

    #[test]
    fn mqtt5_3_3_4_2_highest_qos_and_all_identifiers() {
        // MQTT-3.3.4-2 / MQTT-3.3.4-4: one copy at the highest QoS carrying
        // every matching subscription's identifier.
        let mut t: SubscriptionTree<u32, (u8, Option<NonZeroU32>)> = SubscriptionTree::new();
        let f = |s| TopicFilter::try_from(s).unwrap();
        t.insert(&f("a/b"), 1, (0, id(7)));
        t.insert(&f("a/+"), 1, (1, id(3)));
        t.insert(&f("#"), 1, (0, id(3)));
        t.insert(&f("+/b"), 2, (2, None));
        t.insert(&f("a/#"), 2, (0, None));
        t.insert(&f("x"), 3, (2, id(1)));
        t.insert_shared(
            &SharedFilter::try_from("$share/g/a/b").unwrap(),
            1,
            (2, None),
        );
        let mut o = Overlaps::new();
        let mut groups = 0;
        o.collect(
            &t,
            &TopicName::try_from("a/b").unwrap(),
            |v| *v,
            |_| groups += 1,
        );
        assert_eq!(groups, 1);
        let got: Vec<_> = o
            .iter()
            .map(|d| (*d.key, d.qos, d.subscription_ids.to_vec()))
            .collect();
        assert_eq!(
            got,
            vec![(1, 1, vec![id(3).unwrap(), id(7).unwrap()]), (2, 2, vec![])]
        );
        assert_eq!(o.len(), 2);
        o.clear();
        assert!(o.is_empty());
    }
}
