//! Idle memory of a connected server session: `size_of` the connection plus
//! the heap bytes it still holds once connected, counted with a counting
//! global allocator (bytes requested and not freed, not allocator
//! overhead) across creating 1,000 server connections, feeding each the
//! client's CONNECT, accepting it (CONNACK) and draining every output; the
//! average per connection. mqtt-session's `ServerConnection` side by side
//! with mqtt-protocol-core's `Connection<role::Server>`.
//!
//! The CONNECT bytes are made once, outside the count (a client's CONNECT:
//! client id `sensor-0001`, keep alive 60, clean start, no properties).
//! Then, to see what a session keeps after traffic, the same after 1,000
//! QoS 1 messages through each connection (pair per connection; only the
//! server half is counted).
//!
//! Run: `cargo bench -p mqtt-benches --bench session_memory`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

mod session_workload;

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::hint::black_box;
use std::time::Instant;

use mqtt_protocol_core::mqtt;
use mqtt_protocol_core::mqtt::prelude::*;
use mqtt_session::server::{Accept, Event as SEvent, ServerConfig, ServerConnection};
use session_workload::{Pair, Ver};

#[global_allocator]
static A: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn live() -> isize {
    let s = A.stats();
    s.bytes_allocated as isize - s.bytes_deallocated as isize
}

const CONNS: usize = 1_000;

fn ours_connect_bytes(v: Ver) -> Vec<u8> {
    use mqtt_session::client::{Client, ClientConfig};
    use mqtt_wire::{Connect, MqttString};
    let mut c = Client::new(ClientConfig::new(Connect::new(
        session_workload::ours::version(v),
        MqttString::from_static("sensor-0001"),
    )));
    c.connect(Instant::now()).unwrap();
    let mut out = Vec::new();
    while let Some(b) = c.poll_transmit() {
        out.extend_from_slice(&b);
    }
    out
}

fn core_connect_bytes(v: Ver) -> Vec<u8> {
    let mut c =
        mqtt::Connection::<mqtt::role::Client>::new(session_workload::protocol_core::version(v));
    let evs = match v {
        Ver::V311 => c.checked_send(
            mqtt::packet::v3_1_1::Connect::builder()
                .client_id("sensor-0001")
                .unwrap()
                .keep_alive(60)
                .clean_session(true)
                .build()
                .unwrap(),
        ),
        Ver::V5 => c.checked_send(
            mqtt::packet::v5_0::Connect::builder()
                .client_id("sensor-0001")
                .unwrap()
                .keep_alive(60)
                .clean_start(true)
                .build()
                .unwrap(),
        ),
    };
    let mut out = Vec::new();
    for e in evs {
        if let mqtt::connection::Event::RequestSendPacket { packet, .. } = e {
            out.extend_from_slice(&packet.to_continuous_buffer());
        }
    }
    out
}

/// A server connection that accepted `connect`, every output drained.
fn ours_server(connect: &[u8], now: Instant) -> ServerConnection {
    let mut s = ServerConnection::new(ServerConfig::default(), now);
    s.handle_read(now, connect);
    while let Some(b) = s.poll_transmit() {
        black_box(&b);
    }
    match s.poll_event() {
        Some(SEvent::Connect(c)) => {
            black_box(&c);
        }
        other => panic!("expected CONNECT, got {other:?}"),
    }
    black_box(s.poll_timeout());
    s.accept(now, Accept::new()).unwrap();
    while let Some(b) = s.poll_transmit() {
        black_box(&b);
    }
    assert!(s.poll_event().is_none());
    black_box(s.poll_timeout());
    assert!(s.is_connected());
    s
}

