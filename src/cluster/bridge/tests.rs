//! The bridge's decisions without a broker: unknown outcomes, expiry.

use super::*;
use crate::cluster::head::{Attempt, InFlight};
use std::sync::Mutex;

fn bridge() -> (Bridge, Arc<Mutex<Vec<FromCluster>>>) {
    let config = crate::config::ClusterConfig::from_toml(
        &"urls = \"nats://127.0.0.1:1\"\nnode = \"t\""
            .parse()
            .unwrap(),
    )
    .unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink_got = got.clone();
    let (_tx, requests) = tokio::sync::mpsc::channel(1);
    let (_stop_tx, stop) = tokio::sync::oneshot::channel();
    let parts = Parts {
        config,
        retention: Retention {
            max_msgs_per_subject: 1,
            max_age: Duration::ZERO,
        },
        requests,
        sink: Box::new(move |m| sink_got.lock().unwrap().push(m)),
        stats: Arc::new(ClusterStats::default()),
        pending_bytes: Arc::new(AtomicUsize::new(0)),
        undelivered: Arc::new(AtomicUsize::new(0)),
        stop,
    };
    (Bridge::new(parts), got)
}

fn request(token: u64) -> CommitRequest {
    CommitRequest {
        channel: Arc::from("c"),
        events: vec![EventRecord {
            event_type: bytes::Bytes::from_static(b"\"e\""),
            data: bytes::Bytes::from_static(b"1"),
            binary: false,
            key: None,
            frame: 1,
            timestamp: bytes::Bytes::from_static(b"t"),
        }],
        token,
        snapshot: false,
        queued_at: Instant::now(),
    }
}

/// A batch whose acknowledgement was lost, waiting for the stream to reach `target`.
fn unknown(b: &mut Bridge, msg_id: &str, target: u64) {
    let r = request(1);
    b.p.pending_bytes.fetch_add(r.cost(), Ordering::Relaxed);
    b.own.insert(msg_id.into(), vec![1]);
    b.writers.entry(Arc::from("c")).or_default().in_flight = Some(InFlight {
        requests: vec![r],
        msg_id: msg_id.into(),
        attempt: Attempt::Unknown {
            target: Some(target),
        },
        sent_at: Instant::now(),
        numbering: None,
    });
}

#[test]
fn an_unknown_outcome_waits_until_the_stream_position_is_reached() {
    let (mut b, _) = bridge();
    unknown(&mut b, "m1", 5);
    b.delivered = 4;
    b.resolve_unknown();
    assert!(
        b.writers["c"].in_flight.is_some(),
        "not decided before the stream reaches 5"
    );
}

#[test]
fn a_lost_ack_whose_batch_the_stream_holds_is_committed_not_resent() {
    let (mut b, _) = bridge();
    unknown(&mut b, "m1", 5);
    b.own.remove("m1"); // the consumer saw the batch's message id
    b.delivered = 5;
    b.resolve_unknown();
    let w = &b.writers["c"];
    assert!(
        w.in_flight.is_none() && w.queue.is_empty(),
        "done, nothing to resend"
    );
    assert_eq!(
        b.p.pending_bytes.load(Ordering::Relaxed),
        0,
        "its budget is given back"
    );
}

#[test]
fn a_lost_ack_whose_batch_the_stream_lacks_is_sent_again() {
    let (mut b, got) = bridge();
    unknown(&mut b, "m1", 5);
    b.delivered = 5;
    b.resolve_unknown();
    let w = &b.writers["c"];
    assert!(w.in_flight.is_none());
    assert_eq!(w.queue.len(), 1, "queued again, first");
    assert!(!b.own.contains_key("m1"));
    assert!(got.lock().unwrap().is_empty(), "nobody was told it failed");
}

#[test]
fn only_requests_never_sent_expire_as_unavailable() {
    let (mut b, got) = bridge();
    unknown(&mut b, "m1", 5);
    let mut old = request(2);
    old.queued_at = Instant::now() - Duration::from_secs(10);
    b.p.pending_bytes.fetch_add(old.cost(), Ordering::Relaxed);
    b.writers.get_mut("c").unwrap().queue.push_back(old);
    b.expire(Instant::now());
    let failed: Vec<u64> = got
        .lock()
        .unwrap()
        .iter()
        .flat_map(|m| match m {
            FromCluster::Failed { tokens } => tokens.clone(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(
        failed,
        vec![2],
        "the queued one fails; the one in flight may have committed"
    );
    assert!(b.writers["c"].in_flight.is_some());
}
