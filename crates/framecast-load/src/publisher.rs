//! The load generator's publisher: events at a fixed average rate (what is due is computed from
//! elapsed time every millisecond), over one WebSocket connection (`publish` commands, several
//! per write) or HTTP (`POST /api/v1/broadcast`, keep-alive). Each event's data carries `"t"`,
//! the send time in nanoseconds since the epoch.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::frames::put_client_frame;
use super::now_ns;
use framecast::protocol::frame::Kind;

/// How the publisher sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishMode {
    /// `publish` commands over a WebSocket.
    WebSocket,
    /// `POST /api/v1/broadcast`.
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
    /// Bearer key for HTTP mode.
    pub api_key: Option<String>,
    /// Transport.
    pub mode: PublishMode,
    /// Channels, published to round-robin.
    pub channels: Vec<String>,
    /// Events per second.
    pub rate: f64,
    /// Bytes of padding in each event's data.
    pub pad: usize,
    /// Stop when set.
    pub stop: Arc<AtomicBool>,
    /// Events sent.
    pub sent: Arc<AtomicU64>,
}

fn event_json(channel: &str, pad: &str, ws: bool) -> String {
    let data = format!(r#"{{"t":{},"pad":"{pad}"}}"#, now_ns());
    if ws {
        format!(r#"{{"type":"publish","channel":"{channel}","event_type":"load","data":{data}}}"#)
    } else {
        format!(r#"{{"channel":"{channel}","event_type":"load","data":{data}}}"#)
    }
}

/// Runs until `stop`.
pub fn run_publisher(plan: PublisherPlan) -> io::Result<()> {
    let mut stream = TcpStream::connect(plan.addr)?;
    stream.set_nodelay(true)?;
    let pad = "x".repeat(plan.pad);
    if plan.mode == PublishMode::WebSocket {
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: cHVibGlzaGVyMDEyMzQ1Ng==\r\n\r\n",
            plan.path, plan.host
        );
        stream.write_all(req.as_bytes())?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if !line.starts_with("HTTP/1.1 101") {
            return Err(io::Error::other(format!(
                "publisher upgrade refused: {line}"
            )));
        }
        // Drain whatever the server sends (connected, pings) so it never blocks on us.
        std::thread::spawn(move || {
            let mut sink = [0u8; 16 * 1024];
            while reader.read(&mut sink).is_ok_and(|n| n > 0) {}
        });
    }
    let mut http_reader = match plan.mode {
        PublishMode::Http => Some(BufReader::new(stream.try_clone()?)),
        PublishMode::WebSocket => None,
    };
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut next_channel = 0;
    let mut out = Vec::with_capacity(64 * 1024);
    while !plan.stop.load(Ordering::Relaxed) {
        let due = (start.elapsed().as_secs_f64() * plan.rate) as u64;
        // Skip a backlog older than ~100 ms instead of bursting it out.
        if due > sent + (plan.rate * 0.1) as u64 + 1 {
            sent = due - (plan.rate * 0.1) as u64;
        }
        out.clear();
        while sent < due {
            let channel = &plan.channels[next_channel % plan.channels.len()];
            next_channel += 1;
            match plan.mode {
                PublishMode::WebSocket => put_client_frame(
                    &mut out,
                    Kind::Text,
                    event_json(channel, &pad, true).as_bytes(),
                    [9, 8, 7, 6],
                ),
                PublishMode::Http => {
                    let body = event_json(channel, &pad, false);
                    let auth = plan
                        .api_key
                        .as_ref()
                        .map(|k| format!("Authorization: Bearer {k}\r\n"))
                        .unwrap_or_default();
                    let req = format!(
                        "POST /api/v1/broadcast HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        plan.host,
                        body.len()
                    );
                    stream.write_all(req.as_bytes())?;
                    read_http_response(http_reader.as_mut().expect("http mode"))?;
                }
            }
            sent += 1;
            plan.sent.fetch_add(1, Ordering::Relaxed);
        }
        if !out.is_empty() {
            stream.write_all(&out)?;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn read_http_response(reader: &mut BufReader<TcpStream>) -> io::Result<()> {
    let mut line = String::new();
    let mut length = 0usize;
    reader.read_line(&mut line)?;
    if !line.starts_with("HTTP/1.1 2") {
        return Err(io::Error::other(format!(
            "broadcast refused: {}",
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
