//! The subscription tree: which subscriptions match a published Topic Name.

use crate::arena::{remap_index, reserve_one, trim, Arena, ArenaNode, NIL, ROOT};
use crate::edge::{edge, edge_few, edge_tagged, find, same_bytes, tag_at, Edge, KEEP};
use crate::exact::{is_exact, Exact};
use crate::index::{level_hash_at, Index, Stream, DEFAULT_SEED, WIDE};
use crate::{SharedFilter, SubscriptionFilter, TopicFilter, TopicName};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

/// "No further level" as a position in a topic.
const END: usize = usize::MAX;

/// Subscriptions of many subscribers, indexed by filter, matched against
/// Topic Names.
///
/// `K` identifies a subscriber (a client id, a connection handle); `V` is the
/// per-subscription data (QoS, options, subscription identifier). One
/// subscriber has at most one subscription per filter: inserting the same
/// `(filter, key)` again replaces the data, as a SUBSCRIBE does
/// (MQTT-3.8.4-3). Shared Subscriptions are kept per `(ShareName, filter)`
/// group, and a lookup hands each matching group over whole, so the caller
/// picks one member per message.
///
/// # Cost
/// - Plain filters without a wildcard (most of them, usually) are kept
///   beside the tree, in a hash table keyed by the whole filter: a lookup
///   hashes the name once and reads, nearly always, one slot and one entry
///   for them. The tree holds the filters with a wildcard and the Shared
///   Subscriptions.
/// - [`for_each_match`](Self::for_each_match) follows the name's levels
///   down the tree, taking at each level the exact child (found among a few
///   edges by their tags, or through a hashed index in a node with many)
///   and the `+` child, and reporting `#` subscriptions on the way. Each
///   node records for how many levels left a filter below it may match,
///   and its parent keeps a copy, so a branch that cannot match the name's
///   remaining depth is not entered. Its cost is the depth of the name times the
///   wildcard branches that exist, plus the matches; never the number of
///   subscriptions. It allocates
///   nothing and uses no recursion: the `+` branches still to take wait on
///   a fixed array of 16 entries, and names deeper than 16 levels are walked
///   through parent links instead, so a 32,768-level name needs no stack.
/// - Insert and remove walk the filter once. Chains of levels that hold no
///   subscription are folded into one edge (a radix tree), split again when
///   a filter branches off them; remove frees every node it leaves empty
///   and refolds, and the tree gives memory back as it shrinks (see
///   [`shrink_to_fit`](Self::shrink_to_fit)). An empty tree holds no heap
///   memory. About 112 bytes per subscription on a realistic 1M set.
///
/// ```
/// use mqtt_topic::{Match, SharedFilter, SubscriptionTree, TopicFilter, TopicName};
///
/// let mut tree: SubscriptionTree<&str, u8> = SubscriptionTree::new();
/// let f = |s| TopicFilter::try_from(s).unwrap();
/// tree.insert(&f("sport/tennis/+"), "alice", 1);
/// tree.insert(&f("sport/#"), "bob", 0);
/// tree.insert(&f("#"), "carol", 2);
/// let shared = SharedFilter::try_from("$share/workers/sport/+/player1").unwrap();
/// tree.insert_shared(&shared, "w1", 1);
/// tree.insert_shared(&shared, "w2", 1);
///
/// let mut got = Vec::new();
/// tree.for_each_match(&TopicName::try_from("sport/tennis/player1").unwrap(), |m| match m {
///     Match::Subscriber { key, value } => got.push((*key, *value)),
///     // One member per group and message: here, always the first.
///     Match::Shared(group) => got.push(group.members()[0].clone()),
/// });
/// got.sort();
/// assert_eq!(got, [("alice", 1), ("bob", 0), ("carol", 2), ("w1", 1)]);
///
/// // '$' topics are not matched by a leading wildcard (MQTT-4.7.2-1).
/// let mut n = 0;
/// tree.for_each_match(&TopicName::try_from("$SYS/uptime").unwrap(), |_| n += 1);
/// assert_eq!(n, 0);
///
/// assert_eq!(tree.remove(&f("#"), &"carol"), Some(2));
/// assert_eq!(tree.len(), 4);
/// ```
pub struct SubscriptionTree<K, V> {
    /// Filters with a wildcard, and Shared Subscriptions.
    arena: Arena<Node<K, V>>,
    /// Plain filters without a wildcard, by their whole text.
    exact: Exact<K, V>,
    /// Subscriptions in the tree and in `exact`.
    len: usize,
    /// Key of the hash of wide nodes' indexes and of the exact table.
    seed: u64,
}

/// One node of the tree: the point after some levels of a filter. 64 bytes
/// and aligned to a cache line (for small `K` and `V`), so visiting a node
/// reads one line.
#[derive(Clone, Debug)]
#[repr(align(64))]
struct Node<K, V> {
    /// Exact children, and the rare parts of a node.
    kids: Kids<K, V>,
    /// Plain subscriptions: `[..n_exact]` for the filter ending at this
    /// node, `[n_exact..]` for the filter ending `/#` below it; each part
    /// sorted by key.
    subs: Vec<(K, V)>,
    /// Parent node (`NIL` for the root).
    parent: u32,
    /// The `+` child, or `NIL`.
    plus: u32,
    /// How many entries of `subs` are exact (the rest are `#`).
    n_exact: u32,
    /// Length in bytes of the label of the edge from the parent (0 for the
    /// root and `+` children), to find the parent's place in a name. Topic
    /// Filters are at most 65,535 bytes long.
    in_len: u16,
    /// At how many levels left a filter of this node's subtree may match
    /// (a copy sits in the parent: `plus_depths` or the edge's mask).
    depths: Depths,
    /// The `+` child's `depths` (`Depths::NONE` without one), so that a
    /// lookup leaves a `+` branch that cannot match without reading it.
    plus_depths: Depths,
}

/// For how many levels left in a name (0: the name ends at the node) a
/// filter of a node's subtree may match it: bit `d < 7` for `d` levels,
/// bit 7 for 7 or more. A filter without `#` stored `d` levels below claims
/// bit `d`; a `/#` filter stored `d` levels below claims every bit from
/// `d` up. Conservative: it may claim depths no filter matches (after
/// removals below wide nodes, and for `#` filters 8 or more levels down),
/// never miss one. Exact after a compaction and after inserts alone. One
/// byte, so that a copy fits in the parent's edge (and the `+` child's in
/// the parent node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Depths(u8);

impl Depths {
    const NONE: Depths = Depths(0);

    #[inline]
    fn bit(d: usize) -> u8 {
        // A table: cheaper than the clamp and the shift on the lookup's
        // path (`d <= 16` there).
        const BITS: [u8; 17] = [
            1, 2, 4, 8, 16, 32, 64, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128,
        ];
        BITS.get(d).copied().unwrap_or(0x80)
    }

    /// [`bit`](Self::bit) from a table of 64 entries indexed by `d & 63`
    /// (`d < 64` on the short names' path): no bounds check.
    #[inline(always)]
    fn bit64(d: usize) -> u8 {
        // Built at compile time: an index out of range fails the build.
        #[allow(clippy::indexing_slicing)]
        const BITS: [u8; 64] = {
            let mut t = [0x80u8; 64];
            let mut i = 0;
            while i < 7 {
                t[i] = 1 << i;
                i += 1;
            }
            t
        };
        BITS.get(d & 63).copied().unwrap_or(0x80)
    }

    /// A filter stored `d` levels below, ending in `#` or not.
    fn at(d: usize, hash: bool) -> Depths {
        if hash {
            // Every depth from `d` up.
            Depths(0xFFu8 << d.min(7))
        } else {
            Depths(Depths::bit(d))
        }
    }

    fn union(self, o: Depths) -> Depths {
        Depths(self.0 | o.0)
    }

    /// The same filters seen from `by` levels higher.
    fn shift(self, by: usize) -> Depths {
        if by >= 8 {
            return Depths(if self.0 != 0 { 0x80 } else { 0 });
        }
        let w = u16::from(self.0) << by;
        Depths((w & 0x7F) as u8 | if w >> 7 != 0 { 0x80 } else { 0 })
    }

    /// Whether a filter of the subtree may match a name with `k` levels
    /// left (the lookup tests the bit itself).
    #[cfg(test)]
    fn admits(self, k: usize) -> bool {
        self.0 & Depths::bit(k) != 0
    }

    /// Whether the node may hold `#` subscriptions or groups of its own:
    /// those claim every depth (so do, rarely, other filters: the caller
    /// then looks and finds none).
    #[inline]
    fn all(self) -> bool {
        self.0 == 0xFF
    }

    /// Whether `self` claims every depth `o` claims.
    fn covers(self, o: Depths) -> bool {
        self.0 & o.0 == o.0
    }
}

/// Number of levels in an edge label.
#[inline]
fn label_levels(label: &[u8]) -> usize {
    // A sum of 0/1, which the compiler turns into wide compares.
    label.iter().map(|&c| usize::from(c == b'/')).sum::<usize>() + 1
}

/// The depths of node `n`'s subtree, from its own subscriptions and the
/// copies of its children's depths it holds.
fn depths_of<K, V>(n: &Node<K, V>) -> Depths {
    let mut d = n.own_depths().union(n.plus_depths.shift(1));
    for e in n.edges() {
        d = d.union(Depths(e.mask()).shift(label_levels(e.label())));
    }
    d
}

/// A node's exact children, sorted by their label's first level (a label
/// may span several levels when the nodes between would hold nothing).
/// Most nodes have a few and no shared group: a plain vector. Nodes with
/// more than [`WIDE`] children or with shared groups keep them behind a box
/// (24 bytes in the node either way), with a hashed [`Index`] of the edges.
#[derive(Clone, Debug)]
enum Kids<K, V> {
    Few(Vec<Edge>),
    Many(Box<Many<K, V>>),
}

/// The children of a wide node, or of a node with shared groups.
#[derive(Clone, Debug)]
struct Many<K, V> {
    edges: Vec<Edge>,
    /// Live when there are more than [`WIDE`] edges.
    index: Index,
    /// Shared groups ending at this node, sorted by `(hash, share)`.
    groups: Vec<Group<K, V>>,
}

/// The members of one Shared Subscription at one node.
#[derive(Clone, Debug, PartialEq)]
struct Group<K, V> {
    /// Whether the group's filter ends in `/#` below this node.
    hash: bool,
    share: Box<str>,
    /// Sorted by key, never empty.
    members: Vec<(K, V)>,
}

/// One match reported by [`SubscriptionTree::for_each_match`].
#[derive(Debug)]
pub enum Match<'a, K, V> {
    /// A non-shared subscription whose filter matches.
    Subscriber {
        /// The subscriber.
        key: &'a K,
        /// The subscription's data.
        value: &'a V,
    },
    /// A Shared Subscription group whose filter matches: deliver to one of
    /// its members.
    Shared(SharedGroup<'a, K, V>),
}

/// The members of one Shared Subscription (one ShareName and filter), of
/// which the caller picks one per message (MQTT 5.0 §4.8.2).
#[derive(Debug)]
pub struct SharedGroup<'a, K, V> {
    share_name: &'a str,
    members: &'a [(K, V)],
}

impl<K, V> SubscriptionTree<K, V> {
    /// An empty tree. Allocates nothing.
    pub const fn new() -> Self {
        Self::with_seed(DEFAULT_SEED)
    }

    /// An empty tree whose hash tables hash topics with `seed`. Allocates
    /// nothing.
    ///
    /// Nodes with many exact children find them through a hash table keyed
    /// by this seed, and so do plain filters without a wildcard, kept in a
    /// table by their whole text. A broker, whose topics come from the
    /// network, should pass a random seed so that no one can compute
    /// colliding levels or filters; even with a known seed, collisions cost
    /// a bounded number of slots and then at most a binary search (a wide
    /// node's table whose entries land too far from their home slot is
    /// dropped; a filter that would land too far is kept in a sorted side
    /// list).
    pub const fn with_seed(seed: u64) -> Self {
        SubscriptionTree {
            arena: Arena::new(),
            exact: Exact::new(seed ^ EXACT_SALT),
            len: 0,
            seed,
        }
    }

