//! A quiet server connection gives its buffers back at its next
//! `handle_timeout` (which a connection with a keep alive gets about once
//! per keep-alive period), and those of the CONNECT exchange once the
//! CONNACK is handed out; measured with a counting allocator.
//!
//! Run without libtest (see `main`): the allocator counts the whole process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::alloc::System;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqtt_session::server::{Accept, Event, ServerConfig, ServerConnection};
use mqtt_wire::{
    AckProperties, Connect, Encode, MqttString, Packet, PacketId, ProtocolVersion, QoS,
    SubAckReasonCode, Subscribe, SubscriptionOptions, TopicFilter,
};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static A: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not freed.
fn live() -> isize {
    let s = A.stats();
    s.bytes_allocated as isize - s.bytes_deallocated as isize + s.bytes_reallocated
}

fn enc<P: Encode>(p: &P) -> Vec<u8> {
    let mut b = BytesMut::new();
    p.encode(ProtocolVersion::V5, &mut b).unwrap();
    b.to_vec()
}

fn a_quiet_connection_gives_back_its_buffers_at_the_keep_alive_check() {
    let t0 = Instant::now();
    let mut c = Connect::new(ProtocolVersion::V5, MqttString::from_static("idle-client"));
    c.keep_alive = 60;
    let connect = enc(&c);
    let sub = Subscribe::new(
        PacketId::new(1).unwrap(),
        TopicFilter::try_from("site/+/temperature").unwrap(),
        SubscriptionOptions::new(QoS::AtLeastOnce),
    );
    let subscribe = enc(&sub);
    let ping = enc(&Packet::PingReq);

    let mut s = ServerConnection::new(ServerConfig::default(), t0);
    let before = live();
    s.handle_read(t0, &connect);
    assert!(matches!(s.poll_event(), Some(Event::Connect(_))));
    s.accept(t0, Accept::new()).unwrap();
    assert!(s.poll_transmit().is_some(), "CONNACK");
    s.handle_read(t0, &subscribe);
    match s.poll_event() {
        Some(Event::Subscribe(sub)) => s
            .suback(
                t0,
                sub.packet_id,
                vec![SubAckReasonCode::GrantedQoS1],
                AckProperties::default(),
            )
            .unwrap(),
        other => panic!("{other:?}"),
    }
    let t1 = t0 + Duration::from_secs(30);
    s.handle_read(t1, &ping);
    while s.poll_transmit().is_some() {}
    while s.poll_event().is_some() {}
    let busy = live() - before;

    // The keep-alive check of a connection that is still within its keep
    // alive: not closed, and its buffers and event slot are given back.
    let deadline = s.poll_timeout().expect("a keep-alive deadline");
    assert!(deadline > t1);
    s.handle_timeout(t1 + Duration::from_secs(1));
    assert!(s.poll_event().is_none(), "still open");
    let idle = live() - before;
    assert!(
        idle + 128 <= busy,
        "busy {busy} B, after the keep-alive check {idle} B"
    );

    // It still works: the next packets are read and answered.
    s.handle_read(t1 + Duration::from_secs(2), &ping);
    let out = s.poll_transmit().expect("PINGRESP");
    assert_eq!(&out[..], &[0xd0, 0x00]);
}

/// Handing out the CONNACK that accepts the client gives back the buffers
/// of the CONNECT exchange; the next packet still works.
fn the_connect_exchange_buffers_go_back_with_the_connack() {
    let t0 = Instant::now();
    let mut c = Connect::new(ProtocolVersion::V5, MqttString::from_static("idle-client"));
    c.keep_alive = 0;
    let connect = enc(&c);
    let mut s = ServerConnection::new(ServerConfig::default(), t0);
    let before = live();
    s.handle_read(t0, &connect);
    assert!(matches!(s.poll_event(), Some(Event::Connect(_))));
    s.accept(t0, Accept::new()).unwrap();
    let busy = live() - before;
    let connack = s.poll_transmit().expect("CONNACK");
    drop(connack);
    let idle = live() - before;
    assert!(
        idle + 64 <= busy,
        "with the CONNACK queued {busy} B, after handing it out {idle} B"
    );
    s.handle_read(t0, &enc(&Packet::PingReq));
    let out = s.poll_transmit().expect("PINGRESP");
    assert_eq!(&out[..], &[0xd0, 0x00]);
}

/// Runs without libtest (`harness = false` in Cargo.toml): the counting
/// allocator sees the whole process, and libtest's own thread allocates
/// while a test runs (its progress output), which made exact counts fail
/// now and then.
fn main() {
    a_quiet_connection_gives_back_its_buffers_at_the_keep_alive_check();
    println!("test a_quiet_connection_gives_back_its_buffers_at_the_keep_alive_check ... ok");
    the_connect_exchange_buffers_go_back_with_the_connack();
    println!("test the_connect_exchange_buffers_go_back_with_the_connack ... ok");
}
