//! A whole sans-IO connection (`conn::Conn`) driven the way a shard drives it
//! (src/shard/mod.rs): reads through `handle_input` with the shard's application callback
//! (`shard::commands::on_upgrade` / `on_open` / `on_message`, `http::handle`), then the close
//! order and the slow-consumer check of `State::on_data` (the shared `Entry::after_input`);
//! timers as `sweep` runs them; sends as `flush` does them (possibly partial); tick batches
//! through `fanout::deliver`; the distributor's answers to joins through
//! `shard::joined::apply`; peer resets and shutdown.
//! Time is simulated: every `Instant` is a fixed base plus the offset the input advanced.
//!
//! Input, decoded with `arbitrary::Unstructured` (integers little-endian, zero-padded at the end):
//!   u8 flags: bit 0 server full (upgrades get 503), bit 1 a token is required
//!             (allow_anonymous = false), bit 2 small outbound cap (4 KiB, reaches slow consumer)
//!   then operations until the input ends, each a u8 tag (mod 13) and its arguments:
//!     0 read        u16 n, n bytes              one read of n bytes (fewer if the input ends)
//!     1 reads       u16 n, u16 c, n bytes       n bytes as reads of c bytes (c = 0: 1), one turn
//!     2 advance     u16 ms                      the clock moves ms milliseconds
//!     3 advance     u8 s                        the clock moves s seconds
//!     4 sweep                                   timers (`handle_timeout`, auth deadlines)
//!     5 send        u16 n                       one send of at most n bytes (0xFFFF: all)
//!     6 tick        u16 len                     a tick batch: one event of len % 8192 bytes on
//!                                               each of the first 8 live channels
//!     7 join answer                             the distributor answers the oldest subscribe
//!     8 peer gone                               the socket failed / the peer reset
//!     9 shutdown                                reconnect hint, then close 1001
//!    10 send start                              an io_uring send goes in flight (the driver
//!                                               holds the batch; no other send meanwhile)
//!    11 send done   u16 n                       it completes having written n bytes (0xFFFF: all)
//!    12 join refused                            as 7, the first new channel refused (max_channels)
//!
//! Checks, besides no panic or stack overflow: everything the server writes is well-formed:
//! HTTP responses (status line, `Content-Length`), then after a 101 unmasked final server frames,
//! every text frame valid JSON on the native endpoint and valid UTF-8 on the echo endpoint, a
//! close frame's code valid; the connection finishes in bounded steps.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arbitrary::Unstructured;
use bytes::BytesMut;
use framecast::config::Delivery;
use framecast::internals::conn::{Admission, AppEvent, CloseReason, Conn, ConnSettings, SendBatch};
use framecast::internals::distributor::{
    ChannelFrames, JoinReply, JoinRequest, Joined, JoinedChannel, TickBatch,
};
use framecast::internals::fanout::{self, Topics};
use framecast::internals::http::{self, HttpContext};
use framecast::internals::protocol::message::CloseCode;
use framecast::internals::shard::commands::{self, Context};
use framecast::internals::shard::joined;
use framecast::internals::shard::table::{ConnTable, Entry, Session, SubState};
use framecast::internals::shard::SendQueue;
use framecast::internals::wire::event::{put_event_frame, EventFields};
use libfuzzer_sys::fuzz_target;

#[path = "common/mod.rs"]
mod common;

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// One shard holding one connection.
struct Harness {
    settings: ConnSettings,
    table: ConnTable,
    topics: Topics,
    dirty: SendQueue,
    id: framecast::internals::conn_id::ConnId,
    offset: Duration,
    strict: bool,
    /// Subscribes waiting for the distributor's answer.
    pending_joins: usize,
    /// A send in flight (io_uring): the batch the driver holds until its completion.
    in_flight: Option<SendBatch>,
    /// Everything written to the socket, in order.
    written: Vec<u8>,
    next_seq: u64,
    frame: u64,
    finished: bool,
}

impl Harness {
    fn now(&self) -> Instant {
        base() + self.offset
    }

    fn entry(&mut self) -> &mut Entry {
        self.table
            .get_id_mut(self.id)
            .expect("the connection's entry")
    }

