//! Cluster mode across processes: several `framecast` nodes sharing one NATS JetStream stream.
//! Every publication, on whichever node and by whichever path, is committed to the stream and
//! reaches every node's subscribers with the same seq, bytes and order; history and snapshots
//! live in the stream, so they survive losing (or restarting) nodes; a broker outage loses or
//! duplicates nothing and leaves the built-in channels running.
//!
//! Each test runs its own `nats-server` (fresh store) and nodes; without `nats-server` on this
//! machine they return early after one line saying so (`FRAMECAST_REQUIRE_NATS=1` makes that a
//! failure). Run them one at a time: `cargo test --test cluster -- --test-threads=1`.
#![allow(clippy::disallowed_methods)] // tests read the clock

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::time::{Duration, Instant};

use common::binary::{command, ServerProcess};
use common::nats::*;
use serde_json::{json, Value};

const CHAT: &str = "chat:x";
const QUIET: &str = "quiet:x";
const POS: &str = "pos:w";

/// The most one test may take, whatever it waits for (each wait has its own shorter deadline).
const TEST_DEADLINE: Duration = Duration::from_secs(120);

/// Runs a test body with [`TEST_DEADLINE`].
async fn bounded<F: Future>(body: F) -> F::Output {
    tokio::time::timeout(TEST_DEADLINE, body)
        .await
        .expect("the test finished within its deadline")
}

/// `since` for one channel.
fn since(channel: &str, seq: u64, epoch: &str) -> Value {
    json!({ channel: {"seq": seq, "epoch": epoch} })
}

/// The epoch a `subscribed` reply reports for `channel`.
fn epoch_of(subscribed: &Value, channel: &str) -> String {
    subscribed["positions"][channel]["epoch"]
        .as_str()
        .unwrap_or_else(|| panic!("no epoch for {channel} in {subscribed}"))
        .to_string()
}

