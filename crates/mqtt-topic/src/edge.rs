//! Compact storage of one topic level and the node it leads to.
//!
//! A node's children are a `Vec<Edge>` sorted by their label's first level,
//! found by their 8-byte tags (compared one by one in lists of up to
//! [`WIDE`](crate::index::WIDE) edges; wider lists are found through the
//! hashed index of `crate::index`, or binary-searched by tag when a node has
//! none). Labels of up to [`INLINE`]
//! bytes (nearly every real level: `site42`, `temperature`, a UUID's
//! halves) live inside the edge, so the search touches one contiguous array
//! and no other memory; longer labels are boxed. In the subscription tree an
//! edge also carries a copy of its child's depth mask (at which numbers of
//! levels left a filter below may match), so that a lookup rejects a child
//! that cannot match the name without reading the child's node.

use alloc::boxed::Box;
use core::cmp::Ordering;

/// Longest label stored inline. With it an [`Edge`] is 32 bytes (checked by
/// a test): the variant, the child's depth mask, the label's length and
/// first level's length, 16 bytes of label, the node index and the search
/// tag.
pub(crate) const INLINE: usize = 16;

/// One labelled link from a node to a child node. In the subscription tree
/// a label may span several levels (`room12/device5/temperature`): chains of
/// nodes that would hold nothing are folded into the edge. Edges of one node
/// differ in their first level, by which they are sorted and searched.
// `repr(u8)` lays each variant out like a `repr(C)` struct, so `mask`,
// `node` and `tag` sit at the same offsets in both (1, 4 and 24) and
// reading them needs no branch.
#[derive(Clone, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Edge {
    /// A short label kept in place.
    Inline {
        /// The child's depth mask (see `Depths` in the tree); unused by the
        /// retained index.
        mask: u8,
        len: u8,
        first: u8,
        node: u32,
        buf: [u8; INLINE],
        tag: u64,
    },
    /// A label longer than [`INLINE`] bytes.
    Heap {
        /// As in `Inline`.
        mask: u8,
        first: u16,
        node: u32,
        label: Box<[u8]>,
        tag: u64,
    },
}

impl Edge {
    /// An edge labelled `label` leading to `node`, with a depth mask of 0
    /// (the tree sets it). Labels are parts of topics, so at most 65,535
    /// bytes.
    pub(crate) fn new(label: &[u8], node: u32) -> Edge {
        let first = label.iter().position(|&c| c == b'/').unwrap_or(label.len());
        let tag = tag(label.get(..first).unwrap_or(label));
        match (u8::try_from(label.len()), label.len() <= INLINE) {
            (Ok(len), true) => {
                let mut buf = [0u8; INLINE];
                for (d, s) in buf.iter_mut().zip(label) {
                    *d = *s;
                }
                Edge::Inline {
                    mask: 0,
                    len,
                    // first <= len <= INLINE, so it fits.
                    first: u8::try_from(first).unwrap_or(len),
                    buf,
                    node,
                    tag,
                }
            }
            _ => Edge::Heap {
                mask: 0,
                first: u16::try_from(first).unwrap_or(u16::MAX),
                node,
                label: Box::from(label),
                tag,
            },
        }
    }

    /// The label's bytes (one or more levels).
    #[inline]
    pub(crate) fn label(&self) -> &[u8] {
        match self {
            // `len <= INLINE` by construction; the `min` lets the compiler
            // see it, so `get` needs no fallback at run time.
            Edge::Inline { len, buf, .. } => {
                buf.get(..usize::from(*len).min(INLINE)).unwrap_or(&[])
            }
            Edge::Heap { label, .. } => label,
        }
    }

    /// The label's length in bytes (without taking its slice).
    #[inline]
    pub(crate) fn label_len(&self) -> usize {
        match self {
            Edge::Inline { len, .. } => usize::from(*len),
            Edge::Heap { label, .. } => label.len(),
        }
    }

