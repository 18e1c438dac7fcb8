//! Inflating the server's compressed messages (permessage-deflate, RFC 7692): raw DEFLATE, with
//! the `00 00 ff ff` the sender stripped appended at the end of every message.
//!
//! With `server_no_context_takeover` every message is a stream of its own: one that comes in a
//! single frame is inflated by the worker thread's [`Shared`] inflater, reset first (same result
//! as a fresh one, no memory per connection); a fragmented one by the connection's own
//! [`Inflater`], reset at the message's start. Without it, each connection keeps one inflater
//! (and its window) for its whole life. A block with BFINAL set ends the stream: the next
//! message starts a new one.
//!
//! Inflate cache (one-frame no-context-takeover messages only): such a message's text is a
//! function of its compressed bytes alone, and a broadcast server sends the same compressed
//! bytes of one event to every subscriber (framecast compresses each event once). So the
//! [`Shared`] inflater keeps recent results in a small direct-mapped table and reuses one when
//! the whole compressed payload is equal, byte for byte: the result is exactly what inflating
//! again gives, only the load generator's own cost is saved.

use flate2::{Decompress, FlushDecompress, Status};
use thiserror::Error;

use crate::deflate::Params;

/// Largest decompressed message accepted.
pub const MAX_MESSAGE: usize = 64 << 20;

/// What the sender strips from the end of every compressed message.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Slots of the inflate cache.
const CACHE_SLOTS: usize = 256;

/// Compressed payloads larger than this are not cached.
const CACHE_MAX_IN: usize = 16 * 1024;

/// Why a compressed message could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum InflateError {
    /// Corrupt DEFLATE data.
    #[error("corrupt compressed data")]
    Corrupt,
    /// The decompressed message is larger than [`MAX_MESSAGE`].
    #[error("decompressed message larger than {MAX_MESSAGE} bytes")]
    TooLarge,
}

/// Inflates `input` into `out` (growing it) until all of it is consumed and everything
/// decodable so far is written, failing once `out` is longer than `limit`. Sets `ended` when
/// the stream ends (a block with BFINAL set); input after that is ignored.
fn inflate(
    z: &mut Decompress,
    ended: &mut bool,
    mut input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), InflateError> {
    if *ended {
        return Ok(());
    }
    loop {
        if out.capacity() - out.len() < 256 {
            out.reserve(out.len().max(input.len() * 4).max(4096));
        }
        let (in0, len0) = (z.total_in(), out.len());
        let status = z
            .decompress_vec(input, out, FlushDecompress::Sync)
            .map_err(|_| InflateError::Corrupt)?;
        if out.len() > limit {
            return Err(InflateError::TooLarge);
        }
        let used = (z.total_in() - in0) as usize;
        input = &input[used..];
        if status == Status::StreamEnd {
            *ended = true;
            return Ok(());
        }
        let full = out.len() == out.capacity();
        if !full && input.is_empty() {
            return Ok(());
        }
        if !full && used == 0 && out.len() == len0 {
            // no progress with input left and room to write: not valid DEFLATE
            return Err(InflateError::Corrupt);
        }
    }
}

/// One cached result: the compressed payload and what it inflates to.
#[derive(Default)]
struct Slot {
    input: Vec<u8>,
    output: Vec<u8>,
}

/// The slot of a compressed payload: from its length and its first and last 16 bytes.
fn slot_of(p: &[u8]) -> usize {
    let n = p.len();
    let mut h = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let head = &p[..n.min(16)];
    let tail = &p[n.saturating_sub(16)..];
    for chunk in head.chunks(8).chain(tail.chunks(8)) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    }
    ((h ^ (h >> 29)) as usize) & (CACHE_SLOTS - 1)
}

/// A worker thread's inflater for one-frame messages of no-context-takeover connections, its
/// output buffer and the inflate cache.
#[derive(Default)]
pub struct Shared {
    z: Option<Decompress>,
    out: Vec<u8>,
    slots: Vec<Slot>,
}

impl Shared {
    /// An empty one (the inflater and the cache are made on first use).
    pub fn new() -> Shared {
        Shared::default()
    }
}

/// A decompressed message.
#[derive(Debug, PartialEq, Eq)]
pub struct Inflated<'a> {
    /// Its bytes.
    pub data: &'a [u8],
    /// Taken from the inflate cache (not inflated again).
    pub cached: bool,
}

