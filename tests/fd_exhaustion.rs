//! Open-files limits. A server with more clients than descriptors: accepting pauses (no
//! spinning, no log flood), existing clients keep being served, and as clients leave the waiting
//! ones are accepted, on both backends; the binary runs under RLIMIT_NOFILE = 64 (soft and hard,
//! so it cannot raise it) and 80 clients connect at once. And the binary raises a soft limit
//! to the hard one at start, and says how many connections that allows.
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

mod common;

use std::time::Duration;

use common::binary::ServerProcess;
use common::*;
use framecast::IoBackend;
use serde_json::json;
use tokio_tungstenite::MaybeTlsStream;

const NOFILE: u64 = 64;
const CLIENTS: usize = 80;
/// All the server may write to stderr during the test: start and stop lines plus a few
/// rate-limited warnings (before the fix io_uring wrote ~300,000 lines a second).
const MAX_LOG_LINES: usize = 30;

fn backend_flag(io: IoBackend) -> &'static str {
    match io {
        IoBackend::Uring => "uring",
        IoBackend::Epoll => "epoll",
        IoBackend::Auto => "auto",
    }
}

/// Connects and upgrades without a deadline: a client may wait in the backlog until others
/// leave.
async fn patient_client(addr: std::net::SocketAddr) -> Ws {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("tcp connect");
    let (mut ws, _) = tokio_tungstenite::client_async(url(addr), MaybeTlsStream::Plain(stream))
        .await
        .expect("upgrade");
    assert_eq!(recv(&mut ws).await["type"], "connected");
    ws
}

async fn assert_served(ws: &mut Ws) {
    common::send(ws, json!({"type":"ping"})).await;
    assert_eq!(recv(ws).await["type"], "pong");
}

async fn more_clients_than_descriptors_wait_without_a_log_flood_and_get_in_as_others_leave(
    io: IoBackend,
) {
    let (mut server, addr) = ServerProcess::start(
        &["--io", backend_flag(io), "--shards", "1"],
        Some((NOFILE, NOFILE)),
    );
    let (served_tx, mut served) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..CLIENTS {
        let tx = served_tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(patient_client(addr).await);
        });
    }

    // The server runs out of descriptors ...
    let exhausted = tokio::task::block_in_place(|| {
        server.wait_for_line(Duration::from_secs(30), |l| {
            l.contains("Too many open files")
        })
    });
    assert!(exhausted.is_some(), "never ran out: {:?}", server.lines);
    // ... and still serves the clients it has.
    let mut first = tokio::time::timeout(DEADLINE, served.recv())
        .await
        .expect("a client was served")
        .unwrap();
    assert_served(&mut first).await;

    // Clients leave one by one; each departure frees a descriptor for one that waited.
    first.close(None).await.unwrap();
    let mut count = 1;
    while count < CLIENTS {
        let mut ws = tokio::time::timeout(Duration::from_secs(30), served.recv())
            .await
            .unwrap_or_else(|_| panic!("only {count} of {CLIENTS} clients got in"))
            .unwrap();
        assert_served(&mut ws).await;
        ws.close(None).await.unwrap();
        count += 1;
    }
    let (mut late, _) = connect(addr).await;
    assert_served(&mut late).await;
    drop(late);

    let status = tokio::task::block_in_place(|| server.stop()).expect("server stops");
    assert!(status.success(), "exit status {status}");
    assert!(
        server.line_count <= MAX_LOG_LINES,
        "{} log lines, starting with {:#?}",
        server.line_count,
        &server.lines[..server.lines.len().min(10)]
    );
}

#[test]
fn the_binary_raises_its_soft_open_files_limit_to_the_hard_limit_and_reports_the_connections() {
    let (mut server, _addr) = ServerProcess::start(&["--shards", "2"], Some((256, 1024)));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        open_files.split_whitespace().collect::<Vec<_>>()[3..5],
        ["1024", "1024"],
        "{open_files}"
    );
    let listening = server
        .wait_for_line(Duration::ZERO, |l| l.contains("framecast listening"))
        .unwrap();
    let capacity = framecast::internals::driver::fd_limit::FD_RESERVE
        + 2 * framecast::internals::driver::fd_limit::FDS_PER_SHARD;
    let expected = format!("fd_connections={}", 1024 - capacity);
    assert!(listening.contains(&expected), "{listening}");
}

both_backends!(more_clients_than_descriptors_wait_without_a_log_flood_and_get_in_as_others_leave);
