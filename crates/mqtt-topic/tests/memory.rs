//! Memory: removing subscriptions gives the memory back, measured by a
//! counting global allocator. One test function, so no other test thread
//! allocates while it measures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use mqtt_topic::{RetainedIndex, SharedFilter, SubscriptionTree, TopicFilter, TopicName};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;

// Counts every allocation (the workspace forbids `unsafe`, so the counting
// allocator comes from `stats_alloc`).
#[global_allocator]
static A: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn live() -> usize {
    let s = A.stats();
    s.bytes_allocated - s.bytes_deallocated
}

/// Bytes `t` holds, measured by dropping it.
fn held<T>(t: T) -> usize {
    let before = live();
    drop(t);
    before - live()
}

fn filters(n: usize) -> Vec<TopicFilter> {
    (0..n)
        .map(|i| {
            let s = match i % 10 {
                0..=6 => format!(
                    "site{}/building{}/floor{}/room{}/temperature",
                    i % 17,
                    i % 5,
                    i % 11,
                    i
                ),
                7 | 8 => format!("site{}/+/floor{}/room{}", i % 17, i % 11, i),
                _ => format!(
                    "site{}/building{}/a-rather-long-level-name-{}/#",
                    i % 17,
                    i % 5,
                    i
                ),
            };
            TopicFilter::try_from(s.as_str()).unwrap()
        })
        .collect()
}

fn removal_returns_memory() {
    let fs = filters(3000);
    let shared = SharedFilter::try_from("$share/workers/site1/#").unwrap();
    let names: Vec<TopicName> = (0..500)
        .map(|i| TopicName::try_from(format!("site{}/b/{}", i % 9, i).as_str()).unwrap())
        .collect();

    // Insert everything, remove everything: back to zero bytes, no shrink call.
    let base = live();
    let mut t = SubscriptionTree::new();
    for (i, f) in fs.iter().enumerate() {
        t.insert(f, i as u32, i as u64);
    }
    for k in 0..50u32 {
        t.insert_shared(&shared, k, 0);
    }
    assert!(live() > base);
    for (i, f) in fs.iter().enumerate() {
        assert_eq!(t.remove(f, &(i as u32)), Some(i as u64));
    }
    for k in 0..50u32 {
        assert_eq!(t.remove_shared(&shared, &k), Some(0));
    }
    assert_eq!(live(), base, "an emptied tree holds no heap memory");
    assert_eq!(held(t), 0);

    // Insert all, remove two thirds: after trimming, byte-for-byte the memory
    // of a fresh tree built from the last third, and the tree's own
    // accounting agrees with the allocator.
    let mut t = SubscriptionTree::new();
    for (i, f) in fs.iter().enumerate() {
        t.insert(f, i as u32, i as u64);
    }
    for k in 0..50u32 {
        t.insert_shared(&shared, k, 0);
    }
    for (i, f) in fs.iter().enumerate().filter(|(i, _)| i % 3 != 0) {
        t.remove(f, &(i as u32));
    }
    for k in 10..50u32 {
        t.remove_shared(&shared, &k);
    }
    let mut fresh = SubscriptionTree::new();
    for (i, f) in fs.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        fresh.insert(f, i as u32, i as u64);
    }
    for k in 0..10u32 {
        fresh.insert_shared(&shared, k, 0);
    }
    assert!(t == fresh);
    t.shrink_to_fit();
    fresh.shrink_to_fit();
    let (ta, fa) = (t.heap_bytes(), fresh.heap_bytes());
    assert_eq!(ta, fa);
    assert_eq!(held(t), ta);
    assert_eq!(held(fresh), fa);

    // Wide nodes (hashed child indexes): 5,000 children under one node and
    // 40 under each of those (filters ending in '#', which the tree holds),
    // and as many exact filters (which the exact-filter table holds), then
    // everything removed in a scattered order.
    let wide: Vec<TopicFilter> = (0..10_000u32)
        .map(|i| {
            let (j, last) = if i < 5000 {
                (i, "cmd")
            } else {
                (i - 5000, "#")
            };
            let s = format!("dev/{}/ch{}/{last}", (j * 7919) % 5000, j % 40);
            TopicFilter::try_from(s.as_str()).unwrap()
        })
        .collect();
    let base = live();
    let mut t = SubscriptionTree::new();
    for (i, f) in wide.iter().enumerate() {
        t.insert(f, i as u32, i as u64);
    }
    for (i, f) in wide.iter().enumerate().rev().step_by(2) {
        assert_eq!(t.remove(f, &(i as u32)), Some(i as u64));
    }
    let mut fresh = SubscriptionTree::new();
    for (i, f) in wide.iter().enumerate().rev().skip(1).step_by(2) {
        fresh.insert(f, i as u32, i as u64);
    }
    assert!(t == fresh);
    t.shrink_to_fit();
    fresh.shrink_to_fit();
    assert_eq!(t.heap_bytes(), fresh.heap_bytes());
    assert_eq!(held(fresh), t.heap_bytes());
    for (i, f) in wide.iter().enumerate() {
        t.remove(f, &(i as u32));
    }
    assert!(t.is_empty());
    assert_eq!(live(), base, "an emptied wide tree holds no heap memory");
    assert_eq!(held(t), 0);

    // The retained index too. Cloned before measuring: the first clone of a
    // `Bytes` allocates its shared header, which is not the index's memory.
    let clones = names.clone();
    let base = live();
    let mut r = RetainedIndex::new();
    for (i, n) in clones.iter().enumerate() {
        r.insert(n.clone(), i);
    }
    for n in &names {
        assert!(r.remove(n).is_some());
    }
    assert_eq!(live(), base, "an emptied index holds no heap memory");
    assert_eq!(held(r), 0);
    drop(clones);
}

/// Runs without libtest (`harness = false` in Cargo.toml): the counting
/// allocator sees the whole process, and libtest's own thread allocates
/// while a test runs (its progress output), which made exact counts fail
/// now and then.
fn main() {
    removal_returns_memory();
    println!("test removal_returns_memory ... ok");
}