    /// The label's first level.
    #[inline]
    pub(crate) fn first_level(&self) -> &[u8] {
        match self {
            Edge::Inline { first, buf, .. } => {
                buf.get(..usize::from(*first).min(INLINE)).unwrap_or(&[])
            }
            Edge::Heap { first, label, .. } => label.get(..usize::from(*first)).unwrap_or(label),
        }
    }

    /// The copy of the child's depth mask.
    #[inline]
    pub(crate) fn mask(&self) -> u8 {
        match self {
            Edge::Inline { mask, .. } | Edge::Heap { mask, .. } => *mask,
        }
    }

    /// Sets the copy of the child's depth mask.
    pub(crate) fn set_mask(&mut self, to: u8) {
        match self {
            Edge::Inline { mask, .. } | Edge::Heap { mask, .. } => *mask = to,
        }
    }

    /// The child node's index.
    #[inline]
    pub(crate) fn node(&self) -> u32 {
        match self {
            Edge::Inline { node, .. } | Edge::Heap { node, .. } => *node,
        }
    }

    /// Points the edge at another index (used when the arena is compacted).
    pub(crate) fn set_node(&mut self, to: u32) {
        match self {
            Edge::Inline { node, .. } | Edge::Heap { node, .. } => *node = to,
        }
    }

    /// Heap bytes owned by the edge (the boxed label, if any).
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Edge::Inline { .. } => 0,
            Edge::Heap { label, .. } => label.len(),
        }
    }
}

/// Order of labels in an edge list: by length, then bytes. Any total order
/// works for a binary search; comparing lengths first settles most
/// comparisons without reading the bytes.
#[inline]
pub(crate) fn cmp_label(a: &[u8], b: &[u8]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// A level's search key: its length, then its first 16 bytes as a
/// big-endian integer. Comparing keys orders levels exactly like
/// [`cmp_label`] as far as 16 bytes go, with two integer comparisons instead
/// of a `memcmp` call; only longer levels with equal keys compare bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) struct Key {
    len: usize,
    prefix: u128,
}

/// The [`Key`] of a level.
#[inline]
pub(crate) fn key(level: &[u8]) -> Key {
    // Built in registers: copying into an array and loading it back as one
    // integer stalls on store forwarding.
    let prefix = match level.first_chunk::<16>() {
        Some(b) => u128::from_be_bytes(*b),
        None => {
            let v = level.iter().fold(0u128, |v, &c| (v << 8) | u128::from(c));
            // 1..=15 bytes here (0 gives 0): shift them to the top.
            v.checked_shl(8 * (16 - level.len() as u32)).unwrap_or(0)
        }
    };
    Key {
        len: level.len(),
        prefix,
    }
}

impl Edge {
    /// The [`tag`] of the label's first level.
    #[inline]
    pub(crate) fn tag(&self) -> u64 {
        match self {
            Edge::Inline { tag, .. } | Edge::Heap { tag, .. } => *tag,
        }
    }

    /// The [`Key`] of the label's first level.
    #[inline]
    fn first_key(&self) -> Key {
        match self {
            Edge::Inline { first, buf, .. } => {
                let f = usize::from(*first);
                let v = buf
                    .first_chunk::<16>()
                    .map_or(0, |b| u128::from_be_bytes(*b));
                // Keep the first `f` bytes: the rest belongs to later levels.
                let prefix = match f {
                    0 => 0,
                    1..=15 => v & !(u128::MAX >> (f * 8)),
                    _ => v,
                };
                Key { len: f, prefix }
            }
            Edge::Heap { .. } => key(self.first_level()),
        }
    }
}

/// Finds the edge whose first level is `level` in a sorted edge list:
/// `Ok(position)` or `Err(insertion point)`.
#[inline]
pub(crate) fn find(edges: &[Edge], level: &[u8]) -> Result<usize, usize> {
    find_key(edges, level, key(level))
}

