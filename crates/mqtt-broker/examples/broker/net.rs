//! The run loop: the pattern to copy when you put the sans-IO broker on a
//! runtime.
//!
//! ```text
//!  plain TCP: listeners, sockets ─► one mio::Poll ─► broker task (owns the Broker)
//!             (crate::direct: no task per connection; accept, read and
//!              write happen in the broker task when a socket is ready)
//!
//!  TLS, WebSocket:
//!  socket ◄─► connection task ──┐  ToBroker::{Accept, Read, Closed, Authenticated}
//!  socket ◄─► connection task ──┴──────────────► broker task
//!             (read ‖ write)       one bounded mpsc      │  handle_* / poll_*
//!                      ▲                                 │  sleeps until poll_timeout
//!                      └──── Pipe (queue + waker) ◄──────┘  push, never waits:
//!                            one per connection             full: close that client
//! ```
//!
//! - The [`Broker`] is plain single-threaded state: exactly **one** task
//!   ([`run_broker`]) owns it. No lock, no `Arc<Mutex<Broker>>`.
//! - Plain TCP connections are read and written by that task itself
//!   ([`Direct`]): an idle one costs a 56-byte table entry, and a message
//!   costs a read and a write, no task hand-off.
//! - A TLS or WebSocket connection is **one** task that reads and writes
//!   concurrently (two branches of one `select!`, not two tasks: a task
//!   costs its header and its own future, and an idle connection holds
//!   both). The read branch sends what it reads to the broker task over
//!   one shared bounded channel (when the broker is busy, it waits: that
//!   is the back-pressure on publishers; the write branch goes on
//!   meanwhile, and a kill still ends the connection at once). The write
//!   branch takes chunks from the connection's own [`Pipe`] (a queue and
//!   the task's waker, empty and unallocated while idle).
//! - The broker task never waits on a connection: direct connections are
//!   written without blocking (what the socket refuses waits in their
//!   queue), task connections get their output with `Pipe::push`. A
//!   client with more than `--max-write-buffer` bytes waiting reads
//!   slower than it is sent to; it is closed, so a slow or stuck client
//!   never holds up the others nor grows memory.
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
//! The task transports (TLS, WebSocket; plain TCP where tokio has no
//! `AsyncFd`) only differ in how bytes are read and written: [`Inbound`]
//! and [`Outbound`].

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes};
use mqtt_broker::{AuthDecision, Broker, ConnectionId, Event};
use mqtt_session::CloseReason;
use mqtt_wire::ConnectReasonCode;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::direct::{Direct, Sent};
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
    /// A new transport: register it and answer on its pipe
    /// ([`Pipe::accepted`]).
    Accept(SocketAddr, Registration),
    /// Bytes read from a connection.
    Read(ConnectionId, Bytes),
    /// A connection's transport closed (or failed).
    Closed(ConnectionId),
    /// The answer to a deferred authentication.
    Authenticated(ConnectionId, AuthDecision),
    /// Ctrl-C / SIGTERM: close every connection and stop.
    Shutdown,
}

/// The hand-off from the broker task to one connection task: its id, the
/// chunks to write, in order, and how the connection ends. One small
/// allocation per connection, and an idle connection holds an empty queue
/// (a bounded `mpsc` channel allocated ~1.5 KB per connection up front).
///
/// The connection task is the only waiter, so one stored waker does (two
/// `Notify`s and their `Notified` futures cost ~200 bytes a connection):
/// every wait of that task re-registers it each time it is polled.
#[derive(Debug, Default)]
pub(crate) struct Pipe {
    state: std::sync::Mutex<PipeState>,
}

#[derive(Debug, Default)]
struct PipeState {
    chunks: std::collections::VecDeque<Bytes>,
    /// Bytes in `chunks`.
    queued: usize,
    /// The broker task's answer to [`ToBroker::Accept`].
    id: Option<ConnectionId>,
    /// Write what is queued, then close the transport.
    close: bool,
    /// Stop at once, dropping what is queued (a slow consumer).
    kill: bool,
    /// The connection task, while it waits for any of the above.
    waker: Option<Waker>,
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

