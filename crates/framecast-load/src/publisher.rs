//! The load generator's publisher: messages at a fixed average rate, sent in bursts every tick
//! (what is due is computed from elapsed time, so the average is exact), over one WebSocket
//! connection (several frames per write) or HTTP POST (keep-alive). Every message is rendered
//! from a [`Template`], so its `T=` marker carries the send time in nanoseconds since the epoch.
//! With `--deflate` the WebSocket publisher offers permessage-deflate too (it sends uncompressed
//! all the same, and drops what it receives without inflating it).
//!
//! Over `ws://` a drain thread reads what the server sends on a clone of the socket. A TLS
//! session cannot be split between threads, so over `wss://` the publisher thread owns the one
//! session on a non-blocking socket: after every tick's writes it reads and drops what the
//! server sent (answering pings) until nothing is left, then sleeps to the next tick as over
//! `ws://`. (A short socket read timeout would do too, but Linux rounds it up to whole timer
//! ticks: 1 ms waits ~8 ms on a 250 Hz kernel, and the bursts would not be those of `ws://`.)
//! HTTP publishing works over TLS as well: request, then response, on the one session.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use super::deflate;
use super::frames::{parse_server_frame, put_client_frame, Opcode};
use super::now_ns;
use super::template::Template;
use super::transport::{TlsClient, TlsConn, CIPHER_CHUNK};

/// How the publisher sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishMode {
    /// Text frames over a WebSocket (framecast: `publish` commands; a raw peer rebroadcasts them).
    WebSocket,
    /// `POST` of the rendered template (framecast: `/api/v1/broadcast`).
    Http,
}

/// What the publisher does.
pub struct PublisherPlan {
    /// Server address.
    pub addr: SocketAddr,
    /// Host header.
    pub host: String,
    /// WebSocket path.
    pub path: String,
    /// `wss://`: the TLS configuration and server name (HTTP mode: POSTs over TLS too).
    pub tls: Option<TlsClient>,
    /// Path POSTed to in HTTP mode.
    pub http_path: String,
    /// Bearer key for HTTP mode.
    pub api_key: Option<String>,
    /// Transport.
    pub mode: PublishMode,
    /// Channels, published to round-robin (`{CHANNEL}`).
    pub channels: Vec<String>,
    /// Messages per second.
    pub rate: f64,
    /// Burst period.
    pub tick: Duration,
    /// What each message looks like.
    pub template: Template,
    /// Offer permessage-deflate in the WebSocket upgrade.
    pub deflate: bool,
    /// Set when the server agreed to it.
    pub deflate_negotiated: Arc<AtomicBool>,
    /// Stop when set.
    pub stop: Arc<AtomicBool>,
    /// Messages sent.
    pub sent: Arc<AtomicU64>,
    /// Messages skipped because the publisher fell more than ~100 ms behind.
    pub skipped: Arc<AtomicU64>,
}

/// Messages due per tick at an exact average rate, never catching up more than ~100 ms.
pub struct Pacer {
    start: Instant,
    tick: Duration,
    per_tick: f64,
    due_sent: u64,
    max_backlog: u64,
}

impl Pacer {
    /// A pacer starting now.
    pub fn new(rate: f64, tick: Duration, start: Instant) -> Pacer {
        let per_tick = rate * tick.as_secs_f64();
        Pacer {
            start,
            tick,
            per_tick,
            due_sent: 0,
            max_backlog: (rate * 0.1).max(per_tick * 2.0).ceil() as u64 + 1,
        }
    }

    /// (messages to send now, messages skipped) at `now`.
    pub fn due(&mut self, now: Instant) -> (u64, u64) {
        let ticks = (now.saturating_duration_since(self.start).as_nanos()
            / self.tick.as_nanos().max(1)) as u64
            + 1;
        // (the epsilon keeps 625/s × 16 ms from flooring 9.999… to 9)
        let due = (ticks as f64 * self.per_tick + 1e-6).floor() as u64;
        let mut skipped = 0;
        if due > self.due_sent + self.max_backlog {
            skipped = due - self.due_sent - self.max_backlog;
            self.due_sent += skipped;
        }
        let n = due.saturating_sub(self.due_sent);
        self.due_sent += n;
        (n, skipped)
    }

