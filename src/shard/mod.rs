//! A shard: one pinned thread that owns its listener, its I/O driver, its connections and its
//! topic table outright. Each loop turn ([`Shard::turn`], at a time it is given): handle socket
//! events → take tick batches from the distributor and fan them out → fire the connections'
//! deadlines that are due → up to `SENDS_PER_TURN` sends, one per connection with output,
//! oldest first → close finished connections. Between turns it sleeps in the driver until the
//! earliest deadline ([`deadlines::Deadlines`]), an event or a wake-up. Nothing here is shared
//! with another shard.

pub(crate) mod acks;
pub mod commands;
pub(crate) mod deadlines;
pub mod joined;
mod lifecycle;
pub(crate) mod listen;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Receiver;

use crate::conn::{AppEvent, CloseReason, ConnSettings};
use crate::conn_id::{ConnId, Slot};
use crate::distributor::{Ingress, ShardMsg};
use crate::driver::{accept, Driver, Event};
use crate::fanout::{self, Topics};
use crate::http::pending::PendingBroadcast;
use crate::http::{self, HttpContext};
use crate::limits::SENDS_PER_TURN;
use crate::log_limit::LogLimiter;
use crate::protocol::message::CloseCode;
use crate::status::ServerState;
pub(crate) use crate::status::ShardStats;
use crate::table::send_queue::wait_bucket;
pub(crate) use crate::table::SendQueue;
use crate::table::{ConnTable, Entry, SlotIo};
use crate::tls::session::TlsError;
use crate::tls::{ktls, Goodbye};
use crate::wire::WallTime;
use commands::Context;
use deadlines::{Deadlines, Due};

/// Orders from the server to a shard.
#[derive(Debug)]
pub(crate) enum ShardControl {
    /// Stop accepting, close every connection with 1001, exit by the deadline.
    Shutdown {
        /// When to stop waiting for connections to close.
        deadline: Instant,
    },
}

/// Everything a shard needs besides its driver.
pub(crate) struct ShardParts {
    /// Index of the shard.
    pub id: usize,
    /// Connection settings.
    pub settings: ConnSettings,
    /// Frame clock rate (for `connected`).
    pub tick_hz: u32,
    /// Way into the distributor.
    pub ingress: Ingress,
    /// Tick batches and join answers from the distributor, in order.
    pub batches: Receiver<ShardMsg>,
    /// Orders from the server.
    pub control: Receiver<ShardControl>,
    /// This shard's counters.
    pub stats: Arc<ShardStats>,
    /// Server-wide open connection count.
    pub connections: Arc<AtomicUsize>,
    /// Server-wide cap.
    pub max_connections: usize,
    /// Server-wide read side (for the HTTP API).
    pub state: Arc<ServerState>,
    /// Channels every native connection joins on connect.
    pub default_channels: Vec<String>,
    /// Welcome notification text.
    pub welcome: Option<String>,
    /// Who may do what.
    pub policy: Arc<crate::auth::Policy>,
    /// Time to authenticate when a token is required.
    pub auth_timeout: Duration,
    /// `wss://`: the certificate every new connection is served (`None`: plain `ws://`).
    pub tls: Option<Arc<crate::tls::CertStore>>,
}

/// What the loop does after a turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Wait for the next event or deadline.
    Continue,
    /// Shut down and drained (or the drain overran): the thread ends.
    Exit,
}

/// A shard's loop over a driver `D` (monomorphised: no dynamic dispatch in the loop).
pub(crate) struct Shard<D: Driver> {
    driver: D,
    st: State,
}

struct State {
    p: ShardParts,
    table: ConnTable,
    topics: Topics,
    /// Connections waiting for a send, in the order they got output (round-robin); each also
    /// has `Entry::dirty` set, so it is queued once.
    dirty: SendQueue,
    /// HTTP broadcasts waiting for their seqs, by connection (rare: kept out of the table).
    http_waits: HashMap<ConnId, Box<PendingBroadcast>>,
    /// Every connection's next deadline.
    deadlines: Deadlines,
    /// The current turn's time.
    now: Instant,
    /// The current turn's wall-clock time.
    wall: WallTime,
    drain_deadline: Option<Instant>,
    /// "could not register a connection" repeats under descriptor or memory pressure: logged
    /// as sparingly as the accept warnings.
    register_warnings: LogLimiter,
    /// TLS: decrypted input and the plaintext of a send, reused by every connection.
    tls_scratch: (Vec<u8>, Vec<u8>),
    /// Failed TLS handshakes (scanners, wrong certificates) repeat: logged sparingly.
    tls_warnings: LogLimiter,
}

