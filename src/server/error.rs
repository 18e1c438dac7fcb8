//! [`StartError`]: why a server did not start.

use std::net::SocketAddr;

use thiserror::Error;

use crate::config::ConfigError;

/// Why the server did not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Something already listens on the address: another framecast, another program, or
    /// another [`Server`](super::Server) in this process. Stop it or pick another `listen`
    /// address.
    #[error("cannot listen on {addr}: address in use (another server listens there)")]
    AddrInUse {
        /// The configured address.
        addr: SocketAddr,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// `io = "uring"` was asked for and io_uring is not available.
    #[error("io_uring is not available ({0}); use --io epoll or --io auto")]
    UringUnavailable(std::io::Error),
    /// A thread or driver could not be created.
    #[error("cannot start shard: {0}")]
    Shard(std::io::Error),
}

impl StartError {
    /// Binding `addr` failed with `source`.
    pub(super) fn bind(addr: SocketAddr, source: std::io::Error) -> StartError {
        match source.kind() {
            std::io::ErrorKind::AddrInUse => StartError::AddrInUse { addr },
            _ => StartError::Bind { addr, source },
        }
    }
}
