//! The run loop: the part to copy when you put the sans-IO
//! [`Client`] on a runtime.
//!
//! ```text
//!            ┌──────────── one task owns the Client ─────────────┐
//!  socket ──►│ handle_read(now, bytes)                            │
//!  timer  ──►│ handle_timeout(now)      (slept until poll_timeout)│
//!  stdin  ──►│ job.input → publish(...)  (only while the job      │
//!            │                            wants more)             │
//!            │ then drain: poll_transmit ──► socket (write_all)   │
//!            │             poll_event    ──► job.event(...)       │
//!            └────────────────────────────────────────────────────┘
//! ```
//!
//! - The [`Client`] is plain state: this one task owns it, no lock.
//! - After every input, the loop lets the job issue commands
//!   ([`Job::step`]), then drains the outputs in the order of the call
//!   contract: `poll_transmit` until `None` (written to the socket),
//!   `poll_event` until `None` (handed to the job), again until both are
//!   empty; then it sleeps until input arrives or `poll_timeout` passes.
//! - Publishing is windowed: when the broker's Receive Maximum is reached
//!   `publish` answers [`mqtt_session::Error::WindowFull`]; the job keeps
//!   that one message and tries again after the next acknowledgement
//!   event. Nothing is queued without bound: stdin is only read while the
//!   job has no message waiting.
//! - The [`Client`] outlives the connection: when the transport is lost,
//!   the loop dials again with a backoff and calls `connect` on the same
//!   client. When the broker kept the session (CONNACK session present),
//!   the client resends the unacknowledged messages by itself; when it did
//!   not, the job hears [`Event::SessionLost`] and decides.

use std::error::Error;
use std::future::Future;
use std::io::{self, Write as _};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use mqtt_session::client::{Client, ClientConfig, Event};
use mqtt_session::CloseReason;
use mqtt_wire::{Connect, DisconnectProperties, DisconnectReasonCode};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;

/// Bytes asked of the socket per read.
const READ_SIZE: usize = 16 * 1024;
/// Time allowed for the TCP connection and the TLS handshake.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// First wait before reconnecting; doubled after every failure.
const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// What the application does with the session (`pub` or `sub`).
pub(crate) trait Job {
    /// Issues the commands possible now (publish, subscribe). Called after
    /// every input while the client is connected.
    fn step(&mut self, client: &mut Client, now: Instant) -> Result<(), String>;

    /// One event from the client.
    fn event(&mut self, client: &mut Client, now: Instant, event: Event) -> Result<(), String>;

    /// Whether the work is complete: the loop sends DISCONNECT and ends.
    fn done(&self) -> bool;

    /// Whether [`Job::step`] stopped with more to do at once: the loop
    /// writes, looks at its inputs, and calls it again.
    fn ready(&self) -> bool {
        false
    }

    /// Whether the job waits for application input ([`Job::input`]) now.
    fn wants_input(&self) -> bool {
        false
    }

    /// The next application input (`None`: no more).
    fn input(&mut self) -> impl Future<Output = Option<Bytes>> + Send {
        std::future::pending()
    }

    /// Takes what [`Job::input`] produced.
    fn push_input(&mut self, _input: Option<Bytes>) {}
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// The job is done and DISCONNECT was sent.
    Done,
    /// `-W` passed first.
    TimedOut,
    /// Ctrl-C.
    Interrupted,
}

/// Where and how to connect.
pub(crate) struct Transport {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: Option<(TlsConnector, ServerName<'static>)>,
}

/// A byte stream: TCP or TLS over TCP.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl Transport {
    async fn dial(&self) -> io::Result<Box<dyn Stream>> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some((connector, name)) => Ok(Box::new(connector.connect(name.clone(), tcp).await?)),
        }
    }
}

/// Settings of the run loop.
pub(crate) struct Options {
    /// When the connections after the first need another CONNECT than
    /// the client was built with (Clean Start 0 to resume the session the
    /// first one started), that CONNECT.
    pub(crate) reconnect: Option<Connect>,
    /// Properties of the final DISCONNECT (5.0).
    pub(crate) disconnect: DisconnectProperties,
    /// `-W`: give up at this instant.
    pub(crate) deadline: Option<Instant>,
    /// `-d`: log packets and events on stderr.
    pub(crate) debug: bool,
}

