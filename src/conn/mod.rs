//! One connection as a sans-IO state machine, in the manner of quinn-proto: bytes and the time
//! come in through `handle_*` methods, what to write and when to be woken go out through
//! `poll_*` methods, and whole client messages go up to the application (the shard) through a
//! callback during [`Conn::handle_input`]. It never touches a socket or reads a clock (time is
//! always an argument), so both I/O backends drive the same logic and tests drive it with plain
//! byte slices and a simulated clock.
//!
//! # The calling contract
//!
//! The driver (the shard) calls, for each connection:
//! 1. [`Conn::handle_input`] with every received chunk, in order; the application may queue
//!    replies on the outbox it is handed, and may later queue frames with [`Conn::queue`],
//!    [`Conn::push_broadcast`] and friends;
//! 2. [`Conn::handle_timeout`] once [`Conn::poll_timeout`]'s deadline has passed;
//! 3. [`Conn::poll_transmit`] into a batch of its own when no send of this connection is in
//!    flight, handing the batch to the socket; then [`Conn::handle_sent`] with the bytes written
//!    once that send is over (or [`Conn::handle_peer_gone`] if it failed);
//! 4. [`Conn::wants_write_shutdown`] → shut the write side, then
//!    [`Conn::handle_write_shutdown`];
//! 5. after any of these, [`Conn::poll_timeout`] again (deadlines move) and [`Conn::is_done`]:
//!    once true, the socket is closed and the connection dropped.
//!
//! Lifecycle: `Http` (waiting for the upgrade request) → `Open` → `Closing` (close frame queued,
//! waiting for the peer's) → `Done` (the driver may close the socket). Deadlines live in a
//! fixed timer table ([`Timer`]): handshake, ping, pong, close, and auth (authentication due or
//! token expiry).
#![forbid(unsafe_code)]

mod app;
mod close;
pub(crate) mod outbox;
mod request;
pub(crate) mod timers;
mod transmit;

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::limits::{CLOSE_HANDSHAKE_TIMEOUT_MS, MAX_HTTP_HEAD_BYTES};

/// Bytes of requests a connection may pipeline behind a response it is still owed (beyond
/// one request's bound); more closes it.
const PIPELINED_BYTES: usize = MAX_HTTP_HEAD_BYTES + (1 << 20);
use crate::protocol::compress;
use crate::protocol::frame::{close_frame, server_frame, Kind};
use crate::protocol::handshake::{Endpoint, Routes};
use crate::protocol::message::{CloseCode, Incoming, MessageReader};
pub use app::AppEvent;
pub(crate) use app::UpgradeRequest;
pub use close::{CloseOrder, CloseReason};
pub use outbox::SendBatch;
pub(crate) use outbox::{Full, Outbox};
pub(crate) use timers::Timer;
use timers::Timers;
pub use timers::{AuthExpiry, AuthTimer};

/// Per-shard settings every connection of the shard shares.
#[derive(Clone, Debug)]
pub struct ConnSettings {
    /// Largest client message.
    pub max_message_bytes: usize,
    /// Cap on queued outbound bytes.
    pub max_queued_bytes: usize,
    /// Server ping period.
    pub ping_interval: Duration,
    /// Time allowed for a pong.
    pub pong_timeout: Duration,
    /// Time allowed for the upgrade request.
    pub handshake_timeout: Duration,
    /// Where the endpoints are.
    pub routes: Routes,
}