/// [`find`] with the level's key already computed.
#[inline]
fn find_key(edges: &[Edge], level: &[u8], k: Key) -> Result<usize, usize> {
    edges.binary_search_by(|e| {
        e.first_key().cmp(&k).then_with(|| {
            if k.len > 16 {
                e.first_level().cmp(level)
            } else {
                Ordering::Equal
            }
        })
    })
}

/// A level's 8-byte search tag: its length in the top two bytes (levels are
/// at most 65,535 bytes), its first 6 bytes below. Tags order like
/// [`cmp_label`] and decide equality outright for levels of up to 6 bytes;
/// longer levels with equal tags compare their bytes.
#[inline]
pub(crate) fn tag(level: &[u8]) -> u64 {
    let len = u64::try_from(level.len()).unwrap_or(u64::MAX).min(0xFFFF);
    let mut v = 0u64;
    for i in 0..6 {
        v = (v << 8) | u64::from(level.get(i).copied().unwrap_or(0));
    }
    (len << 48) | v
}

/// The edge whose first level is `level` (the lookup's hot path): a binary
/// search over the edges' tags, bytes compared only on a tie of long levels.
#[inline]
pub(crate) fn edge<'e>(edges: &'e [Edge], level: &[u8]) -> Option<&'e Edge> {
    let t = tag(level);
    let i = edges.partition_point(|e| e.tag() < t);
    for e in edges.get(i..).unwrap_or(&[]) {
        if e.tag() != t {
            return None;
        }
        if level.len() <= 6 || e.first_level() == level {
            return Some(e);
        }
    }
    None
}

/// The tag bits a level of `len < 6` bytes keeps (its own bytes).
pub(crate) const KEEP: [u64; 6] = [
    0,
    0xFF00_0000_0000,
    0xFFFF_0000_0000,
    0xFFFF_FF00_0000,
    0xFFFF_FFFF_0000,
    0xFFFF_FFFF_FF00,
];

/// The [`tag`] of the level of `len` bytes starting at `start` in `name`,
/// read as one 8-byte load where the name has 8 bytes from there (the
/// lookup's path: no byte loop). `len` is at most 65,535, as in a Topic Name.
#[inline]
pub(crate) fn tag_at(name: &[u8], start: usize, len: usize) -> u64 {
    // Matched on the `Option`s rather than through `unwrap_or(&[])`, which
    // compiles to conditional moves on the hot path.
    match name.get(start..).and_then(<[u8]>::first_chunk::<8>) {
        Some(b) => {
            let v = u64::from_be_bytes(*b) >> 16;
            // Keep the level's own bytes (at most 6) of the 48.
            let v = v & KEEP.get(len).copied().unwrap_or(0xFFFF_FFFF_FFFF);
            // Levels of a Topic Name are at most 65,535 bytes (the walk
            // splits no longer name), so the length needs no clamping here.
            (((len & 0xFFFF) as u64) << 48) | v
        }
        None => tag_near_end(name, start, len),
    }
}

/// [`tag_at`] for a level within 8 bytes of the name's end: rare, kept out
/// of the walk's code.
#[cold]
#[inline(never)]
fn tag_near_end(name: &[u8], start: usize, len: usize) -> u64 {
    let rest = name.get(start..).unwrap_or(&[]);
    tag(rest.get(..len).unwrap_or(rest))
}

/// Whether two levels of equal length and equal [`tag`] are equal: the
/// bytes after the tag's six compared with at most two 8-byte loads (or
/// 4-byte ones for seven bytes) instead of a `memcmp` call.
#[inline]
pub(crate) fn same_tail(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n <= 6 {
        return true;
    }
    if let (Some(x), Some(y)) = (a.last_chunk::<8>(), b.last_chunk::<8>()) {
        if x != y {
            return false;
        }
        // Bytes 6.. are covered by the last 8 when n <= 14; the first 8
        // cover the rest up to 16.
        return n <= 14
            || match (a.first_chunk::<8>(), b.first_chunk::<8>()) {
                (Some(x), Some(y)) if n <= 16 => x == y,
                _ => a == b,
            };
    }
    // n == 7.
    a.last_chunk::<4>() == b.last_chunk::<4>()
}

