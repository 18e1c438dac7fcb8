//! The HTTP/1.1 request that opens a connection: parsed with httparse (as tungstenite does),
//! accepted with tungstenite's `derive_accept_key`, answered with complete response bytes.
//! Paths other than the WebSocket (and echo) path get a plain HTTP error.

use bytes::Bytes;

use crate::config::limits::{MAX_HTTP_HEADERS, MAX_HTTP_HEAD_BYTES};

/// Which endpoint an upgrade request asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// The native protocol at `/ws`.
    Native,
    /// The echo endpoint for conformance suites.
    Echo,
}

/// Where the server's WebSocket endpoints are.
#[derive(Clone, Debug)]
pub struct Routes {
    /// Path of the native endpoint (`/ws`).
    pub ws_path: String,
    /// Path of the echo endpoint, when enabled.
    pub echo_path: Option<String>,
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
    },
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
        return reject(404, "not found");
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
    let Some(key) = header("sec-websocket-key").filter(|k| !k.is_empty()) else {
        return reject(400, "missing Sec-WebSocket-Key");
    };
    let accept = tungstenite::handshake::derive_accept_key(key);
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    RequestOutcome::Upgrade {
        endpoint,
        response: Bytes::from(response),
        consumed,
        query,
    }
}

/// A complete plain-text HTTP error response that closes the connection.
pub fn error_response(status: u16, body: &str) -> Bytes {
    let reason = match status {
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    Bytes::from(format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}\n",
        body.len() + 1
    ))
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
        }
    }

    const UPGRADE: &[u8] = b"GET /ws?token=abc HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

    #[test]
    fn upgrade_answers_with_the_rfc_accept_key() {
        match parse_request(UPGRADE, &routes()) {
            RequestOutcome::Upgrade {
                response,
                consumed,
                query,
                endpoint,
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
    fn other_paths_get_404() {
        let req = b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(matches!(
            parse_request(req, &routes()),
            RequestOutcome::Reject { status: 404, .. }
        ));
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
    fn plain_get_on_ws_path_needs_upgrade() {
        let req = b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(matches!(
            parse_request(req, &routes()),
            RequestOutcome::Reject { status: 426, .. }
        ));
    }
}
