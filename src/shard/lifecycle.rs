//! A connection's life in the shard: admitted (or turned away when the server is full) on
//! accept, finished (its subscriptions dropped, counted, closed by the driver), and the
//! shutdown order (reconnect hints spread over the drain window, 1001 to every connection, and
//! a forced close at the deadline).

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{commands, Shard, ShardControl, ShardStats};
use crate::conn::{Admission, CloseReason, Conn};
use crate::conn_id::Slot;
use crate::driver::Driver;
use crate::protocol::message::CloseCode;
use crate::table::{Entry, Session, SlotIo};
use crate::wire::reply;

impl<D: Driver> Shard<D> {
    pub(super) fn on_accept(&mut self, fd: std::os::fd::OwnedFd) {
        if self.st.drain_deadline.is_some() {
            return; // dropping the fd closes it
        }
        let total = self.st.p.connections.fetch_add(1, Ordering::Relaxed);
        let reject = total >= self.st.p.max_connections;
        if reject {
            self.st.p.connections.fetch_sub(1, Ordering::Relaxed);
        }
        let client_id = uuid::Uuid::new_v4();
        let admission = if reject {
            // Spread the returning clients over 1-5 s (the id's random bits are at hand).
            let after_ms = 1000 + (client_id.as_u128() % 4001) as u64;
            Admission::Full {
                goodbye: reply::reconnect(after_ms, "server full"),
            }
        } else {
            Admission::Admit
        };
        let session = Session {
            client_id,
            ..Session::default()
        };
        let conn = Conn::new(self.st.now, &self.st.p.settings, admission);
        let mut entry = Entry::new(conn, session);
        if let Some(certs) = &self.st.p.tls {
            match crate::tls::TlsSession::new(certs.current(), certs.kernel()) {
                Ok(tls) => entry.tls = Some(Box::new(tls)),
                Err(e) => {
                    tracing::warn!(error = %e, "could not start a TLS session; connection dropped");
                    self.st.p.connections.fetch_sub(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        let id = self.st.table.insert(entry);
        let slot = id.slot;
        ShardStats::add(&self.st.p.stats.accepted, 1);
        ShardStats::add(&self.st.p.stats.connections, 1);
        if let Some(entry) = self.st.table.get_id_mut(id) {
            self.st.deadlines.schedule(entry); // the handshake deadline
        }
        if let Err(e) = self.driver.register(id, fd) {
            if let Some(suppressed) = self.st.register_warnings.admit(self.st.now) {
                tracing::warn!(error = %e, suppressed, "could not register a connection");
            }
            if let Some(entry) = self.st.table.get_mut(slot) {
                entry.conn.handle_peer_gone();
            }
            self.after_change(slot);
        }
    }

    /// Drops a finished connection's subscriptions and tells the driver to close it.
    pub(super) fn finish(&mut self, slot: Slot) {
        let st = &mut self.st;
        let Some(e) = st.table.get_mut(slot) else {
            return;
        };
        e.io = SlotIo::Closing;
        commands::unsubscribe_all(st.p.id, slot, &mut e.session, &mut st.topics, &st.p.ingress);
        let id = e.id;
        st.http_waits.remove(&id);
        if e.conn.is_admitted() {
            st.p.connections.fetch_sub(1, Ordering::Relaxed); // counted in by `on_accept`
        }
        let reason = e.conn.close_reason().unwrap_or(CloseReason::PeerGone);
        if reason == CloseReason::SlowConsumer {
            ShardStats::add(&st.p.stats.slow_consumers, 1);
        }
        if e.degrade > 0 {
            e.degrade = 0;
            st.p.stats.degraded.fetch_sub(1, Ordering::Relaxed);
        }
        ShardStats::add(&st.p.stats.closed_by_reason[reason.index()], 1);
        if e.conn.is_native() {
            commands::connection_event(
                &st.p.ingress,
                st.p.id,
                &e.session.client_id,
                e.session.identity.as_ref().map(|i| i.user_id.as_str()),
                "disconnect",
                Some(reason.as_str()),
            );
        }
        tracing::debug!(
            shard = st.p.id,
            slot,
            reason = reason.as_str(),
            "connection closed"
        );
        self.driver.close(id);
    }

    pub(super) fn on_control(&mut self) {
        while let Ok(order) = self.st.p.control.try_recv() {
            match order {
                ShardControl::Shutdown { deadline } => {
                    self.driver.stop_accepting();
                    self.st.drain_deadline = Some(deadline);
                    self.send_reconnect_hints(deadline);
                    let slots = self.close_open(|conn, now| {
                        conn.close(
                            CloseCode::GOING_AWAY,
                            "server shutting down",
                            CloseReason::Shutdown,
                            now,
                        )
                    });
                    for slot in slots {
                        self.after_change(slot);
                    }
                }
            }
        }
    }

    /// Tells every open native connection when to come back: `after_ms` spread evenly over
    /// the drain window, so a fleet of clients does not reconnect all at once.
    fn send_reconnect_hints(&mut self, deadline: Instant) {
        let window = deadline.saturating_duration_since(self.st.now).as_millis() as u64;
        let open: Vec<Slot> = self
            .st
            .table
            .iter_mut()
            .filter(|(_, e)| !e.is_closing() && e.conn.is_open() && e.conn.is_native())
            .map(|(slot, _)| slot)
            .collect();
        let n = open.len() as u64;
        for (i, slot) in open.into_iter().enumerate() {
            if let Some(e) = self.st.table.get_mut(slot) {
                let after_ms = window * (2 * i as u64 + 1) / (2 * n);
                e.conn
                    .queue(crate::wire::reply::reconnect(after_ms, "shutdown"));
            }
        }
    }

    pub(super) fn force_close_all(&mut self) {
        for slot in self.close_open(|conn, _| conn.handle_peer_gone()) {
            self.finish(slot);
        }
    }

    /// Applies `close` to every connection not already closing; returns their slots.
    fn close_open(&mut self, close: impl Fn(&mut Conn, Instant)) -> Vec<Slot> {
        let now = self.st.now;
        self.st
            .table
            .iter_mut()
            .filter(|(_, e)| !e.is_closing())
            .map(|(slot, e)| {
                close(&mut e.conn, now);
                slot
            })
            .collect()
    }
}
