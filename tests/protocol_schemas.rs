//! docs/schema/*.json (the draft-07 schemas docs/protocol.md publishes) hold for what a real
//! server sends and for the client requests the docs show.
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

mod common;

use common::*;
use framecast::IoBackend;
use serde_json::{json, Value};

fn schema(name: &str) -> jsonschema::Validator {
    let path = format!("{}/docs/schema/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        value["$schema"], "http://json-schema.org/draft-07/schema#",
        "{name} is draft-07"
    );
    jsonschema::draft7::options()
        .should_validate_formats(true)
        .build(&value)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn assert_valid(name: &str, message: &Value) {
    let v = schema(name);
    let errors: Vec<String> = v.iter_errors(message).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{message} against {name}: {errors:?}");
}

#[test]
fn documented_client_requests_match_their_schemas() {
    assert_valid(
        "client.subscribe",
        &json!({"type":"subscribe","channels":["a","b"],"id":1}),
    );
    assert_valid(
        "client.subscribe",
        &json!({"type":"subscribe","data":{"events":["system.status"]}}),
    );
    assert_valid(
        "client.unsubscribe",
        &json!({"type":"unsubscribe","channels":["a"]}),
    );
    assert_valid(
        "client.publish",
        &json!({"type":"publish","channel":"a","event_type":"x","data":{"k":1}}),
    );
    assert_valid(
        "client.subscribe",
        &json!({"type":"subscribe","channels":["a"],"since":{"a":{"seq":120,"epoch":"e"}},"max_hz":20}),
    );
    assert_valid(
        "client.publish",
        &json!({"type":"publish","channel":"pos:w","data":[1,2],"key":"avatar-7"}),
    );
    assert_valid("client.ping", &json!({"type":"ping","ping_id":"p1"}));
    assert_valid(
        "client.get_subscriptions",
        &json!({"type":"get_subscriptions"}),
    );
}

#[test]
fn schemas_reject_what_the_server_rejects() {
    assert!(
        !schema("client.subscribe").is_valid(&json!({"type":"subscribe","channels":["bad name"]}))
    );
    assert!(!schema("client.publish").is_valid(&json!({"type":"publish","data":1})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_message_matches_its_schema() {
    let server = start(framecast::Config {
        welcome: Some("hi".into()),
        ..config(IoBackend::Epoll)
    });
    let (mut ws, hello) = connect(server.local_addr()).await;
    assert_valid("server.connected", &hello);
    assert_valid("server.notification", &recv(&mut ws).await);
    send(
        &mut ws,
        json!({"type":"subscribe","channels":["s"],"id":"r1"}),
    )
    .await;
    assert_valid("server.subscribed", &recv(&mut ws).await);
    send(
        &mut ws,
        json!({"type":"publish","channel":"s","event_type":"e","data":[1,{"x":null}],"id":2}),
    )
    .await;
    let mut got = [recv(&mut ws).await, recv(&mut ws).await];
    got.sort_by_key(|m| m["type"].as_str().unwrap().to_string());
    assert_valid("server.event", &got[0]);
    assert_valid("server.published", &got[1]);
    send(&mut ws, json!({"type":"get_subscriptions"})).await;
    assert_valid("server.subscriptions", &recv(&mut ws).await);
    send(&mut ws, json!({"type":"ping","ping_id":7})).await;
    assert_valid("server.pong", &recv(&mut ws).await);
    send(&mut ws, json!({"type":"unsubscribe","channels":["s"]})).await;
    assert_valid("server.unsubscribed", &recv(&mut ws).await);
    send(&mut ws, json!({"type":"what"})).await;
    assert_valid("server.error", &recv(&mut ws).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticated_and_forbidden_replies_match_their_schemas() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let secret = "schema-secret-0123456789";
    let mut cfg = framecast::Config {
        jwt_secret: Some(secret.into()),
        ..config(IoBackend::Epoll)
    };
    cfg.apply_toml("[namespaces.vip]\nsubscribe = \"token\"\n", "test")
        .unwrap();
    let server = start(cfg);
    let (mut ws, _) = connect(server.local_addr()).await;
    send(&mut ws, json!({"type":"subscribe","channels":["a"]})).await;
    assert_valid("server.error", &recv(&mut ws).await);
    let token = encode(
        &Header::default(),
        &json!({"sub":"u1"}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    send(&mut ws, json!({"type":"auth","token":token,"id":"a1"})).await;
    assert_valid("server.authenticated", &recv(&mut ws).await);
    send(&mut ws, json!({"type":"subscribe","channels":["vip:1"]})).await;
    let forbidden = recv(&mut ws).await;
    assert_eq!(forbidden["code"], "FORBIDDEN");
    assert_valid("server.error", &forbidden);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_messages_match_their_schemas() {
    let mut cfg = framecast::Config {
        max_queued_bytes: 128 * 1024,
        ..config(IoBackend::Epoll)
    };
    cfg.apply_toml(
        "[namespaces.st]\nhistory_size = 10\nsnapshot = true\n[namespaces.pos]\ndelivery = \"conflated\"\n",
        "test",
    )
    .unwrap();
    let server = start(cfg);
    let (mut watcher, _) = connect(server.local_addr()).await;
    let joined = subscribe(&mut watcher, &["st:a"]).await;
    assert_valid("server.subscribed", &joined);
    server.publish_keyed("st:a", "e", "k1", &json!(1)).unwrap();
    assert_valid("server.event", &recv(&mut watcher).await);
    let (mut ws, _) = connect(server.local_addr()).await;
    let epoch = joined["positions"]["st:a"]["epoch"].as_str().unwrap();
    send(
        &mut ws,
        json!({"type":"subscribe","channels":["st:a"],"since":{"st:a":{"seq":0,"epoch":epoch}}}),
    )
    .await;
    let recovered = recv(&mut ws).await;
    assert_eq!(recovered["recovered"], true, "{recovered}");
    assert_valid("server.subscribed", &recovered);
    assert_valid("server.event", &recv(&mut ws).await);
    send(
        &mut ws,
        json!({"type":"subscribe","channels":["st:a2"],"since":{"st:a2":{"seq":5,"epoch":"old"}}}),
    )
    .await;
    assert_valid("server.subscribed", &recv(&mut ws).await);
    let (mut late, _) = connect(server.local_addr()).await;
    subscribe(&mut late, &["st:a"]).await;
    let snap = recv(&mut late).await;
    assert_eq!(snap["snapshot"], true);
    assert_valid("server.event", &snap);
    assert_valid(
        "server.gap",
        &serde_json::from_slice(&framecast::internals::wire::reply::gap("pos:w", 3, 10, 14)[2..])
            .unwrap(),
    );
    let stopping = tokio::task::spawn_blocking(move || server.shutdown());
    loop {
        let m = recv(&mut late).await;
        if m["type"] == "reconnect" {
            assert_valid("server.reconnect", &m);
            break;
        }
    }
    drop((ws, late, watcher));
    stopping.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_contract_messages_match_their_schemas() {
    let mut cfg = config(IoBackend::Epoll);
    cfg.apply_toml(
        "default_channels = [\"news\"]\nmax_connections = 1\ntick_hz = 2\n\
         [namespaces.pos]\ndelivery = \"conflated\"\n",
        "test",
    )
    .unwrap();
    let server = start(cfg);
    let (mut ws, hello) = connect(server.local_addr()).await;
    assert_valid("server.connected", &hello);
    let defaults = recv(&mut ws).await;
    assert_eq!(defaults["default"], true);
    assert_valid("server.subscribed", &defaults);
    // Two publications of one key within a 500 ms tick: whichever way they fall, every
    // `published` (numbered or superseded) matches the schema.
    for i in 0..2 {
        send(
            &mut ws,
            json!({"type":"publish","channel":"pos:a","data":i,"id":i}),
        )
        .await;
    }
    for _ in 0..2 {
        let ack = recv(&mut ws).await;
        assert_eq!(ack["type"], "published", "{ack}");
        assert_valid("server.published", &ack);
    }
    // A second connection finds the server full.
    let (mut full, _) = tokio_tungstenite::connect_async(url(server.local_addr()))
        .await
        .unwrap();
    assert_valid("server.reconnect", &recv(&mut full).await);
}
