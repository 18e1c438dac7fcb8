//! I/O backends behind one completion-style interface, so a shard's loop and the sans-IO
//! connections above it never know which one runs.
//!
//! A backend provides:
//! - accepting on the shard's listener, reported as [`Event::Accepted`];
//! - receiving on registered connections ([`Driver::register`]), reported as [`Event::Input`]
//!   and read through [`Driver::read_input`], or [`Event::PeerClosed`];
//! - one vectored send per connection at a time ([`Driver::send`]); the driver owns the
//!   [`SendBatch`] (and so the memory any kernel operation points at) until it completes;
//! - closing ([`Driver::close`]), reported as [`Event::Closed`] once no operation of that
//!   connection is in flight, after which its slot may be reused;
//! - waking from other threads through an [`EventFd`] ([`Event::Wake`]), and a timeout;
//! - pausing accepts while the process is out of descriptors or memory ([`accept::AcceptGate`]),
//!   serving existing connections meanwhile, and never logging more than one warning per
//!   interval about it.
//!
//! `uring` drives an io_uring with multishot accept and multishot receive into a provided-buffer
//! ring; `epoll` is readiness-based (mio) and performs the syscalls itself when a socket is
//! ready, reporting the same events.

pub mod accept;
pub mod epoll;
pub mod fd_limit;
pub mod uring;
mod wake;

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

pub use crate::conn::SendBatch;
pub use wake::EventFd;

/// Index of a connection in its shard's table.
pub type Slot = u32;

/// Something that happened on the shard's sockets.
#[derive(Debug)]
pub enum Event {
    /// A new connection on the shard's listener.
    Accepted(OwnedFd),
    /// Bytes arrived for `slot`; read them with [`Driver::read_input`] and this `token`.
    Input {
        /// The connection.
        slot: Slot,
        /// Backend-specific handle of the received data.
        token: u32,
    },
    /// The peer closed or the socket failed; no more input will come.
    PeerClosed(Slot),
    /// A send finished: bytes written, or the error.
    Sent {
        /// The connection.
        slot: Slot,
        /// Bytes written.
        result: io::Result<usize>,
    },
    /// A socket that reported [`SendStatus::Blocked`] can take more bytes.
    Writable(Slot),
    /// The connection is fully closed; its slot may be reused.
    Closed(Slot),
    /// Another thread called [`EventFd::wake`].
    Wake,
}

/// What [`Driver::send`] did.
#[derive(Debug)]
pub enum SendStatus {
    /// The send is in flight; [`Event::Sent`] will report it.
    InFlight,
    /// Written synchronously (all of the batch or a short count); send again to continue.
    Done(usize),
    /// Wrote this many bytes, then the socket was full; [`Event::Writable`] will follow.
    Blocked(usize),
    /// The socket failed; the connection is gone.
    Failed(io::Error),
}

/// One shard's I/O backend.
pub trait Driver {
    /// Backend name for logs (`io_uring` or `epoll`).
    fn name(&self) -> &'static str;
    /// Waits up to `timeout` (or until woken) and appends what happened to `events`.
    fn wait(&mut self, timeout: Option<Duration>, events: &mut Vec<Event>) -> io::Result<()>;
    /// Takes ownership of an accepted socket as `slot` and starts receiving on it.
    fn register(&mut self, slot: Slot, fd: OwnedFd) -> io::Result<()>;
    /// Hands the bytes of an [`Event::Input`] to `on_data` (possibly in several pieces);
    /// returns false if the peer closed while reading.
    fn read_input(&mut self, slot: Slot, token: u32, on_data: &mut dyn FnMut(&mut [u8])) -> bool;
    /// An empty batch from the driver's pool.
    fn batch(&mut self) -> SendBatch;
    /// Starts (or performs) one vectored send of `batch` on `slot`.
    fn send(&mut self, slot: Slot, batch: SendBatch) -> SendStatus;
    /// Shuts down the write side of `slot` (sends FIN) after its last response; reading goes on.
    fn shutdown_write(&mut self, slot: Slot);
    /// Closes `slot`; [`Event::Closed`] follows once nothing of it is in flight.
    fn close(&mut self, slot: Slot);
    /// Stops accepting new connections and closes the listener.
    fn stop_accepting(&mut self);
}
