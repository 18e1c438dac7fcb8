//! Auth, namespaces, permissions and isolation over real sockets, with tokens signed in the
//! test (HS256 secret, RS256 and ES256 key pairs from tests/fixtures).
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use framecast::{Config, IoBackend};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const SECRET: &str = "test-secret-0123456789";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hs256(claims: Value) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn secured(io: IoBackend, toml: &str) -> Config {
    let mut c = Config {
        jwt_secret: Some(SECRET.into()),
        ..config(io)
    };
    c.apply_toml(toml, "test").unwrap();
    c
}

/// Opens the native endpoint with `token` in the query string.
async fn connect_with_token(addr: std::net::SocketAddr, token: &str) -> Ws {
    try_connect_with_token(addr, token)
        .await
        .expect("upgrade accepted")
}

/// The HTTP status the upgrade with `token` is refused with.
async fn refusal_status(addr: std::net::SocketAddr, token: &str) -> u16 {
    match try_connect_with_token(addr, token).await {
        Err(e) => status_of(e),
        Ok(_) => panic!("expected an HTTP refusal, the upgrade was accepted"),
    }
}

/// The HTTP status of a refused upgrade.
fn status_of(e: tokio_tungstenite::tungstenite::Error) -> u16 {
    match e {
        tokio_tungstenite::tungstenite::Error::Http(r) => r.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

async fn try_connect_with_token(
    addr: std::net::SocketAddr,
    token: &str,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={token}"))
        .await
        .map(|(ws, _)| ws)
}

async fn token_in_query_sets_user_id(io: IoBackend) {
    let server = start(secured(io, ""));
    let token = hs256(json!({"sub":"alice","exp":now()+60}));
    let mut ws = connect_with_token(server.local_addr(), &token).await;
    let hello = recv(&mut ws).await;
    assert_eq!(hello["user_id"], "alice");
}

async fn token_in_authorization_header_sets_user_id(io: IoBackend) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = start(secured(io, ""));
    let mut req = url(server.local_addr()).into_client_request().unwrap();
    let token = hs256(json!({"sub":"bob"}));
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(recv(&mut ws).await["user_id"], "bob");
}

async fn auth_message_authenticates_within_the_timeout(io: IoBackend) {
    let server = start(secured(io, ""));
    let (mut ws, hello) = connect(server.local_addr()).await;
    assert!(hello["user_id"].is_null());
    send(&mut ws, json!({"type":"subscribe","channels":["a"]})).await;
    assert_eq!(recv(&mut ws).await["code"], "UNAUTHORIZED");
    send(
        &mut ws,
        json!({"type":"auth","token":hs256(json!({"sub":"carol"})),"id":1}),
    )
    .await;
    let ok = recv(&mut ws).await;
    assert_eq!(
        (ok["type"].clone(), ok["user_id"].clone()),
        (json!("authenticated"), json!("carol"))
    );
    subscribe(&mut ws, &["a"]).await;
}

async fn no_auth_message_closes_with_4001_after_the_timeout(io: IoBackend) {
    let mut cfg = secured(io, "");
    cfg.auth_timeout = Duration::from_millis(300);
    let server = start(cfg);
    let (mut ws, _) = connect(server.local_addr()).await;
    assert_eq!(close_code(&mut ws).await, 4001);
}

async fn expired_token_at_upgrade_is_http_401(io: IoBackend) {
    let server = start(secured(io, ""));
    let token = hs256(json!({"sub":"dave","exp":now()-10}));
    let status = refusal_status(server.local_addr(), &token).await;
    assert_eq!(status, 401);
}

async fn wrongly_signed_token_at_upgrade_is_http_401(io: IoBackend) {
    let server = start(secured(io, ""));
    let forged = encode(
        &Header::default(),
        &json!({"sub":"eve"}),
        &EncodingKey::from_secret(b"not-the-secret-xx"),
    )
    .unwrap();
    let status = refusal_status(server.local_addr(), &forged).await;
    assert_eq!(status, 401);
}

async fn bad_token_in_auth_message_closes_with_4001(io: IoBackend) {
    let server = start(secured(io, ""));
    let (mut ws, _) = connect(server.local_addr()).await;
    send(&mut ws, json!({"type":"auth","token":"not.a.jwt"})).await;
    assert_eq!(close_code(&mut ws).await, 4001);
}

async fn token_expiring_on_a_live_connection_closes_with_4001(io: IoBackend) {
    let server = start(secured(io, ""));
    let token = hs256(json!({"sub":"frank","exp":now()+2}));
    let mut ws = connect_with_token(server.local_addr(), &token).await;
    recv(&mut ws).await;
    assert_eq!(close_code(&mut ws).await, 4001);
}

async fn rs256_and_es256_public_keys_verify_tokens(io: IoBackend) {
    for (public, private, alg) in [
        ("rsa_public.pem", "rsa_private.pem", Algorithm::RS256),
        ("ec_public.pem", "ec_private.pem", Algorithm::ES256),
    ] {
        let cfg = Config {
            jwt_public_key_file: Some(fixture(public)),
            ..config(io)
        };
        let server = start(cfg);
        let pem = std::fs::read(fixture(private)).unwrap();
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
            _ => EncodingKey::from_ec_pem(&pem).unwrap(),
        };
        let token = encode(&Header::new(alg), &json!({"sub":"kim"}), &key).unwrap();
        let mut ws = connect_with_token(server.local_addr(), &token).await;
        assert_eq!(recv(&mut ws).await["user_id"], "kim", "{alg:?}");
        let hs = hs256(json!({"sub":"kim"}));
        let status = refusal_status(server.local_addr(), &hs).await;
        assert_eq!(status, 401, "an HS256 token is refused by a {alg:?} server");
    }
}

