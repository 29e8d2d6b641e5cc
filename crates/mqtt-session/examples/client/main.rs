//! An MQTT 3.1 / 3.1.1 / 5.0 command-line client: the sans-IO
//! [`mqtt_session::client::Client`] wrapped in tokio, with
//! mosquitto_pub / mosquitto_sub's options.
//!
//! ```sh
//! cargo run --release -p mqtt-session --example client -- sub -t 'sensors/#' -v
//! cargo run --release -p mqtt-session --example client -- pub -t sensors/1 -m 21.5 -q 1
//! cargo run --release -p mqtt-session --example client -- pub --help
//! ```
//!
//! - [`net`]: the run loop, the part to copy into your own program: one
//!   task owns the client, reads, writes, sleeps until `poll_timeout`,
//!   reconnects and resumes the session after a connection loss.
//! - [`jobs`]: what `pub` and `sub` do with the session (windowed
//!   publishing, subscribing again when the session is new, printing).
//! - [`opts`] and [`format`]: mosquitto's `-V` and `-D` syntax, and
//!   mosquitto_sub's `-F` output format.
//! - [`tls`]: `--cafile` (rustls).
//! - [`persist`]: `--session-file`, the session kept across runs with
//!   serde.

mod format;
mod jobs;
mod net;
mod opts;
mod persist;
mod tls;

use std::error::Error;
use std::io::{BufRead as _, Read as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{ArgAction, Args, Parser, Subcommand};
use mqtt_session::client::{Client, ClientConfig};
use mqtt_wire::{
    Connect, Delivery, LastWill, MqttString, PacketId, ProtocolVersion, Publish, QoS, Subscription,
    SubscriptionOptions, TopicFilter,
};
use tokio::sync::{mpsc, watch};

use crate::jobs::{Printer, Publisher, Source, Subscriber};
use crate::net::{log, Exit, Job, Options, Transport};
use crate::opts::Properties;

/// An MQTT 3.1 / 3.1.1 / 5.0 client built on the sans-IO mqtt-session
/// crate, with mosquitto_pub and mosquitto_sub's options.
#[derive(Debug, Parser)]
#[command(name = "client")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publish messages (like mosquitto_pub); exits once they are
    /// acknowledged.
    #[command(disable_help_flag = true)]
    Pub(PubArgs),
    /// Subscribe and print messages (like mosquitto_sub).
    #[command(disable_help_flag = true)]
    Sub(SubArgs),
}

/// Options of both commands.
#[derive(Debug, Args)]
struct Common {
    /// Broker host name or address.
    #[arg(short = 'h', long, default_value = "localhost")]
    host: String,

    /// Broker port (default 1883, or 8883 with --cafile).
    #[arg(short = 'p', long)]
    port: Option<u16>,

    /// MQTT protocol version: 31, 311 or 5.
    #[arg(short = 'V', long = "protocol-version", value_name = "VERSION",
          default_value = "311", value_parser = opts::protocol_version)]
    version: ProtocolVersion,

    /// Client identifier (default: a random one).
    #[arg(short = 'i', long = "id")]
    id: Option<String>,

    /// User name.
    #[arg(short = 'u', long)]
    username: Option<String>,

    /// Password.
    #[arg(short = 'P', long = "pw")]
    password: Option<String>,

    /// Keep alive in seconds (0: off).
    #[arg(short = 'k', long = "keepalive", default_value_t = 60)]
    keep_alive: u16,

    /// Persistent session: Clean Start 0, and in 5.0 a session that does
    /// not expire unless -x says otherwise.
    #[arg(short = 'c', long = "disable-clean-session")]
    persistent: bool,

    /// Session Expiry Interval in seconds (5.0).
    #[arg(short = 'x', long = "session-expiry-interval", value_name = "SECONDS")]
    session_expiry: Option<u32>,

    /// Topic of the Will, published by the broker if this client vanishes
    /// without DISCONNECT.
    #[arg(long = "will-topic", value_name = "TOPIC")]
    will_topic: Option<String>,

    /// Payload of the Will.
    #[arg(long = "will-payload", value_name = "PAYLOAD", requires = "will_topic")]
    will_payload: Option<String>,

    /// QoS of the Will.
    #[arg(long = "will-qos", value_name = "QOS", requires = "will_topic",
          value_parser = opts::qos, default_value = "0")]
    will_qos: QoS,

    /// Retain the Will.
    #[arg(long = "will-retain", requires = "will_topic")]
    will_retain: bool,

    /// Connect with TLS, trusting the CA certificates in this PEM file
    /// (the CA that signed the broker's certificate).
    #[arg(long, value_name = "FILE")]
    cafile: Option<PathBuf>,

    /// An MQTT 5.0 property: `-D COMMAND NAME VALUE`, or
    /// `-D COMMAND user-property NAME VALUE`. Commands: connect, publish,
    /// subscribe, will, disconnect (mosquitto's names, such as
    /// content-type, response-topic, correlation-data,
    /// message-expiry-interval, session-expiry-interval).
    #[arg(short = 'D', long = "property", num_args = 3..=4,
          value_names = ["COMMAND", "NAME", "VALUE"])]
    properties: Vec<String>,

    /// Keep the session (unacknowledged messages, packet ids) in this file
    /// across runs; needs -c.
    #[arg(long = "session-file", value_name = "FILE", requires = "persistent")]
    session_file: Option<PathBuf>,

    /// Log packets and events on stderr.
    #[arg(short = 'd', long)]
    debug: bool,

    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
}

