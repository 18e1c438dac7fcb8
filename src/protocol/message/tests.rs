use super::*;

use crate::testing::client_frame;

#[derive(Debug, PartialEq)]
enum Got {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    Close(Option<u16>, String),
}

fn read_all(chunks: &[&[u8]], max: usize) -> (Vec<Got>, Result<(), Violation>) {
    read_with(MessageReader::default(), chunks, max)
}

/// As a connection that agreed to permessage-deflate reads.
fn read_deflate(chunks: &[&[u8]], max: usize) -> (Vec<Got>, Result<(), Violation>) {
    let mut reader = MessageReader::default();
    reader.accept_deflate();
    read_with(reader, chunks, max)
}

/// A message as a permessage-deflate client compresses it.
fn deflated(data: &[u8]) -> Vec<u8> {
    crate::testing::client_deflate(data, 6)
}

fn read_with(
    mut reader: MessageReader,
    chunks: &[&[u8]],
    max: usize,
) -> (Vec<Got>, Result<(), Violation>) {
    let mut got = Vec::new();
    for chunk in chunks {
        let mut owned = chunk.to_vec();
        let r = reader.feed(&mut owned, max, &mut |m| {
            got.push(match m {
                Incoming::Text(t) => Got::Text(String::from_utf8(t.to_vec()).unwrap()),
                Incoming::Binary(b) => Got::Binary(b.to_vec()),
                Incoming::Ping(p) => Got::Ping(p.to_vec()),
                Incoming::Pong => Got::Pong,
                Incoming::Close(c, r) => Got::Close(c.map(|c| c.0), r.to_string()),
            })
        });
        if r.is_err() {
            return (got, r);
        }
    }
    (got, Ok(()))
}

#[test]
fn text_message_split_at_every_byte_boundary_arrives_whole() {
    let f = client_frame(0x81, b"hello, framecast");
    for cut in 0..=f.len() {
        let (got, r) = read_all(&[&f[..cut], &f[cut..]], 1024);
        r.unwrap();
        assert_eq!(got, vec![Got::Text("hello, framecast".into())], "cut {cut}");
    }
}

#[test]
fn fragmented_message_is_reassembled_around_a_ping() {
    let mut bytes = client_frame(0x01, b"hel");
    bytes.extend(client_frame(0x89, b"p"));
    bytes.extend(client_frame(0x00, b"lo "));
    bytes.extend(client_frame(0x80, b"world"));
    let (got, r) = read_all(&[&bytes], 1024);
    r.unwrap();
    assert_eq!(
        got,
        vec![Got::Ping(b"p".to_vec()), Got::Text("hello world".into())]
    );
}

#[test]
fn invalid_utf8_text_is_1007() {
    let (_, r) = read_all(&[&client_frame(0x81, &[0xff, 0xfe])], 1024);
    assert_eq!(r.unwrap_err().code, CloseCode::INVALID_DATA);
}

#[test]
fn message_over_the_limit_is_1009_even_when_fragmented() {
    let (_, r) = read_all(&[&client_frame(0x82, &[0; 200])], 100);
    assert_eq!(r.unwrap_err().code, CloseCode::TOO_BIG);
    let mut bytes = client_frame(0x02, &[0; 60]);
    bytes.extend(client_frame(0x80, &[0; 60]));
    let (_, r) = read_all(&[&bytes], 100);
    assert_eq!(r.unwrap_err().code, CloseCode::TOO_BIG);
}

#[test]
fn continuation_without_start_is_a_protocol_error() {
    let (_, r) = read_all(&[&client_frame(0x80, b"x")], 1024);
    assert_eq!(r.unwrap_err().code, CloseCode::PROTOCOL);
}

