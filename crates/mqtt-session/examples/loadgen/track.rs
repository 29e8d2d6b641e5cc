//! What the load generator counts: which message each subscriber got
//! (exactly, one bit per publisher sequence number), latencies, and its
//! own CPU time.
//!
//! Every payload starts with a 20-byte header: publisher id (u32), sequence
//! number (u64) and the send time in nanoseconds since the run's epoch
//! (u64), little-endian; the rest is zeros up to the payload size. All
//! connections live in one process and one thread, so the subscriber
//! compares the send time with the same monotonic clock.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::Notify;

/// Bytes of the header at the front of every payload.
pub(crate) const HEADER: usize = 20;

/// Builds a payload of `size` bytes (at least [`HEADER`]).
pub(crate) fn payload(size: usize, publisher: u32, seq: u64, sent_ns: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(size);
    b.put_u32_le(publisher);
    b.put_u64_le(seq);
    b.put_u64_le(sent_ns);
    b.resize(size.max(HEADER), 0);
    b.freeze()
}

/// The header of a received payload, `None` when it is too short.
fn parse(p: &[u8]) -> Option<(u32, u64, u64)> {
    let publisher = u32::from_le_bytes(p.get(0..4)?.try_into().ok()?);
    let seq = u64::from_le_bytes(p.get(4..12)?.try_into().ok()?);
    let sent = u64::from_le_bytes(p.get(12..20)?.try_into().ok()?);
    Some((publisher, seq, sent))
}

/// What one subscriber got from one publisher.
#[derive(Default)]
struct Seen {
    /// Bit `seq` set once message `seq` arrived.
    bits: Vec<u64>,
    /// Highest sequence number seen plus one.
    next: u64,
}

/// The shared scoreboard of a run (one thread: `Rc<RefCell<Board>>`).
pub(crate) struct Board {
    publishers: usize,
    /// Per (subscriber, publisher), subscriber-major.
    seen: Vec<Seen>,
    /// Messages published so far, per publisher (the next sequence number).
    pub(crate) sent: Vec<u64>,
    /// Woken when the subscribers make progress on that publisher's
    /// messages (QoS 0 window).
    pub(crate) progress: Vec<Rc<Notify>>,
    /// Distinct messages received (all subscribers together).
    pub(crate) received: u64,
    /// Messages received again.
    pub(crate) duplicates: u64,
    /// Messages that arrived after a later one of the same publisher.
    pub(crate) out_of_order: u64,
    /// Payloads that are not ours (too short, unknown publisher, sequence
    /// number never sent).
    pub(crate) foreign: u64,
    /// When the last new message arrived.
    pub(crate) last_rx: Option<Instant>,
    /// Send-to-receive time of every message received.
    pub(crate) latency: Histogram,
    /// The clock's origin for the payload timestamps.
    pub(crate) epoch: Instant,
}

impl Board {
    /// A board for `publishers` × `subscribers`.
    pub(crate) fn new(publishers: usize, subscribers: usize, epoch: Instant) -> Self {
        Board {
            publishers,
            seen: (0..publishers * subscribers)
                .map(|_| Seen::default())
                .collect(),
            sent: vec![0; publishers],
            progress: (0..publishers).map(|_| Rc::new(Notify::new())).collect(),
            received: 0,
            duplicates: 0,
            out_of_order: 0,
            foreign: 0,
            last_rx: None,
            latency: Histogram::new(),
            epoch,
        }
    }