// The shard owns its thread: `run` (and `new`) read the clocks, everything below is handed them.
#[allow(clippy::disallowed_methods)]
impl<D: Driver> Shard<D> {
    /// Builds a shard around its driver.
    pub(crate) fn new(driver: D, parts: ShardParts) -> Shard<D> {
        Shard::starting_at(driver, parts, Instant::now())
    }

    /// Builds a shard whose clock starts at `now` (a simulated clock in tests).
    pub(crate) fn starting_at(driver: D, parts: ShardParts, now: Instant) -> Shard<D> {
        Shard {
            driver,
            st: State {
                p: parts,
                table: ConnTable::default(),
                topics: Topics::default(),
                dirty: SendQueue::new(now),
                http_waits: HashMap::new(),
                deadlines: Deadlines::new(now),
                now,
                wall: WallTime::of(SystemTime::UNIX_EPOCH),
                drain_deadline: None,
                register_warnings: LogLimiter::new(accept::LOG_EVERY),
                tls_scratch: (Vec::new(), Vec::new()),
                tls_warnings: LogLimiter::new(accept::LOG_EVERY),
            },
        }
    }

    /// Runs until shut down and every connection is closed (or the drain deadline passed): the
    /// one place the shard reads the clocks.
    pub(crate) fn run(mut self) -> std::io::Result<()> {
        tracing::debug!(
            shard = self.st.p.id,
            backend = self.driver.name(),
            "shard running"
        );
        let mut events = Vec::with_capacity(1024);
        loop {
            let timeout = self.st.timeout(Instant::now());
            self.driver.wait(timeout, &mut events)?;
            if self.turn(Instant::now(), SystemTime::now(), &mut events) == Turn::Exit {
                return Ok(());
            }
        }
    }

    /// One loop turn at `now` (`wall`: the same moment on the wall clock, for token expiry):
    /// applies `events` (draining it), orders, tick batches, due deadlines, then sends.
    pub(crate) fn turn(
        &mut self,
        now: Instant,
        wall: SystemTime,
        events: &mut Vec<Event<D::Input>>,
    ) -> Turn {
        self.st.now = now;
        self.st.wall = WallTime::of(wall);
        self.st.dirty.set_now(now);
        for event in events.drain(..) {
            self.on_event(event);
        }
        self.on_control();
        self.on_batches();
        self.run_timers();
        self.flush();
        self.st.deadlines.settle(now, &mut self.st.table);
        self.st
            .p
            .stats
            .channels
            .store(self.st.topics.len() as u64, Ordering::Relaxed);
        let Some(deadline) = self.st.drain_deadline else {
            return Turn::Continue;
        };
        if self.st.table.is_empty() {
            return Turn::Exit;
        }
        if now >= deadline {
            self.force_close_all();
            if now >= deadline + Duration::from_secs(2) {
                tracing::warn!(
                    shard = self.st.p.id,
                    left = self.st.table.len(),
                    "drain overran"
                );
                return Turn::Exit;
            }
        }
        Turn::Continue
    }

