//! The HTTP API's request handling (`http::handle`), mostly the body of
//! `POST /api/v1/broadcast` (`http::routes::broadcast`: body bytes → publications into the
//! ingress), and the percent-decoded channel name of `GET /api/v1/channels/{name}`.
//!
//! Input: byte 0 picks the request (mod 5):
//!   0: `POST /api/v1/broadcast` with the rest as body;
//!   1: `POST /api/v1/websocket/broadcast` (the seed's spelling), rest as body, Connection: close;
//!   2: `GET /api/v1/channels/<rest>` (rest as the raw, percent-encoded path segment);
//!   3: the rest is a whole raw request: `parse_request`, then `handle` if it is plain HTTP;
//!   4: `percent_decode(<rest>)` alone.
//! The publications go to a real distributor (an embedded server; see common/mod.rs), whose
//! tick encodes them into event frames, so a panic there also shows up here.
//!
//! Checks: every response is a well-formed HTTP/1.1 message whose `Content-Length` matches and
//! whose body is valid JSON (the API only speaks JSON, `/metrics` aside); a broadcast is
//! answered 202, 400, 413 (too much work) or 503; percent-decoding never yields more bytes than it was given.
#![no_main]

use framecast::internals::http::{self, routes, HttpContext};
use framecast::internals::protocol::handshake::{parse_request, HttpRequest, RequestOutcome};
use libfuzzer_sys::fuzz_target;

#[path = "common/mod.rs"]
mod common;
use common::assert_json;

fn check_response(resp: &[u8], json_body: bool) -> u16 {
    let head_end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head ends")
        + 4;
    let head = std::str::from_utf8(&resp[..head_end]).expect("head is text");
    assert!(head.starts_with("HTTP/1.1 "), "{head:?}");
    let status: u16 = head[9..12].parse().expect("status code");
    let cl: usize = head
        .split("\r\n")
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .unwrap();
    assert_eq!(
        cl,
        resp.len() - head_end,
        "Content-Length mismatch: {head:?}"
    );
    if json_body && head.contains("Content-Type: application/json") {
        assert_json("API response body", &resp[head_end..]);
    }
    status
}

fn request(method: &str, path: String, body: Vec<u8>, keep_alive: bool) -> HttpRequest {
    HttpRequest {
        method: method.into(),
        path,
        query: None,
        authorization: None,
        origin: None,
        content_type: None,
        body,
        keep_alive,
        consumed: 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let e = common::embedded();
    let ctx = HttpContext {
        state: &e.state,
        ingress: &e.ingress,
        reply_to: None,
    };
    match mode % 5 {
        0 | 1 => {
            let path = if mode % 5 == 0 {
                "/api/v1/broadcast"
            } else {
                "/api/v1/websocket/broadcast"
            };
            let mut req = request("POST", path.into(), rest.to_vec(), mode % 5 == 0);
            if mode % 3 == 0 {
                // A binary broadcast: its fields come from the query, its payload is the body.
                let split = rest.len() / 2;
                req.query = Some(String::from_utf8_lossy(&rest[..split]).into_owned());
                req.body = rest[split..].to_vec();
                req.content_type = Some("application/octet-stream".into());
            }
            let resp = http::handle(&req, &ctx)
                .into_now()
                .expect("answered at once");
            let status = check_response(&resp, true);
            assert!(
                matches!(status, 202 | 400 | 413 | 503),
                "broadcast answered {status}"
            );
            // The handler itself, as the router calls it.
            assert_eq!(
                routes::broadcast(&req, &ctx, &mut None).status >= 400,
                status >= 400
            );
        }
        2 => {
            let raw = String::from_utf8_lossy(rest);
            let req = request("GET", format!("/api/v1/channels/{raw}"), Vec::new(), true);
            let status = check_response(
                &http::handle(&req, &ctx)
                    .into_now()
                    .expect("answered at once"),
                true,
            );
            assert!(
                matches!(status, 200 | 400 | 404),
                "channel lookup answered {status}"
            );
        }
        3 => {
            let routes = common::settings().routes;
            let mut buf = rest;
            while let RequestOutcome::Http(req) = parse_request(buf, &routes) {
                let resp = http::handle(&req, &ctx)
                    .into_now()
                    .expect("answered at once");
                check_response(&resp, req.path != "/metrics");
                if !req.keep_alive || req.consumed == 0 {
                    break;
                }
                buf = &buf[req.consumed..];
            }
        }
        _ => {
            let raw = String::from_utf8_lossy(rest);
            if let Some(d) = routes::percent_decode(&raw) {
                assert!(d.len() <= raw.len());
            }
        }
    }
});
