//! The io_uring backend, driven with the maintained `io-uring` crate in framecast's own loop
//! (not tokio-uring, which is unmaintained and has neither multishot receive nor provided-buffer
//! rings). Per shard: one ring set up with SINGLE_ISSUER + DEFER_TASKRUN where the kernel has
//! them, a multishot accept on the shard's listener, a multishot receive per connection into a
//! provided-buffer ring, at most one `sendmsg` per connection in flight, and a read on the
//! wake-up eventfd. Connections are also entered in the ring's registered-file table
//! (slot = index), so sends and receives skip the kernel's per-operation descriptor lookup.
//!
//! Ownership: every byte an operation points at is owned by the driver until that operation's
//! final completion (the one without `IORING_CQE_F_MORE`) is reaped: send headers, gather lists
//! and frames in a boxed [`InflightSend`] held by the slot, receive buffers in the [`BufRing`],
//! the eventfd's read buffer here. `in_flight` counts operations queued and not finally
//! completed; `Drop` (shutdown.rs) cancels them all and reaps until it is 0, and only then
//! lets the memory go.
//!
//! Files: `completion.rs` applies completions, `shutdown.rs` is the drop order, `user_data.rs`
//! packs (kind, slot, generation), `bufring.rs` owns the receive buffers.

mod bufring;
mod completion;
mod shutdown;
#[cfg(test)]
mod tests;
mod user_data;

use std::io;
use std::mem::ManuallyDrop;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};

use super::accept::AcceptGate;
use super::{Driver, Event, EventFd, SendBatch, SendStatus, Slot};
use crate::limits::{MAX_IOVECS_PER_SEND, RECV_BUFFERS_PER_SHARD, RECV_BUFFER_BYTES};
use crate::log_limit::LogLimiter;
use bufring::{BufRing, GROUP};
use user_data::{ConnTag, Gen, Op};

const SQ_ENTRIES: u32 = 4096;
const CQ_ENTRIES: u32 = 16384;
/// Most registered-file slots per ring (also bounded by RLIMIT_NOFILE); connections in higher
/// slots use their plain descriptor.
const MAX_FIXED_FILES: u32 = 65_536;
/// How long [`UringDriver::push`] lets a full submission queue stay stuck (nothing submitted,
/// nothing to reap) before it gives up on the operation, in 1 ms naps.
const SUBMIT_STALL_LIMIT_MS: u32 = 1000;

/// Checks that this kernel (and any seccomp profile) lets framecast use io_uring: a ring can be
/// created, every opcode used is supported, and a provided-buffer ring can be registered.
pub fn probe() -> io::Result<()> {
    let ring = IoUring::new(8)?;
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    for (code, name) in [
        (opcode::AcceptMulti::CODE, "accept"),
        (opcode::RecvMulti::CODE, "recv"),
        (opcode::SendMsg::CODE, "sendmsg"),
        (opcode::Send::CODE, "send"),
        (opcode::Read::CODE, "read"),
        (opcode::AsyncCancel::CODE, "async cancel"),
    ] {
        if !probe.is_supported(code) {
            return Err(io::Error::other(format!(
                "io_uring lacks the {name} opcode"
            )));
        }
    }
    if !ring.params().is_feature_ext_arg() {
        return Err(io::Error::other("io_uring lacks EXT_ARG (kernel 5.11+)"));
    }
    // Unregistered before it is dropped (while `ring` still lives), so its memory is freed;
    // had unregistering failed, dropping it would leak the memory instead.
    let mut bufs = BufRing::new(&ring, 2, 64)?;
    bufs.unregister(&ring)
}

/// A send in flight: the message header and gather list the kernel reads, and the frames they
/// point into. Boxed so its address is stable; pooled so sends do not allocate.
struct InflightSend {
    msg: libc::msghdr,
    iov: [libc::iovec; MAX_IOVECS_PER_SEND],
    batch: SendBatch,
}

/// One slot's bookkeeping: its connection's lifecycle ([`SlotPhase`]) and the two operations
/// that can be in flight for it (the multishot receive and one send).
#[derive(Default)]
struct SlotState {
    phase: SlotPhase,
    /// Bumped on every `register`; travels in `user_data` so a stale completion is caught.
    gen: Gen,
    /// The socket is in the registered-file table at index `slot`.
    fixed: bool,
    recv_armed: bool,
    send: Option<Box<InflightSend>>,
}

/// Where a slot's connection is in its life. A slot is reused (`register`) only from `Free`,
/// and becomes `Free` again (`maybe_closed`) only once nothing of it is in flight.
#[derive(Default)]
enum SlotPhase {
    /// No connection (never used, or closed and reported `Closed`).
    #[default]
    Free,
    /// Serving: receives are re-armed, sends accepted.
    Open(TcpStream),
    /// `close` (or shutdown) began: the socket is shut down and its operations cancelled; it is
    /// closed once their completions are reaped.
    Closing(TcpStream),
}