async fn channel_and_publish_claims_are_enforced(io: IoBackend) {
    let server = start(secured(io, "[namespaces.game]\nsubscribe = \"token\"\n"));
    let token = hs256(json!({"sub":"p1","channels":["game:1","game:lobby*"],"publish":["game:1"]}));
    let mut ws = connect_with_token(server.local_addr(), &token).await;
    recv(&mut ws).await;
    subscribe(&mut ws, &["game:1", "game:lobby-eu"]).await;
    send(&mut ws, json!({"type":"subscribe","channels":["game:2"]})).await;
    let err = recv(&mut ws).await;
    assert_eq!(err["code"], "FORBIDDEN");
    assert!(err["message"].as_str().unwrap().contains("game:2"));
    send(
        &mut ws,
        json!({"type":"publish","channel":"game:lobby-eu","data":1}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["code"], "FORBIDDEN");
    send(
        &mut ws,
        json!({"type":"publish","channel":"game:1","data":"move"}),
    )
    .await;
    assert_eq!(
        recv(&mut ws).await["data"],
        "move",
        "allowed publish delivered, connection alive"
    );
}

async fn anonymous_connections_only_use_namespaces_that_allow_them(io: IoBackend) {
    let mut cfg = secured(io, "[namespaces.private]\nsubscribe = \"authenticated\"\n");
    cfg.allow_anonymous = Some(true);
    let server = start(cfg);
    let (mut ws, _) = connect(server.local_addr()).await;
    subscribe(&mut ws, &["public-news"]).await;
    send(
        &mut ws,
        json!({"type":"subscribe","channels":["private:x"]}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["code"], "FORBIDDEN");
}

async fn anonymous_off_requires_a_token(io: IoBackend) {
    let server = start(secured(io, ""));
    let (mut ws, _) = connect(server.local_addr()).await;
    send(&mut ws, json!({"type":"publish","channel":"a","data":1})).await;
    assert_eq!(recv(&mut ws).await["code"], "UNAUTHORIZED");
}

async fn two_sessions_never_see_each_others_updates(io: IoBackend) {
    let cfg = Config {
        tick_hz: 60,
        ..secured(
            io,
            "allow_anonymous = true\n[namespaces.session]\necho = false\n",
        )
    };
    let server = start(cfg);
    let addr = server.local_addr();
    let mut a = Vec::new();
    let mut b = Vec::new();
    for _ in 0..3 {
        let (mut ws, _) = connect(addr).await;
        subscribe(&mut ws, &["session:A"]).await;
        a.push(ws);
        let (mut ws, _) = connect(addr).await;
        subscribe(&mut ws, &["session:B"]).await;
        b.push(ws);
    }
    // Every member publishes 60 position updates as fast as it can.
    for (i, ws) in a.iter_mut().enumerate() {
        for n in 0..60 {
            send(ws, json!({"type":"publish","channel":"session:A","event_type":"pos","data":{"who":i,"n":n}})).await;
        }
    }
    send(
        &mut b[0],
        json!({"type":"publish","channel":"session:B","event_type":"pos","data":{"who":"b0"}}),
    )
    .await;
    // Each A member gets the other two members' 120 updates, never its own, never B's.
    for (i, ws) in a.iter_mut().enumerate() {
        for _ in 0..120 {
            let ev = recv(ws).await;
            assert_eq!(ev["channel"], "session:A");
            assert_ne!(ev["data"]["who"], i, "echo = false: no own updates");
        }
        send(ws, json!({"type":"ping","ping_id":"end"})).await;
        assert_eq!(recv(ws).await["type"], "pong", "nothing else was queued");
    }
    // B members other than the publisher get exactly the one B update.
    for ws in &mut b[1..] {
        let ev = recv(ws).await;
        assert_eq!(
            (ev["channel"].clone(), ev["data"]["who"].clone()),
            (json!("session:B"), json!("b0"))
        );
    }
    send(&mut b[0], json!({"type":"ping","ping_id":"b0"})).await;
    assert_eq!(
        recv(&mut b[0]).await["type"],
        "pong",
        "the B publisher got nothing back"
    );
}

async fn personal_channels_are_private_and_reachable_over_http(io: IoBackend) {
    let server = start(secured(io, ""));
    let alice = hs256(json!({"sub":"alice"}));
    let mut ws = connect_with_token(server.local_addr(), &alice).await;
    recv(&mut ws).await;
    send(&mut ws, json!({"type":"subscribe","channels":["user:bob"]})).await;
    assert_eq!(recv(&mut ws).await["code"], "FORBIDDEN");
    subscribe(&mut ws, &["user:alice"]).await;
    let addr = server.local_addr();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let body = r#"{"channel":"user:alice","event_type":"dm","data":"hi alice"}"#;
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "POST /api/v1/broadcast HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 202"), "{out}");
    })
    .await
    .unwrap();
    assert_eq!(recv(&mut ws).await["data"], "hi alice");
}

