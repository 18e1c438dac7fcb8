//! Degradation of the host: while the distributor cannot keep its frame clock (a tick's work
//! takes most of its period, or ticks had to be merged), conflated channels are dispatched only
//! every 2nd, 4th ... tick. Stepping down is immediate; stepping back up waits for a second of
//! calm ticks, so one quiet tick on a saturated core does not flip the level back and forth.

use std::time::Duration;

use crate::config::limits::MAX_RATE_LEVEL;

/// The host's step-down level (conflated channels tick every `2^level` frames).
#[derive(Debug)]
pub struct HostLevel {
    level: u8,
    /// Consecutive calm ticks seen at the current level.
    calm: u32,
    /// Calm ticks needed to step up one level: one second's worth.
    calm_needed: u32,
    period: Duration,
}

impl HostLevel {
    /// Level 0 for a frame clock of `period`.
    pub fn new(period: Duration) -> HostLevel {
        let per_second = Duration::from_secs(1).as_nanos() / period.as_nanos().max(1);
        HostLevel {
            level: 0,
            calm: 0,
            calm_needed: (per_second as u32).max(1),
            period,
        }
    }

    /// The current level.
    pub fn level(&self) -> u8 {
        self.level
    }

    /// Takes one tick's work time and whether ticks were merged before it; returns the new level
    /// when it changed.
    pub fn observe(&mut self, took: Duration, merged: bool) -> Option<u8> {
        let before = self.level;
        if merged || took > self.period.mul_f64(0.75) {
            self.calm = 0;
            self.level = (self.level + 1).min(MAX_RATE_LEVEL);
        } else if took < self.period / 4 && self.level > 0 {
            self.calm += 1;
            if self.calm >= self.calm_needed {
                self.calm = 0;
                self.level -= 1;
            }
        } else {
            self.calm = 0;
        }
        (self.level != before).then_some(self.level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_micros(16_667);
    const CALM: Duration = Duration::from_micros(100);

    #[test]
    fn an_overrunning_tick_steps_the_host_down_at_once() {
        let mut h = HostLevel::new(PERIOD);
        assert_eq!(h.observe(Duration::from_millis(15), false), Some(1));
        assert_eq!(h.observe(CALM, true), Some(2));
    }

    #[test]
    fn one_calm_tick_after_an_overrun_keeps_the_level() {
        let mut h = HostLevel::new(PERIOD);
        h.observe(CALM, true);
        assert_eq!(h.observe(CALM, false), None);
        assert_eq!(h.level(), 1);
    }

    #[test]
    fn a_second_of_calm_ticks_steps_the_host_up_one_level() {
        let mut h = HostLevel::new(PERIOD);
        h.observe(CALM, true);
        h.observe(CALM, true);
        let changes: Vec<u8> = (0..60).filter_map(|_| h.observe(CALM, false)).collect();
        assert_eq!(changes, vec![1]);
    }

    #[test]
    fn a_busy_but_not_late_tick_restarts_the_calm_count() {
        let mut h = HostLevel::new(PERIOD);
        h.observe(CALM, true);
        for _ in 0..59 {
            h.observe(CALM, false);
        }
        h.observe(Duration::from_millis(8), false);
        assert_eq!(h.observe(CALM, false), None, "calm count restarted");
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