impl SlotState {
    fn tag(&self, slot: Slot) -> ConnTag {
        ConnTag::new(slot, self.gen)
    }

    /// The socket, open or closing.
    fn stream(&self) -> Option<&TcpStream> {
        match &self.phase {
            SlotPhase::Free => None,
            SlotPhase::Open(stream) | SlotPhase::Closing(stream) => Some(stream),
        }
    }

    fn is_closing(&self) -> bool {
        matches!(self.phase, SlotPhase::Closing(_))
    }

    /// Moves an open (or already closing) connection to `Closing`; returns its socket, or
    /// `None` for a free slot.
    fn begin_close(&mut self) -> Option<&TcpStream> {
        self.phase = match std::mem::take(&mut self.phase) {
            SlotPhase::Open(stream) | SlotPhase::Closing(stream) => SlotPhase::Closing(stream),
            SlotPhase::Free => SlotPhase::Free,
        };
        self.stream()
    }
}

/// A shard's io_uring loop.
pub struct UringDriver {
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
    pending: Vec<Event>,
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

impl UringDriver {
    /// Submits the queued SQEs and waits for one completion, at most `timeout` (`None`: no
    /// limit). A timeout (ETIME), a signal (EINTR) and a full completion queue (EBUSY/EAGAIN,
    /// which reaping makes room in) are not errors: the caller reaps next either way.
    fn submit_and_wait(&mut self, timeout: Option<&types::Timespec>) -> io::Result<()> {
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

    /// Sets up the ring (with SINGLE_ISSUER + DEFER_TASKRUN when available) on the calling
    /// thread, which must be the only one to use it.
    pub fn new(listener: TcpListener, waker: Arc<EventFd>) -> io::Result<UringDriver> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_cqsize(CQ_ENTRIES)
            .setup_submit_all()
            .build(SQ_ENTRIES)
            .or_else(|_| {
                IoUring::builder()
                    .setup_cqsize(CQ_ENTRIES)
                    .build(SQ_ENTRIES)
            })?;
        let bufs = BufRing::new(&ring, RECV_BUFFERS_PER_SHARD, RECV_BUFFER_BYTES)?;
        let fixed_files = fixed_file_capacity();
        let fixed_files = match ring.submitter().register_files_sparse(fixed_files) {
            Ok(()) => fixed_files,
            Err(e) => {
                tracing::debug!(error = %e, "no registered-file table; using plain descriptors");
                0
            }
        };
        Ok(UringDriver {
            ring: ManuallyDrop::new(ring),
            bufs,
            wake_buf: Box::into_raw(Box::new(0)),
            waker,
            listener: Some(listener),
            accept_armed: false,
            cancel_accept: false,
            accept_gate: AcceptGate::default(),
            wake_armed: false,
            conns: Vec::new(),
            fixed_files,
            rearm_recv: Vec::new(),
            pending: Vec::new(),
            cqes: Vec::with_capacity(1024),
            in_flight: 0,
            stale_completions: 0,
            stale_log: LogLimiter::new(Duration::from_secs(10)),
            batch_pool: Vec::new(),
            send_pool: Vec::new(),
        })
    }