    /// When the tick after `now` starts.
    pub fn next_tick(&self, now: Instant) -> Instant {
        let tick = self.tick.as_nanos().max(1);
        let ticks = now.saturating_duration_since(self.start).as_nanos() / tick + 1;
        self.start + Duration::from_nanos((ticks * tick) as u64)
    }
}

/// Runs until `stop`.
pub fn run_publisher(mut plan: PublisherPlan) -> io::Result<()> {
    let mut link = match plan.tls.take() {
        None => connect_plain(&plan)?,
        Some(tls) => connect_tls(&plan, &tls)?,
    };
    let start = Instant::now();
    let mut pacer = Pacer::new(plan.rate, plan.tick, start);
    let mut seq: u64 = 0;
    let mut out = Vec::with_capacity(64 * 1024);
    let mut msg = Vec::with_capacity(1024);
    while !plan.stop.load(Ordering::Relaxed) {
        let (n, skipped) = pacer.due(Instant::now());
        plan.skipped.fetch_add(skipped, Ordering::Relaxed);
        out.clear();
        for _ in 0..n {
            let channel = &plan.channels[seq as usize % plan.channels.len()];
            plan.template.render(&mut msg, now_ns(), seq, channel);
            seq += 1;
            match plan.mode {
                PublishMode::WebSocket => {
                    put_client_frame(&mut out, Opcode::Text, &msg, [9, 8, 7, 6]);
                }
                PublishMode::Http => {
                    let auth = plan
                        .api_key
                        .as_ref()
                        .map(|k| format!("Authorization: Bearer {k}\r\n"))
                        .unwrap_or_default();
                    out.extend_from_slice(format!(
                        "POST {} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        plan.http_path, plan.host, msg.len()
                    ).as_bytes());
                    out.extend_from_slice(&msg);
                    link.send(&out)?;
                    out.clear();
                    link.read_http_response()?;
                }
            }
            plan.sent.fetch_add(1, Ordering::Relaxed);
        }
        if !out.is_empty() {
            link.send(&out)?;
        }
        link.after_tick()?;
        let now = Instant::now();
        std::thread::sleep(pacer.next_tick(now).saturating_duration_since(now));
    }
    Ok(())
}

/// Where the publisher's bytes go.
enum Link {
    /// `ws://`: writes under a lock the drain thread (WebSocket mode) takes for its pongs; the
    /// reader of HTTP responses (HTTP mode).
    Plain {
        writer: Arc<Mutex<TcpStream>>,
        http_reader: Option<BufReader<TcpStream>>,
    },
    /// `wss://` WebSocket mode: what the server sends is read after every tick.
    TlsWs(Box<TlsPublisher>),
    /// `wss://` HTTP mode.
    TlsHttp(Box<BufReader<TlsPublisher>>),
}

impl Link {
    /// Sends `data` whole.
    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Link::Plain { writer, .. } => writer.lock().expect("writer").write_all(data),
            Link::TlsWs(t) => t.send(data),
            Link::TlsHttp(r) => r.get_mut().send(data),
        }
    }

    /// Reads one HTTP response (HTTP mode).
    fn read_http_response(&mut self) -> io::Result<()> {
        match self {
            Link::Plain { http_reader, .. } => {
                read_http_response(http_reader.as_mut().expect("http mode"))
            }
            Link::TlsHttp(r) => read_http_response(r),
            Link::TlsWs(_) => unreachable!("http mode"),
        }
    }

    /// `wss://` WebSocket mode: reads and drops what the server sent, answering pings.
    fn after_tick(&mut self) -> io::Result<()> {
        match self {
            Link::TlsWs(t) => {
                t.drain()?;
                t.flush_all()
            }
            _ => Ok(()),
        }
    }
}

/// The upgrade request of the publisher.
fn upgrade_request(plan: &PublisherPlan) -> String {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: cHVibGlzaGVyMDEyMzQ1Ng==\r\n{}\r\n",
        plan.path,
        plan.host,
        deflate::offer_line(plan.deflate)
    )
}