async fn publish_rate_limit_answers_rate_limited_then_closes_on_abuse(io: IoBackend) {
    let server = start(secured(
        io,
        "allow_anonymous = true\n[namespaces.chat]\npublish_rate = 5\n",
    ));
    let (mut ws, _) = connect(server.local_addr()).await;
    for n in 0..40 {
        send(
            &mut ws,
            json!({"type":"publish","channel":"chat:r","data":n,"id":n}),
        )
        .await;
    }
    let mut limited = 0;
    let code = loop {
        use futures_util::StreamExt;
        match tokio::time::timeout(DEADLINE, ws.next()).await.unwrap() {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["code"] == "RATE_LIMITED" {
                    limited += 1;
                }
            }
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(f)))) => {
                break u16::from(f.code)
            }
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    };
    assert!(limited >= 10, "{limited} RATE_LIMITED replies");
    assert_eq!(code, 1008);
}

async fn other_origins_are_refused_with_403(io: IoBackend) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut cfg = config(io);
    cfg.allowed_origins = vec!["https://app.example".into()];
    let server = start(cfg);
    let mut req = url(server.local_addr()).into_client_request().unwrap();
    req.headers_mut()
        .insert("Origin", "https://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert_eq!(status_of(err), 403);
    let mut ok = url(server.local_addr()).into_client_request().unwrap();
    ok.headers_mut()
        .insert("Origin", "https://app.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(ok).await.is_ok());
}

async fn subscription_cap_is_limit_exceeded(io: IoBackend) {
    let mut cfg = config(io);
    cfg.max_subscriptions = 2;
    let server = start(cfg);
    let (mut ws, _) = connect(server.local_addr()).await;
    subscribe(&mut ws, &["a", "b"]).await;
    send(&mut ws, json!({"type":"subscribe","channels":["c"]})).await;
    assert_eq!(recv(&mut ws).await["code"], "LIMIT_EXCEEDED");
}

async fn server_wide_channel_cap_is_limit_exceeded(io: IoBackend) {
    let mut cfg = config(io);
    cfg.max_channels = 2;
    let server = start(cfg);
    let (mut ws, _) = connect(server.local_addr()).await;
    subscribe(&mut ws, &["a", "b"]).await;
    // The distributor owns the registry: the limit holds at once, with no retry.
    send(&mut ws, json!({"type":"subscribe","channels":["c"]})).await;
    let reply = recv(&mut ws).await;
    assert_eq!(reply["code"], "LIMIT_EXCEEDED", "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("max_channels"));
    subscribe(&mut ws, &["a"]).await; // existing channels stay usable
}

both_backends!(
    server_wide_channel_cap_is_limit_exceeded,
    token_in_query_sets_user_id,
    token_in_authorization_header_sets_user_id,
    auth_message_authenticates_within_the_timeout,
    no_auth_message_closes_with_4001_after_the_timeout,
    expired_token_at_upgrade_is_http_401,
    wrongly_signed_token_at_upgrade_is_http_401,
    bad_token_in_auth_message_closes_with_4001,
    token_expiring_on_a_live_connection_closes_with_4001,
    rs256_and_es256_public_keys_verify_tokens,
    channel_and_publish_claims_are_enforced,
    anonymous_connections_only_use_namespaces_that_allow_them,
    anonymous_off_requires_a_token,
    two_sessions_never_see_each_others_updates,
    personal_channels_are_private_and_reachable_over_http,
    publish_rate_limit_answers_rate_limited_then_closes_on_abuse,
    other_origins_are_refused_with_403,
    subscription_cap_is_limit_exceeded,
);