    /// Operations queued or in the kernel whose final completion has not been reaped.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Completions dropped because their slot had been reused since (none is expected).
    pub fn stale_completions(&self) -> u64 {
        self.stale_completions
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
    unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
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
    fn reap(&mut self) -> usize {
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

    fn arm(&mut self, now: Instant) {
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

    fn arm_recv(&mut self, slot: Slot) {
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
        .user_data(Op::Recv(state.tag(slot)).encode());
        // SAFETY: multishot receive writes only into provided buffers, owned by `bufs` (freed
        // after the ring stopped using them).
        match unsafe { self.push(&entry) } {
            Ok(()) => self.conns[slot as usize].recv_armed = true,
            Err(_) => self.pending.push(Event::PeerClosed(slot)),
        }
    }

    /// Asks the kernel to cancel `op` (whose completion then reports `-ECANCELED`).
    fn cancel(&mut self, op: Op) {
        let entry = opcode::AsyncCancel::new(op.encode())
            .build()
            .user_data(Op::Cancel.encode());
        // SAFETY: a cancel request points at no memory.
        if let Err(e) = unsafe { self.push(&entry) } {
            tracing::debug!(error = %e, ?op, "could not queue a cancel");
        }
    }
}

impl Driver for UringDriver {
    fn name(&self) -> &'static str {
        "io_uring"
    }

    fn wait(&mut self, timeout: Option<Duration>, out: &mut Vec<Event>) -> io::Result<()> {
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

    fn register(&mut self, slot: Slot, fd: OwnedFd) -> io::Result<()> {
        let i = slot as usize;
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, SlotState::default);
        }
        let old = &self.conns[i];
        if !matches!(old.phase, SlotPhase::Free) || old.recv_armed || old.send.is_some() {
            // Reusing it would drop memory the kernel may still use; refuse (a shard bug).
            return Err(io::Error::other("slot still has a connection in flight"));
        }
        let gen = old.gen.wrapping_add(1);
        let fixed = slot < self.fixed_files
            && self
                .ring
                .submitter()
                .register_files_update(slot, &[fd.as_raw_fd()])
                .is_ok();
        self.conns[i] = SlotState {
            phase: SlotPhase::Open(TcpStream::from(fd)),
            gen,
            fixed,
            ..SlotState::default()
        };
        self.arm_recv(slot);
        Ok(())
    }

    fn read_input(&mut self, _slot: Slot, token: u32, on_data: &mut dyn FnMut(&mut [u8])) -> bool {
        let (bid, len) = ((token >> 16) as u16, (token & 0xFFFF) as usize);
        on_data(self.bufs.get_mut(bid, len));
        self.bufs.recycle(bid);
        true
    }

    fn batch(&mut self) -> SendBatch {
        self.batch_pool.pop().unwrap_or_default()
    }

    fn send(&mut self, slot: Slot, batch: SendBatch) -> SendStatus {
        let Some(state) = self.conns.get_mut(slot as usize) else {
            return SendStatus::Failed(io::ErrorKind::NotConnected.into());
        };
        let Some(stream) = state.stream() else {
            return SendStatus::Failed(io::ErrorKind::NotConnected.into());
        };
        if state.send.is_some() {
            return SendStatus::Failed(io::Error::other("a send is already in flight"));
        }
        let fd = stream.as_raw_fd();
        let (fixed, tag) = (state.fixed, state.tag(slot));
        let mut inflight = self.send_pool.pop().unwrap_or_else(|| {
            Box::new(InflightSend {
                // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
                msg: unsafe { std::mem::zeroed() },
                iov: [libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                }; MAX_IOVECS_PER_SEND],
                batch: SendBatch::default(),
            })
        });
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
        .user_data(Op::Send(tag).encode());
        // The box moves into the slot before the push: its heap address (which the entry holds)
        // does not change, and a reap inside `push` cannot complete an operation not yet queued.
        self.conns[slot as usize].send = Some(inflight);
        // SAFETY: the header, gather list and frames live in the boxed `InflightSend` held in
        // `conns[slot].send` until this operation's completion is reaped (completion.rs), or
        // for ever if `Drop` could not reap it (shutdown.rs).
        match unsafe { self.push(&entry) } {
            Ok(()) => SendStatus::InFlight,
            Err(e) => {
                // Not queued: the kernel never saw the entry, so the memory is ours again.
                if let Some(mut inflight) = self.conns[slot as usize].send.take() {
                    inflight.batch.clear();
                    self.send_pool.push(inflight);
                }
                SendStatus::Failed(e)
            }
        }
    }

    fn shutdown_write(&mut self, slot: Slot) {
        if let Some(stream) = self.conns.get(slot as usize).and_then(SlotState::stream) {
            let _ = stream.shutdown(Shutdown::Write);
        }
    }

    fn close(&mut self, slot: Slot) {
        let Some(state) = self.conns.get_mut(slot as usize) else {
            self.pending.push(Event::Closed(slot));
            return;
        };
        let Some(stream) = state.begin_close() else {
            self.pending.push(Event::Closed(slot));
            return;
        };
        // Shutting the socket down ends the multishot receive (EOF) and any blocked send.
        let _ = stream.shutdown(Shutdown::Both);
        let tag = state.tag(slot);
        let (recv, send) = (state.recv_armed, state.send.is_some());
        if recv {
            self.cancel(Op::Recv(tag));
        }
        if send {
            self.cancel(Op::Send(tag));
        }
        self.maybe_closed(slot);
    }

    fn stop_accepting(&mut self) {
        if self.listener.take().is_some() && self.accept_armed {
            self.cancel(Op::Accept);
        }
    }
}

/// Registered-file table size: [`MAX_FIXED_FILES`], or fewer under a lower RLIMIT_NOFILE (the
/// kernel refuses a bigger table).
fn fixed_file_capacity() -> u32 {
    super::fd_limit::current().map_or(0, |l| l.soft.min(u64::from(MAX_FIXED_FILES)) as u32)
}
