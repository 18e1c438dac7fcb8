//! The load generator's publisher: messages at a fixed average rate, sent in bursts every tick
//! (what is due is computed from elapsed time, so the average is exact), over one WebSocket
//! connection (several frames per write) or HTTP POST (keep-alive). Every message is rendered
//! from a [`Template`], so its `T=` marker carries the send time in nanoseconds since the epoch.
//! With `--deflate` the WebSocket publisher offers permessage-deflate too (it sends uncompressed
//! all the same, and drops what it receives without inflating it).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::deflate;
use super::frames::{parse_server_frame, put_client_frame, Opcode};
use super::now_ns;
use super::template::Template;

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
    let stream = TcpStream::connect(plan.addr)?;
    stream.set_nodelay(true)?;
    let writer = Arc::new(Mutex::new(stream.try_clone()?));
    let mut http_reader = None;
    match plan.mode {
        PublishMode::WebSocket => {
            let req = format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: cHVibGlzaGVyMDEyMzQ1Ng==\r\n{}\r\n",
                plan.path,
                plan.host,
                deflate::offer_line(plan.deflate)
            );
            writer.lock().expect("writer").write_all(req.as_bytes())?;
            let mut reader = BufReader::new(stream);
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
            // Read whatever the server sends (a raw peer rebroadcasts everything to the
            // publisher too) so it never blocks on us; answer pings so it keeps us.
            let pong_writer = writer.clone();
            std::thread::spawn(move || drain(reader, &pong_writer));
        }
        PublishMode::Http => http_reader = Some(BufReader::new(stream)),
    }
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
                    writer.lock().expect("writer").write_all(&out)?;
                    out.clear();
                    read_http_response(http_reader.as_mut().expect("http mode"))?;
                }
            }
            plan.sent.fetch_add(1, Ordering::Relaxed);
        }
        if !out.is_empty() {
            writer.lock().expect("writer").write_all(&out)?;
        }
        let now = Instant::now();
        std::thread::sleep(pacer.next_tick(now).saturating_duration_since(now));
    }
    Ok(())
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

fn read_http_response(reader: &mut BufReader<TcpStream>) -> io::Result<()> {
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
