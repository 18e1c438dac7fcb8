use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::*;
use crate::protocol::frame::{server_frame, Kind};
use crate::table::{PendingGap, Session};

const CAP: usize = 1000;

fn settings() -> ConnSettings {
    crate::testing::settings(CAP)
}

/// One open connection subscribed to `channel`, its queue empty.
fn one_subscriber(channel: &str, now: Instant) -> (ConnTable, Topics, crate::driver::Slot) {
    let mut table = ConnTable::default();
    let slot = crate::testing::open_entry(&mut table, Session::default(), now).slot;
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
            deflated: None,
            binary: None,
            binary_deflated: None,
            batch: None,
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
    let sent = crate::testing::drain(&mut table, slot);
    assert!(sent.ends_with(&frames), "the event follows its gap notice");
}