/// Reads the upgrade answer (status line and headers) and records whether permessage-deflate
/// was agreed.
fn read_upgrade(reader: &mut impl BufRead, plan: &PublisherPlan) -> io::Result<()> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if !line.starts_with("HTTP/1.1 101") {
        return Err(io::Error::other(format!(
            "publisher upgrade refused: {}",
            line.trim()
        )));
    }
    let mut head = line.clone(); // the status line, then the headers
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let agreed = deflate::parse_answer(&deflate::extension_values(&head), plan.deflate)
        .map_err(|e| io::Error::other(format!("publisher upgrade: {e}")))?;
    plan.deflate_negotiated
        .store(agreed.is_some(), Ordering::Relaxed);
    Ok(())
}

/// `ws://`: connects, upgrades (WebSocket mode) and starts the drain thread.
fn connect_plain(plan: &PublisherPlan) -> io::Result<Link> {
    let stream = TcpStream::connect(plan.addr)?;
    stream.set_nodelay(true)?;
    let writer = Arc::new(Mutex::new(stream.try_clone()?));
    let mut http_reader = None;
    match plan.mode {
        PublishMode::WebSocket => {
            let req = upgrade_request(plan);
            writer.lock().expect("writer").write_all(req.as_bytes())?;
            let mut reader = BufReader::new(stream);
            read_upgrade(&mut reader, plan)?;
            // Read whatever the server sends (a raw peer rebroadcasts everything to the
            // publisher too) so it never blocks on us; answer pings so it keeps us.
            let pong_writer = writer.clone();
            std::thread::spawn(move || drain(reader, &pong_writer));
        }
        PublishMode::Http => http_reader = Some(BufReader::new(stream)),
    }
    Ok(Link::Plain {
        writer,
        http_reader,
    })
}

/// `wss://`: connects, shakes hands and upgrades (WebSocket mode).
fn connect_tls(plan: &PublisherPlan, tls: &TlsClient) -> io::Result<Link> {
    let mut t = TlsPublisher::connect(plan.addr, tls)?;
    Ok(match plan.mode {
        PublishMode::WebSocket => {
            t.send(upgrade_request(plan).as_bytes())?;
            let mut reader = BufReader::new(t);
            read_upgrade(&mut reader, plan)?;
            let early = reader.buffer().to_vec(); // frames right after the answer
            let mut t = reader.into_inner();
            t.incoming = Some(early);
            Link::TlsWs(Box::new(t))
        }
        PublishMode::Http => Link::TlsHttp(Box::new(BufReader::new(t))),
    })
}

/// The publisher's TLS session, driven from its one thread on a non-blocking socket that a
/// private poll waits on.
struct TlsPublisher {
    conn: TlsConn,
    poll: Poll,
    events: Events,
    cipher: Vec<u8>,
    chunk: Vec<u8>,
    pong: Vec<u8>,
    /// WebSocket mode, once upgraded: what the server sent and is not a whole frame yet.
    incoming: Option<Vec<u8>>,
}

