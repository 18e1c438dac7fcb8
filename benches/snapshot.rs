//! Snapshot costs (`snapshot = true` namespaces): keeping the newest event per key when new keys
//! keep arriving at the 10k-key cap, and answering a joining subscriber with the whole snapshot
//! (10k keys), right after a change and again within the same tick (a reconnect storm).
//! Throughput is events kept per second (put) and snapshot events handed to joiners per second.
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use framecast::internals::distributor::snapshot::Snapshot;
use framecast::internals::limits::MAX_SNAPSHOT_KEYS;
use framecast::internals::wire::event::EventFields;

const TS: &str = "2026-11-22T04:20:00.123Z";

/// What the tick hands the snapshot: event `seq` of channel `pos:room`, keyed by `key`.
fn put(s: &mut Snapshot, seq: u64, key: &Bytes) {
    s.put(
        Some(key),
        &EventFields {
            channel: "pos:room",
            seq,
            frame: seq,
            timestamp: TS,
            unix_ms: 0,
            event_type: b"\"pos\"",
            data: br#"{"x":12.5,"y":-3.25,"z":100.0}"#,
            key: Some(key),
            snapshot: true,
            binary: false,
        },
    );
}

fn full_snapshot() -> (Snapshot, u64) {
    let mut s = Snapshot::default();
    for i in 0..MAX_SNAPSHOT_KEYS as u64 {
        put(&mut s, i + 1, &Bytes::from(format!("\"avatar-{i}\"")));
    }
    (s, MAX_SNAPSHOT_KEYS as u64)
}

fn snapshot(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot");

    let (mut s, mut seq) = full_snapshot();
    // Keys never seen within the last MAX_SNAPSHOT_KEYS puts: every put forgets the oldest key.
    let fresh: Vec<Bytes> = (0..4 * MAX_SNAPSHOT_KEYS)
        .map(|i| Bytes::from(format!("\"new-{i}\"")))
        .collect();
    let mut next = 0;
    group.throughput(Throughput::Elements(100));
    group.bench_function(
        BenchmarkId::new("put_new_keys_at_cap", MAX_SNAPSHOT_KEYS),
        |b| {
            b.iter(|| {
                for _ in 0..100 {
                    seq += 1;
                    put(&mut s, seq, &fresh[next]);
                    next = (next + 1) % fresh.len();
                }
            })
        },
    );

    let (mut s, mut seq) = full_snapshot();
    let key = Bytes::from_static(b"\"avatar-7\"");
    group.throughput(Throughput::Elements(MAX_SNAPSHOT_KEYS as u64));
    group.bench_function(
        BenchmarkId::new("join_after_a_change", MAX_SNAPSHOT_KEYS),
        |b| {
            b.iter(|| {
                seq += 1;
                put(&mut s, seq, &key);
                std::hint::black_box(s.frames())
            })
        },
    );
    group.bench_function(BenchmarkId::new("join_unchanged", MAX_SNAPSHOT_KEYS), |b| {
        b.iter(|| std::hint::black_box(s.frames()))
    });
    group.finish();
}

criterion_group!(benches, snapshot);
criterion_main!(benches);
