//! io_uring backend (in progress): temporarily delegates nothing and reports unavailable.
use std::io;
use std::sync::Arc;

use super::EventFd;

/// Checks that io_uring with the features framecast needs can be set up here.
pub fn probe() -> io::Result<()> {
    Err(io::Error::other("io_uring backend not built yet"))
}

/// Placeholder.
pub type UringDriver = super::epoll::EpollDriver;

#[allow(dead_code)]
fn _unused(_: Arc<EventFd>) {}
