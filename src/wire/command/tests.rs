use super::*;

fn parse_str(s: &str) -> Result<Request, CommandError> {
    parse(s.as_bytes())
}

#[test]
fn subscribe_with_channels_list() {
    let r = parse_str(r#"{"type":"subscribe","channels":["a","b"],"id":7}"#).unwrap();
    assert_eq!(
        r.command,
        Command::Subscribe(SubscribeArgs::channels(vec!["a".into(), "b".into()]))
    );
    assert_eq!(r.id.as_deref(), Some("7"));
}

#[test]
fn subscribe_with_seed_data_events_form() {
    let r = parse_str(r#"{"type":"subscribe","data":{"events":["system.status"]}}"#).unwrap();
    assert_eq!(
        r.command,
        Command::Subscribe(SubscribeArgs::channels(vec!["system.status".into()]))
    );
}

#[test]
fn publish_keeps_data_as_json_text() {
    let r =
        parse_str(r#"{"type":"publish","channel":"a","event_type":"x","data":{"k":[1,2,"s"]}}"#)
            .unwrap();
    match r.command {
        Command::Publish {
            channel,
            event_type,
            data,
            key,
            binary,
        } => {
            assert!(key.is_none() && !binary);
            assert_eq!(channel, "a");
            assert_eq!(event_type, "x");
            let v: serde_json::Value = serde_json::from_slice(&data).unwrap();
            assert_eq!(v, serde_json::json!({"k":[1,2,"s"]}));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn subscribe_reads_since_positions_and_max_hz() {
    let r = parse_str(
        r#"{"type":"subscribe","channels":["a"],"since":{"a":{"seq":120,"epoch":"e1"}},"max_hz":20}"#,
    )
    .unwrap();
    let Command::Subscribe(args) = r.command else {
        panic!("not a subscribe")
    };
    assert_eq!(
        args.since,
        vec![(
            "a".to_string(),
            StreamPosition {
                seq: 120,
                epoch: "e1".into()
            }
        )]
    );
    assert_eq!(args.max_hz, Some(20));
}

#[test]
fn malformed_since_or_max_hz_is_invalid_field() {
    for bad in [
        r#"{"type":"subscribe","channels":["a"],"since":{"a":{"seq":"x","epoch":"e"}}}"#,
        r#"{"type":"subscribe","channels":["a"],"since":[1]}"#,
        r#"{"type":"subscribe","channels":["a"],"max_hz":0}"#,
        r#"{"type":"publish","channel":"a","data":1,"key":5}"#,
    ] {
        assert_eq!(
            parse_str(bad).unwrap_err().code,
            ErrorCode::InvalidField,
            "{bad}"
        );
    }
}

#[test]
fn ping_echoes_its_id() {
    let r = parse_str(r#"{"type":"ping","ping_id":"p1"}"#).unwrap();
    assert_eq!(
        r.command,
        Command::Ping {
            ping_id: Some("\"p1\"".into())
        }
    );
}

#[test]
fn not_json_is_invalid_json() {
    assert_eq!(parse_str("{nope").unwrap_err().code, ErrorCode::InvalidJson);
    assert_eq!(parse_str("[1,2]").unwrap_err().code, ErrorCode::InvalidJson);
}

#[test]
fn unknown_type_keeps_the_id() {
    let e = parse_str(r#"{"type":"dance","id":"r1"}"#).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownType);
    assert_eq!(e.id.as_deref(), Some("\"r1\""));
}

#[test]
fn missing_fields_are_named() {
    assert_eq!(
        parse_str(r#"{"channels":["a"]}"#).unwrap_err().code,
        ErrorCode::MissingField
    );
    assert_eq!(
        parse_str(r#"{"type":"subscribe"}"#).unwrap_err().code,
        ErrorCode::MissingField
    );
    let e = parse_str(r#"{"type":"publish","channel":"a"}"#).unwrap_err();
    assert_eq!(e.code, ErrorCode::MissingField);
    assert!(e.message.contains("data"));
}

#[test]
fn bad_channel_names_are_invalid_channel() {
    assert_eq!(
        parse_str(r#"{"type":"subscribe","channels":["bad name"]}"#)
            .unwrap_err()
            .code,
        ErrorCode::InvalidChannel
    );
    assert_eq!(
        parse_str(r#"{"type":"publish","channel":"","data":1}"#)
            .unwrap_err()
            .code,
        ErrorCode::InvalidChannel
    );
    assert_eq!(
        parse_str(r#"{"type":"subscribe","channels":[5]}"#)
            .unwrap_err()
            .code,
        ErrorCode::InvalidChannel
    );
}

#[test]
fn publish_data_is_kept_byte_for_byte() {
    // Floats that a lossy parser would change, integers beyond 64 bits, escapes, spacing.
    let data = r#"{ "x":1.1099999999999999, "n":123456789012345678901234567890, "s":"\u00e9\n", "k":1, "k":2 }"#;
    let msg = format!(r#"{{"type":"publish","channel":"a","data":{data}}}"#);
    let Command::Publish { data: got, .. } = parse_str(&msg).unwrap().command else {
        panic!("not a publish")
    };
    assert_eq!(std::str::from_utf8(&got).unwrap(), data);
}

#[test]
fn deep_nesting_is_invalid_json_not_a_crash() {
    let mut msg = r#"{"type":"publish","channel":"a","data":"#.to_string();
    msg.push_str(&"[".repeat(5000));
    let e = parse_str(&msg).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidJson);
    assert!(
        e.message.contains("nested deeper than 128"),
        "{}",
        e.message
    );
    let objects = "{\"a\":".repeat(5000);
    assert_eq!(
        parse_str(&objects).unwrap_err().code,
        ErrorCode::InvalidJson
    );
}

#[test]
fn a_field_given_twice_is_refused_with_its_name() {
    let e = parse_str(r#"{"type":"publish","channel":"a","channel":"b","data":1}"#).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidJson);
    assert!(
        e.message.contains("`channel` appears twice"),
        "{}",
        e.message
    );
}

#[test]
fn a_channel_named_many_times_counts_once() {
    let list = vec!["\"a\""; 13_000].join(",");
    let r = parse_str(&format!(
        r#"{{"type":"subscribe","channels":[{list},"b"]}}"#
    ))
    .unwrap();
    assert_eq!(
        r.command,
        Command::Subscribe(SubscribeArgs::channels(vec!["a".into(), "b".into()]))
    );
}

#[test]
fn not_json_says_a_json_object_was_expected() {
    let e = parse_str("not json").unwrap_err();
    assert_eq!(
        e.message,
        "message must be a JSON object, got `not` at byte 0"
    );
}

#[test]
fn ids_are_echoed_as_sent() {
    let r =
        parse_str(r#"{"type":"ping","id":{"n":1.10},"ping_id":12345678901234567890123}"#).unwrap();
    assert_eq!(r.id.as_deref(), Some(r#"{"n":1.10}"#));
    assert_eq!(
        r.command,
        Command::Ping {
            ping_id: Some("12345678901234567890123".into())
        }
    );
}

#[test]
fn a_long_list_of_channels_keeps_first_occurrences_in_order_and_counts_each_once() {
    // 8,000 distinct names (a 64 KiB message's worth) plus every one repeated: deduplication is
    // linear (a quadratic scan of this list took ~0.1 s of shard time per message, before auth).
    let names: Vec<String> = (0..8000).map(|i| format!("c{i}")).collect();
    let mut list = names.clone();
    list.extend(names.iter().rev().cloned());
    let msg = serde_json::json!({"type":"subscribe","channels":list}).to_string();
    match parse_str(&msg).unwrap().command {
        Command::Subscribe(args) => assert_eq!(args.channels, names),
        other => panic!("{other:?}"),
    }
}
