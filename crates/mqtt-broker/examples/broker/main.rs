//! A runnable MQTT 3.1 / 3.1.1 / 5.0 broker: the sans-IO [`mqtt_broker`]
//! core wrapped in tokio.
//!
//! ```sh
//! cargo run --release -p mqtt-broker --example broker            # 127.0.0.1:1883, anonymous
//! cargo run --release -p mqtt-broker --example broker -- --help  # every option
//! ```
//!
//! - [`net`]: the run loop, the part to copy into your own broker: one task
//!   owns the [`mqtt_broker::Broker`]; with [`direct`] it also reads and
//!   writes the plain TCP sockets, TLS and WebSocket connections have a
//!   task each.
//! - [`policy`]: the [`mqtt_broker::Hooks`] (anonymous access, passwords,
//!   ACL), with [`passwd`] (mosquitto_passwd files) and [`acl`]
//!   (mosquitto acl_file syntax).
//! - [`persist`]: `--persist DIR`, a journal implementing the core's
//!   [`mqtt_broker::Store`].
//! - [`tls`] and [`ws`]: the other transports (rustls, WebSockets with the
//!   `mqtt` subprotocol); they only hand the run loop bytes.

mod acl;
#[cfg(unix)]
mod direct;
#[cfg(not(unix))]
#[path = "direct_portable.rs"]
mod direct;
mod net;
mod passwd;
mod persist;
mod policy;
mod tls;
mod ws;

use std::error::Error;
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use mqtt_broker::{Broker, BrokerConfig};
use mqtt_wire::QoS;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::net::{log, Kind, Shared, ToBroker};
use crate::policy::Policy;

/// An MQTT 3.1 / 3.1.1 / 5.0 broker built on the sans-IO mqtt-broker core.
///
/// With no options it listens on 127.0.0.1:1883 and allows anonymous
/// clients. Options follow mosquitto's conventions where they exist.
#[derive(Debug, Parser)]
#[command(name = "broker", version)]
struct Args {
    /// Plain MQTT listener (repeatable). Default 127.0.0.1:1883 when no
    /// listener of any kind is given.
    #[arg(long = "listen", value_name = "ADDR")]
    listen: Vec<SocketAddr>,

    /// MQTT over TLS listener (repeatable); needs --cert and --key.
    #[arg(long = "tls-listen", value_name = "ADDR", requires_all = ["cert", "key"])]
    tls_listen: Vec<SocketAddr>,

    /// PEM certificate chain for --tls-listen (server certificate first).
    #[arg(long, value_name = "FILE", requires = "tls_listen")]
    cert: Option<PathBuf>,

    /// PEM private key for --tls-listen (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_listen")]
    key: Option<PathBuf>,

    /// MQTT over WebSockets listener (repeatable; subprotocol "mqtt",
    /// binary frames carry the MQTT bytes).
    #[arg(long = "ws-listen", value_name = "ADDR")]
    ws_listen: Vec<SocketAddr>,

    /// mosquitto_passwd password file (`user:$7$...` PBKDF2-SHA512 or
    /// `user:$6$...` SHA-512). Clients without a user name are refused
    /// unless --allow-anonymous.
    #[arg(long = "password-file", value_name = "FILE")]
    password_file: Option<PathBuf>,

    /// Allow clients without a user name even with --password-file
    /// (always allowed without one).
    #[arg(long = "allow-anonymous")]
    allow_anonymous: bool,

    /// mosquitto acl_file: `user NAME`, `topic [read|write|readwrite|deny]
    /// TOPIC`, `pattern [...] TOPIC` with %c (client id) and %u (user
    /// name). Without it every client may publish and subscribe anywhere.
    #[arg(long = "acl-file", value_name = "FILE")]
    acl_file: Option<PathBuf>,

    /// Keep persistent sessions, their queued messages and retained
    /// messages in DIR (a journal, synced before every acknowledgement):
    /// they survive a restart, even kill -9.
    #[arg(long, value_name = "DIR")]
    persist: Option<PathBuf>,

    /// Largest packet accepted from a client, in bytes.
    #[arg(long = "max-packet-size", value_name = "BYTES")]
    max_packet_size: Option<u32>,

    /// Messages waiting for one session (offline, or its receive maximum
    /// reached); more are dropped.
    #[arg(long = "max-queued-messages", value_name = "N")]
    max_queued_messages: Option<usize>,

    /// Payload and topic bytes waiting for one session.
    #[arg(long = "max-queued-bytes", value_name = "BYTES")]
    max_queued_bytes: Option<usize>,

    /// Queue QoS 0 messages for offline persistent sessions too.
    #[arg(long = "queue-qos0-messages")]
    queue_qos0_messages: bool,

