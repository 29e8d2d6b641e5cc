//! The run loop: the pattern to copy when you put the sans-IO broker on a
//! runtime.
//!
//! ```text
//!  socket ──► reader task ──┐  ToBroker::{Accept, Read, Closed, Authenticated}
//!  socket ──► reader task ──┼──────────────► broker task (owns the Broker)
//!  socket ──► reader task ──┘  one bounded mpsc      │  handle_* / poll_*
//!                                                    │  sleeps until poll_timeout
//!  socket ◄── writer task ◄── Pipe (queue + wake) ◄──┤  push, never waits:
//!  socket ◄── writer task ◄── Pipe (queue + wake) ◄──┘  full: close that client
//! ```
//!
//! - The [`Broker`] is plain single-threaded state: exactly **one** task
//!   ([`run_broker`]) owns it. No lock, no `Arc<Mutex<Broker>>`.
//! - Each connection has a reader and a writer. The reader sends what it
//!   reads to the broker task over one shared bounded channel (when the
//!   broker is busy, readers wait: that is the back-pressure on
//!   publishers). The writer takes chunks from its own [`Pipe`] (a queue
//!   and a wake-up, empty and unallocated while idle).
//! - The broker task never waits on a connection: it hands output with
//!   `Pipe::push`. A client whose queue is full (more than
//!   `--max-write-buffer` bytes not yet written) reads slower than it is
//!   sent to; it is closed, so a slow or stuck client never holds up the
//!   others nor grows memory.
//! - After every input (or batch of inputs) the broker task drains the
//!   outputs in the order of the call contract: `poll_transmit` until
//!   `None`, `poll_event` until `None`, then `poll_timeout` for the next
//!   sleep.
//! - With a persistent store (`--persist`), the store is synced once per
//!   batch, before the first byte of its output is handed out: the core
//!   reports a message to the store before it queues the acknowledgement,
//!   so what a client sees acknowledged is durable (group commit).
//! - Decisions that may take time (checking a password hash) run off the
//!   broker task: the hook answers `Defer`, the broker reports
//!   `Event::Authenticate`, a blocking task decides and sends the answer
//!   back as one more input ([`ToBroker::Authenticated`]).
//!
//! The transports (TCP, TLS, WebSocket) only differ in how bytes are read
//! and written: [`Inbound`] and [`Outbound`].

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use mqtt_broker::{AuthDecision, Broker, ConnectionId, Event};
use mqtt_session::CloseReason;
use mqtt_wire::ConnectReasonCode;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::persist::Storage;
use crate::policy::Policy;

/// The broker core with this example's hooks and store.
pub(crate) type Core = Broker<Policy, Storage>;

/// Messages waiting for the broker task, from all connections together.
pub(crate) const INBOX_CAPACITY: usize = 1024;
/// Inputs handled before the outputs are drained: output for one
/// connection from several inputs leaves as one write.
const BATCH: usize = 64;
/// Bytes asked of the socket per read.
const READ_SIZE: usize = 8 * 1024;
/// Chunks waiting for one writer (the byte bound is `--max-write-buffer`).
const WRITE_CHUNKS: usize = 1024;

/// An input for the broker task.
#[derive(Debug)]
pub(crate) enum ToBroker {
    /// A new transport: register it and reply with its id (`None`:
    /// refused, close it).
    Accept {
        peer: String,
        pipe: Arc<Pipe>,
        reply: oneshot::Sender<Option<ConnectionId>>,
    },
    /// Bytes read from a connection.
    Read(ConnectionId, Bytes),
    /// A connection's transport closed (or failed).
    Closed(ConnectionId),
    /// The answer to a deferred authentication.
    Authenticated(ConnectionId, AuthDecision),
    /// Ctrl-C / SIGTERM: close every connection and stop.
    Shutdown,
}

