//! Failure points of [`Server::start`](super::Server::start), for tests: a unit test makes the
//! start fail right after a chosen thread was spawned and checks that none is left running.
//! Outside `cfg(test)` every point is a no-op.

use std::sync::Arc;

use super::StartError;
use crate::status::ServerState;

/// A step of the start after which a test may make it fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Shard `n` was spawned.
    Shard(usize),
    /// The distributor was spawned.
    Distributor,
    /// The observer was started.
    Observer,
}

#[cfg(test)]
thread_local! {
    /// Where the start running on this thread is to fail.
    static FAIL_AT: std::cell::Cell<Option<Step>> = const { std::cell::Cell::new(None) };
    /// The server state of the last start failed on this thread (held by every server thread).
    static FAILED_STATE: std::cell::RefCell<std::sync::Weak<ServerState>> =
        const { std::cell::RefCell::new(std::sync::Weak::new()) };
}

/// Makes the next start on this thread fail right after `step`.
#[cfg(test)]
pub(super) fn fail_at(step: Step) {
    FAIL_AT.set(Some(step));
}

/// The server state of the start that last failed at a point on this thread.
#[cfg(test)]
pub(super) fn failed_state() -> std::sync::Weak<ServerState> {
    FAILED_STATE.with_borrow(std::sync::Weak::clone)
}

/// Fails when a test asked to fail at `step` (then remembers `state`); otherwise `Ok`.
pub(super) fn point(step: Step, state: &Arc<ServerState>) -> Result<(), StartError> {
    #[cfg(test)]
    if FAIL_AT.get() == Some(step) {
        FAIL_AT.set(None);
        FAILED_STATE.set(Arc::downgrade(state));
        return Err(StartError::Shard(std::io::Error::other(format!(
            "failure forced after {step:?}"
        ))));
    }
    let _ = (step, state);
    Ok(())
}
