//! The io_uring backend, driven with the maintained `io-uring` crate in framecast's own loop
//! (not tokio-uring, which is unmaintained and has neither multishot receive nor provided-buffer
//! rings). Per shard: one ring set up with SINGLE_ISSUER + DEFER_TASKRUN where the kernel has
//! them, a multishot accept on the shard's listener, a multishot receive per connection into a
//! provided-buffer ring, at most one `sendmsg` per connection in flight, and a read on the
//! wake-up eventfd. Every buffer an operation points at is owned here until its last completion.
//! Connections are also entered in the ring's registered-file table (slot = index), so sends and
//! receives skip the kernel's per-operation descriptor lookup (`fget`/`fput`).

mod bufring;
mod user_data;

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::{Driver, Event, EventFd, SendBatch, SendStatus, Slot};
use crate::config::limits::{
    MAX_IOVECS_PER_SEND, RECV_BUFFERS_PER_SHARD, RECV_BUFFER_BYTES, SENDS_PER_TURN,
};
use bufring::{BufRing, GROUP};
use user_data::Op;

const SQ_ENTRIES: u32 = 4096;
const CQ_ENTRIES: u32 = 16384;
/// Most registered-file slots per ring (also bounded by RLIMIT_NOFILE); connections in higher
/// slots use their plain descriptor.
const MAX_FIXED_FILES: u32 = 65_536;

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
    BufRing::new(&ring, 2, 64).map(drop)
}

/// A send in flight: the message header and gather list the kernel reads, and the frames they
/// point into. Boxed so its address is stable; pooled so sends do not allocate.
struct InflightSend {
    msg: libc::msghdr,
    iov: [libc::iovec; MAX_IOVECS_PER_SEND],
    batch: SendBatch,
}

#[derive(Default)]
struct SlotState {
    stream: Option<TcpStream>,
    /// The socket is in the registered-file table at index `slot`.
    fixed: bool,
    recv_armed: bool,
    send: Option<Box<InflightSend>>,
    closing: bool,
}

/// A shard's io_uring loop. Field order matters: the ring is dropped before the buffers that
/// its operations point at.
pub struct UringDriver {
    ring: IoUring,
    bufs: BufRing,
    wake_buf: Box<u64>,
    waker: Arc<EventFd>,
    listener: Option<TcpListener>,
    accept_armed: bool,
    wake_armed: bool,
    conns: Vec<SlotState>,
    /// Size of the registered-file table (0 when the kernel refused one).
    fixed_files: u32,
    rearm_recv: Vec<Slot>,
    pending: Vec<Event>,
    cqes: Vec<(u64, i32, u32)>,
    batch_pool: Vec<SendBatch>,
    /// Boxed on purpose: a kernel operation holds the address of a box taken from here, so
    /// the pool may grow and shrink without moving any in-flight header.
    #[allow(clippy::vec_box)]
    send_pool: Vec<Box<InflightSend>>,
}