    /// Connections open at once; more are closed at once.
    #[arg(long = "max-connections", value_name = "N")]
    max_connections: Option<usize>,

    /// Sessions kept, connected or not; a new client beyond it is refused.
    #[arg(long = "max-sessions", value_name = "N")]
    max_sessions: Option<usize>,

    /// Subscriptions one session may hold.
    #[arg(long = "max-subscriptions", value_name = "N")]
    max_subscriptions: Option<usize>,

    /// Retained messages kept.
    #[arg(long = "max-retained-messages", value_name = "N")]
    max_retained_messages: Option<usize>,

    /// Payload and topic bytes of retained messages.
    #[arg(long = "max-retained-bytes", value_name = "BYTES")]
    max_retained_bytes: Option<usize>,

    /// Ceiling on any session expiry interval, in seconds (also the expiry
    /// of 3.1.1 persistent sessions).
    #[arg(long = "max-session-expiry", value_name = "SECONDS")]
    max_session_expiry: Option<u32>,

    /// Receive Maximum announced to 5.0 clients: their QoS 1/2 messages
    /// in flight at once.
    #[arg(long = "receive-maximum", value_name = "N")]
    receive_maximum: Option<NonZeroU16>,

    /// Topic Alias Maximum announced to 5.0 clients.
    #[arg(long = "topic-alias-maximum", value_name = "N")]
    topic_alias_maximum: Option<u16>,

    /// Highest QoS accepted and granted (0, 1 or 2).
    #[arg(long = "max-qos", value_name = "QOS", value_parser = clap::value_parser!(u8).range(0..=2))]
    max_qos: Option<u8>,

    /// Keep alive imposed on 5.0 clients, in seconds.
    #[arg(long = "server-keep-alive", value_name = "SECONDS")]
    server_keep_alive: Option<u16>,

    /// Time from accepting a transport to its CONNACK (TLS and WebSocket
    /// handshakes included), in seconds.
    #[arg(long = "connect-timeout", value_name = "SECONDS", default_value_t = 10)]
    connect_timeout: u64,

    /// Disable retained messages.
    #[arg(long = "no-retain")]
    no_retain: bool,

    /// Publish $SYS/broker/... statistics this often, in seconds.
    #[arg(long = "sys-interval", value_name = "SECONDS")]
    sys_interval: Option<u64>,

    /// Bytes of output waiting for one connection's socket; a client that
    /// reads so slowly that more piles up is disconnected, so that it holds
    /// neither memory nor the other clients.
    #[arg(long = "max-write-buffer", value_name = "BYTES", default_value_t = 8 * 1024 * 1024)]
    max_write_buffer: usize,

    /// Log nothing but errors.
    #[arg(long, short)]
    quiet: bool,

