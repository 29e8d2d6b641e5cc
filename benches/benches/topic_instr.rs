//! Instruction counts per lookup and per insert + remove, for callgrind:
//! builds one matcher over the `topic` bench's filter set and runs its 4,096
//! lookups (or its 1,024 insert + remove pairs) once, then exits.
//!
//! ```text
//! topic_instr <engine> <size> [lookup|churn|prepare]
//!   engine:  mqtt-topic | quill-pubsub
//!   size:    number of filters (1000, 100000, 1000000)
//!   lookup:  every name once through the matcher (count with
//!            --toggle-collect='*lookup_all*'); the default
//!   churn:   insert and remove every churn filter once
//!            (--toggle-collect='*churn_all*')
//!   prepare: only build the set
//! ```
//!
//! `benches/topic_instr.sh` runs it under
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect=...`
//! and prints instructions per operation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs,
    unreachable_pub,
    dead_code
)]

mod topic_workload;

use std::hint::black_box;
use topic_workload as w;

const LOOKUP_NAMES: usize = 4_096;
const CHURN: usize = 1_024;

#[inline(never)]
fn lookup_all_ours(
    t: &mqtt_topic::SubscriptionTree<u32, u32>,
    names: &[mqtt_topic::TopicName],
) -> usize {
    let mut c = 0usize;
    for n in names {
        t.for_each_match(black_box(n), |_| c += 1);
    }
    c
}

#[inline(never)]
fn churn_all_ours(
    t: &mut mqtt_topic::SubscriptionTree<u32, u32>,
    fs: &[mqtt_topic::TopicFilter],
    size: usize,
) {
    for (j, f) in fs.iter().enumerate() {
        let key = (size + j) as u32;
        t.insert(black_box(f), key, 1);
        black_box(t.remove(f, &key));
    }
}

#[inline(never)]
fn lookup_all_quill(r: &quill::Registry<u32>, names: &[quill::Topic]) -> usize {
    let mut c = 0usize;
    for n in names {
        c += r.matching(black_box(n)).len();
    }
    c
}

#[inline(never)]
fn churn_all_quill(r: &quill::Registry<u32>, fs: &[quill::Pattern], size: usize) {
    for (j, f) in fs.iter().enumerate() {
        let key = (size + j) as u32;
        r.subscribe(black_box(f.clone()), key);
        r.unsubscribe(f, &key);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let engine = args.get(1).map_or("mqtt-topic", String::as_str);
    let size: usize = args.get(2).map_or(1_000, |s| s.parse().unwrap());
    let mode = args.get(3).map_or("lookup", String::as_str);
    let filters = w::filters(size, 1);
    let names = w::names(size, &filters, LOOKUP_NAMES, 2);
    let churn = w::filters(CHURN, 99);
    match engine {
        "mqtt-topic" => {
            let mut t = mqtt_topic::SubscriptionTree::<u32, u32>::new();
            for (i, f) in filters.iter().enumerate() {
                t.insert(
                    &mqtt_topic::TopicFilter::try_from(f.as_str()).unwrap(),
                    i as u32,
                    1,
                );
            }
            let names: Vec<_> = names
                .iter()
                .map(|n| mqtt_topic::TopicName::try_from(n.as_str()).unwrap())
                .collect();
            let churn: Vec<_> = churn
                .iter()
                .map(|f| mqtt_topic::TopicFilter::try_from(f.as_str()).unwrap())
                .collect();
            match mode {
                "lookup" => println!("{}", lookup_all_ours(&t, &names)),
                "churn" => churn_all_ours(&mut t, &churn, size),
                _ => {}
            }
            eprintln!("heap {} B, {} nodes", t.heap_bytes(), t.node_count());
        }
        "quill-pubsub" => {
            let r = quill::Registry::new();
            for (i, f) in filters.iter().enumerate() {
                r.subscribe(quill::Pattern::parse(f).unwrap(), i as u32);
            }
            let names: Vec<_> = names
                .iter()
                .map(|n| quill::Topic::parse(n).unwrap())
                .collect();
            let churn: Vec<_> = churn
                .iter()
                .map(|f| quill::Pattern::parse(f).unwrap())
                .collect();
            match mode {
                "lookup" => println!("{}", lookup_all_quill(&r, &names)),
                "churn" => churn_all_quill(&r, &churn, size),
                _ => {}
            }
        }
        e => panic!("unknown engine {e}"),
    }
}
