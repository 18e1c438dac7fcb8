//! What the shard does with a client's native-protocol messages: parse (simd-json), check,
//! act on the shard's topics or the distributor's ingress, and queue the reply.

use std::sync::Arc;

use bytes::Bytes;
use simd_json::Buffers;

use super::table::Session;
use crate::config::limits::MAX_SUBSCRIPTIONS_PER_CONN;
use crate::conn::Outbox;
use crate::distributor::{Ingress, Publication, PublishError};
use crate::driver::Slot;
use crate::fanout::Topics;
use crate::wire::command::{self, Command, ErrorCode};
use crate::wire::reply;

/// Everything a message handler may touch.
pub struct Context<'a> {
    /// This shard's index.
    pub shard: usize,
    /// The connection's slot.
    pub slot: Slot,
    /// The connection's subscriptions.
    pub session: &'a mut Session,
    /// This shard's topics.
    pub topics: &'a mut Topics,
    /// The way into the distributor.
    pub ingress: &'a Ingress,
    /// simd-json's reusable buffers.
    pub scratch: &'a mut Buffers,
    /// Frame clock rate, announced in `connected`.
    pub tick_hz: u32,
    /// Channels every connection joins on connect.
    pub default_channels: &'a [String],
    /// Welcome notification text.
    pub welcome: Option<&'a str>,
}

/// The built-in channel carrying connect and disconnect events.
pub const CONNECTIONS_CHANNEL: &str = "connections";

/// Greets a freshly upgraded connection: `connected`, the optional welcome notification, the
/// default subscriptions, and a `connect` event on the `connections` channel.
pub fn on_open(ctx: &mut Context<'_>, outbox: &mut Outbox) {
    let id = ctx.session.client_id.to_string();
    outbox.push_unchecked(reply::connected(&id, None, ctx.tick_hz));
    if let Some(text) = ctx.welcome {
        outbox.push_unchecked(reply::notification(text, "info"));
    }
    for name in ctx.default_channels {
        add_subscription(ctx, name);
    }
    connection_event(
        ctx.ingress,
        ctx.shard,
        &ctx.session.client_id,
        "connect",
        None,
    );
}

/// Publishes a `connect`/`disconnect` event on the `connections` channel.
pub fn connection_event(
    ingress: &Ingress,
    shard: usize,
    client_id: &uuid::Uuid,
    kind: &str,
    reason: Option<&str>,
) {
    let data = serde_json::json!({
        "client_id": client_id.to_string(),
        "user_id": null,
        "shard": shard,
        "reason": reason,
    });
    let _ = ingress.publish_json(CONNECTIONS_CHANNEL, kind, data.to_string().into_bytes());
}

/// Handles one client message.
pub fn on_message(ctx: &mut Context<'_>, outbox: &mut Outbox, message: &mut [u8]) {
    let request = match command::parse(message, ctx.scratch) {
        Ok(r) => r,
        Err(e) => return outbox.push_unchecked(reply::command_error(&e)),
    };
    let id = request.id.as_deref();
    let frame = match request.command {
        Command::Subscribe(channels) => subscribe(ctx, &channels, id),
        Command::Unsubscribe(channels) => {
            for name in &channels {
                unsubscribe(ctx, name);
            }
            let names: Vec<&str> = channels.iter().map(String::as_str).collect();
            reply::subscription_change("unsubscribed", &names, id)
        }
        Command::Publish {
            channel,
            event_type,
            data,
        } => {
            let publication = Publication {
                channel: Arc::from(channel.as_str()),
                event_type: Bytes::from(serde_json::to_vec(&event_type).expect("a str serializes")),
                data: Bytes::from(data),
            };
            match ctx.ingress.publish(publication) {
                Ok(()) if id.is_some() => reply::published(&channel, id),
                Ok(()) => return,
                Err(PublishError::Overloaded) => reply::error(
                    ErrorCode::Overloaded,
                    "server overloaded, publish again later",
                    id,
                ),
                Err(e) => reply::error(ErrorCode::Overloaded, &e.to_string(), id),
            }
        }
        Command::Ping { ping_id } => reply::pong(ping_id.as_deref(), id),
        Command::GetSubscriptions => {
            let names: Vec<&str> = ctx.session.channels.iter().map(|c| &**c).collect();
            reply::subscriptions(&names, id)
        }
    };
    outbox.push_unchecked(frame);
}

fn subscribe(ctx: &mut Context<'_>, channels: &[String], id: Option<&str>) -> Bytes {
    let new = channels
        .iter()
        .filter(|c| !ctx.session.channels.iter().any(|s| &**s == c.as_str()))
        .count();
    if ctx.session.channels.len() + new > MAX_SUBSCRIPTIONS_PER_CONN {
        return reply::error(
            ErrorCode::LimitExceeded,
            &format!("at most {MAX_SUBSCRIPTIONS_PER_CONN} subscriptions per connection"),
            id,
        );
    }
    for name in channels {
        add_subscription(ctx, name);
    }
    let names: Vec<&str> = channels.iter().map(String::as_str).collect();
    reply::subscription_change("subscribed", &names, id)
}

fn add_subscription(ctx: &mut Context<'_>, name: &str) {
    if ctx.session.channels.iter().any(|s| &**s == name) {
        return;
    }
    let (interned, local) = ctx.topics.subscribe(name, ctx.slot);
    ctx.ingress
        .subscribers(ctx.shard, interned.clone(), 1, local);
    ctx.session.channels.push(interned);
}

/// Removes one subscription of the connection (no-op if absent).
pub fn unsubscribe(ctx: &mut Context<'_>, name: &str) {
    let Some(i) = ctx.session.channels.iter().position(|s| &**s == name) else {
        return;
    };
    let interned = ctx.session.channels.swap_remove(i);
    let left = ctx.topics.unsubscribe(name, ctx.slot);
    ctx.ingress.subscribers(ctx.shard, interned, -1, left);
}

/// Removes every subscription of a closing connection.
pub fn unsubscribe_all(
    shard: usize,
    slot: Slot,
    session: &mut Session,
    topics: &mut Topics,
    ingress: &Ingress,
) {
    for name in session.channels.drain(..) {
        let left = topics.unsubscribe(&name, slot);
        ingress.subscribers(shard, name, -1, left);
    }
}
