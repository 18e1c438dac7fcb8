//! Shared test harness: start a real server on an ephemeral loopback port with either backend,
//! connect real WebSocket clients (tokio-tungstenite) or a raw TCP client that writes frames by
//! hand, and await messages with a deadline (never sleep-and-hope).
#![allow(dead_code)]

pub mod binary;
pub mod nats;

use std::net::SocketAddr;
use std::time::Duration;

use framecast::{Config, IoBackend, Server, ServerHandle};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A connected WebSocket client.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any single awaited thing may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Generates one test per backend from `async fn $name(io: IoBackend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn io_uring() {
                if $crate::common::uring_skipped() {
                    return;
                }
                super::$name(framecast::IoBackend::Uring).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn epoll() {
                super::$name(framecast::IoBackend::Epoll).await
            }
        }
    )*};
}

/// Whether this host cannot run the io_uring variants (io_uring blocked, as under Docker's
/// default seccomp profile, or `FRAMECAST_TEST_IO=epoll`). Says so once per test binary, on the
/// real stderr (not the captured test output), so a run shows what it did not test.
pub fn uring_skipped() -> bool {
    static WHY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let why = WHY.get_or_init(|| {
        let why = if std::env::var("FRAMECAST_TEST_IO").as_deref() == Ok("epoll") {
            Some("FRAMECAST_TEST_IO=epoll".to_string())
        } else {
            framecast::internals::driver::uring::probe()
                .err()
                .map(|e| format!("io_uring is unavailable here: {e}"))
        };
        if let Some(why) = &why {
            use std::io::Write;
            let exe = std::env::current_exe().ok();
            let suite = exe
                .as_deref()
                .and_then(|p| p.file_name())
                .map_or("?".into(), |n| n.to_string_lossy().into_owned());
            let _ = writeln!(
                std::io::stderr(),
                "io_uring variants of {suite} skipped (they pass trivially; the epoll variants ran): {why}"
            );
        }
        why
    });
    why.is_some()
}

/// A test configuration: loopback, ephemeral port, 2 shards, no pinning.
pub fn config(io: IoBackend) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        shards: 2,
        io,
        pin_cores: false,
        drain_timeout: Duration::from_secs(2),
        ..Config::default()
    }
}

/// Starts a server.
pub fn start(config: Config) -> ServerHandle {
    Server::new(config).start().expect("server starts")
}

/// `ws://addr/ws`.
pub fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/ws")
}

/// Connects and returns the client with its `connected` message.
pub async fn connect(addr: SocketAddr) -> (Ws, Value) {
    connect_url(&url(addr)).await
}

/// Connects to `url` (a query string may follow `/ws`) and returns the `connected` message.
pub async fn connect_url(url: &str) -> (Ws, Value) {
    let (mut ws, _) = tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect in time")
        .expect("upgrade succeeds");
    let hello = recv(&mut ws).await;
    assert_eq!(hello["type"], "connected");
    (ws, hello)
}

/// Sends a JSON value as a text message.
pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

/// Receives the next text message as JSON (pings are answered by the client library).
pub async fn recv(ws: &mut Ws) -> Value {
    serde_json::from_str(&recv_text(ws).await).expect("valid JSON")
}

