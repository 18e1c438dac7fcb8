//! WebSocket client frames: header parsing (`protocol::frame::parse_client_header`) and message
//! reassembly (`protocol::message::MessageReader::feed`), as a connection sees them after the
//! upgrade, in arbitrary chunkings, with the configured 64 KiB `max_message_bytes`.
//!
//! Input: byte 0 picks the chunking (0: one read; else reads of pseudo-random sizes seeded by it,
//! up to 4 KiB, the io_uring receive buffer, or with bit 7 set up to 64 KiB, the epoll read
//! scratch); the rest is the client's byte stream.
//!
//! Checks, besides no panic (overflow checks are on with `-a`):
//! - the reader agrees with an independent model of RFC 6455 reassembly written here (same
//!   messages, same close code; either of the reader's documented UTF-8 and 64-bit-length
//!   choices is accepted), so a size check that lets an oversized message through fails even
//!   where no overflow trap fires;
//! - the outcome does not depend on the chunking;
//! - memory stays bounded: with a small `max_message_bytes`, `buffered()` never exceeds what a
//!   correct reader can hold (an incomplete frame + one read, each at most doubled by `Vec`
//!   growth, + the message being reassembled).
#![no_main]

use framecast::internals::protocol::frame::parse_client_header;
use framecast::internals::protocol::message::{Incoming, MessageReader};
use libfuzzer_sys::fuzz_target;

#[path = "common/mod.rs"]
mod common;
use common::chunking;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    Close(Option<u16>, String),
}

/// The outcome of a whole stream: messages delivered and the close code of the first violation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    events: Vec<Ev>,
    violation: Option<u16>,
}

fn to_ev(m: Incoming<'_>) -> Ev {
    match m {
        Incoming::Text(t) => Ev::Text(t.to_vec()),
        Incoming::Binary(b) => Ev::Binary(b.to_vec()),
        Incoming::Ping(p) => Ev::Ping(p.to_vec()),
        Incoming::Pong => Ev::Pong,
        Incoming::Close(c, r) => Ev::Close(c.map(|c| c.0), r.to_string()),
    }
}

/// Feeds `stream` in `chunks`, stopping at the first violation as `Conn` does (it poisons its
/// input); calls `after` with the reader after every successful feed.
fn feed(
    stream: &[u8],
    chunks: &[usize],
    max: usize,
    mut after: impl FnMut(&MessageReader, usize),
) -> Outcome {
    let mut reader = MessageReader::default();
    let mut events = Vec::new();
    let mut pos = 0;
    for &n in chunks {
        let mut chunk = stream[pos..pos + n].to_vec();
        pos += n;
        let r = reader.feed(&mut chunk, max, &mut |m| events.push(to_ev(m)));
        if let Err(v) = r {
            return Outcome {
                events,
                violation: Some(v.code.0),
            };
        }
        after(&reader, pos);
    }
    Outcome {
        events,
        violation: None,
    }
}

/// Choices RFC 6455 leaves open (or that the reader changed): both are accepted.
#[derive(Clone, Copy, Debug)]
struct Semantics {
    /// Text is checked as it arrives, failing at the first byte that cannot be UTF-8 (also
    /// inside an incomplete frame); otherwise once the message is whole.
    fail_fast_utf8: bool,
    /// A 64-bit length with the top bit set is a protocol error (RFC 6455 §5.2 "MUST be 0");
    /// otherwise it is a length like any other (and so too big).
    msb_is_protocol_error: bool,
    /// A data frame out of place (a continuation with no message, a new message inside a
    /// fragmented one) is refused as soon as its header is read; otherwise once it is whole.
    misplaced_at_header: bool,
}

/// UTF-8 checked incrementally over a growing message: `Err` once a byte cannot be UTF-8.
#[derive(Default)]
struct Utf8Check {
    text: Vec<u8>,
    valid: usize,
}
impl Utf8Check {
    fn push(&mut self, bytes: &[u8]) -> Result<(), ()> {
        self.text.extend_from_slice(bytes);
        match std::str::from_utf8(&self.text[self.valid..]) {
            Ok(_) => {
                self.valid = self.text.len();
                Ok(())
            }
            Err(e) if e.error_len().is_some() => Err(()),
            Err(e) => {
                self.valid += e.valid_up_to();
                Ok(())
            }
        }
    }
    fn complete(&self) -> bool {
        self.valid == self.text.len()
    }
}