    /// Runtime threads. 1 (the default) runs everything on one thread:
    /// the broker core and the plain TCP connections are one task either
    /// way, and on one thread the TLS and WebSocket connections' hand-offs
    /// to it cost no cross-thread wake-ups. More spreads the TLS and
    /// WebSocket connections' work over that many threads.
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log(&format!("error: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// The core's settings from the options.
fn broker_config(args: &Args) -> BrokerConfig {
    let mut c = BrokerConfig::default();
    let s = &mut c.server;
    if let Some(v) = args.max_packet_size {
        s.max_packet_size = v;
    }
    if let Some(v) = args.receive_maximum {
        s.receive_maximum = v;
    }
    if let Some(v) = args.topic_alias_maximum {
        s.topic_alias_maximum = v;
    }
    if let Some(v) = args.max_qos {
        s.maximum_qos = match v {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        };
    }
    s.server_keep_alive = args.server_keep_alive;
    s.connect_timeout = Duration::from_secs(args.connect_timeout.max(1));
    s.retain_available = !args.no_retain;
    if let Some(v) = args.max_queued_messages {
        c.max_queued_messages = v;
    }
    if let Some(v) = args.max_queued_bytes {
        c.max_queued_bytes = v;
    }
    c.queue_qos0_offline = args.queue_qos0_messages;
    if let Some(v) = args.max_connections {
        c.max_connections = v;
    }
    if let Some(v) = args.max_sessions {
        c.max_sessions = v;
    }
    if let Some(v) = args.max_subscriptions {
        c.max_subscriptions_per_session = v;
    }
    if let Some(v) = args.max_retained_messages {
        c.max_retained_messages = v;
    }
    if let Some(v) = args.max_retained_bytes {
        c.max_retained_bytes = v;
    }
    if let Some(v) = args.max_session_expiry {
        c.max_session_expiry = v;
    }
    c.sys_interval = args.sys_interval.map(Duration::from_secs);
    c
}

fn run(mut args: Args) -> Result<(), Box<dyn Error>> {
    // Files first: a bad file is an error before anything listens.
    let passwords = match &args.password_file {
        Some(p) => Some(Arc::new(passwd::PasswordFile::load(p)?)),
        None => None,
    };
    let acl = match &args.acl_file {
        Some(p) => Some(acl::Acl::load(p)?),
        None => None,
    };
    let tls = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    if args.listen.is_empty() && args.tls_listen.is_empty() && args.ws_listen.is_empty() {
        args.listen.push(SocketAddr::from(([127, 0, 0, 1], 1883)));
    }
    let policy = Policy {
        allow_anonymous: passwords.is_none() || args.allow_anonymous,
        passwords,
        acl,
    };
    let mut broker = match &args.persist {
        Some(dir) => {
            let (store, kept) = persist::Storage::open(dir)?;
            let n = (kept.sessions.len(), kept.retained.len());
            let mut b = Broker::with_store(broker_config(&args), policy, store);
            b.restore(Instant::now(), kept.sessions, kept.retained)
                .map_err(|e| format!("cannot restore {}: {e}", dir.display()))?;
            log(&format!(
                "restored {} sessions and {} retained messages from {}",
                n.0,
                n.1,
                dir.display()
            ));
            b
        }
        None => Broker::with_store(broker_config(&args), policy, persist::Storage::none()),
    };
    // Anything restore queued is harmless to drop: no connection exists.
    while broker.poll_event().is_some() {}
    net::set_quiet(args.quiet);

    let runtime = match args.threads {
        0 => return Err("--threads must be at least 1".into()),
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    runtime.block_on(serve(args, broker, tls))
}

async fn serve(
    args: Args,
    broker: net::Core,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Result<(), Box<dyn Error>> {
    let (to_broker, inbox) = mpsc::channel(net::INBOX_CAPACITY);
    // Every connection task holds a clone of `alive`: when all are gone,
    // `recv` on `all_closed` returns None (graceful shutdown waits for it).
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    let shared = Shared {
        to_broker: to_broker.clone(),
        alive,
        handshake_timeout: Duration::from_secs(args.connect_timeout.max(1)),
    };

    let mut listeners = Vec::new();
    let bind = |addrs: &[SocketAddr], kind: Kind| -> Result<Vec<_>, Box<dyn Error>> {
        let mut out = Vec::new();
        for addr in addrs {
            let std_listener = std::net::TcpListener::bind(addr)
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            std_listener.set_nonblocking(true)?;
            let l = TcpListener::from_std(std_listener)?;
            log(&format!(
                "listening on {}://{}",
                kind.scheme(),
                l.local_addr()?
            ));
            out.push((l, kind.clone()));
        }
        Ok(out)
    };
    // Plain TCP: read and written by the broker task itself where the
    // platform allows (`direct`), else a task per connection.
    let mut plain = Vec::new();
    let mut bound = Vec::new();
    for addr in &args.listen {
        let l = std::net::TcpListener::bind(addr)
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        log(&format!("listening on mqtt://{}", l.local_addr()?));
        if cfg!(unix) {
            plain.push(l);
        } else {
            l.set_nonblocking(true)?;
            bound.push((TcpListener::from_std(l)?, Kind::Plain));
        }
    }
    let direct = direct::Direct::new(plain, args.max_write_buffer)?;
    if let Some(acceptor) = tls {
        bound.extend(bind(&args.tls_listen, Kind::Tls(acceptor))?);
    }
    bound.extend(bind(&args.ws_listen, Kind::Ws)?);
    for (l, kind) in bound {
        listeners.push(tokio::spawn(net::accept_loop(l, kind, shared.clone())));
    }

    let mut broker_task = tokio::spawn(net::run_broker(
        broker,
        direct,
        inbox,
        to_broker.downgrade(),
        args.max_write_buffer,
    ));
    tokio::select! {
        r = shutdown_signal() => r?,
        r = &mut broker_task => {
            // Only a failed store ends the broker task by itself.
            let e = match r {
                Ok(Err(e)) => e.to_string(),
                Ok(Ok(())) => "the broker task ended".to_owned(),
                Err(e) => e.to_string(),
            };
            return Err(format!("stopping: {e}").into());
        }
    }
    log("shutting down");
    for l in &listeners {
        l.abort();
    }
    let _ = to_broker.send(ToBroker::Shutdown).await;
    drop(to_broker);
    drop(shared);
    let _ = broker_task.await;
    // Give writers a moment to flush the DISCONNECTs.
    let _ = tokio::time::timeout(Duration::from_secs(3), all_closed.recv()).await;
    log("stopped");
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() -> Result<(), Box<dyn Error>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
