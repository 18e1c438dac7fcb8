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

/// A change to a connection's [`Timer::Auth`], asked for by the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthTimer {
    /// Close with 4001 and this text at this time, unless moved again before.
    Until(Instant, &'static str),
    /// No deadline (authenticated with a token that does not expire).
    Stop,
}

/// One deadline per [`Timer`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Timers {
    at: [Option<Instant>; Timer::COUNT],
}

impl Timers {
    /// Sets (or replaces) `timer`'s deadline.
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.at[timer.index()] = Some(at);
    }

    /// Clears `timer`.
    pub(crate) fn stop(&mut self, timer: Timer) {
        self.at[timer.index()] = None;
    }

    /// Clears every timer but `keep`.
    pub(crate) fn stop_all_but(&mut self, keep: &[Timer]) {
        for (i, at) in self.at.iter_mut().enumerate() {
            if !keep.iter().any(|t| t.index() == i) {
                *at = None;
            }
        }
    }

    /// `timer`'s deadline, if set.
    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.at[timer.index()]
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
        self.at.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_next_deadline_is_the_earliest_set() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        assert_eq!(timers.next(), None);
        timers.set(Timer::Ping, t0 + Duration::from_secs(30));
        timers.set(Timer::Auth, t0 + Duration::from_secs(5));
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(5)));
        timers.stop(Timer::Auth);
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(30)));
    }

    #[test]
    fn a_timer_fires_once_when_due() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.set(Timer::Pong, t0 + Duration::from_secs(1));
        assert!(!timers.take_due(Timer::Pong, t0));
        assert!(timers.take_due(Timer::Pong, t0 + Duration::from_secs(1)));
        assert!(!timers.take_due(Timer::Pong, t0 + Duration::from_secs(2)));
    }
}
