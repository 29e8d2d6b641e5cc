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
        let ms = u64::try_from(ms).unwrap_or(u64::MAX).saturating_add(1);
        Tick(NonZeroU64::new(ms).unwrap_or(NonZeroU64::MIN))
    }

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
}
