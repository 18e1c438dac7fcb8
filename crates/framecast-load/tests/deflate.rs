//! A whole run against a tiny rebroadcasting server that agrees to permessage-deflate when it
//! is offered and then sends every message compressed: subscribers count and time what they
//! inflate, and the report says how many connections agreed and what went over the wire.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flate2::{Compress, Compression, FlushCompress};
use framecast_load::{run_with, LoadConfig, PublishMode, Size, Traffic};

const ANSWER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// Raw DEFLATE of `msg` from a fresh state, sync flush, `00 00 ff ff` stripped.
fn deflate(msg: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::new(6), false);
    let mut out = Vec::with_capacity(msg.len() + 64);
    c.compress_vec(msg, &mut out, FlushCompress::Sync).unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// A final unmasked server frame, RSV1 set when `compressed`.
fn server_frame(payload: &[u8], compressed: bool) -> Vec<u8> {
    let mut f = vec![if compressed { 0xc1 } else { 0x81 }];
    match payload.len() {
        n @ 0..=125 => f.push(n as u8),
        n => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

/// The payloads of the complete masked client frames at the start of `buf`, and the bytes used.
fn client_frames(buf: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let (mut out, mut at) = (Vec::new(), 0);
    while buf.len() >= at + 2 {
        let (len, hdr) = match buf[at + 1] & 0x7f {
            126 if buf.len() >= at + 4 => {
                (u16::from_be_bytes([buf[at + 2], buf[at + 3]]) as usize, 4)
            }
            126 => break,
            n => (n as usize, 2),
        };
        if buf.len() < at + hdr + 4 + len {
            break;
        }
        let key = &buf[at + hdr..at + hdr + 4];
        let body = &buf[at + hdr + 4..at + hdr + 4 + len];
        if buf[at] & 0x0f == 1 {
            out.push(
                body.iter()
                    .enumerate()
                    .map(|(i, b)| b ^ key[i % 4])
                    .collect(),
            );
        }
        at += hdr + 4 + len;
    }
    (out, at)
}

/// Serves WebSocket upgrades on `listener` and rebroadcasts every text frame to every
/// connection, compressed to those that offered permessage-deflate.
fn serve(listener: TcpListener) {
    let conns: Arc<Mutex<Vec<(TcpStream, bool)>>> = Arc::default();
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { return };
        let conns = conns.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let Ok(n @ 1..) = s.read(&mut chunk) else {
                    return;
                };
                buf.extend_from_slice(&chunk[..n]);
            }
            let offered = String::from_utf8_lossy(&buf).contains("permessage-deflate");
            let ext = if offered {
                format!("Sec-WebSocket-Extensions: {ANSWER}\r\n")
            } else {
                String::new()
            };
            let head = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{ext}\r\n");
            s.write_all(head.as_bytes()).unwrap();
            conns
                .lock()
                .unwrap()
                .push((s.try_clone().unwrap(), offered));
            buf.clear();
            loop {
                let Ok(n @ 1..) = s.read(&mut chunk) else {
                    return;
                };
                buf.extend_from_slice(&chunk[..n]);
                let (msgs, used) = client_frames(&buf);
                buf.drain(..used);
                for m in msgs {
                    let (plain, packed) =
                        (server_frame(&m, false), server_frame(&deflate(&m), true));
                    for (c, deflate) in conns.lock().unwrap().iter_mut() {
                        let _ = c.write_all(if *deflate { &packed } else { &plain });
                    }
                }
            }
        });
    }
}

/// `v` is within one byte of `want`.
fn near(v: Option<f64>, want: f64) -> bool {
    v.is_some_and(|v| (v - want).abs() < 1.0)
}

fn run(deflate: bool) -> framecast_load::LoadReport {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || serve(listener));
    let cfg = LoadConfig {
        url,
        subscribers: 4,
        channels: 1,
        rate: 200.0,
        payload: 0,
        mode: PublishMode::WebSocket,
        api_key: None,
        warmup: Duration::from_millis(200),
        duration: Duration::from_millis(600),
        settle: Duration::from_millis(100),
        threads: 1,
        connect_concurrency: 10,
        server_pid: None,
        progress: false,
    };
    let mut traffic = Traffic::framecast(PublishMode::WebSocket, 0);
    traffic.subscribe = None;
    traffic.publish = "T={T} SEQ={SEQ} {PAD}".into();
    traffic.size = Size::Total(200);
    traffic.deflate = deflate;
    run_with(&cfg, &traffic).unwrap()
}

#[test]
fn compressed_messages_are_inflated_counted_and_timed() {
    let r = run(true);
    assert_eq!((r.subscribers, r.errors, r.disconnects), (4, 0, 0));
    assert!(r.deflate_offered && r.pub_deflate_negotiated);
    assert_eq!(r.deflate_negotiated, 4);
    assert_eq!(r.deflate_response.as_deref(), Some(ANSWER));
    assert!(r.delivery_ratio > 0.9, "{r:?}");
    assert!(r.latency_ms.count > 0);
    // (the counters are read one after the other while subscribers count: a message or two
    // may be in one and not yet in another)
    assert!(r.sub_compressed_msgs > 0);
    assert!(
        r.sub_payload_bytes.abs_diff(r.sub_compressed_msgs * 200) <= 4 * 200,
        "{r:?}"
    );
    assert!(r.sub_inflate_cache_hits > 0, "four copies of every message");
    // 200 bytes of text; `x` filler compresses to much less on the wire
    assert!(near(r.payload_bytes_per_msg, 200.0), "{r:?}");
    assert!(r.wire_bytes_per_msg.unwrap() < 100.0, "{r:?}");
}

#[test]
fn without_deflate_nothing_is_offered_and_the_wire_carries_the_text() {
    let r = run(false);
    assert_eq!((r.subscribers, r.errors, r.disconnects), (4, 0, 0));
    assert!(!r.deflate_offered && !r.pub_deflate_negotiated);
    assert_eq!((r.deflate_negotiated, r.sub_compressed_msgs), (0, 0));
    assert_eq!(r.deflate_response, None);
    assert!(r.delivery_ratio > 0.9, "{r:?}");
    assert!(near(r.payload_bytes_per_msg, 200.0), "{r:?}");
    assert!(
        near(r.wire_bytes_per_msg, 204.0),
        "200 bytes and a 4-byte header: {r:?}"
    );
}
