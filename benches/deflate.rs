//! permessage-deflate's cost per event, at each DEFLATE level: compressing one event frame
//! (framecast's envelope around realistic JSON: entity positions or gauges with fresh random
//! values, never repeated padding), and one tick batch of 8 such events as a single message.
//! Each case also prints its compressed size over the plain frame's (the wire ratio), once,
//! so a level can be picked on both axes: `cargo bench --bench deflate`.
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use framecast::internals::protocol::compress::FrameDeflater;
use framecast::internals::protocol::frame::{server_frame, Kind};
use framecast::internals::wire::event::{put_event_frame, EventFields};

/// A small xorshift, so every event carries new numbers (as a moving scene does).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in -range..range with `decimals` decimals.
    fn num(&mut self, range: u64, decimals: u32) -> String {
        let scale = 10u64.pow(decimals);
        let v = (self.next() % (2 * range * scale)) as i64 - (range * scale) as i64;
        format!("{:.*}", decimals as usize, v as f64 / scale as f64)
    }
}

/// About `size` bytes of entity positions: `[{"id":"av100","x":..,"y":..,"z":..,"vx":..},..]`.
fn positions(rng: &mut Rng, size: usize) -> String {
    let mut out = String::from("[");
    let mut id = 100;
    while out.len() + 80 < size {
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"id":"av{id}","x":{},"y":{},"z":{},"vx":{},"vy":0,"vz":{}}}"#,
            rng.num(500, 3),
            rng.num(20, 3),
            rng.num(500, 3),
            rng.num(5, 2),
            rng.num(5, 2)
        ));
        id += 1;
    }
    out.push(']');
    out
}

/// About `size` bytes of gauges: `{"cpu_user_pct":12.345,"mem_rss_mb":8123.5,..}`.
fn metrics(rng: &mut Rng, size: usize) -> String {
    const NAMES: [&str; 6] = [
        "cpu_user_pct",
        "cpu_system_pct",
        "mem_rss_mb",
        "net_rx_kbps",
        "net_tx_kbps",
        "disk_io_ops",
    ];
    let mut out = String::from("{");
    let mut i = 0;
    while out.len() + 30 < size {
        if out.len() > 1 {
            out.push(',');
        }
        let name = NAMES[i % NAMES.len()];
        out.push_str(&format!(
            r#""{name}_{}":{}"#,
            i / NAMES.len(),
            rng.num(10_000, 3)
        ));
        i += 1;
    }
    out.push('}');
    out
}

/// One event frame as the distributor encodes it.
fn event_frame(seq: u64, data: &str) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_event_frame(
        &mut out,
        &EventFields {
            channel: "pos:world-1",
            seq,
            frame: 90_000 + seq,
            timestamp: "2026-12-03T15:40:00.016Z",
            unix_ms: 0,
            event_type: b"\"positions\"",
            data: data.as_bytes(),
            key: None,
            snapshot: false,
            binary: false,
        },
    );
    out.to_vec()
}

/// A tick batch of `frames`' events: one text message `[event,event,...]`.
fn batch_payload(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"[".to_vec();
    for (i, f) in frames.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let header = if f[1] & 0x7f == 126 { 4 } else { 2 };
        out.extend_from_slice(&f[header..]);
    }
    out.push(b']');
    out
}

fn deflate(c: &mut Criterion) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let kinds: [(&str, String); 2] = [
        ("positions-256", positions(&mut rng, 256)),
        ("metrics-256", metrics(&mut rng, 256)),
    ];
    let mut group = c.benchmark_group("deflate_event");
    for (name, data) in &kinds {
        let frame = event_frame(41, data);
        for level in [1u32, 2, 3, 4, 6, 9] {
            let mut d = FrameDeflater::new(level);
            let mut out = BytesMut::with_capacity(frame.len() + 16);
            d.put_frame(&mut out, &frame);
            eprintln!(
                "deflate_event {name} level {level}: {} -> {} bytes (ratio {:.3})",
                frame.len(),
                out.len(),
                out.len() as f64 / frame.len() as f64
            );
            group.throughput(Throughput::Elements(1));
            group.bench_with_input(BenchmarkId::new(*name, level), &frame, |b, f| {
                b.iter(|| {
                    out.clear();
                    d.put_frame(&mut out, f);
                })
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("deflate_tick_batch_8");
    let frames: Vec<Vec<u8>> = (0..8)
        .map(|i| event_frame(100 + i, &positions(&mut rng, 256)))
        .collect();
    let plain_total: usize = frames.iter().map(Vec::len).sum();
    let batch = batch_payload(&frames);
    let batch_frame = server_frame(Kind::Text, &batch);
    for level in [1u32, 2, 3, 4, 6, 9] {
        let mut d = FrameDeflater::new(level);
        let mut out = BytesMut::with_capacity(batch_frame.len() + 16);
        d.put_frame(&mut out, &batch_frame);
        eprintln!(
            "deflate_tick_batch_8 positions-256 level {level}: 8 events, {plain_total} bytes as frames -> {} bytes (ratio {:.3})",
            out.len(),
            out.len() as f64 / plain_total as f64
        );
        group.throughput(Throughput::Elements(8));
        group.bench_with_input(
            BenchmarkId::new("positions-256", level),
            &batch_frame,
            |b, f| {
                b.iter(|| {
                    out.clear();
                    d.put_frame(&mut out, f);
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, deflate);
criterion_main!(benches);
