//! Instruction counts per message, for callgrind: connects one in-memory
//! client/server pair of one library (see `session_workload`), warms it up
//! with 100 messages, then publishes 10,000 messages inside
//! `publish_all` and exits.
//!
//! ```text
//! session_instr <library> <version> <qos>
//!   library: mqtt-session | mqtt-protocol-core
//!   version: 3.1.1 | 5.0
//!   qos:     0 | 1 | 2
//! ```
//!
//! `benches/session_instr.sh` runs every combination under
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*publish_all*'`
//! (only the 10,000 messages are counted) and prints instructions per
//! message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

mod session_workload;

use session_workload::ours::Ours;
use session_workload::protocol_core::ProtocolCore;
use session_workload::{Pair, Ver};
use std::hint::black_box;

/// Messages counted.
pub const N: usize = 10_000;

#[inline(never)]
fn publish_all<P: Pair>(p: &mut P, qos: u8) {
    p.run(qos, N);
}

fn go<P: Pair>(v: Ver, qos: u8) {
    let mut p = P::connect(v);
    p.run(qos, 100);
    publish_all(&mut p, qos);
    let want = if qos == 0 { 0 } else { N + 100 };
    assert_eq!(p.counts(), (N + 100, want));
    black_box(&p);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Under `cargo bench` the harness passes `--bench`: do nothing then.
    if args.len() != 3 {
        eprintln!("usage: session_instr <mqtt-session|mqtt-protocol-core> <3.1.1|5.0> <0|1|2>");
        return;
    }
    let v = match args[1].as_str() {
        "3.1.1" => Ver::V311,
        "5.0" => Ver::V5,
        other => panic!("unknown version {other}"),
    };
    let qos: u8 = args[2].parse().expect("qos");
    assert!(qos <= 2, "qos is 0, 1 or 2");
    match args[0].as_str() {
        "mqtt-session" => go::<Ours>(v, qos),
        "mqtt-protocol-core" => go::<ProtocolCore>(v, qos),
        other => panic!("unknown library {other}"),
    }
}
