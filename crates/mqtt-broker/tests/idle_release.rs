//! Connections without a keep alive give back their empty buffers every
//! `idle_release_interval`, measured with a counting allocator.
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
use mqtt_broker::{Broker, BrokerConfig, ConnectionId};
use mqtt_wire::{
    Connect, Encode, MqttString, PacketId, ProtocolVersion, QoS, Subscribe, SubscriptionOptions,
    TopicFilter,
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

/// Feeds `bytes` to `id` and drains every output; returns the bytes sent.
fn feed(b: &mut Broker, id: ConnectionId, now: Instant, bytes: &[u8]) -> Vec<u8> {
    b.handle_read(id, now, bytes);
    let mut out = Vec::new();
    while let Some((to, x)) = b.poll_transmit() {
        assert_eq!(to, id);
        out.extend_from_slice(&x);
    }
    while b.poll_event().is_some() {}
    out
}

const N: usize = 200;

/// N clients with keep alive 0, connected and subscribed.
fn connected(config: BrokerConfig, t0: Instant) -> (Broker, Vec<ConnectionId>) {
    let mut b = Broker::new(config);
    let mut ids = Vec::new();
    for i in 0..N {
        let id = b.accept(t0).unwrap();
        let mut c = Connect::new(
            ProtocolVersion::V5,
            MqttString::try_from(format!("quiet-{i}")).unwrap(),
        );
        c.keep_alive = 0;
        assert!(!feed(&mut b, id, t0, &enc(&c)).is_empty(), "CONNACK");
        let sub = Subscribe::new(
            PacketId::new(1).unwrap(),
            TopicFilter::try_from(format!("site/{i}/+")).unwrap(),
            SubscriptionOptions::new(QoS::AtLeastOnce),
        );
        assert!(!feed(&mut b, id, t0, &enc(&sub)).is_empty(), "SUBACK");
        ids.push(id);
    }
    (b, ids)
}

fn connections_without_keep_alive_give_back_their_buffers_each_interval() {
    let t0 = Instant::now();

    // Without the release, a connection with keep alive 0 has no deadline
    // at all, and keeps what its last traffic left.
    let mut config = BrokerConfig::default();
    config.idle_release_interval = None;
    let (mut b, ids) = connected(config, t0);
    // The connect deadlines armed at accept fall due (a spurious check),
    // then traffic comes (a PINGREQ each): nothing is armed any more.
    let t1 = t0 + Duration::from_secs(11);
    let t2 = t1 + Duration::from_secs(1);
    b.handle_timeout(t1);
    for id in &ids {
        assert_eq!(feed(&mut b, *id, t2, &[0xc0, 0x00]), vec![0xd0, 0x00]);
    }
    assert_eq!(b.poll_timeout(), None);
    drop(b);

    let interval = BrokerConfig::default().idle_release_interval.unwrap();
    let (mut b, ids) = connected(BrokerConfig::default(), t0);
    b.handle_timeout(t1);
    for id in &ids {
        assert_eq!(feed(&mut b, *id, t2, &[0xc0, 0x00]), vec![0xd0, 0x00]);
    }
    let deadline = b.poll_timeout().expect("the release timer");
    assert!(deadline > t1 && deadline <= t0 + interval + Duration::from_millis(1));
    let busy = live();
    b.handle_timeout(deadline);
    while b.poll_transmit().is_some() {}
    while b.poll_event().is_some() {}
    let idle = live();
    let per = (busy - idle) / N as isize;
    assert!(
        per >= 96,
        "each quiet connection gave back {per} B ({busy} -> {idle} B in all)"
    );
    assert_eq!(b.stats().connections, N, "nobody was closed");
    // The timer is armed again, and the connections still work.
    assert!(b.poll_timeout().is_some_and(|d| d > deadline));
    let later = deadline + Duration::from_secs(1);
    assert_eq!(feed(&mut b, ids[0], later, &[0xc0, 0x00]), vec![0xd0, 0x00]);
}

/// Runs without libtest (`harness = false` in Cargo.toml): the counting
/// allocator sees the whole process, and libtest's own thread allocates
/// while a test runs (its progress output), which made exact counts fail
/// now and then.
fn main() {
    connections_without_keep_alive_give_back_their_buffers_each_interval();
    println!("test connections_without_keep_alive_give_back_their_buffers_each_interval ... ok");
}
