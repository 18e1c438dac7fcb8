//! The native JSON protocol over real sockets, on both backends.
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

mod common;

use common::*;
use framecast::IoBackend;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

async fn connected_message_has_client_id_and_tick_rate(io: IoBackend) {
    let server = start(config(io));
    let (_ws, hello) = connect(server.local_addr()).await;
    assert_eq!(hello["type"], "connected");
    assert!(uuid_like(hello["client_id"].as_str().unwrap()));
    assert!(hello["user_id"].is_null());
    assert_eq!(hello["tick_hz"], 60);
    assert!(hello["timestamp"].as_str().unwrap().contains('T'));
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|&c| c == '-').count() == 4
}

async fn publish_from_one_client_reaches_a_subscriber_with_seq_and_frame(io: IoBackend) {
    let server = start(config(io));
    let (mut sub, _) = connect(server.local_addr()).await;
    let reply = subscribe(&mut sub, &["news"]).await;
    assert_eq!(reply["channels"], json!(["news"]));
    let (mut publisher, _) = connect(server.local_addr()).await;
    for n in 0..3 {
        send(
            &mut publisher,
            json!({"type":"publish","channel":"news","event_type":"headline","data":{"n":n}}),
        )
        .await;
    }
    for n in 0..3u64 {
        let ev = recv(&mut sub).await;
        assert_eq!(ev["type"], "event");
        assert_eq!(ev["channel"], "news");
        assert_eq!(ev["event_type"], "headline");
        assert_eq!(ev["seq"], n + 1);
        assert!(ev["frame"].as_u64().unwrap() > 0);
        assert_eq!(ev["data"]["n"], n);
    }
}

async fn seed_subscribe_form_with_data_events_is_accepted(io: IoBackend) {
    let server = start(config(io));
    let (mut ws, _) = connect(server.local_addr()).await;
    send(
        &mut ws,
        json!({"type":"subscribe","data":{"events":["system.status"]},"id":"s1"}),
    )
    .await;
    let reply = recv(&mut ws).await;
    assert_eq!(reply["type"], "subscribed");
    assert_eq!(reply["channels"], json!(["system.status"]));
    assert_eq!(reply["id"], "s1");
}

async fn unsubscribe_stops_delivery(io: IoBackend) {
    let server = start(config(io));
    let (mut ws, _) = connect(server.local_addr()).await;
    subscribe(&mut ws, &["a", "b"]).await;
    send(&mut ws, json!({"type":"unsubscribe","channels":["a"]})).await;
    let reply = recv(&mut ws).await;
    assert_eq!(reply["type"], "unsubscribed");
    assert_eq!(reply["channels"], json!(["a"]));
    server.publish("a", "x", &json!(1)).unwrap();
    server.publish("b", "x", &json!(2)).unwrap();
    // Events are ordered per connection: if "a" were still delivered it would come first or
    // in the same tick; the first event seen must be from "b", and then nothing from "a".
    let ev = recv(&mut ws).await;
    assert_eq!(ev["channel"], "b");
    send(&mut ws, json!({"type":"get_subscriptions"})).await;
    let subs = recv(&mut ws).await;
    assert_eq!(subs["type"], "subscriptions");
    assert_eq!(subs["channels"], json!(["b"]));
}

async fn ping_message_gets_pong_with_ping_id(io: IoBackend) {
    let server = start(config(io));
    let (mut ws, _) = connect(server.local_addr()).await;
    send(&mut ws, json!({"type":"ping","ping_id":"p1","id":9})).await;
    let pong = recv(&mut ws).await;
    assert_eq!(pong["type"], "pong");
    assert_eq!(pong["ping_id"], "p1");
    assert_eq!(pong["id"], 9);
    assert!(pong["timestamp"].is_string());
}

async fn publish_with_id_is_acknowledged(io: IoBackend) {
    let server = start(config(io));
    let (mut ws, _) = connect(server.local_addr()).await;
    send(
        &mut ws,
        json!({"type":"publish","channel":"c","data":null,"id":"req-1"}),
    )
    .await;
    let ack = recv(&mut ws).await;
    assert_eq!(ack["type"], "published");
    assert_eq!(ack["id"], "req-1");
}