    fn on_event(&mut self, event: Event<D::Input>) {
        match event {
            Event::Accepted(fd) => self.on_accept(fd),
            Event::Input { conn, data } => {
                let st = &mut self.st;
                let open = self
                    .driver
                    .read_input(conn, data, |data| st.on_data(conn, data));
                if !open {
                    if let Some(e) = self.st.table.get_id_mut(conn) {
                        e.conn.handle_peer_gone();
                    }
                }
                self.after_change(conn.slot);
            }
            Event::PeerClosed(conn) => {
                if let Some(e) = self.st.table.get_id_mut(conn) {
                    e.conn.handle_peer_gone();
                }
                self.after_change(conn.slot);
            }
            Event::Sent { conn, result } => {
                if let Some(e) = self.st.table.get_id_mut(conn) {
                    if e.io == SlotIo::Sending {
                        e.io = SlotIo::Idle;
                    }
                    match result {
                        Ok(n) => {
                            ShardStats::add(&self.st.p.stats.bytes_out, n as u64);
                            let plain = match &mut e.tls {
                                Some(tls) => tls.handle_sent(n),
                                None => n,
                            };
                            e.conn.handle_sent(plain);
                        }
                        Err(_) => e.conn.handle_peer_gone(),
                    }
                }
                self.after_change(conn.slot);
            }
            Event::Closed(conn) => {
                if let Some(gone) = self.st.table.remove(conn) {
                    let stats = &self.st.p.stats;
                    ShardStats::add(&stats.closed, 1);
                    stats.connections.fetch_sub(1, Ordering::Relaxed);
                    if gone.session.opened {
                        let deflate = u64::from(gone.conn.deflates());
                        stats
                            .deflate_connections
                            .fetch_sub(deflate, Ordering::Relaxed);
                        let batch = u64::from(gone.session.batch);
                        stats.batch_connections.fetch_sub(batch, Ordering::Relaxed);
                    }
                }
            }
            Event::Wake => {}
        }
    }

    /// After anything changed a connection: queue a send if it has output, or close it if done.
    fn after_change(&mut self, slot: Slot) {
        let Some(e) = self.st.table.get_mut(slot) else {
            return;
        };
        if e.is_closing() {
            return;
        }
        self.st.deadlines.schedule(e);
        if let Some(tls) = e.tls.as_mut() {
            // Kernel TLS: once the handshake is done and nothing is in flight or buffered.
            if e.io == SlotIo::Idle && tls.can_hand_over() {
                let handed = match self.driver.socket(e.id) {
                    Some(fd) => tls.hand_over(|secrets, seq| ktls::enable_tx(fd, secrets, seq)),
                    None => Err(TlsError::new("socket gone")),
                };
                let stats = &self.st.p.stats;
                match handed {
                    Ok(()) => ShardStats::add(&stats.tls_kernel_sessions, 1),
                    Err(why) => {
                        ShardStats::add(&stats.tls_failures, 1);
                        if let Some(suppressed) = self.st.tls_warnings.admit(self.st.now) {
                            tracing::warn!(error = %why, suppressed, "kernel TLS handover failed; closing");
                        }
                        e.conn.handle_peer_gone();
                    }
                }
            }
            if tls.key_exhausted() {
                let text = "TLS key limit: reconnect";
                e.conn.close(
                    CloseCode::GOING_AWAY,
                    text,
                    CloseReason::Normal,
                    self.st.now,
                );
            }
        }
        let tls_out = e.tls.as_ref().is_some_and(|t| t.wants_send());
        if e.conn.is_done() {
            let peer_gone = e.conn.close_reason() == Some(CloseReason::PeerGone);
            if e.io == SlotIo::Idle && !peer_gone && tls_goodbye(&self.driver, e) {
                self.st.dirty.push_once(slot, &mut e.dirty);
                return;
            }
            self.finish(slot);
        } else if e.conn.has_output() || tls_out {
            self.st.dirty.push_once(slot, &mut e.dirty);
        } else if e.conn.wants_write_shutdown() && e.io == SlotIo::Idle {
            if tls_goodbye(&self.driver, e) {
                self.st.dirty.push_once(slot, &mut e.dirty);
                return;
            }
            self.driver.shutdown_write(e.id);
            e.conn.handle_write_shutdown();
        }
    }

