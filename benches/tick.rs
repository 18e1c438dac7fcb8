//! Per-tick costs: one distributor tick (number, encode once, join, route) with 1, 100 and 10k
//! active channels; and one shard's fan-out of a tick to 1k and 10k connections in memory (no
//! sockets): append the shared frame to every subscriber's outbox, then build each connection's
//! gather list and mark it sent, as the driver would. Throughput is events (tick) or
//! subscriber deliveries (fan-out) per second. `distributor_tick_conflated` measures the same
//! tick for conflated channels (newest per key, rate-level windows and their shared variants),
//! counting publications offered per second, plain and with compression on (`offered_deflate`).
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use framecast::internals::conn::{Admission, AppEvent, Conn, ConnSettings, SendBatch};
use framecast::internals::distributor::channels::ChannelRegistry;
use framecast::internals::distributor::tick::{encode_tick, TickInput};
use framecast::internals::distributor::{ChannelFrames, Publication, TickBatch};
use framecast::internals::fanout::{deliver, Topics};
use framecast::internals::protocol::handshake::Routes;
use framecast::internals::shard::table::{ConnTable, Entry, Session};
use framecast::internals::shard::SendQueue;

fn publication(channel: &Arc<str>) -> Publication {
    Publication {
        origin: None,
        channel: channel.clone(),
        event_type: Bytes::from_static(b"\"tick\""),
        data: Bytes::from_static(br#"{"t":1732245600123456789,"pad":"xxxxxxxxxxxxxxxxxxxxxxxx"}"#),
        binary: false,
        key: None,
        ack: None,
        committed: None,
    }
}

fn distributor_tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("distributor_tick");
    for channels in [1usize, 100, 10_000] {
        let names: Vec<Arc<str>> = (0..channels)
            .map(|i| Arc::from(format!("ch-{i}").as_str()))
            .collect();
        let mut registry = ChannelRegistry::default();
        for (i, name) in names.iter().enumerate() {
            registry.join(i % 2, name.clone());
        }
        let publications: Vec<Publication> = names.iter().map(publication).collect();
        let namespaces = framecast::config::Namespaces::default();
        group.throughput(Throughput::Elements(channels as u64));
        group.bench_function(BenchmarkId::new("events", channels), |b| {
            b.iter_custom(|iters| {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iters {
                    for p in &publications {
                        registry.queue(p.clone());
                    }
                    let t = Instant::now();
                    std::hint::black_box(encode_tick(
                        &mut registry,
                        &TickInput::immediate(1, "2026-11-22T04:20:00.123Z", 2, t),
                        &namespaces,
                    ));
                    total += t.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

/// 100 conflated channels, each offered 10 keys × 4 updates per tick, ticked with a frame clock
/// (rate-level windows fed every tick, variants built at their boundaries), plain and with
/// compression on (each event compressed once, every variant's twin joined from those).
fn distributor_tick_conflated(c: &mut Criterion) {
    let mut group = c.benchmark_group("distributor_tick_conflated");
    for (name, level) in [("offered", None), ("offered_deflate", Some(2))] {
        conflated_ticks(&mut group, name, level);
    }
    group.finish();
}

fn conflated_ticks(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    level: Option<u32>,
) {
    let t: toml::Table = "[namespaces.pos]\ndelivery = \"conflated\"\n"
        .parse()
        .unwrap();
    let namespaces =
        framecast::config::Namespaces::from_toml(t["namespaces"].as_table().unwrap()).unwrap();
    let channels: Vec<Arc<str>> = (0..100)
        .map(|i| Arc::from(format!("pos:w{i}").as_str()))
        .collect();
    let mut registry = ChannelRegistry::default();
    registry.compress_at(level);
    for channel in &channels {
        registry.join(0, channel.clone());
    }
    let mut publications = Vec::new();
    for channel in &channels {
        for round in 0..4 {
            for key in 0..10 {
                let mut p = publication(channel);
                p.key = Some(Bytes::from(format!("\"avatar-{key}\"")));
                p.data = Bytes::from(format!("{{\"x\":{round},\"y\":{key}}}"));
                publications.push(p);
            }
        }
    }
    group.throughput(Throughput::Elements(publications.len() as u64));
    let mut frame = 0u64;
    group.bench_function(BenchmarkId::new(name, publications.len()), |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                for p in &publications {
                    registry.queue(p.clone());
                }
                frame += 1;
                let input = TickInput {
                    frame,
                    timestamp: "2026-11-22T04:20:00.123Z",
                    unix_ms: 0,
                    shards: 1,
                    now: Instant::now(),
                    boundaries: framecast::internals::distributor::conflate::boundaries(
                        frame - 1,
                        frame,
                    ),
                    host_level: 0,
                    levels: true,
                };
                let t = Instant::now();
                std::hint::black_box(encode_tick(&mut registry, &input, &namespaces));
                total += t.elapsed();
            }
            total
        })
    });
}

fn settings() -> ConnSettings {
    ConnSettings {
        max_message_bytes: 64 * 1024,
        max_queued_bytes: 4 * 1024 * 1024,
        ping_interval: std::time::Duration::from_secs(30),
        pong_timeout: std::time::Duration::from_secs(10),
        handshake_timeout: std::time::Duration::from_secs(10),
        routes: Routes {
            ws_path: "/ws".into(),
            echo_path: None,
            max_body: 1024,
            deflate: true,
        },
    }
}

const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

fn open_table(conns: usize, settings: &ConnSettings) -> (ConnTable, Topics) {
    let now = Instant::now();
    let mut table = ConnTable::default();
    let mut topics = Topics::default();
    for _ in 0..conns {
        let mut conn = Conn::new(now, settings, Admission::Admit);
        conn.handle_input(&mut UPGRADE.to_vec(), now, settings, &mut |_,
                                                                      _: AppEvent<
            '_,
        >| {});
        let mut batch = SendBatch::default();
        conn.poll_transmit(&mut batch);
        conn.handle_sent(batch.len);
        let id = table.insert(Entry::new(conn, Session::default()));
        topics.subscribe("bench", id.slot, 0);
    }
    (table, topics)
}

fn shard_fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("shard_fanout");
    let settings = settings();
    let frames = Bytes::from(vec![0x81u8; 2 + 120]);
    let batch = TickBatch {
        frame: 1,
        boundaries: 0,
        items: vec![ChannelFrames {
            channel: Arc::from("bench"),
            frames,
            first_seq: 1,
            count: 1,
            exclusions: None,
            delivery: framecast::config::Delivery::Reliable,
            variants: None,
            deflated: None,
            binary: None,
            binary_deflated: None,
            batch: None,
        }],
        acks: Vec::new(),
    };
    for conns in [1_000usize, 10_000] {
        let (mut table, mut topics) = open_table(conns, &settings);
        let mut dirty = SendQueue::new(Instant::now());
        let mut send = SendBatch::default();
        group.throughput(Throughput::Elements(conns as u64));
        group.bench_function(BenchmarkId::new("deliveries", conns), |b| {
            b.iter(|| {
                let now = Instant::now();
                deliver(
                    0,
                    &batch,
                    &mut topics,
                    &mut table,
                    &settings,
                    now,
                    &mut dirty,
                );
                while let Some((slot, _)) = dirty.pop() {
                    let e = table.get_mut(slot).unwrap();
                    e.dirty = false;
                    e.conn.poll_transmit(&mut send);
                    let n = send.len;
                    send.clear();
                    e.conn.handle_sent(n);
                }
            })
        });
    }
    group.finish();
}

/// A mass disconnect: every subscriber of one big channel on a shard leaves, oldest first.
fn topics_mass_unsubscribe(c: &mut Criterion) {
    let mut group = c.benchmark_group("topics_unsubscribe");
    let members = 20_000u32;
    group.throughput(Throughput::Elements(u64::from(members)));
    group.bench_function(BenchmarkId::new("all_of_one_channel", members), |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                let mut topics = Topics::default();
                for slot in 0..members {
                    topics.subscribe("room", slot, 0);
                }
                let t = Instant::now();
                for slot in 0..members {
                    topics.unsubscribe("room", slot);
                }
                total += t.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    distributor_tick,
    distributor_tick_conflated,
    topics_mass_unsubscribe,
    shard_fanout
);
criterion_main!(benches);