#[derive(Debug, Args)]
struct PubArgs {
    /// Topic to publish to.
    #[arg(short = 't', long)]
    topic: String,

    #[command(flatten)]
    message: MessageSource,

    /// QoS of the messages.
    #[arg(short = 'q', long, value_parser = opts::qos, default_value = "0")]
    qos: QoS,

    /// Retain the messages.
    #[arg(short = 'r', long)]
    retain: bool,

    /// Publish the message this many times.
    #[arg(long, value_name = "COUNT", default_value_t = 1)]
    repeat: u64,

    /// QoS 1/2 messages in flight at most (the broker's Receive Maximum
    /// may lower it).
    #[arg(long = "max-inflight", value_name = "N", default_value_t = 20)]
    max_inflight: usize,

    #[command(flatten)]
    common: Common,
}

/// Where the payload comes from: exactly one.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct MessageSource {
    /// The payload.
    #[arg(short = 'm', long)]
    message: Option<String>,

    /// An empty payload (with -r: clears the retained message).
    #[arg(short = 'n', long = "null-message")]
    null: bool,

    /// One message per line of stdin (empty lines are skipped).
    #[arg(short = 'l', long = "stdin-line")]
    lines: bool,

    /// All of stdin as one message.
    #[arg(short = 's', long = "stdin-file")]
    stdin: bool,

    /// A file's contents as one message.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct SubArgs {
    /// Topic filter to subscribe to (repeatable).
    #[arg(short = 't', long = "topic", required = true)]
    topics: Vec<String>,

    /// Maximum QoS of the subscriptions.
    #[arg(short = 'q', long, value_parser = opts::qos, default_value = "0")]
    qos: QoS,

    /// Exit after this many messages.
    #[arg(short = 'C', long = "count")]
    count: Option<u64>,

    /// Print the topic before each payload.
    #[arg(short = 'v', long)]
    verbose: bool,

    /// Output format, as mosquitto_sub's -F: %t topic, %p payload, %q QoS,
    /// %r retain, %C %D %E %R %P 5.0 properties, ...
    #[arg(short = 'F', long = "format")]
    format: Option<String>,

    /// No newline after each message.
    #[arg(short = 'N')]
    no_newline: bool,

    /// Give up after this many seconds (exit code 27).
    #[arg(short = 'W', long = "timeout", value_name = "SECONDS")]
    timeout: Option<u64>,

    /// Exit once subscribed (to set up a persistent session).
    #[arg(short = 'E')]
    exit_after_subscribe: bool,

    #[command(flatten)]
    common: Common,
}

/// Session expiry asked for when not persistent (5.0): the broker keeps
/// the session this long after a connection loss, so that the reconnection
/// resumes it; the final DISCONNECT sets it to 0.
const RESUME_WINDOW: u32 = 60;

