//! Connections that go away in the middle of large sends, then a shutdown, on both backends.
//! Many subscribers get a burst of big events; some read it all, some stop reading (their sends
//! block in the kernel until the queue cap closes them), some reset the connection after the first
//! event. The server must keep the readers' streams whole, shut down in time, and, run under
//! valgrind by tests/sanitize.sh, touch no freed memory on the way.
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

mod common;

use std::time::Duration;

use common::*;
use framecast::IoBackend;
use serde_json::json;

const EVENTS: u64 = 100;
/// ~60 KB per event: 100 of them (6 MB) pass the default 4 MiB queue cap of a client that
/// does not read.
const BLOB: usize = 60_000;
const PER_GROUP: usize = 8;

/// A subscriber of `burst` over a raw socket.
async fn subscriber(addr: std::net::SocketAddr) -> RawClient {
    let mut c = RawClient::upgrade(addr, "/ws").await;
    assert_eq!(c.read_json().await["type"], "connected");
    let sub = json!({"type":"subscribe","channels":["burst"]}).to_string();
    c.send_frame(0x81, sub.as_bytes(), true).await;
    assert_eq!(c.read_json().await["type"], "subscribed");
    c
}

/// Reads events until the last one or a close frame; returns the sequence numbers seen and the
/// close code, if any.
async fn read_burst(mut c: RawClient) -> (Vec<u64>, Option<u16>) {
    let mut seqs = Vec::new();
    loop {
        let Some((first, payload)) = c.read_frame().await else {
            return (seqs, None);
        };
        match first & 0x0f {
            0x1 => {
                let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
                if v["type"] == "event" {
                    seqs.push(v["seq"].as_u64().unwrap());
                    if seqs.last() == Some(&EVENTS) {
                        return (seqs, None);
                    }
                }
            }
            0x8 => return (seqs, Some(u16::from_be_bytes([payload[0], payload[1]]))),
            _ => {}
        }
    }
}

/// Closes with a TCP reset instead of a FIN (SO_LINGER 0).
fn reset(c: RawClient) {
    socket2::SockRef::from(&c.stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c);
}

fn publish_burst(server: &framecast::ServerHandle) {
    let blob = "x".repeat(BLOB);
    for i in 0..EVENTS {
        server
            .publish("burst", "big", &json!({"i": i, "blob": blob}))
            .expect("publish accepted");
    }
}

async fn connect_groups(addr: std::net::SocketAddr) -> [Vec<RawClient>; 3] {
    let mut groups: [Vec<RawClient>; 3] = Default::default();
    for group in &mut groups {
        for _ in 0..PER_GROUP {
            group.push(subscriber(addr).await);
        }
    }
    groups
}

async fn shut_down(server: framecast::ServerHandle) {
    // drain_timeout is 2 s; the stalled clients never answer the close, so they are forced.
    tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || server.shutdown()),
    )
    .await
    .expect("shutdown finishes although clients stalled mid-send")
    .unwrap();
}

async fn readers_stay_whole_while_others_stall_or_reset_mid_burst_then_shutdown(io: IoBackend) {
    let server = start(config(io));
    let [readers, stalled, resetters] = connect_groups(server.local_addr()).await;
    publish_burst(&server);
    let reading: Vec<_> = readers
        .into_iter()
        .map(|c| tokio::spawn(read_burst(c)))
        .collect();
    for mut c in resetters {
        c.read_json().await; // the first event has started to arrive
        reset(c);
    }
    for task in reading {
        let (seqs, close) = task.await.unwrap();
        // Every event in order; a reader that fell behind on this loaded host may instead be
        // closed as a slow consumer, but never sees a gap.
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
        assert!(
            seqs.len() as u64 == EVENTS || close == Some(1008),
            "got {} events, close {close:?}",
            seqs.len()
        );
    }
    shut_down(server).await;
    drop(stalled);
}

async fn shutdown_in_the_middle_of_a_burst_to_stalled_and_reset_clients(io: IoBackend) {
    let server = start(config(io));
    let [readers, mut stalled, resetters] = connect_groups(server.local_addr()).await;
    publish_burst(&server);
    for c in resetters {
        reset(c);
    }
    // The burst has started (the stalled clients read its first event, then read no more), so
    // sends are in flight to every group when shutdown begins.
    for c in &mut stalled {
        assert_eq!(c.read_json().await["type"], "event");
    }
    shut_down(server).await;
    for c in readers {
        let (seqs, _) = read_burst(c).await;
        assert!(
            !seqs.is_empty(),
            "a reader got none of a burst begun before shutdown"
        );
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    }
    drop(stalled);
}

both_backends!(
    readers_stay_whole_while_others_stall_or_reset_mid_burst_then_shutdown,
    shutdown_in_the_middle_of_a_burst_to_stalled_and_reset_clients,
);
