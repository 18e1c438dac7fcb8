//! permessage-deflate (RFC 7692) on the connection side: choosing an offer from
//! `Sec-WebSocket-Extensions`, and inflating compressed client messages.
//!
//! framecast compresses each event once for every subscriber, so it never keeps a compression
//! context per connection: it always answers `server_no_context_takeover` (every message is
//! compressed alone) and `client_no_context_takeover` (so one inflater per shard, reset per
//! message, reads every client). On the native endpoint an offer that limits the server's
//! window below 15 bits is declined (the shared frames use a 15-bit window; the client may then
//! use its next offer or none); the echo endpoint, which compresses each reply itself, takes
//! windows down to 9 bits (zlib's smallest; an offer of 8 is declined).

use std::cell::RefCell;

use flate2::{Decompress, FlushDecompress, Status};

/// The extension's name in the header.
const NAME: &str = "permessage-deflate";

/// The agreed extension: what the 101 response says back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Agreed {
    /// The `Sec-WebSocket-Extensions` value of the response.
    pub(crate) response: String,
    /// The window (bits) the server's messages may use.
    pub(crate) server_window: u8,
}

/// Picks the first acceptable `permessage-deflate` offer among the request's
/// `Sec-WebSocket-Extensions` values (several headers count as one list), or `None`; an offer
/// limiting the server's window below `min_window` bits is not acceptable.
pub(crate) fn negotiate<'a>(
    values: impl IntoIterator<Item = &'a str>,
    min_window: u8,
) -> Option<Agreed> {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .find_map(|offer| accept_offer(offer, min_window))
}

/// The answer to one offer (`permessage-deflate; param; param=value`), if framecast can take it.
fn accept_offer(offer: &str, min_window: u8) -> Option<Agreed> {
    let mut parts = offer.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case(NAME) {
        return None;
    }
    let mut seen: Vec<String> = Vec::new();
    let mut response = format!("{NAME}; server_no_context_takeover; client_no_context_takeover");
    let mut server_window = 15;
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (param, None),
        };
        let name = name.to_ascii_lowercase();
        // §7: an offer naming a parameter twice is declined.
        if seen.contains(&name) {
            return None;
        }
        match (name.as_str(), value) {
            ("server_no_context_takeover" | "client_no_context_takeover", None) => {}
            ("server_max_window_bits", Some(v)) => {
                server_window = window_bits(v)?;
                if server_window < min_window {
                    return None;
                }
                response.push_str(&format!("; server_max_window_bits={server_window}"));
            }
            // A bare client_max_window_bits only permits the server to limit the client's
            // window; the server inflates with 15 bits, which reads any smaller window.
            ("client_max_window_bits", None) => {}
            ("client_max_window_bits", Some(v)) => {
                window_bits(v)?;
            }
            _ => return None, // unknown parameter or a value where none belongs (§7)
        }
        seen.push(name);
    }
    Some(Agreed {
        response,
        server_window,
    })
}

/// A window size parameter: a decimal 8..=15 without leading zeros (RFC 7692 §7.1.2).
fn window_bits(v: &str) -> Option<u8> {
    if v.is_empty() || v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().filter(|b| (8..=15).contains(b))
}

/// Why a compressed message could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InflateError {
    /// Inflated, it is longer than `max_message_bytes`.
    #[error("message too big once inflated")]
    TooBig,
    /// The payload is not valid DEFLATE data.
    #[error("invalid compressed data")]
    Corrupt,
}

/// The shard's inflater and its output buffer (one per shard thread: connections take turns).
struct Inflater {
    decompress: Decompress,
    out: Vec<u8>,
}

thread_local! {
    static INFLATER: RefCell<Inflater> = RefCell::new(Inflater {
        decompress: Decompress::new(false),
        out: Vec::new(),
    });
}

/// Bytes of output buffer a shard keeps between messages.
const RETAINED_OUTPUT: usize = 64 * 1024;

/// Inflates one whole message (RFC 7692 §7.2.2: the payload plus `00 00 ff ff`), at most
/// `max` bytes, and calls `with` on the result (the shard's buffer, reused).
pub(crate) fn inflate<R>(
    payload: &[u8],
    max: usize,
    with: impl FnOnce(&mut [u8]) -> R,
) -> Result<R, InflateError> {
    INFLATER.with(|cell| {
        let mut guard = cell.borrow_mut();
        let inflater = &mut *guard;
        inflater.decompress.reset(false);
        inflater.out.clear();
        let result = inflate_into(inflater, payload, max);
        let answer = result.map(|()| with(&mut inflater.out));
        if inflater.out.capacity() > RETAINED_OUTPUT {
            inflater.out = Vec::new();
        }
        answer
    })
}