    /// `State::on_data`: one read handed to the connection with the shard's callback.
    fn on_data(&mut self, data: &mut [u8]) {
        let now = self.now();
        let e = common::embedded();
        let policy = if self.strict { &e.strict } else { &e.open };
        let entry = self.table.get_id_mut(self.id).expect("entry");
        let settings = &self.settings;
        let (mut close, mut auth) = (None, None);
        let mut joins = 0;
        let mut ctx = Context {
            shard: 0,
            conn: self.id,
            deflate: false,
            session: &mut entry.session,
            topics: &mut self.topics,
            ingress: &e.ingress,
            tick_hz: 60,
            default_channels: &[],
            welcome: Some("fuzz \"welcome\""),
            policy,
            auth_timeout: Duration::from_secs(5),
            now,
            wall: framecast::internals::wire::WallTime::from_unix_ms(
                1_800_000_000_000 + self.offset.as_millis() as u64,
            ),
            close: &mut close,
            auth: &mut auth,
        };
        let http_ctx = HttpContext {
            state: &e.state,
            ingress: &e.ingress,
            reply_to: None,
        };
        entry
            .conn
            .handle_input(data, now, settings, &mut |outbox, event| match event {
                AppEvent::Upgrade(request) => commands::on_upgrade(&mut ctx, request),
                AppEvent::Opened { .. } => commands::on_open(&mut ctx, outbox),
                AppEvent::Message(m) if ctx.close.is_none() => {
                    let before = ctx.session.pending_joins();
                    commands::on_message(&mut ctx, outbox, m);
                    joins += ctx.session.pending_joins() - before;
                }
                AppEvent::Message(_) => {}
                AppEvent::Http { request, .. } => {
                    if let Some(response) = http::handle(request, &http_ctx).into_now() {
                        outbox.push_unchecked(response)
                    }
                }
            });
        self.pending_joins += joins;
        entry.after_input(close, auth, settings, now);
    }

    /// `Shard::after_change`.
    fn after_change(&mut self) {
        let e = self.entry();
        if e.conn.is_done() {
            self.finish();
        } else if !e.conn.has_output() && e.conn.wants_write_shutdown() {
            e.conn.handle_write_shutdown();
        }
    }

    /// `Shard::finish`: the connection's subscriptions go, the socket is closed.
    fn finish(&mut self) {
        let ingress = &common::embedded().ingress;
        let e = self.table.get_id_mut(self.id).expect("entry");
        commands::unsubscribe_all(0, self.id.slot, &mut e.session, &mut self.topics, ingress);
        self.finished = true;
    }

    /// `Shard::run_timers` for this connection: its deadlines that are due.
    fn sweep(&mut self) {
        let now = self.now();
        let settings = self.settings.clone();
        let e = self.entry();
        if e.conn.poll_timeout().is_some_and(|at| at <= now) {
            e.conn.handle_timeout(now, &settings);
        }
    }

    /// `Shard::flush` for this connection: the batch the driver is handed.
    fn start_send(&mut self) -> Option<SendBatch> {
        if self.in_flight.is_some() {
            return None; // `Entry::sending`: one send at a time
        }
        let e = self.table.get_id_mut(self.id).expect("entry");
        if !e.conn.has_output() {
            return None;
        }
        let mut batch = SendBatch::default();
        e.conn.poll_transmit(&mut batch);
        assert_eq!(batch.len, batch.slices().map(<[u8]>::len).sum::<usize>());
        assert!(
            batch.len > 0,
            "an outbox with bytes queued filled an empty batch"
        );
        Some(batch)
    }

    /// The driver wrote the first `limit` bytes of `batch` (what the peer receives).
    fn complete_send(&mut self, batch: SendBatch, limit: usize) {
        let n = batch.len.min(limit);
        let mut left = n;
        for s in batch.slices() {
            let take = s.len().min(left);
            self.written.extend_from_slice(&s[..take]);
            left -= take;
        }
        self.entry().conn.handle_sent(n);
    }

    /// One send of at most `limit` bytes, completed at once (a short write, as either backend may report).
    fn send(&mut self, limit: usize) {
        if let Some(batch) = self.start_send() {
            self.complete_send(batch, limit);
        }
    }

