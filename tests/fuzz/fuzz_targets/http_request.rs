//! The HTTP/1.1 request parser of a new connection (`protocol::handshake::parse_request`): the
//! WebSocket upgrade and plain requests for the HTTP API, pipelined as `Conn` drives it.
//!
//! Input: the raw bytes a client sends before (or instead of) WebSocket frames.
//! Checks, besides no panic: a `Partial` never holds more than `Conn` allows (its own
//! `debug_assert`), bodies are exactly `Content-Length` bytes, responses are well-formed, and the
//! outcome does not depend on how the bytes were split into reads (a prefix of a complete request
//! is `Partial`, and the request alone parses the same as with bytes after it).
#![no_main]

use framecast::internals::limits::MAX_HTTP_HEAD_BYTES;
use framecast::internals::protocol::handshake::{parse_request, RequestOutcome, Routes};
use libfuzzer_sys::fuzz_target;

fn routes(max_body: usize) -> Routes {
    Routes {
        ws_path: "/ws".into(),
        echo_path: Some("/echo".into()),
        max_body,
        deflate: true,
    }
}

fn check_response(resp: &[u8]) {
    let text = std::str::from_utf8(resp).expect("response is ASCII");
    assert!(text.starts_with("HTTP/1.1 "), "{text:?}");
    let head_end = text.find("\r\n\r\n").expect("response head ends") + 4;
    for line in text[..head_end - 4].split("\r\n") {
        assert!(
            !line.is_empty() && !line.contains('\n') && !line.contains('\r'),
            "{text:?}"
        );
    }
    if let Some(cl) = text[..head_end]
        .split("\r\n")
        .find_map(|l| l.strip_prefix("Content-Length: "))
    {
        assert_eq!(
            cl.parse::<usize>().unwrap(),
            resp.len() - head_end,
            "{text:?}"
        );
    }
}

fn run(data: &[u8], max_body: usize) {
    let routes = routes(max_body);
    let mut buf = data;
    // As Conn::handle_request: answer pipelined plain requests until one ends the exchange.
    loop {
        let outcome = parse_request(buf, &routes);
        let n = match &outcome {
            RequestOutcome::Partial => {
                assert!(
                    buf.len() <= MAX_HTTP_HEAD_BYTES + max_body,
                    "Partial holding {} bytes (> head cap {} + max_body {})",
                    buf.len(),
                    MAX_HTTP_HEAD_BYTES,
                    max_body
                );
                return;
            }
            RequestOutcome::Reject { status, response } => {
                assert!(matches!(status, 400..=599), "{status}");
                check_response(response);
                assert!(response.starts_with(format!("HTTP/1.1 {status} ").as_bytes()));
                return;
            }
            RequestOutcome::Upgrade {
                response, consumed, ..
            } => {
                check_response(response);
                assert!(response.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
                *consumed
            }
            RequestOutcome::Http(r) => {
                assert!(r.body.len() <= max_body);
                assert!(r.consumed <= buf.len() && r.consumed > r.body.len());
                assert_eq!(&buf[r.consumed - r.body.len()..r.consumed], &r.body[..]);
                r.consumed
            }
        };
        assert!(n > 0 && n <= buf.len());
        // The request alone parses the same as with what followed it.
        let alone = parse_request(&buf[..n], &routes);
        let (a, b) = (format!("{alone:?}"), format!("{outcome:?}"));
        assert_eq!(a, b, "result depends on the bytes after the request");
        // Any shorter prefix (that Conn would have kept waiting on) is Partial.
        for cut in [n - 1, n / 2, n.saturating_sub(4), n.saturating_sub(2)] {
            if cut == 0 || cut >= n || cut > MAX_HTTP_HEAD_BYTES {
                continue;
            }
            let part = parse_request(&buf[..cut], &routes);
            assert!(
                matches!(part, RequestOutcome::Partial),
                "a {n}-byte request cut at {cut} is not Partial: {part:?}"
            );
        }
        match outcome {
            RequestOutcome::Http(r) if r.keep_alive => buf = &buf[n..],
            _ => return,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    run(data, 1024 * 1024); // the default max_http_body_bytes
    run(data, 64);
});