fn core_server(v: Ver, connect: &[u8]) -> mqtt::Connection<mqtt::role::Server> {
    let mut s =
        mqtt::Connection::<mqtt::role::Server>::new(session_workload::protocol_core::version(v));
    s.set_auto_pub_response(true);
    let mut cur = mqtt::common::Cursor::new(connect);
    let mut saw_connect = false;
    while (cur.position() as usize) < connect.len() {
        for e in s.recv(&mut cur) {
            if let mqtt::connection::Event::NotifyPacketReceived(
                mqtt::packet::Packet::V3_1_1Connect(_) | mqtt::packet::Packet::V5_0Connect(_),
            ) = e
            {
                saw_connect = true;
            }
        }
    }
    assert!(saw_connect);
    let evs = match v {
        Ver::V311 => s.checked_send(
            mqtt::packet::v3_1_1::Connack::builder()
                .session_present(false)
                .return_code(mqtt::result_code::ConnectReturnCode::Accepted)
                .build()
                .unwrap(),
        ),
        Ver::V5 => s.checked_send(
            mqtt::packet::v5_0::Connack::builder()
                .session_present(false)
                .reason_code(mqtt::result_code::ConnectReasonCode::Success)
                .build()
                .unwrap(),
        ),
    };
    let mut sent = false;
    for e in evs {
        match e {
            mqtt::connection::Event::RequestSendPacket { packet, .. } => {
                black_box(packet.to_continuous_buffer());
                sent = true;
            }
            mqtt::connection::Event::NotifyError(e) => panic!("{e:?}"),
            e => {
                black_box(&e);
            }
        }
    }
    assert!(sent);
    s
}

/// Average heap bytes per element left by `make`, over `CONNS` elements kept
/// alive (their vector is allocated before counting).
fn per_conn<T>(mut make: impl FnMut() -> T) -> (f64, Vec<T>) {
    let mut keep: Vec<T> = Vec::with_capacity(CONNS);
    let base = live();
    for _ in 0..CONNS {
        keep.push(make());
    }
    let used = live() - base;
    (used as f64 / CONNS as f64, keep)
}

fn row(name: &str, v: Ver, when: &str, size: usize, heap: f64, extra: &str) {
    println!(
        "| {name:<18} | {:<5} | {when:<22} | {size:>7} | {heap:>8.1} | {:>8.1} | {extra} |",
        v.label(),
        size as f64 + heap
    );
}

fn main() {
    println!(
        "| library            | ver   | state                  | size_of | heap B   | total B  | notes |"
    );
    println!("|---|---|---|---:|---:|---:|---|");
    for v in [Ver::V311, Ver::V5] {
        // Idle right after connecting.
        let now = Instant::now();
        let ours_bytes = ours_connect_bytes(v);
        let (heap, servers) = per_conn(|| ours_server(&ours_bytes, now));
        let approx = servers.iter().map(|s| s.heap_bytes()).sum::<usize>() as f64 / CONNS as f64;
        row(
            "mqtt-session",
            v,
            "connected, idle",
            std::mem::size_of::<ServerConnection>(),
            heap,
            &format!("heap_bytes() says {approx:.0}"),
        );
        drop(servers);

        let core_bytes = core_connect_bytes(v);
        let (heap, servers) = per_conn(|| core_server(v, &core_bytes));
        row(
            "mqtt-protocol-core",
            v,
            "connected, idle",
            std::mem::size_of::<mqtt::Connection<mqtt::role::Server>>(),
            heap,
            "",
        );
        drop(servers);

        // After traffic: each server received 1,000 QoS 1 and 1,000 QoS 2
        // messages from its client; then the client is dropped and what the
        // server still holds is counted (from before the pair was made).
        after_traffic::<session_workload::ours::Ours>(
            v,
            std::mem::size_of::<ServerConnection>(),
            |s| format!("heap_bytes() says {}", s.heap_bytes()),
        );
        after_traffic::<session_workload::protocol_core::ProtocolCore>(
            v,
            std::mem::size_of::<mqtt::Connection<mqtt::role::Server>>(),
            |_| String::new(),
        );
    }
    println!();
    println!(
        "size_of: mqtt-session server::Event {} B, client::Event {} B, mqtt_wire::Publish {} B; \
         mqtt-protocol-core Event {} B",
        std::mem::size_of::<SEvent>(),
        std::mem::size_of::<mqtt_session::client::Event>(),
        std::mem::size_of::<mqtt_wire::Publish>(),
        std::mem::size_of::<mqtt::connection::Event>(),
    );
}

fn after_traffic<P: Pair>(v: Ver, size: usize, note: impl Fn(&P::Server) -> String) {
    let mut servers: Vec<P::Server> = Vec::with_capacity(CONNS);
    let base = live();
    for _ in 0..CONNS {
        let mut p = P::connect(v);
        p.run(1, 1_000);
        p.run(2, 1_000);
        servers.push(p.into_server());
    }
    let heap = (live() - base) as f64 / CONNS as f64;
    let n = note(&servers[0]);
    row(P::NAME, v, "idle after 2,000 msgs", size, heap, &n);
}
