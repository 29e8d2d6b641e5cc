//! Zero-copy decoding: decoding a PUBLISH performs no heap allocation,
//! measured with a counting global allocator.
//!
//! Why `stats_alloc`: a counting allocator needs `unsafe impl GlobalAlloc`,
//! and the workspace lints set `unsafe_code = "forbid"`, which applies to
//! integration tests too and which no inner `#![allow]` can lift. Rather
//! than a helper crate with its own lint table and an `unsafe` impl to
//! review, this uses the small `stats_alloc` crate (as `mqtt-topic`'s memory
//! test does), which wraps the system allocator and counts with atomics.
//!
//! The file holds a single test function: the counter is global, so another
//! test running on a second thread would be counted too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use bytes::{Bytes, BytesMut};
use mqtt_wire::{
    decode, decode_bytes, decode_ref, DecodeConfig, Delivery, Encode, MqttString, Packet, PacketId,
    PacketRef, ProtocolVersion, Publish, PublishProperties, SubscriptionId, SubscriptionIds,
    TopicName, UserProperties,
};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;

#[global_allocator]
static A: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations and reallocations so far.
fn allocs() -> usize {
    let s = A.stats();
    s.allocations + s.reallocations
}

const N: usize = 1000;

/// The PUBLISH packets of the benchmark workload: topic
/// `home/floor1/room23/temperature`, QoS 0 and 1; for 5.0 with a content
/// type, a user property and a subscription identifier.
fn publishes(version: ProtocolVersion) -> Vec<Publish> {
    (0..N)
        .map(|i| {
            let delivery = match i % 2 {
                0 => Delivery::AtMostOnce,
                _ => Delivery::AtLeastOnce(PacketId::new(1 + i as u16).unwrap()),
            };
            let payload = Bytes::from(vec![i as u8; [16, 256, 4096][i % 3]]);
            let mut p = Publish::new(
                TopicName::from_static("home/floor1/room23/temperature").unwrap(),
                payload,
            )
            .with_delivery(delivery);
            if version.is_v5() {
                let mut props = PublishProperties::default();
                props.set_content_type(Some(MqttString::from_static("application/json")));
                props.set_user_properties(
                    [(
                        MqttString::from_static("unit"),
                        MqttString::from_static("celsius"),
                    )]
                    .into_iter()
                    .collect::<UserProperties>(),
                );
                props.set_subscription_identifiers(
                    [SubscriptionId::new(1 + i as u32).unwrap()]
                        .into_iter()
                        .collect::<SubscriptionIds>(),
                );
                p.properties = props;
            }
            p
        })
        .collect()
}

fn encode_all(ps: &[Publish], version: ProtocolVersion) -> BytesMut {
    let mut buf = BytesMut::new();
    for p in ps {
        p.encode(version, &mut buf).unwrap();
    }
    buf
}

/// Decodes the packets after the first with `decode` (the first promotes
/// the buffer to shared storage, which allocates once), comparing each with
/// what was encoded; returns the allocations made meanwhile.
fn count_decode(version: ProtocolVersion, expected: &[Publish]) -> usize {
    let cfg = DecodeConfig::new(version);
    let mut buf = encode_all(expected, version);
    let first = decode(&mut buf, &cfg).unwrap();
    assert_eq!(first, Some(Packet::Publish(expected[0].clone())));
    drop(first);

    let before = allocs();
    let mut seen = 1;
    while let Some(p) = decode(&mut buf, &cfg).unwrap() {
        // Comparing allocates nothing; `expected` is built beforehand.
        assert!(matches!(&p, Packet::Publish(x) if *x == expected[seen]));
        seen += 1;
    }
    let n = allocs() - before;
    assert_eq!(seen, N);
    assert!(buf.is_empty());
    n
}

/// The same with `decode_bytes` over a frozen buffer.
fn count_decode_bytes(version: ProtocolVersion, expected: &[Publish]) -> usize {
    let cfg = DecodeConfig::new(version);
    let mut buf = encode_all(expected, version).freeze();
    let first = decode_bytes(&mut buf, &cfg).unwrap();
    assert_eq!(first, Some(Packet::Publish(expected[0].clone())));
    drop(first);

    let before = allocs();
    let mut seen = 1;
    while let Some(p) = decode_bytes(&mut buf, &cfg).unwrap() {
        assert!(matches!(&p, Packet::Publish(x) if *x == expected[seen]));
        seen += 1;
    }
    let n = allocs() - before;
    assert_eq!(seen, N);
    n
}

