//! Rate limiting for log lines whose condition can repeat (descriptor exhaustion, stale
//! completions, frame-clock level changes): one line per interval, with a count of the rest.

use std::time::{Duration, Instant};

/// Lets a warning through at most once per `every`, counting the ones held back meanwhile.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    every: Duration,
    last: Option<Instant>,
    held_back: u32,
}

impl LogLimiter {
    /// A limiter passing one warning per `every`.
    pub(crate) fn new(every: Duration) -> LogLimiter {
        LogLimiter {
            every,
            last: None,
            held_back: 0,
        }
    }

    /// Whether to log now; if so, also how many warnings were held back since the last one.
    pub(crate) fn admit(&mut self, now: Instant) -> Option<u32> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_within_the_interval_are_held_back_and_counted() {
        let t0 = Instant::now();
        let mut limit = LogLimiter::new(Duration::from_secs(10));
        assert_eq!(limit.admit(t0), Some(0));
        assert_eq!(limit.admit(t0 + Duration::from_secs(1)), None);
        assert_eq!(limit.admit(t0 + Duration::from_secs(2)), None);
        assert_eq!(limit.admit(t0 + Duration::from_secs(11)), Some(2));
    }
}