    /// Changes the state and wakes the connection task (outside the lock).
    fn update(&self, f: impl FnOnce(&mut PipeState)) {
        let mut s = self.lock();
        f(&mut s);
        let waker = s.waker.take();
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
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
        let waker = s.waker.take();
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// Registration done: the connection runs as `id`.
    fn accept(&self, id: ConnectionId) {
        self.update(|s| s.id = Some(id));
    }

    /// The writer finishes what is queued, then closes the transport.
    fn close(&self) {
        self.update(|s| s.close = true);
    }

    /// The writer stops at once.
    fn kill(&self) {
        self.update(|s| s.kill = true);
    }

    /// Resolves with `ready`'s answer once it has one; until then the
    /// current task is woken by the next change.
    fn wait<'a, T>(
        &'a self,
        ready: impl Fn(&PipeState) -> Option<T> + 'a,
    ) -> impl Future<Output = T> + 'a {
        std::future::poll_fn(move |cx| {
            let mut s = self.lock();
            match ready(&s) {
                Some(t) => Poll::Ready(t),
                None => {
                    match &mut s.waker {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        slot => *slot = Some(cx.waker().clone()),
                    }
                    Poll::Pending
                }
            }
        })
    }

    /// The id the broker task gave (`None`: refused or shut down).
    async fn accepted(&self) -> Option<ConnectionId> {
        self.wait(|s| match s.id {
            Some(id) => Some(Some(id)),
            None if s.close || s.kill => Some(None),
            None => None,
        })
        .await
    }

    /// Resolves when there is something to take.
    async fn ready(&self) {
        self.wait(|s| (s.kill || s.close || !s.chunks.is_empty()).then_some(()))
            .await;
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
        self.wait(|s| s.kill.then_some(())).await;
    }
}

/// A connection's pipe while it waits for its id. However the message
/// ends (handled, refused, or dropped unread when the broker task stops),
/// the connection gets an answer: an id, or closed.
#[derive(Debug)]
pub(crate) struct Registration(Arc<Pipe>);

impl Drop for Registration {
    fn drop(&mut self) {
        self.0.update(|s| {
            if s.id.is_none() {
                s.close = true;
            }
        });
    }
}

/// The broker task's view of one connection.
struct Link {
    pipe: Arc<Pipe>,
    peer: SocketAddr,
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
    direct: Direct,
    mut inbox: mpsc::Receiver<ToBroker>,
    me: mpsc::WeakSender<ToBroker>,
    max_write_buffer: usize,
) -> io::Result<()> {
    let mut task = BrokerTask {
        broker,
        direct,
        links: HashMap::new(),
        max_write_buffer,
        gone: Vec::new(),
        me,
    };
    let mut running = true;
    while running {
        let deadline = match (task.broker.poll_timeout(), task.direct.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                None => std::future::pending().await,
            }
        };
        let hot = task.direct.is_hot();
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
            // A socket or listener is ready (the turn below handles it).
            r = task.direct.ready(), if !hot => r?,
            // Some socket had more to read than one turn takes.
            () = std::future::ready(()), if hot => {}
            () = sleep => {
                let now = Instant::now();
                if task.broker.poll_timeout().is_some_and(|t| t <= now) {
                    task.broker.handle_timeout(now);
                }
                task.direct.expire(now, &mut task.broker);
            }
        }
        if running {
            task.direct
                .turn(&mut task.broker, &mut task.gone)
                .inspect_err(|e| log(&format!("error: polling the sockets failed: {e}")))?;
        }
        task.drain()?;
    }
    // Dropping the links lets every writer task flush what it has (the
    // DISCONNECTs of the shutdown) and close; the direct connections get
    // the same here.
    let BrokerTask { direct, links, .. } = task;
    drop(links);
    direct.linger(Duration::from_secs(3)).await;
    Ok(())
}

