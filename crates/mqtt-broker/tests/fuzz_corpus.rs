//! Replays every committed corpus file of the fuzz target `broker_ops`
//! through the checks it runs (`mqtt_broker::arbitrary::check_ops`), so a
//! crash found once stays fixed without a fuzzer.
//!
//! It also picks the seed corpus: deterministic pseudo-random inputs are
//! run with a trace, and the fewest that together reach every broker
//! feature in [`WANTED`] (takeovers, resumed sessions, Wills, retained
//! messages, deferred authentication, ACL refusals, bounded queues, raw
//! transports, ...) are kept. The test fails when the inputs no longer
//! reach one of them. With `MQTT_BROKER_WRITE_CORPUS=1` set,
//! `cargo test -p mqtt-broker --test fuzz_corpus` (re)writes them as
//! `fuzz/corpus/broker_ops/seed-*`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use mqtt_broker::arbitrary::{check_ops, run_ops, Trace};
use mqtt_wire::arbitrary::xorshift_bytes;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/broker_ops")
}

#[test]
fn broker_ops_corpus() {
    let dir = corpus_dir();
    let mut n = 0;
    let mut failed = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_file() {
            let data = std::fs::read(&path).unwrap();
            if std::panic::catch_unwind(|| check_ops(&data)).is_err() {
                failed.push(path.display().to_string());
            }
            n += 1;
        }
    }
    assert!(failed.is_empty(), "corpus files fail: {failed:#?}");
    assert!(n >= 1, "no corpus file in {}", dir.display());
}

/// What the seeds must reach, as tags of `mqtt_broker::arbitrary::Trace`.
const WANTED: &[&str] = &[
    "connect:ok",
    "connect:resumed",
    "connect:refused",
    "connect:waiting",
    "auth:deferred",
    "auth:answered",
    "auth:refused",
    "broker-disconnect:SessionTakenOver",
    "acl:suback-refused",
    "acl:publish-refused",
    "delivered",
    "delivered:retained",
    "stats:will",
    "stats:dropped",
    "offline-session",
    "inject",
    "raw:open",
    "raw:bytes",
    "raw:close",
    "admin-close",
    "app-publish",
    "jump",
    "disconnected:keepalive",
    "disconnected:connect-timeout",
    "client-closed:refused:NotAuthorized",
];

fn trace(data: &[u8]) -> Trace {
    let mut t = Trace::default();
    run_ops(data, Some(&mut t));
    t
}

/// Candidate inputs: deterministic, of many lengths.
fn candidates() -> impl Iterator<Item = Vec<u8>> {
    (0..3_000u64).map(|i| xorshift_bytes(0xb0_0000 + i, 200 + (i as usize * 131) % 1_800))
}

/// Seeds kept at most.
const MAX_SEEDS: usize = 24;

/// Greedy cover: first the candidates reaching most [`WANTED`] tags not
/// yet reached, then (up to [`MAX_SEEDS`]) those reaching most other tags
/// not yet reached, so the seeds are varied.
fn pick_seeds() -> (Vec<Vec<u8>>, BTreeSet<String>) {
    let wanted: BTreeSet<String> = WANTED.iter().map(|s| (*s).to_owned()).collect();
    let all: Vec<(Vec<u8>, BTreeSet<String>)> = candidates()
        .map(|d| {
            let tags = trace(&d).tags();
            (d, tags)
        })
        .collect();
    let mut reached = BTreeSet::new();
    let mut seeds = Vec::new();
    for only_wanted in [true, false] {
        while seeds.len() < MAX_SEEDS {
            let gain = |t: &BTreeSet<String>| {
                t.difference(&reached)
                    .filter(|x| !only_wanted || wanted.contains(*x))
                    .count()
            };
            let Some((d, t)) = all
                .iter()
                .max_by_key(|(_, t)| gain(t))
                .filter(|(_, t)| gain(t) > 0)
            else {
                break;
            };
            reached.extend(t.iter().cloned());
            seeds.push(d.clone());
        }
    }
    (seeds, reached)
}

#[test]
fn seeds_reach_every_broker_feature_and_can_be_regenerated() {
    let (seeds, reached) = pick_seeds();
    let missing: Vec<&&str> = WANTED.iter().filter(|w| !reached.contains(**w)).collect();
    assert!(missing.is_empty(), "no candidate input reaches {missing:?}");
    if std::env::var_os("MQTT_BROKER_WRITE_CORPUS").is_some() {
        let dir = corpus_dir();
        std::fs::create_dir_all(&dir).unwrap();
        for (k, data) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{k:02}")), data).unwrap();
        }
    }
}