/// The hand-off from the broker task to one connection's writer: the
/// chunks to write, in order, and how the connection ends. One small
/// allocation per connection, and an idle connection holds an empty queue
/// (a bounded `mpsc` channel allocated ~1.5 KB per connection up front).
#[derive(Debug, Default)]
pub(crate) struct Pipe {
    state: std::sync::Mutex<PipeState>,
    /// Wakes the writer's loop (its only waiter).
    wake: tokio::sync::Notify,
    /// Wakes the writer's kill watch (its only waiter), so a kill also
    /// interrupts a write stuck on a full socket.
    kill_wake: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct PipeState {
    chunks: std::collections::VecDeque<Bytes>,
    /// Bytes in `chunks`.
    queued: usize,
    /// Write what is queued, then close the transport.
    close: bool,
    /// Stop at once, dropping what is queued (a slow consumer).
    kill: bool,
}

/// What the writer does next.
enum Take {
    Data(Bytes),
    /// Nothing queued: flush, then wait.
    Idle,
    Close,
    Kill,
}

impl Pipe {
    fn lock(&self) -> std::sync::MutexGuard<'_, PipeState> {
        // A writer that panicked cannot corrupt a queue of `Bytes`.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `bytes`; false (nothing queued) when the client is too slow:
    /// more than `max` bytes or `WRITE_CHUNKS` chunks would wait (one chunk
    /// of any size gets through an empty queue).
    fn push(&self, bytes: Bytes, max: usize) -> bool {
        let mut s = self.lock();
        let n = bytes.len();
        if s.queued > 0 && (s.queued + n > max || s.chunks.len() >= WRITE_CHUNKS) {
            return false;
        }
        s.queued += n;
        s.chunks.push_back(bytes);
        drop(s);
        self.wake.notify_one();
        true
    }

    /// The writer finishes what is queued, then closes the transport.
    fn close(&self) {
        self.lock().close = true;
        self.wake.notify_one();
    }

    /// The writer stops at once.
    fn kill(&self) {
        self.lock().kill = true;
        self.kill_wake.notify_one();
        self.wake.notify_one();
    }

    fn take(&self) -> Take {
        let mut s = self.lock();
        if s.kill {
            return Take::Kill;
        }
        match s.chunks.pop_front() {
            Some(b) => {
                s.queued -= b.len();
                if s.chunks.is_empty() {
                    // Drained: an idle connection keeps no queue memory.
                    s.chunks = std::collections::VecDeque::new();
                }
                Take::Data(b)
            }
            None if s.close => Take::Close,
            None => Take::Idle,
        }
    }

    /// Resolves once `kill` was called.
    async fn killed(&self) {
        while !self.lock().kill {
            self.kill_wake.notified().await;
        }
    }
}

/// The broker task's view of one connection.
struct Link {
    pipe: Arc<Pipe>,
    peer: String,
}

impl Drop for Link {
    /// Forgetting a connection lets its writer finish what is queued (the
    /// last DISCONNECT, say) and close the transport.
    fn drop(&mut self) {
        self.pipe.close();
    }
}

/// The broker task: owns the broker, handles inputs, drains outputs,
/// sleeps until the next deadline. Returns after [`ToBroker::Shutdown`].
pub(crate) async fn run_broker(
    broker: Core,
    mut inbox: mpsc::Receiver<ToBroker>,
    me: mpsc::WeakSender<ToBroker>,
    max_write_buffer: usize,
) -> io::Result<()> {
    let mut task = BrokerTask {
        broker,
        links: HashMap::new(),
        max_write_buffer,
        gone: Vec::new(),
        me,
    };
    let mut running = true;
    while running {
        let deadline = task.broker.poll_timeout();
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = inbox.recv() => {
                let Some(msg) = msg else { break };
                running = task.handle(msg);
                // Whatever else is already waiting, then one drain.
                let mut n = 1;
                while running && n < BATCH {
                    let Ok(msg) = inbox.try_recv() else { break };
                    running = task.handle(msg);
                    n += 1;
                }
            }
            () = sleep => task.broker.handle_timeout(Instant::now()),
        }
        task.drain()?;
    }
    // Dropping the links lets every writer flush what it has (the
    // DISCONNECTs of the shutdown) and close.
    Ok(())
}

/// What the broker task owns.
struct BrokerTask {
    broker: Core,
    links: HashMap<ConnectionId, Link>,
    /// `--max-write-buffer`.
    max_write_buffer: usize,
    /// Transports closed by their peer: forgotten after the next drain
    /// (its log lines still name the peer).
    gone: Vec<ConnectionId>,
    /// For answers computed off the task (weak: does not keep it alive).
    me: mpsc::WeakSender<ToBroker>,
}

