//! Deadlines in 8 bytes.
//!
//! Every connection and session keeps the deadline it has in the timer
//! heap, and some sessions their expiry: as `Option<Instant>` that is 16
//! bytes each, and 32 per heap entry. A [`Tick`] counts whole milliseconds
//! from the broker's epoch (the first `now` it was given), so
//! `Option<Tick>` is 8 bytes. Deadlines are rounded up: a timer never
//! fires before the instant it was set for.

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use crate::slab::Key;

/// A deadline: milliseconds after the epoch, rounded up, plus one (so
/// that `Option<Tick>` needs no extra space).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Tick(NonZeroU64);

impl Tick {
    /// `t` as a tick after `epoch`, rounded up to the next millisecond
    /// (an instant before the epoch is the epoch).
    pub(crate) fn at(epoch: Instant, t: Instant) -> Tick {
        let d = t.saturating_duration_since(epoch);
        let ms = d
            .as_millis()
            .saturating_add(u128::from(d.subsec_nanos() % 1_000_000 != 0));
        // At most 2^62 - 1 (146 million years): two bits stay free for
        // `TimerEntry`.
        let ms = u64::try_from(ms).unwrap_or(u64::MAX).min(Self::MAX - 1) + 1;
        Tick(NonZeroU64::new(ms).unwrap_or(NonZeroU64::MIN))
    }

    /// Largest tick value.
    const MAX: u64 = (1 << 62) - 1;

    /// The instant of this tick (`None`: beyond what `Instant` can hold,
    /// that is never).
    pub(crate) fn instant(self, epoch: Instant) -> Option<Instant> {
        epoch.checked_add(Duration::from_millis(self.0.get() - 1))
    }

    /// Whether this deadline has come at `now`.
    pub(crate) fn due(self, epoch: Instant, now: Instant) -> bool {
        self.instant(epoch).is_some_and(|t| t <= now)
    }
}

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    Conn(Key),
    Session(Key),
    Sys,
    /// Every connection gives back what it holds empty.
    Release,
}

/// A timer heap entry in 16 bytes: the tick and the timer's kind in one
/// `u64` (kind in the low two bits), then the key. Ordered by tick first.
/// (`(Tick, Timer)` took 24.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerEntry {
    at_kind: u64,
    key: Key,
}

impl TimerEntry {
    pub(crate) fn new(at: Tick, timer: Timer) -> Self {
        let none = Key {
            index: 0,
            generation: 0,
        };
        let (kind, key) = match timer {
            Timer::Conn(k) => (0, k),
            Timer::Session(k) => (1, k),
            Timer::Sys => (2, none),
            Timer::Release => (3, none),
        };
        TimerEntry {
            at_kind: at.0.get() << 2 | kind,
            key,
        }
    }

    pub(crate) fn at(self) -> Tick {
        // A tick is at most 2^62 - 1 and not 0, so this round trip holds.
        Tick(NonZeroU64::new(self.at_kind >> 2).unwrap_or(NonZeroU64::MIN))
    }

    pub(crate) fn timer(self) -> Timer {
        match self.at_kind & 3 {
            0 => Timer::Conn(self.key),
            1 => Timer::Session(self.key),
            2 => Timer::Sys,
            _ => Timer::Release,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_up_and_never_fires_early() {
        let e = Instant::now();
        for ns in [0u64, 1, 999_999, 1_000_000, 1_000_001, 90_000_000_000] {
            let t = e + Duration::from_nanos(ns);
            let k = Tick::at(e, t);
            let back = k.instant(e).unwrap();
            assert!(back >= t, "{ns}");
            assert!(back - t < Duration::from_millis(1), "{ns}");
            assert!(k.due(e, back));
            assert!(!k.due(e, t.checked_sub(Duration::from_nanos(1)).unwrap_or(e)) || ns == 0);
        }
        // Order is kept; an instant before the epoch is the epoch.
        assert!(
            Tick::at(e, e + Duration::from_millis(2)) > Tick::at(e, e + Duration::from_millis(1))
        );
        assert_eq!(Tick::at(e + Duration::from_secs(1), e), Tick::at(e, e));
        assert_eq!(std::mem::size_of::<Option<Tick>>(), 8);
    }

    #[test]
    fn timer_entries_round_trip_and_order_by_tick() {
        let e = Instant::now();
        let k = Key {
            index: 7,
            generation: 3,
        };
        let far = Tick::at(e, e + Duration::from_secs(u64::from(u32::MAX) * 1000));
        for at in [Tick::at(e, e), Tick::at(e, e + Duration::from_secs(5)), far] {
            for t in [
                Timer::Conn(k),
                Timer::Session(k),
                Timer::Sys,
                Timer::Release,
            ] {
                let x = TimerEntry::new(at, t);
                assert_eq!((x.at(), x.timer()), (at, t));
            }
        }
        let a = TimerEntry::new(Tick::at(e, e + Duration::from_millis(1)), Timer::Sys);
        let b = TimerEntry::new(Tick::at(e, e + Duration::from_millis(2)), Timer::Conn(k));
        assert!(a < b);
        assert_eq!(std::mem::size_of::<TimerEntry>(), 16);
    }
}