#[derive(Debug)]
enum Phase {
    /// Reading an HTTP request: the upgrade, or plain requests on a keep-alive connection.
    Http {
        head: Vec<u8>,
        /// Plain HTTP requests answered so far (an idle keep-alive connection that answered
        /// some ends quietly at the handshake deadline).
        answered: u32,
        /// A response the application owes (a broadcast waiting for its seqs), with the
        /// request's keep-alive: later requests wait in `head` until it is given.
        owed: Option<bool>,
    },
    Open,
    /// Close frame queued; waiting for the peer's (or the [`Timer::Close`] deadline).
    Closing {
        got_close: bool,
    },
    /// An HTTP exchange ending: flush the response, half-close (FIN), discard input until the
    /// peer closes or the [`Timer::Close`] deadline, so the peer reads the response instead of
    /// a reset.
    Lingering {
        write_shut: bool,
    },
    Done,
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Conn {
    phase: Phase,
    /// The endpoint upgraded to (`None` before the upgrade).
    endpoint: Option<Endpoint>,
    reader: MessageReader,
    outbox: Outbox,
    timers: Timers,
    /// Why the connection closes when [`Timer::Auth`] fires.
    auth_expiry: AuthExpiry,
    admission: Admission,
    /// Why the connection ends, once known.
    reason: Option<CloseReason>,
    /// permessage-deflate was agreed (with this server window, in bits): shared frames go out
    /// in their compressed twin.
    deflate: Option<u8>,
}

/// Whether a new connection may stay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// It may.
    Admit,
    /// The server is at `max_connections`: a valid upgrade completes (a browser could not see
    /// an HTTP refusal, only 1006), then `goodbye` (a native-protocol `reconnect` hint) is sent
    /// and the connection closes with 1013 (try again later).
    Full {
        /// The message sent before the close, on native connections.
        goodbye: Bytes,
    },
}

impl Conn {
    /// A freshly accepted connection, waiting for its upgrade request until
    /// `settings.handshake_timeout` from `now`.
    pub fn new(now: Instant, settings: &ConnSettings, admission: Admission) -> Conn {
        let mut timers = Timers::new(now);
        timers.set(Timer::Handshake, now + settings.handshake_timeout);
        Conn {
            phase: Phase::Http {
                head: Vec::new(),
                answered: 0,
                owed: None,
            },
            endpoint: None,
            reader: MessageReader::default(),
            outbox: Outbox::default(),
            timers,
            auth_expiry: AuthExpiry::Timeout,
            admission,
            reason: None,
            deflate: None,
        }
    }

    /// Whether permessage-deflate was agreed in the upgrade (the connection takes compressed
    /// frames).
    pub fn deflates(&self) -> bool {
        self.deflate.is_some()
    }