impl UringDriver {
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
            ring,
            bufs,
            wake_buf: Box::new(0),
            waker,
            listener: Some(listener),
            accept_armed: false,
            wake_armed: false,
            conns: Vec::new(),
            fixed_files,
            rearm_recv: Vec::new(),
            pending: Vec::new(),
            cqes: Vec::with_capacity(1024),
            batch_pool: Vec::new(),
            send_pool: Vec::new(),
        })
    }

    /// Queues one SQE, submitting first if the queue is full.
    ///
    /// # Safety
    /// Every buffer `entry` points at must stay valid until its final completion is reaped.
    unsafe fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: the caller guarantees the entry's buffers outlive the operation.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
            if let Err(e) = self.ring.submit() {
                tracing::warn!(error = %e, "io_uring submit failed while the queue was full");
            }
        }
    }

    fn arm(&mut self) {
        if !self.accept_armed {
            if let Some(listener) = &self.listener {
                let entry = opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd()))
                    .flags(libc::SOCK_CLOEXEC)
                    .build()
                    .user_data(Op::Accept.encode());
                // SAFETY: multishot accept points at no memory.
                unsafe { self.push(entry) };
                self.accept_armed = true;
            }
        }
        if !self.wake_armed {
            let buf: *mut u64 = &mut *self.wake_buf;
            let entry = opcode::Read::new(types::Fd(self.waker.as_raw_fd()), buf.cast(), 8)
                .build()
                .user_data(Op::Wake.encode());
            // SAFETY: `wake_buf` is boxed, owned by the driver and dropped after the ring.
            unsafe { self.push(entry) };
            self.wake_armed = true;
        }
        let rearm = std::mem::take(&mut self.rearm_recv);
        for &slot in &rearm {
            self.arm_recv(slot);
        }
        self.rearm_recv = rearm;
        self.rearm_recv.clear();
    }

    fn arm_recv(&mut self, slot: Slot) {
        let Some(state) = self.conns.get_mut(slot as usize) else {
            return;
        };
        let Some(stream) = &state.stream else { return };
        if state.recv_armed || state.closing {
            return;
        }
        state.recv_armed = true;
        let entry = if state.fixed {
            opcode::RecvMulti::new(types::Fixed(slot), GROUP).build()
        } else {
            opcode::RecvMulti::new(types::Fd(stream.as_raw_fd()), GROUP).build()
        }
        .user_data(Op::Recv(slot).encode());
        // SAFETY: multishot receive writes only into provided buffers, owned by `bufs`.
        unsafe { self.push(entry) };
    }

    fn on_completion(&mut self, user_data: u64, res: i32, flags: u32, out: &mut Vec<Event>) {
        let more = cqueue::more(flags);
        match Op::decode(user_data) {
            Some(Op::Accept) => {
                if !more {
                    self.accept_armed = false;
                }
                if res >= 0 {
                    // SAFETY: a successful accept returns a new descriptor that we now own.
                    let stream = unsafe { TcpStream::from_raw_fd(res) };
                    let _ = stream.set_nodelay(true);
                    out.push(Event::Accepted(OwnedFd::from(stream)));
                } else if res != -libc::ECANCELED {
                    tracing::warn!(error = %io::Error::from_raw_os_error(-res), "accept failed");
                }
            }
            Some(Op::Recv(slot)) => {
                let bid = cqueue::buffer_select(flags);
                let Some(state) = self.conns.get_mut(slot as usize) else {
                    return;
                };
                if !more {
                    state.recv_armed = false;
                }
                match (res, bid) {
                    (n, Some(bid)) if n > 0 => out.push(Event::Input {
                        slot,
                        token: (u32::from(bid) << 16) | n as u32,
                    }),
                    (0, _) => out.push(Event::PeerClosed(slot)),
                    (e, _) if e == -libc::ENOBUFS => {}
                    (e, _) if e < 0 && !state.closing => out.push(Event::PeerClosed(slot)),
                    _ => {}
                }
                if !more && res != 0 && !state.closing {
                    self.rearm_recv.push(slot);
                }
                self.maybe_closed(slot);
            }
            Some(Op::Send(slot)) => {
                let Some(state) = self.conns.get_mut(slot as usize) else {
                    return;
                };
                if let Some(mut inflight) = state.send.take() {
                    let mut batch = std::mem::take(&mut inflight.batch);
                    batch.clear();
                    // Keep at most one turn's worth of spares: a burst of sends (a connect storm,
                    // a wide fan-out) must not leave ~1 KiB per past send resident for good.
                    if self.send_pool.len() < SENDS_PER_TURN {
                        self.batch_pool.push(batch);
                        self.send_pool.push(inflight);
                    }
                }
                let result = if res >= 0 {
                    Ok(res as usize)
                } else {
                    Err(io::Error::from_raw_os_error(-res))
                };
                out.push(Event::Sent { slot, result });
                self.maybe_closed(slot);
            }
            Some(Op::Wake) => {
                self.wake_armed = false;
                out.push(Event::Wake);
            }
            Some(Op::Cancel) | None => {}
        }
    }

    /// Finishes a close once nothing of the slot is in flight.
    fn maybe_closed(&mut self, slot: Slot) {
        let Some(state) = self.conns.get_mut(slot as usize) else {
            return;
        };
        if state.closing && !state.recv_armed && state.send.is_none() && state.stream.is_some() {
            if std::mem::take(&mut state.fixed) {
                // The table holds its own reference to the socket: drop it, or it stays open.
                let _ = self.ring.submitter().register_files_update(slot, &[-1]);
            }
            state.stream = None;
            state.closing = false;
            self.pending.push(Event::Closed(slot));
        }
    }
}