/// What the broker task owns.
struct BrokerTask {
    broker: Core,
    /// Plain TCP connections, read and written by this task.
    direct: Direct,
    /// Connections with a task of their own (TLS, WebSocket).
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
            // Its connection task already gone: nothing to register.
            ToBroker::Accept(_, reg) if Arc::strong_count(&reg.0) == 1 => {}
            ToBroker::Accept(peer, reg) => match self.broker.accept(now) {
                Ok(id) => {
                    reg.0.accept(id);
                    let pipe = reg.0.clone();
                    self.links.insert(id, Link { pipe, peer });
                }
                // Dropping `reg` answers: closed.
                Err(e) => log(&format!("refuse {peer}: {e}")),
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
                for id in self.links.keys().copied().chain(self.direct.ids()) {
                    let _ = self.broker.disconnect(
                        id,
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
                if self.direct.contains(id) {
                    match self.direct.send(id, bytes) {
                        Sent::Done => {}
                        Sent::Slow => slow.push(id),
                        Sent::Failed => {
                            let now = Instant::now();
                            self.direct
                                .failed(id, now, &mut self.broker, &mut self.gone);
                        }
                    }
                } else if let Some(link) = self.links.get(&id) {
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
                if let Some(peer) = self.direct.peer(id).filter(|_| self.direct.contains(id)) {
                    busy = true;
                    log(&format!("close {id} ({peer}): reads too slowly"));
                    self.direct.kill(id);
                    self.broker.handle_closed(id, Instant::now());
                } else if let Some(link) = self.links.get(&id) {
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
        self.direct.forget_ended();
        Ok(())
    }

    fn peer(&self, id: ConnectionId) -> String {
        self.direct
            .peer(id)
            .or_else(|| self.links.get(&id).map(|l| l.peer))
            .map_or_else(|| "?".to_owned(), |p| p.to_string())
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
                // The transport closes after what is queued (dropping a
                // link does that for its task).
                if !self.direct.close(id, Instant::now()) {
                    self.links.remove(&id);
                }
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

/// What a connection keeps of [`Shared`]: the broker's inbox and its
/// `alive` token (an `async fn` keeps its arguments to the end).
type ShareLink = (mpsc::Sender<ToBroker>, mpsc::Sender<()>);

impl Shared {
    fn link(self) -> ShareLink {
        (self.to_broker, self.alive)
    }
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
        let peer = addr;
        // One task type per transport: a task is as large as its future,
        // and a plain TCP connection must not carry room for a TLS or
        // WebSocket handshake (~2.5 KB each, idle connections included).
        match &kind {
            Kind::Plain => {
                // Spawned as is: a wrapping `async` block would keep its
                // captures (the socket, the peer, `shared`) for the whole
                // connection.
                let (r, w) = tcp.into_split();
                tokio::spawn(connection(
                    StreamIn::new(r),
                    StreamOut(w),
                    peer,
                    shared.link(),
                ));
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
    peer: SocketAddr,
    shared: Shared,
) {
    let limit = shared.handshake_timeout;
    match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => {
            let (r, w) = tokio::io::split(tls);
            connection(StreamIn::new(r), StreamOut(w), peer, shared.link()).await;
        }
        Ok(Err(e)) => log(&format!("TLS handshake with {peer} failed: {e}")),
        Err(_) => log(&format!("TLS handshake with {peer} timed out")),
    }
}

/// A WebSocket connection: the HTTP upgrade under its deadline, then
/// [`connection`].
async fn ws_connection(tcp: tokio::net::TcpStream, peer: SocketAddr, shared: Shared) {
    let limit = shared.handshake_timeout;
    match tokio::time::timeout(limit, crate::ws::accept(tcp)).await {
        Ok(Ok((r, w))) => connection(r, w, peer, shared.link()).await,
        Ok(Err(e)) => log(&format!("WebSocket handshake with {peer} failed: {e}")),
        Err(_) => log(&format!("WebSocket handshake with {peer} timed out")),
    }
}

/// One connection: registers with the broker task, then reads and writes
/// (two branches of one task) until either ends: a read error or the end
/// of the stream, a write error, the broker closing (after what is
/// queued) or killing (at once, even during a stuck write or a wait for
/// room in the broker's inbox) the connection.
async fn connection<R: Inbound, W: Outbound>(
    mut r: R,
    w: W,
    peer: SocketAddr,
    (to_broker, _alive): ShareLink,
) {
    let pipe = Arc::new(Pipe::default());
    if !send(
        &to_broker,
        ToBroker::Accept(peer, Registration(pipe.clone())),
    )
    .await
    {
        return;
    }
    let Some(id) = pipe.accepted().await else {
        return; // refused (too many connections) or shutting down
    };
    let reader = async {
        // A read error is an ending like any other: the broker logs it.
        while let Ok(Some(bytes)) = r.read_chunk().await {
            // While the inbox is full this waits (back-pressure); the
            // write branch goes on, and a kill ends both.
            if !send(&to_broker, ToBroker::Read(id, bytes)).await {
                return;
            }
        }
    };
    tokio::select! {
        () = write_loop(w, &pipe) => {}
        () = reader => {}
    }
    // The broker ignores this if it closed the connection itself.
    send(&to_broker, ToBroker::Closed(id)).await;
}

/// Sends `msg` to the broker task, waiting while its inbox is full (the
/// back-pressure on readers); false when the broker task is gone.
///
/// Not an `async fn`: that would keep `msg` twice. Most sends find room
/// at once; the wait for room (~250 bytes of state) is boxed, allocated
/// only while a connection waits instead of held by every connection.
fn send(to_broker: &mpsc::Sender<ToBroker>, msg: ToBroker) -> impl Future<Output = bool> + '_ {
    let full = match to_broker.try_send(msg) {
        Ok(()) => Ok(true),
        Err(mpsc::error::TrySendError::Closed(_)) => Ok(false),
        Err(mpsc::error::TrySendError::Full(msg)) => Err(msg),
    };
    async move {
        match full {
            Ok(sent) => sent,
            Err(msg) => Box::pin(to_broker.send(msg)).await.is_ok(),
        }
    }
}

/// Writes what the broker task queues until it closes or kills the pipe,
/// or a write fails. One flush per burst: everything already queued is
/// written first.
async fn write_loop<W: Outbound>(mut w: W, pipe: &Pipe) {
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
                    pipe.ready().await;
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
    fn read_chunk(&mut self) -> impl Future<Output = io::Result<Option<Bytes>>> + Send {
        std::future::poll_fn(move |cx| {
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
    }
}

/// A byte stream's write half (TCP, TLS).
pub(crate) struct StreamOut<W>(W);

impl<W: AsyncWrite + Unpin + Send + 'static> Outbound for StreamOut<W> {
    fn write(&mut self, mut bytes: Bytes) -> impl Future<Output = io::Result<()>> + Send {
        // `write_all` by hand, and no `async` around it: the future is
        // just the bytes and `self`, held in every connection's task.
        std::future::poll_fn(move |cx| {
            while !bytes.is_empty() {
                let n = ready!(std::pin::Pin::new(&mut self.0).poll_write(cx, &bytes))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                bytes.advance(n);
            }
            Poll::Ready(Ok(()))
        })
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// A connected pair of TCP sockets on 127.0.0.1.
    async fn tcp_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = l.accept().await.unwrap();
        (server, client)
    }

    /// What every idle connection holds is its task, as large as the
    /// future spawned: `cargo test -p mqtt-broker --example broker sizes --
    /// --nocapture` prints it. Measured with rustc 1.95, release build:
    /// 632 bytes for the reader task plus 328 for the writer task
    /// when they were two tasks, 496 for the one task now.
    #[tokio::test]
    async fn sizes() {
        let (server, _client) = tcp_pair().await;
        let addr = server.local_addr().unwrap();
        let (to_broker, _inbox) = mpsc::channel(1);
        let (alive, _all_closed) = mpsc::channel(1);
        let (r, w) = server.into_split();
        let link = (to_broker.clone(), alive);
        let task = connection(StreamIn::new(r), StreamOut(w), addr, link);
        let size = std::mem::size_of_val(&task);
        eprintln!("plain TCP connection task: {size} bytes");
        let sending = send(&to_broker, ToBroker::Shutdown);
        eprintln!("send: {} bytes", std::mem::size_of_val(&sending));
        eprintln!("pipe: {} bytes", std::mem::size_of::<Pipe>());
    }

    /// Registration answers through the pipe, however the message ends.
    #[test]
    fn a_dropped_registration_closes_the_pipe() {
        let pipe = Arc::new(Pipe::default());
        drop(Registration(pipe.clone()));
        assert!(matches!(pipe.take(), Take::Close));
        let pipe = Arc::new(Pipe::default());
        let reg = Registration(pipe.clone());
        let (tx, mut rx) = mpsc::channel(1);
        tx.try_send(ToBroker::Accept("127.0.0.1:1".parse().unwrap(), reg))
            .unwrap();
        // The broker task gone with the message unread.
        rx.close();
        drop(rx);
        assert!(matches!(pipe.take(), Take::Close));
    }

    /// Writes go on while the read side waits for room in a full inbox,
    /// and a kill ends the connection even then.
    #[tokio::test]
    async fn writes_proceed_and_kill_works_while_the_inbox_is_full() {
        use tokio::io::AsyncReadExt;

        let (server, mut client) = tcp_pair().await;
        let addr = server.local_addr().unwrap();
        let (to_broker, mut inbox) = mpsc::channel(1);
        let (alive, mut all_closed) = mpsc::channel::<()>(1);
        let (r, w) = server.into_split();
        tokio::spawn(connection(
            StreamIn::new(r),
            StreamOut(w),
            addr,
            (to_broker.clone(), alive),
        ));
        let Some(ToBroker::Accept(_, reg)) = inbox.recv().await else {
            panic!("no Accept");
        };
        let pipe = reg.0.clone();
        let mut core = Broker::new(mqtt_broker::BrokerConfig::default());
        let id = core.accept(Instant::now()).unwrap();
        pipe.accept(id);
        drop(reg);
        // Fill the inbox, then make the connection read: its send waits.
        to_broker.try_send(ToBroker::Shutdown).unwrap();
        client.write_all(b"abc").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Writes still go through.
        assert!(pipe.push(Bytes::from_static(b"xyz"), 1 << 20));
        let mut got = [0; 3];
        tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut got))
            .await
            .expect("write stalled by a full inbox")
            .unwrap();
        assert_eq!(&got, b"xyz");
        // A kill ends the connection though its read side still waits.
        pipe.kill();
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
            .await
            .expect("kill did not end the connection")
            .unwrap();
        assert_eq!(n, 0);
        // The pending read was dropped with the kill; its last message
        // waits for room: make some, then it ends.
        assert!(matches!(inbox.recv().await, Some(ToBroker::Shutdown)));
        assert!(matches!(inbox.recv().await, Some(ToBroker::Closed(i)) if i == id));
        assert!(all_closed.recv().await.is_none());
    }

    /// Close writes what is queued, then closes the transport.
    #[tokio::test]
    async fn close_writes_what_is_queued_then_closes() {
        use tokio::io::AsyncReadExt;

        let (server, mut client) = tcp_pair().await;
        let addr = server.local_addr().unwrap();
        let (to_broker, mut inbox) = mpsc::channel(8);
        let (alive, _all_closed) = mpsc::channel::<()>(1);
        let (r, w) = server.into_split();
        tokio::spawn(connection(
            StreamIn::new(r),
            StreamOut(w),
            addr,
            (to_broker, alive),
        ));
        let Some(ToBroker::Accept(_, reg)) = inbox.recv().await else {
            panic!("no Accept");
        };
        let mut core = Broker::new(mqtt_broker::BrokerConfig::default());
        let id = core.accept(Instant::now()).unwrap();
        reg.0.accept(id);
        let pipe = reg.0.clone();
        drop(reg);
        assert!(pipe.push(Bytes::from_static(b"one"), 1 << 20));
        assert!(pipe.push(Bytes::from_static(b"two"), 1 << 20));
        pipe.close();
        let mut all = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut all))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&all, b"onetwo");
        assert!(matches!(inbox.recv().await, Some(ToBroker::Closed(i)) if i == id));
    }
}