/// The receive state of one connection that agreed to permessage-deflate.
pub struct Inflater {
    /// `server_no_context_takeover`: every message is a fresh stream.
    reset_each_msg: bool,
    /// The window of the connection's own inflater (9..=15).
    bits: u8,
    /// The connection's own inflater, made on first use (never, for a no-context-takeover
    /// connection whose messages all come in one frame).
    z: Option<Decompress>,
    /// The stream ended with a BFINAL block: the next message starts a new one.
    ended: bool,
    /// What a fragmented message has inflated to so far.
    partial: Vec<u8>,
    /// Largest decompressed message ([`MAX_MESSAGE`]).
    limit: usize,
}

impl Inflater {
    /// The state for a connection that agreed to `p`.
    pub fn new(p: &Params) -> Inflater {
        Inflater {
            reset_each_msg: p.server_no_context_takeover,
            // zlib cannot inflate with an 8-bit window (its deflate uses 9 when asked for 8);
            // a window larger than the sender's is always fine
            bits: p.server_max_window_bits.clamp(9, 15),
            z: None,
            ended: false,
            partial: Vec::new(),
            limit: MAX_MESSAGE,
        }
    }

    /// Feeds one frame of a compressed message: `first` = the frame with RSV1 set, the others
    /// its continuations; `fin` = the message's last frame. Returns the whole decompressed
    /// message once its last frame is fed, else `None`.
    pub fn frame<'a>(
        &'a mut self,
        first: bool,
        fin: bool,
        payload: &[u8],
        shared: &'a mut Shared,
    ) -> Result<Option<Inflated<'a>>, InflateError> {
        if first && fin && self.reset_each_msg {
            return one_frame_fresh(payload, shared, self.limit).map(Some);
        }
        if first {
            let bits = self.bits;
            let z = self
                .z
                .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
            if self.reset_each_msg || self.ended {
                z.reset(false);
                self.ended = false;
            }
        }
        let z = self.z.as_mut().ok_or(InflateError::Corrupt)?;
        let buf = if first && fin {
            &mut shared.out
        } else {
            &mut self.partial
        };
        if first {
            buf.clear();
        }
        inflate(z, &mut self.ended, payload, buf, self.limit)?;
        if !fin {
            return Ok(None);
        }
        inflate(z, &mut self.ended, &TAIL, buf, self.limit)?;
        Ok(Some(Inflated {
            data: buf,
            cached: false,
        }))
    }

    /// Releases the buffer of a big fragmented message once it is done.
    pub fn trim(&mut self) {
        if self.partial.capacity() > (1 << 20) {
            self.partial = Vec::new();
        }
    }
}

/// A one-frame message that is a stream of its own: from the cache, or inflated by the
/// thread's inflater (reset first) and cached.
fn one_frame_fresh<'a>(
    payload: &[u8],
    shared: &'a mut Shared,
    limit: usize,
) -> Result<Inflated<'a>, InflateError> {
    let cache = payload.len() <= CACHE_MAX_IN;
    let slot = slot_of(payload);
    if cache && !shared.slots.is_empty() && shared.slots[slot].input == payload {
        return Ok(Inflated {
            data: &shared.slots[slot].output,
            cached: true,
        });
    }
    let z = shared
        .z
        .get_or_insert_with(|| Decompress::new_with_window_bits(false, 15));
    z.reset(false);
    let mut ended = false;
    shared.out.clear();
    inflate(z, &mut ended, payload, &mut shared.out, limit)?;
    inflate(z, &mut ended, &TAIL, &mut shared.out, limit)?;
    if !cache {
        return Ok(Inflated {
            data: &shared.out,
            cached: false,
        });
    }
    if shared.slots.is_empty() {
        shared.slots.resize_with(CACHE_SLOTS, Slot::default);
    }
    let s = &mut shared.slots[slot];
    s.input.clear();
    s.input.extend_from_slice(payload);
    s.output.clear();
    s.output.extend_from_slice(&shared.out);
    Ok(Inflated {
        data: &s.output,
        cached: false,
    })
}

