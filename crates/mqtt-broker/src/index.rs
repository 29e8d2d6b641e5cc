//! The client-id index: which session holds a client id.
//!
//! A `HashMap<MqttString, Key>` entry takes 40 bytes (a second handle on
//! the client id, and the key) plus a control byte, at up to 7/8 load.
//! The session already holds its client id, so this table holds only the
//! session keys (8 bytes) and compares client ids through the session
//! slab: ~9 bytes per bucket instead of ~41. Hashing uses std's
//! `RandomState`, whose per-process random keys keep colliding client ids
//! from being computed by a client.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use crate::slab::Key;

/// Session keys by client id (see the module docs). Every method takes
/// `id_of`, which gives the client id of a live session's key; every key
/// in the table must be a live session's while `insert` runs, since
/// growing the table hashes the entries again.
#[derive(Debug)]
pub(crate) struct ClientIndex {
    table: HashTable<Key>,
    hasher: RandomState,
}

impl ClientIndex {
    pub(crate) fn new() -> Self {
        ClientIndex {
            table: HashTable::new(),
            hasher: RandomState::new(),
        }
    }

    #[cfg_attr(not(any(test, feature = "testing")), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    fn hash(&self, id: &[u8]) -> u64 {
        self.hasher.hash_one(id)
    }

    /// The session holding `id`.
    pub(crate) fn get<'a>(
        &self,
        id: &[u8],
        id_of: impl Fn(Key) -> Option<&'a [u8]>,
    ) -> Option<Key> {
        self.table
            .find(self.hash(id), |k| id_of(*k) == Some(id))
            .copied()
    }

    /// Records that `key` holds `id` (replacing the session that held it).
    pub(crate) fn insert<'a>(
        &mut self,
        id: &[u8],
        key: Key,
        id_of: impl Fn(Key) -> Option<&'a [u8]>,
    ) {
        let hash = self.hash(id);
        let hasher = &self.hasher;
        match self.table.entry(
            hash,
            |k| id_of(*k) == Some(id),
            |k| hasher.hash_one(id_of(*k).unwrap_or_default()),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut e) => *e.get_mut() = key,
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(key);
            }
        }
    }

    /// Forgets that `key` holds `id`; another session's entry for `id` is
    /// left alone. Needs no access to the session (it may be gone).
    pub(crate) fn remove(&mut self, id: &[u8], key: Key) -> bool {
        match self.table.find_entry(self.hash(id), |k| *k == key) {
            Ok(e) => {
                e.remove();
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(index: u32) -> Key {
        Key {
            index,
            generation: 0,
        }
    }

    #[test]
    fn finds_replaces_and_removes_by_key() {
        let ids: Vec<String> = (0..1000).map(|i| format!("client-{i}")).collect();
        let id_of = |k: Key| ids.get(k.index as usize).map(|s| s.as_bytes());
        let mut ix = ClientIndex::new();
        for i in 0..1000u32 {
            ix.insert(ids[i as usize].as_bytes(), key(i), id_of);
        }
        assert_eq!(ix.len(), 1000);
        for i in 0..1000u32 {
            assert_eq!(ix.get(ids[i as usize].as_bytes(), id_of), Some(key(i)));
        }
        assert_eq!(ix.get(b"client-1000", id_of), None);
        // Removing with another key leaves the entry.
        assert!(!ix.remove(b"client-7", key(8)));
        assert_eq!(ix.get(b"client-7", id_of), Some(key(7)));
        assert!(ix.remove(b"client-7", key(7)));
        assert_eq!(ix.get(b"client-7", id_of), None);
        assert_eq!(ix.len(), 999);
        // Inserting an id already held replaces its key.
        let id_of2 = |k: Key| {
            if k.index == 2000 {
                Some(&b"client-9"[..])
            } else {
                id_of(k)
            }
        };
        ix.insert(b"client-9", key(2000), id_of2);
        assert_eq!(ix.len(), 999);
        assert_eq!(ix.get(b"client-9", id_of2), Some(key(2000)));
    }
}
