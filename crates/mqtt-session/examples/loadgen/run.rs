//! The scenarios' run loops: publishers, subscribers, idle connections,
//! and the coordinator that starts and ends them.
//!
//! Everything runs on one thread (a tokio `LocalSet`), so the connections
//! share the [`Board`] through `Rc<RefCell<_>>` with no lock, and the
//! generator's CPU is one core at most: a reading of about 100 % busy
//! (`loadgen_busy` in the output) means the generator, not the broker, set
//! the pace.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mqtt_session::client::Event;
use mqtt_session::Error as SessionError;
use mqtt_wire::{
    Connect, Delivery, MqttString, PacketId, ProtocolVersion, Publish, QoS, Subscription,
    SubscriptionOptions, TopicFilter, TopicName,
};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::conn::{describe, Conn};
use crate::track::{cpu_seconds, payload, Board};

/// Messages published per turn of a publisher at most, before it writes
/// and looks at its socket again.
const BATCH: u64 = 512;
/// A QoS 0 publisher whose window has not moved for this long counts the
/// missing messages as lost and goes on (the broker dropped them).
const STALL: Duration = Duration::from_secs(1);

/// What a traffic scenario does.
#[derive(Debug, Clone)]
pub(crate) struct Traffic {
    pub(crate) scenario: String,
    pub(crate) addr: SocketAddr,
    pub(crate) version: ProtocolVersion,
    pub(crate) publishers: usize,
    pub(crate) subscribers: usize,
    pub(crate) qos: QoS,
    pub(crate) payload: usize,
    /// QoS 1/2 messages in flight per publisher at most.
    pub(crate) inflight: usize,
    /// QoS 1/2, MQTT 5: the Receive Maximum each subscriber announces
    /// (messages the broker may have in flight towards it; None: not
    /// announced, 65,535).
    pub(crate) sub_inflight: Option<u16>,
    /// QoS 0: messages per publisher not yet delivered to every subscriber
    /// at most (0: no limit).
    pub(crate) window: u64,
    /// Messages per second over all publishers (None: as fast as allowed).
    pub(crate) rate: Option<f64>,
    pub(crate) duration: Duration,
    /// Messages per publisher at most.
    pub(crate) count: Option<u64>,
    /// Time allowed for the last messages to arrive after publishing ends.
    pub(crate) drain: Duration,
}

/// A name unique to this run (topics and client ids).
fn run_id() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}-{}", std::process::id(), t.subsec_nanos())
}

fn connect_packet(
    version: ProtocolVersion,
    id: String,
    keep_alive: u16,
) -> Result<Connect, String> {
    let id = MqttString::try_from(id).map_err(|e| format!("client id: {e}"))?;
    let mut c = Connect::new(version, id);
    c.keep_alive = keep_alive;
    c.clean_start = true;
    Ok(c)
}

/// How a publisher or subscriber task ended.
#[derive(Default)]
struct Outcome {
    /// The broker closed the connection (or the write failed) early.
    disconnected: bool,
    /// Why, when it did.
    error: Option<String>,
    /// QoS 1/2 messages the broker refused (PUBACK / PUBREC >= 0x80).
    refused: u64,
    /// QoS 0: times the window was reset after a stall.
    stalls: u64,
    /// Latency scenario: how far behind its schedule the publisher got.
    behind: Duration,
    /// QoS 1/2 messages never acknowledged (given up on after `drain`).
    unacknowledged: u64,
}

