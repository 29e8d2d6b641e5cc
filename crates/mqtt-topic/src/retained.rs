//! The retained-message index: stored Topic Names, queried by filter.

use crate::arena::{remap_index, reserve_one, trim, Arena, ArenaNode, NIL, ROOT};
use crate::edge::{child, find, Edge};
use crate::{TopicFilter, TopicName};
use alloc::vec::Vec;
use core::fmt;

/// "No further level" as a position in a filter.
const END: usize = usize::MAX;

/// Values (retained messages) stored by Topic Name, found by Topic Filter.
///
/// The reverse of [`SubscriptionTree`](crate::SubscriptionTree): a new
/// subscription asks which stored names its filter matches.
/// [`for_each_match`](Self::for_each_match) walks only the branches the
/// filter can match: an exact level is one binary search, `+` visits the
/// children of one node, `#` the subtree below one node. Its cost follows the
/// part of the index that matches, not the index's size. Topics beginning
/// with `$` are not matched by a leading wildcard (MQTT-4.7.2-1).
///
/// ```
/// use mqtt_topic::{RetainedIndex, TopicFilter, TopicName};
///
/// let mut idx = RetainedIndex::new();
/// for (t, v) in [("home/kitchen/temp", 21), ("home/hall/temp", 19), ("$SYS/load", 3)] {
///     idx.insert(TopicName::try_from(t).unwrap(), v);
/// }
/// let mut got = Vec::new();
/// idx.for_each_match(&TopicFilter::try_from("home/+/temp").unwrap(), |name, v| {
///     got.push((name.to_string(), *v))
/// });
/// got.sort();
/// assert_eq!(got, [("home/hall/temp".to_string(), 19), ("home/kitchen/temp".to_string(), 21)]);
///
/// let mut n = 0;
/// idx.for_each_match(&TopicFilter::try_from("#").unwrap(), |_, _| n += 1);
/// assert_eq!(n, 2); // not $SYS/load
/// ```
pub struct RetainedIndex<V> {
    arena: Arena<RNode<V>>,
    len: usize,
}

#[derive(Clone, Debug)]
struct RNode<V> {
    /// Children, sorted by label.
    edges: Vec<Edge>,
    /// The value stored for the name that ends here, with that name.
    value: Option<(TopicName, V)>,
}

/// A step of [`RetainedIndex::for_each_match`].
#[derive(Clone, Copy)]
enum Task {
    /// Match the filter from position `.1` at node `.0`.
    Visit(u32, usize),
    /// Report node `.0` and everything below it (a `#`).
    All(u32),
}

impl<V> RetainedIndex<V> {
    /// An empty index. Allocates nothing.
    pub const fn new() -> Self {
        RetainedIndex {
            arena: Arena::new(),
            len: 0,
        }
    }

    /// Number of stored names.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of live nodes (0 when empty).
    pub fn node_count(&self) -> usize {
        self.arena.live()
    }

