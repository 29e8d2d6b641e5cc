//! Replays every committed fuzz corpus file of `session_client` and
//! `session_server` through the checks the fuzz targets run
//! (`mqtt_session::arbitrary`), so a crash found once stays fixed without a
//! fuzzer.
//!
//! It also holds the generator of the seed corpora. A seed is built one
//! operation at a time: pseudo-random bytes are appended until the next
//! operation decoded from them does what the seed wants (a CONNACK
//! accepted, a PUBREL sent, ...), then the input is cut where that
//! operation ends. Every seed is rebuilt and checked on every run: its
//! trace must show each wanted step. With `MQTT_SESSION_WRITE_CORPUS=1`
//! set, `cargo test -p mqtt-session --test fuzz_corpus` (re)writes them as
//! `fuzz/corpus/session_*/seed-*`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::PathBuf;

use arbitrary::{Arbitrary, Unstructured};
use mqtt_session::arbitrary::{
    check_client, check_server, run_client, run_server, ClientSetup, OpTrace, ServerSetup, Trace,
};
use mqtt_wire::arbitrary::xorshift_bytes;
use mqtt_wire::{ProtocolVersion, QoS};

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn replay(target: &str, check: fn(&[u8])) {
    let dir = corpus_dir(target);
    let mut n = 0;
    let mut failed = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_file() {
            let data = std::fs::read(&path).unwrap();
            if std::panic::catch_unwind(|| check(&data)).is_err() {
                failed.push(path.display().to_string());
            }
            n += 1;
        }
    }
    assert!(failed.is_empty(), "corpus files fail: {failed:#?}");
    assert!(n >= 1, "no corpus file in {}", dir.display());
}

#[test]
fn session_client_corpus() {
    replay("session_client", check_client);
}

#[test]
fn session_server_corpus() {
    replay("session_server", check_server);
}

// ---------------------------------------------------------------------------
// Seed generator
// ---------------------------------------------------------------------------

type Runner = fn(&[u8], Option<&mut Trace>);

/// What one operation of a seed must be: its `Debug` starts with `op` and
/// it has every tag of `tags`.
#[derive(Clone, Copy)]
struct Want {
    op: &'static str,
    tags: &'static [&'static str],
}

