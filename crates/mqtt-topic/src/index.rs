//! A hashed index over the edges of one wide node of the subscription tree.
//!
//! A node with more than [`WIDE`] exact children keeps, next to its sorted
//! edge list, an open-addressing table (linear probing, at most half full)
//! from a keyed hash of each edge's first level to the edge's position. A
//! lookup then costs one hash of the level and, nearly always, one slot and
//! one edge read, where a binary search over 500 edges costs 9 dependent
//! reads.
//!
//! Topic levels come from the network, so an attacker may pick levels that
//! collide. Two things bound the damage:
//!
//! - the hash is keyed by the tree's seed (a folded 64x64->128-bit multiply
//!   of two keyed words, the level's tag and its last 8 bytes, for levels
//!   of up to 14 bytes, which those two words hold whole; one multiply per
//!   8 bytes for longer ones; in the manner of foldhash's fallback): with a
//!   secret seed, colliding levels cannot be computed offline;
//! - whatever the hash does, a lookup reads at most `probe_limit(slots)`
//!   slots (`2 * log2(slots) + 4`, about what a binary search reads). An
//!   insert that would place an edge further than that from its home slot
//!   drops the table instead, and the node falls back to the binary search
//!   over its sorted edges (the edges stay sorted either way, so the
//!   fallback needs no conversion). The table is tried again when the node
//!   has doubled in width. A flood of colliding levels therefore costs at
//!   most what the sorted list costs, never a linear scan.
//!
//! Each slot is a `u64`: the top 32 bits of the level's hash (which also
//! give the home slot) and the edge's position plus one (0: empty), so a
//! probe reads edges only on a 32-bit hash match, and verifies the level
//! exactly (its tag, then its bytes) before reporting it.

use crate::edge::{is_level, Edge};
use alloc::vec::Vec;

/// Nodes with more exact children than this get a hashed index.
pub(crate) const WIDE: usize = 8;

/// The hash seed of a tree made by `SubscriptionTree::new()`.
pub(crate) const DEFAULT_SEED: u64 = 0x243F_6A88_85A3_08D3;

/// Multiplier constants (digits of pi, as in many multiply hashes).
const K1: u64 = 0x1319_8A2E_0370_7344;
const K2: u64 = 0xA409_3822_299F_31D0;
const K3: u64 = 0x082E_FA98_EC4E_6C89;

/// The 64x64-bit product folded to 64 bits (high half xor low half).
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Up to 8 bytes of `name` from `at`, little-endian, zero past `len`
/// (`len <= 8`). One load when the name has 8 bytes from `at`.
#[inline]
fn word(name: &[u8], at: usize, len: usize) -> u64 {
    // Matched on the `Option`s rather than through `unwrap_or(&[])`, which
    // compiles to conditional moves on the hot path.
    match name.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        Some(b) => {
            let v = u64::from_le_bytes(*b);
            if len >= 8 {
                v
            } else {
                v & ((1u64 << (8 * len as u32)) - 1)
            }
        }
        None => word_near_end(name, at, len),
    }
}

/// [`word`] within 8 bytes of the name's end: rare, kept out of the
/// lookup's code.
#[cold]
#[inline(never)]
fn word_near_end(name: &[u8], at: usize, len: usize) -> u64 {
    name.get(at..)
        .unwrap_or(&[])
        .iter()
        .take(len)
        .enumerate()
        .fold(0u64, |v, (i, &c)| v | (u64::from(c) << (8 * i as u32)))
}

/// The keyed hash of the level of `len` bytes at `start` in `name`: one
/// folded multiply per 8 bytes, seed and length mixed in.
#[inline(always)]
pub(crate) fn hash_at(seed: u64, name: &[u8], start: usize, len: usize) -> u64 {
    let mut h = seed ^ (len as u64).wrapping_mul(K3);
    // Most levels are at most 16 bytes: one or two words, no loop.
    if len <= 8 {
        return fold_mul(h ^ word(name, start, len), K1);
    }
    if len <= 16 {
        h = fold_mul(h ^ word(name, start, 8), K2 ^ seed);
        return fold_mul(h ^ word(name, start + 8, len - 8), K1);
    }
    let mut at = 0usize;
    while at + 8 < len {
        h = fold_mul(h ^ word(name, start + at, 8), K2 ^ seed);
        at += 8;
    }
    fold_mul(h ^ word(name, start + at, len - at), K1)
}