    fn on_batches(&mut self) {
        while let Ok(msg) = self.st.p.batches.try_recv() {
            let st = &mut self.st;
            let batch = match msg {
                ShardMsg::Tick(batch) => batch,
                ShardMsg::Joined(joined) => {
                    let view = joined::ShardView {
                        shard: st.p.id,
                        policy: &st.p.policy,
                        tick_hz: st.p.tick_hz,
                        wall: st.wall,
                    };
                    let applied =
                        joined::apply(*joined, &mut st.table, &mut st.topics, &st.p.ingress, view);
                    if let Some(slot) = applied {
                        self.after_change(slot);
                    }
                    continue;
                }
            };
            if !batch.acks.is_empty() {
                let answered: Vec<_> = (batch.acks.iter())
                    .filter_map(|ack| acks::apply(ack, &mut self.st.table, &mut self.st.http_waits))
                    .collect();
                for applied in answered {
                    let slot = match applied {
                        acks::Applied::Queued(slot) => slot,
                        acks::Applied::Answer(id, response) => {
                            self.st.on_input(id, ConnInput::Owed(response));
                            id.slot
                        }
                    };
                    self.after_change(slot);
                }
            }
            let st = &mut self.st;
            let d = fanout::deliver(
                st.p.id as u32,
                &batch,
                &mut st.topics,
                &mut st.table,
                &st.p.settings,
                st.now,
                &mut st.dirty,
            );
            let stats = &st.p.stats;
            ShardStats::add(&stats.batches, 1);
            ShardStats::add(&stats.deliveries, d.deliveries);
            ShardStats::add(&stats.frames_out, d.frames);
            ShardStats::add(&stats.dropped_events, d.dropped);
            ShardStats::add(&stats.gap_notices, d.gaps);
            if d.degraded_delta != 0 {
                stats
                    .degraded
                    .fetch_add(d.degraded_delta as u64, Ordering::Relaxed);
            }
        }
    }

    /// Fires the deadlines due at `now`, connection by connection, and reschedules each.
    fn run_timers(&mut self) {
        let now = self.st.now;
        while let Some(due) = self.st.deadlines.pop_due(now, &mut self.st.table) {
            let Due::Fire(id) = due else { continue };
            if let Some(e) = self.st.table.get_id_mut(id) {
                if !e.is_closing() {
                    e.conn.handle_timeout(now, &self.st.p.settings);
                }
            }
            self.after_change(id.slot);
        }
    }

    /// One vectored send per waiting connection, at most [`SENDS_PER_TURN`] per loop turn, oldest
    /// first: a turn stays short, so input, tick batches and the distributor's thread get the
    /// core between chunks, and under overload every connection is served round-robin with
    /// whatever has accumulated by its turn (fewer, larger sends instead of a growing backlog).
    fn flush(&mut self) {
        let mut sends = 0;
        while sends < SENDS_PER_TURN {
            let Some((slot, waited_ms)) = self.st.dirty.pop() else {
                break;
            };
            let Some(e) = self.st.table.get_mut(slot) else {
                continue;
            };
            e.dirty = false;
            // Fan-out may have changed its deadlines (a slow consumer's close).
            self.st.deadlines.schedule(e);
            let tls_out = e.tls.as_ref().is_some_and(|t| t.wants_send());
            if e.io != SlotIo::Idle || !(e.conn.has_output() || tls_out) {
                if !e.is_closing() && e.conn.is_done() {
                    self.finish(slot);
                }
                continue;
            }
            sends += 1;
            let mut batch = self.driver.batch();
            match &mut e.tls {
                Some(tls) => {
                    if !tls.poll_transmit(&e.conn, &mut batch, &mut self.st.tls_scratch.1) {
                        continue; // nothing the session can carry yet (still handshaking)
                    }
                }
                None => {
                    e.conn.poll_transmit(&mut batch);
                }
            }
            let stats = &self.st.p.stats;
            ShardStats::add(&stats.sends, 1);
            ShardStats::add(&stats.send_wait_buckets[wait_bucket(waited_ms)], 1);
            ShardStats::add(&stats.send_wait_ms_sum, u64::from(waited_ms));
            e.io = SlotIo::Sending;
            self.driver.send(e.id, batch);
        }
    }
}

/// TLS says goodbye (`close_notify`) once, before the write side is shut or the socket closed
/// (RFC 8446 §6.1): returns true when the alert is queued for a send (in userspace); through
/// kernel TLS it is sent here. Called with no send of the connection in flight.
fn tls_goodbye<D: Driver>(driver: &D, e: &mut Entry) -> bool {
    let Some(tls) = e.tls.as_mut().filter(|t| !t.is_handshaking()) else {
        return false;
    };
    match tls.close_notify() {
        Goodbye::Queued => true,
        Goodbye::ByKernel => {
            if let Some(fd) = driver.socket(e.id) {
                let _ = ktls::send_close_notify(fd);
            }
            false
        }
        Goodbye::Said => false,
    }
}

/// What [`State::on_input`] gives a connection.
enum ConnInput<'d> {
    /// Bytes read from its socket.
    Data(&'d mut [u8]),
    /// The HTTP response it owes for a deferred request.
    Owed(bytes::Bytes),
}