#[test]
fn a_misplaced_data_frame_is_refused_at_its_header() {
    // Only the header of each misplaced frame arrives: the payload is never waited for.
    let header = |first: u8| {
        let mut f = client_frame(first, &[b'a'; 1000]);
        f.truncate(8); // 2 + 2 (length) + 4 (mask)
        f
    };
    let mut text_in_fragments = client_frame(0x01, b"he");
    text_in_fragments.extend(header(0x81));
    let mut binary_in_fragments = client_frame(0x02, b"he");
    binary_in_fragments.extend(header(0x82));
    for (bytes, reason) in [
        (
            text_in_fragments,
            "new message before the previous one ended",
        ),
        (
            binary_in_fragments,
            "new message before the previous one ended",
        ),
        (header(0x80), "continuation without a message"),
    ] {
        let (_, r) = read_all(&[&bytes], 1 << 20);
        let v = r.unwrap_err();
        assert_eq!((v.code, v.reason), (CloseCode::PROTOCOL, reason));
    }
}

#[test]
fn close_frame_yields_code_and_reason() {
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    let (got, r) = read_all(&[&client_frame(0x88, &payload)], 1024);
    r.unwrap();
    assert_eq!(got, vec![Got::Close(Some(1000), "bye".into())]);
}

#[test]
fn close_with_reserved_code_is_a_protocol_error() {
    let (_, r) = read_all(&[&client_frame(0x88, &1005u16.to_be_bytes())], 1024);
    assert_eq!(r.unwrap_err().code, CloseCode::PROTOCOL);
}

#[test]
fn binary_and_pong_pass_through() {
    let mut bytes = client_frame(0x82, &[1, 2, 3]);
    bytes.extend(client_frame(0x8A, b""));
    let (got, r) = read_all(&[&bytes], 1024);
    r.unwrap();
    assert_eq!(got, vec![Got::Binary(vec![1, 2, 3]), Got::Pong]);
}

#[test]
fn reader_releases_a_large_partial_buffer_once_the_frame_completes() {
    let f = client_frame(0x81, &[b'a'; 5000]);
    let mut reader = MessageReader::default();
    let mut count = 0;
    let (a, b) = f.split_at(3000);
    reader
        .feed(&mut a.to_vec(), 10_000, &mut |_| count += 1)
        .unwrap();
    assert!(reader.buffered() >= 3000);
    reader
        .feed(&mut b.to_vec(), 10_000, &mut |_| count += 1)
        .unwrap();
    assert_eq!(count, 1);
    assert_eq!(reader.buffered(), 0);
}