/// The keyed hash of the level of `len` bytes at `start` in `name`, whose
/// [`tag`](crate::edge::tag) is `t`, as a wide node's index keys it. A
/// level of up to 14 bytes is whole in its tag (its length and first 6
/// bytes) and its last 8 bytes (for 7 bytes: its 7th byte), so one folded
/// multiply of those two keyed words hashes it, with the tag the lookup has at hand: no length mix and
/// no second multiply. Longer levels take [`hash_at`] (the lengths in the
/// tag and in `hash_at` keep the two kinds apart, up to the keyed
/// multiplies).
#[inline(always)]
pub(crate) fn level_hash_at(seed: u64, name: &[u8], start: usize, len: usize, t: u64) -> u64 {
    if len > 14 {
        return hash_at(seed, name, start, len);
    }
    let rest = match len {
        0..=6 => 0,
        // The tag holds the first 6 bytes: the 7th is the rest.
        7 => u64::from(name.get(start + 6).copied().unwrap_or(0)),
        _ => word(name, start + len - 8, 8),
    };
    fold_mul(t ^ seed, rest ^ K2 ^ seed.rotate_left(32))
}

/// [`level_hash_at`] of a whole level.
#[inline]
pub(crate) fn level_hash(seed: u64, level: &[u8]) -> u64 {
    level_hash_at(seed, level, 0, level.len(), crate::edge::tag(level))
}

/// [`hash`] computed word by word, for a caller that reads the text's
/// 8-byte words anyway (the lookup's split of a name): start with the
/// text's length, [`mix`](Stream::mix) every word but the last, and
/// [`finish`](Stream::finish) with the last (zero past the text's end; 0
/// for an empty text). Gives what `hash(seed, text)` gives.
pub(crate) struct Stream {
    h: u64,
    k2: u64,
}

impl Stream {
    #[inline(always)]
    pub(crate) fn new(seed: u64, len: usize) -> Stream {
        Stream {
            h: seed ^ (len as u64).wrapping_mul(K3),
            k2: K2 ^ seed,
        }
    }

    /// A full word that is not the text's last.
    #[inline(always)]
    pub(crate) fn mix(&mut self, word: u64) {
        self.h = fold_mul(self.h ^ word, self.k2);
    }

    /// The hash, given the last (possibly partial) word.
    #[inline(always)]
    pub(crate) fn finish(&self, word: u64) -> u64 {
        fold_mul(self.h ^ word, K1)
    }
}

/// The keyed hash of a level.
#[inline]
pub(crate) fn hash(seed: u64, level: &[u8]) -> u64 {
    hash_at(seed, level, 0, level.len())
}

/// Empties slot `hole` of a linear-probing table whose slots hold the
/// top 32 bits of their hash above a value (0: empty) and whose length is a
/// power of two, moving later entries of its run back (backward-shift
/// deletion), so no entry ends further from its home than before. Shared
/// by the wide-node index and the exact-filter table.
pub(crate) fn backward_shift(slots: &mut [u64], mut hole: usize) {
    let mask = slots.len().wrapping_sub(1);
    let mut j = hole;
    loop {
        j = (j + 1) & mask;
        let s = slots.get(j).copied().unwrap_or(0);
        if s == 0 {
            break;
        }
        let home = ((s >> 32) as usize) & mask;
        // Move `s` into the hole unless its home lies in (hole, j].
        if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
            if let Some(d) = slots.get_mut(hole) {
                *d = s;
            }
            hole = j;
        }
    }
    if let Some(d) = slots.get_mut(hole) {
        *d = 0;
    }
}

/// Most slots a lookup reads in a table of `slots` slots.
#[inline]
fn probe_limit(slots: usize) -> usize {
    2 * (usize::BITS - slots.leading_zeros()) as usize + 4
}

/// Table size for `width` edges: a power of two, at most half full.
#[inline]
fn size_for(width: usize) -> usize {
    (2 * width).next_power_of_two().max(16)
}

/// The hashed index of one wide node's edges (see the module docs).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Index {
    /// `hash >> 32 << 32 | (position + 1)`, or 0; empty when there is no
    /// table (a narrow node, or a table dropped for collisions).
    slots: Vec<u64>,
    /// The largest distance of an entry from its home slot.
    dmax: u32,
    /// After a table was dropped: the width at which to try again.
    retry: u32,
    /// The tree's hash seed.
    seed: u64,
}

impl Index {
    /// An index without a table, hashing with `seed`.
    pub(crate) fn new(seed: u64) -> Index {
        Index {
            seed,
            ..Index::default()
        }
    }

    /// Whether lookups can use the table.
    #[inline]
    pub(crate) fn live(&self) -> bool {
        !self.slots.is_empty()
    }

