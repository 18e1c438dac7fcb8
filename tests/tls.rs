//! `wss://` served directly (tls_cert_file / tls_key_file) with a real TLS client (rustls via
//! tokio-rustls, trusting the test CA in tests/fixtures/tls) on both backends: the native
//! protocol, large events that need many records and partial writes, HTTP over TLS, RSA and
//! ECDSA certificates, certificate reload without a restart (the embedding API and SIGHUP on the
//! binary), a plain client and garbage on the TLS port, and config errors naming the key.
#![allow(clippy::disallowed_methods)] // tests read the clock

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::nats::TempDir;
use common::*;
use framecast::{Config, IoBackend, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Wss = WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

fn tls_config(io: IoBackend, kind: &str) -> Config {
    let mut c = config(io);
    c.tls_cert_file = Some(fixture(&format!("server-{kind}.pem")));
    c.tls_key_file = Some(fixture(&format!("server-{kind}.key")));
    c
}

/// A client trusting only the test CA.
fn connector() -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(fixture("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// A TLS stream to `addr` for `localhost`, and the certificate the server presented.
async fn tls_stream(
    addr: SocketAddr,
) -> (
    tokio_rustls::client::TlsStream<TcpStream>,
    CertificateDer<'static>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = tokio::time::timeout(DEADLINE, connector().connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake succeeds");
    let cert = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    (tls, cert.into_owned())
}

/// `wss://localhost/ws` on `addr`, with its `connected` message.
async fn connect_wss(addr: SocketAddr) -> (Wss, CertificateDer<'static>) {
    let (tls, cert) = tls_stream(addr).await;
    let url = format!("wss://localhost:{}/ws", addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("upgrade over TLS");
    assert_eq!(recv_wss(&mut ws).await["type"], "connected");
    (ws, cert)
}

async fn recv_wss(ws: &mut Wss) -> Value {
    loop {
        let m = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("no error");
        if let Message::Text(t) = m {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

async fn send_wss(ws: &mut Wss, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

async fn subscribe_wss(ws: &mut Wss, channel: &str) {
    send_wss(ws, json!({"type":"subscribe","channels":[channel]})).await;
    loop {
        if recv_wss(ws).await["type"] == "subscribed" {
            return;
        }
    }
}

fn pem_der(path: &Path) -> CertificateDer<'static> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
}

async fn wss_clients_get_events_large_ones_included(io: IoBackend) {
    let server = start(tls_config(io, "rsa"));
    let addr = server.local_addr();
    let (mut a, cert) = connect_wss(addr).await;
    assert_eq!(cert, pem_der(&fixture("server-rsa.pem")));
    let (mut b, _) = connect_wss(addr).await;
    subscribe_wss(&mut a, "news").await;
    subscribe_wss(&mut b, "news").await;
    // Many records per send, and more than a socket buffer takes at once.
    let big = "x".repeat(600_000);
    for n in 0..20 {
        server.publish("news", "n", &json!({ "n": n })).unwrap();
    }
    server
        .publish("news", "big", &json!({ "big": big }))
        .unwrap();
    for ws in [&mut a, &mut b] {
        for n in 0..20 {
            assert_eq!(recv_wss(ws).await["data"]["n"], n);
        }
        assert_eq!(
            recv_wss(ws).await["data"]["big"].as_str().unwrap().len(),
            600_000
        );
    }
    // Commands are read through TLS too.
    send_wss(&mut a, json!({"type":"ping","ping_id":7})).await;
    let pong = recv_wss(&mut a).await;
    assert_eq!(
        (pong["type"].as_str(), pong["ping_id"].as_u64()),
        (Some("pong"), Some(7))
    );
    a.close(None).await.unwrap();
    server.shutdown();
}

async fn http_is_served_over_tls_and_an_ecdsa_certificate_works(io: IoBackend) {
    let server = start(tls_config(io, "ecdsa"));
    let (mut tls, cert) = tls_stream(server.local_addr()).await;
    assert_eq!(cert, pem_der(&fixture("server-ecdsa.pem")));
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, tls.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    server.shutdown();
}

async fn plain_and_garbage_clients_on_the_tls_port_are_dropped_and_tls_clients_still_served(
    io: IoBackend,
) {
    let server = start(tls_config(io, "rsa"));
    let addr = server.local_addr();
    // A ws:// client: its HTTP request is not a TLS record.
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(DEADLINE, raw.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(
        matches!(n, Ok(0) | Err(_)) || !buf.starts_with(b"HTTP/1.1 101"),
        "a plain client got an upgrade"
    );
    // Random bytes after a client hello's first byte.
    let mut junk = TcpStream::connect(addr).await.unwrap();
    let mut bytes = vec![0x16u8, 0x03, 0x01, 0x00, 0x10];
    bytes.extend((0..200u32).map(|i| (i * 7919 % 251) as u8));
    junk.write_all(&bytes).await.unwrap();
    let _ = tokio::time::timeout(DEADLINE, junk.read(&mut buf)).await;
    let (mut ws, _) = connect_wss(addr).await;
    send_wss(&mut ws, json!({"type":"ping"})).await;
    assert_eq!(recv_wss(&mut ws).await["type"], "pong");
    // Both were counted (over TLS, the metrics too).
    let failures = server.state().totals().tls_failures;
    assert_eq!(failures, 2, "the plain client and the junk");
    let (mut tls, _) = tls_stream(addr).await;
    tls.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut metrics = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, tls.read_to_end(&mut metrics)).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("framecast_tls_failures_total 2"),
        "{metrics}"
    );
    server.shutdown();
}

async fn a_reload_serves_new_connections_the_new_certificate_and_keeps_open_ones(io: IoBackend) {
    let dir = TempDir::new("tls-reload");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::copy(fixture("server-rsa.pem"), &cert).unwrap();
    std::fs::copy(fixture("server-rsa.key"), &key).unwrap();
    let mut c = config(io);
    c.tls_cert_file = Some(cert.clone());
    c.tls_key_file = Some(key.clone());
    let server = start(c);
    let addr = server.local_addr();
    let (mut old, first) = connect_wss(addr).await;
    assert_eq!(first, pem_der(&fixture("server-rsa.pem")));
    // A broken pair is refused and the old certificate stays.
    std::fs::copy(fixture("server-ecdsa.pem"), &cert).unwrap();
    let e = server.reload_tls().unwrap_err().to_string();
    assert!(e.starts_with("tls_key_file"), "{e}");
    assert_eq!(connect_wss(addr).await.1, first);
    std::fs::copy(fixture("server-ecdsa.key"), &key).unwrap();
    assert!(server.reload_tls().unwrap());
    let (_new, second) = connect_wss(addr).await;
    assert_eq!(second, pem_der(&fixture("server-ecdsa.pem")));
    send_wss(&mut old, json!({"type":"ping"})).await;
    assert_eq!(
        recv_wss(&mut old).await["type"],
        "pong",
        "an open connection keeps its session"
    );
    server.shutdown();
}

async fn tls_settings_errors_name_the_key(io: IoBackend) {
    let mut c = config(io);
    c.tls_cert_file = Some(fixture("server-rsa.pem"));
    let e = Server::new(c.clone()).start().err().unwrap().to_string();
    assert!(e.contains("tls_key_file"), "{e}");
    c.tls_key_file = Some(fixture("missing.key"));
    let e = Server::new(c.clone()).start().err().unwrap().to_string();
    assert!(
        e.contains("tls_key_file") && e.contains("missing.key"),
        "{e}"
    );
    c.tls_cert_file = Some(fixture("server-rsa.key"));
    c.tls_key_file = Some(fixture("server-rsa.key"));
    let e = Server::new(c).start().err().unwrap().to_string();
    assert!(e.contains("tls_cert_file"), "{e}");
}

/// Whether this host's kernel has TLS, asked the way a sysadmin would check (`TCP_ULP` "tls"
/// on a connected socket), independently of the server's own probe. With
/// `FRAMECAST_EXPECT_KTLS=1` (the kernel-TLS VM run, tests/ktls/run.sh) it must.
fn kernel_has_tls() -> bool {
    use std::os::fd::AsRawFd;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let _server = listener.accept().unwrap();
    // SAFETY: `client` owns the descriptor for the call; the value is a live 3-byte buffer.
    let rc = unsafe {
        libc::setsockopt(
            client.as_raw_fd(),
            libc::SOL_TCP,
            libc::TCP_ULP,
            b"tls".as_ptr().cast(),
            3,
        )
    };
    let has = rc == 0;
    if std::env::var_os("FRAMECAST_EXPECT_KTLS").is_some_and(|v| v == "1") {
        assert!(
            has,
            "FRAMECAST_EXPECT_KTLS=1 but the kernel has no TLS module"
        );
    }
    has
}

/// Waits (bounded) until `count()` is `want`; returns what it last was.
async fn settles(want: u64, count: impl Fn() -> u64) -> u64 {
    let until = tokio::time::Instant::now() + DEADLINE;
    while count() != want && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    count()
}

/// After the handshake, every TLS 1.3 session goes to kernel TLS where the kernel has it (and
/// `tls_kernel` is not `off`), and stays in userspace where it does not: either way large and
/// small events arrive intact, commands are read, and the close ends with `close_notify` (the
/// client sees a clean end, not a truncation).
async fn sessions_go_to_kernel_tls_where_the_host_has_it(io: IoBackend) {
    let here = kernel_has_tls();
    for kernel_wanted in [true, false] {
        let mut c = tls_config(io, "ecdsa");
        c.tls_kernel = kernel_wanted;
        let server = start(c);
        let addr = server.local_addr();
        let (mut a, _) = connect_wss(addr).await;
        let (mut b, _) = connect_wss(addr).await;
        let expected = if here && kernel_wanted { 2 } else { 0 };
        let kernel_sessions = || server.state().totals().tls_kernel_sessions;
        // Handed over once idle after the upgrade: before any event is sent.
        assert_eq!(settles(expected, kernel_sessions).await, expected);
        subscribe_wss(&mut a, "k").await;
        subscribe_wss(&mut b, "k").await;
        let big: String = (0..700_000u32)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        for n in 0..50 {
            server.publish("k", "n", &json!({ "n": n })).unwrap();
        }
        server.publish("k", "big", &json!({ "big": big })).unwrap();
        server.publish("k", "n", &json!({ "n": 50 })).unwrap();
        for ws in [&mut a, &mut b] {
            for n in 0..50 {
                assert_eq!(recv_wss(ws).await["data"]["n"], n);
            }
            assert_eq!(
                recv_wss(ws).await["data"]["big"].as_str(),
                Some(big.as_str())
            );
            assert_eq!(recv_wss(ws).await["data"]["n"], 50);
        }
        // The client's records, opened by the session after the handover.
        for id in 0..20 {
            send_wss(&mut a, json!({"type":"ping","ping_id":id})).await;
            assert_eq!(recv_wss(&mut a).await["ping_id"], id);
        }
        send_wss(
            &mut b,
            json!({"type":"publish","channel":"k","event_type":"from_b","data":{"x":1}}),
        )
        .await;
        let mut from_b = recv_wss(&mut a).await;
        while from_b["type"] != "event" {
            from_b = recv_wss(&mut a).await;
        }
        assert_eq!(from_b["event_type"], "from_b");
        a.close(None).await.unwrap();
        loop {
            match tokio::time::timeout(DEADLINE, a.next())
                .await
                .expect("closed in time")
            {
                None => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("the close did not end cleanly: {e}"),
            }
        }
        assert_eq!(server.state().totals().tls_failures, 0);
        assert_eq!(kernel_sessions(), expected);
        server.shutdown();
    }
}

both_backends!(
    wss_clients_get_events_large_ones_included,
    http_is_served_over_tls_and_an_ecdsa_certificate_works,
    plain_and_garbage_clients_on_the_tls_port_are_dropped_and_tls_clients_still_served,
    a_reload_serves_new_connections_the_new_certificate_and_keeps_open_ones,
    tls_settings_errors_name_the_key,
    sessions_go_to_kernel_tls_where_the_host_has_it,
);

/// The binary: SIGHUP reloads the certificate (one log line), the start says whether kernel TLS
/// is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_of_the_running_binary() {
    let dir = TempDir::new("tls-sighup");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::copy(fixture("server-rsa.pem"), &cert).unwrap();
    std::fs::copy(fixture("server-rsa.key"), &key).unwrap();
    let args = [
        "--tls-cert-file",
        cert.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
    ];
    let (mut server, addr) = binary::ServerProcess::start(&args, None);
    assert!(
        server.lines.iter().any(|l| l.contains("kernel TLS")),
        "{:?}",
        server.lines
    );
    assert!(server
        .lines
        .iter()
        .any(|l| l.contains("scheme=\"wss\"") || l.contains("scheme=wss")));
    assert_eq!(
        connect_wss(addr).await.1,
        pem_der(&fixture("server-rsa.pem"))
    );
    std::fs::copy(fixture("server-ecdsa.pem"), &cert).unwrap();
    std::fs::copy(fixture("server-ecdsa.key"), &key).unwrap();
    // SAFETY: kill takes no pointers; the pid is our own child's.
    unsafe { libc::kill(server.pid() as i32, libc::SIGHUP) };
    let reloaded = server.wait_for_line(Duration::from_secs(20), |l| {
        l.contains("certificate reloaded")
    });
    assert!(reloaded.is_some(), "{:?}", server.lines);
    assert_eq!(
        connect_wss(addr).await.1,
        pem_der(&fixture("server-ecdsa.pem"))
    );
    assert!(server.stop().is_some_and(|s| s.success()));
}