impl BrokerTask {
    /// One input into the broker. Returns false on shutdown.
    fn handle(&mut self, msg: ToBroker) -> bool {
        let now = Instant::now();
        match msg {
            ToBroker::Accept { peer, pipe, reply } => match self.broker.accept(now) {
                Ok(id) => {
                    if reply.send(Some(id)).is_ok() {
                        self.links.insert(id, Link { pipe, peer });
                    } else {
                        self.broker.handle_closed(id, now);
                    }
                }
                Err(e) => {
                    log(&format!("refuse {peer}: {e}"));
                    let _ = reply.send(None);
                }
            },
            ToBroker::Read(id, bytes) => self.broker.handle_read(id, now, &bytes),
            ToBroker::Closed(id) => {
                if self.links.contains_key(&id) {
                    self.broker.handle_closed(id, now);
                    self.gone.push(id);
                }
            }
            ToBroker::Authenticated(id, decision) => {
                // The connection may have gone meanwhile: nothing to do then.
                let _ = self.broker.authenticated(id, now, decision);
            }
            ToBroker::Shutdown => {
                for id in self.links.keys() {
                    let _ = self.broker.disconnect(
                        *id,
                        now,
                        mqtt_wire::DisconnectReasonCode::ServerShuttingDown,
                    );
                }
                return false;
            }
        }
        true
    }

    /// Drains the broker's outputs in the contract's order: bytes to the
    /// writers, then events, until both are empty. With `--persist`, what
    /// the inputs made durable is synced before any byte leaves (an
    /// acknowledgement promises durability); a failed sync stops the
    /// broker before it sends anything more.
    fn drain(&mut self) -> io::Result<()> {
        let mut slow = Vec::new();
        loop {
            self.broker.store_mut().sync().map_err(|e| {
                log(&format!("error: persistence failed: {e}"));
                e
            })?;
            let mut busy = false;
            while let Some((id, bytes)) = self.broker.poll_transmit() {
                busy = true;
                if let Some(link) = self.links.get(&id) {
                    // Never wait for a client: a full queue means it is
                    // slow (one chunk of any size gets through an empty
                    // queue).
                    if !link.pipe.push(bytes, self.max_write_buffer) {
                        slow.push(id);
                    }
                }
            }
            while let Some(event) = self.broker.poll_event() {
                busy = true;
                self.on_event(event);
            }
            for id in slow.drain(..) {
                if let Some(link) = self.links.get(&id) {
                    busy = true;
                    log(&format!("close {id} ({}): reads too slowly", link.peer));
                    link.pipe.kill();
                    self.broker.handle_closed(id, Instant::now());
                    self.links.remove(&id);
                }
            }
            if !busy {
                break;
            }
        }
        for id in self.gone.drain(..) {
            self.links.remove(&id);
        }
        Ok(())
    }

    fn peer(&self, id: ConnectionId) -> &str {
        self.links.get(&id).map_or("?", |l| l.peer.as_str())
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected {
                id,
                client_id,
                username,
                version,
                session_present,
            } => {
                let resumed = if session_present {
                    ", session resumed"
                } else {
                    ""
                };
                let user = username.map_or_else(String::new, |u| format!(" user \"{u}\""));
                log(&format!(
                    "connect {id} client \"{client_id}\"{user} {version} from {}{resumed}",
                    self.peer(id)
                ));
            }
            Event::Disconnected {
                id,
                client_id,
                reason,
            } => {
                let who = client_id.map_or_else(String::new, |c| format!(" client \"{c}\""));
                let what = if reason.refusal().is_some() {
                    "refuse"
                } else {
                    "disconnect"
                };
                log(&format!(
                    "{what} {id}{who} from {}: {}",
                    self.peer(id),
                    describe(&reason)
                ));
            }
            Event::Close(id) => {
                // Dropping the link closes the transport after what is
                // queued.
                self.links.remove(&id);
            }
            Event::Authenticate { id, connect } => {
                // Policy::authenticate defers password checks: hash off the
                // broker task, answer with one more input.
                let passwords = self.broker.hooks_mut().passwords.clone();
                match (self.me.upgrade(), passwords) {
                    (Some(tx), Some(passwords)) => {
                        tokio::task::spawn_blocking(move || {
                            let ok = match (&connect.username, &connect.password) {
                                (Some(u), Some(p)) => passwords.verify(u.as_str(), p),
                                _ => false,
                            };
                            let decision = if ok {
                                AuthDecision::Allow
                            } else {
                                AuthDecision::Deny(ConnectReasonCode::BadUserNameOrPassword)
                            };
                            let _ = tx.blocking_send(ToBroker::Authenticated(id, decision));
                        });
                    }
                    _ => {
                        let deny = AuthDecision::Deny(ConnectReasonCode::NotAuthorized);
                        let _ = self.broker.authenticated(id, Instant::now(), deny);
                    }
                }
            }
            Event::AuthStep { id, .. } => {
                // Enhanced authentication is refused at CONNECT; an AUTH
                // here is out of place.
                let _ = self.broker.close(id, Instant::now());
            }
            other => log(&format!("event {other:?}")),
        }
    }
}

