//! The I/O backend the shards drive, chosen once at start, and one shard's thread body on it.

use std::net::TcpListener;
use std::sync::Arc;

use crossbeam_channel::Sender;

use super::StartError;
use crate::config::IoBackend;
use crate::driver::epoll::EpollDriver;
use crate::driver::uring::{self, UringDriver};
use crate::driver::{Driver, EventFd};
use crate::shard::{Shard, ShardParts};

/// The backend in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Backend {
    /// io_uring.
    Uring,
    /// epoll (mio).
    Epoll,
}

impl Backend {
    /// The backend for `io`: `auto` probes io_uring and falls back to epoll with a warning.
    pub(super) fn choose(io: IoBackend) -> Result<Backend, StartError> {
        match io {
            IoBackend::Epoll => Ok(Backend::Epoll),
            IoBackend::Uring => uring::probe()
                .map(|()| Backend::Uring)
                .map_err(StartError::UringUnavailable),
            IoBackend::Auto => Ok(uring::probe().map_or_else(
                |error| {
                    tracing::warn!(%error, "io_uring unavailable, falling back to epoll");
                    Backend::Epoll
                },
                |()| Backend::Uring,
            )),
        }
    }

    /// The name the status API and the startup line report.
    pub(super) fn name(self) -> &'static str {
        match self {
            Backend::Uring => "io_uring",
            Backend::Epoll => "epoll",
        }
    }

    /// One shard's thread: builds its driver, says it is ready, runs until shut down. A driver
    /// or loop error is logged and sent on `ready` (where the start may be waiting for it).
    pub(super) fn run_shard(
        self,
        listener: TcpListener,
        waker: Arc<EventFd>,
        parts: ShardParts,
        ready: Sender<std::io::Result<()>>,
    ) {
        let id = parts.id;
        let result = match self {
            Backend::Uring => run(UringDriver::new(listener, waker), parts, &ready),
            Backend::Epoll => run(EpollDriver::new(listener, waker), parts, &ready),
        };
        if let Err(e) = result {
            tracing::error!(shard = id, error = %e, "shard stopped with an error");
            let _ = ready.send(Err(e));
        }
    }
}

/// Runs a shard on `driver` once it exists.
fn run<D: Driver>(
    driver: std::io::Result<D>,
    parts: ShardParts,
    ready: &Sender<std::io::Result<()>>,
) -> std::io::Result<()> {
    let driver = driver?;
    let _ = ready.send(Ok(()));
    Shard::new(driver, parts).run()
}