impl TlsPublisher {
    fn connect(addr: SocketAddr, tls: &TlsClient) -> io::Result<TlsPublisher> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        let mut sock = mio::net::TcpStream::from_std(stream);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut sock, Token(0), Interest::READABLE | Interest::WRITABLE)?;
        Ok(TlsPublisher {
            conn: TlsConn::new(sock, tls.session()?),
            poll,
            events: Events::with_capacity(4),
            cipher: vec![0; CIPHER_CHUNK],
            chunk: vec![0; 64 * 1024],
            pong: Vec::new(),
            incoming: None,
        })
    }

    /// Waits until the socket may take or bring bytes again (100 ms at most; the caller tries
    /// again either way).
    fn wait(&mut self) -> io::Result<()> {
        match self
            .poll
            .poll(&mut self.events, Some(Duration::from_millis(100)))
        {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(e),
            _ => Ok(()),
        }
    }

    /// Sends `data` and whatever else the session holds.
    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.conn.buffer(data)?;
        self.flush_all()
    }

    /// Writes all pending ciphertext, waiting for the socket when it is full (and reading
    /// what the server sends meanwhile, in WebSocket mode, so neither side waits for the
    /// other).
    fn flush_all(&mut self) -> io::Result<()> {
        loop {
            self.conn.flush()?;
            if !self.conn.wants_write() {
                return Ok(());
            }
            self.drain()?;
            self.wait()?;
        }
    }

    /// WebSocket mode: reads what the server sent until nothing is left, dropping it and
    /// answering pings (the pongs are sent with the next flush).
    fn drain(&mut self) -> io::Result<()> {
        let Some(buf) = self.incoming.as_mut() else {
            return Ok(());
        };
        loop {
            match self.conn.read(&mut self.chunk, &mut self.cipher) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the publisher's connection",
                    ))
                }
                Ok(n) => {
                    buf.extend_from_slice(&self.chunk[..n]);
                    if n < self.chunk.len() && !self.conn.more() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let mut used = 0;
        while let Some((frame, len)) = parse_server_frame(&buf[used..]) {
            if frame.opcode == Opcode::Ping as u8 {
                self.pong.clear();
                put_client_frame(&mut self.pong, Opcode::Pong, frame.payload, [3, 1, 4, 1]);
                self.conn.buffer(&self.pong)?;
            }
            used += len;
        }
        buf.drain(..used);
        Ok(())
    }
}

/// Blocking reads (the upgrade answer, HTTP responses), waiting on the poll.
impl Read for TlsPublisher {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.read(out, &mut self.cipher) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.flush_all()?;
                    self.wait()?;
                }
                r => return r,
            }
        }
    }
}

/// Reads and discards server frames, answering pings, until the connection ends.
fn drain(mut reader: BufReader<TcpStream>, writer: &Mutex<TcpStream>) {
    let mut buf: Vec<u8> = reader.buffer().to_vec();
    reader.consume(buf.len());
    let mut stream = reader.into_inner();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut pong = Vec::new();
    loop {
        let mut used = 0;
        while let Some((frame, len)) = parse_server_frame(&buf[used..]) {
            if frame.opcode == Opcode::Ping as u8 {
                pong.clear();
                put_client_frame(&mut pong, Opcode::Pong, frame.payload, [3, 1, 4, 1]);
                if writer.lock().expect("writer").write_all(&pong).is_err() {
                    return;
                }
            }
            used += len;
        }
        buf.drain(..used);
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn read_http_response(reader: &mut impl BufRead) -> io::Result<()> {
    let mut line = String::new();
    let mut length = 0usize;
    reader.read_line(&mut line)?;
    if !line.starts_with("HTTP/1.1 2") {
        return Err(io::Error::other(format!(
            "publish refused: {}",
            line.trim()
        )));
    }
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_sends_the_exact_average_in_bursts_and_skips_a_long_backlog() {
        let t0 = Instant::now();
        // 16 ms ticks, 10 per tick = 625/s: 10 at once at the start, 10 more per tick
        let mut p = Pacer::new(625.0, Duration::from_millis(16), t0);
        assert_eq!(p.due(t0), (10, 0));
        assert_eq!(p.due(t0 + Duration::from_millis(5)), (0, 0));
        assert_eq!(p.due(t0 + Duration::from_millis(16)), (10, 0));
        assert_eq!(
            p.next_tick(t0 + Duration::from_millis(17)),
            t0 + Duration::from_millis(32)
        );
        // 1 ms ticks at 1000/s over one second: 1000 in all
        let mut p = Pacer::new(1000.0, Duration::from_millis(1), t0);
        let sent: u64 = (0..1000)
            .map(|ms| p.due(t0 + Duration::from_millis(ms)).0)
            .sum();
        assert_eq!(sent, 1000);
        // a 2 s stall: at most ~100 ms are caught up, the rest counted as skipped
        let (n, skipped) = p.due(t0 + Duration::from_millis(3000));
        assert_eq!(n, 101);
        assert_eq!(n + skipped, 2001);
    }
}
