//! When to accept, for both backends. An accept that fails for want of a resource (descriptors:
//! EMFILE/ENFILE; kernel memory: ENOBUFS/ENOMEM) fails again at once while the connection waits
//! in the backlog, so retrying at once is a spin: io_uring re-armed its multishot accept and
//! logged ~300,000 warnings a second with `ulimit -n 64`. Instead accepting pauses, for
//! [`FIRST_PAUSE`] doubling up to [`MAX_PAUSE`] while it keeps failing, or until a connection
//! closes and so frees a descriptor; existing connections are served meanwhile. Such failures are
//! logged at most once per [`LOG_EVERY`], with how many were held back.

use std::io;
use std::time::{Duration, Instant};

use crate::log_limit::LogLimiter;

/// First pause after a resource failure.
pub(crate) const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// Longest pause while failures go on.
pub(crate) const MAX_PAUSE: Duration = Duration::from_secs(1);
/// At most one accept warning per this interval.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(10);

/// Whether an accept error means "out of a resource": retrying before something is freed
/// would fail the same way.
pub(crate) fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// A backend's accept policy: paused or not, and its rate-limited warnings.
#[derive(Debug)]
pub(crate) struct AcceptGate {
    paused_until: Option<Instant>,
    pause: Duration,
    log: LogLimiter,
}

impl Default for AcceptGate {
    fn default() -> AcceptGate {
        AcceptGate {
            paused_until: None,
            pause: FIRST_PAUSE,
            log: LogLimiter::new(LOG_EVERY),
        }
    }
}

impl AcceptGate {
    /// Whether the backend may accept now (a pause that ran out ends here).
    pub(crate) fn is_open(&mut self, now: Instant) -> bool {
        match self.paused_until {
            Some(until) if now < until => false,
            Some(_) => {
                self.paused_until = None;
                true
            }
            None => true,
        }
    }

    /// How long the backend may sleep before it should try to accept again (`None`: not paused,
    /// or the pause has run out: a backend that still cannot accept, such as io_uring waiting
    /// for the cancel of its armed accept, must not be told to wake at once, or it spins).
    pub(crate) fn wait_hint(&self, now: Instant) -> Option<Duration> {
        self.paused_until
            .filter(|&until| until > now)
            .map(|until| until - now)
    }

    /// An accept failed: pauses on resource exhaustion (returns true), logs either way within
    /// the rate limit.
    pub(crate) fn on_error(&mut self, e: &io::Error, backend: &'static str, now: Instant) -> bool {
        let exhausted = is_resource_exhaustion(e);
        if exhausted {
            self.paused_until = Some(now + self.pause);
        }
        if let Some(suppressed) = self.log.admit(now) {
            if exhausted {
                tracing::warn!(
                    error = %e,
                    backend,
                    pause_ms = self.pause.as_millis() as u64,
                    suppressed,
                    "accepting paused: out of descriptors or memory; existing connections are \
                     still served (raise the open-files limit: ulimit -n / LimitNOFILE)"
                );
            } else {
                tracing::warn!(error = %e, backend, suppressed, "accept failed");
            }
        }
        if exhausted {
            self.pause = (self.pause * 2).min(MAX_PAUSE);
        }
        exhausted
    }

    /// A connection was accepted: failures are over, the next pause starts short again.
    pub(crate) fn on_success(&mut self) {
        self.pause = FIRST_PAUSE;
    }

    /// A connection closed and freed its descriptor: end a pause now.
    pub(crate) fn on_descriptor_freed(&mut self) {
        self.paused_until = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emfile() -> io::Error {
        io::Error::from_raw_os_error(libc::EMFILE)
    }

    #[test]
    fn running_out_of_descriptors_pauses_accepting_for_a_while() {
        let t0 = Instant::now();
        let mut gate = AcceptGate::default();
        assert!(gate.on_error(&emfile(), "test", t0));
        assert!(!gate.is_open(t0 + FIRST_PAUSE / 2));
        assert_eq!(gate.wait_hint(t0), Some(FIRST_PAUSE));
        assert!(gate.is_open(t0 + FIRST_PAUSE));
        assert_eq!(gate.wait_hint(t0 + FIRST_PAUSE), None);
    }

    #[test]
    fn a_pause_that_ran_out_gives_no_wake_up_hint_before_it_is_cleared() {
        let t0 = Instant::now();
        let mut gate = AcceptGate::default();
        gate.on_error(&emfile(), "test", t0);
        // No `is_open` in between (io_uring while its armed accept is being cancelled): a hint
        // of zero would make the loop spin until the cancel completes.
        assert_eq!(gate.wait_hint(t0 + FIRST_PAUSE), None);
        assert_eq!(gate.wait_hint(t0 + FIRST_PAUSE * 2), None);
        assert!(gate.is_open(t0 + FIRST_PAUSE));
    }

    #[test]
    fn repeated_failures_double_the_pause_up_to_the_maximum() {
        let mut now = Instant::now();
        let mut gate = AcceptGate::default();
        let mut pauses = Vec::new();
        for _ in 0..6 {
            gate.on_error(&emfile(), "test", now);
            let pause = gate.wait_hint(now).unwrap();
            pauses.push(pause.as_millis());
            now += pause;
            assert!(gate.is_open(now));
        }
        assert_eq!(pauses, [100, 200, 400, 800, 1000, 1000]);
        gate.on_success();
        gate.on_error(&emfile(), "test", now);
        assert_eq!(gate.wait_hint(now), Some(FIRST_PAUSE));
    }

    #[test]
    fn a_freed_descriptor_ends_the_pause_at_once() {
        let t0 = Instant::now();
        let mut gate = AcceptGate::default();
        gate.on_error(&emfile(), "test", t0);
        gate.on_descriptor_freed();
        assert!(gate.is_open(t0));
    }

    #[test]
    fn other_errors_do_not_pause() {
        let t0 = Instant::now();
        let mut gate = AcceptGate::default();
        let aborted = io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert!(!gate.on_error(&aborted, "test", t0));
        assert!(gate.is_open(t0));
    }

    #[test]
    fn every_resource_error_counts_as_exhaustion() {
        for code in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert!(is_resource_exhaustion(&io::Error::from_raw_os_error(code)));
        }
        assert!(!is_resource_exhaustion(&io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
    }
}
