//! Helpers for the crate's unit tests: an upgraded connection in a shard's table, the way a
//! shard holds one, without sockets.
#![cfg(test)]

use std::time::{Duration, Instant};

use crate::conn::{Admission, AppEvent, Conn, ConnSettings, SendBatch};
use crate::conn_id::{ConnId, Slot};
use crate::protocol::handshake::Routes;
use crate::table::{ConnTable, Entry, Session};

/// Connection settings with a `max_queued_bytes` of `cap`.
pub(crate) fn settings(cap: usize) -> ConnSettings {
    ConnSettings {
        max_message_bytes: 64 * 1024,
        max_queued_bytes: cap,
        ping_interval: Duration::from_secs(30),
        pong_timeout: Duration::from_secs(10),
        handshake_timeout: Duration::from_secs(10),
        routes: Routes {
            ws_path: "/ws".into(),
            echo_path: None,
            max_body: 1024,
            deflate: true,
        },
    }
}

/// An upgrade request to the native endpoint `/ws`.
pub(crate) const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// Inserts an open native connection (101 already sent, queue empty) into `table`.
pub(crate) fn open_entry(table: &mut ConnTable, session: Session, now: Instant) -> ConnId {
    let mut conn = Conn::new(now, &settings(1 << 20), Admission::Admit);
    let settings = settings(1 << 20);
    conn.handle_input(&mut UPGRADE.to_vec(), now, &settings, &mut |_,
                                                                   _: AppEvent<
        '_,
    >| {});
    let mut batch = SendBatch::default();
    conn.poll_transmit(&mut batch);
    conn.handle_sent(batch.len);
    table.insert(Entry::new(conn, session))
}

/// Everything queued on the connection in `slot`, as the socket would get it.
pub(crate) fn drain(table: &mut ConnTable, slot: Slot) -> Vec<u8> {
    let conn = &mut table.get_mut(slot).expect("open").conn;
    let mut batch = SendBatch::default();
    conn.poll_transmit(&mut batch);
    let out: Vec<u8> = batch.slices().flatten().copied().collect();
    conn.handle_sent(out.len());
    out
}

/// A send batch of one frame.
pub(crate) fn batch_of(frame: &bytes::Bytes) -> SendBatch {
    SendBatch {
        bufs: vec![frame.clone()],
        offset: 0,
        len: frame.len(),
    }
}

/// A masked client frame: `first` is the first header byte (FIN and opcode, e.g. `0x81` for a
/// final text frame), the payload masked with a fixed key, as RFC 6455 requires of clients.
pub(crate) fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [1, 2, 3, 4];
    let mut v = vec![first];
    match payload.len() {
        n @ 0..=125 => v.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            v.push(0x80 | 126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            v.push(0x80 | 127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    v.extend_from_slice(&mask);
    v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    v
}

/// What a client that agreed to permessage-deflate reads from server frames, joined: each
/// message's payload (inflated where RSV1 is set) and whether it came compressed.
pub(crate) fn read_server_frames(mut buf: &[u8]) -> Vec<(bool, Vec<u8>)> {
    use flate2::{Decompress, FlushDecompress};
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (header, _, len) = crate::protocol::frame::server_frame_at(buf).expect("whole frames");
        let payload = &buf[header..header + len];
        if buf[0] & 0x40 == 0 {
            out.push((false, payload.to_vec()));
        } else {
            let mut input = payload.to_vec();
            input.extend_from_slice(&[0, 0, 0xff, 0xff]);
            let mut inflated = Vec::with_capacity(1 << 20);
            Decompress::new(false)
                .decompress_vec(&input, &mut inflated, FlushDecompress::Sync)
                .expect("valid DEFLATE");
            out.push((true, inflated));
        }
        buf = &buf[header + len..];
    }
    out
}

/// `data` as a permessage-deflate client compresses one message: raw DEFLATE at `level`, sync
/// flush, the trailing `00 00 ff ff` removed (RFC 7692 §7.2.1).
pub(crate) fn client_deflate(data: &[u8], level: u32) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let mut c = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    while c.total_in() < data.len() as u64 || out.len() == out.capacity() {
        out.reserve(out.capacity().max(64));
        let at = c.total_in() as usize;
        c.compress_vec(&data[at..], &mut out, FlushCompress::Sync)
            .unwrap();
    }
    assert_eq!(&out[out.len() - 4..], &[0, 0, 0xff, 0xff]);
    out.truncate(out.len() - 4);
    out
}
