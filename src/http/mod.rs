//! The HTTP API on the WebSocket port: every request on a path other than `/ws` is answered by
//! the shard that accepted the connection, with cheap, non-blocking handlers that read the
//! shared [`ServerState`] and publish through the same [`Ingress`] as WebSocket clients.
//! Routes, bodies and errors are documented in docs/http-api.md and docs/openapi.yaml.
#![forbid(unsafe_code)]

pub(crate) mod binary;
pub(crate) mod cors;
pub(crate) mod metrics;
pub(crate) mod pending;
pub mod routes;

use bytes::Bytes;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::distributor::Ingress;
use crate::protocol::handshake::HttpRequest;
use crate::status::ServerState;
use crate::wire::compat;

/// What a handler may use.
pub struct HttpContext<'a> {
    /// Server-wide read side.
    pub state: &'a ServerState,
    /// The way into the distributor.
    pub ingress: &'a Ingress,
    /// Where a broadcast's outcomes go, so it is answered with its seqs once numbered (the
    /// serving shard and connection); `None`: answered at once, without seqs.
    pub reply_to: Option<(u32, crate::conn_id::ConnId)>,
}

/// A request's answer: now, or once its events are numbered.
#[derive(Debug)]
pub enum Answer {
    /// The complete response.
    Now(Bytes),
    /// A broadcast waiting for its seqs; the shard settles it from the outcomes.
    Later(Box<pending::PendingBroadcast>),
}

/// A response before serialization.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Content type.
    pub content_type: &'static str,
    /// Extra header lines (`Name: value`).
    pub headers: Vec<String>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, value: &Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: serde_json::to_vec(value).expect("a Value always serializes"),
        }
    }

    /// A JSON error: `{"error": code, "message": ...}`.
    pub fn error(status: u16, code: &str, message: &str) -> Response {
        Response::json(status, &json!({"error": code, "message": message}))
    }

    /// Serializes the response, with `Connection: close` when the connection ends after it.
    pub fn encode(&self, keep_alive: bool) -> Bytes {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for h in &self.headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        if !keep_alive {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut out = Vec::with_capacity(head.len() + self.body.len());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&self.body);
        Bytes::from(out)
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

impl Answer {
    /// The response, if it was given at once (always so without [`HttpContext::reply_to`]).
    pub fn into_now(self) -> Option<Bytes> {
        match self {
            Answer::Now(response) => Some(response),
            Answer::Later(_) => None,
        }
    }
}

/// Answers one request; the result is one complete response (written in one piece, so no
/// Nagle/delayed-ACK stall between head and body).
pub fn handle(req: &HttpRequest, ctx: &HttpContext<'_>) -> Answer {
    let mut owed = None;
    let mut response = route(req, ctx, &mut owed);
    let origin = cors::allowed(req, &ctx.state.cors_origins);
    if let Some(channels) = owed {
        let origin = origin.map(str::to_string);
        return Answer::Later(Box::new(pending::PendingBroadcast::new(
            channels,
            req.keep_alive,
            origin,
        )));
    }
    if let Some(origin) = origin {
        cors::allow(&mut response, origin, req.method == "OPTIONS");
    }
    Answer::Now(response.encode(req.keep_alive))
}

/// `owed` is set when a broadcast was queued to be answered with its seqs.
fn route(req: &HttpRequest, ctx: &HttpContext<'_>, owed: &mut Option<Vec<String>>) -> Response {
    let path = req.path.as_str();
    if path == "/healthz" {
        return only(req, "GET", || routes::healthz(ctx));
    }
    if path == "/readyz" {
        return only(req, "GET", || routes::readyz(ctx));
    }
    let protected = path == "/metrics" || path.starts_with("/api/v1/");
    if !protected {
        return Response::error(404, "not_found", &format!("no route for {path}"));
    }
    if req.method == "OPTIONS" {
        // A CORS preflight carries no credentials: it is answered before the key check (the
        // CORS headers are added by `handle` when the origin is allowed).
        return Response {
            status: 204,
            content_type: "application/json",
            headers: Vec::new(),
            body: Vec::new(),
        };
    }
    if let Some(key) = &ctx.state.api_key {
        if !authorized(req.authorization.as_deref(), key) {
            let mut r =
                Response::error(401, "unauthorized", "send Authorization: Bearer <api_key>");
            r.headers.push("WWW-Authenticate: Bearer".into());
            return r;
        }
    }
    let api = compat::neurograph_api_route(path).or_else(|| path.strip_prefix("/api/v1/"));
    match (path, api) {
        ("/metrics", _) => only(req, "GET", || metrics::render(ctx.state)),
        (_, Some("status")) => only(req, "GET", || routes::status(ctx)),
        (_, Some("channels")) => only(req, "GET", || routes::channels(ctx)),
        (_, Some("broadcast")) => only(req, "POST", || routes::broadcast(req, ctx, owed)),
        (_, Some(rest)) if rest.starts_with("channels/") => only(req, "GET", || {
            routes::channel(&rest["channels/".len()..], ctx)
        }),
        _ => Response::error(404, "not_found", &format!("no route for {path}")),
    }
}

fn only(req: &HttpRequest, method: &str, handler: impl FnOnce() -> Response) -> Response {
    if req.method == method {
        return handler();
    }
    let mut r = Response::error(
        405,
        "method_not_allowed",
        &format!("{} takes {method}", req.path),
    );
    r.headers.push(format!("Allow: {method}"));
    r
}

/// Constant-time check of `Authorization: Bearer <key>`.
fn authorized(header: Option<&str>, key: &str) -> bool {
    let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    token.trim().as_bytes().ct_eq(key.as_bytes()).into()
}

#[cfg(test)]
mod tests;