/// The seq a `subscribed` reply reports for `channel`.
fn seq_of(subscribed: &Value, channel: &str) -> u64 {
    subscribed["positions"][channel]["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("no seq for {channel} in {subscribed}"))
}

/// Asserts `events` carry exactly the seqs `from..=to`, in order.
fn assert_contiguous(who: &str, events: &[Event], from: u64, to: u64) {
    let got = seqs(events);
    let want: Vec<u64> = (from..=to).collect();
    if got != want {
        let dups: Vec<u64> = {
            let mut seen = HashSet::new();
            got.iter().copied().filter(|s| !seen.insert(*s)).collect()
        };
        let missing: Vec<u64> = want.iter().copied().filter(|s| !got.contains(s)).collect();
        panic!("{who}: seqs are not exactly {from}..={to}: duplicates {dups:?}, missing {missing:?}, got {got:?}");
    }
}

/// Asserts no `data` occurs twice in `events` (every publication here has unique data, so a
/// repeat is one publication committed twice).
fn assert_no_repeated_data(who: &str, events: &[Event]) {
    let mut seen: HashMap<&str, u64> = HashMap::new();
    for e in events {
        if let Some(first) = seen.insert(&e.data, e.seq) {
            panic!(
                "{who}: {} committed twice, at seq {first} and seq {}",
                e.data, e.seq
            );
        }
    }
}

/// Publishes `data` with id `id` on `client` until it is `published`, retrying (with a fresh id
/// and data derived from `attempt`) on UNAVAILABLE. Returns (id, data, seq) of the attempt that
/// was published and the ids of the refused attempts with their data.
async fn publish_retrying(
    client: &mut Client,
    channel: &str,
    make_data: impl Fn(u32) -> String,
    id_prefix: &str,
    deadline: Instant,
) -> ((String, String, u64), Vec<(String, String)>) {
    let mut refused = Vec::new();
    for attempt in 0.. {
        let id = format!("{id_prefix}-{attempt}");
        let data = make_data(attempt);
        client.publish(channel, &data, &id).await;
        let r = client.reply_within(&id, Duration::from_secs(15)).await;
        match r.kind() {
            "published" => {
                let seq = r.v["seq"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("published without seq: {}", r.text));
                return ((id, data, seq), refused);
            }
            "error" if r.v["code"] == "UNAVAILABLE" => {
                assert!(
                    Instant::now() < deadline,
                    "{}: still UNAVAILABLE at the deadline: {}",
                    client.name,
                    r.text
                );
                refused.push((id, data));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => panic!("{}: unexpected reply {}", client.name, r.text),
        }
    }
    unreachable!()
}

/// Three nodes with a publisher on each publishing 100 events at once: every node delivers
/// the same 300 events, seqs 1..=300 without gap or repeat, with identical (seq, data) lists,
/// and every `published` reply carries the seq its event has on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_concurrent_publishers_see_identical_sequences() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    bounded(async {
        let nodes = start_cluster(&nats, &["a", "b", "c"]).await;
        let mut subs = Vec::new();
        for node in &nodes {
            let mut sub = Client::connect(node, "subscriber").await;
            let reply = sub.subscribe(&[CHAT], None).await;
            assert_eq!(seq_of(&reply, CHAT), 0, "fresh channel: {reply}");
            subs.push(sub);
        }

        let start = std::sync::Arc::new(tokio::sync::Barrier::new(nodes.len()));
        let mut tasks = Vec::new();
        for (p, node) in nodes.iter().enumerate() {
            let mut publisher = Client::connect(node, &format!("publisher{p}")).await;
            let start = start.clone();
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                for k in 0..100 {
                    let data = format!(r#"{{"p":{p},"k":{k}}}"#);
                    publisher.publish(CHAT, &data, &format!("{p}-{k}")).await;
                }
                let mut got = Vec::new();
                for k in 0..100 {
                    let seq = publisher.published_seq(&format!("{p}-{k}")).await;
                    got.push((seq, format!(r#"{{"p":{p},"k":{k}}}"#)));
                }
                got
            }));
        }
        let mut by_seq: BTreeMap<u64, String> = BTreeMap::new();
        for (p, task) in tasks.into_iter().enumerate() {
            let published = task.await.expect("publisher task");
            assert_eq!(published.len(), 100);
            let publisher_seqs: Vec<u64> = published.iter().map(|(s, _)| *s).collect();
            assert!(
                publisher_seqs.windows(2).all(|w| w[0] < w[1]),
                "publisher {p}: one connection's publications keep their order: {publisher_seqs:?}"
            );
            for (seq, data) in published {
                if let Some(other) = by_seq.insert(seq, data.clone()) {
                    panic!("seq {seq} was given to both {other} and {data}");
                }
            }
        }
        assert_eq!(
            by_seq.keys().copied().collect::<Vec<_>>(),
            (1..=300).collect::<Vec<u64>>(),
            "the 300 published seqs are exactly 1..=300"
        );

        let mut lists = Vec::new();
        for sub in &mut subs {
            let events = sub.events_through(CHAT, 300).await;
            assert_contiguous(&sub.name, &events, 1, 300);
            for e in &events {
                assert_eq!(
                    e.data, by_seq[&e.seq],
                    "{}: seq {} carries the bytes its publisher sent",
                    sub.name, e.seq
                );
            }
            let texts: Vec<String> = events.iter().map(|e| e.text.clone()).collect();
            lists.push((sub.name.clone(), seq_data(&events), texts));
        }
        for (name, list, texts) in &lists[1..] {
            assert!(
                *list == lists[0].1,
                "{name} and {} delivered different sequences",
                lists[0].0
            );
            // Same bytes, not only the same data: frame and timestamp are the writer's.
            assert!(
                *texts == lists[0].2,
                "{name} and {} delivered different event bytes",
                lists[0].0
            );
        }
    })
    .await
}

