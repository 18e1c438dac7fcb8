//! RFC 6455 read-side behaviour with a raw client that writes frames by hand, on both backends.
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

mod common;

use common::*;
use framecast::IoBackend;

async fn other_paths_get_http_404(io: IoBackend) {
    let server = start(config(io));
    let mut c = RawClient::send_request(
        server.local_addr(),
        "GET /nothing-here HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .await;
    let head = c.read_http_head().await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

async fn unmasked_client_frame_is_closed_with_1002(io: IoBackend) {
    let server = start(config(io));
    let mut c = RawClient::upgrade(server.local_addr(), "/ws").await;
    c.read_json().await; // connected
    c.send_frame(0x81, br#"{"type":"ping"}"#, false).await;
    assert_eq!(c.read_close_code().await, 1002);
}

async fn fragmented_message_is_reassembled(io: IoBackend) {
    let server = start(config(io));
    let mut c = RawClient::upgrade(server.local_addr(), "/ws").await;
    c.read_json().await;
    let msg = br#"{"type":"ping","ping_id":"fragmented"}"#;
    c.send_frame(0x01, &msg[..10], true).await;
    c.send_frame(0x89, b"mid", true).await; // a control frame between fragments
    c.send_frame(0x00, &msg[10..20], true).await;
    c.send_frame(0x80, &msg[20..], true).await;
    let (first, payload) = c.read_frame().await.unwrap();
    assert_eq!(
        (first, payload.as_slice()),
        (0x8A, b"mid".as_slice()),
        "pong first"
    );
    let pong = c.read_json().await;
    assert_eq!(pong["ping_id"], "fragmented");
}

async fn ping_frame_is_answered_with_pong(io: IoBackend) {
    let server = start(config(io));
    let mut c = RawClient::upgrade(server.local_addr(), "/ws").await;
    c.read_json().await;
    c.send_frame(0x89, b"hello", true).await;
    assert_eq!(c.read_frame().await.unwrap(), (0x8A, b"hello".to_vec()));
}

async fn close_handshake_echoes_the_code(io: IoBackend) {
    let server = start(config(io));
    let mut c = RawClient::upgrade(server.local_addr(), "/ws").await;
    c.read_json().await;
    c.send_frame(0x88, &4000u16.to_be_bytes(), true).await;
    assert_eq!(c.read_close_code().await, 4000);
    c.expect_eof().await;
}

async fn invalid_utf8_text_is_closed_with_1007(io: IoBackend) {
    let server = start(config(io));
    let mut c = RawClient::upgrade(server.local_addr(), "/ws").await;
    c.read_json().await;
    c.send_frame(0x81, &[b'{', 0xC3, 0x28, b'}'], true).await;
    assert_eq!(c.read_close_code().await, 1007);
}

async fn oversize_message_is_closed_with_1009(io: IoBackend) {
    let server = start(config(io));
    let mut c = RawClient::upgrade(server.local_addr(), "/ws").await;
    c.read_json().await;
    let big = vec![b' '; 64 * 1024 + 1];
    c.send_frame(0x81, &big, true).await;
    assert_eq!(c.read_close_code().await, 1009);
}

async fn message_at_the_limit_is_accepted(io: IoBackend) {
    let mut cfg = config(io);
    cfg.max_message_bytes = 1000;
    let server = start(cfg);
    let mut c = RawClient::upgrade(server.local_addr(), "/ws").await;
    c.read_json().await;
    let mut msg = br#"{"type":"ping","ping_id":"edge","pad":""#.to_vec();
    msg.resize(1000 - 2, b'x');
    msg.extend_from_slice(b"\"}");
    c.send_frame(0x81, &msg, true).await;
    assert_eq!(c.read_json().await["ping_id"], "edge");
}

async fn echo_path_sends_messages_back_when_enabled(io: IoBackend) {
    let mut cfg = config(io);
    cfg.echo_path = Some("/echo".into());
    let server = start(cfg);
    let mut c = RawClient::upgrade(server.local_addr(), "/echo").await;
    c.send_frame(0x82, &[1, 2, 3, 250], true).await;
    assert_eq!(c.read_frame().await.unwrap(), (0x82, vec![1, 2, 3, 250]));
    c.send_frame(0x81, "héllo".as_bytes(), true).await;
    assert_eq!(
        c.read_frame().await.unwrap(),
        (0x81, "héllo".as_bytes().to_vec())
    );
}

async fn echo_path_is_off_by_default(io: IoBackend) {
    let server = start(config(io));
    let mut c =
        RawClient::send_request(server.local_addr(), "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert!(c.read_http_head().await.starts_with("HTTP/1.1 404"));
}

async fn garbage_instead_of_http_gets_400(io: IoBackend) {
    let server = start(config(io));
    let mut c = RawClient::send_request(
        server.local_addr(),
        "\x16\x03\x01 definitely not http\r\n\r\n",
    )
    .await;
    assert!(c.read_http_head().await.starts_with("HTTP/1.1 400"));
}

both_backends!(
    other_paths_get_http_404,
    unmasked_client_frame_is_closed_with_1002,
    fragmented_message_is_reassembled,
    ping_frame_is_answered_with_pong,
    close_handshake_echoes_the_code,
    invalid_utf8_text_is_closed_with_1007,
    oversize_message_is_closed_with_1009,
    message_at_the_limit_is_accepted,
    echo_path_sends_messages_back_when_enabled,
    echo_path_is_off_by_default,
    garbage_instead_of_http_gets_400,
);
