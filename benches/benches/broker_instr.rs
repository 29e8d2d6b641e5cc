//! Instruction counts per delivered message, for callgrind: builds one
//! broker workload (see `broker_workload`), runs warm-up rounds, then
//! `measure_all` rounds, checks every delivery, and prints
//! `deliveries=D messages=M` on stdout.
//!
//! ```text
//! broker_instr <workload> <qos>
//!   workload: fanout | fanout-plus | fanout-broker-only | fanin | routing
//!   qos:      0 | 1 | 2   (fanout-broker-only and routing: 0)
//! ```
//!
//! `benches/broker_instr.sh` runs each under
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measure_all*'`
//! and reads, from the same profile, the inclusive cost of the
//! `broker_call_*` functions (every call into the broker: `handle_read`,
//! `poll_transmit`, `poll_event`, `poll_timeout`, and dropping the chunks
//! `poll_transmit` handed out): the broker's instructions without the
//! clients'.
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
use std::hint::black_box;

#[inline(never)]
fn measure_all<F: FnMut()>(mut f: F) {
    f();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Under `cargo bench` the harness passes `--bench`: do nothing then.
    if args.len() != 2 {
        eprintln!(
            "usage: broker_instr <fanout|fanout-plus|fanout-broker-only|fanin|routing> <0|1|2>"
        );
        return;
    }
    let qos: u8 = args[1].parse().expect("qos");
    assert!(qos <= 2, "qos is 0, 1 or 2");
    let (deliveries, messages) = match args[0].as_str() {
        w @ ("fanout" | "fanout-plus") => {
            let rounds = 100;
            let mut f = FanOut::new(qos, w == "fanout-plus");
            f.check(10);
            measure_all(|| f.check(rounds));
            black_box(&f.net);
            (rounds * FAN, rounds)
        }
        "fanout-broker-only" => {
            assert_eq!(qos, 0, "broker-only is QoS 0");
            let rounds = 100;
            let mut f = FanOut::new(0, false);
            f.check(10);
            let bytes = f.publish_bytes();
            f.run_broker_only(&bytes, 10);
            let mut chunks = 0;
            measure_all(|| chunks = f.run_broker_only(&bytes, rounds));
            assert_eq!(chunks, rounds * FAN);
            (rounds * FAN, rounds)
        }
        "fanin" => {
            let rounds = 20;
            let mut f = FanIn::new(qos);
            f.check(2);
            measure_all(|| f.check(rounds));
            (rounds * FAN, rounds * FAN)
        }
        "routing" => {
            assert_eq!(qos, 0, "routing is QoS 0");
            let rounds = 10;
            let mut r = Routing::new(ROUTING_SESSIONS, ROUTING_SUBS);
            r.check(2);
            measure_all(|| r.check(rounds));
            (r.per_round as usize * rounds, rounds * ROUTING_MSGS)
        }
        other => panic!("unknown workload {other}"),
    };
    println!("deliveries={deliveries} messages={messages}");
}
