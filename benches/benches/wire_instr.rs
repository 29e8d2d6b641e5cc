//! Instruction counts per decoded packet, for callgrind: decodes one stream
//! of 10,000 small PUBLISH packets with one codec and exits.
//!
//! ```text
//! wire_instr <codec> <workload> [decode|prepare|encode]
//!   codec:    mqtt-wire | mqtt-wire-bytes | mqtt-wire-borrowed | rumqttc | rmqtt-codec |
//!             mqtt-protocol-core | mqtt-proto | mqttrs
//!   workload: v311  (3.1.1 PUBLISH, QoS 0, 16 B payload)
//!             v5    (5.0 PUBLISH, QoS 0, 16 B, content type + user property)
//!             mixed311, mixed5 (CONNECT, SUBSCRIBE, PUBLISH, PUBACK, PINGREQ)
//!   decode:   build the stream and the codec's input, then decode it (default)
//!   prepare:  only build them (the baseline for a difference of two runs)
//!   encode:   encode the 10,000 packets into one buffer instead (count with
//!             --toggle-collect='*encode_all*')
//! ```
//!
//! `benches/instr.sh` runs every codec under
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*decode_all*'`
//! (only the decode loop is counted, dropping the packets included) and
//! prints instructions per packet. The `mqtt-wire-bytes` row decodes the
//! same stream from a `Bytes` with `mqtt_wire::decode_bytes`; the
//! `mqtt-wire-borrowed` row from a `&[u8]` with `mqtt_wire::decode_ref`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs,
    unreachable_pub,
    dead_code
)]

mod wire_workload;

use bytes::Bytes;
use std::hint::black_box;
use wire_workload::{
    stream, Codec, MqttProto, Mqttrs, Ours, OursRef, ProtocolCore, Rmqtt, Rumqttc, Ver, Workload, N,
};

/// mqtt-wire through `decode_bytes` (input already in a `Bytes`).
struct OursBytes;

impl OursBytes {
    #[inline(never)]
    fn decode_all(buf: &mut Bytes, v: Ver) -> usize {
        let cfg = mqtt_wire::DecodeConfig::new(match v {
            Ver::V311 => mqtt_wire::ProtocolVersion::V3_1_1,
            Ver::V5 => mqtt_wire::ProtocolVersion::V5,
        })
        .with_max_packet_size(wire_workload::MAX_PACKET);
        let mut n = 0;
        while let Some(p) = mqtt_wire::decode_bytes(buf, &cfg).unwrap() {
            black_box(&p);
            n += 1;
        }
        n
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Decode,
    Prepare,
    Encode,
}

fn run<C: Codec>(stream: &Bytes, w: Workload, mode: Mode) -> usize {
    match mode {
        Mode::Encode => {
            let mut input = C::enc_prepare(&C::build(w));
            // Room for every encoder up front (mqttrs writes into a slice of
            // it), so no growth or zero-filling is counted.
            let mut out = bytes::BytesMut::new();
            out.resize(2 * stream.len() + 64 * N, 0);
            let len = C::encode_all(&mut input, &mut out);
            assert_eq!(len, stream.len());
            N
        }
        Mode::Decode => C::decode_all(&mut C::dec_prepare(stream), w.ver()),
        Mode::Prepare => {
            black_box(&C::dec_prepare(stream));
            N
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: wire_instr <codec> <v311|v5|mixed311|mixed5> [decode|prepare|encode]");
        std::process::exit(2);
    }
    let w = match args[2].as_str() {
        "v311" => Workload::Publish {
            ver: Ver::V311,
            qos1: false,
            payload: 16,
        },
        "v5" => Workload::Publish {
            ver: Ver::V5,
            qos1: false,
            payload: 16,
        },
        "mixed311" => Workload::Mixed(Ver::V311),
        "mixed5" => Workload::Mixed(Ver::V5),
        other => panic!("unknown workload {other}"),
    };
    let mode = match args.get(3).map(String::as_str) {
        None | Some("decode") => Mode::Decode,
        Some("prepare") => Mode::Prepare,
        Some("encode") => Mode::Encode,
        Some(other) => panic!("unknown mode {other}"),
    };
    let s = stream(w);
    let v = w.ver();
    let n = match args[1].as_str() {
        "mqtt-wire" => run::<Ours>(&s, w, mode),
        "mqtt-wire-bytes" => {
            let mut b = s.clone();
            match mode {
                Mode::Decode => OursBytes::decode_all(&mut b, v),
                Mode::Prepare => N,
                Mode::Encode => panic!("mqtt-wire-bytes is a decode path only"),
            }
        }
        "mqtt-wire-borrowed" if mode != Mode::Encode => run::<OursRef>(&s, w, mode),
        "rumqttc" => run::<Rumqttc>(&s, w, mode),
        "rmqtt-codec" => run::<Rmqtt>(&s, w, mode),
        "mqtt-protocol-core" => run::<ProtocolCore>(&s, w, mode),
        "mqtt-proto" => run::<MqttProto>(&s, w, mode),
        "mqttrs" if v == Ver::V311 => run::<Mqttrs>(&s, w, mode),
        other => panic!("unknown codec {other} for {}", w.name()),
    };
    assert_eq!(n, N);
    println!("{} {} {} packets", args[1], w.name(), n);
}