/// Runs `job` over `client` until it is done, reconnecting after a
/// connection loss. The first connection must succeed; a refused CONNACK
/// or a session taken over by another client ends the run with an error.
pub(crate) async fn run<J: Job>(
    client: &mut Client,
    job: &mut J,
    transport: &Transport,
    opts: &Options,
    stop: &mut watch::Receiver<bool>,
) -> Result<Exit, Box<dyn Error>> {
    let mut backoff = MIN_BACKOFF;
    let mut ever_connected = false;
    let mut first_reconnect = opts.reconnect.clone();
    loop {
        let dialed = tokio::select! {
            r = tokio::time::timeout(DIAL_TIMEOUT, transport.dial()) => {
                r.unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")))
            }
            _ = stop.changed() => return Ok(Exit::Interrupted),
            () = sleep_until(opts.deadline) => return Ok(Exit::TimedOut),
        };
        let lost = match dialed {
            Ok(stream) => match connection(client, job, stream, opts, stop).await? {
                Ending::Finished(exit) => return Ok(exit),
                Ending::Lost { connected, reason } => {
                    if connected {
                        ever_connected = true;
                        backoff = MIN_BACKOFF;
                    }
                    if let Some(code) = reason.refusal() {
                        return Err(format!("connection refused: {code}").into());
                    }
                    if let CloseReason::PeerDisconnected(d) = &reason {
                        if d.reason_code == DisconnectReasonCode::SessionTakenOver {
                            return Err("another client took the session over".into());
                        }
                    }
                    if !ever_connected {
                        return Err(format!("cannot connect: {}", describe(&reason)).into());
                    }
                    describe(&reason)
                }
            },
            Err(e) if !ever_connected => {
                return Err(format!(
                    "cannot connect to {}:{}: {e}",
                    transport.host, transport.port
                )
                .into())
            }
            Err(e) => e.to_string(),
        };
        log(&format!(
            "connection lost ({lost}); reconnecting in {} ms",
            backoff.as_millis()
        ));
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return Ok(Exit::Interrupted),
            () = sleep_until(opts.deadline) => return Ok(Exit::TimedOut),
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        if let Some(connect) = first_reconnect.take() {
            // The first CONNECT started a fresh session (Clean Start 1);
            // the next ones resume it (Clean Start 0): a client with that
            // CONNECT takes over the session this one holds.
            let config = ClientConfig::new(connect);
            *client = Client::with_session(config, client.session_state());
        }
    }
}

/// How one connection ended.
enum Ending {
    /// The run is over.
    Finished(Exit),
    /// The connection is gone; `connected` if a CONNACK 0x00 came.
    Lost {
        connected: bool,
        reason: CloseReason,
    },
}

/// One network connection: CONNECT, then inputs and outputs until the
/// client is closed.
async fn connection<J: Job>(
    client: &mut Client,
    job: &mut J,
    mut stream: Box<dyn Stream>,
    opts: &Options,
    stop: &mut watch::Receiver<bool>,
) -> Result<Ending, Box<dyn Error>> {
    client.connect(Instant::now())?;
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    let mut connected = false;
    let mut reason = None;
    // Set once this side ends the connection on purpose.
    let mut finished: Option<Exit> = None;
    loop {
        // The outputs in the contract's order (bytes, then events), then
        // the job's commands (it has seen every event), until a round
        // produces nothing.
        let mut stepped = false;
        loop {
            let now = Instant::now();
            let mut busy = false;
            while let Some(bytes) = client.poll_transmit() {
                busy = true;
                if let Err(e) = stream.write_all(&bytes).await {
                    debug(opts, &format!("write failed: {e}"));
                    client.handle_closed(Instant::now());
                }
            }
            if busy && stream.flush().await.is_err() {
                client.handle_closed(Instant::now());
            }
            while let Some(event) = client.poll_event() {
                busy = true;
                if opts.debug {
                    log(&describe_event(&event));
                }
                match &event {
                    Event::Connected { .. } => connected = true,
                    Event::Disconnected(r) => reason = Some(r.clone()),
                    _ => {}
                }
                job.event(client, now, event)?;
            }
            if stepped && (!busy || job.ready()) {
                break;
            }
            if client.is_connected() && finished.is_none() {
                job.step(client, now)?;
                if job.done() {
                    client.disconnect(
                        now,
                        DisconnectReasonCode::NormalDisconnection,
                        opts.disconnect.clone(),
                    )?;
                    finished = Some(Exit::Done);
                }
            }
            stepped = true;
        }
        if client.is_closed() {
            // Everything queued was written above: close the transport.
            let _ = stream.shutdown().await;
            return Ok(match finished {
                Some(exit) => Ending::Finished(exit),
                None => Ending::Lost {
                    connected,
                    reason: reason.unwrap_or(CloseReason::TransportClosed),
                },
            });
        }
        let timeout = client.poll_timeout();
        tokio::select! {
            r = stream.read_buf(&mut buf) => match r {
                Ok(n) if n > 0 => {
                    client.handle_read(Instant::now(), &buf);
                    buf.clear();
                }
                // End of stream or a read error: the connection is gone.
                _ => client.handle_closed(Instant::now()),
            },
            () = sleep_until(timeout) => client.handle_timeout(Instant::now()),
            input = job.input(), if job.wants_input() => job.push_input(input),
            () = tokio::task::yield_now(), if job.ready() && client.is_connected() => {}
            _ = stop.changed() => finished = Some(close(client, opts, Exit::Interrupted)),
            () = sleep_until(opts.deadline) => finished = Some(close(client, opts, Exit::TimedOut)),
        }
    }
}

