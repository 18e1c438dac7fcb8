//! Routing and handler behaviour without sockets.

use std::sync::Arc;
use std::time::Instant;

use super::*;
use crate::distributor::DistributorStats;
use crate::status::ShardStats;

fn state(api_key: Option<&str>) -> ServerState {
    ServerState {
        started: Instant::now(),
        backend: "test",
        tick_hz: 60,
        shards: vec![Arc::new(ShardStats::default())],
        distributor: Arc::new(DistributorStats::default()),
        channels: Default::default(),
        draining: Default::default(),
        api_key: api_key.map(str::to_string),
        cors_origins: Vec::new(),
        rates: Default::default(),
        cluster: None,
    }
}

fn req(method: &str, path: &str, auth: Option<&str>) -> HttpRequest {
    HttpRequest {
        method: method.into(),
        path: path.into(),
        query: None,
        authorization: auth.map(str::to_string),
        origin: None,
        content_type: None,
        body: Vec::new(),
        keep_alive: true,
        consumed: 0,
    }
}

fn status_of(state: &ServerState, r: &HttpRequest) -> u16 {
    let (ingress, _rx) = Ingress::new();
    route(
        r,
        &HttpContext {
            state,
            ingress: &ingress,
            reply_to: None,
        },
        &mut None,
    )
    .status
}

#[test]
fn healthz_is_503_while_draining() {
    let s = state(None);
    assert_eq!(status_of(&s, &req("GET", "/healthz", None)), 200);
    s.draining.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(status_of(&s, &req("GET", "/healthz", None)), 503);
}

#[test]
fn api_key_guards_api_and_metrics_but_not_healthz() {
    let s = state(Some("0123456789abcdef"));
    assert_eq!(status_of(&s, &req("GET", "/api/v1/status", None)), 401);
    assert_eq!(
        status_of(&s, &req("GET", "/metrics", Some("Bearer wrong"))),
        401
    );
    assert_eq!(
        status_of(&s, &req("GET", "/metrics", Some("Bearer 0123456789abcdef"))),
        200
    );
    assert_eq!(status_of(&s, &req("GET", "/healthz", None)), 200);
}

#[test]
fn wrong_method_is_405_and_unknown_path_404() {
    let s = state(None);
    assert_eq!(status_of(&s, &req("POST", "/api/v1/status", None)), 405);
    assert_eq!(status_of(&s, &req("GET", "/api/v1/broadcast", None)), 405);
    assert_eq!(status_of(&s, &req("GET", "/api/v1/nope", None)), 404);
    assert_eq!(status_of(&s, &req("GET", "/favicon.ico", None)), 404);
}

#[test]
fn seed_websocket_prefixed_routes_are_aliases() {
    let s = state(None);
    assert_eq!(
        status_of(&s, &req("GET", "/api/v1/websocket/status", None)),
        200
    );
    assert_eq!(
        status_of(&s, &req("GET", "/api/v1/websocket/channels", None)),
        200
    );
}

#[test]
fn response_encodes_length_and_close() {
    let r = Response::json(200, &serde_json::json!({"a":1}));
    let text = String::from_utf8(r.encode(false).to_vec()).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(text.contains("Content-Length: 7\r\n"));
    assert!(text.contains("Connection: close\r\n"));
    assert!(text.ends_with("\r\n\r\n{\"a\":1}"));
}

#[test]
fn channel_names_in_paths_are_percent_decoded() {
    assert_eq!(
        routes::percent_decode("session%3Aw1%2Favatars%40v2").as_deref(),
        Some("session:w1/avatars@v2")
    );
    assert_eq!(routes::percent_decode("bad%zz"), None);
    assert_eq!(routes::percent_decode("cut%4"), None);
}

fn answer(state: &ServerState, r: &HttpRequest) -> String {
    let (ingress, _rx) = Ingress::new();
    let ctx = HttpContext {
        state,
        ingress: &ingress,
        reply_to: None,
    };
    let response = handle(r, &ctx)
        .into_now()
        .expect("answered at once without reply_to");
    String::from_utf8(response.to_vec()).unwrap()
}

#[test]
fn cors_preflight_from_an_allowed_origin_is_answered_without_the_api_key() {
    let mut s = state(Some("secret"));
    s.cors_origins = vec!["https://app.example".into()];
    let mut r = req("OPTIONS", "/api/v1/broadcast", None);
    r.origin = Some("https://app.example".into());
    let out = answer(&s, &r);
    assert!(out.starts_with("HTTP/1.1 204 No Content\r\n"), "{out}");
    assert!(out.contains("\r\nAccess-Control-Allow-Origin: https://app.example\r\n"));
    assert!(out.contains("\r\nAccess-Control-Allow-Headers: Authorization, Content-Type\r\n"));
    assert!(out.contains("\r\nAccess-Control-Allow-Methods: GET, POST, OPTIONS\r\n"));
    assert!(out.contains("\r\nVary: Origin\r\n"));
    // The real request still needs the key, and its answer (even a 401) carries the header
    // so the browser lets the app read the error.
    let mut get = req("GET", "/api/v1/status", None);
    get.origin = Some("https://app.example".into());
    let out = answer(&s, &get);
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    assert!(out.contains("\r\nAccess-Control-Allow-Origin: https://app.example\r\n"));
}

#[test]
fn cors_headers_are_absent_for_other_origins_and_by_default() {
    let mut r = req("GET", "/api/v1/status", None);
    r.origin = Some("https://evil.example".into());
    assert!(!answer(&state(None), &r).contains("Access-Control"));
    let mut s = state(None);
    s.cors_origins = vec!["https://app.example".into()];
    assert!(!answer(&s, &r).contains("Access-Control"));
    s.cors_origins = vec!["*".into()];
    assert!(answer(&s, &r).contains("\r\nAccess-Control-Allow-Origin: https://evil.example\r\n"));
}