/// The next data message exactly as the server sent it.
pub async fn recv_text(ws: &mut Ws) -> String {
    loop {
        let msg = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("message in time")
            .expect("stream open")
            .expect("no error");
        match msg {
            Message::Text(t) => return t.to_string(),
            Message::Binary(b) => return String::from_utf8(b.to_vec()).expect("UTF-8"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Subscribes and waits for the confirmation.
pub async fn subscribe(ws: &mut Ws, channels: &[&str]) -> Value {
    send(
        ws,
        serde_json::json!({"type":"subscribe","channels":channels}),
    )
    .await;
    let reply = recv(ws).await;
    assert_eq!(reply["type"], "subscribed", "{reply}");
    reply
}

/// Reads until the server's close frame and returns its code.
pub async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        let msg = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("close in time");
        match msg {
            Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
            Some(Ok(Message::Close(None))) => return 1005,
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("error before close frame: {e}"),
            None => panic!("stream ended without a close frame"),
        }
    }
}

const UPGRADE_WS: &str = "GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// A client that writes frames byte by byte, for protocol edge cases.
/// One WebSocket frame with `first` as its first byte; `masked` as a client must.
pub fn encode_frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut f = vec![first];
    let bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => f.push(bit | n as u8),
        n @ 126..=65535 => {
            f.push(bit | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(bit | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    if masked {
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    /// Opens a TCP connection and sends `request` as is.
    pub async fn send_request(addr: SocketAddr, request: &str) -> RawClient {
        let mut stream = TcpStream::connect(addr).await.expect("tcp connect");
        stream.write_all(request.as_bytes()).await.unwrap();
        RawClient {
            stream,
            buf: Vec::new(),
        }
    }

    /// Upgrades an already connected stream at `/ws` and reads past the 101 response.
    pub async fn from_stream(mut stream: TcpStream) -> RawClient {
        stream.write_all(UPGRADE_WS.as_bytes()).await.unwrap();
        let mut c = RawClient {
            stream,
            buf: Vec::new(),
        };
        let head = c.read_http_head().await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        c
    }

    /// Performs the upgrade at `path` and reads past the 101 response.
    pub async fn upgrade(addr: SocketAddr, path: &str) -> RawClient {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        let mut c = RawClient::send_request(addr, &req).await;
        let head = c.read_http_head().await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        c
    }

    /// Reads an HTTP response head.
    pub async fn read_http_head(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                return String::from_utf8(head).unwrap();
            }
            self.fill().await.expect("response head");
        }
    }

    async fn fill(&mut self) -> Option<()> {
        let mut tmp = [0u8; 8192];
        let n = tokio::time::timeout(DEADLINE, self.stream.read(&mut tmp))
            .await
            .expect("read in time")
            .ok()?;
        if n == 0 {
            return None;
        }
        self.buf.extend_from_slice(&tmp[..n]);
        Some(())
    }

    /// Writes one frame; `masked` as a client must.
    pub async fn send_frame(&mut self, first: u8, payload: &[u8], masked: bool) {
        let f = encode_frame(first, payload, masked);
        self.stream.write_all(&f).await.unwrap();
    }

    /// Reads one server frame: (first byte, payload); `None` at EOF.
    pub async fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.buf.len() >= 2 {
                let (hlen, len) = match self.buf[1] & 0x7f {
                    126 if self.buf.len() >= 4 => {
                        (4, u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize)
                    }
                    127 if self.buf.len() >= 10 => (
                        10,
                        u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (2, n as usize),
                };
                if hlen != usize::MAX && self.buf.len() >= hlen + len {
                    let first = self.buf[0];
                    let payload = self.buf[hlen..hlen + len].to_vec();
                    self.buf.drain(..hlen + len);
                    return Some((first, payload));
                }
            }
            self.fill().await?;
        }
    }

    /// Reads frames until a close frame and returns its code.
    pub async fn read_close_code(&mut self) -> u16 {
        loop {
            let (first, payload) = self.read_frame().await.expect("close frame before EOF");
            if first & 0x0f == 0x8 {
                return u16::from_be_bytes([payload[0], payload[1]]);
            }
        }
    }

    /// Reads the next text frame as JSON.
    pub async fn read_json(&mut self) -> Value {
        loop {
            let (first, payload) = self.read_frame().await.expect("frame");
            if first & 0x0f == 0x1 {
                return serde_json::from_slice(&payload).unwrap();
            }
        }
    }

    /// Waits for the server to close the TCP connection.
    pub async fn expect_eof(&mut self) {
        while self.fill().await.is_some() {}
    }
}
