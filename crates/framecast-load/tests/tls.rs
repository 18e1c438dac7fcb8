//! Whole runs over `wss://` against a tiny TLS rebroadcasting server (rustls, the repository's
//! test certificates): it answers WebSocket upgrades, pings every connection once, and sends
//! every text frame or HTTP POST body it gets to every WebSocket connection (the publisher
//! included, so the publisher has to read and answer over its one TLS session too).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use framecast_load::{run_with, LoadConfig, LoadError, LoadReport, PublishMode, Size, Traffic};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/tls")
        .join(name)
}

fn server_config(kind: &str) -> Arc<ServerConfig> {
    let certs = CertificateDer::pem_file_iter(fixture(&format!("server-{kind}.pem")))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(fixture(&format!("server-{kind}.key"))).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    Arc::new(config)
}

/// A server-side session and the socket it writes to.
struct Session {
    tls: ServerConnection,
    sock: TcpStream,
}

impl Session {
    fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.tls.writer().write_all(data)?;
        self.flush()
    }

    fn flush(&mut self) -> std::io::Result<()> {
        while self.tls.wants_write() {
            self.tls.write_tls(&mut self.sock)?;
        }
        Ok(())
    }
}

type Conns = Arc<Mutex<Vec<Arc<Mutex<Session>>>>>;

/// A final unmasked server frame.
fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n @ 0..=125 => f.push(n as u8),
        n @ 126..=0xffff => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

