//! Subscription matching: mqtt-topic's `SubscriptionTree` side by side with a
//! naive linear matcher and the peer crates, on 1k, 100k and 1M filters
//! (see `topic_workload`). Lookups of random published names (already in
//! each matcher's own name type; and again including the conversion from the
//! received topic bytes), and insert + remove of one subscription in a tree
//! of that size.
//!
//! Run: `cargo bench -p mqtt-benches --bench topic`
//! Memory per subscription: `cargo bench -p mqtt-benches --bench topic_memory`
#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod topic_workload;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use topic_workload as w;

/// What every matcher under test offers, in its own types.
pub trait Engine: Sized {
    const NAME: &'static str;
    type Filter;
    type Name;
    type Handle;
    fn new() -> Self;
    fn filter(s: &str) -> Self::Filter;
    fn name(s: &str) -> Self::Name;
    fn insert(&mut self, f: &Self::Filter, key: u32) -> Self::Handle;
    fn remove(&mut self, f: &Self::Filter, key: u32, h: Self::Handle);
    /// Number of matching subscriptions.
    fn count(&self, n: &Self::Name) -> usize;
    /// Converts a published topic as a broker receives it (a slice of the
    /// packet buffer, here `wire`) into this matcher's name type, then
    /// counts its matches.
    fn parse_count(&self, s: &str, _wire: &bytes::Bytes) -> usize {
        self.count(&Self::name(s))
    }
}

/// mqtt-topic: the subscription tree (key u32, data u32).
pub struct Ours(mqtt_topic::SubscriptionTree<u32, u32>);

impl Engine for Ours {
    const NAME: &'static str = "mqtt-topic";
    type Filter = mqtt_topic::TopicFilter;
    type Name = mqtt_topic::TopicName;
    type Handle = ();
    fn new() -> Self {
        Ours(mqtt_topic::SubscriptionTree::new())
    }
    fn filter(s: &str) -> Self::Filter {
        mqtt_topic::TopicFilter::try_from(s).unwrap()
    }
    fn name(s: &str) -> Self::Name {
        mqtt_topic::TopicName::try_from(s).unwrap()
    }
    fn insert(&mut self, f: &Self::Filter, key: u32) {
        self.0.insert(f, key, 1);
    }
    fn remove(&mut self, f: &Self::Filter, key: u32, _: ()) {
        self.0.remove(f, &key);
    }
    fn count(&self, n: &Self::Name) -> usize {
        let mut c = 0;
        self.0.for_each_match(n, |_| c += 1);
        c
    }
    fn parse_count(&self, _: &str, wire: &bytes::Bytes) -> usize {
        // What the codec does: validate the topic in place, no copy.
        self.count(&mqtt_topic::TopicName::try_from(wire.clone()).unwrap())
    }
}

/// A linear scan with a direct matcher: every filter checked per lookup.
pub struct Naive(Vec<(String, u32)>);

impl Engine for Naive {
    const NAME: &'static str = "naive-linear";
    type Filter = String;
    type Name = String;
    type Handle = ();
    fn new() -> Self {
        Naive(Vec::new())
    }
    fn filter(s: &str) -> String {
        s.to_string()
    }
    fn name(s: &str) -> String {
        s.to_string()
    }
    fn insert(&mut self, f: &String, key: u32) {
        self.0.push((f.clone(), key));
    }
    fn remove(&mut self, f: &String, key: u32, _: ()) {
        if let Some(i) = self.0.iter().rposition(|(g, k)| *k == key && g == f) {
            self.0.swap_remove(i);
        }
    }
    fn count(&self, n: &String) -> usize {
        self.0
            .iter()
            .filter(|(f, _)| mqtt_topic::matches_bytes(f.as_bytes(), n.as_bytes()))
            .count()
    }
}

/// mqtt-topic-engine 0.2, `TopicRouter` (feature `router`, no LRU cache).
pub struct TopicEngine(mqtt_topic_engine::topic_router::TopicRouter<u32>);

impl Engine for TopicEngine {
    const NAME: &'static str = "mqtt-topic-engine";
    type Filter = mqtt_topic_engine::topic_pattern_path::TopicPatternPath;
    type Name = mqtt_topic_engine::topic_match::TopicPath;
    type Handle = mqtt_topic_engine::topic_router::SubscriptionId;
    fn new() -> Self {
        TopicEngine(mqtt_topic_engine::topic_router::TopicRouter::new())
    }
    fn filter(s: &str) -> Self::Filter {
        Self::Filter::try_from(s).unwrap()
    }
    fn name(s: &str) -> Self::Name {
        Self::Name::new(s.to_string()).unwrap()
    }
    fn insert(&mut self, f: &Self::Filter, key: u32) -> Self::Handle {
        let qos = mqtt_topic_engine::qos::QoS::AtMostOnce;
        self.0.add_subscription(f.clone(), qos, key).1
    }
    fn remove(&mut self, _: &Self::Filter, _: u32, h: Self::Handle) {
        self.0.unsubscribe(&h).unwrap();
    }
    fn count(&self, n: &Self::Name) -> usize {
        self.0.get_subscribers(n).len()
    }
}

/// quill-pubsub 0.1, `Registry`.
pub struct Quill(quill::Registry<u32>);

impl Engine for Quill {
    const NAME: &'static str = "quill-pubsub";
    type Filter = quill::Pattern;
    type Name = quill::Topic;
    type Handle = ();
    fn new() -> Self {
        Quill(quill::Registry::new())
    }
    fn filter(s: &str) -> Self::Filter {
        quill::Pattern::parse(s).unwrap()
    }
    fn name(s: &str) -> Self::Name {
        quill::Topic::parse(s).unwrap()
    }
    fn insert(&mut self, f: &Self::Filter, key: u32) {
        self.0.subscribe(f.clone(), key);
    }
    fn remove(&mut self, f: &Self::Filter, key: u32, _: ()) {
        self.0.unsubscribe(f, &key);
    }
    fn count(&self, n: &Self::Name) -> usize {
        self.0.matching(n).len()
    }
}

