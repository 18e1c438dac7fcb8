use super::*;

fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [9, 8, 7, 6];
    let mut v = vec![first];
    match payload.len() {
        n @ 0..=125 => v.push(0x80 | n as u8),
        n => {
            v.push(0x80 | 126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    v.extend_from_slice(&mask);
    v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    v
}

#[derive(Debug, PartialEq)]
enum Got {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    Close(Option<u16>, String),
}

fn read_all(chunks: &[&[u8]], max: usize) -> (Vec<Got>, Result<(), Violation>) {
    let mut reader = MessageReader::default();
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
    let f = frame(0x81, b"hello, framecast");
    for cut in 0..=f.len() {
        let (got, r) = read_all(&[&f[..cut], &f[cut..]], 1024);
        r.unwrap();
        assert_eq!(got, vec![Got::Text("hello, framecast".into())], "cut {cut}");
    }
}

#[test]
fn fragmented_message_is_reassembled_around_a_ping() {
    let mut bytes = frame(0x01, b"hel");
    bytes.extend(frame(0x89, b"p"));
    bytes.extend(frame(0x00, b"lo "));
    bytes.extend(frame(0x80, b"world"));
    let (got, r) = read_all(&[&bytes], 1024);
    r.unwrap();
    assert_eq!(
        got,
        vec![Got::Ping(b"p".to_vec()), Got::Text("hello world".into())]
    );
}

#[test]
fn invalid_utf8_text_is_1007() {
    let (_, r) = read_all(&[&frame(0x81, &[0xff, 0xfe])], 1024);
    assert_eq!(r.unwrap_err().code, CloseCode::INVALID_DATA);
}

#[test]
fn message_over_the_limit_is_1009_even_when_fragmented() {
    let (_, r) = read_all(&[&frame(0x82, &[0; 200])], 100);
    assert_eq!(r.unwrap_err().code, CloseCode::TOO_BIG);
    let mut bytes = frame(0x02, &[0; 60]);
    bytes.extend(frame(0x80, &[0; 60]));
    let (_, r) = read_all(&[&bytes], 100);
    assert_eq!(r.unwrap_err().code, CloseCode::TOO_BIG);
}

#[test]
fn continuation_without_start_is_a_protocol_error() {
    let (_, r) = read_all(&[&frame(0x80, b"x")], 1024);
    assert_eq!(r.unwrap_err().code, CloseCode::PROTOCOL);
}

#[test]
fn close_frame_yields_code_and_reason() {
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    let (got, r) = read_all(&[&frame(0x88, &payload)], 1024);
    r.unwrap();
    assert_eq!(got, vec![Got::Close(Some(1000), "bye".into())]);
}

#[test]
fn close_with_reserved_code_is_a_protocol_error() {
    let (_, r) = read_all(&[&frame(0x88, &1005u16.to_be_bytes())], 1024);
    assert_eq!(r.unwrap_err().code, CloseCode::PROTOCOL);
}

#[test]
fn binary_and_pong_pass_through() {
    let mut bytes = frame(0x82, &[1, 2, 3]);
    bytes.extend(frame(0x8A, b""));
    let (got, r) = read_all(&[&bytes], 1024);
    r.unwrap();
    assert_eq!(got, vec![Got::Binary(vec![1, 2, 3]), Got::Pong]);
}

#[test]
fn reader_releases_a_large_partial_buffer_once_the_frame_completes() {
    let f = frame(0x81, &[b'a'; 5000]);
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
