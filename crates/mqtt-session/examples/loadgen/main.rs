//! A load generator for MQTT brokers, built on the sans-IO
//! [`mqtt_session::client::Client`]: many clients in one thread, each a
//! TCP stream and a `Client`, pipelined (many messages in flight, all the
//! output of a turn written at once). `scripts/bench-broker.sh` runs it
//! against the broker example and against mosquitto.
//!
//! ```sh
//! cargo run --release -p mqtt-session --example loadgen -- fan-in -p 1883
//! cargo run --release -p mqtt-session --example loadgen -- latency --rate 5000
//! cargo run --release -p mqtt-session --example loadgen -- idle --connections 10000
//! cargo run --release -p mqtt-session --example loadgen -- --help
//! ```
//!
//! Scenarios (each flag below can change them):
//!
//! | scenario  | publishers → subscribers | QoS | payload | pacing |
//! |-----------|--------------------------|-----|---------|--------|
//! | `fan-in`  | 8 → 1                    | 0   | 64 B    | window of 1,000 per publisher |
//! | `fan-out` | 1 → 50                   | 0   | 64 B    | window of 1,000 |
//! | `qos1`    | 4 → 4                    | 1   | 256 B   | 100 in flight per publisher |
//! | `qos2`    | 4 → 4                    | 2   | 256 B   | 100 in flight per publisher |
//! | `latency` | 1 → 1                    | 1   | 64 B    | 5,000 msg/s, 100 in flight at most |
//! | `idle`    | 10,000 connections, nothing sent (keep alive 0) | | | |
//!
//! The subscribers announce no Receive Maximum (65,535): the broker
//! forwards at once and TCP carries the back-pressure. With
//! `--sub-inflight N` it may have only N unacknowledged messages towards
//! each, and queues (then drops, past its queue limit) the rest.
//!
//! Publisher `i` publishes to `bench/RUN/i`; every subscriber subscribes
//! to `bench/RUN/+` at the scenario's QoS, so each message is delivered
//! once per subscriber. Each payload carries the publisher id, a sequence
//! number and the send time: the subscribers count every message exactly
//! (lost, duplicated, out of order) and the latency (p50 / p99).
//!
//! QoS 0 has no acknowledgement, so an unpaced publisher would measure how
//! much a broker can drop, not how much it can deliver. Each QoS 0
//! publisher therefore keeps a window: at most `--window` of its messages
//! not yet seen by every subscriber (the delivery floor is, per
//! subscriber, the highest sequence number received so far, so a dropped
//! message does not shrink the window). If the floor does not move for a
//! second, the missing messages are written off (`window_stalls`) and
//! publishing goes on; they show up as `lost`. `--window 0` publishes
//! without a window (open loop, to watch a broker shed load).
//!
//! The result is one JSON line on stdout: scenario, messages sent,
//! expected, received, lost, duplicates, elapsed seconds (first publish to
//! last delivery), msgs/s (deliveries per second), p50/p99 latency in
//! microseconds, and the generator's own CPU seconds and busy fraction (1.0
//! is a full core: then the generator was the limit). The idle scenario
//! prints a `{"event":"ready",...}` line once every connection is up, holds
//! them until SIGTERM / Ctrl-C (or `--hold`), then prints its result.
//!
//! - [`conn`]: one connection: dial, CONNECT, read into the client, write
//!   what it has in one go.
//! - [`run`]: the publisher, subscriber and idle loops, and the
//!   coordinator.
//! - [`track`]: the scoreboard, the latency histogram, CPU time.

mod conn;
mod run;
mod track;

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use mqtt_wire::{ProtocolVersion, QoS};

use crate::run::{Idle, Traffic};

/// A load generator for MQTT brokers (throughput, loss, latency, idle
/// connections), built on the sans-IO mqtt-session client.
#[derive(Debug, Parser)]
#[command(name = "loadgen")]
struct Cli {
    /// What to run.
    #[arg(value_enum)]
    scenario: Scenario,

    /// Broker address (an IP address: no name lookup).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,

    /// Broker port.
    #[arg(short = 'p', long, default_value_t = 1883)]
    port: u16,