/// rmqtt 0.24's topic trie (`rmqtt::trie::TopicTree`, default features off).
pub struct Rmqtt(rmqtt::trie::TopicTree<u32>);

impl Engine for Rmqtt {
    const NAME: &'static str = "rmqtt-trie";
    type Filter = rmqtt::types::Topic;
    type Name = rmqtt::types::Topic;
    type Handle = ();
    fn new() -> Self {
        Rmqtt(rmqtt::trie::TopicTree::default())
    }
    fn filter(s: &str) -> Self::Filter {
        s.parse().unwrap()
    }
    fn name(s: &str) -> Self::Name {
        s.parse().unwrap()
    }
    fn insert(&mut self, f: &Self::Filter, key: u32) {
        self.0.insert(f, key);
    }
    fn remove(&mut self, f: &Self::Filter, key: u32, _: ()) {
        self.0.remove(f, &key);
    }
    fn count(&self, n: &Self::Name) -> usize {
        self.0.matches(n).iter().map(|(_, v)| v.len()).sum()
    }
}

const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
const LOOKUP_NAMES: usize = 4_096;
const CHURN: usize = 1_024;

fn build<E: Engine>(filters: &[String]) -> E {
    let mut e = E::new();
    for (i, f) in filters.iter().enumerate() {
        e.insert(&E::filter(f), i as u32);
    }
    e
}

/// Checks the engine against mqtt-topic on the first names (a peer that
/// disagrees is reported, not hidden) and returns the mean matches per lookup.
fn agree<E: Engine>(e: &E, ours: &[usize], names: &[String]) -> f64 {
    let mut total = 0usize;
    let mut differ = 0usize;
    for (n, want) in names.iter().zip(ours) {
        let got = e.count(&E::name(n));
        total += got;
        differ += usize::from(got != *want);
    }
    if differ > 0 {
        eprintln!(
            "note: {} disagrees with mqtt-topic on {differ} of {} names",
            E::NAME,
            names.len()
        );
    }
    total as f64 / names.len() as f64
}

fn bench_engine<E: Engine>(
    c: &mut Criterion,
    size: usize,
    filters: &[String],
    names: &[String],
    ours: &[usize],
) {
    let mut e: E = build(filters);
    let mean = agree(&e, ours, &names[..names.len().min(256)]);
    eprintln!("{:>18} n={size:>7}: {mean:.1} matches per lookup", E::NAME);
    let parsed: Vec<E::Name> = names.iter().map(|n| E::name(n)).collect();
    let churn: Vec<E::Filter> = w::filters(CHURN, 99).iter().map(|f| E::filter(f)).collect();

    let mut g = c.benchmark_group(format!("topic_lookup/{size}"));
    tune(&mut g, size);
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function(BenchmarkId::from_parameter(E::NAME), |b| {
        b.iter(|| {
            i = (i + 1) % parsed.len();
            black_box(e.count(&parsed[i]))
        })
    });
    g.finish();

    if E::NAME != Naive::NAME {
        let wire: Vec<(String, bytes::Bytes)> = names
            .iter()
            .map(|n| (n.clone(), bytes::Bytes::from(n.clone().into_bytes())))
            .collect();
        let mut g = c.benchmark_group(format!("topic_parse_lookup/{size}"));
        tune(&mut g, size);
        g.throughput(Throughput::Elements(1));
        let mut i = 0usize;
        g.bench_function(BenchmarkId::from_parameter(E::NAME), |b| {
            b.iter(|| {
                i = (i + 1) % wire.len();
                let (s, w) = &wire[i];
                black_box(e.parse_count(s, w))
            })
        });
        g.finish();
    }

    let mut g = c.benchmark_group(format!("topic_insert_remove/{size}"));
    tune(&mut g, size);
    g.throughput(Throughput::Elements(1));
    let mut j = 0usize;
    g.bench_function(BenchmarkId::from_parameter(E::NAME), |b| {
        b.iter(|| {
            j = (j + 1) % churn.len();
            let key = (size + j) as u32;
            let h = e.insert(&churn[j], key);
            e.remove(&churn[j], key, h);
        })
    });
    g.finish();
    drop(e);
}

fn tune(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, size: usize) {
    if size >= 1_000_000 {
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
    } else {
        g.sample_size(20)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
    }
}

fn topic(c: &mut Criterion) {
    for size in SIZES {
        let filters = w::filters(size, 1);
        let names = w::names(size, &filters, LOOKUP_NAMES, 2);
        let ours: Vec<usize> = {
            let t: Ours = build(&filters);
            names
                .iter()
                .take(256)
                .map(|n| t.count(&Ours::name(n)))
                .collect()
        };
        bench_engine::<Ours>(c, size, &filters, &names, &ours);
        bench_engine::<TopicEngine>(c, size, &filters, &names, &ours);
        bench_engine::<Quill>(c, size, &filters, &names, &ours);
        bench_engine::<Rmqtt>(c, size, &filters, &names, &ours);
        bench_engine::<Naive>(c, size, &filters, &names, &ours);
    }
}

/// The filter set of a given size (for the memory bench).
pub fn topic_workload_filters(size: usize) -> Vec<String> {
    w::filters(size, 1)
}

criterion_group!(benches, topic);
criterion_main!(benches);