    /// A tick batch from the distributor: one event on every channel the connection is live on.
    fn tick(&mut self, len: usize) {
        let now = self.now();
        self.frame += 1;
        let channels: Vec<Arc<str>> = self
            .entry()
            .session
            .channels
            .iter()
            .filter(|s| s.state == SubState::Live)
            .map(|s| s.name.clone())
            .take(8)
            .collect();
        let data = format!("\"{}\"", "x".repeat(len));
        let mut items = Vec::new();
        for (i, ch) in channels.into_iter().enumerate() {
            self.next_seq += 1;
            let mut out = BytesMut::new();
            put_event_frame(
                &mut out,
                &EventFields {
                    channel: &ch,
                    seq: self.next_seq,
                    frame: self.frame,
                    timestamp: "2026-01-01T00:00:00.000Z",
                    unix_ms: 0,
                    event_type: b"\"tick\"",
                    data: data.as_bytes(),
                    key: None,
                    snapshot: false,
                    binary: false,
                },
            );
            items.push(ChannelFrames {
                channel: ch,
                frames: out.freeze(),
                first_seq: self.next_seq,
                count: 1,
                delivery: if i % 2 == 0 {
                    Delivery::Reliable
                } else {
                    Delivery::Volatile
                },
                variants: None,
                exclusions: None,
                deflated: None,
                binary: None,
                binary_deflated: None,
                batch: None,
            });
        }
        let batch = TickBatch {
            frame: self.frame,
            boundaries: 0,
            items,
            acks: Vec::new(),
        };
        fanout::deliver(
            0,
            &batch,
            &mut self.topics,
            &mut self.table,
            &self.settings,
            now,
            &mut self.dirty,
        );
    }

    /// The distributor's answer to the oldest pending subscribe; with `refuse`, it refuses the
    /// first new channel (`max_channels` reached).
    fn answer_join(&mut self, refuse: bool) {
        if self.pending_joins == 0 {
            return;
        }
        self.pending_joins -= 1;
        let conn = self.id;
        let e = self.entry();
        let waiting: Vec<Arc<str>> = e
            .session
            .channels
            .iter()
            .filter(|s| s.state != SubState::Live)
            .map(|s| s.name.clone())
            .collect();
        let joined = Joined {
            request: JoinRequest {
                shard: 0,
                conn,
                id: Some("7".into()),
                reply: Some(JoinReply::Subscribe),
                names: waiting.iter().map(|c| c.to_string()).collect(),
                channels: waiting.iter().map(|c| (c.clone(), None)).collect(),
                form: Default::default(),
            },
            channels: waiting
                .iter()
                .enumerate()
                .map(|(i, c)| JoinedChannel {
                    name: c.clone(),
                    seq: 0,
                    epoch: Arc::from("fuzzepoch"),
                    recovered: None,
                    frames: Vec::new(),
                    events: 0,
                    refused: refuse && i == 0,
                })
                .collect(),
        };
        let e = common::embedded();
        let policy = if self.strict { &e.strict } else { &e.open };
        joined::apply(
            joined,
            &mut self.table,
            &mut self.topics,
            &e.ingress,
            joined::ShardView {
                shard: 0,
                policy,
                tick_hz: 60,
                wall: framecast::internals::wire::WallTime::from_unix_ms(1_800_000_000_000),
            },
        );
    }
}