/// Exit code after `-W` ran out, as mosquitto_sub.
const EXIT_TIMEOUT: u8 = 27;
/// Exit code after Ctrl-C.
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            log(&format!("error: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, Box<dyn Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Pub(args) => {
            let setup = Setup::new(&args.common)?;
            if !setup.properties.publish.is_empty() {
                setup.require_v5("-D publish")?;
            }
            let topic = opts::topic(&args.topic)?;
            // The packet id is a placeholder: the session assigns its own.
            let any_id = PacketId::new(1).ok_or("packet id 1")?;
            let mut template = Publish::new(topic, Bytes::new())
                .with_delivery(Delivery::new(args.qos, any_id))
                .with_retain(args.retain);
            template.properties = setup.properties.publish.clone();
            let m = &args.message;
            let source = if m.lines {
                Source::Lines(stdin_lines())
            } else {
                let payload = if let Some(text) = &m.message {
                    Bytes::copy_from_slice(text.as_bytes())
                } else if m.stdin {
                    let mut all = Vec::new();
                    std::io::stdin().read_to_end(&mut all)?;
                    Bytes::from(all)
                } else if let Some(file) = &m.file {
                    Bytes::from(
                        std::fs::read(file)
                            .map_err(|e| format!("cannot read {}: {e}", file.display()))?,
                    )
                } else {
                    Bytes::new() // -n
                };
                Source::Repeat {
                    payload,
                    left: args.repeat,
                }
            };
            let (client, unacked) = setup.client()?;
            let mut job = Publisher::new(template, source, unacked, args.max_inflight);
            let exit = runtime.block_on(setup.run(client, &mut job, None))?;
            Ok(match exit {
                Exit::Done if job.failures == 0 => ExitCode::SUCCESS,
                Exit::Done => ExitCode::FAILURE,
                Exit::TimedOut => ExitCode::from(EXIT_TIMEOUT),
                Exit::Interrupted => ExitCode::from(EXIT_INTERRUPTED),
            })
        }
        Command::Sub(args) => {
            let setup = Setup::new(&args.common)?;
            if !setup.properties.publish.is_empty() {
                return Err("-D publish is for pub".into());
            }
            if !setup.properties.subscribe.is_empty() {
                setup.require_v5("-D subscribe")?;
            }
            let mut subscriptions = Vec::new();
            for t in &args.topics {
                let filter = TopicFilter::try_from(t.as_str())
                    .map_err(|e| format!("invalid topic filter {t:?}: {e}"))?;
                subscriptions.push(Subscription {
                    filter,
                    options: SubscriptionOptions::new(args.qos),
                });
            }
            let printer = Printer {
                verbose: args.verbose,
                format: args.format.clone(),
                no_newline: args.no_newline,
            };
            let mut job = Subscriber::new(
                subscriptions,
                setup.properties.subscribe.clone(),
                args.count,
                args.exit_after_subscribe,
                printer,
            );
            let (client, _) = setup.client()?;
            let deadline = args
                .timeout
                .and_then(|s| Instant::now().checked_add(Duration::from_secs(s)));
            let exit = runtime.block_on(setup.run(client, &mut job, deadline))?;
            Ok(match exit {
                Exit::Done | Exit::Interrupted => ExitCode::SUCCESS,
                Exit::TimedOut => ExitCode::from(EXIT_TIMEOUT),
            })
        }
    }
}

/// What both commands build from the common options.
struct Setup<'a> {
    common: &'a Common,
    properties: Properties,
    /// The first CONNECT.
    connect: Connect,
    /// The CONNECT of the reconnections, when it differs.
    reconnect: Option<Connect>,
    /// Properties of the final DISCONNECT.
    disconnect: mqtt_wire::DisconnectProperties,
    transport: Transport,
}