/// Ends the connection on purpose: DISCONNECT when one is allowed.
fn close(client: &mut Client, opts: &Options, exit: Exit) -> Exit {
    let now = Instant::now();
    if client
        .disconnect(
            now,
            DisconnectReasonCode::NormalDisconnection,
            opts.disconnect.clone(),
        )
        .is_err()
    {
        client.handle_closed(now);
    }
    exit
}

/// Sleeps until `t`, or forever.
async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

/// A connection's ending, for the log.
pub(crate) fn describe(reason: &CloseReason) -> String {
    match reason {
        CloseReason::PeerDisconnected(d) => {
            format!("DISCONNECT from the broker: {}", d.reason_code)
        }
        CloseReason::TransportClosed => "connection closed".to_owned(),
        CloseReason::KeepAliveTimeout => "no PINGRESP in time".to_owned(),
        CloseReason::ConnectTimeout => "no CONNACK in time".to_owned(),
        CloseReason::Malformed(e) => format!("malformed packet from the broker: {e}"),
        CloseReason::ProtocolViolation { code, reason } => {
            format!("protocol violation by the broker ({code}): {reason}")
        }
        CloseReason::LocalDisconnect(code) => format!("disconnected ({code})"),
        CloseReason::Refused(c) => format!("CONNACK {}", c.reason_code),
        other => format!("{other:?}"),
    }
}

/// An event, in mosquitto's `-d` style.
fn describe_event(e: &Event) -> String {
    match e {
        Event::Connected {
            session_present, ..
        } => format!(
            "received CONNACK (session present: {})",
            u8::from(*session_present)
        ),
        Event::Publish(p) => format!(
            "received PUBLISH (q{}, r{}, '{}', ... ({} bytes))",
            p.qos() as u8,
            u8::from(p.retain),
            p.topic.as_ref().map_or("", |t| t.as_str()),
            p.payload.len()
        ),
        Event::PubAck(a) => format!(
            "received PUBACK (Mid: {}, RC: {})",
            a.packet_id.get(),
            a.reason_code
        ),
        Event::PubRecFailed(r) => format!(
            "received PUBREC (Mid: {}, RC: {})",
            r.packet_id.get(),
            r.reason_code
        ),
        Event::PubComp(c) => format!("received PUBCOMP (Mid: {})", c.packet_id.get()),
        Event::SubAck(s) => format!(
            "received SUBACK (Mid: {}, {:?})",
            s.packet_id.get(),
            s.reason_codes
        ),
        Event::UnsubAck(u) => format!("received UNSUBACK (Mid: {})", u.packet_id.get()),
        Event::RequestLost(id) => format!("request {} lost with the connection", id.get()),
        Event::SessionLost {
            unacknowledged,
            unreleased,
        } => format!(
            "session lost: {} unacknowledged, {} unreleased",
            unacknowledged.len(),
            unreleased.len()
        ),
        Event::Dropped(p) => format!(
            "dropped a stored message to '{}' the broker no longer accepts",
            p.topic.as_ref().map_or("", |t| t.as_str())
        ),
        Event::Disconnected(r) => describe(r),
        other => format!("{other:?}"),
    }
}

fn debug(opts: &Options, line: &str) {
    if opts.debug {
        log(line);
    }
}

/// One line on stderr, with the time in seconds since the Unix epoch.
pub(crate) fn log(line: &str) {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{}.{:03} {line}", t.as_secs(), t.subsec_millis());
}
