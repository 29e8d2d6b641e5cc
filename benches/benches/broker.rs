//! Broker throughput in memory, no sockets (see `broker_workload`): the
//! broker with real mqtt-session clients on the other side of every
//! connection, all connected (and subscribed) once in setup.
//!
//! - `broker/fanout/qos{0,1,2}`: 1 publisher to 1,000 subscribers on the
//!   exact topic (`exact`) or on `bench/+/+/temperature` (`plus`); one
//!   iteration = one PUBLISH delivered 1,000 times, with every QoS 1/2
//!   acknowledgement flowing back. Throughput = deliveries.
//! - `broker/fanout-broker-only/qos0`: the same QoS 0 fan-out with the
//!   clients left out of the timed loop: the publisher's recorded PUBLISH
//!   bytes into `handle_read`, then `poll_transmit` until `None` (each
//!   chunk dropped), `poll_event`, `poll_timeout`. Throughput = deliveries.
//! - `broker/fanin/qos{0,1,2}`: 1,000 publishers to 1 subscriber; one
//!   iteration = one PUBLISH from each publisher. Throughput = deliveries.
//! - `broker/routing-1M/qos0`: 10,000 subscriber sessions x 100
//!   subscriptions (1,000,000 in the tree) and one publisher; one iteration
//!   = 100 PUBLISHes to distinct topics matching about two subscriptions
//!   each. Throughput = messages published (deliveries per message are
//!   printed in setup).
//!
//! Except for `fanout-broker-only`, the time includes the clients' work
//! (publishing, decoding what the broker sent, acknowledging); the
//! broker's share is counted by `benches/broker_instr.sh` (callgrind).
//!
//! Run: `cargo bench -p mqtt-benches --bench broker` (a filter such as
//! `-- broker/fanout` runs part of it; the 1M-subscription setup only runs
//! when its group is selected).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

mod broker_workload;

use broker_workload::{FanIn, FanOut, Routing, FAN, ROUTING_MSGS, ROUTING_SESSIONS, ROUTING_SUBS};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::{Duration, Instant};

/// Whether a benchmark id is selected by the command line's filter (so
/// the expensive setups run only when needed).
fn selected(id: &str) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    filters.is_empty() || filters.iter().any(|f| id.contains(f.as_str()))
}

fn fanout(c: &mut Criterion) {
    for qos in [0u8, 1, 2] {
        let name = format!("broker/fanout/qos{qos}");
        if !selected(&name) {
            continue;
        }
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(FAN as u64));
        g.warm_up_time(Duration::from_secs(1));
        g.measurement_time(Duration::from_secs(3));
        for (label, wildcard) in [("exact", false), ("plus", true)] {
            let mut f = FanOut::new(qos, wildcard);
            f.check(10);
            g.bench_function(label, |b| b.iter(|| f.run(1)));
            f.check(1);
            assert_eq!(f.net.broker.stats().messages_dropped, 0);
        }
        g.finish();
    }
    let name = "broker/fanout-broker-only/qos0";
    if selected(name) {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(FAN as u64));
        g.warm_up_time(Duration::from_secs(1));
        g.measurement_time(Duration::from_secs(3));
        for (label, wildcard) in [("exact", false), ("plus", true)] {
            let mut f = FanOut::new(0, wildcard);
            f.check(10);
            let bytes = f.publish_bytes();
            // The recorded bytes are a whole PUBLISH: one chunk per
            // subscriber.
            assert_eq!(f.run_broker_only(&bytes, 1), FAN);
            let out0 = f.net.broker.stats().messages_out;
            g.bench_function(label, |b| b.iter(|| f.run_broker_only(&bytes, 1)));
            assert_eq!((f.net.broker.stats().messages_out - out0) % FAN as u64, 0);
        }
        g.finish();
    }
}

fn fanin(c: &mut Criterion) {
    for qos in [0u8, 1, 2] {
        let name = format!("broker/fanin/qos{qos}");
        if !selected(&name) {
            continue;
        }
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(FAN as u64));
        g.warm_up_time(Duration::from_secs(1));
        g.measurement_time(Duration::from_secs(3));
        let mut f = FanIn::new(qos);
        f.check(3);
        g.bench_function("1000-to-1", |b| b.iter(|| f.run(1)));
        f.check(1);
        assert_eq!(f.net.broker.stats().messages_dropped, 0);
        g.finish();
    }
}

fn routing(c: &mut Criterion) {
    let name = "broker/routing-1M/qos0";
    if !selected(name) {
        return;
    }
    let t = Instant::now();
    let mut r = Routing::new(ROUTING_SESSIONS, ROUTING_SUBS);
    eprintln!(
        "routing setup: {} sessions x {} subscriptions ({} in the tree) in {:.1} s, RSS {} MiB, \
         {} deliveries per {} messages",
        ROUTING_SESSIONS,
        ROUTING_SUBS,
        r.subscriptions,
        t.elapsed().as_secs_f64(),
        broker_workload::rss_kb().unwrap_or(0) / 1024,
        r.per_round,
        ROUTING_MSGS
    );
    r.check(2);
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(ROUTING_MSGS as u64));
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("10000x100", |b| b.iter(|| r.run(1)));
    g.finish();
    r.check(1);
}

criterion_group!(benches, fanout, fanin, routing);
criterion_main!(benches);