/// Whether `e`'s first level is `level`, whose [`tag`] is `t`: equal tags
/// settle levels of up to 6 bytes, so the edge's label is read only for
/// longer ones (its place depends on the variant: a branch saved).
#[inline(always)]
pub(crate) fn is_level(e: &Edge, level: &[u8], t: u64) -> bool {
    e.tag() == t && (level.len() <= 6 || same_tail(e.first_level(), level))
}

/// Whether `a == b`, compared 8 bytes at a time in place rather than by a
/// `memcmp` call (whose spills around the call cost more than the compare
/// on the lookup's path, where a folded label is checked against the
/// name).
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (Some(x), Some(y)) = (a.last_chunk::<8>(), b.last_chunk::<8>()) else {
        return a == b;
    };
    if x != y {
        return false;
    }
    // The last 8 bytes cover what the 8-byte steps leave.
    let (mut a, mut b) = (a, b);
    while let (Some((x, ra)), Some((y, rb))) =
        (a.split_first_chunk::<8>(), b.split_first_chunk::<8>())
    {
        if x != y {
            return false;
        }
        a = ra;
        b = rb;
    }
    true
}

/// Edge lists up to this long are counted through rather than searched.
const SCAN: usize = 16;

/// The edge whose first level is `level`, with the level's [`tag`] given
/// (the lookup's hot path). Small edge lists are scanned, larger ones
/// searched by a branchless binary search over the tags.
#[inline]
pub(crate) fn edge_tagged<'e>(edges: &'e [Edge], level: &[u8], t: u64) -> Option<&'e Edge> {
    let i = if edges.len() <= SCAN {
        // Independent loads and no data-dependent branch: cheaper than the
        // chain of dependent probes of a binary search at this size.
        edges.iter().filter(|e| e.tag() < t).count()
    } else {
        edges.partition_point(|e| e.tag() < t)
    };
    for e in edges.get(i..).unwrap_or(&[]) {
        if e.tag() != t {
            return None;
        }
        if level.len() <= 6 || same_tail(e.first_level(), level) {
            return Some(e);
        }
    }
    None
}

/// [`edge_tagged`] for a short edge list (at most [`WIDE`](crate::index::WIDE)
/// edges): compared one by one, tag first.
#[inline(always)]
pub(crate) fn edge_few<'e>(edges: &'e [Edge], level: &[u8], t: u64) -> Option<&'e Edge> {
    // A plain loop: `Iter::find` is not always inlined (one lookup path
    // for short names and one for long ones call this).
    #[allow(clippy::manual_find)]
    for e in edges {
        if is_level(e, level, t) {
            return Some(e);
        }
    }
    None
}