/// A connection's ending, for the log.
fn describe(reason: &CloseReason) -> String {
    match reason {
        CloseReason::PeerDisconnected(d) => format!("DISCONNECT {:?}", d.reason_code),
        CloseReason::TransportClosed => "connection closed (no DISCONNECT)".to_owned(),
        CloseReason::KeepAliveTimeout => "keep alive timeout".to_owned(),
        CloseReason::ConnectTimeout => "no CONNECT in time".to_owned(),
        CloseReason::Malformed(e) => format!("malformed packet: {e}"),
        CloseReason::ProtocolViolation { code, reason } => {
            format!("protocol violation ({code:?}): {reason}")
        }
        CloseReason::LocalDisconnect(code) => format!("closed by the broker ({code:?})"),
        CloseReason::Refused(c) => format!("CONNACK {:?}", c.reason_code),
        other => format!("{other:?}"),
    }
}

// ---- connections ----

/// How a listener's connections are set up.
#[derive(Clone)]
pub(crate) enum Kind {
    Plain,
    Tls(tokio_rustls::TlsAcceptor),
    Ws,
}

impl Kind {
    pub(crate) fn scheme(&self) -> &'static str {
        match self {
            Kind::Plain => "mqtt",
            Kind::Tls(_) => "mqtts",
            Kind::Ws => "ws",
        }
    }
}

/// What every connection task gets.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) to_broker: mpsc::Sender<ToBroker>,
    /// Held while the connection task runs (shutdown waits for all).
    pub(crate) alive: mpsc::Sender<()>,

    pub(crate) handshake_timeout: Duration,
}

/// Accepts connections for as long as the task runs.
pub(crate) async fn accept_loop(listener: TcpListener, kind: Kind, shared: Shared) {
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors, most likely: wait, don't spin.
                log(&format!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        let peer = addr.to_string();
        // One task type per transport: a task is as large as its future,
        // and a plain TCP connection must not carry room for a TLS or
        // WebSocket handshake (~2.5 KB each, idle connections included).
        match &kind {
            Kind::Plain => {
                tokio::spawn(async move {
                    let (r, w) = tcp.into_split();
                    connection(StreamIn::new(r), StreamOut(w), peer, shared).await;
                });
            }
            Kind::Tls(acceptor) => {
                tokio::spawn(tls_connection(acceptor.clone(), tcp, peer, shared));
            }
            Kind::Ws => {
                tokio::spawn(ws_connection(tcp, peer, shared));
            }
        }
    }
}

/// A TLS connection: the handshake under its deadline, then [`connection`].
async fn tls_connection(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: String,
    shared: Shared,
) {
    let limit = shared.handshake_timeout;
    match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => {
            let (r, w) = tokio::io::split(tls);
            connection(StreamIn::new(r), StreamOut(w), peer, shared).await;
        }
        Ok(Err(e)) => log(&format!("TLS handshake with {peer} failed: {e}")),
        Err(_) => log(&format!("TLS handshake with {peer} timed out")),
    }
}

/// A WebSocket connection: the HTTP upgrade under its deadline, then
/// [`connection`].
async fn ws_connection(tcp: tokio::net::TcpStream, peer: String, shared: Shared) {
    let limit = shared.handshake_timeout;
    match tokio::time::timeout(limit, crate::ws::accept(tcp)).await {
        Ok(Ok((r, w))) => connection(r, w, peer, shared).await,
        Ok(Err(e)) => log(&format!("WebSocket handshake with {peer} failed: {e}")),
        Err(_) => log(&format!("WebSocket handshake with {peer} timed out")),
    }
}

