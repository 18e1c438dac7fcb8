//! HTTP/1.1 requests on a new connection, parsed with httparse (as tungstenite does): an upgrade
//! on the WebSocket (or echo) path is accepted with tungstenite's `derive_accept_key` and answered
//! with complete response bytes; any other path is a plain [`HttpRequest`] (with its
//! `Content-Length` body, capped) for the HTTP API to answer.

use bytes::Bytes;

use super::deflate;
use crate::limits::{MAX_HTTP_HEADERS, MAX_HTTP_HEAD_BYTES};

/// Which endpoint an upgrade request asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// The native protocol at `/ws`.
    Native,
    /// The echo endpoint for conformance suites.
    Echo,
}

/// Where the server's WebSocket endpoints are, and limits on plain HTTP requests.
#[derive(Clone, Debug)]
pub struct Routes {
    /// Path of the native endpoint (`/ws`).
    pub ws_path: String,
    /// Path of the echo endpoint, when enabled.
    pub echo_path: Option<String>,
    /// Largest plain HTTP request body; bigger is 413.
    pub max_body: usize,
    /// Whether permessage-deflate is agreed when a client offers it (`compression`).
    pub deflate: bool,
}

/// A complete plain HTTP request (any path other than the WebSocket endpoints).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method (`GET`, `POST`, ...).
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Query string without `?`.
    pub query: Option<String>,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The `Origin` header, if any (for CORS).
    pub origin: Option<String>,
    /// The `Content-Type` header, if any (a binary broadcast's body is raw bytes).
    pub content_type: Option<String>,
    /// The body (by `Content-Length`).
    pub body: Vec<u8>,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// Bytes of the buffer this request took (head and body).
    pub consumed: usize,
}

/// What to do with the bytes received so far on a new connection.
#[derive(Debug)]
pub enum RequestOutcome {
    /// The request head is not complete yet.
    Partial,
    /// A valid upgrade: send `response`, then speak WebSocket; `consumed` bytes were the head.
    Upgrade {
        /// Which endpoint.
        endpoint: Endpoint,
        /// The 101 response.
        response: Bytes,
        /// Length of the request head; bytes after it are WebSocket frames.
        consumed: usize,
        /// The raw query string (without `?`), if any.
        query: Option<String>,
        /// The `Authorization` header, if any.
        authorization: Option<String>,
        /// The `Origin` header (sent by browsers), if any.
        origin: Option<String>,
        /// permessage-deflate was agreed (the response says so), with this server window.
        deflate: Option<u8>,
    },
    /// A plain HTTP request for the application to answer.
    Http(HttpRequest),
    /// Not an upgrade this server accepts: send `response` and close.
    Reject {
        /// The HTTP status sent.
        status: u16,
        /// The complete response.
        response: Bytes,
    },
}

/// Parses a request head and decides the outcome.
pub fn parse_request(buf: &[u8], routes: &Routes) -> RequestOutcome {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HTTP_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let consumed = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HTTP_HEAD_BYTES => {
            return reject(431, "request head too large")
        }
        Ok(httparse::Status::Partial) => return RequestOutcome::Partial,
        Err(httparse::Error::TooManyHeaders) => return reject(431, "too many headers"),
        Err(_) => return reject(400, "malformed HTTP request"),
    };
    let target = req.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (target, None),
    };
    let endpoint = if path == routes.ws_path {
        Endpoint::Native
    } else if routes.echo_path.as_deref() == Some(path) {
        Endpoint::Echo
    } else {
        return plain_request(&req, buf, consumed, path, query, routes.max_body);
    };
    if req.method != Some("GET") {
        return reject(405, "WebSocket upgrades use GET");
    }
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let has_token = |name: &str, token: &str| {
        header(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
        return reject(426, "this endpoint needs a WebSocket upgrade");
    }
    if header("sec-websocket-version") != Some(b"13".as_slice()) {
        return RequestOutcome::Reject {
            status: 426,
            response: Bytes::from_static(
                b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            ),
        };
    }
    if req.version != Some(1) {
        return reject(400, "WebSocket upgrades need HTTP/1.1");
    }
    if header("host").is_none() {
        return reject(
            400,
            "missing Host header (required by HTTP/1.1 and RFC 6455)",
        );
    }
    let Some(key) = header("sec-websocket-key") else {
        return reject(400, "missing Sec-WebSocket-Key");
    };
    if !is_websocket_key(key) {
        return reject(
            400,
            "Sec-WebSocket-Key must be 16 bytes in base64 (24 characters)",
        );
    }
    let accept = tungstenite::handshake::derive_accept_key(key);
    let agreed = routes
        .deflate
        .then(|| {
            let offers = req
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
                .filter_map(|h| std::str::from_utf8(h.value).ok());
            // The echo endpoint compresses each reply itself; native frames are shared.
            let min_window = if endpoint == Endpoint::Echo { 9 } else { 15 };
            deflate::negotiate(offers, min_window)
        })
        .flatten();
    let extensions = agreed.as_ref().map_or(String::new(), |a| {
        format!("Sec-WebSocket-Extensions: {}\r\n", a.response)
    });
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n{extensions}\r\n"
    );
    let text = |name: &str| {
        header(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_string)
    };
    RequestOutcome::Upgrade {
        endpoint,
        response: Bytes::from(response),
        consumed,
        query,
        authorization: text("authorization"),
        origin: text("origin"),
        deflate: agreed.map(|a| a.server_window),
    }
}