/// The child reached by a one-level edge labelled `level` (retained index).
#[inline]
pub(crate) fn child(edges: &[Edge], level: &[u8]) -> Option<u32> {
    edge(edges, level).map(Edge::node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_is_32_bytes() {
        assert_eq!(core::mem::size_of::<Edge>(), 32);
    }

    #[test]
    fn inline_and_heap_labels() {
        for l in [
            &b""[..],
            b"a",
            b"temperature",
            &[b'w'; 16],
            &[b'x'; 17],
            &[b'y'; 19],
            &[b'z'; 300],
        ] {
            let e = Edge::new(l, 7);
            assert_eq!(e.label(), l);
            assert_eq!(e.node(), 7);
            assert_eq!(e.heap_bytes() > 0, l.len() > INLINE);
        }
    }

    #[test]
    fn multi_level_labels_know_their_first_level() {
        for (l, f) in [
            ("a/b", "a"),
            ("/b", ""),
            ("room12/device5/temperature", "room12"),
            ("a/", "a"),
        ] {
            let e = Edge::new(l.as_bytes(), 1);
            assert_eq!(e.label(), l.as_bytes());
            assert_eq!(e.first_level(), f.as_bytes());
        }
    }

    #[test]
    fn keys_order_like_labels() {
        let labels = [
            "",
            "a",
            "b",
            "ab",
            "a/b",
            "zz/x",
            "site1",
            "site2",
            "site10",
            "0123456789abcdef",
            "0123456789abcdeg",
            "0123456789abcdef0",
            "0123456789abcdef1",
            "\u{e9}",
            "temperature/x/y",
        ];
        for x in labels {
            for y in labels {
                let (ex, ey) = (Edge::new(x.as_bytes(), 0), Edge::new(y.as_bytes(), 0));
                let by_key = ex
                    .first_key()
                    .cmp(&ey.first_key())
                    .then_with(|| ex.first_level().cmp(ey.first_level()));
                assert_eq!(
                    by_key,
                    cmp_label(ex.first_level(), ey.first_level()),
                    "{x} {y}"
                );
                assert_eq!(ex.first_key(), key(ex.first_level()), "{x}");
                // Tags never order two levels against their label order.
                let t = ex.tag().cmp(&ey.tag());
                if t.is_ne() {
                    assert_eq!(t, cmp_label(ex.first_level(), ey.first_level()), "{x} {y}");
                }
            }
        }
    }

    #[test]
    fn tag_at_and_same_tail_agree_with_bytes() {
        let name =
            b"a/bb/ccc/dddd/eeeee/ffffff/ggggggg/hhhhhhhh/0123456789abcdef/0123456789abcdefg/x";
        let mut s = 0;
        for level in name.split(|&c| c == b'/') {
            assert_eq!(tag_at(name, s, level.len()), tag(level));
            s += level.len() + 1;
        }
        let pool: [&[u8]; 12] = [
            b"",
            b"abcdef",
            b"abcdefg",
            b"abcdefh",
            b"abcdefgh",
            b"abcdefgi",
            b"abcdefghijklmn",
            b"abcdefghijklmo",
            b"abcdefghijklmnop",
            b"abcdefghijklmnoq",
            b"abcdefghijklmnopqrstu",
            b"abcdefghijklmnopqrstv",
        ];
        for a in pool {
            for b in pool {
                if a.len() == b.len() && tag(a) == tag(b) {
                    assert_eq!(same_tail(a, b), a == b);
                }
            }
        }
        // Also with the 8-byte load at the name's very end.
        for l in [&b""[..], b"a", b"abcde", b"abcdefg"] {
            assert_eq!(tag_at(l, 0, l.len()), tag(l));
        }
    }

    #[test]
    fn same_bytes_is_slice_equality() {
        let base: alloc::vec::Vec<u8> = (0..40u8).collect();
        for n in 0..40 {
            let a = &base[..n];
            assert!(same_bytes(a, a));
            assert!(!same_bytes(a, &base[..n + 1]));
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 0x80;
                assert!(!same_bytes(a, &b), "{n} {at}");
            }
        }
    }

    #[test]
    fn find_in_sorted_edges() {
        let mut edges: alloc::vec::Vec<Edge> = alloc::vec::Vec::new();
        for (i, l) in ["b", "a", "", "abc", "ab", "é"].iter().enumerate() {
            let Err(at) = find(&edges, l.as_bytes()) else {
                panic!("duplicate")
            };
            edges.insert(at, Edge::new(l.as_bytes(), i as u32));
        }
        assert_eq!(child(&edges, b"ab"), Some(4));
        assert_eq!(child(&edges, b""), Some(2));
        assert_eq!(child(&edges, "é".as_bytes()), Some(5));
        assert_eq!(child(&edges, b"zz"), None);
    }
}
