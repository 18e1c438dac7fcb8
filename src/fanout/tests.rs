use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::conn::{Admission, AppEvent, Conn, SendBatch};
use crate::protocol::frame::{server_frame, Kind};
use crate::protocol::handshake::Routes;
use crate::shard::table::{PendingGap, Session};

const CAP: usize = 1000;

fn settings() -> ConnSettings {
    ConnSettings {
        max_message_bytes: 64 * 1024,
        max_queued_bytes: CAP,
        ping_interval: Duration::from_secs(30),
        pong_timeout: Duration::from_secs(10),
        handshake_timeout: Duration::from_secs(10),
        routes: Routes {
            ws_path: "/ws".into(),
            echo_path: None,
            max_body: 1024,
        },
    }
}

const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// One open connection subscribed to `channel`, its queue empty.
fn one_subscriber(channel: &str, now: Instant) -> (ConnTable, Topics, crate::driver::Slot) {
    let mut conn = Conn::new(now, Admission::Admit);
    conn.handle_input(
        &mut UPGRADE.to_vec(),
        now,
        &settings(),
        &mut |_, _: AppEvent<'_>| {},
    );
    let mut batch = SendBatch::default();
    conn.outbox.fill(&mut batch);
    conn.handle_sent(batch.len);
    let mut table = ConnTable::default();
    let slot = table.insert(Entry::new(conn, Session::default(), true));
    let mut topics = Topics::default();
    topics.subscribe(channel, slot, 0);
    (table, topics, slot)
}

fn batch(channel: &str, delivery: Delivery, frames: Bytes, first_seq: u64) -> TickBatch {
    TickBatch {
        frame: 1,
        boundaries: 0,
        items: vec![ChannelFrames {
            channel: Arc::from(channel),
            frames,
            first_seq,
            count: 1,
            delivery,
            variants: None,
            exclusions: None,
        }],
        acks: Vec::new(),
    }
}

#[test]
fn a_gap_notice_never_turns_a_lossy_push_into_a_slow_consumer_close() {
    let now = Instant::now();
    let (mut table, mut topics, slot) = one_subscriber("v", now);
    table.get_mut(slot).unwrap().gaps.push(PendingGap {
        channel: Arc::from("v"),
        skipped: 3,
        from_seq: 1,
        to_seq: 3,
    });
    // One event nearly as large as the cap: the empty queue takes it, notice first.
    let frames = server_frame(Kind::Text, &vec![b'x'; CAP - 10]);
    let mut dirty = SendQueue::new(now);
    let d = deliver(
        0,
        &batch("v", Delivery::Volatile, frames.clone(), 4),
        &mut topics,
        &mut table,
        &settings(),
        now,
        &mut dirty,
    );
    let entry = table.get_mut(slot).unwrap();
    assert!(
        entry.conn.is_open(),
        "a lossy channel never closes a client"
    );
    assert_eq!((d.slow, d.gaps, d.dropped), (0, 1, 0));
    assert!(entry.gaps.is_empty());
    let mut out = SendBatch::default();
    entry.conn.outbox.fill(&mut out);
    let sent: Vec<u8> = out.slices().flatten().copied().collect();
    assert!(sent.ends_with(&frames), "the event follows its gap notice");
}