/// (opcode, unmasked payload) of the complete client frames at the start of `buf`, and the
/// bytes used.
fn client_frames(buf: &[u8]) -> (Vec<(u8, Vec<u8>)>, usize) {
    let (mut out, mut at) = (Vec::new(), 0);
    while buf.len() >= at + 2 {
        let (len, hdr) = match buf[at + 1] & 0x7f {
            126 if buf.len() >= at + 4 => {
                (u16::from_be_bytes([buf[at + 2], buf[at + 3]]) as usize, 4)
            }
            127 if buf.len() >= at + 10 => (
                u64::from_be_bytes(buf[at + 2..at + 10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => break,
            n => (n as usize, 2),
        };
        if buf.len() < at + hdr + 4 + len {
            break;
        }
        let key = &buf[at + hdr..at + hdr + 4];
        let body = &buf[at + hdr + 4..at + hdr + 4 + len];
        let payload = body
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        out.push((buf[at] & 0x0f, payload));
        at += hdr + 4 + len;
    }
    (out, at)
}

fn broadcast(conns: &Conns, frame: &[u8]) {
    let all: Vec<_> = conns.lock().unwrap().clone();
    for c in all {
        let _ = c.lock().unwrap().send(frame);
    }
}

/// Serves `listener` over TLS until the test ends; counts the pongs it gets.
fn serve(listener: TcpListener, config: Arc<ServerConfig>, pongs: Arc<AtomicU64>) {
    let conns: Conns = Arc::default();
    for stream in listener.incoming() {
        let Ok(mut reader) = stream else { return };
        let session = Arc::new(Mutex::new(Session {
            tls: ServerConnection::new(config.clone()).unwrap(),
            sock: reader.try_clone().unwrap(),
        }));
        let (conns, pongs) = (conns.clone(), pongs.clone());
        std::thread::spawn(move || {
            let mut chunk = vec![0u8; 64 * 1024];
            let mut plain = Vec::new();
            let mut upgraded = false;
            loop {
                // read outside the lock: broadcasts write to this session meanwhile
                let Ok(n @ 1..) = reader.read(&mut chunk) else {
                    return;
                };
                {
                    let mut s = session.lock().unwrap();
                    let mut data = &chunk[..n];
                    while !data.is_empty() {
                        s.tls.read_tls(&mut data).unwrap();
                        if s.tls.process_new_packets().is_err() {
                            let _ = s.flush(); // the alert
                            return;
                        }
                        // (rustls holds 16 KiB of plaintext at most)
                        let _ = s.tls.reader().read_to_end(&mut plain);
                    }
                    if s.flush().is_err() {
                        return;
                    }
                }
                if !upgraded {
                    let Some(end) = plain.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    if plain.starts_with(b"POST ") {
                        // HTTP publishing: every body to every WebSocket connection
                        let head = String::from_utf8_lossy(&plain[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        if plain.len() < end + 4 + len {
                            continue;
                        }
                        let body: Vec<u8> = plain.drain(..end + 4 + len).skip(end + 4).collect();
                        broadcast(&conns, &server_frame(1, &body));
                        let ok = b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok";
                        if session.lock().unwrap().send(ok).is_err() {
                            return;
                        }
                        continue;
                    }
                    assert!(plain.starts_with(b"GET "));
                    plain.drain(..end + 4);
                    let answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
                    let mut s = session.lock().unwrap();
                    s.send(answer).unwrap();
                    s.send(&server_frame(9, b"hi")).unwrap();
                    drop(s);
                    conns.lock().unwrap().push(session.clone());
                    upgraded = true;
                }
                let (frames, used) = client_frames(&plain);
                plain.drain(..used);
                for (opcode, payload) in frames {
                    match opcode {
                        1 => broadcast(&conns, &server_frame(1, &payload)),
                        0xa => {
                            pongs.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
            }
        });
    }
}

/// A server with the `kind` certificate: its port and its pong counter.
fn start(kind: &str) -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let pongs = Arc::new(AtomicU64::new(0));
    let (config, p) = (server_config(kind), pongs.clone());
    std::thread::spawn(move || serve(listener, config, p));
    (port, pongs)
}

fn config(url: String, subscribers: usize, rate: f64, mode: PublishMode) -> LoadConfig {
    LoadConfig {
        url,
        subscribers,
        channels: 1,
        rate,
        payload: 0,
        mode,
        api_key: None,
        warmup: Duration::from_millis(300),
        duration: Duration::from_millis(700),
        settle: Duration::from_millis(100),
        threads: 2,
        connect_concurrency: 10,
        server_pid: None,
        progress: false,
    }
}

fn traffic(mode: PublishMode, total: usize, publish_url: String, ca: &str) -> Traffic {
    let mut t = Traffic::framecast(mode, 0);
    t.subscribe = None;
    t.publish = "T={T} SEQ={SEQ} {PAD}".into();
    t.size = Size::Total(total);
    t.publish_url = Some(publish_url);
    t.tls_ca = Some(fixture(ca));
    t
}

fn assert_all_delivered(r: &LoadReport, subs: u64) {
    assert_eq!(
        (r.subscribers, r.errors, r.disconnects),
        (subs, 0, 0),
        "{r:?}"
    );
    assert!(r.published_per_second > 0.0, "{r:?}");
    assert!(r.delivery_ratio > 0.9, "{r:?}");
    assert!(r.latency_ms.count > 0, "{r:?}");
}

#[test]
fn wss_subscribers_and_publisher_by_name_and_by_address() {
    let (port, pongs) = start("rsa");
    let cfg = config(
        format!("wss://localhost:{port}/"),
        6,
        200.0,
        PublishMode::WebSocket,
    );
    let t = traffic(
        PublishMode::WebSocket,
        200,
        format!("wss://127.0.0.1:{port}/"),
        "ca.pem",
    );
    let r = run_with(&cfg, &t).unwrap();
    assert_all_delivered(&r, 6);
    // what was decrypted is read as over ws://: 200 bytes and a 4-byte header
    assert!((r.wire_bytes_per_msg.unwrap() - 204.0).abs() < 1.0, "{r:?}");
    // every connection answered the server's ping, the publisher too
    assert_eq!(pongs.load(Ordering::Relaxed), 7);
}

#[test]
fn large_messages_over_many_records_and_http_publishing_over_tls() {
    let (port, _) = start("ecdsa");
    // 40 KB messages span several TLS records and reads
    let cfg = config(
        format!("wss://127.0.0.1:{port}/"),
        3,
        50.0,
        PublishMode::Http,
    );
    let t = traffic(
        PublishMode::Http,
        40_000,
        format!("wss://localhost:{port}/"),
        "ca.pem",
    );
    let r = run_with(&cfg, &t).unwrap();
    assert_all_delivered(&r, 3);
    assert!(
        (r.payload_bytes_per_msg.unwrap() - 40_000.0).abs() < 1.0,
        "{r:?}"
    );
}

#[test]
fn a_certificate_the_ca_file_does_not_vouch_for_fails_every_subscriber() {
    let (port, _) = start("rsa");
    let cfg = config(
        format!("wss://localhost:{port}/"),
        2,
        10.0,
        PublishMode::WebSocket,
    );
    // another certificate as the only root: the server's is of an unknown issuer
    let t = traffic(
        PublishMode::WebSocket,
        100,
        format!("wss://localhost:{port}/"),
        "server-ecdsa.pem",
    );
    match run_with(&cfg, &t) {
        Err(LoadError::NoSubscribers(url)) => assert!(url.starts_with("wss://")),
        other => panic!("{other:?}"),
    }
}
