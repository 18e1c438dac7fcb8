//! Setting a ring up: the startup probe (can this kernel, under this seccomp profile, run
//! framecast's io_uring backend at all?) and a shard's ring, buffer ring and registered-file
//! table.

use std::io;
use std::mem::ManuallyDrop;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use io_uring::{opcode, IoUring};

use super::bufring::BufRing;
use super::{UringDriver, CQ_ENTRIES, MAX_FIXED_FILES, SQ_ENTRIES};
use crate::driver::accept::AcceptGate;
use crate::driver::EventFd;
use crate::limits::{RECV_BUFFERS_PER_SHARD, RECV_BUFFER_BYTES};
use crate::log_limit::LogLimiter;

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

impl UringDriver {
    /// Sets up the ring (with SINGLE_ISSUER + DEFER_TASKRUN when available) on the calling
    /// thread, which must be the only one to use it.
    pub(crate) fn new(listener: TcpListener, waker: Arc<EventFd>) -> io::Result<UringDriver> {
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
}

/// Registered-file table size: [`MAX_FIXED_FILES`], or fewer under a lower RLIMIT_NOFILE (the
/// kernel refuses a bigger table).
fn fixed_file_capacity() -> u32 {
    crate::driver::fd_limit::current().map_or(0, |l| l.soft.min(u64::from(MAX_FIXED_FILES)) as u32)
}