/// An independent reading of RFC 6455 §5 for client frames, with the reader's documented
/// choices (1009 as soon as a header would take a data message past `max`, close codes as in
/// §7.4). Lengths are u128, so nothing here can wrap.
fn model(s: &[u8], max: usize, sem: Semantics) -> Outcome {
    let mut events = Vec::new();
    let mut pos = 0usize;
    // The fragmented message in progress: (text, bytes so far).
    let mut frag: Option<(bool, Vec<u8>)> = None;
    let mut utf8 = Utf8Check::default();
    let fail = |events: Vec<Ev>, code: u16| Outcome {
        events,
        violation: Some(code),
    };
    loop {
        let b = &s[pos..];
        if b.len() < 2 {
            break;
        }
        let (fin, rsv, op) = (b[0] & 0x80 != 0, b[0] & 0x70, b[0] & 0x0F);
        let masked = b[1] & 0x80 != 0;
        let (len, mut hl): (u128, usize) = match b[1] & 0x7F {
            126 if b.len() >= 4 => (u128::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => (
                u128::from(u64::from_be_bytes(b[2..10].try_into().unwrap())),
                10,
            ),
            126 | 127 => break,
            n => (u128::from(n), 2),
        };
        let mask = if masked {
            if b.len() < hl + 4 {
                break;
            }
            hl += 4;
            Some([b[hl - 4], b[hl - 3], b[hl - 2], b[hl - 1]])
        } else {
            None
        };
        let control = op >= 8;
        if !matches!(op, 0 | 1 | 2 | 8 | 9 | 10) || rsv != 0 || mask.is_none() {
            return fail(events, 1002);
        }
        if sem.msb_is_protocol_error && len >> 63 != 0 {
            return fail(events, 1002);
        }
        if control && (!fin || len > 125) {
            return fail(events, 1002);
        }
        let so_far = frag.as_ref().map_or(0, |f| f.1.len()) as u128;
        if !control && so_far + len > max as u128 {
            return fail(events, 1009);
        }
        let misplaced = match op {
            0 => frag.is_none(),
            1 | 2 => frag.is_some(),
            _ => false,
        };
        if sem.misplaced_at_header && misplaced {
            return fail(events, 1002);
        }
        let len = len as usize; // <= max here
        let arrived = len.min(b.len() - hl);
        let mask = mask.unwrap();
        let payload: Vec<u8> = b[hl..hl + arrived]
            .iter()
            .enumerate()
            .map(|(i, x)| x ^ mask[i % 4])
            .collect();
        // Whether this frame continues (or starts) a text message in its proper place.
        let text_in_place = match op {
            1 => frag.is_none(),
            0 => frag.as_ref().is_some_and(|f| f.0),
            _ => false,
        };
        if sem.fail_fast_utf8 && text_in_place {
            if op == 1 {
                utf8 = Utf8Check::default();
            }
            if utf8.push(&payload).is_err() {
                return fail(events, 1007);
            }
        }
        if arrived < len {
            break;
        }
        pos += hl + len;
        let whole_text_ok = |bytes: &[u8], utf8: &Utf8Check| {
            if sem.fail_fast_utf8 {
                utf8.complete()
            } else {
                std::str::from_utf8(bytes).is_ok()
            }
        };
        match op {
            9 => events.push(Ev::Ping(payload)),
            10 => events.push(Ev::Pong),
            8 => match payload.len() {
                0 => events.push(Ev::Close(None, String::new())),
                1 => return fail(events, 1002),
                _ => {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
                        return fail(events, 1002);
                    }
                    match String::from_utf8(payload[2..].to_vec()) {
                        Ok(r) => events.push(Ev::Close(Some(code), r)),
                        Err(_) => return fail(events, 1007),
                    }
                }
            },
            1 | 2 => {
                if frag.is_some() {
                    return fail(events, 1002);
                }
                if fin {
                    if op == 1 {
                        if !whole_text_ok(&payload, &utf8) {
                            return fail(events, 1007);
                        }
                        events.push(Ev::Text(payload));
                    } else {
                        events.push(Ev::Binary(payload));
                    }
                } else {
                    frag = Some((op == 1, payload));
                }
            }
            _ => {
                let Some((text, mut data)) = frag.take() else {
                    return fail(events, 1002);
                };
                data.extend_from_slice(&payload);
                if !fin {
                    frag = Some((text, data));
                } else if text {
                    if !whole_text_ok(&data, &utf8) {
                        return fail(events, 1007);
                    }
                    events.push(Ev::Text(data));
                } else {
                    events.push(Ev::Binary(data));
                }
            }
        }
    }
    Outcome {
        events,
        violation: None,
    }
}

/// The model's outcomes under every accepted choice of semantics.
fn models(s: &[u8], max: usize) -> Vec<Outcome> {
    let mut out = Vec::new();
    for fail_fast_utf8 in [false, true] {
        for msb_is_protocol_error in [false, true] {
            for misplaced_at_header in [false, true] {
                let o = model(
                    s,
                    max,
                    Semantics {
                        fail_fast_utf8,
                        msb_is_protocol_error,
                        misplaced_at_header,
                    },
                );
                if !out.contains(&o) {
                    out.push(o);
                }
            }
        }
    }
    out
}

fn short(o: &Outcome) -> String {
    let evs: Vec<String> = o
        .events
        .iter()
        .map(|e| match e {
            Ev::Text(t) => format!("Text({})", t.len()),
            Ev::Binary(t) => format!("Binary({})", t.len()),
            Ev::Ping(t) => format!("Ping({})", t.len()),
            other => format!("{other:?}"),
        })
        .collect();
    format!("{evs:?} violation={:?}", o.violation)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    // The header parser alone on every suffix start (cheap): header_len within bounds.
    if let Ok(Some(h)) = parse_client_header(stream, false) {
        assert!((2..=14).contains(&h.header_len) && h.header_len <= stream.len());
    }

    let (chunks, max_chunk) = chunking(mode, stream.len());
    for max in [common::MAX_MESSAGE_BYTES, 1024] {
        let expected = models(stream, max);
        let whole = feed(stream, &[stream.len()], max, |_, _| {});
        assert!(
            expected.contains(&whole),
            "max {max}: reader (one read) {} matches no model: {:?}",
            short(&whole),
            expected.iter().map(short).collect::<Vec<_>>()
        );
        // An incomplete frame (<= 14 + max bytes) plus one read, at most doubled by Vec growth,
        // plus the message being reassembled (< 2 * max after growth).
        let bound = 2 * (14 + max + max_chunk) + 2 * max;
        let chunked = feed(stream, &chunks, max, |reader, at| {
            assert!(
                reader.buffered() <= bound,
                "max {max}: reader buffers {} bytes after {at} of {} input bytes (bound {bound})",
                reader.buffered(),
                stream.len()
            );
        });
        assert!(
            chunked == whole,
            "max {max}: {} reads give {}, one read gives {}",
            chunks.len(),
            short(&chunked),
            short(&whole)
        );
    }
});