    /// Whether the connection speaks WebSocket and has not started closing.
    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open)
    }

    /// Whether the driver should now close the socket (nothing more to send or wait for).
    pub fn is_done(&self) -> bool {
        match self.phase {
            Phase::Done => true,
            Phase::Closing { got_close, .. } => got_close && self.outbox.is_empty(),
            _ => false,
        }
    }

    /// Why the connection ended (or is ending), once known.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.reason
    }

    /// Feeds received bytes. Whole native messages go to `app`, which may queue replies on the
    /// outbox it is given.
    pub fn handle_input(
        &mut self,
        data: &mut [u8],
        now: Instant,
        settings: &ConnSettings,
        app: &mut impl FnMut(&mut Outbox, AppEvent<'_>),
    ) {
        match &mut self.phase {
            Phase::Http {
                head,
                owed: Some(_),
                ..
            } => {
                // Pipelined behind a response still owed: kept, within a bound.
                if head.len() + data.len() > PIPELINED_BYTES + settings.routes.max_body {
                    self.reason = Some(CloseReason::Rejected);
                    self.finish();
                } else {
                    head.extend_from_slice(data);
                }
            }
            Phase::Http { head, answered, .. } => {
                head.extend_from_slice(data);
                let (mut head, answered) = (std::mem::take(head), *answered);
                self.handle_request(&mut head, answered, now, settings, app);
            }
            // Input is discarded once lingering: after a protocol violation the stream can no
            // longer be framed, and an HTTP exchange that ended has nothing more to read.
            Phase::Open | Phase::Closing { .. } => self.read_frames(data, now, settings, app),
            Phase::Lingering { .. } => {}
            Phase::Done => {}
        }
    }

    /// Gives the response owed for a deferred HTTP request, then reads the requests pipelined
    /// behind it. Nothing happens if none is owed (the connection moved on or closed).
    pub fn answer_http(
        &mut self,
        response: Bytes,
        now: Instant,
        settings: &ConnSettings,
        app: &mut impl FnMut(&mut Outbox, AppEvent<'_>),
    ) {
        let Phase::Http {
            head,
            answered,
            owed: Some(keep_alive),
        } = &mut self.phase
        else {
            return;
        };
        let (keep_alive, answered) = (*keep_alive, *answered);
        let mut head = std::mem::take(head);
        self.outbox.push_unchecked(response);
        if !keep_alive {
            self.reason = Some(CloseReason::HttpDone);
            self.linger(now);
            return;
        }
        self.handle_request(&mut head, answered, now, settings, app);
    }

    /// Only the close deadline is left once a close (or a linger) starts.
    fn start_close_timer(&mut self, now: Instant) {
        self.timers.stop_all();
        self.timers.set(
            Timer::Close,
            now + Duration::from_millis(CLOSE_HANDSHAKE_TIMEOUT_MS),
        );
    }

    /// Whether the connection upgraded to the native WebSocket endpoint at some point (and was
    /// admitted: the application saw `Opened`).
    pub fn is_native(&self) -> bool {
        self.endpoint == Some(Endpoint::Native) && self.is_admitted()
    }

    /// Whether the connection was admitted (not turned away because the server is full).
    pub fn is_admitted(&self) -> bool {
        self.admission == Admission::Admit
    }

    fn read_frames(
        &mut self,
        data: &mut [u8],
        now: Instant,
        settings: &ConnSettings,
        app: &mut impl FnMut(&mut Outbox, AppEvent<'_>),
    ) {
        let open = self.is_open();
        let echo = self.endpoint == Some(Endpoint::Echo);
        let deflate = self.deflate;
        let echo_frame = |kind: Kind, m: &[u8]| match deflate {
            Some(window) => compress::message_frame(kind, m, window),
            None => server_frame(kind, m),
        };
        let outbox = &mut self.outbox;
        let mut peer_close: Option<Option<CloseCode>> = None;
        let mut got_pong = false;
        let result = self
            .reader
            .feed(data, settings.max_message_bytes, &mut |msg| {
                if peer_close.is_some() {
                    return;
                }
                match msg {
                    Incoming::Close(code, _) => peer_close = Some(code),
                    Incoming::Pong => got_pong = true,
                    _ if !open => {}
                    Incoming::Ping(p) => outbox.push_unchecked(server_frame(Kind::Pong, p)),
                    Incoming::Text(t) if echo => outbox.push_unchecked(echo_frame(Kind::Text, t)),
                    Incoming::Binary(b) if echo => {
                        outbox.push_unchecked(echo_frame(Kind::Binary, b))
                    }
                    Incoming::Text(m) | Incoming::Binary(m) => app(outbox, AppEvent::Message(m)),
                }
            });
        if got_pong {
            self.timers.stop(Timer::Pong);
        }
        if let Some(code) = peer_close {
            if self.is_open() {
                let reply = code.unwrap_or(CloseCode::NORMAL);
                self.outbox.push_unchecked(close_frame(reply, ""));
                self.reason = Some(CloseReason::Normal);
            }
            self.phase = Phase::Closing { got_close: true };
            self.start_close_timer(now);
            return;
        }
        if let Err(v) = result {
            // Fail the connection (RFC 6455 §7.1.7): the stream may no longer be framed, so
            // send the close frame, then FIN, and drop input until the peer closes. The peer
            // sees the TCP close right after our close frame instead of waiting for a close
            // handshake that can no longer be read.
            if self.is_open() {
                self.outbox.push_unchecked(close_frame(v.code, v.reason));
                self.reason = Some(CloseReason::ProtocolError);
                self.linger(now);
            } else {
                self.finish();
            }
        }
    }

    /// Starts the close handshake with `code`, queued behind what is already queued. Nothing
    /// queued is dropped, not even for a slow consumer: a frame may be in the driver's hands (a
    /// send in flight) or be the 101 response itself, and the queue is already bounded by its
    /// cap until the close deadline frees it (found by the `conn` fuzz target).
    pub fn close(&mut self, code: CloseCode, text: &str, reason: CloseReason, now: Instant) {
        match self.phase {
            Phase::Open => {
                self.outbox.push_unchecked(close_frame(code, text));
                self.reason = Some(reason);
                self.phase = Phase::Closing { got_close: false };
                self.start_close_timer(now);
            }
            Phase::Http { .. } => {
                self.reason = Some(reason);
                self.finish();
            }
            Phase::Closing { .. } | Phase::Lingering { .. } | Phase::Done => {}
        }
    }

    /// Starts closing a slow consumer with 1008: more is queued for it than
    /// `max_queued_bytes` allows.
    pub fn close_slow_consumer(&mut self, now: Instant) {
        self.close(
            CloseCode::POLICY,
            "slow consumer",
            CloseReason::SlowConsumer,
            now,
        );
    }

    /// The peer closed its side or the socket failed: nothing more can be sent.
    pub fn handle_peer_gone(&mut self) {
        if self.reason.is_none() {
            self.reason = Some(CloseReason::PeerGone);
        }
        self.finish();
    }

    /// `Done`: nothing more to send or wait for.
    fn finish(&mut self) {
        self.phase = Phase::Done;
        self.timers.stop_all();
    }

    /// Moves [`Timer::Auth`]: at its deadline (if still open or upgrading then) the connection
    /// closes with 4001 and the timer's text ("authentication timeout", "token expired").
    pub fn set_auth_timer(&mut self, timer: AuthTimer) {
        match timer {
            AuthTimer::Until(at, why) if matches!(self.phase, Phase::Http { .. } | Phase::Open) => {
                self.timers.set(Timer::Auth, at);
                self.auth_expiry = why;
            }
            _ => self.timers.stop(Timer::Auth),
        }
    }

    /// The earliest deadline at which [`Conn::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Fires every timer due at `now`: the handshake deadline, the server ping, the pong
    /// deadline, the auth deadline, the close deadline.
    pub fn handle_timeout(&mut self, now: Instant, settings: &ConnSettings) {
        if self.timers.take_due(Timer::Handshake, now) {
            if let Phase::Http { head, answered, .. } = &self.phase {
                // An idle keep-alive connection that already answered requests ends quietly;
                // one that never completed a request timed out.
                self.reason = Some(if head.is_empty() && *answered > 0 {
                    CloseReason::HttpDone
                } else {
                    CloseReason::HandshakeTimeout
                });
                self.finish();
            }
        }
        if self.timers.take_due(Timer::Auth, now) {
            let text = self.auth_expiry.close_text();
            self.close(CloseCode::UNAUTHORIZED, text, CloseReason::AuthFailed, now);
        }
        if self.timers.take_due(Timer::Pong, now) && self.is_open() {
            self.close(
                CloseCode::POLICY,
                "pong timeout",
                CloseReason::PongTimeout,
                now,
            );
        }
        if self.is_open() && self.timers.take_due(Timer::Ping, now) {
            // One ping at a time: while a pong is awaited, the next ping only moves on.
            if self.timers.get(Timer::Pong).is_none() {
                self.outbox.push_unchecked(server_frame(Kind::Ping, b""));
                self.timers.set(Timer::Pong, now + settings.pong_timeout);
            }
            self.timers.set(Timer::Ping, now + settings.ping_interval);
        }
        if self.timers.take_due(Timer::Close, now)
            && matches!(self.phase, Phase::Closing { .. } | Phase::Lingering { .. })
        {
            self.finish();
        }
    }
}

#[cfg(test)]
mod tests;
