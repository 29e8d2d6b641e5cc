//! Plain TCP connections without a task each: the broker task reads and
//! writes their sockets itself, when they are ready.
//!
//! ```text
//!   tokio's reactor ──── one registration: the epoll (kqueue) instance below
//!                                  │ readable = some socket in it is ready
//!   broker task ─ turn() ─► mio::Poll (epoll, kqueue) ─► listeners, sockets
//!       │  accept, read ──► Broker::accept / handle_read   (no copy, no hop)
//!       └─ drain ─────────► write at once; what the socket refuses waits in
//!                           the connection's queue until it is writable
//! ```
//!
//! Why: a task per connection costs its future and header (~600 B),
//! tokio's registration of its socket (~256 B) and a hand-off structure,
//! held by every idle connection; and every message crosses three tasks
//! (reader, broker, writer). Here an idle connection is one 56-byte entry
//! of a table indexed by [`ConnectionId::slot`] (its socket, its id, its
//! peer), and a message costs the system calls mosquitto's loop makes:
//! the wake-up, one read, one write per connection written to.
//!
//! The sockets are registered in a `mio::Poll` of their own, and only
//! that poll's descriptor is registered with tokio ([`AsyncFd`]): it is
//! readable while any of its sockets has an event. Registration is
//! edge-triggered, so the rules are mio's: a socket is read until a read
//! returns less than the buffer (a stream socket then had no more; the next
//! bytes raise a new edge), `WouldBlock` or the end; a socket that still
//! had data after [`READS_PER_TURN`] reads goes on the `hot` list and is
//! read again on the next turn, after the others had theirs.
//!
//! TLS and WebSocket connections keep their task (see `net`): their
//! handshakes and framing are async code in their libraries.

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Token};
use mqtt_broker::ConnectionId;
use tokio::io::unix::AsyncFd;

use crate::net::{log, Core};

/// Bytes asked of a socket per read (the buffer is shared by all sockets).
const READ_SIZE: usize = 64 * 1024;
/// Full reads of one socket per turn before the others get theirs.
const READS_PER_TURN: usize = 4;
/// Connections accepted from one listener per turn.
const ACCEPTS_PER_TURN: usize = 256;
/// Readiness events taken from the poll at a time.
const EVENTS: usize = 512;
/// Chunks handed to one vectored write.
const WRITE_SLICES: usize = 64;
/// Chunks waiting for one connection (the byte bound is
/// `--max-write-buffer`).
const WRITE_CHUNKS: usize = 1024;
/// How long a connection closed by the broker may take to accept what was
/// queued for it (its last DISCONNECT, say) before it is cut.
const LINGER: Duration = Duration::from_secs(5);
/// Pause before accepting again after `accept` failed (out of descriptors).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// Tokens: a connection's is its slot (below `LINGERING`), a lingering
/// connection's `LINGERING + i`, listener `i`'s `usize::MAX - i`.
const LINGERING: usize = usize::MAX / 4;

/// What [`Direct::send`] did with the bytes.
pub(crate) enum Sent {
    /// Written, queued, or dropped for a connection already gone.
    Done,
    /// More than `--max-write-buffer` bytes would wait: the client reads
    /// too slowly. Nothing was queued; close it with [`Direct::kill`].
    Slow,
    /// The socket failed: the broker must be told (`handle_closed`).
    Failed,
}

/// The plain TCP listeners and connections, driven by the broker task.
pub(crate) struct Direct {
    poll: AsyncFd<mio::Poll>,
    events: Events,
    listeners: Vec<TcpListener>,
    /// Open connections, at their [`ConnectionId::slot`].
    conns: Vec<Option<Conn>>,
    /// How many of `conns` are `Some`.
    open: usize,
    /// Closed by the broker (whose slot may serve a new connection
    /// already), still writing their queue.
    lingering: Vec<Option<Lingering>>,
    /// Connections ended since the last drain: their peers, for the
    /// broker's log lines about them, until [`Direct::forget_ended`].
    ended: HashMap<ConnectionId, SocketAddr>,
    /// Where every socket is read into.
    scratch: Box<[u8]>,
    /// Sockets and listeners with more to read or accept: next turn.
    hot: Vec<Token>,
    /// After a failed `accept`: when to try the listeners again.
    accept_again: Option<Instant>,
    /// `--max-write-buffer`.
    max_write_buffer: usize,
}