fn inflate_into(inflater: &mut Inflater, payload: &[u8], max: usize) -> Result<(), InflateError> {
    const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
    let (d, out) = (&mut inflater.decompress, &mut inflater.out);
    if !feed(d, out, payload, max)? {
        feed(d, out, &TAIL, max)?;
    }
    Ok(())
}

/// Inflates all of `input` into `out`, growing it up to one byte past `max` (which tells "too
/// big"); `Ok(true)` when a final block ended the stream.
fn feed(
    d: &mut Decompress,
    out: &mut Vec<u8>,
    mut input: &[u8],
    max: usize,
) -> Result<bool, InflateError> {
    loop {
        if out.len() == out.capacity() {
            if out.len() > max {
                return Err(InflateError::TooBig);
            }
            out.reserve_exact(out.capacity().max(256).min(max + 1 - out.len()));
        }
        let (in_before, out_before) = (d.total_in(), d.total_out());
        let status = d
            .decompress_vec(input, out, FlushDecompress::Sync)
            .map_err(|_| InflateError::Corrupt)?;
        input = &input[(d.total_in() - in_before) as usize..];
        if out.len() > max {
            return Err(InflateError::TooBig);
        }
        if status == Status::StreamEnd {
            return Ok(true);
        }
        let room = out.len() < out.capacity();
        if input.is_empty() && room {
            return Ok(false);
        }
        // Input left, room left and nothing moved: the data cannot go on (never spin on it).
        if room && d.total_in() == in_before && d.total_out() == out_before {
            return Err(InflateError::Corrupt);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::client_deflate as deflate;

    #[test]
    fn browsers_offers_are_answered_without_context_takeover() {
        let chrome = negotiate(["permessage-deflate; client_max_window_bits"], 15).unwrap();
        assert_eq!(
            chrome.response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        assert!(negotiate(["permessage-deflate"], 15).is_some(), "Firefox");
        assert!(negotiate(["x-webkit-deflate-frame"], 15).is_none());
        assert!(negotiate([], 15).is_none());
    }

    #[test]
    fn a_small_server_window_is_declined_and_the_next_offer_taken() {
        let offers = "permessage-deflate; server_max_window_bits=10, permessage-deflate";
        let agreed = negotiate([offers], 15).unwrap();
        assert!(!agreed.response.contains("server_max_window_bits"));
        assert!(negotiate(["permessage-deflate; server_max_window_bits=10"], 15).is_none());
        let echo = negotiate(["permessage-deflate; server_max_window_bits=10"], 9).unwrap();
        assert_eq!(echo.server_window, 10);
        assert!(echo.response.ends_with("; server_max_window_bits=10"));
        let full = negotiate(["permessage-deflate; server_max_window_bits=15"], 15).unwrap();
        assert!(full.response.ends_with("; server_max_window_bits=15"));
    }

    #[test]
    fn invalid_offers_are_declined() {
        for bad in [
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=016",
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; mystery",
        ] {
            assert!(negotiate([bad], 9).is_none(), "{bad}");
        }
        assert!(negotiate(["permessage-deflate; client_max_window_bits=\"10\""], 15).is_some());
    }

    #[test]
    fn inflates_a_message_and_caps_its_size() {
        let text = br#"{"type":"publish","channel":"a","data":[1,2,3,4,5,6,7,8,9,10]}"#.repeat(20);
        let z = deflate(&text, 1);
        let got = inflate(&z, text.len(), |m| m.to_vec()).unwrap();
        assert_eq!(got, text);
        assert_eq!(
            inflate(&z, text.len() - 1, |m| m.len()),
            Err(InflateError::TooBig)
        );
        assert_eq!(
            inflate(b"\xff\xff\xff", 100, |m| m.len()),
            Err(InflateError::Corrupt)
        );
        // The inflater is reset per message: the same bytes read the same way again.
        assert_eq!(
            inflate(&z, usize::MAX / 2, |m| m.len()).unwrap(),
            text.len()
        );
    }

    #[test]
    fn a_zip_bomb_stops_at_the_cap_without_inflating_it_all() {
        let z = deflate(&vec![0u8; 50 << 20], 9);
        assert!(z.len() < 100 << 10, "{}", z.len());
        assert_eq!(inflate(&z, 1 << 20, |m| m.len()), Err(InflateError::TooBig));
    }
}