/// The same with the borrowed `decode_ref` over a slice (no first-packet
/// exception: there is no buffer to promote).
fn count_decode_ref(version: ProtocolVersion, expected: &[Publish]) -> usize {
    let cfg = DecodeConfig::new(version);
    let buf = encode_all(expected, version);
    let before = allocs();
    let mut rest = &buf[..];
    let mut seen = 0;
    while let Some((p, n)) = decode_ref(rest, &cfg).unwrap() {
        let PacketRef::Publish(p) = p else {
            panic!("not a PUBLISH")
        };
        // Field by field: converting would allocate.
        let x = &expected[seen];
        assert_eq!(p.topic_bytes(), x.topic.as_ref().unwrap().as_bytes());
        assert_eq!(p.payload(), &x.payload[..]);
        assert_eq!(p.delivery(), x.delivery);
        if version.is_v5() {
            let props = p.properties();
            assert_eq!(props.content_type(), Some("application/json"));
            assert_eq!(props.user_properties().count(), 1);
            assert_eq!(props.subscription_identifiers().count(), 1);
        }
        rest = &rest[n..];
        seen += 1;
    }
    let n = allocs() - before;
    assert_eq!(seen, N);
    assert!(rest.is_empty());
    n
}

/// A 5.0 PUBLISH whose two User Properties are separated by a Content Type:
/// the run is not contiguous, so the decoder copies it (the documented rare
/// case), which the counter must see.
fn scattered_user_properties() -> BytesMut {
    let mut b = BytesMut::new();
    b.extend_from_slice(&[0x30, 26]); // PUBLISH QoS 0, Remaining Length 26
    b.extend_from_slice(&[0, 3, b'a', b'/', b'b']); // topic "a/b"
    b.extend_from_slice(&[18]); // Property Length
    b.extend_from_slice(&[0x26, 0, 1, b'k', 0, 1, b'v']); // User Property k=v
    b.extend_from_slice(&[0x03, 0, 1, b't']); // Content Type "t"
    b.extend_from_slice(&[0x26, 0, 1, b'k', 0, 1, b'w']); // User Property k=w
    b.extend_from_slice(b"xy"); // payload
    b
}

fn publish_decode_allocates_nothing() {
    let v3 = publishes(ProtocolVersion::V3_1_1);
    let v5 = publishes(ProtocolVersion::V5);

    // The counter is process-wide: the test harness's own threads may
    // allocate at any moment. A decoder that allocated would do so for each
    // of the 999 packets in every attempt, so the least of three attempts
    // must be exactly 0.
    let least = |f: &dyn Fn() -> usize| (0..3).map(|_| f()).min().unwrap();
    let v311 = ProtocolVersion::V3_1_1;
    let v500 = ProtocolVersion::V5;
    assert_eq!(least(&|| count_decode(v311, &v3)), 0, "3.1.1 decode");
    assert_eq!(least(&|| count_decode(v500, &v5)), 0, "5.0 decode");
    assert_eq!(
        least(&|| count_decode_bytes(v311, &v3)),
        0,
        "3.1.1 decode_bytes"
    );
    assert_eq!(
        least(&|| count_decode_bytes(v500, &v5)),
        0,
        "5.0 decode_bytes"
    );
    assert_eq!(
        least(&|| count_decode_ref(v311, &v3)),
        0,
        "3.1.1 decode_ref"
    );
    assert_eq!(least(&|| count_decode_ref(v500, &v5)), 0, "5.0 decode_ref");

    // The counter works: a non-contiguous User Property run is copied.
    let cfg = DecodeConfig::new(ProtocolVersion::V5);
    let mut buf = scattered_user_properties();
    let before = allocs();
    let p = decode(&mut buf, &cfg).unwrap().unwrap();
    let n = allocs() - before;
    assert!(n > 0, "copying scattered user properties must allocate");
    let Packet::Publish(p) = p else {
        panic!("not a PUBLISH: {p:?}")
    };
    let pairs: Vec<(String, String)> = p
        .properties
        .user_properties()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        pairs,
        [("k".into(), "v".into()), ("k".into(), "w".into())],
        "order kept"
    );
    assert_eq!(p.properties.content_type().unwrap(), "t");
    assert_eq!(&p.payload[..], b"xy");
}

/// Runs without libtest (`harness = false` in Cargo.toml): the counting
/// allocator sees the whole process, and libtest's own thread allocates
/// while a test runs (its progress output), which made exact counts fail
/// now and then.
fn main() {
    publish_decode_allocates_nothing();
    println!("test publish_decode_allocates_nothing ... ok");
}
