//! I/O backends behind one completion-style interface, so a shard's loop and the sans-IO
//! connections above it never know which one runs.
//!
//! A backend provides, for connections named by [`ConnId`]:
//! - accepting on the shard's listener, reported as [`Event::Accepted`];
//! - receiving on registered connections ([`Driver::register`]), reported as [`Event::Input`]
//!   with a handle to the received bytes (the backend's [`Driver::Input`]), read through
//!   [`Driver::read_input`]; or [`Event::PeerClosed`];
//! - one vectored send per connection at a time ([`Driver::send`]): the driver owns the
//!   [`SendBatch`] (and so the memory any kernel operation points at) until the send is written
//!   or failed, and reports exactly one [`Event::Sent`] for it, whichever backend runs;
//! - closing ([`Driver::close`]), reported as [`Event::Closed`] once no operation of that
//!   connection is in flight, after which its slot may be reused;
//! - waking from other threads through an [`EventFd`] ([`Event::Wake`]), and a timeout;
//! - pausing accepts while the process is out of descriptors or memory ([`accept::AcceptGate`]),
//!   serving existing connections meanwhile, and never logging more than one warning per
//!   interval about it.
//!
//! `uring` drives an io_uring with multishot accept and multishot receive into a provided-buffer
//! ring; `epoll` is readiness-based (mio) and performs the syscalls itself when a socket is
//! ready, holding a send that the socket could not take at once until it can, so it reports the
//! same events.
// The drivers own their shard thread's wait: they read the clock for accept back-off and
// drop deadlines.
#![allow(clippy::disallowed_methods)]

pub(crate) mod accept;
pub(crate) mod epoll;
pub mod fd_limit;
pub(crate) mod uring;
mod wake;

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

pub(crate) use crate::conn::SendBatch;
pub(crate) use crate::conn_id::{ConnId, Slot};
pub(crate) use wake::EventFd;

/// Something that happened on the shard's sockets; `I` is the backend's handle to received
/// bytes ([`Driver::Input`]).
#[derive(Debug)]
pub(crate) enum Event<I> {
    /// A new connection on the shard's listener.
    Accepted(OwnedFd),
    /// Bytes arrived for `conn`; read them with [`Driver::read_input`] and `data`.
    Input {
        /// The connection.
        conn: ConnId,
        /// The backend's handle of the received bytes.
        data: I,
    },
    /// The peer closed or the socket failed; no more input will come.
    PeerClosed(ConnId),
    /// The send [`Driver::send`] started is over: all of the batch or a leading part of it
    /// written, or the error.
    Sent {
        /// The connection.
        conn: ConnId,
        /// Bytes written.
        result: io::Result<usize>,
    },
    /// The connection is fully closed; its slot may be reused.
    Closed(ConnId),
    /// Another thread called [`EventFd::wake`].
    Wake,
}

/// One shard's I/O backend.
pub(crate) trait Driver {
    /// Handle to bytes received for one connection (a provided buffer, or "the socket is
    /// readable"), consumed by [`Driver::read_input`].
    type Input: std::fmt::Debug;

    /// Backend name for logs (`io_uring` or `epoll`).
    fn name(&self) -> &'static str;
    /// Waits up to `timeout` (or until woken) and appends what happened to `events`.
    fn wait(
        &mut self,
        timeout: Option<Duration>,
        events: &mut Vec<Event<Self::Input>>,
    ) -> io::Result<()>;
    /// Takes ownership of an accepted socket as connection `conn` and starts receiving on it.
    fn register(&mut self, conn: ConnId, fd: OwnedFd) -> io::Result<()>;
    /// Hands the bytes of an [`Event::Input`] to `on_data` (possibly in several pieces);
    /// returns false if the peer closed while reading.
    fn read_input<F: FnMut(&mut [u8])>(
        &mut self,
        conn: ConnId,
        data: Self::Input,
        on_data: F,
    ) -> bool;
    /// An empty batch from the driver's pool.
    fn batch(&mut self) -> SendBatch;
    /// Starts one vectored send of `batch` on `conn` (one at a time per connection); exactly
    /// one [`Event::Sent`] reports it, also when it cannot start.
    fn send(&mut self, conn: ConnId, batch: SendBatch);
    /// Shuts down the write side of `conn` (sends FIN) after its last response; reading goes on.
    fn shutdown_write(&mut self, conn: ConnId);
    /// Closes `conn`; [`Event::Closed`] follows once nothing of it is in flight.
    fn close(&mut self, conn: ConnId);
    /// Stops accepting new connections and closes the listener.
    fn stop_accepting(&mut self);
    /// The socket of `conn` while it is registered: for the socket options
    /// and the one control message of kernel TLS ([`crate::tls::ktls`]), made while no send
    /// of `conn` is in flight.
    fn socket(&self, conn: ConnId) -> Option<BorrowedFd<'_>>;
}
