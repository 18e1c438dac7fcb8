//! Applying completions: each CQE updates the driver's bookkeeping, hands memory back (send
//! boxes to their pool, receive buffers to the ring) and becomes an [`Event`] in `pending`.
//! Nothing here queues an SQE (`push` reaps, and a reap inside a reap would reorder events);
//! what needs one is left for `arm`.

use std::io;
use std::net::TcpStream;
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Instant;

use io_uring::cqueue;

use super::inflight::{SlotPhase, SlotState};
use super::user_data::Op;
use super::{ProvidedBuf, UringDriver};
use crate::conn_id::{ConnId, Slot};
use crate::driver::Event;
use crate::limits::SENDS_PER_TURN;

impl UringDriver {
    /// Applies one completion (`user_data` names the operation, `res` and `flags` are the
    /// CQE's): the entry point of this module, called for every CQE `reap` takes. It only
    /// updates state and queues events; re-arming is left for `arm`.
    pub(super) fn on_completion(&mut self, user_data: u64, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        if !more {
            debug_assert!(self.in_flight > 0, "a final completion nobody waited for");
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        match Op::decode(user_data) {
            Some(Op::Accept) => self.on_accept(res, more),
            Some(Op::Recv(tag)) => self.on_recv(tag, res, flags, more),
            Some(Op::Send(tag)) => self.on_send(tag, res),
            Some(Op::Wake) => {
                self.wake_armed = false;
                self.pending.push(Event::Wake);
            }
            Some(Op::Cancel) | None => {}
        }
    }

    fn on_accept(&mut self, res: i32, more: bool) {
        if !more {
            self.accept_armed = false;
        }
        if res >= 0 {
            // SAFETY: a successful accept returns a new descriptor that we now own.
            let stream = unsafe { TcpStream::from_raw_fd(res) };
            let _ = stream.set_nodelay(true);
            self.accept_gate.on_success();
            self.pending.push(Event::Accepted(OwnedFd::from(stream)));
        } else if res != -libc::ECANCELED {
            let error = io::Error::from_raw_os_error(-res);
            // Recent kernels end a multishot accept on any error; older ones may keep it
            // armed, and it would fail again at once: cancel it (from `arm`, see module doc).
            if self
                .accept_gate
                .on_error(&error, "io_uring", Instant::now())
                && more
            {
                self.cancel_accept = true;
            }
        }
    }

    fn on_recv(&mut self, tag: ConnId, res: i32, flags: u32, more: bool) {
        let bid = cqueue::buffer_select(flags);
        let Some(state) = self.live(tag) else {
            if let Some(bid) = bid {
                self.bufs.recycle(bid);
            }
            self.count_stale(Op::Recv(tag));
            return;
        };
        if !more {
            state.recv_armed = false;
        }
        let (slot, closing) = (tag.slot, state.is_closing());
        match (res, bid) {
            (n, Some(bid)) if n > 0 => self.pending.push(Event::Input {
                conn: tag,
                data: ProvidedBuf { bid, len: n as u32 },
            }),
            (0, _) => self.pending.push(Event::PeerClosed(tag)),
            (e, _) if e == -libc::ENOBUFS => {}
            (e, _) if e < 0 && !closing => self.pending.push(Event::PeerClosed(tag)),
            _ => {}
        }
        if !more && res != 0 && !closing {
            self.rearm_recv.push(slot);
        }
        self.maybe_closed(slot);
    }

    fn on_send(&mut self, tag: ConnId, res: i32) {
        let Some(state) = self.live(tag) else {
            self.count_stale(Op::Send(tag));
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
        self.pending.push(Event::Sent { conn: tag, result });
        self.maybe_closed(tag.slot);
    }

    /// The slot `tag` names, if it still holds that generation's connection.
    fn live(&mut self, tag: ConnId) -> Option<&mut SlotState> {
        self.conns
            .get_mut(tag.slot as usize)
            .filter(|s| s.id == tag)
    }

    fn count_stale(&mut self, op: Op) {
        self.stale_completions += 1;
        if let Some(suppressed) = self.stale_log.admit(Instant::now()) {
            tracing::warn!(
                ?op,
                total = self.stale_completions,
                suppressed,
                "dropped an io_uring completion for a connection that is gone"
            );
        }
    }

    /// Finishes a close once nothing of the slot is in flight.
    pub(super) fn maybe_closed(&mut self, slot: Slot) {
        let Some(state) = self.conns.get_mut(slot as usize) else {
            return;
        };
        if state.is_closing() && !state.recv_armed && state.send.is_none() {
            if std::mem::take(&mut state.fixed) {
                // The table holds its own reference to the socket: drop it, or it stays open.
                let _ = self.ring.submitter().register_files_update(slot, &[-1]);
            }
            state.phase = SlotPhase::Free; // closes the socket
            let id = state.id;
            self.accept_gate.on_descriptor_freed();
            self.pending.push(Event::Closed(id));
        }
    }
}
