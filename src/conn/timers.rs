//! A connection's deadlines as a fixed table, one slot per kind of timer, so the driver of the
//! state machine asks one question ([`super::Conn::poll_timeout`]: when is the next one?) and
//! sleeps until then instead of visiting every connection on a sweep. Setting a timer replaces
//! its previous deadline; a fired timer is cleared before its effect runs.

use std::time::Instant;

/// The kinds of deadline a connection has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The upgrade request (or the next keep-alive HTTP request) must arrive by then.
    Handshake,
    /// Time to send the next server ping.
    Ping,
    /// The pong to the last ping must arrive by then.
    Pong,
    /// The close handshake (or an HTTP linger) ends by then, answered or not.
    Close,
    /// The client must authenticate by then, or its token expires then.
    Auth,
}

impl Timer {
    const COUNT: usize = 5;

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a connection must be authenticated by its [`Timer::Auth`] deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthExpiry {
    /// It must authenticate within `auth_timeout`.
    Timeout,
    /// Its token expires.
    TokenExpired,
}

impl AuthExpiry {
    /// The close reason text sent with 4001.
    pub fn close_text(self) -> &'static str {
        match self {
            AuthExpiry::Timeout => "authentication timeout",
            AuthExpiry::TokenExpired => "token expired",
        }
    }
}

/// A change to a connection's [`Timer::Auth`], asked for by the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthTimer {
    /// Close with 4001 at this time, unless moved again before.
    Until(Instant, AuthExpiry),
    /// No deadline (authenticated with a token that does not expire).
    Stop,
}

/// One deadline per [`Timer`], as whole milliseconds after the connection's start (rounded up,
/// so a timer never fires early): 56 bytes per connection instead of 80 for five
/// `Option<Instant>`s, which idle memory per connection notices.
#[derive(Clone, Debug)]
pub(crate) struct Timers {
    base: Instant,
    at_ms: [u64; Timer::COUNT],
}

/// Whole milliseconds from `from` to `at`, rounded up (0 if `at` is earlier): a deadline kept
/// in milliseconds never comes before the one it stands for. Shared with the shard's deadline
/// queue, which keys deadlines the same way.
pub(crate) fn millis_after(from: Instant, at: Instant) -> u128 {
    let after = at.saturating_duration_since(from);
    after.as_millis() + u128::from(!after.subsec_nanos().is_multiple_of(1_000_000))
}

/// An unset timer.
const UNSET: u64 = u64::MAX;

impl Timers {
    /// No timer set; deadlines are kept relative to `base`.
    pub(crate) fn new(base: Instant) -> Timers {
        Timers {
            base,
            at_ms: [UNSET; Timer::COUNT],
        }
    }

    /// Sets (or replaces) `timer`'s deadline (at `base` at the earliest).
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        let ms = millis_after(self.base, at);
        self.at_ms[timer.index()] = u64::try_from(ms).map_or(UNSET - 1, |ms| ms.min(UNSET - 1));
    }

    /// Clears `timer`.
    pub(crate) fn stop(&mut self, timer: Timer) {
        self.at_ms[timer.index()] = UNSET;
    }

    /// Clears every timer.
    pub(crate) fn stop_all(&mut self) {
        self.at_ms = [UNSET; Timer::COUNT];
    }

    /// `timer`'s deadline, if set.
    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.instant(self.at_ms[timer.index()])
    }

    /// Clears `timer` and says whether it was due at `now`.
    pub(crate) fn take_due(&mut self, timer: Timer, now: Instant) -> bool {
        let due = self.get(timer).is_some_and(|at| at <= now);
        if due {
            self.stop(timer);
        }
        due
    }

    /// The earliest deadline set.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.instant(self.at_ms.iter().copied().min().unwrap_or(UNSET))
    }

    fn instant(&self, ms: u64) -> Option<Instant> {
        (ms != UNSET).then(|| self.base + std::time::Duration::from_millis(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_next_deadline_is_the_earliest_set() {
        let t0 = Instant::now();
        let mut timers = Timers::new(t0);
        assert_eq!(timers.next(), None);
        timers.set(Timer::Ping, t0 + Duration::from_secs(30));
        timers.set(Timer::Auth, t0 + Duration::from_secs(5));
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(5)));
        timers.stop(Timer::Auth);
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(30)));
    }

    #[test]
    fn a_deadline_between_milliseconds_is_kept_late_never_early() {
        let t0 = Instant::now();
        let mut timers = Timers::new(t0);
        timers.set(Timer::Close, t0 + Duration::from_micros(1500));
        assert_eq!(
            timers.get(Timer::Close),
            Some(t0 + Duration::from_millis(2))
        );
    }

    #[test]
    fn a_timer_fires_once_when_due() {
        let t0 = Instant::now();
        let mut timers = Timers::new(t0);
        timers.set(Timer::Pong, t0 + Duration::from_secs(1));
        assert!(!timers.take_due(Timer::Pong, t0));
        assert!(timers.take_due(Timer::Pong, t0 + Duration::from_secs(1)));
        assert!(!timers.take_due(Timer::Pong, t0 + Duration::from_secs(2)));
    }
}