impl<'a> Setup<'a> {
    fn new(common: &'a Common) -> Result<Self, Box<dyn Error>> {
        let properties = opts::properties(&common.properties)?;
        let v5 = common.version.is_v5();
        let mut setup_error = None;
        if properties.any && !v5 {
            setup_error = Some("-D (MQTT 5.0 properties) needs -V 5");
        }
        if common.session_expiry.is_some() && !v5 {
            setup_error = Some("-x (session expiry) needs -V 5");
        }
        if common.password.is_some() && common.username.is_none() && !v5 {
            setup_error = Some("-P needs -u before MQTT 5.0");
        }
        if let Some(e) = setup_error {
            return Err(e.into());
        }
        let id = match &common.id {
            Some(id) => id.clone(),
            None => random_client_id(),
        };
        let mut connect = Connect::new(
            common.version,
            MqttString::try_from(id).map_err(|e| format!("invalid client id: {e}"))?,
        );
        connect.keep_alive = common.keep_alive;
        connect.clean_start = !common.persistent;
        connect.properties = properties.connect.clone();
        if let Some(u) = &common.username {
            connect.username = Some(
                MqttString::try_from(u.as_str()).map_err(|e| format!("invalid user name: {e}"))?,
            );
        }
        connect.password = common
            .password
            .as_ref()
            .map(|p| Bytes::copy_from_slice(p.as_bytes()));
        if let Some(t) = &common.will_topic {
            let payload = common.will_payload.clone().unwrap_or_default();
            let mut will = LastWill::new(opts::topic(t)?, Bytes::from(payload));
            will.qos = common.will_qos;
            will.retain = common.will_retain;
            will.properties = properties.will.clone();
            connect.will = Some(will);
        } else if !properties.will.is_empty() {
            return Err("-D will needs --will-topic".into());
        }
        let mut disconnect = properties.disconnect.clone();
        let mut reconnect = None;
        if v5 {
            let expiry = &mut connect.properties.session_expiry_interval;
            if let Some(x) = common.session_expiry {
                *expiry = Some(x);
            } else if common.persistent && expiry.is_none() {
                *expiry = Some(u32::MAX); // never expires, as mosquitto's -c
            }
            if !common.persistent && expiry.is_none() {
                // Resume after a connection loss, and end the session with
                // the final DISCONNECT.
                *expiry = Some(RESUME_WINDOW);
                if disconnect.session_expiry_interval.is_none() {
                    disconnect.session_expiry_interval = Some(0);
                }
            }
            if connect.clean_start && connect.properties.session_expiry_interval != Some(0) {
                let mut again = connect.clone();
                again.clean_start = false;
                reconnect = Some(again);
            }
        }
        let port = common
            .port
            .unwrap_or(if common.cafile.is_some() { 8883 } else { 1883 });
        let tls = match &common.cafile {
            Some(f) => Some(tls::connector(f, &common.host)?),
            None => None,
        };
        Ok(Setup {
            common,
            properties,
            connect,
            reconnect,
            disconnect,
            transport: Transport {
                host: common.host.clone(),
                port,
                tls,
            },
        })
    }

    fn require_v5(&self, what: &str) -> Result<(), Box<dyn Error>> {
        if self.common.version.is_v5() {
            Ok(())
        } else {
            Err(format!("{what} needs -V 5").into())
        }
    }

    /// The client, with the session of `--session-file` when there is
    /// one, and the number of unacknowledged messages it holds.
    fn client(&self) -> Result<(Client, usize), Box<dyn Error>> {
        let config = ClientConfig::new(self.connect.clone());
        let session = match &self.common.session_file {
            Some(path) => persist::load(path)?,
            None => None,
        };
        Ok(match session {
            Some(s) => {
                let n = s.outbound().len();
                (Client::with_session(config, s), n)
            }
            None => (Client::new(config), 0),
        })
    }

    async fn run<J: Job>(
        &self,
        mut client: Client,
        job: &mut J,
        deadline: Option<Instant>,
    ) -> Result<Exit, Box<dyn Error>> {
        let opts = Options {
            reconnect: self.reconnect.clone(),
            disconnect: self.disconnect.clone(),
            deadline,
            debug: self.common.debug,
        };
        let (stop_tx, mut stop) = watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = stop_tx.send(true);
            }
            // Keep the sender: a dropped one would read as a change.
            std::future::pending::<()>().await;
        });
        let r = net::run(&mut client, job, &self.transport, &opts, &mut stop).await;
        if let Some(path) = &self.common.session_file {
            persist::save(path, &client.session_state())?;
        }
        r
    }
}

/// `-l`: a thread reads stdin line by line into a small bounded channel.
fn stdin_lines() -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line.is_empty() {
                continue;
            }
            if tx.blocking_send(Bytes::from(line)).is_err() {
                break;
            }
        }
    });
    rx
}

/// A client id of at most 23 characters (MQTT-3.1.3-5).
fn random_client_id() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seed = t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32);
    format!("sansio-{:016x}", seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}
