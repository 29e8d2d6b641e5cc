//! Replays every committed fuzz corpus file through the checks the fuzz
//! targets run (`mqtt_wire::arbitrary`), so a crash found once stays fixed
//! without a fuzzer.
//!
//! It also holds the generator of the seed corpora: the seeds are built
//! here and checked on every run; with `MQTT_WIRE_WRITE_CORPUS=1` set,
//! `cargo test -p mqtt-wire --test fuzz_corpus` (re)writes them as
//! `fuzz/corpus/wire_*/seed-*`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arbitrary::Unstructured;
use bytes::BytesMut;
use mqtt_wire::arbitrary::{
    check_decode_any_chunking, check_roundtrip, decode_chunks, packet, packet_types, VERSIONS,
};
use mqtt_wire::{DecodeConfig, Encode, Packet, PacketType, ProtocolVersion};
use std::path::PathBuf;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn replay(target: &str, check: fn(&[u8])) {
    let dir = corpus_dir(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_file() {
            let data = std::fs::read(&path).unwrap();
            let r = std::panic::catch_unwind(|| check(&data));
            assert!(r.is_ok(), "{} fails", path.display());
            n += 1;
        }
    }
    assert!(n >= 1, "no corpus file in {}", dir.display());
}

#[test]
fn wire_decode_corpus() {
    replay("wire_decode", check_decode_any_chunking);
}

#[test]
fn wire_roundtrip_corpus() {
    replay("wire_roundtrip", check_roundtrip);
}

// ---------------------------------------------------------------------------
// Seed generator
// ---------------------------------------------------------------------------

fn short_name(version: ProtocolVersion) -> &'static str {
    match version {
        ProtocolVersion::V3_1 => "v31",
        ProtocolVersion::V3_1_1 => "v311",
        _ => "v5",
    }
}

/// Two generated packets of every type for every version, each alone and
/// all of a version in one stream.
fn valid_packets() -> Vec<(String, ProtocolVersion, Vec<Packet>)> {
    let mut out = Vec::new();
    for version in VERSIONS {
        let mut all = Vec::new();
        for t in packet_types(version) {
            let mut found = 0;
            for seed in 0.. {
                let data = mqtt_wire::arbitrary::xorshift_bytes(seed * 7919 + t as u64, 256);
                let p = packet(&mut Unstructured::new(&data), version).unwrap();
                if p.packet_type() == t {
                    let name = format!("{}-{:?}-{found}", short_name(version), t).to_lowercase();
                    out.push((name, version, vec![p.clone()]));
                    all.push(p);
                    found += 1;
                    if found == 2 {
                        break;
                    }
                }
            }
        }
        out.push((format!("{}-stream", short_name(version)), version, all));
    }
    out
}