/// One connection: 56 bytes while idle.
struct Conn {
    stream: TcpStream,
    id: ConnectionId,
    /// What the socket did not take yet; allocated only then.
    out: Option<Box<Out>>,
    peer: SocketAddr,
}

struct Lingering {
    conn: Conn,
    /// Cut then, written or not.
    until: Instant,
}

#[derive(Default)]
struct Out {
    chunks: VecDeque<Bytes>,
    /// Bytes in `chunks`.
    queued: usize,
}

fn listener_token(i: usize) -> Token {
    Token(usize::MAX - i)
}

/// What a token stands for.
enum Target {
    Listener(usize),
    Conn(usize),
    Lingering(usize),
}

fn target(token: Token) -> Target {
    match token.0 {
        t if t < LINGERING => Target::Conn(t),
        t if t < usize::MAX / 2 => Target::Lingering(t - LINGERING),
        t => Target::Listener(usize::MAX - t),
    }
}

impl Conn {
    /// Writes what waits until the socket is full. `Ok(true)`: nothing
    /// waits any more (the queue's memory is freed).
    fn flush(&mut self) -> io::Result<bool> {
        let Some(out) = &mut self.out else {
            return Ok(true);
        };
        while !out.chunks.is_empty() {
            let mut slices = [IoSlice::new(&[]); WRITE_SLICES];
            let mut k = 0;
            for (slice, chunk) in slices.iter_mut().zip(&out.chunks) {
                *slice = IoSlice::new(chunk);
                k += 1;
            }
            let mut n = match self
                .stream
                .write_vectored(slices.get(..k).unwrap_or_default())
            {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            };
            out.queued -= n;
            while n > 0 {
                let Some(front) = out.chunks.front_mut() else {
                    break;
                };
                if n >= front.len() {
                    n -= front.len();
                    out.chunks.pop_front();
                } else {
                    front.advance(n);
                    n = 0;
                }
            }
        }
        // Drained: an idle connection keeps no queue memory.
        self.out = None;
        Ok(true)
    }
}

impl Direct {
    /// Takes over `listeners` (bound, any blocking mode).
    pub(crate) fn new(
        listeners: Vec<std::net::TcpListener>,
        max_write_buffer: usize,
    ) -> io::Result<Self> {
        let poll = mio::Poll::new()?;
        let mut mine = Vec::with_capacity(listeners.len());
        for (i, l) in listeners.into_iter().enumerate() {
            l.set_nonblocking(true)?;
            let mut l = TcpListener::from_std(l);
            poll.registry()
                .register(&mut l, listener_token(i), Interest::READABLE)?;
            mine.push(l);
        }
        // `AsyncFd::new` is deprecated for `AsyncFd::register`, which is
        // `unsafe` (its caller promises the descriptor stays open while
        // registered) and this workspace forbids `unsafe`. The promise holds
        // here by construction: the `AsyncFd` owns the `mio::Poll`, and the
        // `mio::Poll` owns its descriptor.
        #[allow(deprecated)]
        let poll = AsyncFd::new(poll)?;
        Ok(Direct {
            poll,
            events: Events::with_capacity(EVENTS),
            listeners: mine,
            conns: Vec::new(),
            open: 0,
            lingering: Vec::new(),
            ended: HashMap::new(),
            scratch: vec![0; READ_SIZE].into_boxed_slice(),
            hot: Vec::new(),
            accept_again: None,
            max_write_buffer,
        })
    }

    /// True when a turn has work without waiting for the poll.
    pub(crate) fn is_hot(&self) -> bool {
        !self.hot.is_empty()
    }