/// Runs a publish/subscribe scenario and returns its result line.
pub(crate) async fn traffic(t: Traffic) -> Result<Value, String> {
    let cpu0 = cpu_seconds();
    let run = run_id();
    let epoch = Instant::now();
    let board = Rc::new(RefCell::new(Board::new(t.publishers, t.subscribers, epoch)));
    let filter = TopicFilter::try_from(format!("bench/{run}/+"))
        .map_err(|e| format!("topic filter: {e}"))?;

    // Subscribers first, all subscribed before anyone publishes.
    let mut subs = Vec::new();
    for s in 0..t.subscribers {
        let addr = t.addr;
        let mut connect = connect_packet(t.version, format!("lg-{run}-s{s}"), 0)?;
        if t.version.is_v5() && t.qos != QoS::AtMostOnce {
            // The broker's in-flight window towards each subscriber.
            connect.properties.receive_maximum = t.sub_inflight.and_then(NonZeroU16::new);
        }
        let filter = filter.clone();
        let qos = t.qos;
        subs.push(tokio::task::spawn_local(async move {
            let mut conn = Conn::open(addr, connect).await?;
            conn.subscribe(vec![Subscription {
                filter,
                options: SubscriptionOptions::new(qos),
            }])
            .await?;
            Ok::<_, String>(conn)
        }));
    }
    let subs = join_all(subs).await?;
    let mut pubs = Vec::new();
    for p in 0..t.publishers {
        let connect = connect_packet(t.version, format!("lg-{run}-p{p}"), 0)?;
        pubs.push(tokio::task::spawn_local(Conn::open(t.addr, connect)));
    }
    let pubs = join_all(pubs).await?;
    let connections = Instant::now().duration_since(epoch);

    let cpu1 = cpu_seconds();
    let start = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let sub_tasks: Vec<_> = subs
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            tokio::task::spawn_local(subscribe_loop(conn, i, board.clone(), stop_rx.clone()))
        })
        .collect();
    let pub_tasks: Vec<_> = pubs
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let topic = TopicName::try_from(format!("bench/{run}/{i}"))
                .map_err(|e| format!("topic: {e}"))?;
            Ok(tokio::task::spawn_local(publish_loop(
                conn,
                i,
                topic,
                t.clone(),
                start,
                board.clone(),
            )))
        })
        .collect::<Result<_, String>>()?;

    let mut outcomes = Vec::new();
    for h in pub_tasks {
        outcomes.push(h.await.map_err(|e| format!("publisher task: {e}"))?);
    }
    let published = Instant::now();

    // Wait for the stragglers: until everything arrived, or nothing new
    // came for `drain`.
    let expected = {
        let b = board.borrow();
        b.sent.iter().sum::<u64>() * t.subscribers as u64
    };
    let mut last_count = board.borrow().received;
    let mut last_change = Instant::now();
    loop {
        let received = board.borrow().received;
        if received >= expected {
            break;
        }
        if received != last_count {
            last_count = received;
            last_change = Instant::now();
        } else if last_change.elapsed() >= t.drain {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop_tx.send(true);
    for h in sub_tasks {
        outcomes.push(h.await.map_err(|e| format!("subscriber task: {e}"))?);
    }
    let cpu2 = cpu_seconds();

    let b = board.borrow();
    let sent: u64 = b.sent.iter().sum();
    let end = b.last_rx.unwrap_or(published).max(start);
    let elapsed = end.duration_since(start).as_secs_f64();
    let rate = if elapsed > 0.0 {
        b.received as f64 / elapsed
    } else {
        0.0
    };
    let us = |q: f64| b.latency.quantile(q).map(|d| d.as_secs_f64() * 1e6);
    let cpu_traffic = match (cpu1, cpu2) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let wall_traffic = Instant::now().duration_since(start).as_secs_f64();
    let errors: Vec<String> = outcomes.iter().filter_map(|o| o.error.clone()).collect();
    Ok(json!({
        "scenario": t.scenario,
        "protocol": if t.version.is_v5() { "5" } else { "3.1.1" },
        "qos": t.qos as u8,
        "payload_bytes": t.payload,
        "publishers": t.publishers,
        "subscribers": t.subscribers,
        "inflight": if t.qos == QoS::AtMostOnce { Value::Null } else { json!(t.inflight) },
        "sub_inflight": if t.qos == QoS::AtMostOnce || !t.version.is_v5() { Value::Null } else { json!(t.sub_inflight.unwrap_or(u16::MAX)) },
        "window": if t.qos == QoS::AtMostOnce && t.window > 0 { json!(t.window) } else { Value::Null },
        "rate": t.rate,
        "sent": sent,
        "expected": expected,
        "received": b.received,
        "lost": expected.saturating_sub(b.received),
        "duplicates": b.duplicates,
        "out_of_order": b.out_of_order,
        "foreign": b.foreign,
        "refused": outcomes.iter().map(|o| o.refused).sum::<u64>(),
        "unacknowledged": outcomes.iter().map(|o| o.unacknowledged).sum::<u64>(),
        "window_stalls": outcomes.iter().map(|o| o.stalls).sum::<u64>(),
        "disconnects": outcomes.iter().filter(|o| o.disconnected).count(),
        "errors": errors,
        "connect_s": round(connections.as_secs_f64(), 4),
        "elapsed_s": round(elapsed, 4),
        "msgs_per_s": round(rate, 1),
        "p50_us": us(0.5).map(|v| round(v, 1)),
        "p99_us": us(0.99).map(|v| round(v, 1)),
        "max_behind_ms": outcomes.iter().map(|o| o.behind).max().map(|d| round(d.as_secs_f64() * 1e3, 2)),
        "loadgen_cpu_s": match (cpu0, cpu2) { (Some(a), Some(b)) => Some(round(b - a, 2)), _ => None },
        "loadgen_busy": cpu_traffic.filter(|_| wall_traffic > 0.0).map(|c| round(c / wall_traffic, 3)),
    }))
}

/// Awaits every task; the first error wins.
async fn join_all<T>(tasks: Vec<JoinHandle<Result<T, String>>>) -> Result<Vec<T>, String> {
    let mut out = Vec::with_capacity(tasks.len());
    let mut first_error = None;
    for h in tasks {
        match h.await {
            Ok(Ok(v)) => out.push(v),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(format!("task failed: {e}"));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// Sleeps until `t`, or forever.
async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

/// One publisher: publishes as fast as its window (QoS 0), its in-flight
/// limit (QoS 1/2) or its rate allows, for the scenario's duration, then
/// waits for its last acknowledgements and disconnects.
async fn publish_loop(
    mut conn: Conn,
    me: usize,
    topic: TopicName,
    t: Traffic,
    start: Instant,
    board: Rc<RefCell<Board>>,
) -> Outcome {
    let mut out = Outcome::default();
    let end = start + t.duration;
    // QoS 1/2 acknowledgements still missing then are given up on.
    let give_up = end + t.drain;
    let limit = t.count.unwrap_or(u64::MAX);
    let progress = board.borrow().progress.get(me).cloned();
    let progress = progress.unwrap_or_else(|| Rc::new(Notify::new()));
    // A placeholder id: the client assigns its own.
    let delivery = match PacketId::new(1) {
        Some(id) => Delivery::new(t.qos, id),
        None => Delivery::AtMostOnce,
    };
    let per_publisher_rate = t.rate.map(|r| r / t.publishers.max(1) as f64);
    let interval = per_publisher_rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(1.0 / r));
    let me_u32 = u32::try_from(me).unwrap_or(u32::MAX);
    let mut seq: u64 = 0;
    // QoS 0: sequence numbers below this count as settled (stall reset).
    let mut floor: u64 = 0;
    let mut last_floor_move = Instant::now();
    let mut last_floor: u64 = 0;
    loop {
        let now = Instant::now();
        let publishing = now < end && seq < limit;
        let mut window_blocked = false;
        let mut more = false;
        if publishing {
            // How many may go now.
            let mut budget = BATCH.min(limit - seq);
            if let Some(iv) = interval {
                let due = (now.duration_since(start).as_nanos() / iv.as_nanos().max(1)) as u64 + 1;
                budget = budget.min(due.saturating_sub(seq));
                if let Some(sched) = start.checked_add(iv.mul_f64(seq as f64)) {
                    out.behind = out.behind.max(now.saturating_duration_since(sched));
                }
            }
            if t.qos == QoS::AtMostOnce && t.window > 0 {
                let delivered = board.borrow().delivered_floor(me).max(floor);
                if delivered != last_floor {
                    last_floor = delivered;
                    last_floor_move = now;
                }
                let mut room = t.window.saturating_sub(seq.saturating_sub(delivered));
                if room == 0 && now.duration_since(last_floor_move) >= STALL {
                    // The subscribers will not see what is missing: it
                    // counts as lost, the window starts again.
                    floor = seq;
                    last_floor = seq;
                    last_floor_move = now;
                    out.stalls += 1;
                    room = t.window;
                }
                budget = budget.min(room);
            }
            if t.qos != QoS::AtMostOnce {
                budget = budget.min(t.inflight.saturating_sub(conn.client.in_flight()) as u64);
            }
            let stamp = board.borrow().stamp(now);
            let mut published = 0;
            while published < budget {
                let msg = Publish::new(topic.clone(), payload(t.payload, me_u32, seq, stamp))
                    .with_delivery(delivery);
                // Counted as sent before it can arrive anywhere.
                if let Some(s) = board.borrow_mut().sent.get_mut(me) {
                    *s = seq + 1;
                }
                match conn.client.publish(now, msg) {
                    Ok(_) => {
                        seq += 1;
                        published += 1;
                    }
                    Err(e) => {
                        if let Some(s) = board.borrow_mut().sent.get_mut(me) {
                            *s = seq;
                        }
                        if matches!(e, SessionError::WindowFull) {
                            break;
                        }
                        out.error = Some(format!("publisher {me}: publish: {e:?}"));
                        out.disconnected = conn.client.is_closed();
                        conn.close().await;
                        return out;
                    }
                }
            }
            more = published == BATCH;
            if t.qos == QoS::AtMostOnce && t.window > 0 {
                // Whatever moves the floor from now on leaves a permit in
                // `progress`: no wake-up is lost.
                window_blocked = seq.saturating_sub(last_floor) >= t.window;
            }
        }
        conn.flush().await;
        if !publishing && (conn.client.in_flight() == 0 || now >= give_up) {
            out.unacknowledged = conn.client.in_flight() as u64;
            break;
        }
        if conn.client.is_closed() {
            out.disconnected = true;
            out.error = Some(format!("publisher {me}: the broker closed the connection"));
            return out;
        }
        let next_due = match interval {
            Some(iv) if publishing => start.checked_add(iv.mul_f64(seq as f64)),
            _ => None,
        };
        tokio::select! {
            r = conn.readable() => {
                if r.is_ok() {
                    conn.read_ready();
                } else {
                    conn.client.handle_closed(Instant::now());
                }
                while let Some(event) = conn.client.poll_event() {
                    match event {
                        Event::PubAck(a) if a.reason_code.is_error() => out.refused += 1,
                        Event::PubRecFailed(_) => out.refused += 1,
                        Event::Disconnected(r) => {
                            out.error = Some(format!("publisher {me}: {}", describe(&r)));
                        }
                        _ => {}
                    }
                }
            }
            () = progress.notified(), if window_blocked => {}
            () = tokio::time::sleep(STALL), if window_blocked => {}
            () = sleep_until(next_due), if next_due.is_some() => {}
            () = sleep_until(Some(end)), if publishing => {}
            () = sleep_until(Some(give_up)), if !publishing => {}
            () = tokio::task::yield_now(), if more && !window_blocked => {}
        }
    }
    conn.close().await;
    out
}

/// One subscriber: records every message until told to stop.
async fn subscribe_loop(
    mut conn: Conn,
    me: usize,
    board: Rc<RefCell<Board>>,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    let mut out = Outcome::default();
    loop {
        tokio::select! {
            r = conn.readable() => {
                if r.is_ok() {
                    conn.read_ready();
                } else {
                    conn.client.handle_closed(Instant::now());
                }
                let now = Instant::now();
                let mut b = board.borrow_mut();
                while let Some(event) = conn.client.poll_event() {
                    match event {
                        Event::Publish(p) => b.record(me, &p.payload, now),
                        Event::Disconnected(r) => {
                            out.error = Some(format!("subscriber {me}: {}", describe(&r)));
                        }
                        _ => {}
                    }
                }
            }
            _ = stop.changed() => break,
        }
        conn.flush().await;
        if conn.client.is_closed() {
            out.disconnected = true;
            return out;
        }
    }
    conn.close().await;
    out
}

/// What the idle scenario does.
pub(crate) struct Idle {
    pub(crate) addr: SocketAddr,
    pub(crate) version: ProtocolVersion,
    pub(crate) connections: usize,
    /// Handshakes in progress at once at most.
    pub(crate) concurrency: usize,
    /// Keep alive of the idle clients (0: none, nothing is ever sent).
    pub(crate) keep_alive: u16,
    /// Hold the connections at most this long after they are all up.
    pub(crate) hold: Duration,
}

/// Opens `connections` idle connections, prints a `ready` line, holds
/// them until SIGTERM / SIGINT or `hold`, then closes them and returns the
/// result line.
pub(crate) async fn idle(s: Idle) -> Result<Value, String> {
    let cpu0 = cpu_seconds();
    let run = run_id();
    let start = Instant::now();
    let gate = Rc::new(Semaphore::new(s.concurrency.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let up = Rc::new(Cell::new(0usize));
    let failed = Rc::new(Cell::new(0usize));
    let dropped = Rc::new(Cell::new(0usize));
    let first_error: Rc<RefCell<Option<String>>> = Rc::new(RefCell::new(None));
    let settled = Rc::new(Notify::new());
    let mut tasks = Vec::with_capacity(s.connections);
    for i in 0..s.connections {
        let connect = connect_packet(s.version, format!("lg-{run}-i{i}"), s.keep_alive)?;
        let (gate, up, failed, dropped) =
            (gate.clone(), up.clone(), failed.clone(), dropped.clone());
        let (first_error, settled) = (first_error.clone(), settled.clone());
        let mut stop = stop_rx.clone();
        let addr = s.addr;
        tasks.push(tokio::task::spawn_local(async move {
            let opened = {
                let _permit = gate.acquire().await;
                Conn::open(addr, connect).await
            };
            let mut conn = match opened {
                Ok(c) => {
                    up.set(up.get() + 1);
                    settled.notify_one();
                    c
                }
                Err(e) => {
                    failed.set(failed.get() + 1);
                    first_error.borrow_mut().get_or_insert(e);
                    settled.notify_one();
                    return;
                }
            };
            loop {
                tokio::select! {
                    r = conn.readable() => {
                        if r.is_ok() { conn.read_ready() } else { conn.client.handle_closed(Instant::now()) }
                        while conn.client.poll_event().is_some() {}
                    }
                    () = sleep_until(conn.client.poll_timeout()) => conn.client.handle_timeout(Instant::now()),
                    _ = stop.changed() => break,
                }
                conn.flush().await;
                if conn.client.is_closed() {
                    dropped.set(dropped.get() + 1);
                    return;
                }
            }
            conn.close().await;
        }));
    }
    while up.get() + failed.get() < s.connections {
        settled.notified().await;
    }
    let connect_time = start.elapsed();
    // Listen for the signals before saying ready: a SIGTERM right after
    // the ready line must end the hold, not the process.
    let stop_signal = StopSignal::new()?;
    let ready = json!({
        "event": "ready",
        "scenario": "idle",
        "connections": s.connections,
        "connected": up.get(),
        "failed": failed.get(),
        "connect_s": round(connect_time.as_secs_f64(), 3),
    });
    println!("{ready}");
    let held_from = Instant::now();
    tokio::select! {
        () = tokio::time::sleep(s.hold) => {}
        () = stop_signal.wait() => {}
    }
    let held = held_from.elapsed();
    let _ = stop_tx.send(true);
    let closing = async {
        for h in tasks {
            let _ = h.await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), closing).await;
    let cpu1 = cpu_seconds();
    let error = first_error.borrow().clone();
    Ok(json!({
        "scenario": "idle",
        "protocol": if s.version.is_v5() { "5" } else { "3.1.1" },
        "connections": s.connections,
        "connected": up.get(),
        "failed": failed.get(),
        "dropped": dropped.get(),
        "error": error,
        "connect_s": round(connect_time.as_secs_f64(), 3),
        "held_s": round(held.as_secs_f64(), 3),
        "loadgen_cpu_s": match (cpu0, cpu1) { (Some(a), Some(b)) => Some(round(b - a, 2)), _ => None },
    }))
}

/// SIGTERM or SIGINT, listened for from its creation on.
#[cfg(unix)]
struct StopSignal {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl StopSignal {
    fn new() -> Result<Self, String> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignal {
            term: signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?,
            int: signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// Ctrl-C (other systems).
#[cfg(not(unix))]
struct StopSignal;

#[cfg(not(unix))]
impl StopSignal {
    fn new() -> Result<Self, String> {
        Ok(StopSignal)
    }

    async fn wait(self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