/// What a permessage-deflate sender does, for tests: raw DEFLATE, sync flush, the trailing
/// `00 00 ff ff` stripped.
#[cfg(test)]
pub(crate) fn deflate_message(c: &mut flate2::Compress, msg: &[u8]) -> Vec<u8> {
    if msg.is_empty() {
        // RFC 7692 §7.2.3.6 (zlib writes nothing for a second empty sync flush in a row)
        return vec![0x00];
    }
    let mut out = Vec::with_capacity(msg.len() + 64);
    let mut input = msg;
    loop {
        out.reserve(256);
        let in0 = c.total_in();
        c.compress_vec(input, &mut out, flate2::FlushCompress::Sync)
            .expect("compress");
        input = &input[(c.total_in() - in0) as usize..];
        if input.is_empty() && out.len() < out.capacity() {
            break;
        }
    }
    assert!(
        out.ends_with(&TAIL),
        "a sync flush ends with an empty block"
    );
    out.truncate(out.len() - 4);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};

    fn params(nct: bool, bits: u8) -> Params {
        Params {
            server_no_context_takeover: nct,
            client_no_context_takeover: false,
            server_max_window_bits: bits,
            client_max_window_bits: None,
        }
    }

    /// Compressible but different messages: a marker, then entity-like JSON; an empty one, a
    /// one-byte one and a 70 kB one among them.
    fn messages(n: usize) -> Vec<Vec<u8>> {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut step = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|i| {
                let len = match i % 7 {
                    0 => return Vec::new(),
                    1 => return b"x".to_vec(),
                    2 => 70_000,
                    _ => 20 + (step() % 3000) as usize,
                };
                let mut m = format!("T={} SEQ={i} ", 1000 + i).into_bytes();
                while m.len() < len {
                    let v = step();
                    m.extend_from_slice(
                        format!(
                            "{{\"id\":\"av{}\",\"x\":{}.{}}},",
                            v % 50,
                            v % 1000,
                            v >> 54
                        )
                        .as_bytes(),
                    );
                }
                m.truncate(len);
                m
            })
            .collect()
    }

    /// Compresses every message (reset per message when `nct`), splits each into `frags`
    /// frames, and checks that one Inflater gives every message back.
    fn roundtrip(nct: bool, bits: u8, frags: usize) {
        let mut c = Compress::new_with_window_bits(Compression::new(6), false, bits.max(9));
        let mut inf = Inflater::new(&params(nct, bits));
        let mut shared = Shared::new();
        for (i, m) in messages(40).iter().enumerate() {
            if nct {
                c.reset();
            }
            let z = deflate_message(&mut c, m);
            let step = z.len().div_ceil(frags).max(1);
            let chunks: Vec<&[u8]> = z.chunks(step).collect();
            for (k, chunk) in chunks.iter().enumerate() {
                let fin = k + 1 == chunks.len();
                let got = inf.frame(k == 0, fin, chunk, &mut shared).unwrap();
                if fin {
                    let got = got.expect("the message at its last frame");
                    assert_eq!(got.data, &m[..], "message {i} nct={nct} bits={bits}");
                } else {
                    assert!(got.is_none());
                }
            }
        }
    }

    #[test]
    fn one_frame_and_fragmented_messages_inflate_with_and_without_context_takeover() {
        for nct in [false, true] {
            for bits in [8u8, 9, 12, 15] {
                for frags in [1usize, 2, 5] {
                    roundtrip(nct, bits, frags);
                }
            }
        }
    }

    #[test]
    fn context_takeover_keeps_the_window_across_messages() {
        // the second copy refers back into the first: only a kept inflater reads it
        let m = br#"T=1 {"id":"av100","x":12.345,"y":0.5,"z":-3.21,"vx":0.01,"vy":0,"vz":-0.2}"#;
        let mut c = Compress::new_with_window_bits(Compression::new(6), false, 15);
        let a = deflate_message(&mut c, m);
        let b = deflate_message(&mut c, m);
        assert!(b.len() < a.len() / 2, "{} vs {}", b.len(), a.len());
        let mut shared = Shared::new();
        let mut inf = Inflater::new(&params(false, 15));
        for z in [&a, &b] {
            let got = inf.frame(true, true, z, &mut shared).unwrap().unwrap();
            assert_eq!(got.data, m);
        }
        // a receiver told no context takeover cannot
        let mut inf = Inflater::new(&params(true, 15));
        assert_eq!(
            inf.frame(true, true, &a, &mut shared)
                .unwrap()
                .unwrap()
                .data,
            m
        );
        let r = inf.frame(true, true, &b, &mut shared);
        assert!(r.is_err() || r.unwrap().unwrap().data != m);
    }

    #[test]
    fn a_final_block_ends_the_stream_and_the_next_message_starts_a_new_one() {
        let (m1, m2) = (b"T=11 first message first message".as_slice(), b"T=22 2nd");
        let mut z1 = Vec::with_capacity(256);
        Compress::new(Compression::new(6), false)
            .compress_vec(m1, &mut z1, FlushCompress::Finish)
            .unwrap();
        let z2 = deflate_message(&mut Compress::new(Compression::new(6), false), m2);
        for nct in [false, true] {
            let (mut inf, mut shared) = (Inflater::new(&params(nct, 15)), Shared::new());
            for _ in 0..3 {
                let got = inf.frame(true, true, &z1, &mut shared).unwrap().unwrap();
                assert_eq!(got.data, m1);
                let got = inf.frame(true, true, &z2, &mut shared).unwrap().unwrap();
                assert_eq!(got.data, m2);
            }
        }
    }

    #[test]
    fn the_cache_hits_only_on_identical_compressed_payloads() {
        let mut c = Compress::new(Compression::new(6), false);
        let msgs: Vec<Vec<u8>> = (0..600u64)
            .map(|i| format!("T={} SEQ={i} {{\"x\":{}}}", 1_000_000 + i * 37, i * i).into_bytes())
            .collect();
        let zs: Vec<Vec<u8>> = msgs
            .iter()
            .map(|m| {
                c.reset();
                deflate_message(&mut c, m)
            })
            .collect();
        let (mut inf, mut shared) = (Inflater::new(&params(true, 15)), Shared::new());
        let mut hits = 0;
        // 600 different messages (more than the slots), each read by three subscribers
        for round in 0..3 {
            for i in 0..zs.len() {
                let j = if round == 1 { zs.len() - 1 - i } else { i };
                let got = inf.frame(true, true, &zs[j], &mut shared).unwrap().unwrap();
                assert_eq!(got.data, &msgs[j][..]);
                hits += usize::from(got.cached);
            }
        }
        assert!(hits > 0 && hits < 1200, "{hits}");
        // the same message twice in a row: the second is a hit
        inf.frame(true, true, &zs[5], &mut shared).unwrap();
        assert!(
            inf.frame(true, true, &zs[5], &mut shared)
                .unwrap()
                .unwrap()
                .cached
        );
        // one middle byte different: same slot (same length, head and tail), no hit
        let long: String = (0..60u64)
            .map(|i| format!("{},", i * 7919 % 1009))
            .collect();
        c.reset();
        let z0 = deflate_message(&mut c, long.as_bytes());
        assert!(z0.len() > 40, "{}", z0.len());
        inf.frame(true, true, &z0, &mut shared).unwrap();
        let mut z = z0.clone();
        z[z0.len() / 2] ^= 1;
        assert_eq!(slot_of(&z), slot_of(&z0));
        if let Ok(Some(got)) = inf.frame(true, true, &z, &mut shared) {
            assert!(!got.cached);
            assert_ne!(got.data, long.as_bytes());
        }
    }

    #[test]
    fn corrupt_data_and_bombs_are_errors() {
        let mut shared = Shared::new();
        let mut inf = Inflater::new(&params(true, 15));
        // BTYPE 11 is reserved
        assert_eq!(
            inf.frame(true, true, &[0xff, 0xff, 0xff], &mut shared)
                .err(),
            Some(InflateError::Corrupt)
        );
        // a bomb: 2 MiB of zeros compress to ~2 KiB; with a 1 MiB limit (64 MiB in use)
        let mut c = Compress::new(Compression::new(9), false);
        let z = deflate_message(&mut c, &vec![0u8; 2 << 20]);
        for nct in [false, true] {
            let mut inf = Inflater::new(&params(nct, 15));
            inf.limit = 1 << 20;
            assert_eq!(
                inf.frame(true, true, &z, &mut shared).err(),
                Some(InflateError::TooLarge)
            );
            let mut inf = Inflater::new(&params(nct, 15));
            inf.limit = 4 << 20;
            let got = inf.frame(true, true, &z, &mut shared).unwrap().unwrap();
            assert_eq!(got.data.len(), 2 << 20);
        }
    }
}