    /// Stores `value` for `name`, replacing and returning the previous one.
    pub fn insert(&mut self, name: TopicName, value: V) -> Option<V> {
        self.arena.ensure_root();
        let mut node = ROOT;
        for level in name.as_bytes().split(|&c| c == b'/') {
            let found = match self.arena.get(node) {
                Some(n) => find(&n.edges, level),
                None => return None,
            };
            node = match found {
                Ok(i) => self
                    .arena
                    .get(node)
                    .and_then(|n| n.edges.get(i))
                    .map_or(NIL, Edge::node),
                Err(at) => {
                    let c = self.arena.alloc(RNode::default());
                    if let Some(n) = self.arena.get_mut(node) {
                        reserve_one(&mut n.edges);
                        n.edges.insert(at, Edge::new(level, c));
                    }
                    c
                }
            };
        }
        let n = self.arena.get_mut(node)?;
        let old = n.value.replace((name, value)).map(|(_, v)| v);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// The value stored for `name`.
    pub fn get(&self, name: &TopicName) -> Option<&V> {
        let mut node = ROOT;
        for level in name.as_bytes().split(|&c| c == b'/') {
            node = child(&self.arena.get(node)?.edges, level)?;
        }
        self.arena.get(node)?.value.as_ref().map(|(_, v)| v)
    }

    /// Removes the value stored for `name`, freeing every node left empty.
    pub fn remove(&mut self, name: &TopicName) -> Option<V> {
        let mut node = ROOT;
        // The highest edge below which the path holds nothing else.
        let mut cut: Option<(u32, u32, &[u8])> = None;
        for level in name.as_bytes().split(|&c| c == b'/') {
            let n = self.arena.get(node)?;
            let next = child(&n.edges, level)?;
            if node == ROOT || n.value.is_some() || n.edges.len() > 1 {
                cut = Some((node, next, level));
            }
            node = next;
        }
        let leaf = node;
        let n = self.arena.get_mut(leaf)?;
        let (_, v) = n.value.take()?;
        self.len -= 1;
        if n.edges.is_empty() {
            if let Some((parent, first, level)) = cut {
                if let Some(p) = self.arena.get_mut(parent) {
                    if let Ok(i) = find(&p.edges, level) {
                        p.edges.remove(i);
                        trim(&mut p.edges);
                    }
                }
                let mut node = first;
                loop {
                    let next = match self.arena.get(node) {
                        Some(n) if node != leaf => n.edges.first().map_or(NIL, Edge::node),
                        _ => NIL,
                    };
                    self.arena.release(node);
                    if next == NIL {
                        break;
                    }
                    node = next;
                }
            }
        }
        self.arena.settle();
        Some(v)
    }

    /// Calls `f` with every stored name that `filter` matches, and its
    /// value. The work done is proportional to the branches of the index
    /// the filter reaches; the only allocation is the walk's own stack.
    pub fn for_each_match<'a, F>(&'a self, filter: &TopicFilter, mut f: F)
    where
        F: FnMut(&'a TopicName, &'a V),
    {
        if self.arena.nodes.is_empty() {
            return;
        }
        let filter = filter.as_bytes();
        let mut stack = alloc::vec![Task::Visit(ROOT, 0)];
        while let Some(task) = stack.pop() {
            match task {
                Task::All(i) => {
                    let Some(n) = self.arena.get(i) else { continue };
                    if let Some((k, v)) = &n.value {
                        f(k, v);
                    }
                    stack.extend(n.edges.iter().map(|e| Task::All(e.node())));
                }
                Task::Visit(i, pos) => {
                    let Some(n) = self.arena.get(i) else { continue };
                    if pos == END {
                        if let Some((k, v)) = &n.value {
                            f(k, v);
                        }
                        continue;
                    }
                    let rest = filter.get(pos..).unwrap_or(&[]);
                    let (level, next) = match rest.iter().position(|&c| c == b'/') {
                        Some(j) => (rest.get(..j).unwrap_or(&[]), pos + j + 1),
                        None => (rest, END),
                    };
                    // MQTT-4.7.2-1: a leading wildcard skips '$' topics.
                    let allowed = |e: &&Edge| i != ROOT || e.label().first() != Some(&b'$');
                    if level == b"#" {
                        // "a/#" matches "a" itself too.
                        if let Some((k, v)) = &n.value {
                            f(k, v);
                        }
                        stack.extend(n.edges.iter().filter(allowed).map(|e| Task::All(e.node())));
                    } else if level == b"+" {
                        stack.extend(
                            n.edges
                                .iter()
                                .filter(allowed)
                                .map(|e| Task::Visit(e.node(), next)),
                        );
                    } else if let Some(c) = child(&n.edges, level) {
                        stack.push(Task::Visit(c, next));
                    }
                }
            }
        }
    }

    /// Renumbers and trims the index so it holds no spare capacity (it also
    /// does this by itself when more than half its slots are free).
    pub fn shrink_to_fit(&mut self) {
        self.arena.compact();
    }

    /// Heap bytes the index holds, by its own accounting (the names' and
    /// values' own buffers not included).
    pub fn heap_bytes(&self) -> usize {
        self.arena.slot_bytes()
            + self
                .arena
                .nodes
                .iter()
                .map(|n| {
                    n.edges.capacity() * core::mem::size_of::<Edge>()
                        + n.edges.iter().map(Edge::heap_bytes).sum::<usize>()
                })
                .sum::<usize>()
    }
}

