//! Session-layer throughput: QoS 0, 1 and 2 publishes from a client to a
//! server in memory, mqtt-session's `Client` + `ServerConnection` side by
//! side with mqtt-protocol-core's `Connection<role::Client>` +
//! `Connection<role::Server>` doing the same work (see `session_workload`):
//! one connected pair per benchmark, then batches of 1,000 messages, each
//! carried through its whole flow (PUBLISH; PUBACK; or PUBREC, PUBREL,
//! PUBCOMP) before the next, so the in-flight window never fills. Throughput
//! is in messages (criterion's elements per second).
//!
//! Run: `cargo bench -p mqtt-benches --bench session` (a filter such as
//! `-- session/5.0` runs part of it). Instruction counts:
//! `benches/session_instr.sh`; idle memory: `--bench session_memory`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

mod session_workload;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use session_workload::ours::Ours;
use session_workload::protocol_core::ProtocolCore;
use session_workload::{Pair, Ver};
use std::time::Duration;

/// Messages per timed iteration.
const N: usize = 1_000;

fn one<P: Pair>(g: &mut BenchmarkGroup<'_, WallTime>, v: Ver, qos: u8) {
    P::check(v, qos, 100);
    let mut pair = P::connect(v);
    g.bench_function(P::NAME, |b| b.iter(|| pair.run(qos, N)));
}

fn session(c: &mut Criterion) {
    for v in [Ver::V311, Ver::V5] {
        for qos in [0u8, 1, 2] {
            let mut g = c.benchmark_group(format!("session/{}/qos{qos}", v.label()));
            g.throughput(Throughput::Elements(N as u64));
            g.warm_up_time(Duration::from_secs(1));
            g.measurement_time(Duration::from_secs(3));
            one::<Ours>(&mut g, v, qos);
            one::<ProtocolCore>(&mut g, v, qos);
            g.finish();
        }
    }
}

criterion_group!(benches, session);
criterion_main!(benches);