    /// MQTT protocol version: 5 or 311. 5 by default: with 3.1.1,
    /// mosquitto silently drops QoS 1/2 messages beyond its in-flight
    /// limit.
    #[arg(short = 'V', long = "protocol-version", value_name = "VERSION",
          default_value = "5", value_parser = protocol_version)]
    version: ProtocolVersion,

    /// Seconds of publishing.
    #[arg(short = 'd', long, value_name = "SECONDS", default_value_t = 10.0,
          value_parser = positive_seconds)]
    duration: f64,

    /// Messages per publisher at most (ends the publishing before
    /// --duration if reached first).
    #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,

    /// Publishing connections (default: the scenario's).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    publishers: Option<u32>,

    /// Subscribing connections (default: the scenario's).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    subscribers: Option<u32>,

    /// QoS of the messages and subscriptions (default: the scenario's).
    #[arg(short = 'q', long, value_parser = qos)]
    qos: Option<QoS>,

    /// Payload bytes (at least 20: publisher id, sequence number, send
    /// time).
    #[arg(short = 's', long = "payload", value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(track::HEADER as i64..=16 * 1024 * 1024))]
    payload: Option<u32>,

    /// QoS 1/2 messages in flight per publisher at most.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    inflight: Option<u16>,

    /// QoS 1/2, MQTT 5: Receive Maximum of the subscribers, the broker's
    /// in-flight window towards each (default: not announced, 65,535).
    /// A small one makes the broker queue, and drop past its queue limit:
    /// a QoS 1/2 publisher is acknowledged by the broker, not by the
    /// subscribers, so nothing slows it down.
    #[arg(long = "sub-inflight", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    sub_inflight: Option<u16>,

    /// QoS 0: messages per publisher not yet seen by every subscriber at
    /// most; 0 publishes without a window.
    #[arg(long, value_name = "N")]
    window: Option<u64>,

    /// Messages per second over all publishers (default: as fast as the
    /// window or in-flight limit allows; 5000 for `latency`).
    #[arg(long, value_name = "MSGS", value_parser = positive_rate)]
    rate: Option<f64>,

    /// Seconds to wait for the last messages after publishing ends.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, value_parser = positive_seconds)]
    drain: f64,

    /// idle: connections to open.
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    connections: u32,

    /// idle: connection handshakes in progress at once at most.
    #[arg(long = "connect-concurrency", value_name = "N", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    connect_concurrency: u32,

    /// idle: keep alive in seconds (0: none, the connections stay silent).
    #[arg(long = "keepalive", value_name = "SECONDS", default_value_t = 0)]
    keep_alive: u16,

    /// idle: hold the connections at most this long (SIGTERM or Ctrl-C
    /// ends it earlier).
    #[arg(long, value_name = "SECONDS", default_value_t = 600.0, value_parser = positive_seconds)]
    hold: f64,
}

/// The built-in scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// 8 publishers → 1 subscriber, QoS 0, 64 B.
    FanIn,
    /// 1 publisher → 50 subscribers, QoS 0, 64 B.
    FanOut,
    /// 4 publishers → 4 subscribers, QoS 1, 256 B, 100 in flight.
    Qos1,
    /// 4 publishers → 4 subscribers, QoS 2, 256 B, 100 in flight.
    Qos2,
    /// 1 → 1 at 5,000 msg/s, QoS 1, 64 B: p50 / p99 latency.
    Latency,
    /// 10,000 idle connections, held until SIGTERM.
    Idle,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::FanIn => "fan-in",
            Scenario::FanOut => "fan-out",
            Scenario::Qos1 => "qos1",
            Scenario::Qos2 => "qos2",
            Scenario::Latency => "latency",
            Scenario::Idle => "idle",
        }
    }
}

fn protocol_version(s: &str) -> Result<ProtocolVersion, String> {
    match s {
        "5" | "50" | "mqttv5" => Ok(ProtocolVersion::V5),
        "311" | "mqttv311" => Ok(ProtocolVersion::V3_1_1),
        _ => Err(format!("{s:?}: use 5 or 311")),
    }
}

fn qos(s: &str) -> Result<QoS, String> {
    match s {
        "0" => Ok(QoS::AtMostOnce),
        "1" => Ok(QoS::AtLeastOnce),
        "2" => Ok(QoS::ExactlyOnce),
        _ => Err(format!("{s:?}: QoS is 0, 1 or 2")),
    }
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!(
            "{s:?}: a number of seconds above 0 (at most a day)"
        )),
    }
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.01..=1e9).contains(&v) => Ok(v),
        _ => Err(format!("{s:?}: messages per second, 0.01 to 1e9")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let addr = SocketAddr::new(cli.host, cli.port);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let local = tokio::task::LocalSet::new();
    let result = if cli.scenario == Scenario::Idle {
        let idle = Idle {
            addr,
            version: cli.version,
            connections: cli.connections as usize,
            concurrency: cli.connect_concurrency as usize,
            keep_alive: cli.keep_alive,
            hold: Duration::from_secs_f64(cli.hold),
        };
        local.block_on(&runtime, run::idle(idle))?
    } else {
        let (publishers, subscribers, qos, payload) = match cli.scenario {
            Scenario::FanIn => (8, 1, QoS::AtMostOnce, 64),
            Scenario::FanOut => (1, 50, QoS::AtMostOnce, 64),
            Scenario::Qos1 => (4, 4, QoS::AtLeastOnce, 256),
            Scenario::Qos2 => (4, 4, QoS::ExactlyOnce, 256),
            Scenario::Latency | Scenario::Idle => (1, 1, QoS::AtLeastOnce, 64),
        };
        let rate = match (cli.rate, cli.scenario) {
            (Some(r), _) => Some(r),
            (None, Scenario::Latency) => Some(5000.0),
            (None, _) => None,
        };
        let traffic = Traffic {
            scenario: cli.scenario.name().to_owned(),
            addr,
            version: cli.version,
            publishers: cli.publishers.map_or(publishers, |n| n as usize),
            subscribers: cli.subscribers.map_or(subscribers, |n| n as usize),
            qos: cli.qos.unwrap_or(qos),
            payload: cli.payload.map_or(payload, |n| n as usize),
            inflight: usize::from(cli.inflight.unwrap_or(100)),
            sub_inflight: cli.sub_inflight,
            window: cli.window.unwrap_or(1000),
            rate,
            duration: Duration::from_secs_f64(cli.duration),
            count: cli.count,
            drain: Duration::from_secs_f64(cli.drain),
        };
        local.block_on(&runtime, run::traffic(traffic))?
    };
    println!("{result}");
    Ok(())
}