    /// The keyed hash of `level` ([`level_hash`]).
    #[inline]
    pub(crate) fn hash(&self, level: &[u8]) -> u64 {
        level_hash(self.seed, level)
    }

    /// Heap bytes of the table.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * 8
    }

    /// The edge whose first level is `level`, given its
    /// [`tag`](crate::edge::tag) `t` and the top 32 bits `hi` of its hash.
    /// Reads at most `dmax + 1` slots.
    #[inline(always)]
    pub(crate) fn find<'e>(
        &self,
        edges: &'e [Edge],
        level: &[u8],
        t: u64,
        hi: u32,
    ) -> Option<&'e Edge> {
        let mask = self.slots.len().wrapping_sub(1);
        let mut i = hi as usize;
        let mut left = self.dmax;
        loop {
            let s = *self.slots.get(i & mask)?;
            if s == 0 {
                return None;
            }
            if (s >> 32) as u32 == hi {
                let e = edges.get((s as u32 as usize).wrapping_sub(1))?;
                if is_level(e, level, t) {
                    return Some(e);
                }
            }
            if left == 0 {
                return None;
            }
            left -= 1;
            i += 1;
        }
    }

    /// Drops the table (the node is narrow again).
    pub(crate) fn clear(&mut self) {
        *self = Index::new(self.seed);
    }

    /// Builds the table afresh for `edges` (at the canonical size), or
    /// leaves none if the node is narrow or an entry would land too far
    /// from its home slot.
    pub(crate) fn rebuild(&mut self, edges: &[Edge]) {
        let seed = self.seed;
        self.clear();
        if edges.len() <= WIDE {
            return;
        }
        let size = size_for(edges.len());
        self.slots = alloc::vec![0; size];
        for (p, e) in edges.iter().enumerate() {
            if !self.place(level_hash(seed, e.first_level()), p) {
                self.give_up(edges.len());
                return;
            }
        }
    }

    /// Stores position `p` under hash `h`; false if it would land further
    /// than the probe limit from its home slot.
    fn place(&mut self, h: u64, p: usize) -> bool {
        let mask = self.slots.len().wrapping_sub(1);
        let limit = probe_limit(self.slots.len());
        let mut i = ((h >> 32) as usize) & mask;
        for d in 0..limit {
            match self.slots.get_mut(i) {
                Some(s) if *s == 0 => {
                    *s = (h >> 32 << 32) | (p as u64 + 1);
                    self.dmax = self.dmax.max(d as u32);
                    return true;
                }
                Some(_) => i = (i + 1) & mask,
                None => return false,
            }
        }
        false
    }

    /// Drops the table after too many collisions; tries again at twice the
    /// width.
    fn give_up(&mut self, width: usize) {
        self.slots = Vec::new();
        self.dmax = 0;
        self.retry = u32::try_from(width.saturating_mul(2)).unwrap_or(u32::MAX);
    }

    /// Drops the table as if collisions had made it give up.
    #[cfg(test)]
    pub(crate) fn drop_for_test(&mut self, width: usize) {
        self.give_up(width);
    }

    /// After `edges.insert(at, ..)`.
    pub(crate) fn inserted(&mut self, edges: &[Edge], at: usize) {
        let seed = self.seed;
        let w = edges.len();
        if w <= WIDE {
            return;
        }
        if !self.live() || 2 * w > self.slots.len() {
            if self.live() || w as u64 >= u64::from(self.retry) {
                self.rebuild(edges);
            }
            return;
        }
        // Positions at and after `at` moved up by one.
        for s in &mut self.slots {
            if *s != 0 && (*s as u32 as usize) > at {
                *s += 1;
            }
        }
        let h = edges
            .get(at)
            .map_or(0, |e| level_hash(seed, e.first_level()));
        if !self.place(h, at) {
            self.give_up(w);
        }
    }

    /// After `edges.remove(at)` of an edge whose first level hashed to `h`.
    pub(crate) fn removed(&mut self, edges: &[Edge], at: usize, h: u64) {
        let w = edges.len();
        if w <= WIDE {
            self.clear();
            return;
        }
        if !self.live() {
            return;
        }
        if self.slots.len() > size_for(w) * 2 {
            self.rebuild(edges);
            return;
        }
        let mask = self.slots.len() - 1;
        // Find the entry of position `at` and empty its slot, then move
        // later entries of the run back (backward-shift deletion), so no
        // entry is further from its home than before.
        let mut i = ((h >> 32) as usize) & mask;
        let mut hole = None;
        for _ in 0..=self.dmax {
            match self.slots.get(i) {
                Some(&s) if s != 0 && (s as u32 as usize) == at + 1 => {
                    hole = Some(i);
                    break;
                }
                Some(&s) if s != 0 => i = (i + 1) & mask,
                _ => break,
            }
        }
        let Some(hole) = hole else {
            // Not found: cannot happen for a consistent table; rebuild.
            self.rebuild(edges);
            return;
        };
        backward_shift(&mut self.slots, hole);
        // Positions after `at` moved down by one.
        for s in &mut self.slots {
            if *s != 0 && (*s as u32 as usize) > at + 1 {
                *s -= 1;
            }
        }
    }

    /// Checks that the table maps every edge to its position (for
    /// `check_invariants`).
    pub(crate) fn check(&self, edges: &[Edge]) -> Result<(), &'static str> {
        let seed = self.seed;
        if !self.live() {
            return if edges.len() > WIDE && self.retry == 0 {
                Err("wide node without an index or a retry width")
            } else {
                Ok(())
            };
        }
        if edges.len() <= WIDE {
            return Err("index on a narrow node");
        }
        if 2 * edges.len() > self.slots.len() {
            return Err("index more than half full");
        }
        if self.slots.iter().filter(|&&s| s != 0).count() != edges.len() {
            return Err("index entries differ from edges");
        }
        for e in edges {
            let l = e.first_level();
            let h = level_hash(seed, l);
            let found = self.find(edges, l, crate::edge::tag(l), (h >> 32) as u32);
            if !found.is_some_and(|f| core::ptr::eq(f, e)) {
                return Err("index does not find an edge");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec::Vec;

    fn edges(n: usize) -> Vec<Edge> {
        let mut v: Vec<Edge> = (0..n)
            .map(|i| Edge::new(format!("site{i}").as_bytes(), i as u32))
            .collect();
        v.sort_by(|a, b| crate::edge::cmp_label(a.first_level(), b.first_level()));
        v
    }

    #[test]
    fn hash_at_agrees_with_hash_of_the_level() {
        let name = b"a/bb/0123456789abcdef0/site42/temperature/x";
        let mut s = 0;
        for level in name.split(|&c| c == b'/') {
            assert_eq!(hash_at(7, name, s, level.len()), hash(7, level));
            s += level.len() + 1;
        }
        assert_ne!(hash(1, b"abc"), hash(2, b"abc"));
        // The index's hash, from the tag, at every level length 0-40 and
        // near the name's end.
        let long = b"0123456789abcdefghijklmnopqrstuvwxyzABCD/x";
        for n in 0..=40 {
            for name in [&long[..], &long[..n]] {
                let level = &long[..n];
                let t = crate::edge::tag(level);
                assert_eq!(level_hash_at(7, name, 0, n, t), level_hash(7, level));
            }
        }
        let mut s = 0;
        for level in name.split(|&c| c == b'/') {
            let t = crate::edge::tag(level);
            assert_eq!(
                level_hash_at(7, name, s, level.len(), t),
                level_hash(7, level)
            );
            s += level.len() + 1;
        }
        // Every byte of a level of up to 14 bytes counts.
        for n in 1..=20 {
            let a = &long[..n];
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 1;
                assert_ne!(level_hash(7, a), level_hash(7, &b), "{n} {at}");
            }
        }
        assert_ne!(level_hash(1, b"abc"), level_hash(2, b"abc"));
        assert_ne!(level_hash(1, b""), level_hash(1, b"\0"));
        assert_ne!(hash(1, b""), hash(1, b"\0"));
    }

    #[test]
    fn built_index_finds_every_edge() {
        for n in [WIDE + 1, 17, 100, 1000] {
            let es = edges(n);
            let mut ix = Index::new(3);
            ix.rebuild(&es);
            assert!(ix.live());
            ix.check(&es).unwrap();
            let l = b"nope";
            assert!(ix
                .find(&es, l, crate::edge::tag(l), (level_hash(3, l) >> 32) as u32)
                .is_none());
        }
    }

    #[test]
    fn colliding_levels_fall_back_to_no_index() {
        // A seed under which every level hashes alike is impossible to
        // build, so collide by hand: place everything at one home slot.
        let es = edges(40);
        let mut ix = Index {
            slots: alloc::vec![0; size_for(40)],
            ..Index::default()
        };
        let mut ok = true;
        for p in 0..40 {
            ok &= ix.place(0xABCD << 32, p);
        }
        assert!(!ok, "the probe limit stops a single-bucket flood");
        assert!(probe_limit(ix.slots.len()) < 40);
        ix.give_up(40);
        assert!(!ix.live());
        assert_eq!(ix.retry, 80);
        ix.check(&es).unwrap();
    }
}