    /// Resolves when some socket or listener has an event (the poll's
    /// descriptor is readable). Does not consume the readiness: the next
    /// [`Direct::turn`] does.
    pub(crate) async fn ready(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll.poll_read_ready(cx).map_ok(drop)).await
    }

    /// The next instant [`Direct::expire`] has something to do.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.lingering
            .iter()
            .flatten()
            .map(|l| l.until)
            .chain(self.accept_again)
            .min()
    }

    /// Cuts the connections that lingered too long, retries the listeners.
    pub(crate) fn expire(&mut self, now: Instant, broker: &mut Core) {
        for l in &mut self.lingering {
            if l.as_ref().is_some_and(|l| l.until <= now) {
                *l = None;
            }
        }
        self.trim_lingering();
        if self.accept_again.is_some_and(|t| t <= now) {
            self.accept_again = None;
            for i in 0..self.listeners.len() {
                if self.accept(i, now, broker) {
                    self.hot.push(listener_token(i));
                }
            }
        }
    }

    /// Handles what is ready: accepts, reads (into the broker), writes what
    /// waited for room. Connections whose transport ended are pushed on
    /// `gone` (the broker was told). An error: the poll itself failed.
    pub(crate) fn turn(
        &mut self,
        broker: &mut Core,
        gone: &mut Vec<ConnectionId>,
    ) -> io::Result<()> {
        let now = Instant::now();
        // Last turn's unfinished work first, then the new events.
        for token in std::mem::take(&mut self.hot) {
            self.readable(token, now, broker, gone);
        }
        if !self.poll_events()? {
            return Ok(());
        }
        // Out of `self` while its events are handled (no allocation: an
        // empty `Events` holds none).
        let events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        for e in events.iter() {
            let token = e.token();
            if e.is_writable() || e.is_write_closed() {
                self.writable(token, now, broker, gone);
            }
            if e.is_readable() || e.is_read_closed() || e.is_error() {
                self.readable(token, now, broker, gone);
            }
        }
        self.events = events;
        Ok(())
    }

    /// Takes the poll's events into `self.events`, without waiting; false
    /// when there were none. An error: the poll failed (not to be retried).
    fn poll_events(&mut self) -> io::Result<bool> {
        let mut cx = Context::from_waker(Waker::noop());
        let guard = match self.poll.poll_read_ready_mut(&mut cx) {
            Poll::Ready(r) => r,
            Poll::Pending => return Ok(false),
        };
        let mut guard = guard?;
        match guard
            .get_inner_mut()
            .poll(&mut self.events, Some(Duration::ZERO))
        {
            Ok(()) => {}
            // Still readable: the next turn tries again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(false),
            Err(e) => return Err(e),
        }
        // Fewer events than room: the poll was drained as this guard's
        // readiness stood (a later event raises a new one). A full batch
        // leaves the readiness set, so the next turn comes at once.
        if self.events.iter().count() < EVENTS {
            guard.clear_ready();
        }
        Ok(true)
    }

    /// Room to write: what waited goes out.
    fn writable(
        &mut self,
        token: Token,
        now: Instant,
        broker: &mut Core,
        gone: &mut Vec<ConnectionId>,
    ) {
        match target(token) {
            Target::Conn(slot) => {
                if let Some(Some(c)) = self.conns.get_mut(slot) {
                    if c.flush().is_err() {
                        let id = c.id;
                        self.failed(id, now, broker, gone);
                    }
                }
            }
            Target::Lingering(i) => self.flush_lingering(i),
            Target::Listener(_) => {}
        }
    }

    /// A listener: accept; a connection: read into the broker.
    fn readable(
        &mut self,
        token: Token,
        now: Instant,
        broker: &mut Core,
        gone: &mut Vec<ConnectionId>,
    ) {
        let slot = match target(token) {
            Target::Conn(slot) => slot,
            Target::Listener(i) => {
                if self.accept(i, now, broker) {
                    self.hot.push(token);
                }
                return;
            }
            // Closed by the broker: what it sends now is not read.
            Target::Lingering(_) => return,
        };
        for _ in 0..READS_PER_TURN {
            let Some(Some(c)) = self.conns.get_mut(slot) else {
                return;
            };
            match c.stream.read(&mut self.scratch) {
                Ok(0) => {
                    let id = c.id;
                    self.failed(id, now, broker, gone);
                    return;
                }
                Ok(n) => {
                    broker.handle_read(c.id, now, self.scratch.get(..n).unwrap_or_default());
                    if n < self.scratch.len() {
                        return; // drained: the next bytes raise a new event
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    let id = c.id;
                    self.failed(id, now, broker, gone);
                    return;
                }
            }
        }
        self.hot.push(token);
    }

    /// Accepts from listener `i`; true when it may have more.
    fn accept(&mut self, i: usize, now: Instant, broker: &mut Core) -> bool {
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(l) = self.listeners.get(i) else {
                return false;
            };
            let (stream, peer) = match l.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors, most likely: wait, don't spin.
                    log(&format!("accept failed: {e}"));
                    self.accept_again = Some(now + ACCEPT_RETRY);
                    return false;
                }
            };
            let _ = stream.set_nodelay(true);
            match broker.accept(now) {
                Ok(id) => {
                    if let Err(e) = self.insert(stream, id, peer) {
                        log(&format!("refuse {peer}: {e}"));
                        broker.handle_closed(id, now);
                    }
                }
                // Dropping the stream closes it.
                Err(e) => log(&format!("refuse {peer}: {e}")),
            }
        }
        true
    }

    /// Registers a new connection at its slot.
    fn insert(
        &mut self,
        mut stream: TcpStream,
        id: ConnectionId,
        peer: SocketAddr,
    ) -> io::Result<()> {
        let slot = id.slot();
        if slot >= LINGERING {
            return Err(io::Error::other("too many connections"));
        }
        if self.conns.len() <= slot {
            self.conns.resize_with(slot + 1, || None);
        }
        let Some(entry) = self.conns.get_mut(slot) else {
            return Err(io::Error::other("too many connections"));
        };
        if entry.is_some() {
            // The core gave a slot out twice: a bug, refuse rather than
            // lose a connection.
            return Err(io::Error::other("connection slot in use"));
        }
        self.poll.get_ref().registry().register(
            &mut stream,
            Token(slot),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        *entry = Some(Conn {
            stream,
            id,
            out: None,
            peer,
        });
        self.open += 1;
        Ok(())
    }

    fn get(&self, id: ConnectionId) -> Option<&Conn> {
        self.conns.get(id.slot())?.as_ref().filter(|c| c.id == id)
    }

    fn get_mut(&mut self, id: ConnectionId) -> Option<&mut Conn> {
        self.conns
            .get_mut(id.slot())?
            .as_mut()
            .filter(|c| c.id == id)
    }

    /// Takes `id`'s connection out of the table.
    fn take(&mut self, id: ConnectionId) -> Option<Conn> {
        let entry = self.conns.get_mut(id.slot())?;
        if entry.as_ref().is_none_or(|c| c.id != id) {
            return None;
        }
        let conn = entry.take();
        self.open -= 1;
        if self.open == 0 {
            // Every connection gone: give the table's memory back.
            self.conns = Vec::new();
        }
        conn
    }

    /// Whether `id` is one of these connections.
    pub(crate) fn contains(&self, id: ConnectionId) -> bool {
        self.get(id).is_some()
    }

    /// The connections' ids (for the shutdown).
    pub(crate) fn ids(&self) -> impl Iterator<Item = ConnectionId> + '_ {
        self.conns.iter().flatten().map(|c| c.id)
    }

    /// The peer address of `id`, for the log.
    pub(crate) fn peer(&self, id: ConnectionId) -> Option<SocketAddr> {
        self.get(id)
            .map(|c| c.peer)
            .or_else(|| self.ended.get(&id).copied())
    }

    /// Writes `bytes` to `id` now, queueing what the socket does not take.
    pub(crate) fn send(&mut self, id: ConnectionId, mut bytes: Bytes) -> Sent {
        let max = self.max_write_buffer;
        let Some(c) = self.get_mut(id) else {
            return Sent::Done;
        };
        if let Some(out) = &mut c.out {
            // Behind what already waits. One chunk of any size gets
            // through an empty queue.
            if out.queued + bytes.len() > max || out.chunks.len() >= WRITE_CHUNKS {
                return Sent::Slow;
            }
            out.queued += bytes.len();
            out.chunks.push_back(bytes);
            return Sent::Done;
        }
        loop {
            match c.stream.write(&bytes) {
                Ok(0) => return Sent::Failed,
                Ok(n) if n == bytes.len() => return Sent::Done,
                Ok(n) => bytes.advance(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The socket is full: the rest waits for its writable
                    // event.
                    let mut out = Box::<Out>::default();
                    out.queued = bytes.len();
                    out.chunks.push_back(bytes);
                    c.out = Some(out);
                    return Sent::Done;
                }
                Err(_) => return Sent::Failed,
            }
        }
    }

    /// The broker closed `id` (its `Event::Close`: every byte for it was
    /// handed over): close the socket once what waits is written, within
    /// [`LINGER`]. False when `id` is not one of these.
    pub(crate) fn close(&mut self, id: ConnectionId, now: Instant) -> bool {
        let Some(mut conn) = self.take(id) else {
            return false;
        };
        match conn.flush() {
            Ok(true) => {
                let _ = conn.stream.shutdown(Shutdown::Write);
            }
            Ok(false) => self.linger_conn(conn, now + LINGER),
            // Dropping it closes it.
            Err(_) => {}
        }
        true
    }

    /// Keeps `conn` until its queue is written or `until`.
    fn linger_conn(&mut self, mut conn: Conn, until: Instant) {
        let i = match self.lingering.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.lingering.push(None);
                self.lingering.len() - 1
            }
        };
        let token = Token(LINGERING + i);
        let registry = self.poll.get_ref().registry();
        if registry
            .reregister(&mut conn.stream, token, Interest::WRITABLE)
            .is_ok()
        {
            if let Some(l) = self.lingering.get_mut(i) {
                *l = Some(Lingering { conn, until });
            }
        }
        self.trim_lingering();
    }

    /// Writes what waits for lingering connection `i`; once written (or
    /// failed), closes it.
    fn flush_lingering(&mut self, i: usize) {
        if let Some(entry) = self.lingering.get_mut(i) {
            if let Some(l) = entry {
                if !matches!(l.conn.flush(), Ok(false)) {
                    let _ = l.conn.stream.shutdown(Shutdown::Write);
                    *entry = None;
                }
            }
        }
        self.trim_lingering();
    }

    /// Drops the free entries at the end of `lingering`.
    fn trim_lingering(&mut self) {
        while matches!(self.lingering.last(), Some(None)) {
            self.lingering.pop();
        }
        if self.lingering.is_empty() {
            self.lingering = Vec::new();
        }
    }

    /// A slow client: closed at once, what waits dropped. Its peer stays
    /// known for the log until [`Direct::forget_ended`].
    pub(crate) fn kill(&mut self, id: ConnectionId) {
        if let Some(c) = self.take(id) {
            self.ended.insert(id, c.peer);
        }
    }

    /// The transport of `id` ended or failed (also when a write failed
    /// while the broker's output was handed over, a [`Sent::Failed`]):
    /// drop it, tell the broker.
    pub(crate) fn failed(
        &mut self,
        id: ConnectionId,
        now: Instant,
        broker: &mut Core,
        gone: &mut Vec<ConnectionId>,
    ) {
        if let Some(c) = self.take(id) {
            self.ended.insert(id, c.peer);
            broker.handle_closed(id, now);
            gone.push(id);
        }
    }

    /// The broker's log lines about the ended connections are written:
    /// their peers are no longer needed.
    pub(crate) fn forget_ended(&mut self) {
        if !self.ended.is_empty() {
            self.ended = HashMap::new();
        }
    }

    /// At shutdown: gives the connections up to `limit` to take what was
    /// queued for them (the DISCONNECTs), then closes them all.
    pub(crate) async fn linger(mut self, limit: Duration) {
        let now = Instant::now();
        let ids: Vec<ConnectionId> = self.ids().collect();
        for id in ids {
            self.close(id, now);
        }
        let end = tokio::time::Instant::now() + limit;
        while !self.lingering.is_empty() {
            if !matches!(tokio::time::timeout_at(end, self.ready()).await, Ok(Ok(()))) {
                break;
            }
            match self.poll_events() {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => break,
            }
            let events = std::mem::replace(&mut self.events, Events::with_capacity(0));
            for e in events.iter() {
                if let Target::Lingering(i) = target(e.token()) {
                    self.flush_lingering(i);
                }
            }
            self.events = events;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]

    use std::net::SocketAddr;
    use std::time::Duration;

    use mqtt_broker::{Broker, BrokerConfig};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::mpsc;

    use super::Direct;
    use crate::net::{run_broker, ToBroker};
    use crate::persist::Storage;
    use crate::policy::Policy;

    /// 3.1.1 CONNECT, clean session, client id "a".
    const CONNECT_A: &[u8] = b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x00\x00\x01a";
    const CONNACK: &[u8] = b"\x20\x02\x00\x00";
    /// SUBSCRIBE packet id 1 to `t/x` at QoS 0, and its SUBACK.
    const SUBSCRIBE: &[u8] = b"\x82\x08\x00\x01\x00\x03t/x\x00";
    const SUBACK: &[u8] = b"\x90\x03\x00\x01\x00";
    /// PUBLISH QoS 0 to `t/x`, payload "hi".
    const PUBLISH: &[u8] = b"\x30\x07\x00\x03t/xhi";
    const PINGREQ: &[u8] = b"\xc0\x00";
    const PINGRESP: &[u8] = b"\xd0\x00";

    /// A broker task with one direct listener on 127.0.0.1.
    fn start(max_write_buffer: usize) -> (SocketAddr, mpsc::Sender<ToBroker>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let direct = Direct::new(vec![listener], max_write_buffer).unwrap();
        let policy = Policy {
            allow_anonymous: true,
            passwords: None,
            acl: None,
        };
        let core = Broker::with_store(BrokerConfig::default(), policy, Storage::none());
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(run_broker(
            core,
            direct,
            rx,
            tx.downgrade(),
            max_write_buffer,
        ));
        (addr, tx)
    }

    async fn expect(s: &mut TcpStream, want: &[u8]) {
        let mut got = vec![0; want.len()];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
            .await
            .expect("no answer in time")
            .unwrap();
        assert_eq!(got, want);
    }

    /// Connects with `connect`; checks the CONNACK (3.1.1: exactly
    /// `CONNACK`; 5.0: success, whatever properties follow).
    async fn client(addr: SocketAddr, connect: &[u8]) -> TcpStream {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(connect).await.unwrap();
        if connect.get(8) == Some(&5) {
            let mut head = [0; 2];
            s.read_exact(&mut head).await.unwrap();
            let mut body = vec![0; usize::from(head[1])];
            s.read_exact(&mut body).await.unwrap();
            assert_eq!((head[0], body.get(1)), (0x20, Some(&0)));
        } else {
            expect(&mut s, CONNACK).await;
        }
        s
    }

    /// Connect, subscribe, publish, ping: the bytes go through the broker
    /// task's own reads and writes, and a message crosses connections.
    #[tokio::test]
    async fn a_message_crosses_direct_connections() {
        let (addr, _tx) = start(1 << 20);
        let mut sub = client(addr, CONNECT_A).await;
        sub.write_all(SUBSCRIBE).await.unwrap();
        expect(&mut sub, SUBACK).await;
        let mut publ = client(addr, CONNECT_B).await;
        // Two packets in one write, split mid-packet: the core reassembles.
        let mut two = PUBLISH.to_vec();
        two.extend_from_slice(PINGREQ);
        publ.write_all(&two[..4]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        publ.write_all(&two[4..]).await.unwrap();
        expect(&mut publ, PINGRESP).await;
        expect(&mut sub, PUBLISH).await;
    }

    /// A transport that ends without DISCONNECT reaches the broker (its
    /// will is published).
    #[tokio::test]
    async fn an_abrupt_close_publishes_the_will() {
        let (addr, _tx) = start(1 << 20);
        let mut watcher = client(addr, CONNECT_A).await;
        watcher
            .write_all(b"\x82\x06\x00\x01\x00\x01w\x00")
            .await
            .unwrap();
        expect(&mut watcher, b"\x90\x03\x00\x01\x00").await;
        // Client "b" with a will on `w`, payload "bye".
        let will = b"\x10\x15\x00\x04MQTT\x04\x06\x00\x00\x00\x01b\x00\x01w\x00\x03bye";
        let gone = client(addr, will).await;
        drop(gone);
        expect(&mut watcher, b"\x30\x06\x00\x01wbye").await;
    }

    /// CONNECT of client "b".
    const CONNECT_B: &[u8] = b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x00\x00\x01b";

    /// A QoS 0 PUBLISH to `t/x` with a 32 KiB payload.
    fn big_publish() -> Vec<u8> {
        let payload = 32 * 1024;
        let mut msg = vec![0x30, 0x85, 0x80, 0x02, 0x00, 0x03, b't', b'/', b'x'];
        assert_eq!(msg.len() - 4 + payload, 0x8005); // Remaining Length
        msg.resize(msg.len() + payload, b'.');
        msg
    }

    /// A subscriber that does not read is closed once more than
    /// `max_write_buffer` bytes wait for it; the others go on.
    #[tokio::test]
    async fn a_reader_too_slow_is_closed_and_the_others_go_on() {
        let max = 64 * 1024;
        let (addr, _tx) = start(max);
        let mut slow = client(addr, CONNECT_A).await;
        slow.write_all(SUBSCRIBE).await.unwrap();
        expect(&mut slow, SUBACK).await;
        let mut publ = client(addr, CONNECT_B).await;
        // 32 KiB messages to `t/x` until well beyond what the sockets and
        // the write bound can hold: 64 MiB.
        let msg = big_publish();
        for _ in 0..2048 {
            publ.write_all(&msg).await.unwrap();
        }
        publ.write_all(PINGREQ).await.unwrap();
        expect(&mut publ, PINGRESP).await;
        // The slow one was cut: reading what reached its socket ends (end
        // of stream or reset) long before 64 MiB.
        let mut total = 0usize;
        let mut buf = vec![0; 1 << 16];
        loop {
            match tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf))
                .await
                .expect("the slow reader was not closed")
            {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
        assert!(
            total < 2048 * msg.len() / 2,
            "{total} bytes reached the slow reader"
        );
    }

    /// A connection closed while its socket is full keeps writing what
    /// was queued for it, then closes: nothing is lost.
    #[tokio::test]
    async fn a_closed_connection_gets_its_queue_first() {
        let (addr, tx) = start(256 << 20);
        let mut sub = client(addr, CONNECT_A).await;
        sub.write_all(SUBSCRIBE).await.unwrap();
        expect(&mut sub, SUBACK).await;
        let mut publ = client(addr, CONNECT_B).await;
        let msg = big_publish();
        // 32 MiB: more than the sockets hold, so most of it waits in the
        // subscriber's queue when the broker shuts down.
        let n = 1024;
        for _ in 0..n {
            publ.write_all(&msg).await.unwrap();
        }
        publ.write_all(PINGREQ).await.unwrap();
        expect(&mut publ, PINGRESP).await;
        tx.send(ToBroker::Shutdown).await.unwrap();
        let mut all = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), sub.read_to_end(&mut all))
            .await
            .expect("not closed")
            .unwrap();
        assert_eq!(all.len(), n * msg.len());
        assert!(all.chunks(msg.len()).all(|m| m == msg.as_slice()));
    }

    /// Shutdown: a 5.0 client gets DISCONNECT Server shutting down (0x8B),
    /// then the end of the stream.
    #[tokio::test]
    async fn shutdown_disconnects_direct_clients() {
        let (addr, tx) = start(1 << 20);
        let mut c = client(addr, b"\x10\x0e\x00\x04MQTT\x05\x02\x00\x00\x00\x00\x01a").await;
        tx.send(ToBroker::Shutdown).await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut rest))
            .await
            .expect("not closed")
            .unwrap();
        assert_eq!(rest.first(), Some(&0xe0), "{rest:?}");
        assert_eq!(rest.get(2), Some(&0x8b), "{rest:?}");
    }
}
