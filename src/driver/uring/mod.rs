//! The io_uring backend, driven with the maintained `io-uring` crate in framecast's own loop
//! (not tokio-uring, which is unmaintained and has neither multishot receive nor provided-buffer
//! rings). Per shard: one ring set up with SINGLE_ISSUER + DEFER_TASKRUN where the kernel has
//! them, a multishot accept on the shard's listener, a multishot receive per connection into a
//! provided-buffer ring, at most one send per connection in flight, and a read on the wake-up
//! eventfd. Connections are also entered in the ring's registered-file table (slot = index), so
//! sends and receives skip the kernel's per-operation descriptor lookup.
//!
//! Ownership: every byte an operation points at is owned by the driver until that operation's
//! final completion (the one without `IORING_CQE_F_MORE`) is reaped: send headers, gather lists
//! and frames in a boxed `InflightSend` held by the slot, receive buffers in the [`BufRing`],
//! the eventfd's read buffer here. `in_flight` counts operations queued and not finally
//! completed; `Drop` (shutdown.rs) cancels them all and reaps until it is 0, and only then
//! lets the memory go.
//!
//! Files, one job each: `setup.rs` probes the kernel and builds the ring; `ops.rs` queues
//! operations (push, arm, send, cancel) and reaps; `completion.rs` applies completions;
//! `inflight.rs` is what each slot has in flight; `user_data.rs` packs (kind, slot,
//! generation); `bufring.rs` owns the receive buffers; `shutdown.rs` is the drop order.

mod bufring;
mod completion;
mod inflight;
mod ops;
mod setup;
mod shutdown;
#[cfg(test)]
mod tests;
mod user_data;

use std::io;
use std::mem::ManuallyDrop;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{types, IoUring};

use super::accept::AcceptGate;
use super::{ConnId, Driver, Event, EventFd, SendBatch, Slot};
use crate::log_limit::LogLimiter;
use bufring::BufRing;
use inflight::{InflightSend, SlotPhase, SlotState};
use user_data::Op;

pub use setup::probe;

const SQ_ENTRIES: u32 = 4096;
const CQ_ENTRIES: u32 = 16384;
/// Most registered-file slots per ring (also bounded by RLIMIT_NOFILE); connections in higher
/// slots use their plain descriptor.
const MAX_FIXED_FILES: u32 = 65_536;
/// How long [`UringDriver::push`] lets a full submission queue stay stuck (nothing submitted,
/// nothing to reap) before it gives up on the operation, in 1 ms naps.
const SUBMIT_STALL_LIMIT_MS: u32 = 1000;

/// Received bytes: a buffer of the provided-buffer ring, lent to the shard by an
/// [`Event::Input`] and returned to the ring by [`Driver::read_input`].
#[derive(Debug)]
pub(crate) struct ProvidedBuf {
    bid: u16,
    len: u32,
}

/// A shard's io_uring loop.
pub(crate) struct UringDriver {
    /// Closed by hand in `Drop`, after every operation is reaped and the buffer ring
    /// unregistered, before the memory operations pointed at is freed (shutdown.rs).
    ring: ManuallyDrop<IoUring>,
    bufs: BufRing,
    /// The eventfd read's 8-byte buffer: raw (from `Box::into_raw`) because the kernel writes
    /// it; freed in `Drop` once no read is in flight.
    wake_buf: *mut u64,
    waker: Arc<EventFd>,
    listener: Option<TcpListener>,
    accept_armed: bool,
    /// A resource error left the multishot accept running: cancel it at the next `arm`.
    cancel_accept: bool,
    accept_gate: AcceptGate,
    wake_armed: bool,
    conns: Vec<SlotState>,
    /// Size of the registered-file table (0 when the kernel refused one).
    fixed_files: u32,
    rearm_recv: Vec<Slot>,
    pending: Vec<Event<ProvidedBuf>>,
    cqes: Vec<(u64, i32, u32)>,
    /// Operations queued or submitted whose final completion is not reaped yet.
    in_flight: usize,
    /// Completions that named a generation their slot no longer has (dropped, counted).
    stale_completions: u64,
    stale_log: LogLimiter,
    batch_pool: Vec<SendBatch>,
    /// Boxed on purpose: a kernel operation holds the address of a box taken from here, so
    /// the pool may grow and shrink without moving any in-flight header.
    #[allow(clippy::vec_box)]
    send_pool: Vec<Box<InflightSend>>,
}