const fn w(op: &'static str, tags: &'static [&'static str]) -> Want {
    Want { op, tags }
}

impl Want {
    fn matches(&self, t: &OpTrace) -> bool {
        t.op.starts_with(self.op) && self.tags.iter().all(|tag| t.tags.iter().any(|x| x == tag))
    }
}

fn trace(run: Runner, data: &[u8]) -> Trace {
    let mut t = Trace::default();
    run(data, Some(&mut t));
    t
}

/// Bytes for the setup: the first candidate whose decoded setup satisfies
/// `ok`, cut to what the setup consumed.
fn setup_bytes<S: for<'a> Arbitrary<'a>>(salt: u64, ok: impl Fn(&S) -> bool) -> Vec<u8> {
    for i in 0..200_000u64 {
        let cand = xorshift_bytes(salt * 1_000_003 + i, 48);
        let mut u = Unstructured::new(&cand);
        let s = S::arbitrary(&mut u).unwrap();
        if ok(&s) {
            let used = cand.len() - u.len();
            return cand[..used].to_vec();
        }
    }
    panic!("no setup found");
}

/// Extends `data` one operation per `want`, as described in the module
/// docs.
fn build(run: Runner, mut data: Vec<u8>, wants: &[Want], salt: u64) -> Vec<u8> {
    for (k, want) in wants.iter().enumerate() {
        let before = trace(run, &data);
        assert_eq!(
            before.ops.len(),
            k,
            "the prefix runs {} ops",
            before.ops.len()
        );
        let mut found = false;
        for i in 0..400_000u64 {
            let len = 4 + (i as usize % 96);
            let chunk = xorshift_bytes(
                salt.wrapping_mul(7_919) + (k as u64) * 1_000_000_007 + i,
                len,
            );
            let mut cand = data.clone();
            cand.extend_from_slice(&chunk);
            let t = std::panic::catch_unwind(|| trace(run, &cand))
                .unwrap_or_else(|_| panic!("an invariant breaks on input {cand:?}"));
            if t.ops.len() > k
                && t.ops[..k] == before.ops[..]
                && want.matches(&t.ops[k])
                && t.ops[k].end > data.len()
                // Bytes left over: the operation read real bytes only (at
                // the end of the input, reads are filled with zeros).
                && t.ops[k].end < cand.len()
            {
                cand.truncate(t.ops[k].end);
                data = cand;
                found = true;
                break;
            }
        }
        assert!(found, "no bytes found for step {k} ({})", want.op);
    }
    data
}

struct Seed {
    name: &'static str,
    data: Vec<u8>,
    wants: Vec<Want>,
}

fn client_seed(
    name: &'static str,
    salt: u64,
    ok: impl Fn(&ClientSetup) -> bool,
    wants: &[Want],
) -> Seed {
    let setup = setup_bytes(salt, ok);
    Seed {
        name,
        data: build(run_client, setup, wants, salt),
        wants: wants.to_vec(),
    }
}

fn server_seed(
    name: &'static str,
    salt: u64,
    ok: impl Fn(&ServerSetup) -> bool,
    wants: &[Want],
) -> Seed {
    let setup = setup_bytes(salt, ok);
    Seed {
        name,
        data: build(run_server, setup, wants, salt),
        wants: wants.to_vec(),
    }
}

fn plain_client(s: &ClientSetup, v: ProtocolVersion) -> bool {
    s.version == v
        && s.auth.is_none()
        && !s.manual_ack
        && !s.empty_client_id
        && s.receive_maximum.is_none()
        && s.maximum_packet_size.is_none()
        && s.connect_timeout > 0
}

const CONNECTED: &[Want] = &[
    w("Connect", &["ok", "sent:Connect"]),
    w("Receive(ConnAck(Success))", &["ev:Connected"]),
];

fn then(first: &[Want], rest: &[Want]) -> Vec<Want> {
    first.iter().chain(rest).copied().collect()
}

fn client_seeds() -> Vec<Seed> {
    let v5 = |s: &ClientSetup| plain_client(s, ProtocolVersion::V5);
    vec![
        client_seed(
            "v5-qos1-publish-puback",
            1,
            v5,
            &then(
                CONNECTED,
                &[
                    w("Publish", &["ok", "sent:Publish1"]),
                    w("Receive(PubAck(Known", &["ev:PubAck"]),
                ],
            ),
        ),
        client_seed(
            "v5-qos2-publish-flow",
            2,
            v5,
            &then(
                CONNECTED,
                &[
                    w("Publish", &["ok", "sent:Publish2"]),
                    w("Receive(PubRec(Known", &["sent:PubRel"]),
                    w("Receive(PubComp(Known", &["ev:PubComp"]),
                ],
            ),
        ),
        client_seed(
            "v5-inbound-qos2",
            3,
            v5,
            &then(
                CONNECTED,
                &[
                    w(
                        "Receive(Publish",
                        &["fed:Publish2", "ev:Publish", "sent:PubRec"],
                    ),
                    w("Receive(PubRel(Known", &["sent:PubComp"]),
                    w("Receive(Publish", &["fed:Publish1", "sent:PubAck"]),
                ],
            ),
        ),
        client_seed(
            "v311-subscribe-unsubscribe",
            4,
            |s| plain_client(s, ProtocolVersion::V3_1_1),
            &then(
                CONNECTED,
                &[
                    w("Subscribe", &["ok", "sent:Subscribe"]),
                    w("Receive(SubAck(Known", &["ev:SubAck"]),
                    w("Unsubscribe", &["ok", "sent:Unsubscribe"]),
                    w("Receive(UnsubAck(Known", &["ev:UnsubAck"]),
                ],
            ),
        ),
        client_seed(
            "v5-keepalive",
            5,
            |s| v5(s) && s.keep_alive > 0,
            &then(
                CONNECTED,
                &[
                    w("Tick(ToDeadline)", &["sent:PingReq"]),
                    w("Receive(PingResp)", &["fed:PingResp"]),
                    w("Tick(ToDeadline)", &["sent:PingReq"]),
                    w("Tick(ToDeadline)", &["close:KeepAliveTimeout"]),
                ],
            ),
        ),
        client_seed(
            "v5-resume-session",
            6,
            |s| v5(s) && !s.clean_start,
            &then(
                CONNECTED,
                &[
                    w("Publish", &["ok", "sent:Publish1"]),
                    w("Publish", &["ok", "sent:Publish2"]),
                    w("Closed", &["close:TransportClosed"]),
                    w("Connect", &["ok", "sent:Connect"]),
                    w(
                        "Receive(ConnAck(Success))",
                        &["ev:Connected", "sent:Publish1"],
                    ),
                ],
            ),
        ),
        client_seed(
            "v5-enhanced-auth",
            7,
            |s| {
                s.version == ProtocolVersion::V5
                    && s.auth == Some((None, true))
                    && s.connect_timeout > 0
            },
            &[
                w("Connect", &["ok", "sent:Connect"]),
                w("Receive(Auth(Continue))", &["sent:Auth"]),
                w("Receive(ConnAck(Success))", &["ev:Connected"]),
                w("Reauthenticate", &["ok", "sent:Auth"]),
                w("Receive(Auth(Continue))", &["sent:Auth"]),
                w("Receive(Auth(Success))", &["ev:Reauthenticated"]),
            ],
        ),
        client_seed(
            "v5-manual-ack",
            8,
            |s| s.version == ProtocolVersion::V5 && s.manual_ack && s.auth.is_none(),
            &then(
                CONNECTED,
                &[
                    w("Receive(Publish", &["fed:Publish1", "ev:Publish"]),
                    w("Receive(Publish", &["fed:Publish2", "ev:Publish"]),
                    w("Ack(Known", &["ok"]),
                    w("Ack(Known", &["ok", "sent:PubRec"]),
                ],
            ),
        ),
        client_seed(
            "v5-export-import",
            9,
            |s| v5(s) && !s.clean_start,
            &then(
                CONNECTED,
                &[
                    w("Publish", &["ok", "sent:Publish2"]),
                    w("ExportImport", &[]),
                    w("Connect", &["ok", "sent:Connect"]),
                    w(
                        "Receive(ConnAck(Success))",
                        &["ev:Connected", "sent:Publish2"],
                    ),
                ],
            ),
        ),
        client_seed(
            "v5-limits-and-violation",
            10,
            v5,
            &[
                w("Connect", &["ok"]),
                w("Receive(ConnAck(Limits))", &["ev:Connected"]),
                w("Publish", &["ok", "sent:Publish1"]),
                w("Publish", &["ok"]),
                w(
                    "Receive(SubAck(Any",
                    &["close:ProtocolViolation", "sent:Disconnect"],
                ),
            ],
        ),
        client_seed(
            "v31-refused",
            11,
            |s| plain_client(s, ProtocolVersion::V3_1),
            &[
                w("Connect", &["ok", "sent:Connect"]),
                w("Receive(ConnAck(Refused))", &["close:Refused"]),
                w("Connect", &["ok", "sent:Connect"]),
                w("Tick(ToDeadline)", &["close:ConnectTimeout"]),
            ],
        ),
        client_seed(
            "v5-disconnect",
            12,
            v5,
            &then(
                CONNECTED,
                &[
                    w(
                        "Disconnect(true)",
                        &["ok", "sent:Disconnect", "close:LocalDisconnect"],
                    ),
                    w("Publish", &["err:NotConnected"]),
                ],
            ),
        ),
    ]
}

fn plain_server(s: &ServerSetup) -> bool {
    s.max_packet_size.is_none()
        && s.maximum_qos == QoS::ExactlyOnce
        && !s.manual_ack
        && s.connect_timeout > 0
        && s.receive_maximum.is_none()
}

fn server_seeds() -> Vec<Seed> {
    vec![
        server_seed(
            "v5-accept-publish-in",
            101,
            plain_server,
            &[
                w("Receive(Connect(V5))", &["ev:Connect"]),
                w("Accept", &["ok", "sent:ConnAck"]),
                w(
                    "Receive(Publish",
                    &["fed:Publish1", "ev:Publish", "sent:PubAck"],
                ),
                w(
                    "Receive(Publish",
                    &["fed:Publish2", "ev:Publish", "sent:PubRec"],
                ),
                w("Receive(PubRel(Known", &["sent:PubComp"]),
                w("Receive(Disconnect(true))", &["close:PeerDisconnected"]),
            ],
        ),
        server_seed(
            "v311-subscribe",
            102,
            plain_server,
            &[
                w("Receive(Connect(V3_1_1))", &["ev:Connect"]),
                w("Accept", &["ok", "sent:ConnAck"]),
                w("Receive(Subscribe", &["ev:Subscribe"]),
                w("SubAck(Known", &["ok", "sent:SubAck"]),
                w("Receive(Unsubscribe", &["ev:Unsubscribe"]),
                w("UnsubAck(Known", &["ok", "sent:UnsubAck"]),
                w("Receive(PingReq)", &["sent:PingResp"]),
            ],
        ),
        server_seed(
            "v5-publish-out-qos2",
            103,
            plain_server,
            &[
                w("Receive(Connect(V5))", &["ev:Connect"]),
                w("Accept", &["ok", "sent:ConnAck"]),
                w("Publish", &["ok", "sent:Publish2"]),
                w("Receive(PubRec(Known", &["sent:PubRel"]),
                w("Receive(PubComp(Known", &["ev:PubComp"]),
                w("Publish", &["ok", "sent:Publish1"]),
                w("Receive(PubAck(Known", &["ev:PubAck"]),
            ],
        ),
        server_seed(
            "v5-enhanced-auth",
            104,
            plain_server,
            &[
                w("Receive(Connect(V5Auth))", &["ev:Connect"]),
                w("AuthContinue", &["ok", "sent:Auth"]),
                w("Receive(Auth(Continue))", &["ev:Auth"]),
                w("Accept", &["ok", "sent:ConnAck"]),
                w("Receive(Auth(ReAuthenticate))", &["ev:Auth"]),
                w("AuthSuccess", &["ok", "sent:Auth"]),
            ],
        ),
        server_seed(
            "v5-take-session-resume",
            105,
            plain_server,
            &[
                w("Receive(Connect(V5))", &["ev:Connect"]),
                w("Accept", &["ok", "sent:ConnAck"]),
                w("Publish", &["ok", "sent:Publish1"]),
                w("Closed", &["close:TransportClosed"]),
                w("TakeSession", &["take:true"]),
                w("Receive(Connect(V5))", &["ev:Connect", "clean_start:false"]),
                w("Accept", &["ok", "sent:ConnAck", "sent:Publish1"]),
            ],
        ),
        server_seed(
            "v5-keepalive-timeout",
            106,
            |s| plain_server(s) && s.server_keep_alive.is_none(),
            &[
                w("Receive(Connect(V5))", &["ev:Connect", "keep_alive:true"]),
                w("Accept", &["ok", "sent:ConnAck"]),
                w(
                    "Tick(ToDeadline)",
                    &["close:KeepAliveTimeout", "sent:Disconnect"],
                ),
            ],
        ),
        server_seed(
            "v5-reject",
            107,
            plain_server,
            &[
                w("Receive(Connect(V5))", &["ev:Connect"]),
                w("Reject", &["ok", "sent:ConnAck", "close:Refused"]),
                w("Publish", &["err:NotConnected"]),
            ],
        ),
        server_seed(
            "v5-manual-ack",
            108,
            |s| s.manual_ack && s.maximum_qos == QoS::ExactlyOnce && s.max_packet_size.is_none(),
            &[
                w("Receive(Connect(V5))", &["ev:Connect"]),
                w("Accept", &["ok", "sent:ConnAck"]),
                w("Receive(Publish", &["fed:Publish2", "ev:Publish"]),
                w("Ack(Known", &["ok", "sent:PubRec"]),
                w("Receive(PubRel(Known", &["sent:PubComp"]),
            ],
        ),
        server_seed(
            "connect-timeout",
            109,
            plain_server,
            &[w("Tick(ToDeadline)", &["close:ConnectTimeout"])],
        ),
        server_seed(
            "v31-connect",
            110,
            plain_server,
            &[
                w("Receive(Connect(V3_1))", &["ev:Connect"]),
                w("Accept", &["ok", "sent:ConnAck"]),
                w("Receive(Publish", &["fed:Publish1", "sent:PubAck"]),
            ],
        ),
        server_seed(
            "v5-second-connect",
            111,
            plain_server,
            &[
                w("Receive(Connect(V5))", &["ev:Connect"]),
                w("Accept", &["ok", "sent:ConnAck"]),
                w(
                    "Receive(Connect",
                    &["close:ProtocolViolation", "sent:Disconnect"],
                ),
            ],
        ),
    ]
}

#[test]
fn seed_corpora_pass_and_can_be_regenerated() {
    let write = std::env::var_os("MQTT_SESSION_WRITE_CORPUS").is_some();
    for (target, run, seeds) in [
        ("session_client", run_client as Runner, client_seeds()),
        ("session_server", run_server as Runner, server_seeds()),
    ] {
        for seed in &seeds {
            // The seed does what it was built for, step by step.
            let t = trace(run, &seed.data);
            assert!(
                t.ops.len() >= seed.wants.len(),
                "{}: {:?}",
                seed.name,
                t.ops
            );
            for (i, want) in seed.wants.iter().enumerate() {
                assert!(
                    want.matches(&t.ops[i]),
                    "{} step {i}: {:?}",
                    seed.name,
                    t.ops[i]
                );
            }
        }
        if write {
            let dir = corpus_dir(target);
            std::fs::create_dir_all(&dir).unwrap();
            for seed in &seeds {
                std::fs::write(dir.join(format!("seed-{}", seed.name)), &seed.data).unwrap();
            }
        }
    }
}

/// Random inputs of every length run through both checks (a smoke test of
/// the harness itself; the fuzzer does the real work).
#[test]
fn random_inputs_pass() {
    for i in 0..300u64 {
        let data = xorshift_bytes(50_000 + i, 16 + (i as usize * 37) % 2000);
        check_client(&data);
        check_server(&data);
    }
}