/// Hand-written malformed (or edge) streams, each named for the rule it
/// breaks. Most are malformed in every version; some only in one.
fn malformed() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("reserved-type-0", vec![0x00, 0x00]),
        ("auth-before-v5", vec![0xf0, 0x00]),
        ("mqtt-3.6.1-1-pubrel-flags", vec![0x60, 2, 0, 1]),
        (
            "mqtt-3.8.1-1-subscribe-flags",
            vec![0x80, 6, 0, 1, 0, 1, b'a', 0],
        ),
        ("mqtt-3.3.1-4-qos3", vec![0x36, 5, 0, 3, b'a', b'/', b'b']),
        (
            "mqtt-3.3.1-2-dup-qos0",
            vec![0x38, 5, 0, 3, b'a', b'/', b'b'],
        ),
        ("mqtt-1.5.5-1-non-minimal-vbi", vec![0xc0, 0x80, 0x00]),
        ("five-byte-vbi", vec![0x30, 0xff, 0xff, 0xff, 0xff, 0x01]),
        ("too-large", vec![0x30, 0xff, 0xff, 0xff, 0x7f]),
        ("truncated", vec![0x30, 0x0a, 0x00, 0x03, b'a']),
        ("mqtt-2.3.1-1-zero-packet-id", vec![0x40, 2, 0, 0]),
        (
            "mqtt-3.3.2-2-wildcard-topic",
            vec![0x30, 5, 0, 3, b'a', b'/', b'+'],
        ),
        ("mqtt-1.5.4-2-nul-topic", vec![0x30, 5, 0, 3, b'a', 0, b'b']),
        (
            "mqtt-1.5.4-1-surrogate",
            vec![0x30, 5, 0, 3, 0xed, 0xa0, 0x80],
        ),
        ("mqtt-1.5.4-1-bad-utf8", vec![0x30, 4, 0, 2, 0xc3, 0x28]),
        (
            "mqtt-1.5.4-3-bom-topic",
            vec![0x30, 6, 0, 3, 0xef, 0xbb, 0xbf, b'x'],
        ),
        (
            "v5-duplicate-property",
            vec![
                0x30, 14, 0, 3, b'a', b'/', b'b', 8, 0x03, 0, 1, b't', 0x03, 0, 1, b'u',
            ],
        ),
        (
            "v5-unknown-property",
            vec![0x30, 8, 0, 3, b'a', b'/', b'b', 2, 0x7f, 0],
        ),
        (
            "v5-property-not-allowed",
            vec![0x30, 11, 0, 3, b'a', b'/', b'b', 5, 0x11, 0, 0, 0, 1],
        ),
        (
            "mqtt-3.3.2-8-topic-alias-0",
            vec![0x30, 9, 0, 3, b'a', b'/', b'b', 3, 0x23, 0, 0],
        ),
        ("v5-empty-topic-no-alias", vec![0x30, 3, 0, 0, 0]),
        (
            "v5-empty-topic-with-alias",
            vec![0x30, 6, 0, 0, 3, 0x23, 0, 5],
        ),
        (
            "v5-scattered-user-properties",
            vec![
                0x30, 26, 0, 3, b'a', b'/', b'b', 18, 0x26, 0, 1, b'k', 0, 1, b'v', 0x03, 0, 1,
                b't', 0x26, 0, 1, b'k', 0, 1, b'w', b'x', b'y',
            ],
        ),
        (
            "connect-v311-minimal",
            vec![0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 0],
        ),
        (
            "connect-v31-minimal",
            vec![
                0x10, 14, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 0x02, 0, 60, 0, 0,
            ],
        ),
        (
            "mqtt-3.1.2-2-level-6",
            vec![0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 6, 0x02, 0, 60, 0, 0],
        ),
        (
            "mqtt-3.1.2-3-reserved-flag",
            vec![0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x03, 0, 60, 0, 0],
        ),
        (
            "mqtt-3.1.2-11-will-qos-without-will",
            vec![0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x0a, 0, 60, 0, 0],
        ),
        (
            "mqtt-3.1.2-22-password-without-username",
            vec![
                0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x42, 0, 60, 0, 0, 0, 0,
            ],
        ),
        ("mqtt-3.2.2-1-connack-flags", vec![0x20, 2, 0x02, 0]),
        ("connack-v3-return-code-6", vec![0x20, 2, 0, 6]),
        ("mqtt-3.8.3-2-subscribe-empty", vec![0x82, 2, 0, 1]),
        (
            "mqtt-3.8.3-5-subscribe-options",
            vec![0x82, 8, 0, 1, 0, 3, b'a', b'/', b'#', 0xc0],
        ),
        (
            "v5-retain-handling-3",
            vec![0x82, 9, 0, 1, 0, 0, 3, b'a', b'/', b'#', 0x30],
        ),
        (
            "mqtt-4.7.1-1-hash-misplaced",
            vec![0x82, 8, 0, 1, 0, 3, b'#', b'/', b'a', 0x00],
        ),
        ("mqtt-3.9.3-2-suback-code", vec![0x90, 3, 0, 1, 0x03]),
        ("v5-unsuback-empty", vec![0xb0, 3, 0, 1, 0]),
        ("pingreq-trailing-bytes", vec![0xc0, 1, 0]),
        ("v5-disconnect-bad-code", vec![0xe0, 1, 0x03]),
        (
            "v5-auth-data-without-method",
            vec![0xf0, 6, 0x18, 4, 0x16, 0, 1, b'x'],
        ),
        ("pings-then-garbage", vec![0xc0, 0, 0xd0, 0, 0x00, 0x00]),
    ]
}

