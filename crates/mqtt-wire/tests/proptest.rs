//! Property tests of the codec, driven by the generator of
//! `mqtt_wire::arbitrary` (shared with the fuzz targets):
//!
//! (a) valid packets of every version round-trip: decode(encode(p)) == p,
//!     `encoded_len` is what `encode` writes, and `encode_checked` accepts a
//!     limit of exactly that size and refuses one byte less;
//! (b) arbitrary bytes (random, and valid streams with a few bytes changed)
//!     split into arbitrary chunks never panic and decode exactly as the
//!     whole buffer does (same packets, same first error);
//! (c) a valid stream of several packets split at every byte position
//!     decodes to the packets it was built from, and `Ok(None)` never
//!     consumes anything;
//! (d) in (a) to (c), the borrowed decoder (`decode_ref`) agrees with the
//!     owned one: same packets (a borrowed PUBLISH checked accessor by
//!     accessor against the owned one), same lengths, same first error.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use arbitrary::Unstructured;
use bytes::BytesMut;
use mqtt_wire::arbitrary::{
    check_decode_any_chunking, check_packet, chunk_by_sizes, decode_chunks, decode_whole_bytes,
    decode_whole_ref, packet, packet_types, VERSIONS,
};
use mqtt_wire::{
    DecodeConfig, Encode, EncodeError, Packet, PacketType, ProtocolVersion, MAX_PACKET_SIZE,
};
use proptest::prelude::*;
use std::collections::BTreeSet;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Valid packets of `version` from fuzzer bytes.
fn packets(data: &[u8], version: ProtocolVersion, n: usize) -> Vec<Packet> {
    let mut u = Unstructured::new(data);
    (0..n)
        .map(|_| packet(&mut u, version).expect("the generator never fails"))
        .collect()
}

fn encode_all(ps: &[Packet], version: ProtocolVersion) -> Vec<u8> {
    let mut out = BytesMut::new();
    for p in ps {
        p.encode(version, &mut out).unwrap();
    }
    out.to_vec()
}

proptest! {
    #![proptest_config(config(1024))]

    /// (a) Round trip of a valid packet for each version, with every
    /// contract of `check_packet` (length, checked encode at len and len-1,
    /// short buffer, decode and decode_bytes, decoder limit, every prefix
    /// `Ok(None)`, refusal rather than loss for the other versions).
    #[test]
    fn valid_packets_round_trip(data in prop::collection::vec(any::<u8>(), 0..1536)) {
        let mut u = Unstructured::new(&data);
        for version in VERSIONS {
            let p = packet(&mut u, version).expect("the generator never fails");
            check_packet(&p, version);

            // The headline properties, stated here as well.
            let len = p.encoded_len(version);
            let mut out = BytesMut::new();
            prop_assert_eq!(p.encode(version, &mut out), Ok(len));
            prop_assert_eq!(out.len(), len);
            let cfg = DecodeConfig::new(version).with_max_packet_size(MAX_PACKET_SIZE);
            prop_assert_eq!(mqtt_wire::decode(&mut out, &cfg), Ok(Some(p.clone())));
            let max = len as u32;
            prop_assert_eq!(p.encode_checked(version, max, &mut BytesMut::new()), Ok(len));
            prop_assert_eq!(
                p.encode_checked(version, max - 1, &mut BytesMut::new()),
                Err(EncodeError::PacketTooLarge { size: len, max: max - 1 })
            );
        }
    }
}

