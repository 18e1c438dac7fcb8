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
    grid: Grid,
    next: u64,
}

/// Where a clock's ticks fall, counted from its `start`.
#[derive(Clone, Copy, Debug)]
enum Grid {
    /// Every `period` after start; frames count from the start.
    Period(Duration),
    /// On the wall clock's `hz` grid: frame `n` begins at Unix time `⌊n × 10⁹ / hz⌋` ns, and
    /// `start` is the beginning of frame `base` (exact integers, so every node agrees however
    /// long it runs).
    Wall {
        /// Ticks per second.
        hz: u64,
        /// The Unix-time frame number of `start`.
        base: u64,
    },
}

const NANOS: u128 = 1_000_000_000;

impl Grid {
    /// Nanoseconds from `start` to the beginning of (relative) frame `frame`.
    fn offset_ns(self, frame: u64) -> u128 {
        match self {
            Grid::Period(p) => p.as_nanos() * u128::from(frame),
            Grid::Wall { hz, base } => {
                let at = |n: u64| u128::from(n) * NANOS / u128::from(hz);
                at(base + frame) - at(base)
            }
        }
    }

    /// The (relative) frame running `ns` after `start`.
    fn frame_at(self, ns: u128) -> u64 {
        match self {
            Grid::Period(p) => (ns / p.as_nanos().max(1)) as u64,
            Grid::Wall { hz, base } => {
                let begin = u128::from(base) * NANOS / u128::from(hz);
                ((begin + ns) * u128::from(hz) / NANOS) as u64 - base
            }
        }
    }

    /// What frame numbers are reported as, for relative frame `frame`.
    fn number(self, frame: u64) -> u64 {
        match self {
            Grid::Period(_) => frame,
            Grid::Wall { base, .. } => base + frame,
        }
    }
}

impl FrameClock {
    /// A clock whose frame 1 is due one `period` after `start`.
    pub(crate) fn new(start: Instant, period: Duration) -> FrameClock {
        FrameClock {
            start,
            grid: Grid::Period(period),
            next: 1,
        }
    }

    /// A clock whose frame numbers are `⌊unix time × hz⌋` and whose ticks fall on that grid
    /// of the wall clock (cluster mode: every node numbers the same tick alike, within clock
    /// skew). `now` and `unix` are the same moment on the two clocks.
    pub(crate) fn wall_aligned(now: Instant, unix: Duration, hz: u32) -> FrameClock {
        let hz = u64::from(hz.max(1));
        let base = (unix.as_nanos() * u128::from(hz) / NANOS) as u64;
        let began = u128::from(base) * NANOS / u128::from(hz);
        let into = Duration::from_nanos((unix.as_nanos() - began) as u64);
        FrameClock {
            start: now.checked_sub(into).unwrap_or(now),
            grid: Grid::Wall { hz, base },
            next: 1,
        }
    }

    /// When the next tick is due.
    pub(crate) fn deadline(&self) -> Instant {
        self.at(self.next)
    }

    fn at(&self, frame: u64) -> Instant {
        self.start + Duration::from_nanos(self.grid.offset_ns(frame) as u64)
    }

    /// Fires the next tick at `now` (at or after [`deadline`](Self::deadline)).
    pub(crate) fn fire(&mut self, now: Instant) -> Tick {
        let due = self.deadline();
        let elapsed = now.saturating_duration_since(self.start);
        let current = self.grid.frame_at(elapsed.as_nanos());
        let frame = current.max(self.next);
        let tick = Tick {
            frame: self.grid.number(frame),
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
        let unix = Duration::from_secs(1_780_000_000) + Duration::from_millis(7);
        let t0 = Instant::now();
        let mut a = FrameClock::wall_aligned(t0, unix, 60);
        // Another node started 40 ms later, on the same wall clock.
        let later = Duration::from_millis(40);
        let mut b = FrameClock::wall_aligned(t0 + later, unix + later, 60);
        let at = unix + later * 2;
        let expected = (at.as_nanos() * 60 / 1_000_000_000) as u64;
        let (fa, fb) = (a.fire(t0 + later * 2).frame, b.fire(t0 + later * 2).frame);
        assert_eq!((fa, fb), (expected, expected), "⌊unix time × 60⌋ on both");
        assert_eq!(a.deadline(), b.deadline());
        // A day later the grids still agree to the nanosecond (integer arithmetic).
        let day = Duration::from_secs(86_400);
        let (fa, fb) = (a.fire(t0 + day).frame, b.fire(t0 + day).frame);
        assert_eq!(fa, fb);
        assert_eq!(fa, ((unix + day).as_nanos() * 60 / 1_000_000_000) as u64);
        assert_eq!(a.deadline(), b.deadline());
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
