//! Nodes of a tree held in one `Vec`, linked by `u32` indices.
//!
//! Indices halve the size of links compared with boxes, keep nodes close in
//! memory, make dropping a 65,535-level tree flat (no recursive `Drop`), and
//! let the subscription tree walk back to a parent without a stack.
//!
//! Freed slots go on a free list and are reused. When more than half of the
//! slots are free the arena is compacted (renumbered in depth-first order,
//! every vector trimmed), so memory follows the live size; when the last node
//! goes, the arena frees everything.

use alloc::vec::Vec;

/// "No node".
pub(crate) const NIL: u32 = u32::MAX;
/// The root is always slot 0 of a non-empty arena.
pub(crate) const ROOT: u32 = 0;

/// What the arena needs to know about a node to compact the tree.
pub(crate) trait ArenaNode: Default {
    /// Calls `f` with every child index.
    fn for_each_child(&self, f: impl FnMut(u32));
    /// Rewrites every link (children and parent) through `map`.
    fn remap(&mut self, map: &[u32]);
    /// Trims spare capacity of the node's vectors.
    fn shrink(&mut self);
    /// Whether the node holds nothing (no children, no data).
    fn is_empty(&self) -> bool;
    /// After a compaction, which numbers every parent before its children:
    /// lets the nodes recompute what they summarize of their subtrees.
    fn after_compact(_nodes: &mut [Self]) {}
}

/// A node arena with a free list.
#[derive(Clone, Debug)]
pub(crate) struct Arena<T> {
    pub(crate) nodes: Vec<T>,
    free: Vec<u32>,
}

impl<T: ArenaNode> Arena<T> {
    pub(crate) const fn new() -> Self {
        Arena {
            nodes: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Live nodes (the root included).
    pub(crate) fn live(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    /// Creates the root if the arena is empty.
    pub(crate) fn ensure_root(&mut self) {
        if self.nodes.is_empty() {
            self.nodes.push(T::default());
        }
    }

    #[inline]
    pub(crate) fn get(&self, i: u32) -> Option<&T> {
        self.nodes.get(i as usize)
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        self.nodes.get_mut(i as usize)
    }

    /// Stores `node`, reusing a free slot if there is one.
    ///
    /// More than `u32::MAX - 1` nodes (over 300 GB of them) is treated like
    /// any other allocation failure: `handle_alloc_error`, as `Vec` does.
    pub(crate) fn alloc(&mut self, node: T) -> u32 {
        if let Some(i) = self.free.pop() {
            if let Some(slot) = self.nodes.get_mut(i as usize) {
                *slot = node;
                return i;
            }
        }
        match u32::try_from(self.nodes.len()) {
            Ok(i) if i < NIL => {
                if self.nodes.len() == self.nodes.capacity() {
                    // Grow by an eighth, not double: node slots are most of
                    // the tree's memory, and on large vectors `realloc`
                    // moves pages rather than bytes.
                    self.nodes.reserve_exact((self.nodes.len() / 8).max(4));
                }
                self.nodes.push(node);
                i
            }
            _ => alloc::alloc::handle_alloc_error(core::alloc::Layout::new::<T>()),
        }
    }

    /// Frees a slot: its node's heap memory is released now, the slot is
    /// reused by the next `alloc`.
    pub(crate) fn release(&mut self, i: u32) {
        if let Some(slot) = self.nodes.get_mut(i as usize) {
            *slot = T::default();
            self.free.push(i);
        }
    }

    /// After removals: drops everything if only an empty root remains, and
    /// compacts when more than half the slots are free.
    pub(crate) fn settle(&mut self) {
        let root_empty = self.get(ROOT).is_none_or(T::is_empty);
        if self.live() <= 1 && root_empty {
            self.nodes = Vec::new();
            self.free = Vec::new();
        } else if self.free.len() > 16 && self.free.len() * 2 > self.nodes.len() {
            self.compact();
        }
    }

    /// Renumbers live nodes in depth-first order into a vector of exactly
    /// the live size, and trims every node. Two trees holding the same
    /// subscriptions are laid out identically afterwards.
    pub(crate) fn compact(&mut self) {
        if self.nodes.is_empty() {
            self.free = Vec::new();
            return;
        }
        let mut map = alloc::vec![NIL; self.nodes.len()];
        let mut order: Vec<u32> = Vec::with_capacity(self.live());
        let mut stack = alloc::vec![ROOT];
        let mut children = Vec::new();
        while let Some(i) = stack.pop() {
            let Some(slot) = map.get_mut(i as usize) else {
                continue;
            };
            if *slot != NIL {
                continue;
            }
            // `order.len() < nodes.len() <= u32::MAX` (checked in `alloc`).
            *slot = u32::try_from(order.len()).unwrap_or(NIL);
            order.push(i);
            if let Some(n) = self.nodes.get(i as usize) {
                children.clear();
                n.for_each_child(|c| children.push(c));
                // Reversed so children are numbered in their own order.
                stack.extend(children.iter().rev());
            }
        }
        let mut fresh: Vec<T> = Vec::with_capacity(order.len());
        for &i in &order {
            if let Some(slot) = self.nodes.get_mut(i as usize) {
                let mut n = core::mem::take(slot);
                n.remap(&map);
                n.shrink();
                fresh.push(n);
            }
        }
        T::after_compact(&mut fresh);
        self.nodes = fresh;
        self.free = Vec::new();
    }

    /// Heap bytes held by the arena itself (the node slots and free list).
    pub(crate) fn slot_bytes(&self) -> usize {
        self.nodes.capacity() * core::mem::size_of::<T>() + self.free.capacity() * 4
    }
}

/// Maps an index through a compaction map (`NIL` stays `NIL`).
#[inline]
pub(crate) fn remap_index(i: u32, map: &[u32]) -> u32 {
    if i == NIL {
        NIL
    } else {
        map.get(i as usize).copied().unwrap_or(NIL)
    }
}

/// Grows `v` by one slot with bounded slack: exact for the first four
/// elements (most nodes have one child and one subscriber), by half after.
#[inline]
pub(crate) fn reserve_one<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() {
        let extra = if v.len() < 4 { 1 } else { v.len() / 2 };
        v.reserve_exact(extra);
    }
}

/// Gives back memory after a removal: all of it when empty, half when at
/// most a quarter is used.
#[inline]
pub(crate) fn trim<T>(v: &mut Vec<T>) {
    if v.is_empty() {
        *v = Vec::new();
    } else if v.capacity() > 8 && v.len() * 4 <= v.capacity() {
        v.shrink_to(v.len() * 2);
    }
}