    /// Nanoseconds since the epoch.
    pub(crate) fn stamp(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Subscriber `sub` received `payload` at `now`.
    pub(crate) fn record(&mut self, sub: usize, payload: &[u8], now: Instant) {
        let Some((publisher, seq, sent_ns)) = parse(payload) else {
            self.foreign += 1;
            return;
        };
        let p = publisher as usize;
        let published = self.sent.get(p).copied().unwrap_or(0);
        if seq >= published {
            self.foreign += 1;
            return;
        }
        let Some(seen) = self.seen.get_mut(sub * self.publishers + p) else {
            self.foreign += 1;
            return;
        };
        // `seq < published`: the bitmap grows at most to what was sent.
        let word = (seq / 64) as usize;
        if seen.bits.len() <= word {
            seen.bits.resize(word + 1, 0);
        }
        let Some(w) = seen.bits.get_mut(word) else {
            return;
        };
        let bit = 1u64 << (seq % 64);
        if *w & bit != 0 {
            self.duplicates += 1;
            return;
        }
        *w |= bit;
        self.received += 1;
        self.last_rx = Some(now);
        if seq >= seen.next {
            seen.next = seq + 1;
            if let Some(n) = self.progress.get(p) {
                n.notify_one();
            }
        } else {
            self.out_of_order += 1;
        }
        let now_ns = self.stamp(now);
        self.latency.record(now_ns.saturating_sub(sent_ns));
    }

    /// The lowest sequence number not yet seen by every subscriber, over
    /// the highest each has seen (messages below it were delivered or
    /// lost; the ones from it up were not delivered to someone yet).
    pub(crate) fn delivered_floor(&self, publisher: usize) -> u64 {
        self.seen
            .iter()
            .skip(publisher)
            .step_by(self.publishers.max(1))
            .map(|s| s.next)
            .min()
            .unwrap_or(0)
    }
}

/// Latencies in a log-linear histogram: 64 buckets per power of two
/// (at most 1.6 % wide), nanoseconds.
pub(crate) struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

/// Sub-buckets per power of two (2^SUB_BITS).
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; ((64 - SUB_BITS as usize) + 1) * SUB as usize],
            total: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let e = 63 - v.leading_zeros(); // >= SUB_BITS
        let m = (v >> (e - SUB_BITS)) & (SUB - 1);
        (SUB + u64::from(e - SUB_BITS) * SUB + m) as usize
    }

    /// The middle of bucket `i`.
    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB {
            return i;
        }
        let e = (i - SUB) / SUB + u64::from(SUB_BITS);
        let m = (i - SUB) % SUB;
        let shift = e - u64::from(SUB_BITS);
        let low = (SUB + m) << shift;
        low + (1u64 << shift) / 2
    }

    fn record(&mut self, ns: u64) {
        if let Some(c) = self.counts.get_mut(Self::index(ns)) {
            *c += 1;
            self.total += 1;
        }
    }

    /// The `q` quantile (0 < q <= 1), `None` when empty.
    pub(crate) fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut acc = 0;
        for (i, c) in self.counts.iter().enumerate() {
            acc += c;
            if acc >= rank {
                return Some(Duration::from_nanos(Self::value(i)));
            }
        }
        None
    }
}

/// CPU time (user + system) this process has used so far, from
/// /proc/self/stat (Linux; `None` elsewhere). Ticks are USER_HZ, 100 per
/// second on Linux.
pub(crate) fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces: the fields start after its ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace();
    // After ')': state(3) ... utime is field 14, stime 15 of the line.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_within_two_percent() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5).map(|d| d.as_nanos() as f64).unwrap_or(0.0);
        let p99 = h.quantile(0.99).map(|d| d.as_nanos() as f64).unwrap_or(0.0);
        assert!((p50 / 50_000_000.0 - 1.0).abs() < 0.02, "{p50}");
        assert!((p99 / 99_000_000.0 - 1.0).abs() < 0.02, "{p99}");
    }

    #[test]
    fn board_counts_loss_duplicates_and_foreign() {
        let epoch = Instant::now();
        let mut b = Board::new(2, 1, epoch);
        b.sent = vec![3, 1];
        for seq in [0, 2, 2] {
            b.record(0, &payload(64, 0, seq, 0), epoch);
        }
        b.record(0, &payload(64, 1, 0, 0), epoch);
        b.record(0, &payload(64, 1, 5, 0), epoch); // never sent
        b.record(0, b"short", epoch);
        b.record(0, &payload(64, 7, 0, 0), epoch); // unknown publisher
        assert_eq!(b.received, 3);
        assert_eq!(b.duplicates, 1);
        assert_eq!(b.foreign, 3);
        assert_eq!(b.delivered_floor(0), 3);
        assert_eq!(b.delivered_floor(1), 1);
    }

    #[test]
    fn cpu_time_is_readable() {
        if cfg!(target_os = "linux") {
            assert!(cpu_seconds().is_some());
        }
    }
}
