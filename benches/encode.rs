//! Per-event costs: encoding one event into a complete WebSocket frame (64 B, 1 KiB, 16 KiB
//! payloads), and parsing a client `publish`: framecast's parser (validate once, keep `data` as
//! the bytes sent) against the two ways it was or could be done, a simd-json value tree and a
//! serde_json value tree, each re-encoding `data`. Throughput is reported in bytes/s. And a
//! binary event (packed `f32` positions) three ways: its binary frame (`?binary=1`), its JSON
//! form (base64), and the same numbers as a JSON array in an ordinary event.
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use framecast::internals::wire::binary_event::put_binary_event_frame;
use framecast::internals::wire::command;
use framecast::internals::wire::event::{put_event_frame, EventFields};

fn payload(size: usize) -> Vec<u8> {
    let mut data = br#"{"t":1732245600123456789,"pad":""#.to_vec();
    data.resize(size - 2, b'x');
    data.extend_from_slice(b"\"}");
    data
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_event_frame");
    for size in [64usize, 1024, 16 * 1024] {
        let data = payload(size);
        let fields = EventFields {
            channel: "bench",
            seq: 123_456,
            frame: 987_654,
            timestamp: "2026-11-22T04:20:00.123Z",
            unix_ms: 0,
            event_type: b"\"tick\"",
            data: &data,
            key: None,
            snapshot: false,
            binary: false,
        };
        let mut out = BytesMut::with_capacity(size + 256);
        let frame_len = put_event_frame(&mut out, &fields);
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("events", size), &fields, |b, f| {
            b.iter(|| {
                out.clear();
                put_event_frame(&mut out, f)
            })
        });
        group.throughput(Throughput::Bytes(frame_len as u64));
        group.bench_with_input(BenchmarkId::new("bytes", size), &fields, |b, f| {
            b.iter(|| {
                out.clear();
                put_event_frame(&mut out, f)
            })
        });
    }
    group.finish();
}

/// `n` positions (x, y, z) as packed little-endian `f32`s and as the JSON array of the same
/// numbers.
fn positions(n: usize) -> (Vec<u8>, Vec<u8>) {
    let floats: Vec<f32> = (0..n * 3)
        .map(|i| (i as f32 * 0.37).sin() * 512.0 + i as f32 / 7.0)
        .collect();
    let packed = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
    let json = serde_json::to_vec(&floats).unwrap();
    (packed, json)
}

fn binary(c: &mut Criterion) {
    let mut group = c.benchmark_group("binary_event");
    for n in [64usize, 1024] {
        let (packed, json) = positions(n);
        let fields = |data: &'static [u8], binary: bool| EventFields {
            channel: "pos:world-1",
            seq: 123_456,
            frame: 987_654,
            timestamp: "2026-12-07T15:00:00.123Z",
            unix_ms: 1_765_119_600_123,
            event_type: b"\"positions\"",
            data,
            key: None,
            snapshot: false,
            binary,
        };
        let packed: &'static [u8] = Box::leak(packed.into_boxed_slice());
        let json: &'static [u8] = Box::leak(json.into_boxed_slice());
        let mut out = BytesMut::with_capacity(json.len() * 2 + 256);
        let sizes = [
            put_binary_event_frame(&mut out, &fields(packed, true)),
            put_event_frame(&mut out, &fields(packed, true)),
            put_event_frame(&mut out, &fields(json, false)),
        ];
        eprintln!(
            "binary_event {n} positions: frame bytes binary {} / base64 JSON {} / JSON numbers {}",
            sizes[0], sizes[1], sizes[2]
        );
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("binary_frame", n), |b| {
            let f = fields(packed, true);
            b.iter(|| {
                out.clear();
                put_binary_event_frame(&mut out, &f)
            })
        });
        group.bench_function(BenchmarkId::new("base64_json", n), |b| {
            let f = fields(packed, true);
            b.iter(|| {
                out.clear();
                put_event_frame(&mut out, &f)
            })
        });
        group.bench_function(BenchmarkId::new("json_numbers", n), |b| {
            let f = fields(json, false);
            b.iter(|| {
                out.clear();
                put_event_frame(&mut out, &f)
            })
        });
    }
    group.finish();
}

/// A publish read through a serde_json value tree, `data` re-encoded (lossy for floats).
fn parse_with_serde_json(buf: &[u8]) -> Option<(String, Vec<u8>)> {
    let v: serde_json::Value = serde_json::from_slice(buf).ok()?;
    let obj = v.as_object()?;
    if obj.get("type")?.as_str()? != "publish" {
        return None;
    }
    let channel = obj.get("channel")?.as_str()?.to_string();
    Some((channel, serde_json::to_vec(obj.get("data")?).ok()?))
}

/// A publish read through a simd-json value tree, `data` re-encoded (what framecast did before:
/// recursive, so unbounded nesting overflowed the stack).
fn parse_with_simd_json(
    buf: &mut [u8],
    scratch: &mut simd_json::Buffers,
) -> Option<(String, Vec<u8>)> {
    use simd_json::prelude::*;
    let v = simd_json::to_borrowed_value_with_buffers(buf, scratch).ok()?;
    if v.get("type")?.as_str()? != "publish" {
        return None;
    }
    let channel = v.get("channel")?.as_str()?.to_string();
    Some((channel, v.get("data")?.encode().into_bytes()))
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_client_message");
    for size in [64usize, 1024] {
        let msg = format!(
            r#"{{"type":"publish","channel":"bench","event_type":"tick","data":{}}}"#,
            String::from_utf8(payload(size)).unwrap()
        )
        .into_bytes();
        group.throughput(Throughput::Bytes(msg.len() as u64));
        group.bench_with_input(BenchmarkId::new("framecast", size), &msg, |b, m| {
            b.iter(|| command::parse(m).unwrap())
        });
        let mut scratch = simd_json::Buffers::default();
        let mut buf = msg.clone();
        group.bench_with_input(BenchmarkId::new("simd_json_value", size), &msg, |b, m| {
            b.iter(|| {
                buf.copy_from_slice(m);
                parse_with_simd_json(&mut buf, &mut scratch).unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("serde_json_value", size), &msg, |b, m| {
            b.iter(|| parse_with_serde_json(m).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, encode, parse, binary);
criterion_main!(benches);