/// Named corpus files.
type Seeds = Vec<(String, Vec<u8>)>;

/// The seed corpora: decode seeds (chunking byte first) and round-trip
/// seeds (random bytes for the generator).
fn seeds() -> (Seeds, Seeds) {
    let mut decode = Vec::new();
    for (i, (name, version, ps)) in valid_packets().into_iter().enumerate() {
        let mut out = BytesMut::new();
        for p in &ps {
            p.encode(version, &mut out).unwrap();
        }
        let mut data = vec![(i * 37) as u8];
        data.extend_from_slice(&out);
        decode.push((format!("seed-{name}"), data));
    }
    for (i, (name, bytes)) in malformed().into_iter().enumerate() {
        let mut data = vec![(i * 53) as u8];
        data.extend_from_slice(&bytes);
        decode.push((format!("seed-bad-{name}"), data));
    }
    let roundtrip = (0..40u64)
        .map(|i| {
            let len = 8 + (i as usize * 97) % 600;
            (
                format!("seed-random-{i:02}"),
                mqtt_wire::arbitrary::xorshift_bytes(1000 + i, len),
            )
        })
        .collect();
    (decode, roundtrip)
}

#[test]
fn seed_corpora_pass_and_can_be_regenerated() {
    let (decode, roundtrip) = seeds();

    // Valid seeds decode completely to their packets.
    for (name, version, ps) in valid_packets() {
        let mut out = BytesMut::new();
        for p in &ps {
            p.encode(version, &mut out).unwrap();
        }
        let got = decode_chunks([&out[..]], &DecodeConfig::new(version));
        assert_eq!(got.packets, ps, "{name}");
        assert_eq!((got.error, got.leftover), (None, 0), "{name}");
    }
    let types: std::collections::BTreeSet<PacketType> = valid_packets()
        .iter()
        .flat_map(|(_, _, ps)| ps.iter().map(Packet::packet_type))
        .collect();
    assert_eq!(types.len(), 15, "every packet type has seeds");

    // Malformed seeds are refused (or incomplete) in at least one version;
    // the few edge cases among them decode cleanly in at least one.
    for (name, bytes) in malformed() {
        let outcomes: Vec<_> = VERSIONS
            .iter()
            .map(|v| decode_chunks([&bytes[..]], &DecodeConfig::new(*v)))
            .collect();
        let edge = name.starts_with("connect-")
            || name.contains("bom")
            || name.contains("with-alias")
            || name.contains("scattered");
        if edge {
            let clean = outcomes
                .iter()
                .any(|o| !o.packets.is_empty() && o.error.is_none() && o.leftover == 0);
            assert!(clean, "{name} decodes in no version: {outcomes:?}");
        } else {
            let refused = outcomes.iter().any(|o| o.error.is_some() || o.leftover > 0);
            assert!(refused, "{name} decodes cleanly in every version");
        }
    }

    for (_, data) in &decode {
        check_decode_any_chunking(data);
    }
    for (_, data) in &roundtrip {
        check_roundtrip(data);
    }

    if std::env::var_os("MQTT_WIRE_WRITE_CORPUS").is_some() {
        for (target, files) in [("wire_decode", &decode), ("wire_roundtrip", &roundtrip)] {
            let dir = corpus_dir(target);
            std::fs::create_dir_all(&dir).unwrap();
            for (name, data) in files {
                std::fs::write(dir.join(name), data).unwrap();
            }
        }
    }
}
