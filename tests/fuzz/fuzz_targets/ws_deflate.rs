//! Compressed client messages (permessage-deflate, RFC 7692) as a connection that agreed to the
//! extension reads them (`MessageReader::feed` after `accept_deflate`): RSV1 frames, fragmented
//! compressed messages, corrupt DEFLATE data and inflation bombs, in arbitrary chunkings.
//!
//! Input: byte 0 picks the chunking (0: one read; else reads of pseudo-random sizes seeded by it,
//! up to 4 KiB, or with bit 7 set up to 64 KiB); the rest is the client's byte stream.
//!
//! Checks, besides no panic: no message handed up is longer than `max_message_bytes` (the cap
//! holds after inflation); the outcome (messages and close code) does not depend on the
//! chunking; the reader buffers no more than an incomplete frame, one read and the message being
//! reassembled.
#![no_main]

use framecast::internals::protocol::message::{Incoming, MessageReader};
use libfuzzer_sys::fuzz_target;

#[path = "common/mod.rs"]
mod common;
use common::chunking;

/// What the reader handed up (data messages with their kind) and the close code it stopped at.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    messages: Vec<(bool, Vec<u8>)>,
    violation: Option<u16>,
}

fn feed(stream: &[u8], chunks: &[usize], max: usize, bound: usize) -> Outcome {
    let mut reader = MessageReader::default();
    reader.accept_deflate();
    let mut messages = Vec::new();
    let mut pos = 0;
    for &n in chunks {
        let mut chunk = stream[pos..pos + n].to_vec();
        pos += n;
        let r = reader.feed(&mut chunk, max, &mut |m| match m {
            Incoming::Text(t) => messages.push((true, t.to_vec())),
            Incoming::Binary(b) => messages.push((false, b.to_vec())),
            _ => {}
        });
        if let Err(v) = r {
            return Outcome {
                messages,
                violation: Some(v.code.0),
            };
        }
        assert!(
            reader.buffered() <= bound,
            "reader buffers {} bytes (bound {bound})",
            reader.buffered()
        );
    }
    Outcome {
        messages,
        violation: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let (chunks, max_chunk) = chunking(mode, stream.len());
    for max in [common::MAX_MESSAGE_BYTES, 1024] {
        let bound = 2 * (14 + max + max_chunk) + 2 * max;
        let whole = feed(
            stream,
            &[stream.len()],
            max,
            bound.max(2 * stream.len() + 2 * max),
        );
        for (text, m) in &whole.messages {
            assert!(
                m.len() <= max,
                "a {}-byte message passed a cap of {max}",
                m.len()
            );
            if *text {
                assert!(
                    std::str::from_utf8(m).is_ok(),
                    "text handed up is not UTF-8"
                );
            }
        }
        let chunked = feed(stream, &chunks, max, bound);
        assert!(
            chunked == whole,
            "max {max}: {} reads give {:?}, one read gives {:?}",
            chunks.len(),
            chunked.violation,
            whole.violation
        );
    }
});