impl<V> Default for RNode<V> {
    fn default() -> Self {
        RNode {
            edges: Vec::new(),
            value: None,
        }
    }
}

impl<V> ArenaNode for RNode<V> {
    fn for_each_child(&self, mut f: impl FnMut(u32)) {
        for e in &self.edges {
            f(e.node());
        }
    }

    fn remap(&mut self, map: &[u32]) {
        for e in &mut self.edges {
            e.set_node(remap_index(e.node(), map));
        }
    }

    fn shrink(&mut self) {
        self.edges.shrink_to_fit();
    }

    fn is_empty(&self) -> bool {
        self.edges.is_empty() && self.value.is_none()
    }
}

impl<V> Default for RetainedIndex<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Clone> Clone for RetainedIndex<V> {
    fn clone(&self) -> Self {
        RetainedIndex {
            arena: self.arena.clone(),
            len: self.len,
        }
    }
}

impl<V> fmt::Debug for RetainedIndex<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetainedIndex")
            .field("len", &self.len)
            .field("nodes", &self.arena.live())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::{String, ToString};
    use alloc::vec;

    fn names(idx: &RetainedIndex<u32>, filter: &str) -> Vec<String> {
        let mut v = Vec::new();
        idx.for_each_match(&TopicFilter::try_from(filter).unwrap(), |n, _| {
            v.push(n.to_string())
        });
        v.sort();
        v
    }

    fn idx(topics: &[&str]) -> RetainedIndex<u32> {
        let mut idx = RetainedIndex::new();
        for (i, t) in topics.iter().enumerate() {
            idx.insert(TopicName::try_from(*t).unwrap(), i as u32);
        }
        idx
    }

    #[test]
    fn spec_examples_reversed() {
        let i = idx(&[
            "sport/tennis/player1",
            "sport/tennis/player1/ranking",
            "sport/tennis/player1/score/wimbledon",
            "sport",
            "sport/",
            "/finance",
            "$SYS/monitor/Clients",
        ]);
        assert_eq!(names(&i, "sport/tennis/player1/#").len(), 3);
        assert_eq!(names(&i, "sport/#").len(), 5);
        assert_eq!(names(&i, "sport/+"), vec!["sport/"]);
        assert_eq!(names(&i, "+/+"), vec!["/finance", "sport/"]);
        assert_eq!(names(&i, "/+"), vec!["/finance"]);
        assert_eq!(names(&i, "+"), vec!["sport"]);
        assert_eq!(names(&i, "#").len(), 6);
        assert_eq!(names(&i, "$SYS/#"), vec!["$SYS/monitor/Clients"]);
        assert_eq!(names(&i, "+/monitor/Clients"), Vec::<String>::new());
        assert_eq!(names(&i, "sport"), vec!["sport"]);
    }

    #[test]
    fn replace_remove_and_free() {
        let mut i = idx(&["a/b/c", "a/b", "a//"]);
        let n = |s| TopicName::try_from(s).unwrap();
        assert_eq!(i.insert(n("a/b"), 9), Some(1));
        assert_eq!(i.get(&n("a/b")), Some(&9));
        assert_eq!(i.remove(&n("a/b/c")), Some(0));
        assert_eq!(i.remove(&n("a/b/c")), None);
        assert_eq!(i.remove(&n("a")), None);
        assert_eq!(names(&i, "a/#"), vec!["a//", "a/b"]);
        assert_eq!(i.remove(&n("a/b")), Some(9));
        assert_eq!(i.remove(&n("a//")), Some(2));
        assert_eq!(i.len(), 0);
        assert_eq!(i.node_count(), 0);
        assert_eq!(i.heap_bytes(), 0);
    }

    #[test]
    fn deep_names_have_no_recursion() {
        let deep = "a/".repeat(32_767) + "a";
        let i = idx(&[&deep, "a"]);
        assert_eq!(names(&i, "#").len(), 2);
        assert_eq!(names(&i, &("+/".repeat(32_767) + "+")).len(), 1);
        drop(i);
    }
}
