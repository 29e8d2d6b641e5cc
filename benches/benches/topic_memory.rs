//! Heap bytes per subscription of mqtt-topic's `SubscriptionTree` and the
//! peers, measured with a counting global allocator (requested bytes, not
//! allocator overhead), on the `topic` bench's filter sets; then whether
//! removing every subscription gives the memory back.
//!
//! Run: `cargo bench -p mqtt-benches --bench topic_memory`
#![allow(
    missing_docs,
    unreachable_pub,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "topic.rs"]
mod topic_engines;

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use topic_engines::{Engine, Naive, Ours, Quill, Rmqtt, TopicEngine};

#[global_allocator]
static A: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn live() -> usize {
    let s = A.stats();
    s.bytes_allocated - s.bytes_deallocated
}

fn measure<E: Engine>(size: usize, filters: &[String]) {
    let parsed: Vec<E::Filter> = filters.iter().map(|f| E::filter(f)).collect();
    let base = live();
    let mut e = E::new();
    let handles: Vec<E::Handle> = parsed
        .iter()
        .enumerate()
        .map(|(i, f)| e.insert(f, i as u32))
        .collect();
    let handle_bytes = handles.capacity() * std::mem::size_of::<E::Handle>();
    let used = live() - base - handle_bytes;
    let text: usize = filters.iter().map(String::len).sum();
    for (i, (f, h)) in parsed.iter().zip(handles).enumerate() {
        e.remove(f, i as u32, h);
    }
    let left = live() as isize - base as isize;
    println!(
        "| {:<18} | {:>9} | {:>8.1} | {:>8.1} | {:>10} |",
        E::NAME,
        size,
        used as f64 / size as f64,
        text as f64 / size as f64,
        left
    );
    drop(e);
}

fn main() {
    // Under `cargo bench` the harness passes `--bench`; ignore arguments.
    println!("| implementation     | subs      | bytes/sub | text/sub | left after removing all |");
    println!("|---|---:|---:|---:|---:|");
    for size in [1_000usize, 100_000, 1_000_000] {
        let filters = topic_engines::topic_workload_filters(size);
        measure::<Ours>(size, &filters);
        measure::<TopicEngine>(size, &filters);
        measure::<Quill>(size, &filters);
        measure::<Rmqtt>(size, &filters);
        if size <= 100_000 {
            measure::<Naive>(size, &filters);
        }
    }
}
