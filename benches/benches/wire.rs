//! Codec throughput: mqtt-wire side by side with the peer codecs that build
//! here (rumqttc, rmqtt-codec, mqtt-protocol-core, mqtt-proto, mqttrs), on
//! streams of 10,000 packets (`wire_workload`): PUBLISH of 16 B, 256 B and
//! 4 KiB at QoS 0 and 1 for 3.1.1 and 5.0, and a mixed stream; `memcpy` of
//! the same bytes is the physical limit.
//!
//! mqtt-wire is measured twice on decode: `mqtt-wire` (`decode`, owned
//! packets split off a `BytesMut`) and `mqtt-wire-borrowed` (`decode_ref`,
//! a PUBLISH borrowed from a `&[u8]`, the like of mqttrs).
//!
//! Decode benches time decoding the whole stream and dropping every decoded
//! packet; making the input (a `BytesMut` copy of the stream for the codecs
//! that decode from a socket buffer) is not timed. Encode benches append the
//! 10,000 packets to one reused output buffer.
//!
//! Run: `cargo bench -p mqtt-benches --bench wire` (a filter such as
//! `-- decode/3.1.1` runs part of it); `benches/wire_table.py` turns
//! criterion's results into the tables of docs/performance.md.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

mod wire_workload;

use bytes::{Bytes, BytesMut};
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, Throughput,
};
use std::hint::black_box;
use std::time::Duration;
use wire_workload::{
    check, stream, Codec, MqttProto, Mqttrs, Ours, OursRef, ProtocolCore, Rmqtt, Rumqttc, Workload,
    N,
};

fn decode<C: Codec>(g: &mut BenchmarkGroup<'_, WallTime>, w: Workload, stream: &Bytes) {
    if !C::supports(w.ver()) {
        return;
    }
    let v = w.ver();
    g.bench_function(C::NAME, |b| {
        b.iter_batched_ref(
            || C::dec_prepare(stream),
            |input| C::decode_all(input, v),
            BatchSize::PerIteration,
        )
    });
}

fn encode<C: Codec>(g: &mut BenchmarkGroup<'_, WallTime>, w: Workload) {
    if !C::supports(w.ver()) {
        return;
    }
    let cycle = C::build(w);
    let mut out = BytesMut::new();
    g.bench_function(C::NAME, |b| {
        b.iter_batched_ref(
            || C::enc_prepare(&cycle),
            |input| C::encode_all(input, &mut out),
            BatchSize::PerIteration,
        )
    });
}

fn memcpy(g: &mut BenchmarkGroup<'_, WallTime>, stream: &Bytes) {
    let mut out: Vec<u8> = Vec::with_capacity(stream.len());
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            out.clear();
            out.extend_from_slice(black_box(&stream[..]));
            black_box(out.len())
        })
    });
}

/// Checks once, outside any timed loop, that every codec decodes the
/// stream to `N` packets and encodes its own model of it to the same bytes.
fn check_all(w: Workload, stream: &Bytes) {
    fn one<C: Codec>(w: Workload, stream: &Bytes) {
        if C::supports(w.ver()) {
            if let Some(note) = check::<C>(w, stream) {
                eprintln!("note: {note}");
            }
        }
    }
    one::<Ours>(w, stream);
    one::<OursRef>(w, stream);
    one::<Rumqttc>(w, stream);
    one::<Rmqtt>(w, stream);
    one::<ProtocolCore>(w, stream);
    one::<MqttProto>(w, stream);
    one::<Mqttrs>(w, stream);
}

fn configure(g: &mut BenchmarkGroup<'_, WallTime>, w: Workload) {
    g.throughput(Throughput::Elements(N as u64));
    let large = matches!(w, Workload::Publish { payload, .. } if payload >= 4096);
    g.sample_size(if large { 10 } else { 20 })
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
}

fn wire(c: &mut Criterion) {
    for w in Workload::all() {
        let stream = stream(w);
        check_all(w, &stream);

        let mut g = c.benchmark_group(format!("decode/{}", w.name()));
        configure(&mut g, w);
        decode::<Ours>(&mut g, w, &stream);
        decode::<OursRef>(&mut g, w, &stream);
        decode::<Rumqttc>(&mut g, w, &stream);
        decode::<Rmqtt>(&mut g, w, &stream);
        decode::<ProtocolCore>(&mut g, w, &stream);
        decode::<MqttProto>(&mut g, w, &stream);
        decode::<Mqttrs>(&mut g, w, &stream);
        memcpy(&mut g, &stream);
        g.finish();

        let mut g = c.benchmark_group(format!("encode/{}", w.name()));
        configure(&mut g, w);
        encode::<Ours>(&mut g, w);
        encode::<Rumqttc>(&mut g, w);
        encode::<Rmqtt>(&mut g, w);
        encode::<ProtocolCore>(&mut g, w);
        encode::<MqttProto>(&mut g, w);
        encode::<Mqttrs>(&mut g, w);
        memcpy(&mut g, &stream);
        g.finish();
    }
}

criterion_group!(benches, wire);
criterion_main!(benches);
