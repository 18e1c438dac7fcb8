//! The drop order, as code. A driver may be dropped with anything in flight: a shard whose drain
//! overran returns with connections open, and their sends (blocked on clients that stopped
//! reading) and receives are still in the kernel. So `Drop`:
//!
//! 1. stops accepting and shuts every socket down (which alone ends most operations);
//! 2. cancels every operation it knows of by `user_data`, plus a cancel-any (kernel 5.19+)
//!    for good measure, and repeats both every [`CANCEL_AGAIN_AFTER`] while any is left;
//! 3. reaps completions until `in_flight` is 0, for at most [`DRAIN_LIMIT`];
//! 4. unregisters the buffer ring, then closes the ring;
//! 5. frees the memory operations pointed at (send boxes, receive buffers, the eventfd buffer).
//!
//! If step 3 runs out of time (it takes microseconds on a healthy kernel), step 5 leaks that
//! memory instead, with an error log: a leak at shutdown is a bug report, a kernel write into
//! freed memory would be heap corruption.

use std::mem::ManuallyDrop;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use io_uring::{opcode, types};

use super::user_data::Op;
use super::UringDriver;

/// Longest `Drop` waits for cancelled operations to complete before leaking their memory.
pub(crate) const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// While operations are left, cancellations are sent again this often.
pub(crate) const CANCEL_AGAIN_AFTER: Duration = Duration::from_millis(100);

impl UringDriver {
    /// Stops everything: no more accepts, every socket shut down, every operation cancelled and
    /// its completion reaped, for at most `limit`. Returns how many operations are still in
    /// flight (0 unless the kernel did not finish in time). Events reaped meanwhile are
    /// dropped (an accepted socket among them is closed). The driver can only be dropped after.
    pub(crate) fn cancel_and_reap(&mut self, limit: Duration) -> usize {
        self.listener = None;
        for state in &mut self.conns {
            if let Some(stream) = state.begin_close() {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
        let start = Instant::now();
        let deadline = start + limit;
        let mut next_cancel = start;
        while self.in_flight > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if now >= next_cancel {
                self.cancel_all();
                next_cancel = now + CANCEL_AGAIN_AFTER;
            }
            let nap = types::Timespec::from(next_cancel.min(deadline) - now);
            if let Err(e) = self.submit_and_wait(Some(&nap)) {
                tracing::error!(error = %e, "io_uring broke while draining");
                break;
            }
            self.reap();
            self.pending.clear();
            self.rearm_recv.clear();
        }
        self.in_flight
    }

    /// Cancels every operation the driver tracks, then anything else (cancel-any; a kernel
    /// older than 5.19 answers it with -EINVAL, which is harmless).
    fn cancel_all(&mut self) {
        let mut ops = Vec::new();
        if self.accept_armed {
            ops.push(Op::Accept);
        }
        if self.wake_armed {
            ops.push(Op::Wake);
        }
        for state in &self.conns {
            let tag = state.id;
            if state.recv_armed {
                ops.push(Op::Recv(tag));
            }
            if state.send.is_some() {
                ops.push(Op::Send(tag));
            }
        }
        for op in ops {
            self.cancel(op);
        }
        let any = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(Op::Cancel.encode());
        // SAFETY: a cancel request points at no memory.
        let _ = unsafe { self.push(&any) };
    }
}

impl Drop for UringDriver {
    fn drop(&mut self) {
        let left = self.cancel_and_reap(DRAIN_LIMIT);
        if left == 0 {
            if let Err(e) = self.bufs.unregister(&self.ring) {
                // `bufs` then leaks its memory when dropped rather than free it.
                tracing::warn!(error = %e, "could not unregister the receive buffer ring");
            }
        } else {
            tracing::error!(
                left,
                "io_uring operations still in flight after {DRAIN_LIMIT:?}; leaking their memory"
            );
            // The kernel may still read these: never free them. (`bufs` stays registered and
            // so leaks itself; the eventfd buffer is simply not freed below.)
            for state in &mut self.conns {
                if let Some(send) = state.send.take() {
                    Box::leak(send);
                }
            }
        }
        // SAFETY: the ring is dropped exactly once, here, and not used after; the fields
        // dropped after this (buffers, send boxes, sockets) are either no longer referenced
        // by any operation (left == 0) or leaked above.
        unsafe { ManuallyDrop::drop(&mut self.ring) };
        if left == 0 {
            // SAFETY: `wake_buf` came from `Box::into_raw` in `new` and is freed only here;
            // no read into it is in flight (left == 0) and the ring is closed.
            drop(unsafe { Box::from_raw(self.wake_buf) });
        }
    }
}
