//! What a slot has in flight: its connection's lifecycle ([`SlotPhase`]), whether its multishot
//! receive is armed, and its one send, whose header, gather list and frames ([`InflightSend`])
//! the driver owns until the send's completion is reaped.

use std::net::TcpStream;

use crate::conn::SendBatch;
use crate::conn_id::ConnId;
use crate::limits::MAX_IOVECS_PER_SEND;

/// A send in flight: the message header and gather list the kernel reads, and the frames they
/// point into. Boxed so its address is stable; pooled so sends do not allocate.
pub(super) struct InflightSend {
    pub(super) msg: libc::msghdr,
    pub(super) iov: [libc::iovec; MAX_IOVECS_PER_SEND],
    pub(super) batch: SendBatch,
}

impl InflightSend {
    /// An empty one, for the pool.
    pub(super) fn new() -> Box<InflightSend> {
        Box::new(InflightSend {
            // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
            msg: unsafe { std::mem::zeroed() },
            iov: [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; MAX_IOVECS_PER_SEND],
            batch: SendBatch::default(),
        })
    }
}

/// One slot's bookkeeping: its connection's lifecycle ([`SlotPhase`]) and the two operations
/// that can be in flight for it (the multishot receive and one send).
#[derive(Default)]
pub(super) struct SlotState {
    pub(super) phase: SlotPhase,
    /// The connection's id (from `register`); travels in `user_data` so a stale completion is
    /// caught.
    pub(super) id: ConnId,
    /// The socket is in the registered-file table at index `slot`.
    pub(super) fixed: bool,
    pub(super) recv_armed: bool,
    pub(super) send: Option<Box<InflightSend>>,
}

/// Where a slot's connection is in its life. A slot is reused (`register`) only from `Free`,
/// and becomes `Free` again (`maybe_closed`) only once nothing of it is in flight.
#[derive(Default)]
pub(super) enum SlotPhase {
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
    /// The socket, open or closing.
    pub(super) fn stream(&self) -> Option<&TcpStream> {
        match &self.phase {
            SlotPhase::Free => None,
            SlotPhase::Open(stream) | SlotPhase::Closing(stream) => Some(stream),
        }
    }

    pub(super) fn is_closing(&self) -> bool {
        matches!(self.phase, SlotPhase::Closing(_))
    }

    /// Whether nothing of an earlier connection is left, so the slot can take a new one.
    pub(super) fn is_reusable(&self) -> bool {
        matches!(self.phase, SlotPhase::Free) && !self.recv_armed && self.send.is_none()
    }

    /// Moves an open (or already closing) connection to `Closing`; returns its socket, or
    /// `None` for a free slot.
    pub(super) fn begin_close(&mut self) -> Option<&TcpStream> {
        self.phase = match std::mem::take(&mut self.phase) {
            SlotPhase::Open(stream) | SlotPhase::Closing(stream) => SlotPhase::Closing(stream),
            SlotPhase::Free => SlotPhase::Free,
        };
        self.stream()
    }
}