#[test]
fn a_continuation_length_near_2_pow_64_is_refused_not_wrapped() {
    // Issue 13 item 2: `so_far + payload_len` wrapped past the 64 KiB check and the reader then
    // buffered everything that followed. A valid one-byte fragment ("a", zero mask), then a
    // continuation claiming 2^64 - 1 bytes: refused as a protocol error (RFC 6455 §5.2: the
    // top bit of a 64-bit length must be 0) before any sum is formed.
    let mut frame = vec![0x01, 0x81, 0, 0, 0, 0, b'a', 0x80, 0x80 | 127];
    frame.extend_from_slice(&u64::MAX.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    let (got, result) = read_all(&[&frame], 65536);
    assert!(got.is_empty());
    assert_eq!(result.unwrap_err().code, CloseCode::PROTOCOL);
    // With the top bit clear the sum cannot wrap (checked): it is message too big.
    let mut frame = vec![0x01, 0x81, 0, 0, 0, 0, b'a', 0x80, 0x80 | 127];
    frame.extend_from_slice(&(u64::MAX >> 1).to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    let (_, result) = read_all(&[&frame], 65536);
    assert_eq!(result.unwrap_err().code, CloseCode::TOO_BIG);
}

#[test]
fn invalid_utf8_fails_at_the_first_bad_fragment_not_at_the_end() {
    // Autobahn 6.4.x: the message is not final yet, the error must show now.
    let first = client_frame(0x01, "κόσμε".as_bytes());
    let bad = client_frame(0x00, &[0xED, 0xA0, 0x80]); // a surrogate: never valid
    let (got, result) = read_all(&[&first, &bad], 1024);
    assert!(got.is_empty());
    assert_eq!(result.unwrap_err().code, CloseCode::INVALID_DATA);
}

#[test]
fn invalid_utf8_fails_while_a_long_frame_is_still_arriving() {
    let mut payload = vec![b'a'; 300];
    payload[10] = 0xFF;
    let whole = client_frame(0x81, &payload);
    // Only the first 40 bytes have arrived: the bad byte is among them.
    let (got, result) = read_all(&[&whole[..40]], 1024);
    assert!(got.is_empty());
    assert_eq!(result.unwrap_err().code, CloseCode::INVALID_DATA);
}

#[test]
fn a_code_point_split_across_fragments_and_reads_is_valid() {
    let text = "a€b𝄞c";
    let bytes = text.as_bytes();
    // Fragments cut inside the 3-byte and 4-byte code points, each fed a byte at a time.
    let frames = [
        client_frame(0x01, &bytes[..2]),
        client_frame(0x00, &bytes[2..6]),
        client_frame(0x80, &bytes[6..]),
    ];
    let all: Vec<u8> = frames.concat();
    let chunks: Vec<&[u8]> = all.chunks(1).collect();
    let (got, result) = read_all(&chunks, 1024);
    result.unwrap();
    assert_eq!(got, vec![Got::Text(text.into())]);
}

#[test]
fn a_message_ending_inside_a_code_point_is_1007() {
    let (got, result) = read_all(&[&client_frame(0x81, &[b'a', 0xE2, 0x82])], 1024);
    assert!(got.is_empty());
    assert_eq!(result.unwrap_err().code, CloseCode::INVALID_DATA);
}

#[test]
fn a_compressed_message_is_inflated_whole_or_split_into_fragments() {
    let text = r#"{"type":"publish","channel":"pos:1","data":{"x":1.5,"y":2.5,"x2":1.5}}"#;
    let z = deflated(text.as_bytes());
    let (got, r) = read_deflate(&[&client_frame(0xC1, &z)], 1024);
    r.unwrap();
    assert_eq!(got, vec![Got::Text(text.into())]);
    // RSV1 on the first fragment only; a ping may come between fragments.
    let (a, b) = z.split_at(z.len() / 2);
    let stream = [
        client_frame(0x41, a),
        client_frame(0x89, b"p"),
        client_frame(0x80, b),
    ]
    .concat();
    let (got, r) = read_deflate(&[&stream], 1024);
    r.unwrap();
    assert_eq!(got, vec![Got::Ping(b"p".to_vec()), Got::Text(text.into())]);
    // Plain messages mix with compressed ones on one connection.
    let mixed = [
        client_frame(0xC1, &z),
        client_frame(0x81, b"plain"),
        client_frame(0xC1, &z),
    ];
    let (got, r) = read_deflate(&[&mixed.concat()], 1024);
    r.unwrap();
    let plain = Got::Text("plain".into());
    assert_eq!(
        got,
        vec![Got::Text(text.into()), plain, Got::Text(text.into())]
    );
}

#[test]
fn a_compressed_message_is_capped_and_checked_after_inflation() {
    let big = deflated(&[b'a'; 5000]);
    let (_, r) = read_deflate(&[&client_frame(0xC1, &big)], 4096);
    assert_eq!(r.unwrap_err().code, CloseCode::TOO_BIG);
    let not_utf8 = deflated(&[0xff, 0xfe, 0xfd]);
    let (_, r) = read_deflate(&[&client_frame(0xC1, &not_utf8)], 4096);
    assert_eq!(r.unwrap_err().code, CloseCode::INVALID_DATA);
    let (_, r) = read_deflate(&[&client_frame(0xC1, b"\xff\xff\xff\xff")], 4096);
    assert_eq!(r.unwrap_err().code, CloseCode::INVALID_DATA);
    // Without the extension, RSV1 is a protocol error.
    let (_, r) = read_all(&[&client_frame(0xC1, &big)], 4096);
    assert_eq!(r.unwrap_err().code, CloseCode::PROTOCOL);
}
