//! Queuing operations: pushing SQEs (submitting when the queue is full, reaping when the kernel
//! is busy), submitting and waiting, reaping, and arming the accept, the wake-up read, receives
//! and sends. Completions are applied in completion.rs.

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types};

use super::bufring::GROUP;
use super::inflight::{InflightSend, SlotPhase};
use super::user_data::Op;
use super::{UringDriver, SUBMIT_STALL_LIMIT_MS};
use crate::conn::SendBatch;
use crate::conn_id::{ConnId, Slot};
use crate::driver::Event;

impl UringDriver {
    /// Submits the queued SQEs and waits for one completion, at most `timeout` (`None`: no
    /// limit). A timeout (ETIME), a signal (EINTR) and a full completion queue (EBUSY/EAGAIN,
    /// which reaping makes room in) are not errors: the caller reaps next either way.
    pub(super) fn submit_and_wait(&mut self, timeout: Option<&types::Timespec>) -> io::Result<()> {
        let args = types::SubmitArgs::new();
        let result = match timeout {
            Some(ts) => self
                .ring
                .submitter()
                .submit_with_args(1, &args.timespec(ts)),
            None => self.ring.submitter().submit_with_args(1, &args),
        };
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Queues one SQE. When the submission queue is full it is submitted; when the kernel is
    /// busy (EBUSY: its completion queue is full, or EAGAIN) completions are reaped into
    /// `pending` to make room, then it retries. Fails only if the queue stays stuck for
    /// [`SUBMIT_STALL_LIMIT_MS`] or the ring is broken; the operation is then not queued.
    ///
    /// Never called from `on_completion`: a reap nested in a reap would reorder events.
    ///
    /// # Safety
    /// Every buffer `entry` points at must stay valid until its final completion is reaped.
    pub(super) unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        let mut stalled_ms = 0;
        loop {
            // SAFETY: the caller guarantees the entry's buffers outlive the operation.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                self.in_flight += 1;
                return Ok(());
            }
            match self.ring.submit() {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EAGAIN)) => {}
                Err(e) => return Err(e),
            }
            if self.reap() == 0 {
                if stalled_ms >= SUBMIT_STALL_LIMIT_MS {
                    return Err(io::Error::other("io_uring submission queue stuck"));
                }
                stalled_ms += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Moves every posted completion into `pending`; returns how many there were.
    pub(super) fn reap(&mut self) -> usize {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        let n = cqes.len();
        for &(user_data, res, flags) in &cqes {
            self.on_completion(user_data, res, flags);
        }
        cqes.clear();
        self.cqes = cqes;
        n
    }

    pub(super) fn arm(&mut self, now: Instant) {
        if std::mem::take(&mut self.cancel_accept) && self.accept_armed {
            self.cancel(Op::Accept);
        }
        if !self.accept_armed && self.accept_gate.is_open(now) {
            if let Some(listener) = &self.listener {
                let entry = opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd()))
                    .flags(libc::SOCK_CLOEXEC)
                    .build()
                    .user_data(Op::Accept.encode());
                // SAFETY: multishot accept points at no memory.
                match unsafe { self.push(&entry) } {
                    Ok(()) => self.accept_armed = true,
                    Err(e) => tracing::debug!(error = %e, "could not arm accept"),
                }
            }
        }
        if !self.wake_armed {
            let entry =
                opcode::Read::new(types::Fd(self.waker.as_raw_fd()), self.wake_buf.cast(), 8)
                    .build()
                    .user_data(Op::Wake.encode());
            // SAFETY: `wake_buf` is owned by the driver and freed in `Drop` only once no
            // operation is in flight.
            match unsafe { self.push(&entry) } {
                Ok(()) => self.wake_armed = true,
                Err(e) => tracing::debug!(error = %e, "could not arm the wake-up read"),
            }
        }
        while let Some(slot) = self.rearm_recv.pop() {
            self.arm_recv(slot);
        }
    }

    pub(super) fn arm_recv(&mut self, slot: Slot) {
        let Some(state) = self.conns.get_mut(slot as usize) else {
            return;
        };
        let SlotPhase::Open(stream) = &state.phase else {
            return;
        };
        if state.recv_armed {
            return;
        }
        let entry = if state.fixed {
            opcode::RecvMulti::new(types::Fixed(slot), GROUP).build()
        } else {
            opcode::RecvMulti::new(types::Fd(stream.as_raw_fd()), GROUP).build()
        }
        .user_data(Op::Recv(state.id).encode());
        // SAFETY: multishot receive writes only into provided buffers, owned by `bufs` (freed
        // after the ring stopped using them).
        match unsafe { self.push(&entry) } {
            Ok(()) => self.conns[slot as usize].recv_armed = true,
            Err(_) => self
                .pending
                .push(Event::PeerClosed(self.conns[slot as usize].id)),
        }
    }

    /// Asks the kernel to cancel `op` (whose completion then reports `-ECANCELED`).
    pub(super) fn cancel(&mut self, op: Op) {
        let entry = opcode::AsyncCancel::new(op.encode())
            .build()
            .user_data(Op::Cancel.encode());
        // SAFETY: a cancel request points at no memory.
        if let Err(e) = unsafe { self.push(&entry) } {
            tracing::debug!(error = %e, ?op, "could not queue a cancel");
        }
    }

    /// Queues one vectored send of `batch` on `id` (`SEND` for one buffer, `SENDMSG` for more),
    /// or reports at once why it cannot go.
    pub(super) fn start_send(&mut self, id: ConnId, batch: SendBatch) {
        let slot = id.slot;
        let Some(state) = self.conns.get_mut(slot as usize).filter(|s| s.id == id) else {
            return self.refuse_send(id, batch, io::ErrorKind::NotConnected.into());
        };
        let Some(stream) = state.stream() else {
            return self.refuse_send(id, batch, io::ErrorKind::NotConnected.into());
        };
        if state.send.is_some() {
            let error = io::Error::other("a send is already in flight");
            return self.refuse_send(id, batch, error);
        }
        let (fd, fixed) = (stream.as_raw_fd(), state.fixed);
        let mut inflight = self.send_pool.pop().unwrap_or_else(InflightSend::new);
        let mut count = 0;
        for (dst, src) in inflight.iov.iter_mut().zip(batch.slices()) {
            *dst = libc::iovec {
                iov_base: src.as_ptr().cast_mut().cast(),
                iov_len: src.len(),
            };
            count += 1;
        }
        inflight.batch = batch;
        inflight.msg.msg_iov = inflight.iov.as_mut_ptr();
        inflight.msg.msg_iovlen = count;
        let (buf, len) = (
            inflight.iov[0].iov_base.cast_const().cast(),
            inflight.iov[0].iov_len,
        );
        let entry = match (count, fixed) {
            // One buffer (the common case: one tick of one channel): a plain send skips the
            // kernel's msghdr copy and iovec import.
            (1, true) => opcode::Send::new(types::Fixed(slot), buf, len as u32)
                .flags(libc::MSG_NOSIGNAL)
                .build(),
            (1, false) => opcode::Send::new(types::Fd(fd), buf, len as u32)
                .flags(libc::MSG_NOSIGNAL)
                .build(),
            (_, true) => opcode::SendMsg::new(types::Fixed(slot), &inflight.msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build(),
            (_, false) => opcode::SendMsg::new(types::Fd(fd), &inflight.msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build(),
        }
        .user_data(Op::Send(id).encode());
        // The box moves into the slot before the push: its heap address (which the entry holds)
        // does not change, and a reap inside `push` cannot complete an operation not yet queued.
        self.conns[slot as usize].send = Some(inflight);
        // SAFETY: the header, gather list and frames live in the boxed `InflightSend` held in
        // `conns[slot].send` until this operation's completion is reaped (completion.rs), or
        // for ever if `Drop` could not reap it (shutdown.rs).
        if let Err(e) = unsafe { self.push(&entry) } {
            // Not queued: the kernel never saw the entry, so the memory is ours again.
            if let Some(mut inflight) = self.conns[slot as usize].send.take() {
                let batch = std::mem::take(&mut inflight.batch);
                self.send_pool.push(inflight);
                self.refuse_send(id, batch, e);
            }
        }
    }

    /// A send that never reached the kernel: the batch goes back to the pool and its
    /// [`Event::Sent`] reports `error` at the next `wait`.
    fn refuse_send(&mut self, id: ConnId, mut batch: SendBatch, error: io::Error) {
        batch.clear();
        self.batch_pool.push(batch);
        self.pending.push(Event::Sent {
            conn: id,
            result: Err(error),
        });
    }
}