/// One HTTP publisher alternating between two nodes, awaiting each 202: the seqs it is given
/// rise by one per publication (1..=50) and a third node delivers the events in publish order.
/// Frame numbers come from the wall clock in cluster mode, `⌊unix time / tick period⌋`, so the
/// same tick has the same number on every node (and rate-level boundaries agree): each node's
/// heartbeat, numbered by its own tick, carries a frame within a second of the one its
/// `unix_ms` gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_are_numbered_by_the_wall_clock_on_every_node() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    bounded(async {
        let extra = "heartbeat_interval = \"1s\"\n".to_string();
        let mut nodes = Vec::new();
        for name in ["a", "b"] {
            let mut config = NodeConfig::new(name, &nats.url());
            config.extra = extra.clone();
            let mut node = Node::start(&config);
            node.wait_ready().await;
            nodes.push(node);
        }
        for node in &nodes {
            let mut sub = Client::connect(node, "heartbeat").await;
            sub.subscribe(&["heartbeat"], None).await;
            let e = sub.event("heartbeat").await;
            let v: Value = serde_json::from_str(&e.text).unwrap();
            let frame = v["frame"].as_u64().expect("frame");
            let unix_ms = v["data"]["unix_ms"].as_u64().expect("unix_ms");
            let wall_frame = unix_ms * 60 / 1000; // tick_hz = 60
            assert!(
                (wall_frame..=wall_frame + 60).contains(&frame),
                "{}: frame {frame}, wall-clock frame {wall_frame}: {}",
                node.name,
                e.text
            );
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternating_http_publisher_keeps_order() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    bounded(async {
        let nodes = start_cluster(&nats, &["a", "b", "c"]).await;
        let mut sub = Client::connect(&nodes[2], "subscriber").await;
        sub.subscribe(&[CHAT], None).await;

        let mut given = Vec::new();
        for k in 0..50 {
            let node = &nodes[k % 2];
            let seq = node
                .broadcast_ok(CHAT, &format!(r#"{{"k":{k}}}"#), None)
                .await;
            if let Some(prev) = given.last() {
                assert_eq!(
                    seq,
                    prev + 1,
                    "publication {k} via {} after seq {prev}",
                    node.name
                );
            }
            given.push(seq);
        }
        assert_eq!(given, (1..=50).collect::<Vec<u64>>());

        let events = sub.events_through(CHAT, 50).await;
        assert_contiguous("subscriber@c", &events, 1, 50);
        let data: Vec<String> = events.iter().map(|e| e.data.clone()).collect();
        let want: Vec<String> = (0..50).map(|k| format!(r#"{{"k":{k}}}"#)).collect();
        assert_eq!(data, want, "node c delivers in publish order");
    })
    .await
}

/// History lives in the stream: after `kill -9` of the node a client was on, it resubscribes
/// on another node with `since` and recovers exactly the events it missed, then live ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_a_node_and_recover_on_another() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    bounded(async {
        let mut nodes = start_cluster(&nats, &["a", "b", "c"]).await;
        let mut sub = Client::connect(&nodes[0], "subscriber").await;
        let reply = sub.subscribe(&[CHAT], None).await;
        let epoch = epoch_of(&reply, CHAT);
        for k in 1..=5 {
            nodes[0]
                .broadcast_ok(CHAT, &format!(r#"{{"n":{k}}}"#), None)
                .await;
        }
        let seen = sub.events_through(CHAT, 5).await;
        assert_contiguous("subscriber@a", &seen, 1, 5);
        let last = seen.last().unwrap().seq;

        nodes[0].kill9();
        drop(sub);
        for k in 6..=25 {
            let seq = nodes[1]
                .broadcast_ok(CHAT, &format!(r#"{{"n":{k}}}"#), None)
                .await;
            assert_eq!(seq, k, "numbering continues after losing node a");
        }

        let mut back = Client::connect(&nodes[2], "returning").await;
        let reply = back
            .subscribe(&[CHAT], Some(since(CHAT, last, &epoch)))
            .await;
        assert_eq!(reply["recovered"], true, "{reply}");
        assert_eq!(epoch_of(&reply, CHAT), epoch, "same epoch on every node");
        let missed = back.events_through(CHAT, 25).await;
        assert_contiguous("returning@c", &missed, 6, 25);
        for e in &missed {
            assert_eq!(e.data, format!(r#"{{"n":{}}}"#, e.seq));
        }
        let live = nodes[2].broadcast_ok(CHAT, r#"{"n":26}"#, None).await;
        assert_eq!(live, 26);
        let next = back.event(CHAT).await;
        assert_eq!(next.seq, 26, "live after the replay, no gap, no repeat");
    })
    .await
}

/// Restarting every node keeps the epoch (it comes from the stream) and the history: a
/// client resubscribing with `since` seq 5 recovers events 6..=10.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_all_nodes_keeps_epoch_and_history() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    bounded(async {
        let mut nodes = start_cluster(&nats, &["a", "b"]).await;
        let mut sub = Client::connect(&nodes[1], "subscriber").await;
        let epoch = epoch_of(&sub.subscribe(&[CHAT], None).await, CHAT);
        for k in 1..=10 {
            nodes[0]
                .broadcast_ok(CHAT, &format!(r#"{{"n":{k}}}"#), None)
                .await;
        }
        assert_contiguous("subscriber@b", &sub.events_through(CHAT, 10).await, 1, 10);
        drop(sub);

        for node in &mut nodes {
            node.kill9();
        }
        for node in &mut nodes {
            node.restart();
        }
        for node in &mut nodes {
            node.wait_ready().await;
        }

        let mut back = Client::connect(&nodes[0], "returning").await;
        let reply = back.subscribe(&[CHAT], Some(since(CHAT, 5, &epoch))).await;
        assert_eq!(reply["recovered"], true, "{reply}");
        assert_eq!(epoch_of(&reply, CHAT), epoch, "the epoch survives restarts");
        assert_eq!(seq_of(&reply, CHAT), 10, "{reply}");
        let missed = back.events_through(CHAT, 10).await;
        assert_contiguous("returning@a", &missed, 6, 10);
        for e in &missed {
            assert_eq!(e.data, format!(r#"{{"n":{}}}"#, e.seq));
        }

        let mut fresh = Client::connect(&nodes[1], "fresh").await;
        let reply = fresh.subscribe(&[CHAT], None).await;
        assert_eq!(epoch_of(&reply, CHAT), epoch, "{reply}");
        assert_eq!(seq_of(&reply, CHAT), 10, "{reply}");
    })
    .await
}

/// A snapshot namespace's newest event per key is in the stream: after the node that took
/// some keys' publications is killed, a node started later gives a new subscriber the newest
/// event of every key (`"snapshot":true`, in seq order) before any delta.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_survives_losing_a_node() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    bounded(async {
        let mut nodes = start_cluster(&nats, &["a", "b"]).await;
        let s1 = nodes[0].broadcast_ok(POS, r#"{"k1":1}"#, Some("k1")).await;
        let s2 = nodes[1].broadcast_ok(POS, r#"{"k2":1}"#, Some("k2")).await;
        let s3 = nodes[0].broadcast_ok(POS, r#"{"k1":2}"#, Some("k1")).await;
        let s4 = nodes[1].broadcast_ok(POS, r#"{"k2":2}"#, Some("k2")).await;
        assert_eq!([s1, s2, s3, s4], [1, 2, 3, 4]);
        nodes[0].kill9();

        let mut late = Node::start(&NodeConfig::new("d", &nats.url()));
        late.wait_ready().await;
        let mut sub = Client::connect(&late, "late").await;
        let reply = sub.subscribe(&[POS], None).await;
        assert_eq!(seq_of(&reply, POS), 4, "{reply}");
        assert_eq!(reply["positions"][POS]["snapshot_events"], 2, "{reply}");
        let first = sub.event(POS).await;
        let second = sub.event(POS).await;
        let got = [first, second].map(|e| (e.seq, e.key, e.data, e.snapshot));
        assert_eq!(
            got,
            [
                (3, Some("k1".to_string()), r#"{"k1":2}"#.to_string(), true),
                (4, Some("k2".to_string()), r#"{"k2":2}"#.to_string(), true),
            ],
            "the newest event per key, marked snapshot, in seq order"
        );
        let delta = nodes[1].broadcast_ok(POS, r#"{"k1":3}"#, Some("k1")).await;
        let next = sub.event(POS).await;
        assert_eq!((next.seq, next.snapshot), (delta, false), "then the deltas");
    })
    .await
}

/// The broker is killed (-9) mid-stream and restarted while a WebSocket publisher keeps
/// publishing (retrying what is refused with UNAVAILABLE): subscribers on two nodes end with
/// the same contiguous seqs, no publication twice, and every `published` seq present once
/// with the bytes of its publication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_mid_stream_no_duplicate_no_gap() {
    let Some(mut nats) = NatsServer::start() else {
        return;
    };
    bounded(async {
        let nodes = start_cluster(&nats, &["a", "b"]).await;
        let mut subs = Vec::new();
        for node in &nodes {
            let mut sub = Client::connect(node, "subscriber").await;
            sub.subscribe(&[CHAT], None).await;
            subs.push(sub);
        }

        let (count_tx, mut count_rx) = tokio::sync::watch::channel(0usize);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut publisher = Client::connect(&nodes[0], "publisher").await;
        let task = tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut published = Vec::new();
            let mut refused = Vec::new();
            let mut k = 0;
            while !*stop_rx.borrow() {
                let (ok, mut no) = publish_retrying(
                    &mut publisher,
                    CHAT,
                    |attempt| format!(r#"{{"k":{k},"attempt":{attempt}}}"#),
                    &format!("p{k}"),
                    deadline,
                )
                .await;
                published.push(ok);
                refused.append(&mut no);
                count_tx.send_replace(published.len());
                k += 1;
            }
            (published, refused)
        });

        count_rx.wait_for(|n| *n >= 20).await.unwrap();
        nats.kill9();
        tokio::time::sleep(Duration::from_secs(1)).await;
        nats.restart();
        let at_restart = *count_rx.borrow();
        count_rx
            .wait_for(|n| *n >= at_restart + 20)
            .await
            .expect("the publisher keeps publishing after the broker is back");
        stop_tx.send_replace(true);
        let (published, refused) = task.await.expect("publisher task");

        // A last publication through the other node marks the end of the stream.
        let deadline = Instant::now() + Duration::from_secs(30);
        let end = loop {
            let (status, body) = nodes[1].broadcast(CHAT, r#""end""#, None).await;
            if status == 202 {
                break body["seqs"][0]
                    .as_u64()
                    .unwrap_or_else(|| panic!("202 without seqs[0]: {body}"));
            }
            assert!(
                status == 503 && Instant::now() < deadline,
                "broadcast after the outage: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };

        let mut lists = Vec::new();
        for sub in &mut subs {
            let events = sub.events_through(CHAT, end).await;
            assert_contiguous(&sub.name, &events, 1, end);
            assert_no_repeated_data(&sub.name, &events);
            lists.push(events);
        }
        assert_eq!(
            seq_data(&lists[0]),
            seq_data(&lists[1]),
            "both nodes delivered the same sequence"
        );
        let by_seq: HashMap<u64, &str> = lists[0].iter().map(|e| (e.seq, &*e.data)).collect();
        for (id, data, seq) in &published {
            assert_eq!(
                by_seq.get(seq).copied(),
                Some(data.as_str()),
                "`published` {id} said seq {seq}"
            );
        }
        let delivered: HashSet<&str> = by_seq.values().copied().collect();
        let refused_but_delivered = refused
            .iter()
            .filter(|(_, d)| delivered.contains(d.as_str()))
            .count();
        assert_eq!(
            refused_but_delivered, 0,
            "a publication answered UNAVAILABLE must be delivered nowhere"
        );
        eprintln!(
            "{} published, {} refused with UNAVAILABLE ({refused_but_delivered} of those were committed anyway), stream end {end}",
            published.len(),
            refused.len()
        );
    })
    .await
}

/// A node started while the broker is down serves HTTP but is not ready (503) until the
/// broker comes up; then it becomes ready within 30 s and delivers publications.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_absent_at_start() {
    let Some(mut nats) = NatsServer::stopped() else {
        return;
    };
    bounded(async {
        let mut node = Node::start(&NodeConfig::new("a", &nats.url()));
        assert_eq!(node.readyz().await, 503, "not ready without a broker");
        let status = node.status().await;
        assert_eq!(status["cluster"]["node"], "a", "{status}");
        assert_eq!(status["cluster"]["ready"], false, "{status}");
        assert_eq!(status["cluster"]["connected"], false, "{status}");

        nats.restart();
        node.wait_readyz(200, Duration::from_secs(30)).await;
        let status = node.status().await;
        assert_eq!(status["cluster"]["ready"], true, "{status}");
        assert_eq!(status["cluster"]["connected"], true, "{status}");

        let mut sub = Client::connect(&node, "subscriber").await;
        sub.subscribe(&[CHAT], None).await;
        let seq = node.broadcast_ok(CHAT, r#""hello""#, None).await;
        let e = sub.event(CHAT).await;
        assert_eq!((e.seq, e.data.as_str()), (seq, r#""hello""#));
    })
    .await
}

/// A node frozen with SIGSTOP for 3 s while 200 events are published through another node
/// catches up after SIGCONT: its subscriber gets all 200 in order, as does the other node's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstopped_node_catches_up() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    bounded(async {
        let nodes = start_cluster(&nats, &["a", "b"]).await;
        let mut subs = Vec::new();
        for node in &nodes {
            let mut sub = Client::connect(node, "subscriber").await;
            sub.subscribe(&[CHAT], None).await;
            subs.push(sub);
        }
        let mut publisher = Client::connect(&nodes[0], "publisher").await;

        nodes[1].signal(libc::SIGSTOP);
        let resume_at = tokio::time::Instant::now() + Duration::from_secs(3);
        for k in 1..=200 {
            publisher
                .publish(CHAT, &format!(r#"{{"k":{k}}}"#), &k.to_string())
                .await;
        }
        let mut given = Vec::new();
        for k in 1..=200 {
            given.push(publisher.published_seq(&k.to_string()).await);
        }
        tokio::time::sleep_until(resume_at).await;
        nodes[1].signal(libc::SIGCONT);
        assert_eq!(
            given,
            (1..=200).collect::<Vec<u64>>(),
            "node a commits while node b is stopped, in publish order"
        );

        for sub in &mut subs {
            let events = sub.events_through(CHAT, 200).await;
            assert_contiguous(&sub.name, &events, 1, 200);
            for e in &events {
                assert_eq!(e.data, format!(r#"{{"k":{}}}"#, e.seq), "{}", sub.name);
            }
        }
    })
    .await
}

/// `echo = false` holds across nodes: the publishing connection never receives its own
/// events, another connection on its node and one on another node receive them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_false_across_nodes() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    bounded(async {
        let nodes = start_cluster(&nats, &["a", "b"]).await;
        let mut publisher = Client::connect(&nodes[0], "publisher").await;
        let reply = publisher.subscribe(&[QUIET], None).await;
        assert_eq!(reply["positions"][QUIET]["echo"], false, "{reply}");
        let mut same_node = Client::connect(&nodes[0], "other").await;
        same_node.subscribe(&[QUIET], None).await;
        let mut other_node = Client::connect(&nodes[1], "other").await;
        other_node.subscribe(&[QUIET], None).await;

        for k in 1..=5 {
            publisher
                .publish(QUIET, &format!(r#"{{"k":{k}}}"#), &k.to_string())
                .await;
        }
        for sub in [&mut same_node, &mut other_node] {
            let events = sub.events_through(QUIET, 5).await;
            assert_contiguous(&sub.name, &events, 1, 5);
        }
        // Someone else's publication reaches the publisher; its own never did before it.
        let end = nodes[1].broadcast_ok(QUIET, r#""end""#, None).await;
        assert_eq!(end, 6);
        let first = publisher.event(QUIET).await;
        assert_eq!(
            (first.seq, first.data.as_str()),
            (6, r#""end""#),
            "the publisher's first event on {QUIET} is the other publisher's"
        );
        let mut own = Vec::new();
        for k in 1..=5 {
            own.push(publisher.published_seq(&k.to_string()).await);
        }
        assert_eq!(
            own,
            [1, 2, 3, 4, 5],
            "`published` tells the publisher its seqs"
        );
        let extra: Vec<&str> = publisher
            .drain()
            .iter()
            .filter(|m| m.kind() == "event")
            .map(|m| m.text.as_str())
            .collect();
        assert!(
            extra.is_empty(),
            "publisher got events it should not: {extra:?}"
        );
    })
    .await
}

/// `system.status` (tagged with the node) and `heartbeat` are node-local: they keep flowing
/// while the broker is down, while publications to stream channels are refused with
/// UNAVAILABLE (WebSocket) or 503 (HTTP) within `commit_timeout` plus slack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_channels_flow_during_outage() {
    let Some(mut nats) = NatsServer::start() else {
        return;
    };
    bounded(async {
        let mut config = NodeConfig::new("a", &nats.url());
        config.extra = "status_interval = \"1s\"\nheartbeat_interval = \"1s\"\n".to_string();
        let commit_timeout = Duration::from_secs(2);
        let slack = Duration::from_secs(3);
        let mut node = Node::start(&config);
        node.wait_ready().await;
        let status = node.status().await;
        assert_eq!(status["cluster"]["node"], "a", "{status}");
        assert_eq!(status["cluster"]["connected"], true, "{status}");
        let (code, metrics) = http(node.addr, "GET", "/metrics", None).await;
        assert_eq!(code, 200);
        assert!(
            metrics.contains("framecast_cluster_"),
            "no framecast_cluster_* in /metrics"
        );

        let mut sub = Client::connect(&node, "subscriber").await;
        sub.subscribe(&["heartbeat", "system.status"], None).await;
        let e = sub.event("system.status").await;
        let data: Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(data["node"], "a", "system.status names its node: {data}");
        sub.event("heartbeat").await;

        nats.kill9();
        node.wait_readyz(503, Duration::from_secs(15)).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            if node.status().await["cluster"]["connected"] == false {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "status still says connected 15 s after the broker died"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Forget what arrived before the outage was noticed; then count what comes after.
        sub.discard_received();
        for _ in 0..2 {
            sub.event("heartbeat").await;
            let e = sub.event("system.status").await;
            let data: Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(data["node"], "a", "{data}");
        }

        let t0 = Instant::now();
        sub.publish(CHAT, r#""during the outage""#, "out").await;
        let r = sub
            .reply_within("out", commit_timeout + slack + Duration::from_secs(5))
            .await;
        let took = t0.elapsed();
        assert_eq!(r.kind(), "error", "{}", r.text);
        assert_eq!(r.v["code"], "UNAVAILABLE", "{}", r.text);
        assert!(took <= commit_timeout + slack, "UNAVAILABLE after {took:?}");

        let t0 = Instant::now();
        let (code, body) = node.broadcast(CHAT, r#""during the outage""#, None).await;
        let took = t0.elapsed();
        assert_eq!(
            (code, &body["error"]),
            (503, &json!("unavailable")),
            "{body}"
        );
        assert!(took <= commit_timeout + slack, "503 after {took:?}");
    })
    .await
}

/// A publication whose acknowledgement is lost (the broker is killed right after the client
/// sent it, then restarted) is in the stream at most once, exactly once if it was answered
/// `published`, and the seqs stay contiguous through later publications on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_ack_commits_once() {
    let Some(mut nats) = NatsServer::start() else {
        return;
    };
    bounded(async {
        let mut nodes = start_cluster(&nats, &["a", "b"]).await;
        let mut subs = Vec::new();
        for node in &nodes {
            let mut sub = Client::connect(node, "subscriber").await;
            sub.subscribe(&[CHAT], None).await;
            subs.push(sub);
        }
        let mut publisher = Client::connect(&nodes[0], "publisher").await;
        for k in 1..=3 {
            publisher
                .publish(CHAT, &format!(r#"{{"warmup":{k}}}"#), &format!("w{k}"))
                .await;
            assert_eq!(publisher.published_seq(&format!("w{k}")).await, k);
        }

        publisher.publish(CHAT, r#""ambiguous""#, "amb").await;
        nats.kill9();
        nats.restart();
        let amb = publisher.reply("amb").await;
        let amb_seq = match amb.kind() {
            "published" => Some(amb.v["seq"].as_u64().expect("seq")),
            "error" if amb.v["code"] == "UNAVAILABLE" => None,
            _ => panic!("unexpected reply {}", amb.text),
        };
        eprintln!("the ambiguous publication was answered {}", amb.text);
        for node in &mut nodes {
            node.wait_ready().await;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = 0;
        for k in 1..=3 {
            let ((_, _, seq), _) = publish_retrying(
                &mut publisher,
                CHAT,
                |attempt| format!(r#"{{"after":{k},"attempt":{attempt}}}"#),
                &format!("after{k}"),
                deadline,
            )
            .await;
            last = seq;
        }

        let mut lists = Vec::new();
        for sub in &mut subs {
            let events = sub.events_through(CHAT, last).await;
            assert_contiguous(&sub.name, &events, 1, last);
            assert_no_repeated_data(&sub.name, &events);
            let at: Vec<u64> = events
                .iter()
                .filter(|e| e.data == r#""ambiguous""#)
                .map(|e| e.seq)
                .collect();
            match amb_seq {
                Some(seq) => assert_eq!(at, [seq], "{}: published once, at its seq", sub.name),
                None => assert!(at.len() <= 1, "{}: at most once: {at:?}", sub.name),
            }
            lists.push(seq_data(&events));
        }
        assert_eq!(lists[0], lists[1], "both nodes delivered the same sequence");
    })
    .await
}

/// Invalid `[cluster]` values stop the start with an error naming the key.
#[test]
fn invalid_cluster_config_names_the_key() {
    let dir = TempDir::new("invalid");
    let mut replicas = NodeConfig::new("a", "nats://127.0.0.1:1");
    replicas.replicas = 9;
    let mut no_urls = NodeConfig::new("b", "nats://127.0.0.1:1");
    no_urls.urls.clear();
    for (config, key) in [(replicas, "cluster.replicas"), (no_urls, "cluster.urls")] {
        let path = config.write(dir.path());
        let cmd = command(
            &[
                "--listen",
                "127.0.0.1:0",
                "--config",
                path.to_str().unwrap(),
            ],
            None,
        );
        let mut server = ServerProcess::spawn(cmd);
        let status = server
            .wait_exit(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("started with an invalid {key}: {:?}", server.lines));
        assert!(
            !status.success(),
            "exit status {status} for an invalid {key}"
        );
        let stderr = server.lines.join("\n");
        assert!(stderr.contains(key), "the error names {key}: {stderr}");
    }
}