    /// Number of subscriptions (shared members included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no subscriptions.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of live nodes (0 for an empty tree), for memory accounting.
    /// Plain filters without a wildcard are kept beside the nodes, in a
    /// hash table, and take none.
    pub fn node_count(&self) -> usize {
        self.arena.live()
    }

    /// Calls `f` once for every subscription whose filter matches `name`
    /// (MQTT-4.7.2-1 and byte-exact comparison, MQTT-4.7.3-4, included),
    /// and once for every matching Shared Subscription group.
    ///
    /// One subscriber with several matching filters is reported once per
    /// filter; see [`Overlaps`](crate::Overlaps) to merge them. No heap
    /// allocation, no recursion; the order of the calls is unspecified.
    pub fn for_each_match<'a, F>(&'a self, name: &TopicName, f: F)
    where
        F: FnMut(Match<'a, K, V>),
    {
        self.for_each_match_bytes(name.as_bytes(), f);
    }

    /// [`for_each_match`](Self::for_each_match) for a name held as bytes.
    /// Meaningful only for a valid Topic Name; never panics on other input.
    pub fn for_each_match_bytes<'a, F>(&'a self, name: &[u8], mut f: F)
    where
        F: FnMut(Match<'a, K, V>),
    {
        if name.len() <= Short::MAX_LEN {
            // The common case: a name of at most 63 bytes, split into a
            // bitmap of its level ends.
            let mut sh = Short::new();
            let h = sh.split(name, self.exact.seed());
            if let Some(e) = self.exact.get_hashed(name, h) {
                for (key, value) in e.subs() {
                    f(Match::Subscriber { key, value });
                }
            }
            if self.arena.nodes.is_empty() {
                return;
            }
            let count = sh.ends.count_ones() as usize;
            if count <= MAX_LEVELS {
                self.match_short(&sh, count, f);
            } else {
                self.match_scan(name, f);
            }
            return;
        }
        self.match_long(name, f);
    }

    /// [`for_each_match_bytes`](Self::for_each_match_bytes) for a name of
    /// more than [`Short::MAX_LEN`] bytes: out of line, so that the short
    /// names' path keeps its helpers inlined.
    #[inline(never)]
    fn match_long<'a, F>(&'a self, name: &[u8], mut f: F)
    where
        F: FnMut(Match<'a, K, V>),
    {
        // One pass over the name finds its levels and hashes it whole for
        // the exact table.
        let mut levels = Levels::new();
        let (h, split) = levels.split(name, self.exact.seed());
        // The filter equal to the name (MQTT-4.7.2-1 does not concern it:
        // it has no wildcard).
        if let Some(e) = self.exact.get_hashed(name, h) {
            for (key, value) in e.subs() {
                f(Match::Subscriber { key, value });
            }
        }
        if self.arena.nodes.is_empty() {
            return;
        }
        if split {
            self.match_split(name, &levels, f);
        } else {
            self.match_scan(name, f);
        }
    }

    /// The lookup over a name split beforehand (at most [`MAX_LEVELS`]
    /// levels): every level's bounds and tag are computed once, and the
    /// `+` branches still to take wait on a stack array of at most
    /// [`MAX_LEVELS`] entries, so going down a `+` branch or back to one is
    /// index arithmetic, with no walk back up through parents.
    fn match_split<'a, F>(&'a self, name: &[u8], lv: &Levels, mut f: F)
    where
        F: FnMut(Match<'a, K, V>),
    {
        let nodes: &'a [Node<K, V>] = &self.arena.nodes;
        let count = lv.count;
        // The '+' branches still to take, as (node, next level): one per
        // level at most, since a pending branch's level is above every
        // level visited after it was pushed.
        let mut pending = [(0u32, 0u32); MAX_LEVELS];
        let mut top = 0usize;
        let mut node = ROOT;
        // Index of the next level to consume (`count`: none left).
        let mut i = 0usize;
        // Zero for a name starting with '$', so that `node | tame` is zero
        // exactly at the root (node 0) for those: the '$' rule below as one
        // OR and one test per visit.
        const _: () = assert!(ROOT == 0);
        let tame = if name.first() == Some(&b'$') {
            0
        } else {
            u32::MAX
        };
        'walk: loop {
            let Some(n) = nodes.get(node as usize) else {
                return;
            };
            // Every node but the root is entered only if its depths (the
            // copy in its parent) admit the levels left.
            'visit: {
                // `i <= count` always: levels are consumed up to the last.
                if i >= count {
                    n.emit(true, &mut f);
                    break 'visit;
                }
                // The depth bit of a child one level down.
                let below = Depths::bit(count - i - 1);
                // MQTT-4.7.2-1: at the root, '+' and '#' do not take a '$'
                // level.
                let wild = (node | tame) != 0;
                let plus = if wild && n.plus_depths.0 & below != 0 {
                    n.plus
                } else {
                    NIL
                };
                // `#` subscriptions or groups here claim every depth (the
                // depths never miss one): nothing to report otherwise.
                if wild && n.depths.all() {
                    n.emit(false, &mut f);
                }
                match self.exact_child(n, name, lv, i, below) {
                    Some((c, j)) => {
                        if plus != NIL {
                            // Take the '+' branch after the exact one; start
                            // loading it now, so its cache miss overlaps the
                            // walk down the exact one.
                            touch(nodes, plus);
                            if let Some(p) = pending.get_mut(top) {
                                *p = (plus, len32(i + 1));
                                top += 1;
                            }
                        }
                        node = c;
                        i = j;
                        continue 'walk;
                    }
                    None if plus != NIL => {
                        node = plus;
                        i += 1;
                        continue 'walk;
                    }
                    None => {}
                }
            }
            // A dead end: take the latest pending '+' branch.
            if top == 0 {
                return;
            }
            top -= 1;
            let Some(&(p, j)) = pending.get(top) else {
                return;
            };
            node = p;
            i = j as usize;
        }
    }

    /// [`match_split`](Self::match_split) for a name of at most
    /// [`Short::MAX_LEN`] bytes and [`MAX_LEVELS`] levels (`count`), split
    /// into `sh`: the walk moves by byte offset, a level's length is where
    /// the next bit of the bitmap of level ends is, and its tag is one load
    /// from the zero-padded copy of the name.
    ///
    /// Its loop mirrors `match_split`'s on purpose, so a change to the
    /// rules of one belongs in both. Making one walk generic over the two
    /// position types was not tried: both loops are tuned for register use
    /// (docs/performance.md, session 6). The tests check both against the
    /// scanning walk and the oracle.
    fn match_short<'a, F>(&'a self, sh: &Short, count: usize, mut f: F)
    where
        F: FnMut(Match<'a, K, V>),
    {
        let nodes: &'a [Node<K, V>] = &self.arena.nodes;
        // The '+' branches still to take, as (node, start of the next level
        // | levels left from it << 8): one per level at most.
        let mut pending = [(0u32, 0u32); MAX_LEVELS];
        let mut top = 0usize;
        let mut node = ROOT;
        // Start of the next level to consume, and how many levels are left
        // from there (0: the name ends at `node`).
        let mut s = 0usize;
        let mut left = count;
        const _: () = assert!(ROOT == 0);
        let tame = if sh.buf[0] == b'$' { 0 } else { u32::MAX };
        'walk: loop {
            let Some(n) = nodes.get(node as usize) else {
                return;
            };
            'visit: {
                if left == 0 {
                    n.emit(true, &mut f);
                    break 'visit;
                }
                // The depth bit of a child one level down.
                let below = Depths::bit64(left - 1);
                let wild = (node | tame) != 0;
                let plus = if wild && n.plus_depths.0 & below != 0 {
                    n.plus
                } else {
                    NIL
                };
                if wild && n.depths.all() {
                    n.emit(false, &mut f);
                }
                // The level's length: up to the next level end (the bit at
                // the name's length is always set).
                let len = ((sh.ends >> (s & 63)) | (1 << 63)).trailing_zeros() as usize;
                let next = s + len + 1;
                match self.short_child(n, sh, s, len, left, below) {
                    Some((c, s2, left2)) => {
                        if plus != NIL {
                            touch(nodes, plus);
                            if let Some(p) = pending.get_mut(top) {
                                // `next <= 64` and `left <= 16`: both fit.
                                *p = (plus, ((next & 0xFF) | ((left - 1) << 8)) as u32);
                                top += 1;
                            }
                        }
                        node = c;
                        s = s2;
                        left = left2;
                        continue 'walk;
                    }
                    None if plus != NIL => {
                        node = plus;
                        s = next;
                        left -= 1;
                        continue 'walk;
                    }
                    None => {}
                }
            }
            if top == 0 {
                return;
            }
            top -= 1;
            let Some(&(p, j)) = pending.get(top) else {
                return;
            };
            node = p;
            s = (j & 0xFF) as usize;
            left = (j >> 8) as usize;
        }
    }

    /// [`exact_child`](Self::exact_child) for [`match_short`](Self::match_short):
    /// the level of `len` bytes at `s`, `left` levels left from it; the
    /// child, the start of the level after the edge's label and the levels
    /// left from there.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn short_child(
        &self,
        n: &Node<K, V>,
        sh: &Short,
        s: usize,
        len: usize,
        left: usize,
        below: u8,
    ) -> Option<(u32, usize, usize)> {
        let level = sh.buf.get(s & 63..)?.get(..len)?;
        let t = sh.tag(s, len);
        let found = match &n.kids {
            Kids::Few(edges) => edge_few(edges, level, t),
            Kids::Many(m) if m.index.live() => {
                let hi = (level_hash_at(self.seed, &sh.buf, s, len, t) >> 32) as u32;
                m.index.find(&m.edges, level, t, hi)
            }
            Kids::Many(m) => edge_tagged(&m.edges, level, t),
        }?;
        if found.label_len() == len {
            return (found.mask() & below != 0).then_some((found.node(), s + len + 1, left - 1));
        }
        // A folded label: the levels after the first must match too, up
        // to a level end.
        let label = found.label();
        let stop = s + label.len();
        let within = sh.buf.get(s..stop)?;
        if stop > 63 || sh.ends >> stop & 1 == 0 || !same_bytes(within, label) {
            return None;
        }
        // The label's levels: the level ends from `s` to `stop`.
        let spans = ((sh.ends >> s) & (u64::MAX >> (63 - label.len()))).count_ones() as usize;
        let left2 = left.saturating_sub(spans);
        (found.mask() & Depths::bit(left2) != 0).then_some((found.node(), stop + 1, left2))
    }

    /// The child of `n` by an exact edge for level `i < count` of the split
    /// `name` (the edge's label, when folded, must match the levels after
    /// it too), and the index of the level after the label; `None` if
    /// there is none, or if the copy of the child's depths in the edge
    /// rules out the levels left (`below`: the depth bit of a child one
    /// level down).
    #[inline(always)]
    fn exact_child(
        &self,
        n: &Node<K, V>,
        name: &[u8],
        lv: &Levels,
        i: usize,
        below: u8,
    ) -> Option<(u32, usize)> {
        let start = lv.start(i);
        let end = lv.start(i + 1) - 1;
        // Always there: the split found these bounds in `name`.
        let level = name.get(start..end)?;
        let t = tag_at(name, start, level.len());
        let found = match &n.kids {
            Kids::Few(edges) => edge_few(edges, level, t),
            Kids::Many(m) if m.index.live() => {
                // Hashed from the tag in one multiply (levels of up to 14
                // bytes): cheaper than keeping the hashes of the levels for
                // the '+' branches that come back to them.
                let hi = (level_hash_at(self.seed, name, start, level.len(), t) >> 32) as u32;
                m.index.find(&m.edges, level, t, hi)
            }
            Kids::Many(m) => edge_tagged(&m.edges, level, t),
        }?;
        if found.label_len() == level.len() {
            // Entered only if the child's depths admit the levels left
            // after this one.
            return (found.mask() & below != 0).then_some((found.node(), i + 1));
        }
        // A folded label: the levels after the first must match too, up
        // to a level boundary.
        let label = found.label();
        let stop = start + label.len();
        match name.get(start..stop) {
            Some(s) if same_bytes(s, label) => match name.get(stop) {
                None | Some(b'/') => {
                    let j = lv.index_of(i + 1, stop + 1);
                    let left = Depths::bit(lv.count.saturating_sub(j));
                    (found.mask() & left != 0).then_some((found.node(), j))
                }
                Some(_) => None,
            },
            _ => None,
        }
    }

    /// The lookup for names of more than [`MAX_LEVELS`] levels: the same
    /// walk, finding level bounds by scanning the name as it goes.
    fn match_scan<'a, F>(&'a self, name: &[u8], mut f: F)
    where
        F: FnMut(Match<'a, K, V>),
    {
        let nodes: &'a [Node<K, V>] = &self.arena.nodes;
        if nodes.is_empty() {
            return;
        }
        let dollar = name.first() == Some(&b'$');
        let mut node = ROOT;
        // Start of the next level of `name` to consume, or END.
        let mut pos = 0usize;
        'descend: loop {
            let Some(n) = nodes.get(node as usize) else {
                return;
            };
            // MQTT-4.7.2-1: at the root, '+' and '#' do not take a '$' level.
            let wild = !(dollar && node == ROOT);
            if pos == END {
                n.emit(true, &mut f);
            } else {
                if wild {
                    n.emit(false, &mut f);
                }
                let rest = name.get(pos..).unwrap_or(&[]);
                let slash = rest.iter().position(|&c| c == b'/');
                let level = match slash {
                    Some(i) => rest.get(..i).unwrap_or(&[]),
                    None => rest,
                };
                if let Some(e) = edge(n.edges(), level) {
                    let label = e.label();
                    let next = if label.len() == level.len() {
                        // One level, found equal by the search.
                        Some(slash.map_or(END, |i| pos + i + 1))
                    } else {
                        // A folded label: the levels after the first must
                        // match too.
                        match rest.strip_prefix(label).map(<[u8]>::first) {
                            Some(None) => Some(END),
                            Some(Some(b'/')) => Some(pos + label.len() + 1),
                            _ => None,
                        }
                    };
                    if let Some(next) = next {
                        node = e.node();
                        pos = next;
                        continue 'descend;
                    }
                }
                if wild && n.plus != NIL {
                    node = n.plus;
                    pos = slash.map_or(END, |i| pos + i + 1);
                    continue 'descend;
                }
            }
            // Back up until a parent still has its '+' branch to take.
            loop {
                if node == ROOT {
                    return;
                }
                let Some(c) = nodes.get(node as usize) else {
                    return;
                };
                let parent = c.parent;
                let Some(p) = nodes.get(parent as usize) else {
                    return;
                };
                if p.plus == node {
                    // Came through '+': one level back.
                    pos = level_start(name, pos);
                    node = parent;
                    continue;
                }
                // Came through an exact edge of `in_len` bytes.
                let in_len = c.in_len as usize;
                let ppos = if pos == END {
                    name.len().saturating_sub(in_len)
                } else {
                    pos.saturating_sub(in_len + 1)
                };
                if p.plus != NIL && !(dollar && parent == ROOT) {
                    node = p.plus;
                    pos = next_level(name, ppos);
                    continue 'descend;
                }
                node = parent;
                pos = ppos;
            }
        }
    }

    /// Renumbers and trims the tree so it holds no spare capacity. Two trees
    /// holding the same subscriptions are identical in layout and in heap
    /// memory after this call. The tree also does this by itself when more
    /// than half of its node slots are free.
    pub fn shrink_to_fit(&mut self) {
        self.exact.shrink_to_fit();
        self.arena.compact();
        if let Some(n) = self.arena.nodes.first_mut() {
            n.shrink();
        }
    }

    /// Heap bytes the tree holds, by its own accounting (capacities, not
    /// allocator overhead; values' own heap data not included).
    pub fn heap_bytes(&self) -> usize {
        let mut total = self.arena.slot_bytes() + self.exact.heap_bytes();
        for n in &self.arena.nodes {
            total += n.edges().iter().map(Edge::heap_bytes).sum::<usize>();
            total += n.subs.capacity() * core::mem::size_of::<(K, V)>();
            match &n.kids {
                Kids::Few(edges) => total += edges.capacity() * core::mem::size_of::<Edge>(),
                Kids::Many(m) => {
                    total += core::mem::size_of::<Many<K, V>>();
                    total += m.edges.capacity() * core::mem::size_of::<Edge>();
                    total += m.index.heap_bytes();
                    total += m.groups.capacity() * core::mem::size_of::<Group<K, V>>();
                    for grp in &m.groups {
                        total += grp.share.len();
                        total += grp.members.capacity() * core::mem::size_of::<(K, V)>();
                    }
                }
            }
        }
        total
    }

    /// Walks the filter's path, creating missing nodes and splitting edges
    /// where the filter leaves one. Returns the node and whether the filter
    /// ends in `#` there.
    fn make_path(&mut self, filter: &[u8]) -> (u32, bool) {
        self.arena.ensure_root();
        // Where the filter will be stored, in levels below the root, so
        // that every node passed learns at which depth below it one ends.
        let hash = filter.ends_with(b"#");
        let store = label_levels(filter) - usize::from(hash);
        let mut node = ROOT;
        // How `node` was reached: from which parent, by '+' or by which
        // edge (whose copy of the depths follows the node's).
        let mut via: Option<(u32, Link)> = None;
        let mut pos = 0usize;
        let mut depth = 0usize;
        loop {
            self.claim(via, node, Depths::at(store.saturating_sub(depth), hash));
            let rest = filter.get(pos..).unwrap_or(&[]);
            let level = first_level(rest);
            if level == b"#" {
                // Validated filters have '#' only as the last level.
                return (node, true);
            }
            let used = if level == b"+" {
                let plus = self.arena.get(node).map_or(NIL, |n| n.plus);
                via = Some((node, Link::Plus));
                node = if plus != NIL {
                    plus
                } else {
                    let c = self.arena.alloc(Node {
                        parent: node,
                        ..Node::default()
                    });
                    if let Some(n) = self.arena.get_mut(node) {
                        n.plus = c;
                    }
                    c
                };
                1
            } else {
                let found = match self.arena.get(node) {
                    Some(n) => find(n.edges(), level),
                    None => return (node, false),
                };
                match found {
                    Err(at) => {
                        // A new edge takes every literal level up to the
                        // next wildcard or the end.
                        let run = literal_run(rest);
                        let label = rest.get(..run).unwrap_or(rest);
                        let c = self.arena.alloc(Node {
                            parent: node,
                            in_len: len16(run),
                            ..Node::default()
                        });
                        let seed = self.seed;
                        if let Some(n) = self.arena.get_mut(node) {
                            n.insert_edge(at, Edge::new(label, c), seed);
                        }
                        via = Some((node, Link::Edge(at)));
                        node = c;
                        run
                    }
                    Ok(i) => {
                        let (common, whole, child) =
                            match self.arena.get(node).and_then(|n| n.edges().get(i)) {
                                Some(e) => {
                                    let c = common_levels(e.label(), rest);
                                    (c, c == e.label().len(), e.node())
                                }
                                None => return (node, false),
                            };
                        via = Some((node, Link::Edge(i)));
                        if whole {
                            node = child;
                        } else {
                            node = self.split(node, i, common);
                        }
                        common
                    }
                }
            };
            depth += label_levels(rest.get(..used).unwrap_or(rest));
            pos += used;
            if pos >= filter.len() {
                self.claim(via, node, Depths::at(store.saturating_sub(depth), hash));
                return (node, false);
            }
            pos += 1; // the '/'
        }
    }

    /// Adds `d` to `node`'s depths and to the copy of them that the parent
    /// `via` names holds.
    fn claim(&mut self, via: Option<(u32, Link)>, node: u32, d: Depths) {
        let Some(n) = self.arena.get_mut(node) else {
            return;
        };
        n.depths = n.depths.union(d);
        let d = n.depths;
        if let Some((parent, link)) = via {
            self.set_copy(parent, link, d);
        }
    }

    /// Sets the copy of a child's depths held by `parent` for the link.
    fn set_copy(&mut self, parent: u32, link: Link, d: Depths) {
        let Some(p) = self.arena.get_mut(parent) else {
            return;
        };
        match link {
            Link::Plus => p.plus_depths = d,
            Link::Edge(i) => {
                if let Some(e) = p.edges_mut().get_mut(i) {
                    e.set_mask(d.0);
                }
            }
        }
    }

    /// Splits edge `i` of `node` after `at` bytes of its label (a level
    /// boundary): a new node takes the first part, the old child hangs below
    /// it by the rest. Returns the new node.
    fn split(&mut self, node: u32, i: usize, at: usize) -> u32 {
        let Some((label, child)) = self
            .arena
            .get(node)
            .and_then(|n| n.edges().get(i))
            .map(|e| (Box::<[u8]>::from(e.label()), e.node()))
        else {
            return node;
        };
        let head = label.get(..at).unwrap_or(&label);
        let tail = label.get(at + 1..).unwrap_or(&[]);
        let mut edges = Vec::new();
        edges.reserve_exact(1);
        let mut e = Edge::new(tail, child);
        let theirs = self.arena.get(child).map_or(Depths::NONE, |c| c.depths);
        e.set_mask(theirs.0);
        edges.push(e);
        let below = theirs.shift(label_levels(tail));
        let mid = self.arena.alloc(Node {
            kids: Kids::Few(edges),
            parent: node,
            in_len: len16(head.len()),
            depths: below,
            ..Node::default()
        });
        if let Some(c) = self.arena.get_mut(child) {
            c.parent = mid;
            c.in_len = len16(tail.len());
        }
        // Same first level: a wide node's index stays valid.
        if let Some(e) = self
            .arena
            .get_mut(node)
            .and_then(|n| n.edges_mut().get_mut(i))
        {
            *e = Edge::new(head, mid);
            e.set_mask(below.0);
        }
        mid
    }

    /// Walks the filter's path without creating anything. Returns the node
    /// and whether the filter ends in `#`; with `path`, records every node
    /// passed and how it was reached.
    fn find_path<'f>(
        &self,
        filter: &'f [u8],
        mut path: Option<&mut Vec<(u32, Step<'f>)>>,
    ) -> Option<(u32, bool)> {
        let mut node = ROOT;
        let mut pos = 0usize;
        if let Some(p) = path.as_deref_mut() {
            p.push((ROOT, Step::Root));
        }
        loop {
            let rest = filter.get(pos..).unwrap_or(&[]);
            let level = first_level(rest);
            if level == b"#" {
                return Some((node, true));
            }
            let n = self.arena.get(node)?;
            let (next, used, step) = if level == b"+" {
                (Some(n.plus).filter(|&p| p != NIL)?, 1, Step::Plus)
            } else {
                let e = edge(n.edges(), level)?;
                let label = e.label();
                if common_levels(label, rest) != label.len() {
                    return None;
                }
                (e.node(), label.len(), Step::Edge(level))
            };
            node = next;
            if let Some(p) = path.as_deref_mut() {
                p.push((node, step));
            }
            pos += used;
            if pos >= filter.len() {
                return Some((node, false));
            }
            pos += 1;
        }
    }

    /// After a removal along `path`: frees the nodes left empty from the end
    /// of the path up, then folds a node left with a single edge and nothing
    /// else into the edge above it, and lets the arena settle.
    fn tidy(&mut self, path: &[(u32, Step<'_>)], same: bool) {
        // The deepest node left on the path, whose depths may have shrunk.
        let mut kept = ROOT;
        for &(node, step) in path.iter().rev() {
            if node == ROOT {
                break;
            }
            let Some(n) = self.arena.get(node) else {
                break;
            };
            let parent = n.parent;
            kept = parent;
            if n.is_empty() {
                if let Some(p) = self.arena.get_mut(parent) {
                    match step {
                        Step::Plus => {
                            p.plus = NIL;
                            p.plus_depths = Depths::NONE;
                        }
                        Step::Edge(first) => {
                            if let Ok(i) = find(p.edges(), first) {
                                p.remove_edge(i);
                            }
                        }
                        Step::Root => {}
                    }
                }
                self.arena.release(node);
                continue;
            }
            if let Step::Edge(first) = step {
                if n.foldable() {
                    self.fold(parent, first, node);
                    break;
                }
            }
            if same && node == path.last().map_or(ROOT, |p| p.0) {
                // The end node kept the depths of what it holds: nothing
                // below or above changes.
                kept = NIL;
            } else {
                kept = node;
            }
            break;
        }
        self.refresh(path, kept);
        self.arena.settle();
    }

    /// Recomputes the depths of `node` (on `path`) and of its ancestors
    /// after a removal below it, up to the first whose depths stay the
    /// same, and the copies their parents hold. A wide node's depths are
    /// left as they are (a superset), to keep a removal from reading all
    /// its edges; a compaction makes them exact again.
    fn refresh(&mut self, path: &[(u32, Step<'_>)], node: u32) {
        let Some(mut k) = path.iter().rposition(|p| p.0 == node) else {
            return;
        };
        while let Some(&(node, step)) = path.get(k) {
            let Some(n) = self.arena.get_mut(node) else {
                return;
            };
            if n.edges().len() > WIDE {
                return;
            }
            let d = depths_of(n);
            if n.depths == d {
                return;
            }
            n.depths = d;
            let parent = n.parent;
            match step {
                Step::Root => return,
                Step::Plus => self.set_copy(parent, Link::Plus, d),
                Step::Edge(first) => {
                    if let Some(i) = self
                        .arena
                        .get(parent)
                        .and_then(|p| find(p.edges(), first).ok())
                    {
                        self.set_copy(parent, Link::Edge(i), d);
                    }
                }
            }
            let Some(up) = k.checked_sub(1) else {
                return;
            };
            k = up;
        }
    }

    /// Replaces `parent`'s edge (first level `first`) to `node`, and
    /// `node`'s single edge, by one edge, and frees `node`.
    fn fold(&mut self, parent: u32, first: &[u8], node: u32) {
        // `theirs`: the child's depths, as `node`'s edge holds them.
        let Some((below, child, theirs)) = self
            .arena
            .get(node)
            .and_then(|n| n.edges().first())
            .map(|e| (Box::<[u8]>::from(e.label()), e.node(), Depths(e.mask())))
        else {
            return;
        };
        let Some(p) = self.arena.get_mut(parent) else {
            return;
        };
        let Ok(i) = find(p.edges(), first) else {
            return;
        };
        // Same first level: a wide node's index stays valid.
        let Some(e) = p.edges_mut().get_mut(i) else {
            return;
        };
        let mut label = Vec::with_capacity(e.label().len() + 1 + below.len());
        label.extend_from_slice(e.label());
        label.push(b'/');
        label.extend_from_slice(&below);
        *e = Edge::new(&label, child);
        e.set_mask(theirs.0);
        if let Some(c) = self.arena.get_mut(child) {
            c.parent = parent;
            c.in_len = len16(label.len());
        }
        self.arena.release(node);
    }
}

/// Reads node `i` for its side effect alone: the load is issued now and
/// the cache line is there when the walk reaches the node.
#[inline]
fn touch<K, V>(nodes: &[Node<K, V>], i: u32) {
    if let Some(n) = nodes.get(i as usize) {
        core::hint::black_box(n.parent);
    }
}

/// Mixed into the seed for the exact table, so that its hashes of whole
/// names and the wide nodes' hashes of levels are unrelated.
const EXACT_SALT: u64 = 0x9E37_79B9_7F4A_7C15;

/// Names of up to this many levels are split before a lookup (on the
/// stack); deeper ones are scanned as the lookup goes.
const MAX_LEVELS: usize = 16;

/// A name's levels: where each starts.
struct Levels {
    /// `starts[i]`: offset of level `i`; `starts[count]`: the name's length
    /// plus one (where a level after a trailing `/` would start).
    starts: [u32; MAX_LEVELS + 1],
    count: usize,
}

impl Levels {
    #[inline]
    fn new() -> Levels {
        Levels {
            starts: [0; MAX_LEVELS + 1],
            count: 0,
        }
    }

    /// Splits `name` into `self` (filled in place: no copy of the arrays)
    /// and returns the keyed hash of the whole name under `seed` (what
    /// `index::hash(seed, name)` gives), computed on the same pass over its
    /// words, and whether the split is usable: not if the name has more
    /// than [`MAX_LEVELS`] levels (or is longer than a topic can be); the
    /// hash is that of the whole name either way.
    #[inline]
    fn split(&mut self, name: &[u8], seed: u64) -> (u64, bool) {
        let len = name.len();
        let mut ok = len <= usize::from(u16::MAX);
        let mut hash = Stream::new(seed, len);
        // Start of the level being read.
        let mut start = 0usize;
        // Eight bytes at a time: a byte of `w ^ SLASHES` is zero where the
        // name has a '/'.
        const SLASHES: u64 = u64::from_le_bytes([b'/'; 8]);
        const LOW7: u64 = u64::from_le_bytes([0x7F; 8]);
        // High bit set exactly in the bytes of `v` that are '/'.
        let slashes = |v: u64| {
            let w = v ^ SLASHES;
            !(((w & LOW7) + LOW7) | w | LOW7)
        };
        // Every full word but the name's last word is mixed into the hash;
        // the last word (1 to 8 bytes, 0 for an empty name) finishes it.
        let body = len.saturating_sub(1) & !7;
        let mut base = 0usize;
        for c in name.get(..body).unwrap_or(&[]).chunks_exact(8) {
            let v = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
            hash.mix(v);
            let mut w = slashes(v);
            while w != 0 {
                self.push(&mut start, base + (w.trailing_zeros() / 8) as usize);
                w &= w - 1;
            }
            base += 8;
        }
        let r = len - body;
        // The name's last 8 bytes hold the last word in their top `r` (one
        // load); a name shorter than 8 bytes is read byte by byte. The
        // bytes shifted in above it are zero, never '/'.
        let last = match name.last_chunk::<8>() {
            Some(b) => u64::from_le_bytes(*b) >> (8 * (8 - r)),
            None => name
                .iter()
                .rev()
                .fold(0u64, |v, &c| (v << 8) | u64::from(c)),
        };
        let mut w = slashes(last);
        while w != 0 {
            self.push(&mut start, base + (w.trailing_zeros() / 8) as usize);
            w &= w - 1;
        }
        self.push(&mut start, len);
        // Usable if every level found room (`count` counts them all).
        ok &= self.count <= MAX_LEVELS;
        if let Some(s) = self.starts.get_mut(self.count) {
            // `len <= u16::MAX` when the split is used.
            *s = (len as u32).wrapping_add(1);
        }
        (hash.finish(last), ok)
    }

    /// Records the level from `*start` to `end` (exclusive) if there is
    /// room, counts it either way, and moves `*start` past the '/' at
    /// `end`.
    #[inline(always)]
    fn push(&mut self, start: &mut usize, end: usize) {
        if let Some(s) = self.starts.get_mut(self.count) {
            // `start <= name.len() <= u16::MAX` when the split is used.
            *s = *start as u32;
        }
        self.count += 1;
        *start = end + 1;
    }

    /// Offset of level `i` (`i == count`: the name's length plus one).
    #[inline]
    fn start(&self, i: usize) -> usize {
        self.starts.get(i).map_or(0, |&s| s as usize)
    }

    /// The first index from `from` on whose level starts at `offset` or
    /// later (an index at most `count`).
    #[inline]
    fn index_of(&self, mut from: usize, offset: usize) -> usize {
        while from < self.count && self.start(from) < offset {
            from += 1;
        }
        from
    }
}

/// A name of at most [`Short::MAX_LEN`] bytes, split for a lookup: a copy
/// of its bytes (zero after them, so that an 8-byte load at any level's
/// start stays inside) and a bitmap of where its levels end.
struct Short {
    buf: [u8; 72],
    /// Bit `p` set: a level ends at byte `p` (a '/' there, or `p` is the
    /// name's length).
    ends: u64,
}

impl Short {
    /// Longest name split this way: the bit after its last byte must fit
    /// in `ends`.
    const MAX_LEN: usize = 63;

    #[inline]
    fn new() -> Short {
        Short {
            buf: [0; 72],
            ends: 0,
        }
    }

    /// Splits `name` (at most [`MAX_LEN`](Self::MAX_LEN) bytes) into
    /// `self` and returns its keyed hash under `seed` (what
    /// `index::hash(seed, name)` gives), from the same pass over its 8-byte
    /// words.
    #[inline]
    fn split(&mut self, name: &[u8], seed: u64) -> u64 {
        let len = name.len();
        let mut hash = Stream::new(seed, len);
        const SLASHES: u64 = u64::from_le_bytes([b'/'; 8]);
        const LOW7: u64 = u64::from_le_bytes([0x7F; 8]);
        const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
        // The top byte: one bit per byte of `v`, set where the byte is '/'
        // (the high bits of the bytes equal to '/', gathered by a multiply
        // whose partial products never overlap).
        let slashes = |v: u64| {
            let w = v ^ SLASHES;
            let high = !(((w & LOW7) + LOW7) | w | LOW7) & HIGH;
            high.wrapping_mul(0x0002_0408_1020_4081) & 0xFF00_0000_0000_0000
        };
        let body = len.saturating_sub(1) & !7;
        // Each word's byte of `ends` enters at the top and moves down a
        // byte per word after it.
        let mut ends = 0u64;
        let words = name.get(..body).unwrap_or(&[]).chunks_exact(8);
        for (c, d) in words.zip(self.buf.chunks_exact_mut(8)) {
            let v = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
            hash.mix(v);
            ends = (ends >> 8) | slashes(v);
            d.copy_from_slice(c);
        }
        let r = len - body;
        let last = match name.last_chunk::<8>() {
            Some(b) => u64::from_le_bytes(*b) >> (8 * (8 - r)),
            None => name
                .iter()
                .rev()
                .fold(0u64, |v, &c| (v << 8) | u64::from(c)),
        };
        // The last word's byte at `body` (at most 56), the others below.
        let ends = ((ends >> 8) | slashes(last)) >> ((56 - body) & 63);
        if let Some(d) = self
            .buf
            .get_mut(body & 63..)
            .and_then(|b| b.first_chunk_mut::<8>())
        {
            *d = last.to_le_bytes();
        }
        self.ends = ends | 1 << (len & 63);
        hash.finish(last)
    }

    /// The [`tag`](crate::edge::tag) of the level of `len` bytes at `s`.
    #[inline(always)]
    fn tag(&self, s: usize, len: usize) -> u64 {
        match self.buf.get(s & 63..).and_then(<[u8]>::first_chunk::<8>) {
            Some(b) => {
                let v = u64::from_be_bytes(*b) >> 16;
                let v = v & KEEP64.get(len & 63).copied().unwrap_or(0);
                ((len as u64 & 0xFFFF) << 48) | v
            }
            None => 0,
        }
    }
}

/// [`KEEP`] for every level length of a short name: the tag bits a level
/// of `len` bytes keeps (no bounds check, no compare on the lookup's path).
/// Built at compile time: an index out of range fails the build.
#[allow(clippy::indexing_slicing)]
const KEEP64: [u64; 64] = {
    let mut t = [0xFFFF_FFFF_FFFFu64; 64];
    let mut i = 0;
    while i < KEEP.len() {
        t[i] = KEEP[i];
        i += 1;
    }
    t
};

/// How a node on a recorded path was reached from its parent.
/// How a parent leads to a child while a filter is inserted.
#[derive(Clone, Copy)]
enum Link {
    Plus,
    /// By the edge at this position.
    Edge(usize),
}

#[derive(Clone, Copy)]
enum Step<'f> {
    Root,
    Plus,
    /// By the exact edge whose first level is this.
    Edge(&'f [u8]),
}

/// Topic lengths are at most 65,535 bytes, so they fit a `u16`.
#[inline]
fn len16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// Topic lengths are at most 65,535 bytes, so they fit a `u32`.
#[inline]
fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The first level of `s`.
#[inline]
fn first_level(s: &[u8]) -> &[u8] {
    match s.iter().position(|&c| c == b'/') {
        Some(i) => s.get(..i).unwrap_or(s),
        None => s,
    }
}

/// Byte length of the leading levels of a filter that are not wildcards
/// (at least the first level, which the caller knows is literal).
fn literal_run(rest: &[u8]) -> usize {
    let mut end = 0usize;
    let mut start = 0usize;
    for level in rest.split(|&c| c == b'/') {
        if start > 0 && (level == b"+" || level == b"#") {
            break;
        }
        end = start + level.len();
        start = end + 1;
    }
    end
}

/// Byte length of the longest common prefix of `a` and `b` that ends on a
/// level boundary in both.
fn common_levels(a: &[u8], b: &[u8]) -> usize {
    let mut best = 0usize;
    let mut i = 0usize;
    loop {
        let (x, y) = (a.get(i), b.get(i));
        let a_end = matches!(x, None | Some(b'/'));
        let b_end = matches!(y, None | Some(b'/'));
        if a_end && b_end {
            best = i;
            if x.is_none() || y.is_none() {
                return best;
            }
        }
        match (x, y) {
            (Some(x), Some(y)) if x == y => i += 1,
            _ => return best,
        }
    }
}

/// Start of the level after the one starting at `pos`, or END.
#[inline]
fn next_level(name: &[u8], pos: usize) -> usize {
    let rest = name.get(pos..).unwrap_or(&[]);
    rest.iter()
        .position(|&c| c == b'/')
        .map_or(END, |i| pos + i + 1)
}

/// Start of the level that ends just before `pos` (the level consumed to
/// arrive where `pos` is the next level).
#[inline]
fn level_start(name: &[u8], pos: usize) -> usize {
    let end = if pos == END {
        name.len()
    } else {
        pos.saturating_sub(1)
    };
    let before = name.get(..end).unwrap_or(&[]);
    before.iter().rposition(|&c| c == b'/').map_or(0, |i| i + 1)
}

impl<K: Ord, V> SubscriptionTree<K, V> {
    /// Adds or replaces `key`'s subscription to the plain filter `filter`.
    /// Returns the data it replaced.
    ///
    /// The filter is taken literally: pass a `$share/...` filter through
    /// [`subscribe`](Self::subscribe) or [`insert_shared`](Self::insert_shared)
    /// to give it shared semantics.
    pub fn insert(&mut self, filter: &TopicFilter, key: K, value: V) -> Option<V> {
        if is_exact(filter.as_bytes()) {
            let old = self.exact.insert(filter.as_bytes(), key, value);
            if old.is_none() {
                self.len += 1;
            }
            return old;
        }
        let (node, hash) = self.make_path(filter.as_bytes());
        let n = self.arena.get_mut(node)?;
        let mut n_exact = n.n_exact as usize;
        let old = put(&mut n.subs, &mut n_exact, hash, key, value);
        n.n_exact = len32(n_exact);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Adds or replaces `key`'s membership of a Shared Subscription.
    /// Returns the data it replaced.
    pub fn insert_shared(&mut self, filter: &SharedFilter, key: K, value: V) -> Option<V> {
        let (node, hash) = self.make_path(filter.filter().as_bytes());
        let seed = self.seed;
        let n = self.arena.get_mut(node)?;
        let groups = n.groups_mut(seed)?;
        let share = filter.share_name();
        let old = match groups.binary_search_by(|g| (g.hash, &*g.share).cmp(&(hash, share))) {
            Ok(i) => {
                let g = groups.get_mut(i)?;
                let mut none = g.members.len();
                put(&mut g.members, &mut none, false, key, value)
            }
            Err(at) => {
                reserve_one(groups);
                groups.insert(
                    at,
                    Group {
                        hash,
                        share: Box::from(share),
                        members: alloc::vec![(key, value)],
                    },
                );
                None
            }
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// [`insert`](Self::insert) or [`insert_shared`](Self::insert_shared),
    /// as the filter says.
    pub fn subscribe(&mut self, filter: &SubscriptionFilter, key: K, value: V) -> Option<V> {
        match filter {
            SubscriptionFilter::Plain(f) => self.insert(f, key, value),
            SubscriptionFilter::Shared(s) => self.insert_shared(s, key, value),
        }
    }

    /// Removes `key`'s subscription to the plain filter `filter`, freeing
    /// every node left empty. Returns its data.
    pub fn remove(&mut self, filter: &TopicFilter, key: &K) -> Option<V> {
        if is_exact(filter.as_bytes()) {
            let v = self.exact.remove(filter.as_bytes(), key)?;
            self.len -= 1;
            return Some(v);
        }
        let mut path = Vec::new();
        let (node, hash) = self.find_path(filter.as_bytes(), Some(&mut path))?;
        let n = self.arena.get_mut(node)?;
        let (lo, hi) = section(n.subs.len(), n.n_exact as usize, hash);
        let i = n
            .subs
            .get(lo..hi)?
            .binary_search_by(|(k, _)| k.cmp(key))
            .ok()?;
        let before = n.own_depths();
        let (_, v) = n.subs.remove(lo + i);
        if !hash {
            n.n_exact -= 1;
        }
        trim(&mut n.subs);
        let same = n.own_depths() == before;
        self.len -= 1;
        self.tidy(&path, same);
        Some(v)
    }

    /// Removes `key` from a Shared Subscription group. Returns its data.
    pub fn remove_shared(&mut self, filter: &SharedFilter, key: &K) -> Option<V> {
        let mut path = Vec::new();
        let (node, hash) = self.find_path(filter.filter().as_bytes(), Some(&mut path))?;
        let n = self.arena.get_mut(node)?;
        let Kids::Many(m) = &mut n.kids else {
            return None;
        };
        let groups = &mut m.groups;
        let share = filter.share_name();
        let gi = groups
            .binary_search_by(|g| (g.hash, &*g.share).cmp(&(hash, share)))
            .ok()?;
        let g = groups.get_mut(gi)?;
        let i = g.members.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
        let (_, v) = g.members.remove(i);
        trim(&mut g.members);
        if g.members.is_empty() {
            groups.remove(gi);
            trim(groups);
            n.settle_kids();
        }
        self.len -= 1;
        self.tidy(&path, false);
        Some(v)
    }

    /// [`remove`](Self::remove) or [`remove_shared`](Self::remove_shared),
    /// as the filter says.
    pub fn unsubscribe(&mut self, filter: &SubscriptionFilter, key: &K) -> Option<V> {
        match filter {
            SubscriptionFilter::Plain(f) => self.remove(f, key),
            SubscriptionFilter::Shared(s) => self.remove_shared(s, key),
        }
    }

    /// The data of `key`'s subscription to the plain filter `filter`.
    pub fn get(&self, filter: &TopicFilter, key: &K) -> Option<&V> {
        if is_exact(filter.as_bytes()) {
            return self.exact.value(filter.as_bytes(), key);
        }
        let (node, hash) = self.find_path(filter.as_bytes(), None)?;
        let n = self.arena.get(node)?;
        let (lo, hi) = section(n.subs.len(), n.n_exact as usize, hash);
        let part = n.subs.get(lo..hi)?;
        let i = part.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
        part.get(i).map(|(_, v)| v)
    }

    /// Checks the tree's internal invariants (sorted edges and keys, parent
    /// links, no empty nodes left behind, counts). For tests and fuzzing.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        self.exact.check()?;
        let in_tree = self
            .len
            .checked_sub(self.exact.count())
            .ok_or("len below the exact table's count")?;
        let nodes = &self.arena.nodes;
        if nodes.is_empty() {
            return if in_tree == 0 {
                Ok(())
            } else {
                Err("len without nodes")
            };
        }
        let mut seen = 0usize;
        let mut subs = 0usize;
        let mut stack = alloc::vec![ROOT];
        while let Some(i) = stack.pop() {
            let n = nodes.get(i as usize).ok_or("dangling index")?;
            seen += 1;
            if i != ROOT && n.is_empty() {
                return Err("empty node kept");
            }
            if n.n_exact as usize > n.subs.len() {
                return Err("n_exact out of range");
            }
            let (a, b) = n.subs.split_at(n.n_exact as usize);
            if !a.windows(2).all(|w| matches!(w, [x, y] if x.0 < y.0))
                || !b.windows(2).all(|w| matches!(w, [x, y] if x.0 < y.0))
            {
                return Err("subscribers not sorted");
            }
            subs += n.subs.len();
            let g = n.groups();
            if let Kids::Many(m) = &n.kids {
                if g.is_empty() && m.edges.len() <= WIDE {
                    return Err("boxed children without need");
                }
                m.index.check(&m.edges)?;
            }
            if !g
                .windows(2)
                .all(|w| matches!(w, [x, y] if (x.hash, &x.share) < (y.hash, &y.share)))
            {
                return Err("groups not sorted");
            }
            for grp in g {
                if grp.members.is_empty()
                    || !grp
                        .members
                        .windows(2)
                        .all(|w| matches!(w, [x, y] if x.0 < y.0))
                {
                    return Err("group members empty or not sorted");
                }
                subs += grp.members.len();
            }
            if !n.edges().windows(2).all(|w| {
                matches!(w, [x, y] if crate::edge::cmp_label(x.first_level(), y.first_level()).is_lt())
            }) {
                return Err("edges not sorted by first level");
            }
            for e in n.edges() {
                if e.label()
                    .split(|&c| c == b'/')
                    .any(|l| l == b"+" || l == b"#")
                {
                    return Err("wildcard level in an edge label");
                }
                let c = nodes.get(e.node() as usize).ok_or("dangling edge")?;
                if c.n_exact > 0 && reached_by_edges_alone(nodes, e.node()) {
                    return Err("plain exact filter kept in the tree");
                }
                if c.in_len as usize != e.label().len() {
                    return Err("in_len differs from the edge label");
                }
                if c.foldable() {
                    return Err("node with one edge and nothing else not folded");
                }
            }
            if !n.depths.covers(depths_of(n)) {
                return Err("depths miss a depth of the subtree");
            }
            let pd = nodes
                .get(n.plus as usize)
                .map_or(Depths::NONE, |c| c.depths);
            if n.plus_depths != pd {
                return Err("copy of the '+' child's depths differs");
            }
            for e in n.edges() {
                if nodes.get(e.node() as usize).map(|c| c.depths.0) != Some(e.mask()) {
                    return Err("edge's copy of the child's depths differs");
                }
            }
            let mut bad_parent = false;
            n.for_each_child(|c| {
                bad_parent |= nodes.get(c as usize).is_none_or(|x| x.parent != i);
                stack.push(c);
            });
            if bad_parent {
                return Err("child's parent link is wrong");
            }
        }
        if seen != self.arena.live() {
            return Err("live count differs from reachable nodes");
        }
        if subs != in_tree {
            return Err("len differs from stored subscriptions");
        }
        Ok(())
    }
}

/// Whether node `i` is reached from the root by exact edges only (no `+`),
/// so that a filter ending there has no wildcard.
fn reached_by_edges_alone<K, V>(nodes: &[Node<K, V>], mut i: u32) -> bool {
    while i != ROOT {
        let Some(p) = nodes
            .get(i as usize)
            .and_then(|n| nodes.get(n.parent as usize))
        else {
            return false;
        };
        if p.plus == i {
            return false;
        }
        i = nodes.get(i as usize).map_or(ROOT, |n| n.parent);
    }
    true
}

/// Bounds of the exact (`hash == false`) or `#` part of a subscriber list.
#[inline]
fn section(len: usize, n_exact: usize, hash: bool) -> (usize, usize) {
    if hash {
        (n_exact.min(len), len)
    } else {
        (0, n_exact.min(len))
    }
}

/// Inserts or replaces `key` in its part of a subscriber list.
fn put<K: Ord, V>(
    subs: &mut Vec<(K, V)>,
    n_exact: &mut usize,
    hash: bool,
    key: K,
    value: V,
) -> Option<V> {
    let (lo, hi) = section(subs.len(), *n_exact, hash);
    let part = subs.get_mut(lo..hi)?;
    match part.binary_search_by(|(k, _)| k.cmp(&key)) {
        Ok(i) => part.get_mut(i).map(|e| core::mem::replace(&mut e.1, value)),
        Err(i) => {
            reserve_one(subs);
            subs.insert(lo + i, (key, value));
            if !hash {
                *n_exact += 1;
            }
            None
        }
    }
}

impl<K, V> Node<K, V> {
    /// The exact children, sorted by their label's first level.
    #[inline]
    fn edges(&self) -> &[Edge] {
        match &self.kids {
            Kids::Few(edges) => edges,
            Kids::Many(m) => &m.edges,
        }
    }

    /// The exact children, for changes that keep every edge's first level
    /// (so the order and a wide node's index stay valid).
    fn edges_mut(&mut self) -> &mut [Edge] {
        match &mut self.kids {
            Kids::Few(edges) => edges,
            Kids::Many(m) => &mut m.edges,
        }
    }

    /// The Shared Subscription groups ending here.
    #[inline]
    fn groups(&self) -> &[Group<K, V>] {
        match &self.kids {
            Kids::Few(_) => &[],
            Kids::Many(m) => &m.groups,
        }
    }

    /// Boxes the children (to hold groups or an index), hashing with `seed`.
    fn many(&mut self, seed: u64) -> Option<&mut Many<K, V>> {
        if let Kids::Few(edges) = &mut self.kids {
            let edges = core::mem::take(edges);
            let mut index = Index::new(seed);
            index.rebuild(&edges);
            self.kids = Kids::Many(Box::new(Many {
                edges,
                index,
                groups: Vec::new(),
            }));
        }
        match &mut self.kids {
            Kids::Many(m) => Some(m),
            Kids::Few(_) => None,
        }
    }

    /// The groups, for adding one.
    fn groups_mut(&mut self, seed: u64) -> Option<&mut Vec<Group<K, V>>> {
        self.many(seed).map(|m| &mut m.groups)
    }

    /// Inserts an edge at `at` (its sorted place), boxing the children with
    /// an index when the node becomes wide.
    fn insert_edge(&mut self, at: usize, e: Edge, seed: u64) {
        match &mut self.kids {
            Kids::Few(edges) => {
                reserve_one(edges);
                edges.insert(at, e);
                if edges.len() > WIDE {
                    self.many(seed);
                }
            }
            Kids::Many(m) => {
                reserve_one(&mut m.edges);
                m.edges.insert(at, e);
                m.index.inserted(&m.edges, at);
            }
        }
    }

    /// Removes edge `i`, unboxing the children when neither width nor
    /// groups need the box any more.
    fn remove_edge(&mut self, i: usize) {
        match &mut self.kids {
            Kids::Few(edges) => {
                if i < edges.len() {
                    edges.remove(i);
                    trim(edges);
                }
            }
            Kids::Many(m) => {
                if i < m.edges.len() {
                    let h = m.edges.get(i).map_or(0, |e| m.index.hash(e.first_level()));
                    m.edges.remove(i);
                    trim(&mut m.edges);
                    m.index.removed(&m.edges, i, h);
                }
                self.settle_kids();
            }
        }
    }

    /// Goes back to a plain edge vector when the box holds no group and
    /// few edges.
    fn settle_kids(&mut self) {
        if let Kids::Many(m) = &mut self.kids {
            if m.groups.is_empty() && m.edges.len() <= WIDE {
                let edges = core::mem::take(&mut m.edges);
                self.kids = Kids::Few(edges);
            }
        }
    }

    /// The depths of the filters stored at this node (0, or `#` at 0).
    fn own_depths(&self) -> Depths {
        let mut d = Depths::NONE;
        if self.n_exact > 0 {
            d = d.union(Depths::at(0, false));
        }
        if self.subs.len() > self.n_exact as usize {
            d = d.union(Depths::at(0, true));
        }
        for g in self.groups() {
            d = d.union(Depths::at(0, g.hash));
        }
        d
    }

    /// A node with exactly one edge and nothing else: below an exact edge it
    /// is folded into that edge.
    #[inline]
    fn foldable(&self) -> bool {
        self.edges().len() == 1
            && self.plus == NIL
            && self.subs.is_empty()
            && self.groups().is_empty()
    }

    /// Reports this node's subscriptions: with `all`, every one (the name
    /// ends here); otherwise only the `#` ones (the name goes deeper).
    #[inline]
    fn emit<'a, F: FnMut(Match<'a, K, V>)>(&'a self, all: bool, f: &mut F) {
        let from = if all { 0 } else { self.n_exact as usize };
        // `n_exact <= subs.len()`; matched rather than `unwrap_or(&[])`.
        if let Some(subs) = self.subs.get(from..) {
            for (key, value) in subs {
                f(Match::Subscriber { key, value });
            }
        }
        if let Kids::Many(m) = &self.kids {
            for g in m.groups.iter().filter(|g| all || g.hash) {
                f(Match::Shared(SharedGroup {
                    share_name: &g.share,
                    members: &g.members,
                }));
            }
        }
    }
}

impl<K, V> Default for Node<K, V> {
    fn default() -> Self {
        Node {
            kids: Kids::Few(Vec::new()),
            subs: Vec::new(),
            parent: NIL,
            plus: NIL,
            n_exact: 0,
            in_len: 0,
            depths: Depths::NONE,
            plus_depths: Depths::NONE,
        }
    }
}

impl<K, V> ArenaNode for Node<K, V> {
    fn for_each_child(&self, mut f: impl FnMut(u32)) {
        for e in self.edges() {
            f(e.node());
        }
        if self.plus != NIL {
            f(self.plus);
        }
    }

    fn remap(&mut self, map: &[u32]) {
        for e in self.edges_mut() {
            e.set_node(remap_index(e.node(), map));
        }
        self.plus = remap_index(self.plus, map);
        self.parent = remap_index(self.parent, map);
    }

    fn shrink(&mut self) {
        self.subs.shrink_to_fit();
        match &mut self.kids {
            Kids::Few(edges) => edges.shrink_to_fit(),
            Kids::Many(m) => {
                m.edges.shrink_to_fit();
                m.groups.shrink_to_fit();
                for grp in &mut m.groups {
                    grp.members.shrink_to_fit();
                }
                // The table at its canonical size for the width.
                m.index.rebuild(&m.edges);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.edges().is_empty()
            && self.plus == NIL
            && self.subs.is_empty()
            && self.groups().is_empty()
    }

    fn after_compact(nodes: &mut [Self]) {
        // Children are numbered after their parent: from the last node up,
        // every child is done before its parent.
        for i in (0..nodes.len()).rev() {
            // The copies of the children's (final) depths, then this
            // node's depths from them.
            let plus = nodes.get(i).map_or(NIL, |n| n.plus);
            let pd = nodes.get(plus as usize).map_or(Depths::NONE, |c| c.depths);
            let width = nodes.get(i).map_or(0, |n| n.edges().len());
            for j in 0..width {
                let c = nodes
                    .get(i)
                    .and_then(|n| n.edges().get(j))
                    .map_or(NIL, Edge::node);
                let d = nodes.get(c as usize).map_or(Depths::NONE, |c| c.depths);
                if let Some(e) = nodes.get_mut(i).and_then(|n| n.edges_mut().get_mut(j)) {
                    e.set_mask(d.0);
                }
            }
            if let Some(n) = nodes.get_mut(i) {
                n.plus_depths = pd;
                n.depths = depths_of(n);
            }
        }
    }
}

impl<'a, K, V> SharedGroup<'a, K, V> {
    /// The ShareName.
    pub fn share_name(&self) -> &'a str {
        self.share_name
    }

    /// The members, sorted by key; never empty.
    pub fn members(&self) -> &'a [(K, V)] {
        self.members
    }

    /// Number of members (at least 1).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false: a group without members is removed.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Member `n % len()`: a cheap way to pick one from a counter or hash.
    pub fn pick(&self, n: usize) -> Option<(&'a K, &'a V)> {
        let len = self.members.len();
        if len == 0 {
            return None;
        }
        self.members.get(n % len).map(|(k, v)| (k, v))
    }
}

impl<K, V> Clone for SharedGroup<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for SharedGroup<'_, K, V> {}

impl<K, V> Clone for Match<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for Match<'_, K, V> {}

impl<K, V> Default for SubscriptionTree<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone, V: Clone> Clone for SubscriptionTree<K, V> {
    fn clone(&self) -> Self {
        SubscriptionTree {
            arena: self.arena.clone(),
            exact: self.exact.clone(),
            len: self.len,
            seed: self.seed,
        }
    }
}

impl<K, V> fmt::Debug for SubscriptionTree<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionTree")
            .field("len", &self.len)
            .field("nodes", &self.arena.live())
            .finish()
    }
}

/// Two trees are equal when they hold the same subscriptions in the same
/// shape (same nodes, labels, subscribers and data), whatever their node
/// numbering or spare capacity.
impl<K: PartialEq, V: PartialEq> PartialEq for SubscriptionTree<K, V> {
    fn eq(&self, other: &Self) -> bool {
        if self.len != other.len
            || self.arena.live() != other.arena.live()
            || !self.exact.same_content(&other.exact)
        {
            return false;
        }
        if self.arena.nodes.is_empty() || other.arena.nodes.is_empty() {
            return self.arena.nodes.is_empty() && other.arena.nodes.is_empty();
        }
        let mut stack = alloc::vec![(ROOT, ROOT)];
        while let Some((a, b)) = stack.pop() {
            let (Some(x), Some(y)) = (self.arena.get(a), other.arena.get(b)) else {
                return false;
            };
            if x.n_exact != y.n_exact
                || x.subs != y.subs
                || x.groups() != y.groups()
                || x.edges().len() != y.edges().len()
                || (x.plus == NIL) != (y.plus == NIL)
            {
                return false;
            }
            for (ex, ey) in x.edges().iter().zip(y.edges()) {
                if ex.label() != ey.label() {
                    return false;
                }
                stack.push((ex.node(), ey.node()));
            }
            if x.plus != NIL {
                stack.push((x.plus, y.plus));
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec;

    fn f(s: &str) -> TopicFilter {
        TopicFilter::try_from(s).unwrap()
    }

    fn hits(t: &SubscriptionTree<u32, u8>, name: &str) -> Vec<u32> {
        let mut v = Vec::new();
        t.for_each_match(&TopicName::try_from(name).unwrap(), |m| match m {
            Match::Subscriber { key, .. } => v.push(*key),
            Match::Shared(g) => v.extend(g.members().iter().map(|(k, _)| 1000 + *k)),
        });
        v.sort();
        v
    }

    #[test]
    fn node_is_one_cache_line_for_small_keys() {
        assert_eq!(core::mem::size_of::<Node<u32, u32>>(), 64);
        assert_eq!(core::mem::align_of::<Node<u32, u32>>(), 64);
    }

    #[test]
    fn spec_examples_in_the_tree() {
        let mut t = SubscriptionTree::new();
        for (i, s) in [
            "sport/tennis/player1/#",
            "sport/+",
            "+/+",
            "/+",
            "$SYS/#",
            "#",
            "+",
            "sport/tennis/+",
            "+/tennis/#",
            "sport/#",
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(t.insert(&f(s), i as u32, 0), None);
        }
        t.check_invariants().unwrap();
        assert_eq!(hits(&t, "sport/tennis/player1"), vec![0, 5, 7, 8, 9]);
        assert_eq!(hits(&t, "sport/tennis/player1/ranking"), vec![0, 5, 8, 9]);
        assert_eq!(hits(&t, "sport/"), vec![1, 2, 5, 9]);
        assert_eq!(hits(&t, "sport"), vec![5, 6, 9]);
        assert_eq!(hits(&t, "/finance"), vec![2, 3, 5]);
        assert_eq!(hits(&t, "$SYS/uptime"), vec![4]);
        assert_eq!(hits(&t, "$SYS"), vec![4]);
    }

    #[test]
    fn mqtt5_4_7_2_1_dollar_rule_in_tree() {
        // MQTT-4.7.2-1 through the tree, shared groups included.
        let mut t = SubscriptionTree::new();
        t.insert(&f("#"), 1, 0);
        t.insert(&f("+/x"), 2, 0);
        t.insert(&f("$SYS/+"), 3, 0);
        t.insert(&f("+/$x"), 4, 0);
        t.insert_shared(&SharedFilter::try_from("$share/g/#").unwrap(), 5, 0);
        assert_eq!(hits(&t, "$SYS/x"), vec![3]);
        assert_eq!(hits(&t, "a/$x"), vec![1, 4, 1005]);
        assert_eq!(hits(&t, "a/x"), vec![1, 2, 1005]);
    }

    #[test]
    fn replace_get_remove() {
        let mut t = SubscriptionTree::new();
        assert_eq!(t.insert(&f("a/b"), 1, 1), None);
        assert_eq!(t.insert(&f("a/b"), 1, 2), Some(1));
        assert_eq!(t.insert(&f("a/#"), 1, 3), None);
        assert_eq!(t.get(&f("a/b"), &1), Some(&2));
        assert_eq!(t.get(&f("a/#"), &1), Some(&3));
        assert_eq!(t.get(&f("a/+"), &1), None);
        assert_eq!(t.len(), 2);
        assert_eq!(t.remove(&f("a/+"), &1), None);
        assert_eq!(t.remove(&f("a/b"), &2), None);
        assert_eq!(t.remove(&f("a/b"), &1), Some(2));
        assert_eq!(t.remove(&f("a/#"), &1), Some(3));
        assert!(t.is_empty());
        assert_eq!(t.node_count(), 0);
        assert_eq!(t.heap_bytes(), 0);
        t.check_invariants().unwrap();
    }

    #[test]
    fn shared_groups_are_reported_whole() {
        let mut t = SubscriptionTree::new();
        let g1 = SharedFilter::try_from("$share/g1/a/+").unwrap();
        let g2 = SharedFilter::try_from("$share/g2/a/+").unwrap();
        let g3 = SharedFilter::try_from("$share/g1/a/#").unwrap();
        t.insert_shared(&g1, 1, 0);
        t.insert_shared(&g1, 2, 0);
        t.insert_shared(&g2, 3, 0);
        t.insert_shared(&g3, 4, 0);
        assert_eq!(t.insert_shared(&g1, 2, 9), Some(0));
        let mut groups = Vec::new();
        t.for_each_match(&TopicName::try_from("a/b").unwrap(), |m| {
            if let Match::Shared(g) = m {
                let keys: Vec<u32> = g.members().iter().map(|(k, _)| *k).collect();
                groups.push((
                    String::from(g.share_name()),
                    keys,
                    g.pick(1).map(|(k, _)| *k),
                ));
            }
        });
        groups.sort();
        assert_eq!(
            groups,
            vec![
                ("g1".into(), vec![1, 2], Some(2)),
                ("g1".into(), vec![4], Some(4)),
                ("g2".into(), vec![3], Some(3)),
            ]
        );
        assert_eq!(t.remove_shared(&g1, &1), Some(0));
        assert_eq!(t.remove_shared(&g1, &1), None);
        assert_eq!(t.remove_shared(&g1, &2), Some(9));
        assert_eq!(t.remove_shared(&g2, &3), Some(0));
        assert_eq!(t.remove_shared(&g3, &4), Some(0));
        assert_eq!(t.node_count(), 0);
        t.check_invariants().unwrap();
    }

    #[test]
    fn filter_of_32768_levels_has_no_recursion() {
        // The deepest legal filter: 32,767 "+/" and a final "#" (65,535 bytes).
        let deep = "+/".repeat(32_767) + "#";
        let name = "a/".repeat(32_767) + "a";
        let exact = "a/".repeat(32_767) + "a";
        let mut t = SubscriptionTree::new();
        t.insert(&f(&deep), 1, 0);
        t.insert(&f(&exact), 2, 0);
        t.insert(&f("a/#"), 3, 0);
        t.check_invariants().unwrap();
        assert_eq!(hits(&t, &name), vec![1, 2, 3]);
        assert_eq!(hits(&t, "a/a"), vec![3]);
        let c = t.clone();
        assert!(c == t);
        assert_eq!(t.remove(&f(&deep), &1), Some(0));
        assert_eq!(t.remove(&f(&exact), &2), Some(0));
        t.check_invariants().unwrap();
        assert_eq!(t.node_count(), 2);
        drop(c);
    }

    #[test]
    fn split_finds_levels_and_hashes_the_whole_name() {
        // Every length around the 8-byte words, '/' at every place, and
        // names of 16, 17 and more levels.
        let mut names: Vec<Vec<u8>> = Vec::new();
        for len in 0..41usize {
            let base: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            names.push(base.clone());
            for at in 0..len {
                let mut n = base.clone();
                n[at] = b'/';
                names.push(n.clone());
                if at + 3 < len {
                    n[at + 3] = b'/';
                    names.push(n);
                }
            }
            names.push(vec![b'/'; len]);
        }
        for levels in [15usize, 16, 17, 31, 32, 33, 40] {
            names.push(
                vec![b'x'; levels - 1]
                    .iter()
                    .flat_map(|&c| [c, b'/'])
                    .chain([b'y'])
                    .collect(),
            );
        }
        names.push("caf\u{e9}/\u{1F600}/x".as_bytes().to_vec());
        for n in &names {
            for seed in [0u64, 7, u64::MAX] {
                let mut lv = Levels::new();
                let (h, ok) = lv.split(n, seed);
                assert_eq!(h, crate::index::hash(seed, n), "{n:?}");
                let want: Vec<usize> = core::iter::once(0)
                    .chain(
                        n.iter()
                            .enumerate()
                            .filter(|(_, &c)| c == b'/')
                            .map(|(i, _)| i + 1),
                    )
                    .collect();
                assert_eq!(ok, want.len() <= MAX_LEVELS, "{n:?}");
                if ok {
                    assert_eq!(lv.count, want.len());
                    for (i, &w) in want.iter().enumerate() {
                        assert_eq!(lv.start(i), w, "{n:?} level {i}");
                    }
                    assert_eq!(lv.start(lv.count), n.len() + 1);
                }
            }
        }
    }

    #[test]
    fn short_split_finds_level_ends_and_hashes_the_whole_name() {
        // Every length up to the limit, '/' at every place.
        let mut names: Vec<Vec<u8>> = Vec::new();
        for len in 0..=Short::MAX_LEN {
            let base: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            names.push(base.clone());
            for at in 0..len {
                let mut n = base.clone();
                n[at] = b'/';
                names.push(n.clone());
                if at + 3 < len {
                    n[at + 3] = b'/';
                    names.push(n);
                }
            }
            names.push(vec![b'/'; len]);
        }
        names.push("caf\u{e9}/\u{1F600}/x".as_bytes().to_vec());
        for n in &names {
            for seed in [0u64, 7, u64::MAX] {
                let mut sh = Short::new();
                let h = sh.split(n, seed);
                assert_eq!(h, crate::index::hash(seed, n), "{n:?}");
                let mut want = 1u64 << n.len();
                for (i, &c) in n.iter().enumerate() {
                    if c == b'/' {
                        want |= 1 << i;
                    }
                }
                assert_eq!(sh.ends, want, "{n:?}");
                assert_eq!(&sh.buf[..n.len()], &n[..], "{n:?}");
                assert!(sh.buf[n.len()..].iter().all(|&c| c == 0), "{n:?}");
                let mut start = 0;
                for level in n.split(|&c| c == b'/') {
                    assert_eq!(sh.tag(start, level.len()), crate::edge::tag(level));
                    start += level.len() + 1;
                }
            }
        }
    }

    #[test]
    fn split_and_scanning_lookups_agree() {
        // The split lookup (names of up to MAX_LEVELS levels) and the
        // scanning one (deeper names) must report the same matches.
        let mut t = SubscriptionTree::new();
        let filters = [
            "#",
            "+",
            "+/+",
            "/",
            "//",
            "a/#",
            "a/+/c",
            "a/b/c",
            "a/b/c/d/e",
            "a/+/+/d/#",
            "$SYS/+",
            "+/$x",
            "abcdefgh/ijklmnop/qrstuvwxyz0123456789",
            "abcdefgh/+/#",
            "abcdefg/abcdefh",
            "abcdefg/abcdefg/x",
            "x/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/#",
        ];
        for (i, s) in filters.iter().enumerate() {
            t.insert(&f(s), i as u32, 0);
        }
        let deep = |n: usize| {
            let mut v = alloc::vec!["x"; n];
            v[n - 1] = "y";
            v.join("/")
        };
        let mut names: Vec<String> = [
            "a",
            "a/b",
            "a/b/c",
            "a/x/c",
            "a/b/c/d/e",
            "a/q/r/d",
            "a/q/r/d/z/z",
            "/",
            "//",
            "",
            "$SYS/x",
            "q/$x",
            "abcdefgh/ijklmnop/qrstuvwxyz0123456789",
            "abcdefgh/ijklmnop/qrstuvwxyz012345678",
            "abcdefg/abcdefh",
            "abcdefg/abcdefg/x",
            "abcdefg/abcdefg",
            "a/b/",
            "a//c",
        ]
        .iter()
        .map(|s| String::from(*s))
        .collect();
        for n in [15, 16, 17, 18, 31, 32, 33, 34, 40] {
            names.push(deep(n));
        }
        // Around the longest name split into a bitmap (63 bytes).
        for len in 60..67 {
            let mut n = String::from("abcdefgh/ijklmnop/");
            while n.len() < len {
                n.push('z');
            }
            names.push(n);
            let mut n = String::from("a/b");
            while n.len() + 2 <= len {
                n.push_str("/c");
            }
            names.push(n);
        }
        for name in &names {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let key = |m: Match<'_, u32, u8>| match m {
                Match::Subscriber { key, .. } => *key,
                Match::Shared(_) => u32::MAX,
            };
            let mut lv = Levels::new();
            if lv.split(name.as_bytes(), 0).1 {
                t.match_split(name.as_bytes(), &lv, |m| a.push(key(m)));
            }
            t.match_scan(name.as_bytes(), |m| b.push(key(m)));
            // The exact table is probed before either walk.
            if let Some(e) = t.exact.get(name.as_bytes()) {
                a.extend(e.subs().iter().map(|s| s.0));
                b.extend(e.subs().iter().map(|s| s.0));
            }
            a.sort();
            b.sort();
            if name.split('/').count() <= MAX_LEVELS {
                assert_eq!(a, b, "{name}");
            } else {
                assert!(t.exact.get(name.as_bytes()).is_some() || a.is_empty());
            }
            let mut c = Vec::new();
            t.for_each_match_bytes(name.as_bytes(), |m| c.push(key(m)));
            c.sort();
            assert_eq!(c, b, "{name}");
        }
        assert_eq!(hits(&t, &deep(34)), vec![0, 16]);
    }

    #[test]
    fn chains_fold_split_and_refold() {
        // Filters ending in '#' live in the tree (exact ones do not).
        let mut t = SubscriptionTree::new();
        t.insert(&f("a/b/c/d/#"), 1, 0);
        assert_eq!(t.node_count(), 2); // root and one node under "a/b/c/d"
        t.insert(&f("a/b/x/#"), 2, 0);
        assert_eq!(t.node_count(), 4); // "a/b" split off
        t.insert(&f("a/b/#"), 3, 0);
        t.insert(&f("a/+/c/d"), 4, 0);
        t.insert(&f("a/b/c/d"), 5, 0); // exact: beside the tree
        assert_eq!(t.node_count(), 7); // "a" split off, "+" and "+/c/d"
        t.check_invariants().unwrap();
        assert_eq!(hits(&t, "a/b/c/d"), vec![1, 3, 4, 5]);
        assert_eq!(hits(&t, "a/b/c"), vec![3]);
        assert_eq!(hits(&t, "a/c"), Vec::<u32>::new());
        assert_eq!(t.remove(&f("a/b/x/#"), &2), Some(0));
        assert_eq!(t.remove(&f("a/b/#"), &3), Some(0));
        assert_eq!(t.remove(&f("a/+/c/d"), &4), Some(0));
        t.check_invariants().unwrap();
        assert_eq!(t.node_count(), 2); // folded back
        let mut fresh = SubscriptionTree::new();
        fresh.insert(&f("a/b/c/d"), 5, 0);
        fresh.insert(&f("a/b/c/d/#"), 1, 0);
        assert!(t == fresh);
    }

    /// The node reached by `path` (exact levels only), for looking at its
    /// representation.
    fn node_at<'t>(t: &'t SubscriptionTree<u32, u8>, path: &str) -> &'t Node<u32, u8> {
        let (n, _) = t.find_path(path.as_bytes(), None).unwrap();
        t.arena.get(n).unwrap()
    }

    fn is_wide(n: &Node<u32, u8>) -> bool {
        matches!(&n.kids, Kids::Many(m) if m.index.live())
    }

    #[test]
    fn wide_nodes_below_and_above_the_switch_over() {
        // A node `hub` with 0 to 3 * WIDE children (plus a '+' and a '#'
        // sibling), checked at every width on the way up and down.
        let mut t = SubscriptionTree::new();
        t.insert(&f("hub/+/x"), 9000, 0);
        t.insert(&f("hub/#"), 9001, 0);
        t.insert(&f("hub"), 9002, 0);
        let kids: Vec<String> = (0..3 * WIDE as u32)
            .map(|i| alloc::format!("child-level-{i}"))
            .collect();
        let check = |t: &SubscriptionTree<u32, u8>, live: usize| {
            t.check_invariants().unwrap();
            assert_eq!(is_wide(node_at(t, "hub")), live > WIDE, "width {live}");
            for (i, k) in kids.iter().enumerate() {
                let mut want = vec![9001];
                if i < live {
                    want.insert(0, i as u32);
                }
                assert_eq!(hits(t, &alloc::format!("hub/{k}")), want, "{k}");
                let mut want = vec![9000, 9001];
                if i < live {
                    want.insert(0, i as u32);
                    want.push(10_000 + i as u32);
                }
                assert_eq!(hits(t, &alloc::format!("hub/{k}/x")), want, "{k}/x");
            }
            // Absent levels of every length around the tag's 6 bytes.
            for miss in [
                "",
                "c",
                "child-",
                "child-level-",
                "child-level-999",
                "child-level-1x",
            ] {
                assert_eq!(hits(t, &alloc::format!("hub/{miss}")), vec![9001], "{miss}");
            }
        };
        check(&t, 0);
        for (i, k) in kids.iter().enumerate() {
            // '#' filters, so that they live in the tree.
            t.insert(&f(&alloc::format!("hub/{k}/#")), i as u32, 0);
            // A second subscription below, so the child is a real node.
            t.insert(&f(&alloc::format!("hub/{k}/x/#")), 10_000 + i as u32, 0);
            check(&t, i + 1);
        }
        // Down again, last first (so `live` stays a prefix).
        for (i, k) in kids.iter().enumerate().rev() {
            assert_eq!(
                t.remove(&f(&alloc::format!("hub/{k}/#")), &(i as u32)),
                Some(0)
            );
            assert_eq!(
                t.remove(&f(&alloc::format!("hub/{k}/x/#")), &(10_000 + i as u32)),
                Some(0)
            );
            check(&t, i);
        }
        for (k, key) in [("hub/+/x", 9000), ("hub/#", 9001), ("hub", 9002)] {
            assert_eq!(t.remove(&f(k), &key), Some(0));
        }
        assert_eq!((t.node_count(), t.heap_bytes()), (0, 0));
    }

    #[test]
    fn wide_nodes_removed_in_any_order_match_a_fresh_tree() {
        let mut t = SubscriptionTree::new();
        let n = 700u32;
        let name = |i: u32| alloc::format!("w/{}/v", (i * 7919) % 1000);
        // '#' filters live in the tree; the name is the filter's parent.
        let filter = |i: u32| f(&alloc::format!("{}/#", name(i)));
        for i in 0..n {
            t.insert(&filter(i), i, 0);
        }
        assert!(is_wide(node_at(&t, "w")));
        // Remove every third, then compare with a tree built from the rest.
        for i in (0..n).filter(|i| i % 3 == 0) {
            assert_eq!(t.remove(&filter(i), &i), Some(0));
        }
        t.check_invariants().unwrap();
        let mut fresh = SubscriptionTree::new();
        for i in (0..n).filter(|i| i % 3 != 0) {
            fresh.insert(&filter(i), i, 0);
        }
        assert!(t == fresh);
        for i in 0..n {
            let want = if i % 3 == 0 { vec![] } else { vec![i] };
            assert_eq!(hits(&t, &name(i)), want);
        }
        t.shrink_to_fit();
        fresh.shrink_to_fit();
        assert_eq!(t.heap_bytes(), fresh.heap_bytes());
        for i in (0..n).filter(|i| i % 3 != 0) {
            assert_eq!(t.remove(&filter(i), &i), Some(0));
        }
        assert_eq!((t.node_count(), t.heap_bytes()), (0, 0));
    }

    #[test]
    fn dropped_index_falls_back_to_the_sorted_edges() {
        // As if collisions had made the table give up: lookups still find
        // every edge (binary search), and the table comes back once the
        // node has doubled in width.
        let mut t = SubscriptionTree::new();
        for i in 0..40u32 {
            t.insert(&f(&alloc::format!("d/{i}/#")), i, 0);
        }
        let (d, _) = t.find_path(b"d", None).unwrap();
        if let Some(Kids::Many(m)) = t.arena.get_mut(d).map(|n| &mut n.kids) {
            m.index.drop_for_test(40);
        }
        assert!(!is_wide(node_at(&t, "d")));
        t.check_invariants().unwrap();
        for i in 0..40u32 {
            assert_eq!(hits(&t, &alloc::format!("d/{i}")), vec![i]);
        }
        assert_eq!(hits(&t, "d/40"), Vec::<u32>::new());
        for i in 40..79u32 {
            t.insert(&f(&alloc::format!("d/{i}/#")), i, 0);
            assert!(!is_wide(node_at(&t, "d")));
        }
        t.insert(&f("d/79/#"), 79, 0);
        assert!(is_wide(node_at(&t, "d")));
        t.check_invariants().unwrap();
        for i in 0..80u32 {
            assert_eq!(hits(&t, &alloc::format!("d/{i}")), vec![i]);
        }
    }

    #[test]
    fn groups_box_a_narrow_node_and_unbox_on_removal() {
        let mut t = SubscriptionTree::new();
        t.insert(&f("a/b/c/#"), 1, 0);
        t.insert(&f("a/b/#"), 2, 0);
        let g = SharedFilter::try_from("$share/g/a/b").unwrap();
        t.insert_shared(&g, 3, 0);
        assert!(matches!(node_at(&t, "a/b").kids, Kids::Many(_)));
        assert!(!is_wide(node_at(&t, "a/b")));
        assert_eq!(hits(&t, "a/b"), vec![2, 1003]);
        assert_eq!(hits(&t, "a/b/c"), vec![1, 2]);
        t.check_invariants().unwrap();
        assert_eq!(t.remove_shared(&g, &3), Some(0));
        assert!(matches!(node_at(&t, "a/b").kids, Kids::Few(_)));
        t.check_invariants().unwrap();
        let mut fresh = SubscriptionTree::new();
        fresh.insert(&f("a/b/c/#"), 1, 0);
        fresh.insert(&f("a/b/#"), 2, 0);
        assert!(t == fresh);
        t.shrink_to_fit();
        fresh.shrink_to_fit();
        assert_eq!(t.heap_bytes(), fresh.heap_bytes());
    }

    #[test]
    fn seeds_change_layout_not_matches() {
        let mut a = SubscriptionTree::new();
        let mut b = SubscriptionTree::with_seed(0x5EED);
        for i in 0..300u32 {
            let s = alloc::format!("s{}/{}/+/m{}", i % 3, i, i % 5);
            a.insert(&f(&s), i, 0);
            b.insert(&f(&s), i, 0);
        }
        assert!(a == b);
        for i in 0..300u32 {
            let n = alloc::format!("s{}/{}/x/m{}", i % 3, i, i % 5);
            assert_eq!(hits(&a, &n), hits(&b, &n));
            assert_eq!(hits(&a, &n), vec![i]);
        }
    }

    #[test]
    fn removal_frees_nodes_and_compacts() {
        let mut t = SubscriptionTree::new();
        let mut filters = Vec::new();
        for i in 0..500u32 {
            let s = alloc::format!("site{}/b{}/+/t{}", i % 7, i % 13, i);
            filters.push(f(&s));
        }
        for (i, fl) in filters.iter().enumerate() {
            t.insert(fl, i as u32, 0);
        }
        let mut fresh = SubscriptionTree::new();
        for (i, fl) in filters.iter().enumerate().skip(400) {
            fresh.insert(fl, i as u32, 0);
        }
        for (i, fl) in filters.iter().enumerate().take(400) {
            assert_eq!(t.remove(fl, &(i as u32)), Some(0));
            t.check_invariants().unwrap();
        }
        assert!(t == fresh);
        t.shrink_to_fit();
        fresh.shrink_to_fit();
        assert_eq!(t.heap_bytes(), fresh.heap_bytes());
        assert!(t.arena.nodes.len() == fresh.arena.nodes.len());
    }

    #[test]
    fn depths_shift_saturate_and_admit() {
        let d = Depths::at(2, false).union(Depths::at(3, true));
        assert_eq!(d.0, 0b1111_1100);
        assert!(d.admits(2) && !d.admits(1) && d.admits(3) && d.admits(30));
        assert!(!d.admits(0));
        // Seen from 5 levels up: both 7 or more (bit 7).
        let up = d.shift(5);
        assert_eq!(up.0, 0x80);
        assert!(!up.admits(6) && up.admits(7) && up.admits(9));
        // Seen from 2 levels up: ends at 4, '#' from 5.
        assert_eq!(d.shift(2).0, 0b1111_0000);
        // Far shifts saturate and stay conservative.
        let far = Depths::at(0, false).shift(40_000);
        assert!(far.admits(7) && far.admits(31) && !far.admits(6));
        let far_hash = Depths::at(0, true).shift(40_000);
        assert!(far_hash.admits(31) && !far_hash.admits(6));
        assert_eq!(Depths::at(12, true), Depths::at(7, true));
        assert!(!Depths::NONE.admits(0) && !Depths::NONE.shift(3).admits(3));
        assert!(d.covers(Depths::at(2, false)) && !d.covers(Depths::at(1, false)));
        // A node's own '#' claims every depth; so may others, rarely.
        assert!(Depths::at(0, true).all() && !d.all());
    }

    /// Every live node's depths, in node order (a free slot's are empty).
    fn all_depths(t: &SubscriptionTree<u32, u8>) -> Vec<Depths> {
        t.arena
            .nodes
            .iter()
            .map(|n| n.depths)
            .filter(|&d| d != Depths::NONE)
            .collect()
    }

    #[test]
    fn depths_prune_and_shrink_back_on_removal() {
        let mut t = SubscriptionTree::new();
        t.insert(&f("a/+/c"), 1, 0);
        t.insert(&f("a/+/c/d/e"), 2, 0);
        t.insert(&f("+/x/#"), 3, 0);
        t.check_invariants().unwrap();
        // The root claims depths 3 and 5, and '#' from 2 levels down.
        let root = t.arena.get(ROOT).unwrap().depths;
        assert_eq!(root.0, 0b1111_1100);
        // `a` claims 2 and 4 levels left.
        let a = node_at(&t, "a").depths;
        assert_eq!(a.0, 0b1_0100);
        assert_eq!(hits(&t, "a/b/c"), [1]);
        assert_eq!(hits(&t, "a/x/c/d/e"), [2, 3]);
        assert_eq!(hits(&t, "a/b/c/d").len(), 0);
        assert_eq!(hits(&t, "q/x"), [3]);
        // Narrow nodes get exact depths back on removal.
        assert_eq!(t.remove(&f("a/+/c/d/e"), &2), Some(0));
        t.check_invariants().unwrap();
        let mut fresh = SubscriptionTree::new();
        fresh.insert(&f("a/+/c"), 1, 0);
        fresh.insert(&f("+/x/#"), 3, 0);
        let mut a = all_depths(&t);
        let mut b = all_depths(&fresh);
        a.sort_by_key(|d| d.0);
        b.sort_by_key(|d| d.0);
        assert_eq!(a, b);
    }

    #[test]
    fn wide_nodes_keep_a_superset_until_compaction() {
        let mut t = SubscriptionTree::new();
        for i in 0..20 {
            t.insert(&f(&alloc::format!("w/l{i}/+")), i, 0);
        }
        t.insert(&f("w/l0/+/deep/er"), 99, 0);
        assert_eq!(t.remove(&f("w/l0/+/deep/er"), &99), Some(0));
        t.check_invariants().unwrap();
        // `w` has 20 edges: its depths still claim the removed filter.
        let w = node_at(&t, "w").depths;
        assert!(w.admits(4));
        assert_eq!(hits(&t, "w/l0/x/deep/er").len(), 0);
        t.shrink_to_fit();
        t.check_invariants().unwrap();
        let w = node_at(&t, "w").depths;
        assert!(!w.admits(4) && w.admits(2));
        let mut fresh = SubscriptionTree::new();
        for i in 0..20 {
            fresh.insert(&f(&alloc::format!("w/l{i}/+")), i, 0);
        }
        fresh.shrink_to_fit();
        assert_eq!(all_depths(&t), all_depths(&fresh));
    }
}
