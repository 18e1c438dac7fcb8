//! Degradation of the host: while the distributor cannot keep its frame clock (a tick's work
//! takes most of its period, or ticks had to be merged), conflated channels are dispatched only
//! every 2nd, 4th ... tick; one calm tick (work under a quarter of the period) steps back up.
//! On a saturated core the level can change every few ticks, so changes are logged sparingly
//! (see [`LogLimiter`]); the current level is always in the metrics and status.

use std::time::Duration;

use crate::limits::MAX_RATE_LEVEL;

/// The share of its period a tick's work may take before the tick counts as an overrun (the
/// host steps down, and a late tick is blamed on the work rather than on scheduling).
const OVERRUN_SHARE: f64 = 0.75;

/// Whether `took` is an overrun of a tick of `period` (more than [`OVERRUN_SHARE`] of it).
fn overran(took: Duration, period: Duration) -> bool {
    took > period.mul_f64(OVERRUN_SHARE)
}

/// The host's step-down level (conflated channels tick every `2^level` frames).
#[derive(Debug)]
pub(crate) struct HostLevel {
    level: u8,
    period: Duration,
}

impl HostLevel {
    /// Level 0 for a frame clock of `period`.
    pub(crate) fn new(period: Duration) -> HostLevel {
        HostLevel { level: 0, period }
    }

    /// The current level.
    pub(crate) fn level(&self) -> u8 {
        self.level
    }

    /// Takes one tick's work time and whether ticks were merged before it; returns the new level
    /// when it changed.
    pub(crate) fn observe(&mut self, took: Duration, merged: bool) -> Option<u8> {
        let before = self.level;
        if merged || overran(took, self.period) {
            self.level = (self.level + 1).min(MAX_RATE_LEVEL);
        } else if took < self.period / 4 && self.level > 0 {
            self.level -= 1;
        }
        (self.level != before).then_some(self.level)
    }
}

/// Why the frame clock fell behind, for the operator: the distributor's own work, or the host
/// running it late (another busy process, an overcommitted VM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Behind {
    /// The tick's work took most of its period.
    WorkOverrun,
    /// The work was short: the thread was scheduled late and ticks merged.
    SchedulingDelay,
}

impl Behind {
    /// snake_case name for structured logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Behind::WorkOverrun => "work_overrun",
            Behind::SchedulingDelay => "scheduling_delay",
        }
    }

    /// A phrase for the log message.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Behind::WorkOverrun => "tick work overran its period",
            Behind::SchedulingDelay => "the thread was scheduled late; tick work was short",
        }
    }
}

impl HostLevel {
    /// Which of the two made a tick late, from its work time.
    pub(crate) fn cause(took: Duration, period: Duration) -> Behind {
        if overran(took, period) {
            Behind::WorkOverrun
        } else {
            Behind::SchedulingDelay
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_micros(16_667);
    const CALM: Duration = Duration::from_micros(100);

    #[test]
    fn an_overrunning_or_merged_tick_steps_the_host_down() {
        let mut h = HostLevel::new(PERIOD);
        assert_eq!(h.observe(Duration::from_millis(15), false), Some(1));
        assert_eq!(h.observe(CALM, true), Some(2));
    }

    #[test]
    fn a_calm_tick_steps_the_host_up_one_level() {
        let mut h = HostLevel::new(PERIOD);
        h.observe(CALM, true);
        h.observe(CALM, true);
        assert_eq!(h.observe(CALM, false), Some(1));
    }

    #[test]
    fn a_busy_but_not_late_tick_keeps_the_level() {
        let mut h = HostLevel::new(PERIOD);
        h.observe(CALM, true);
        assert_eq!(h.observe(Duration::from_millis(8), false), None);
        assert_eq!(h.level(), 1);
    }

    #[test]
    fn a_late_tick_with_little_work_is_a_scheduling_delay() {
        assert_eq!(
            HostLevel::cause(Duration::from_micros(3), PERIOD),
            Behind::SchedulingDelay
        );
        assert_eq!(
            HostLevel::cause(Duration::from_millis(15), PERIOD),
            Behind::WorkOverrun
        );
    }

    #[test]
    fn the_level_stops_at_the_deepest_step() {
        let mut h = HostLevel::new(PERIOD);
        for _ in 0..10 {
            h.observe(CALM, true);
        }
        assert_eq!(h.level(), MAX_RATE_LEVEL);
    }
}