/// One connection: registers with the broker task, then runs the writer
/// (its own task) and the reader until either ends.
async fn connection<R: Inbound, W: Outbound>(mut r: R, w: W, peer: String, shared: Shared) {
    let _alive = shared.alive;
    let pipe = Arc::new(Pipe::default());
    let (reply, id) = oneshot::channel();
    let accept = ToBroker::Accept {
        peer,
        pipe: pipe.clone(),
        reply,
    };
    if shared.to_broker.send(accept).await.is_err() {
        return;
    }
    let Ok(Some(id)) = id.await else {
        return; // refused (too many connections) or shutting down
    };
    let mut writer = tokio::spawn(write_loop(w, pipe));
    let to_broker = shared.to_broker;
    let reader = async {
        // A read error is an ending like any other: the broker logs it.
        while let Ok(Some(bytes)) = r.read_chunk().await {
            if to_broker.send(ToBroker::Read(id, bytes)).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = &mut writer => {}
        () = reader => {}
    }
    writer.abort();
    // The broker ignores this if it closed the connection itself.
    let _ = to_broker.send(ToBroker::Closed(id)).await;
}

/// Writes what the broker task queues until it closes or kills the pipe,
/// or a write fails. One flush per burst: everything already queued is
/// written first.
async fn write_loop<W: Outbound>(mut w: W, pipe: Arc<Pipe>) {
    let work = async {
        let mut unflushed = false;
        loop {
            match pipe.take() {
                Take::Data(bytes) => {
                    if w.write(bytes).await.is_err() {
                        return;
                    }
                    unflushed = true;
                }
                Take::Idle => {
                    if unflushed {
                        if w.flush().await.is_err() {
                            return;
                        }
                        unflushed = false;
                        continue; // more may have come during the flush
                    }
                    pipe.wake.notified().await;
                }
                Take::Close => {
                    let _ = w.close().await;
                    return;
                }
                Take::Kill => return,
            }
        }
    };
    // A kill also interrupts a write stuck on a full socket.
    tokio::select! {
        () = pipe.killed() => {}
        () = work => {}
    }
}

/// The read side of a transport.
pub(crate) trait Inbound: Send + 'static {
    /// The next bytes; `None` at the end of the stream.
    fn read_chunk(&mut self) -> impl Future<Output = io::Result<Option<Bytes>>> + Send;
}

/// The write side of a transport.
pub(crate) trait Outbound: Send + 'static {
    /// Queues or writes `bytes`.
    fn write(&mut self, bytes: Bytes) -> impl Future<Output = io::Result<()>> + Send;
    /// Pushes out everything written.
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send;
    /// Flushes and closes (TCP FIN, TLS close_notify, WebSocket Close).
    fn close(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}

/// A byte stream's read half (TCP, TLS).
pub(crate) struct StreamIn<R> {
    r: R,
}

impl<R> StreamIn<R> {
    fn new(r: R) -> Self {
        StreamIn { r }
    }
}

thread_local! {
    /// Where every connection of this thread reads into. A read buffer per
    /// connection would be held by every idle connection while it waits
    /// (8 KiB each); this one is only borrowed while a read is polled.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_SIZE]);
}

impl<R: AsyncRead + Unpin + Send + 'static> Inbound for StreamIn<R> {
    async fn read_chunk(&mut self) -> io::Result<Option<Bytes>> {
        std::future::poll_fn(|cx| {
            SCRATCH.with_borrow_mut(|scratch| {
                let mut rb = tokio::io::ReadBuf::new(scratch);
                std::pin::Pin::new(&mut self.r)
                    .poll_read(cx, &mut rb)
                    // Exactly what was read, copied out (the core copies
                    // it into its own buffer anyway); nothing: the end.
                    .map_ok(|()| {
                        let got = rb.filled();
                        (!got.is_empty()).then(|| Bytes::copy_from_slice(got))
                    })
            })
        })
        .await
    }
}

/// A byte stream's write half (TCP, TLS).
pub(crate) struct StreamOut<W>(W);

impl<W: AsyncWrite + Unpin + Send + 'static> Outbound for StreamOut<W> {
    async fn write(&mut self, bytes: Bytes) -> io::Result<()> {
        self.0.write_all(&bytes).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.0.flush().await
    }

    async fn close(&mut self) -> io::Result<()> {
        self.0.shutdown().await
    }
}

// ---- logging ----

static QUIET: AtomicBool = AtomicBool::new(false);

/// `--quiet`: only errors are logged.
pub(crate) fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// One line on stderr, with the time in seconds since the Unix epoch.
pub(crate) fn log(line: &str) {
    if QUIET.load(Ordering::Relaxed) && !line.starts_with("error") {
        return;
    }
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{}.{:03} {line}", t.as_secs(), t.subsec_millis());
}