/// RFC 6455 §4.1: the key is a random 16-byte value, base64-encoded (22 characters and `==`).
fn is_websocket_key(key: &[u8]) -> bool {
    let is_b64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    // The last character before the padding carries 2 bits: one of A, Q, g, w.
    key.len() == 24
        && key[..21].iter().all(is_b64)
        && matches!(key[21], b'A' | b'Q' | b'g' | b'w')
        && &key[22..] == b"=="
}

/// The request's body length: absent is 0; every `Content-Length` must be the same plain run
/// of digits (RFC 9112 §6.3: differing values are a framing error that would let a proxy and
/// this server split the stream differently, so they are refused).
fn content_length(req: &httparse::Request<'_, '_>) -> Result<usize, &'static str> {
    let mut length = None;
    for h in req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
    {
        for part in h.value.split(|&b| b == b',') {
            let digits = part.trim_ascii();
            if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
                return Err("invalid Content-Length");
            }
            let n: usize = std::str::from_utf8(digits)
                .ok()
                .and_then(|d| d.parse().ok())
                .ok_or("invalid Content-Length")?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length headers");
            }
            length = Some(n);
        }
    }
    Ok(length.unwrap_or(0))
}

/// A complete HTTP error response with the JSON body the HTTP API uses everywhere
/// (`{"error": code, "message": ...}`), closing the connection.
pub fn error_response(status: u16, message: &str) -> Bytes {
    let (reason, code) = match status {
        400 => ("Bad Request", "bad_request"),
        401 => ("Unauthorized", "unauthorized"),
        403 => ("Forbidden", "forbidden"),
        404 => ("Not Found", "not_found"),
        405 => ("Method Not Allowed", "method_not_allowed"),
        411 => ("Length Required", "length_required"),
        413 => ("Content Too Large", "too_large"),
        426 => ("Upgrade Required", "upgrade_required"),
        431 => ("Request Header Fields Too Large", "header_too_large"),
        503 => ("Service Unavailable", "unavailable"),
        _ => ("Error", "error"),
    };
    let body = serde_json::json!({"error": code, "message": message}).to_string();
    Bytes::from(format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
}

fn plain_request(
    req: &httparse::Request<'_, '_>,
    buf: &[u8],
    head_len: usize,
    path: &str,
    query: Option<String>,
    max_body: usize,
) -> RequestOutcome {
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    if header("transfer-encoding").is_some() {
        return reject(411, "send the body with Content-Length");
    }
    let length = match content_length(req) {
        Ok(n) => n,
        Err(why) => return reject(400, why),
    };
    if length > max_body {
        return reject(413, "request body too large");
    }
    if buf.len() < head_len + length {
        return RequestOutcome::Partial;
    }
    let connection = header("connection").unwrap_or("");
    let has = |token: &str| {
        connection
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let keep_alive = if req.version == Some(0) {
        has("keep-alive")
    } else {
        !has("close")
    };
    RequestOutcome::Http(HttpRequest {
        method: req.method.unwrap_or("GET").to_string(),
        path: path.to_string(),
        query,
        authorization: header("authorization").map(str::to_string),
        origin: header("origin").map(str::to_string),
        content_type: header("content-type").map(str::to_string),
        body: buf[head_len..head_len + length].to_vec(),
        keep_alive,
        consumed: head_len + length,
    })
}

fn reject(status: u16, body: &str) -> RequestOutcome {
    RequestOutcome::Reject {
        status,
        response: error_response(status, body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        Routes {
            ws_path: "/ws".into(),
            echo_path: Some("/echo".into()),
            max_body: 100,
            deflate: true,
        }
    }

    const UPGRADE_STR: &str = "GET /ws?token=abc HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    const UPGRADE: &[u8] = UPGRADE_STR.as_bytes();

    #[test]
    fn upgrade_answers_with_the_rfc_accept_key() {
        match parse_request(UPGRADE, &routes()) {
            RequestOutcome::Upgrade {
                response,
                consumed,
                query,
                endpoint,
                ..
            } => {
                assert_eq!(consumed, UPGRADE.len());
                assert_eq!(query.as_deref(), Some("token=abc"));
                assert_eq!(endpoint, Endpoint::Native);
                let text = std::str::from_utf8(&response).unwrap();
                assert!(text.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{text}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn partial_head_waits_for_more() {
        assert!(matches!(
            parse_request(&UPGRADE[..40], &routes()),
            RequestOutcome::Partial
        ));
    }

    #[test]
    fn other_paths_are_plain_http_requests() {
        let req = b"POST /api/v1/broadcast?x=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Length: 4\r\n\r\nbodyGET";
        match parse_request(req, &routes()) {
            RequestOutcome::Http(r) => {
                assert_eq!(r.method, "POST");
                assert_eq!(r.path, "/api/v1/broadcast");
                assert_eq!(r.query.as_deref(), Some("x=1"));
                assert_eq!(r.authorization.as_deref(), Some("Bearer k"));
                assert_eq!(r.body, b"body");
                assert!(r.keep_alive);
                assert_eq!(r.consumed, req.len() - 3);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn body_waits_for_content_length_and_is_capped() {
        let req = b"POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc";
        assert!(matches!(
            parse_request(req, &routes()),
            RequestOutcome::Partial
        ));
        let big = b"POST /x HTTP/1.1\r\nContent-Length: 101\r\n\r\n";
        assert!(matches!(
            parse_request(big, &routes()),
            RequestOutcome::Reject { status: 413, .. }
        ));
    }

    #[test]
    fn connection_close_and_http_1_0_end_keep_alive() {
        let close = b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n";
        let old = b"GET /x HTTP/1.0\r\n\r\n";
        for req in [&close[..], &old[..]] {
            match parse_request(req, &routes()) {
                RequestOutcome::Http(r) => assert!(!r.keep_alive),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn garbage_gets_400_and_huge_heads_431() {
        assert!(matches!(
            parse_request(b"\x00\x01 nonsense\r\n\r\n", &routes()),
            RequestOutcome::Reject { status: 400, .. }
        ));
        let mut big = b"GET /ws HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HTTP_HEAD_BYTES + 10));
        assert!(matches!(
            parse_request(&big, &routes()),
            RequestOutcome::Reject { status: 431, .. }
        ));
    }

    #[test]
    fn content_length_must_be_one_plain_number() {
        for bad in [
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: +5\r\n",
            "Content-Length: 5, 6\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: 0x5\r\n",
            "Content-Length:\r\n",
            "Content-Length: 99999999999999999999999\r\n",
        ] {
            let req = format!("POST /x HTTP/1.1\r\n{bad}\r\nhello");
            assert!(
                matches!(
                    parse_request(req.as_bytes(), &routes()),
                    RequestOutcome::Reject { status: 400, .. }
                ),
                "{bad:?}"
            );
        }
        // The same value twice frames the body the same way for everyone.
        let same = b"POST /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello";
        assert!(matches!(
            parse_request(same, &routes()),
            RequestOutcome::Http(r) if r.body == b"hello"
        ));
    }

    #[test]
    fn the_websocket_key_must_be_16_bytes_of_base64() {
        for bad in [
            "x",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZQ=!",
            "dGhlIHNhbXBsZSBub25jZR==",
        ] {
            let req = UPGRADE_STR.replace("dGhlIHNhbXBsZSBub25jZQ==", bad);
            assert!(
                matches!(
                    parse_request(req.as_bytes(), &routes()),
                    RequestOutcome::Reject { status: 400, .. }
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_http_1_0_upgrade_is_refused() {
        let req = UPGRADE_STR.replace("HTTP/1.1", "HTTP/1.0");
        assert!(matches!(
            parse_request(req.as_bytes(), &routes()),
            RequestOutcome::Reject { status: 400, .. }
        ));
    }

    #[test]
    fn errors_have_the_json_body_of_the_http_api() {
        let r = error_response(411, "send the body with Content-Length");
        let text = std::str::from_utf8(&r).unwrap();
        assert!(text.contains("Content-Type: application/json"), "{text}");
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "length_required");
        assert_eq!(v["message"], "send the body with Content-Length");
    }

    #[test]
    fn plain_get_on_ws_path_needs_upgrade() {
        let req = b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(matches!(
            parse_request(req, &routes()),
            RequestOutcome::Reject { status: 426, .. }
        ));
    }
}
