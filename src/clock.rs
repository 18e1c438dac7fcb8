//! The frame clock: ticks at `tick_hz` on absolute deadlines (start + n × period), so sleeping
//! late never accumulates into drift; a tick that finds itself a whole period or more late
//! merges the missed ticks into one instead of queueing them.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

/// One tick of the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tick {
    /// Frame number (ticks since start, counting merged ones).
    pub frame: u64,
    /// How late the tick fired relative to its deadline.
    pub lateness: Duration,
    /// Ticks merged into this one because the previous work overran.
    pub merged: u64,
}

/// A drift-free periodic deadline source.
#[derive(Clone, Debug)]
pub(crate) struct FrameClock {
    start: Instant,
    period: Duration,
    next: u64,
    /// Added to every frame number: 0 for a clock counting from its start, the Unix-time
    /// frame number of `start` for a wall-aligned one.
    offset: u64,
}

impl FrameClock {
    /// A clock whose frame 1 is due one `period` after `start`.
    pub(crate) fn new(start: Instant, period: Duration) -> FrameClock {
        FrameClock {
            start,
            period,
            next: 1,
            offset: 0,
        }
    }

    /// A clock whose frame numbers are `⌊unix time / period⌋` and whose ticks fall on those
    /// wall-clock multiples (cluster mode: every node numbers the same tick alike, within
    /// clock skew). `now` and `unix` are the same moment on the two clocks.
    pub(crate) fn wall_aligned(now: Instant, unix: Duration, period: Duration) -> FrameClock {
        let p = period.as_nanos().max(1);
        let current = unix.as_nanos() / p;
        let into = Duration::from_nanos((unix.as_nanos() - current * p) as u64);
        FrameClock {
            start: now.checked_sub(into).unwrap_or(now),
            period,
            next: 1,
            offset: current as u64,
        }
    }

    /// When the next tick is due.
    pub(crate) fn deadline(&self) -> Instant {
        self.at(self.next)
    }

    fn at(&self, frame: u64) -> Instant {
        self.start + self.period.mul_f64(frame as f64)
    }

    /// Fires the next tick at `now` (at or after [`deadline`](Self::deadline)).
    pub(crate) fn fire(&mut self, now: Instant) -> Tick {
        let due = self.deadline();
        let elapsed = now.saturating_duration_since(self.start);
        let current = (elapsed.as_nanos() / self.period.as_nanos().max(1)) as u64;
        let frame = current.max(self.next);
        let tick = Tick {
            frame: frame + self.offset,
            lateness: now.saturating_duration_since(due),
            merged: frame - self.next,
        };
        self.next = frame + 1;
        tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_absolute_so_late_wakeups_do_not_drift() {
        let t0 = Instant::now();
        let p = Duration::from_millis(10);
        let mut c = FrameClock::new(t0, p);
        for n in 1..=100u64 {
            let due = c.deadline();
            assert_eq!(due, t0 + p * n as u32);
            // Wake 3 ms late every time: deadlines stay on the grid.
            let tick = c.fire(due + Duration::from_millis(3));
            assert_eq!(tick.frame, n);
            assert_eq!(tick.merged, 0);
        }
    }

    #[test]
    fn wall_aligned_clocks_agree_on_the_frame_number_of_a_moment() {
        let p = Duration::from_nanos(16_666_667);
        let unix = Duration::from_secs(1_780_000_000) + Duration::from_millis(7);
        let t0 = Instant::now();
        let mut a = FrameClock::wall_aligned(t0, unix, p);
        // Another node started 40 ms later, on the same wall clock.
        let later = Duration::from_millis(40);
        let mut b = FrameClock::wall_aligned(t0 + later, unix + later, p);
        let expected = ((unix + later * 2).as_nanos() / p.as_nanos()) as u64;
        let (fa, fb) = (a.fire(t0 + later * 2).frame, b.fire(t0 + later * 2).frame);
        assert_eq!((fa, fb), (expected, expected));
        let (da, db) = (a.deadline(), b.deadline());
        let apart = da.max(db) - da.min(db);
        assert!(apart < Duration::from_micros(1), "{apart:?}");
    }

    #[test]
    fn overrun_merges_missed_ticks() {
        let t0 = Instant::now();
        let p = Duration::from_millis(10);
        let mut c = FrameClock::new(t0, p);
        let tick = c.fire(t0 + Duration::from_millis(45));
        assert_eq!(tick.frame, 4);
        assert_eq!(tick.merged, 3);
        assert_eq!(c.deadline(), t0 + Duration::from_millis(50));
    }
}
