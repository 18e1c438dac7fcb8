//! The client JSON command parser (`wire::command::parse`), fed what a connection hands up: the
//! payload of a whole text or binary message (binary is not UTF-8 checked).
//!
//! Input: the message payload, as is.
//! Checks, besides no panic or stack overflow: whatever the parser passes on as raw JSON (`id`,
//! `ping_id`, a publish's `data`) is valid JSON, since it is spliced into replies and event frames
//! unchanged; channel names and keys obey their rules; and the reply frame the shard would send
//! (the error, pong, published, ... reply and the subscribers' event frame) is a text frame
//! holding valid JSON.
#![no_main]

use bytes::BytesMut;
use framecast::internals::wire::channel;
use framecast::internals::wire::command::{self, Command, MAX_KEY_BYTES};
use framecast::internals::wire::event::{put_event_frame, EventFields};
use framecast::internals::wire::{reply, WallTime};
use libfuzzer_sys::fuzz_target;

#[path = "common/mod.rs"]
mod common;
use common::{assert_json, assert_text_json_frame};

/// The wall-clock time the replies are encoded at.
const AT: WallTime = WallTime::from_unix_ms(1_800_000_000_000);

fuzz_target!(|data: &[u8]| {
    if data.len() > common::MAX_MESSAGE_BYTES {
        return; // the reader closes with 1009 before a message this big is handed up
    }
    let parsed = command::parse(data);
    let request = match parsed {
        Err(e) => {
            if let Some(id) = &e.id {
                assert_json("error id", id.as_bytes());
            }
            assert_text_json_frame("error reply", &reply::command_error(&e));
            return;
        }
        Ok(r) => r,
    };
    let id = request.id.as_deref();
    if let Some(id) = id {
        assert_json("id", id.as_bytes());
    }
    let frame = match &request.command {
        Command::Subscribe(args) => {
            for c in args
                .channels
                .iter()
                .chain(args.since.iter().map(|(c, _)| c))
            {
                assert!(channel::is_valid(c), "invalid channel passed: {c:?}");
            }
            assert!(args.max_hz != Some(0));
            let names: Vec<&str> = args.channels.iter().map(String::as_str).collect();
            let positions: Vec<reply::Position<'_>> = args
                .since
                .iter()
                .map(|(c, p)| reply::Position {
                    channel: c,
                    seq: p.seq,
                    epoch: &p.epoch,
                    recovered: Some(true),
                    traits: reply::ChannelTraits {
                        delivery: "reliable",
                        history: 0,
                        snapshot: false,
                        echo: true,
                        rate_hz: 60,
                    },
                    snapshot_events: 0,
                    replay_events: 0,
                })
                .collect();
            reply::subscribed(AT, &names, &positions, reply::SubscribedTo::Request(id))
        }
        Command::Unsubscribe(list) => {
            for c in list {
                assert!(channel::is_valid(c), "invalid channel passed: {c:?}");
            }
            let names: Vec<&str> = list.iter().map(String::as_str).collect();
            reply::subscription_change(AT, "unsubscribed", &names, id)
        }
        Command::Publish {
            channel: ch,
            event_type,
            data,
            key,
            binary,
        } => {
            assert!(channel::is_valid(ch), "invalid channel passed: {ch:?}");
            if !binary {
                assert_json("publish data", data);
            }
            if let Some(k) = key {
                assert!(!k.is_empty() && k.len() <= MAX_KEY_BYTES);
            }
            // What every subscriber receives, encoded as the distributor does.
            let event_type = serde_json::to_vec(event_type).unwrap();
            let key = key
                .as_deref()
                .map(framecast::internals::distributor::ingress::json_key);
            let mut out = BytesMut::new();
            let n = put_event_frame(
                &mut out,
                &EventFields {
                    channel: ch,
                    seq: 1,
                    frame: 1,
                    timestamp: "2026-01-01T00:00:00.000Z",
                    unix_ms: 0,
                    event_type: &event_type,
                    data,
                    key: key.as_deref(),
                    snapshot: false,
                    binary: *binary,
                },
            );
            assert_eq!(n, out.len());
            assert_text_json_frame("event frame", &out);
            reply::published(ch, Some(1), 1, id)
        }
        Command::Ping { ping_id } => {
            if let Some(p) = ping_id {
                assert_json("ping_id", p.as_bytes());
            }
            reply::pong(AT, ping_id.as_deref(), id)
        }
        Command::GetSubscriptions => reply::subscriptions(&[], id),
        Command::Auth { token, .. } => {
            reply::authenticated(AT, &token.chars().take(50).collect::<String>(), None, id)
        }
    };
    assert_text_json_frame("reply", &frame);
});