/// What the tests look at.
#[cfg(test)]
impl UringDriver {
    /// Operations queued or in the kernel whose final completion has not been reaped.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Completions dropped because their slot had been reused since (none is expected).
    pub(crate) fn stale_completions(&self) -> u64 {
        self.stale_completions
    }
}

impl Driver for UringDriver {
    type Input = ProvidedBuf;

    fn name(&self) -> &'static str {
        "io_uring"
    }

    fn wait(
        &mut self,
        timeout: Option<Duration>,
        out: &mut Vec<Event<ProvidedBuf>>,
    ) -> io::Result<()> {
        let now = Instant::now();
        self.arm(now);
        let mut timeout = if self.pending.is_empty() {
            timeout
        } else {
            Some(Duration::ZERO)
        };
        if let Some(resume) = self.accept_gate.wait_hint(now) {
            timeout = Some(timeout.map_or(resume, |t| t.min(resume)));
        }
        let ts = timeout.map(types::Timespec::from);
        self.submit_and_wait(ts.as_ref())?;
        self.reap();
        out.append(&mut self.pending);
        Ok(())
    }

    fn register(&mut self, id: ConnId, fd: OwnedFd) -> io::Result<()> {
        let (slot, i) = (id.slot, id.slot as usize);
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, SlotState::default);
        }
        if !self.conns[i].is_reusable() {
            // Reusing it would drop memory the kernel may still use; refuse (a shard bug).
            return Err(io::Error::other("slot still has a connection in flight"));
        }
        let fixed = slot < self.fixed_files
            && self
                .ring
                .submitter()
                .register_files_update(slot, &[fd.as_raw_fd()])
                .is_ok();
        self.conns[i] = SlotState {
            phase: SlotPhase::Open(TcpStream::from(fd)),
            id,
            fixed,
            ..SlotState::default()
        };
        self.arm_recv(slot);
        Ok(())
    }

    fn read_input<F: FnMut(&mut [u8])>(
        &mut self,
        _conn: ConnId,
        data: ProvidedBuf,
        mut on_data: F,
    ) -> bool {
        on_data(self.bufs.get_mut(data.bid, data.len as usize));
        self.bufs.recycle(data.bid);
        true
    }

    fn batch(&mut self) -> SendBatch {
        self.batch_pool.pop().unwrap_or_default()
    }

    fn send(&mut self, conn: ConnId, batch: SendBatch) {
        self.start_send(conn, batch);
    }

    fn shutdown_write(&mut self, conn: ConnId) {
        if let Some(stream) = self.state(conn).and_then(SlotState::stream) {
            let _ = stream.shutdown(Shutdown::Write);
        }
    }

    fn close(&mut self, conn: ConnId) {
        let Some(state) = self
            .conns
            .get_mut(conn.slot as usize)
            .filter(|s| s.id == conn)
        else {
            self.pending.push(Event::Closed(conn));
            return;
        };
        let Some(stream) = state.begin_close() else {
            self.pending.push(Event::Closed(conn));
            return;
        };
        // Shutting the socket down ends the multishot receive (EOF) and any blocked send.
        let _ = stream.shutdown(Shutdown::Both);
        let (recv, send) = (state.recv_armed, state.send.is_some());
        if recv {
            self.cancel(Op::Recv(conn));
        }
        if send {
            self.cancel(Op::Send(conn));
        }
        self.maybe_closed(conn.slot);
    }

    fn stop_accepting(&mut self) {
        if self.listener.take().is_some() && self.accept_armed {
            self.cancel(Op::Accept);
        }
    }

    fn socket(&self, conn: ConnId) -> Option<BorrowedFd<'_>> {
        self.state(conn)
            .and_then(SlotState::stream)
            .map(AsFd::as_fd)
    }
}

impl UringDriver {
    /// The slot of `conn`, if it still holds that connection.
    fn state(&self, conn: ConnId) -> Option<&SlotState> {
        self.conns.get(conn.slot as usize).filter(|s| s.id == conn)
    }
}