impl State {
    /// How long the driver may sleep from `now`: not at all with sends or batches waiting,
    /// else until the earliest connection deadline or the drain deadline (`None`: until an
    /// event).
    fn timeout(&self, now: Instant) -> Option<Duration> {
        if !self.dirty.is_empty() || !self.p.batches.is_empty() {
            return Some(Duration::ZERO);
        }
        let until = match (self.deadlines.next(), self.drain_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        until.map(|t| t.saturating_duration_since(now))
    }

    fn on_data(&mut self, id: ConnId, data: &mut [u8]) {
        let Some(tls) = self.table.get_id_mut(id).and_then(|e| e.tls.as_mut()) else {
            return self.on_input(id, ConnInput::Data(data));
        };
        let mut plain = std::mem::take(&mut self.tls_scratch.0);
        plain.clear();
        let read = tls.read_ciphertext(data, &mut plain);
        if !plain.is_empty() {
            self.on_input(id, ConnInput::Data(&mut plain));
        }
        self.tls_scratch.0 = plain;
        match read {
            Ok(true) => {}
            Ok(false) => {
                if let Some(e) = self.table.get_id_mut(id) {
                    e.conn.handle_peer_gone();
                }
            }
            Err(why) => {
                ShardStats::add(&self.p.stats.tls_failures, 1);
                if let Some(suppressed) = self.tls_warnings.admit(self.now) {
                    tracing::debug!(error = %why, suppressed, "TLS session failed; closing");
                }
                if let Some(e) = self.table.get_id_mut(id) {
                    e.conn.handle_peer_gone();
                }
            }
        }
    }

    /// Feeds a connection bytes read or the HTTP response it was owed, with the application
    /// (commands, HTTP routes) answering what comes up.
    fn on_input(&mut self, id: ConnId, input: ConnInput<'_>) {
        let Some(e) = self.table.get_id_mut(id) else {
            return;
        };
        let slot = id.slot;
        let (now, settings) = (self.now, &self.p.settings);
        let (mut close, mut auth) = (None, None);
        let mut ctx = Context {
            shard: self.p.id,
            conn: id,
            deflate: e.conn.deflates(),
            session: &mut e.session,
            topics: &mut self.topics,
            ingress: &self.p.ingress,
            tick_hz: self.p.tick_hz,
            default_channels: &self.p.default_channels,
            welcome: self.p.welcome.as_deref(),
            policy: &self.p.policy,
            auth_timeout: self.p.auth_timeout,
            now,
            wall: self.wall,
            close: &mut close,
            auth: &mut auth,
        };
        let http = HttpContext {
            state: &self.p.state,
            ingress: &self.p.ingress,
            reply_to: Some((self.p.id as u32, id)),
        };
        let mut owed_wait = None;
        let mut app = |outbox: &mut crate::conn::Outbox, event: AppEvent<'_>| match event {
            AppEvent::Upgrade(request) => commands::on_upgrade(&mut ctx, request),
            AppEvent::Opened { deflate, .. } => {
                tracing::debug!(shard = ctx.shard, slot, "connection opened");
                ctx.deflate = deflate; // for the default channels' replay
                ctx.session.opened = true;
                let stats = &self.p.stats;
                ShardStats::add(&stats.deflate_connections, u64::from(deflate));
                ShardStats::add(&stats.batch_connections, u64::from(ctx.session.batch));
                commands::on_open(&mut ctx, outbox)
            }
            AppEvent::Message(m) if ctx.close.is_none() => {
                commands::on_message(&mut ctx, outbox, m)
            }
            AppEvent::Message(_) => {}
            AppEvent::Http { request, owed } => match http::handle(request, &http) {
                http::Answer::Now(response) => outbox.push_unchecked(response),
                http::Answer::Later(wait) => {
                    *owed = true;
                    owed_wait = Some(wait);
                }
            },
        };
        match input {
            ConnInput::Data(data) => e.conn.handle_input(data, now, settings, &mut app),
            ConnInput::Owed(response) => e.conn.answer_http(response, now, settings, &mut app),
        }
        if let Some(wait) = owed_wait {
            self.http_waits.insert(id, wait);
        }
        e.after_input(close, auth, settings, now);
    }
}