impl Driver for UringDriver {
    fn name(&self) -> &'static str {
        "io_uring"
    }

    fn wait(&mut self, timeout: Option<Duration>, out: &mut Vec<Event>) -> io::Result<()> {
        self.arm();
        let timeout = if self.pending.is_empty() {
            timeout
        } else {
            Some(Duration::ZERO)
        };
        let ts = timeout.map(|t| {
            types::Timespec::new()
                .sec(t.as_secs())
                .nsec(t.subsec_nanos())
        });
        let args = types::SubmitArgs::new();
        let result = match &ts {
            Some(ts) => self
                .ring
                .submitter()
                .submit_with_args(1, &args.timespec(ts)),
            None => self.ring.submitter().submit_with_args(1, &args),
        };
        match result {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) => {}
            Err(e) => return Err(e),
        }
        out.append(&mut self.pending);
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &(user_data, res, flags) in &cqes {
            self.on_completion(user_data, res, flags, out);
        }
        cqes.clear();
        self.cqes = cqes;
        out.append(&mut self.pending);
        Ok(())
    }

    fn register(&mut self, slot: Slot, fd: OwnedFd) -> io::Result<()> {
        let i = slot as usize;
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, SlotState::default);
        }
        debug_assert!(self.conns[i].stream.is_none(), "slot reused while open");
        let fixed = slot < self.fixed_files
            && self
                .ring
                .submitter()
                .register_files_update(slot, &[fd.as_raw_fd()])
                .is_ok();
        self.conns[i] = SlotState {
            stream: Some(TcpStream::from(fd)),
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
        let Some(stream) = &state.stream else {
            return SendStatus::Failed(io::ErrorKind::NotConnected.into());
        };
        let fd = stream.as_raw_fd();
        debug_assert!(state.send.is_none(), "one send in flight per connection");
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
        let entry = match (count, state.fixed) {
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
        .user_data(Op::Send(slot).encode());
        state.send = Some(inflight);
        // SAFETY: the header, gather list and frames live in the boxed `InflightSend` held in
        // `state.send` until this operation's completion is reaped.
        unsafe { self.push(entry) };
        SendStatus::InFlight
    }

    fn shutdown_write(&mut self, slot: Slot) {
        if let Some(SlotState {
            stream: Some(stream),
            ..
        }) = self.conns.get(slot as usize)
        {
            let _ = stream.shutdown(Shutdown::Write);
        }
    }

    fn close(&mut self, slot: Slot) {
        let Some(state) = self.conns.get_mut(slot as usize) else {
            self.pending.push(Event::Closed(slot));
            return;
        };
        let Some(stream) = &state.stream else {
            self.pending.push(Event::Closed(slot));
            return;
        };
        state.closing = true;
        // Shutting the socket down ends the multishot receive (EOF) and any blocked send.
        let _ = stream.shutdown(Shutdown::Both);
        let (recv, send) = (state.recv_armed, state.send.is_some());
        for (active, op) in [(recv, Op::Recv(slot)), (send, Op::Send(slot))] {
            if active {
                let entry = opcode::AsyncCancel::new(op.encode())
                    .build()
                    .user_data(Op::Cancel.encode());
                // SAFETY: a cancel request points at no memory.
                unsafe { self.push(entry) };
            }
        }
        self.maybe_closed(slot);
    }

    fn stop_accepting(&mut self) {
        if self.listener.take().is_some() && self.accept_armed {
            let entry = opcode::AsyncCancel::new(Op::Accept.encode())
                .build()
                .user_data(Op::Cancel.encode());
            // SAFETY: a cancel request points at no memory.
            unsafe { self.push(entry) };
        }
    }
}

/// Registered-file table size: [`MAX_FIXED_FILES`], or fewer under a lower RLIMIT_NOFILE (the
/// kernel refuses a bigger table).
fn fixed_file_capacity() -> u32 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    limit.rlim_cur.min(u64::from(MAX_FIXED_FILES)) as u32
}

impl Drop for UringDriver {
    fn drop(&mut self) {
        // Cancel what is still armed and reap briefly, so the kernel lets go of our buffers
        // before the ring (and then the buffers) are dropped.
        for op in [Op::Accept, Op::Wake] {
            let entry = opcode::AsyncCancel::new(op.encode())
                .build()
                .user_data(Op::Cancel.encode());
            // SAFETY: a cancel request points at no memory.
            unsafe { self.push(entry) };
        }
        let ts = types::Timespec::new().nsec(50_000_000);
        let _ = self
            .ring
            .submitter()
            .submit_with_args(2, &types::SubmitArgs::new().timespec(&ts));
        self.ring.completion().for_each(drop);
    }
}