proptest! {
    #![proptest_config(config(768))]

    /// (b) Random bytes in random chunks: no panic, same outcome as whole.
    #[test]
    fn random_bytes_any_chunking(
        data in prop::collection::vec(any::<u8>(), 0..300),
        sizes in prop::collection::vec(1usize..40, 1..16),
    ) {
        for version in VERSIONS {
            for max in [mqtt_wire::DEFAULT_MAX_PACKET_SIZE, 64] {
                let cfg = DecodeConfig::new(version).with_max_packet_size(max);
                let whole = decode_chunks([&data[..]], &cfg);
                prop_assert_eq!(&decode_whole_bytes(&data, &cfg), &whole);
                // (d) borrowed and owned agree on arbitrary bytes.
                prop_assert_eq!(&decode_whole_ref(&data, &cfg), &whole);
                let chunked = decode_chunks(chunk_by_sizes(&data, &sizes), &cfg);
                prop_assert_eq!(chunked, whole);
            }
        }
        // And the fuzz target's own check (seeded chunking, re-encode).
        check_decode_any_chunking(&data);
    }

    /// (b) Valid streams with a few bytes changed, inserted or removed (so
    /// decoding gets past the first byte), in random chunks.
    #[test]
    fn mutated_streams_any_chunking(
        seed in prop::collection::vec(any::<u8>(), 0..400),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
        sizes in prop::collection::vec(1usize..40, 1..16),
    ) {
        for version in VERSIONS {
            let mut data = encode_all(&packets(&seed, version, 3), version);
            for (at, byte, kind) in &edits {
                let i = at.index(data.len() + 1);
                match kind {
                    0 if i < data.len() => data[i] = *byte,
                    1 if i < data.len() => { data.remove(i); }
                    _ => data.insert(i, *byte),
                }
            }
            let cfg = DecodeConfig::new(version);
            let whole = decode_chunks([&data[..]], &cfg);
            prop_assert_eq!(&decode_whole_bytes(&data, &cfg), &whole);
            prop_assert_eq!(&decode_whole_ref(&data, &cfg), &whole);
            prop_assert_eq!(decode_chunks(chunk_by_sizes(&data, &sizes), &cfg), whole);
            let mut with_seed = vec![sizes[0] as u8];
            with_seed.extend_from_slice(&data);
            check_decode_any_chunking(&with_seed);
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// (c) A valid stream split at every byte position (and fed one byte at
    /// a time) decodes to exactly the packets it was built from; the
    /// streaming contract (`Ok(None)` consumes nothing, success consumes one
    /// packet) is asserted inside `decode_chunks`.
    #[test]
    fn valid_stream_split_at_every_position(
        data in prop::collection::vec(any::<u8>(), 0..600),
        n in 1usize..6,
    ) {
        for version in VERSIONS {
            let ps = packets(&data, version, n);
            let stream = encode_all(&ps, version);
            let cfg = DecodeConfig::new(version).with_max_packet_size(MAX_PACKET_SIZE);
            let whole = decode_chunks([&stream[..]], &cfg);
            prop_assert_eq!(&whole.packets, &ps);
            prop_assert_eq!(whole.error, None);
            prop_assert_eq!(whole.leftover, 0);
            // (d) borrowed and owned agree on arbitrary valid packets.
            prop_assert_eq!(&decode_whole_ref(&stream, &cfg), &whole);
            // Every position for streams up to 1 KiB; beyond, every position
            // around each packet boundary (fixed headers) and a sample.
            let cuts: Vec<usize> = if stream.len() <= 1024 {
                (0..=stream.len()).collect()
            } else {
                let mut cuts: Vec<usize> = (0..=stream.len()).step_by(stream.len() / 256).collect();
                let mut at = 0;
                for p in &ps {
                    cuts.extend(at..(at + 8).min(stream.len()));
                    at += p.encoded_len(version);
                    cuts.extend(at.saturating_sub(2)..=at);
                }
                cuts
            };
            for cut in cuts {
                let (a, b) = stream.split_at(cut);
                prop_assert_eq!(&decode_chunks([a, b], &cfg), &whole, "split at {}", cut);
            }
            if stream.len() <= 1024 {
                prop_assert_eq!(&decode_chunks(stream.chunks(1), &cfg), &whole);
            }
        }
    }
}

/// The generator reaches every packet type of each version and every
/// property field (checked through the derived `Debug` output), so the
/// property tests above and the fuzz target exercise all of them.
#[test]
fn generator_covers_every_packet_type_and_field() {
    for version in VERSIONS {
        let mut types = BTreeSet::new();
        let mut debug = String::new();
        for seed in 0..3000u64 {
            let data = mqtt_wire::arbitrary::xorshift_bytes(seed, 512);
            let p = packets(&data, version, 1).pop().unwrap();
            types.insert(p.packet_type());
            if version.is_v5() {
                debug.push_str(&format!("{p:?}\n"));
            }
        }
        let want: BTreeSet<PacketType> = packet_types(version).collect();
        assert_eq!(types, want, "{version}");
        assert_eq!(types.contains(&PacketType::Auth), version.is_v5());
        if !version.is_v5() {
            continue;
        }
        let fields = [
            // CONNECT, Will
            "session_expiry_interval",
            "receive_maximum",
            "maximum_packet_size",
            "topic_alias_maximum",
            "request_response_information",
            "request_problem_information",
            "authentication_method",
            "authentication_data",
            "will_delay_interval",
            "payload_format_indicator",
            "message_expiry_interval",
            "content_type",
            "response_topic",
            "correlation_data",
            "will",
            "username",
            "password",
            // CONNACK
            "maximum_qos",
            "retain_available",
            "assigned_client_identifier",
            "reason_string",
            "wildcard_subscription_available",
            "subscription_identifiers_available",
            "shared_subscription_available",
            "server_keep_alive",
            "response_information",
            "server_reference",
            // PUBLISH, SUBSCRIBE
            "topic_alias",
            "topic",
            "subscription_identifier",
        ];
        for f in fields {
            assert!(
                debug.contains(&format!("{f}: Some(")),
                "{f} never generated"
            );
        }
        assert!(
            debug.contains("user_properties: [("),
            "user properties never generated"
        );
        let with_ids = debug
            .match_indices("subscription_identifiers: [")
            .any(|(i, m)| debug[i + m.len()..].starts_with(|c: char| c.is_ascii_digit()));
        assert!(with_ids, "subscription identifiers never generated");
        for s in [
            "topic: None", // topic alias standing in (5.0)
            "dup: true",
            "retain_handling: DoNotSend",
            "no_local: true",
            "\\u{feff}", // BOM kept (MQTT-1.5.4-3)
            "$share/",
            "//", // empty levels
            "#",
            "+",
        ] {
            assert!(debug.contains(s), "{s:?} never generated");
        }
    }
}