async fn assert_error(io: IoBackend, message: &str, code: &str) {
    let server = start(config(io));
    let (mut ws, _) = connect(server.local_addr()).await;
    send_text(&mut ws, message).await;
    let err = recv(&mut ws).await;
    assert_eq!(err["type"], "error", "{message}");
    assert_eq!(err["code"], code, "{message}: {err}");
    assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    // The connection stays open and keeps working.
    send(&mut ws, json!({"type":"ping","ping_id":"after"})).await;
    assert_eq!(recv(&mut ws).await["ping_id"], "after");
}

async fn send_text(ws: &mut Ws, text: &str) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(text))
        .await
        .unwrap();
}

async fn invalid_json_is_an_error_and_the_connection_lives(io: IoBackend) {
    assert_error(io, "{not json", "INVALID_JSON").await;
}

async fn unknown_type_is_an_error_and_the_connection_lives(io: IoBackend) {
    assert_error(io, r#"{"type":"teleport"}"#, "UNKNOWN_TYPE").await;
}

async fn missing_field_is_an_error_and_the_connection_lives(io: IoBackend) {
    assert_error(io, r#"{"type":"publish","data":1}"#, "MISSING_FIELD").await;
}

async fn invalid_channel_is_an_error_and_the_connection_lives(io: IoBackend) {
    assert_error(
        io,
        r#"{"type":"subscribe","channels":["no spaces allowed"]}"#,
        "INVALID_CHANNEL",
    )
    .await;
}

async fn error_reply_echoes_the_request_id(io: IoBackend) {
    let server = start(config(io));
    let (mut ws, _) = connect(server.local_addr()).await;
    send(&mut ws, json!({"type":"nope","id":"abc"})).await;
    let err = recv(&mut ws).await;
    assert_eq!(err["id"], "abc");
}

async fn replies_come_in_command_order_while_a_subscribe_is_answered(io: IoBackend) {
    let server = start(config(io));
    let mut client = RawClient::upgrade(server.local_addr(), "/ws").await;
    assert_eq!(client.read_json().await["type"], "connected");
    // All five commands in one write, so the shard reads them in one turn, before the
    // distributor can have answered the subscribe.
    let commands = [
        json!({"type":"subscribe","channels":["a"],"id":1}),
        json!({"type":"ping","id":2}),
        json!({"type":"unsubscribe","channels":["a"],"id":3}),
        json!({"type":"nonsense","id":4}),
        json!({"type":"get_subscriptions","id":5}),
    ];
    let bytes: Vec<u8> = commands
        .iter()
        .flat_map(|c| encode_frame(0x81, c.to_string().as_bytes(), true))
        .collect();
    client.stream.write_all(&bytes).await.unwrap();
    let mut order = Vec::new();
    let mut subscriptions = Value::Null;
    for _ in 0..commands.len() {
        let reply = client.read_json().await;
        order.push((
            reply["type"].as_str().unwrap().to_string(),
            reply["id"].as_u64().unwrap(),
        ));
        if reply["type"] == "subscriptions" {
            subscriptions = reply["channels"].clone();
        }
    }
    let expected = [
        ("subscribed", 1),
        ("pong", 2),
        ("unsubscribed", 3),
        ("error", 4),
        ("subscriptions", 5),
    ]
    .map(|(t, i)| (t.to_string(), i));
    assert_eq!(order, expected);
    assert_eq!(subscriptions, json!([]));
}

async fn a_subscribe_is_answered_without_waiting_for_the_next_tick(io: IoBackend) {
    let mut c = config(io);
    c.tick_hz = 1; // one tick a second: waiting for it would take most of a second
    let server = start(c);
    let (mut ws, _) = connect(server.local_addr()).await;
    let asked = Instant::now();
    let reply = subscribe(&mut ws, &["a"]).await;
    let took = asked.elapsed();
    assert_eq!(reply["type"], "subscribed", "{reply}");
    assert!(took < Duration::from_millis(500), "answered after {took:?}");
}

both_backends!(
    a_subscribe_is_answered_without_waiting_for_the_next_tick,
    replies_come_in_command_order_while_a_subscribe_is_answered,
    connected_message_has_client_id_and_tick_rate,
    publish_from_one_client_reaches_a_subscriber_with_seq_and_frame,
    seed_subscribe_form_with_data_events_is_accepted,
    unsubscribe_stops_delivery,
    ping_message_gets_pong_with_ping_id,
    publish_with_id_is_acknowledged,
    invalid_json_is_an_error_and_the_connection_lives,
    unknown_type_is_an_error_and_the_connection_lives,
    missing_field_is_an_error_and_the_connection_lives,
    invalid_channel_is_an_error_and_the_connection_lives,
    error_reply_echoes_the_request_id,
);