/// Checks the bytes the server wrote: HTTP responses, then (after a 101) server frames.
fn check_output(out: &[u8], echo: bool) {
    let mut pos = 0;
    // HTTP part.
    loop {
        let rest = &out[pos..];
        if rest.is_empty() {
            return;
        }
        let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
            assert!(
                rest.starts_with(&b"HTTP/1.1 "[..rest.len().min(9)]),
                "the server wrote something else than an HTTP response first: {:?}",
                String::from_utf8_lossy(&rest[..rest.len().min(60)])
            );
            return; // truncated by the end of the connection
        };
        let head = std::str::from_utf8(&rest[..end]).expect("response head is text");
        assert!(
            head.starts_with("HTTP/1.1 "),
            "the server wrote something else than an HTTP response first: {:?}",
            &head[..head.len().min(60)]
        );
        let status = &head[9..12];
        pos += end + 4;
        if status == "101" {
            break;
        }
        let cl: usize = head
            .split("\r\n")
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap_or_else(|| panic!("no Content-Length in {head:?}"))
            .parse()
            .unwrap();
        pos += cl;
        if pos > out.len() {
            return;
        }
    }
    // WebSocket part.
    while pos < out.len() {
        let rest = &out[pos..];
        if rest.len() < 2 {
            return;
        }
        let (len, head) = match rest[1] & 0x7F {
            126 if rest.len() >= 4 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
            127 if rest.len() >= 10 => (
                u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => return,
            n => (n as usize, 2),
        };
        if rest.len() < head + len {
            return; // the connection ended mid-frame
        }
        let frame = &rest[..head + len];
        let (op, payload) = common::server_frame_parts(frame);
        match op {
            1 if echo => {
                std::str::from_utf8(payload).expect("echoed text is UTF-8");
            }
            1 => common::assert_json("server text frame", payload),
            2 => assert!(echo, "binary frame on the native endpoint"),
            8 => {
                assert!(payload.len() >= 2 && payload.len() <= 125, "close payload");
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                // The server's own codes, or the peer's echoed (RFC 6455 §7.4).
                assert!(
                    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999),
                    "close code {code}"
                );
                std::str::from_utf8(&payload[2..]).expect("close reason UTF-8");
            }
            9 | 10 => assert!(payload.len() <= 125),
            other => panic!("server sent opcode {other}"),
        }
        pos += head + len;
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let flags: u8 = u.arbitrary().unwrap_or(0);
    let mut settings = common::settings();
    if flags & 4 != 0 {
        settings.max_queued_bytes = 4096;
    }
    let now = base();
    let mut table = ConnTable::default();
    let session = Session::default();
    let admission = if flags & 1 != 0 {
        Admission::Full {
            goodbye: framecast::internals::wire::reply::reconnect(2500, "server full"),
        }
    } else {
        Admission::Admit
    };
    let id = table.insert(Entry::new(Conn::new(now, &settings, admission), session));
    let mut h = Harness {
        settings,
        table,
        topics: Topics::default(),
        dirty: SendQueue::new(now),
        id,
        offset: Duration::ZERO,
        strict: flags & 2 != 0,
        pending_joins: 0,
        in_flight: None,
        written: Vec::new(),
        next_seq: 0,
        frame: 0,
        finished: false,
    };
    let mut echo_seen = false;
    while !u.is_empty() && !h.finished {
        let tag: u8 = u.arbitrary().unwrap_or(0);
        match tag % 13 {
            0 | 1 => {
                let n = u.arbitrary::<u16>().unwrap_or(0) as usize;
                let c = if tag % 13 == 1 {
                    (u.arbitrary::<u16>().unwrap_or(0) as usize).max(1)
                } else {
                    usize::MAX
                };
                let n = n.min(u.len());
                let bytes = u.bytes(n).unwrap_or(&[]).to_vec();
                for chunk in bytes.chunks(c.min(bytes.len()).max(1)) {
                    let mut chunk = chunk.to_vec();
                    h.on_data(&mut chunk);
                    if h.entry().conn.is_done() {
                        break;
                    }
                }
            }
            2 => h.offset += Duration::from_millis(u.arbitrary::<u16>().unwrap_or(0).into()),
            3 => h.offset += Duration::from_secs(u.arbitrary::<u8>().unwrap_or(0).into()),
            4 => h.sweep(),
            5 => {
                let n = u.arbitrary::<u16>().unwrap_or(0xFFFF);
                h.send(if n == 0xFFFF { usize::MAX } else { n.into() });
            }
            6 => {
                let len = u.arbitrary::<u16>().unwrap_or(0) as usize;
                h.tick(len % 8192);
            }
            7 => h.answer_join(false),
            12 => h.answer_join(true),
            8 => h.entry().conn.handle_peer_gone(),
            10 => h.in_flight = h.in_flight.take().or_else(|| h.start_send()),
            11 => {
                let n = u.arbitrary::<u16>().unwrap_or(0xFFFF);
                if let Some(batch) = h.in_flight.take() {
                    h.complete_send(batch, if n == 0xFFFF { usize::MAX } else { n.into() });
                }
            }
            _ => {
                let now = h.now();
                let e = h.entry();
                if !e.conn.is_native() {
                    e.conn.close(
                        CloseCode::GOING_AWAY,
                        "server shutting down",
                        CloseReason::Shutdown,
                        now,
                    );
                } else {
                    if e.conn.is_open() {
                        e.conn.queue(framecast::internals::wire::reply::reconnect(
                            5000, "shutdown",
                        ));
                    }
                    e.conn.close(
                        CloseCode::GOING_AWAY,
                        "server shutting down",
                        CloseReason::Shutdown,
                        now,
                    );
                }
            }
        }
        let e = h.entry();
        echo_seen |= e.conn.is_open() && !e.conn.is_native();
        h.after_change();
    }
    if let Some(batch) = h.in_flight.take() {
        if !h.finished {
            h.complete_send(batch, usize::MAX);
        }
    }
    if !h.finished {
        // The peer reads everything that is queued.
        for _ in 0..1000 {
            if !h.entry().conn.has_output() {
                break;
            }
            h.send(usize::MAX);
        }
        assert!(!h.entry().conn.has_output(), "outbox never drains");
        h.finish();
    }
    let echo = echo_seen || (!h.entry().conn.is_native() && h.written.starts_with(b"HTTP/1.1 101"));
    check_output(&h.written, echo);
});
