//! What the shard does with a client's native-protocol messages: parse, check,
//! act on the shard's topics or the distributor's ingress, and queue the reply.

use std::sync::Arc;

use bytes::Bytes;

use crate::auth::Policy;
use crate::conn::Outbox;
use crate::conn::{CloseReason, UpgradeRequest};
use crate::conn_id::{ConnId, Slot};
use crate::distributor::{AckTo, Form, JoinReply, JoinRequest};
use crate::distributor::{Ingress, Origin, Publication, PublishError};
use crate::fanout::Topics;
use crate::limits::MAX_RATE_LEVEL;
use crate::protocol::message::CloseCode;
use crate::table::RateBucket;
use crate::table::{Session, SubState, Subscription};
use crate::wire::command::{self, Command, ErrorCode, Refusal};
use crate::wire::command::{StreamPosition, SubscribeArgs};
use crate::wire::WallTime;
use crate::wire::{compat, reply};

/// Everything a message handler may touch.
pub struct Context<'a> {
    /// This shard's index.
    pub shard: usize,
    /// The connection.
    pub conn: ConnId,
    /// The connection's subscriptions.
    pub session: &'a mut Session,
    /// The connection agreed to permessage-deflate.
    pub deflate: bool,
    /// This shard's topics.
    pub topics: &'a mut Topics,
    /// The way into the distributor.
    pub ingress: &'a Ingress,
    /// Frame clock rate, announced in `connected` (0 = immediate mode).
    pub tick_hz: u32,
    /// Channels every connection joins on connect.
    pub default_channels: &'a [String],
    /// Welcome notification text.
    pub welcome: Option<&'a str>,
    /// Who may do what.
    pub policy: &'a Policy,
    /// Time to authenticate when a token is required.
    pub auth_timeout: std::time::Duration,
    /// The loop turn's time.
    pub now: std::time::Instant,
    /// The loop turn's wall-clock time (token expiry, `timestamp` fields).
    pub wall: WallTime,
    /// Set to close the connection after this message.
    pub close: &'a mut Option<CloseOrder>,
    /// Set to move the connection's auth deadline after this message.
    pub auth: &'a mut Option<AuthTimer>,
}

pub use crate::conn::{AuthExpiry, AuthTimer, CloseOrder};

/// The auth deadline for `identity`'s token: its expiry, converted from wall-clock seconds to
/// the loop's monotonic time, or none.
fn token_timer(ctx: &Context<'_>, identity: &crate::auth::Identity) -> AuthTimer {
    match identity.expires_at {
        Some(exp) => {
            let left = std::time::Duration::from_secs(exp.saturating_sub(ctx.wall.unix_secs()));
            AuthTimer::Until(ctx.now + left, AuthExpiry::TokenExpired)
        }
        None => AuthTimer::Stop,
    }
}

/// The value of `name` in an upgrade URL's query string, as sent (still percent-encoded).
fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// `?since=` on the upgrade: percent-encoded JSON `{channel: {seq, epoch}}`, where a
/// reconnecting client left its default channels.
fn query_since(query: &str) -> Result<Vec<(String, StreamPosition)>, String> {
    let Some(raw) = query_param(query, "since") else {
        return Ok(Vec::new());
    };
    let text = crate::http::routes::percent_decode(raw)
        .ok_or_else(|| "query parameter `since` is not valid percent-encoding".to_string())?;
    command::since_from_json(text.as_bytes()).map_err(|refusal| refusal.message)
}

/// Checks an upgrade before the 101: browser origin, `?since=`, `?batch=` and `?binary=`, then a token from
/// `?token=` or `Authorization: Bearer`. A bad token refuses the upgrade with 401; no token on a server that
/// requires one starts the `auth_timeout` clock.
pub fn on_upgrade(ctx: &mut Context<'_>, req: &mut UpgradeRequest) {
    if !ctx.policy.origin_allowed(req.origin.as_deref()) {
        req.refuse(403, "origin not allowed");
        return;
    }
    match req.query.as_deref().map(query_since) {
        Some(Err(message)) => {
            req.refuse(400, message);
            return;
        }
        Some(Ok(since)) if !since.is_empty() => ctx.session.defaults_since = Some(since.into()),
        _ => {}
    }
    for (name, flag) in [
        ("batch", &mut ctx.session.batch),
        ("binary", &mut ctx.session.binary),
    ] {
        match req.query.as_deref().and_then(|q| query_param(q, name)) {
            None | Some("0" | "false") => {}
            Some("1" | "true") => *flag = true,
            Some(_) => {
                req.refuse(400, format!("query parameter `{name}` must be 1 or 0"));
                return;
            }
        }
    }
    let token = req
        .query
        .as_deref()
        .and_then(|q| query_param(q, "token"))
        .or_else(|| {
            req.authorization
                .as_deref()
                .and_then(|a| a.strip_prefix("Bearer "))
                .map(str::trim)
        });
    match token.map(|t| ctx.policy.verify(t, ctx.wall.unix_secs())) {
        Some(Ok(identity)) => {
            *ctx.auth = Some(token_timer(ctx, &identity));
            ctx.session.identity = Some(Box::new(identity));
        }
        Some(Err(crate::auth::AuthError::NoKey)) if ctx.policy.anonymous => {}
        Some(Err(e)) => req.refuse(401, e.to_string()),
        None if !ctx.policy.anonymous => {
            let at = ctx.now + ctx.auth_timeout;
            *ctx.auth = Some(AuthTimer::Until(at, AuthExpiry::Timeout));
        }
        None => {}
    }
}

/// The built-in channel carrying connect and disconnect events.
pub const CONNECTIONS_CHANNEL: &str = "connections";

/// The token's expiry in Unix milliseconds, as `connected` and `authenticated` report it.
fn expires_at_ms(identity: Option<&crate::auth::Identity>) -> Option<u64> {
    identity?.expires_at.map(|s| s.saturating_mul(1000))
}

/// Greets a freshly upgraded connection: `connected`, the optional welcome notification, the
/// default subscriptions (now, or after the first `auth` if the connection must authenticate),
/// and a `connect` event on the `connections` channel.
pub fn on_open(ctx: &mut Context<'_>, outbox: &mut Outbox) {
    let id = ctx.session.client_id.to_string();
    let identity = ctx.session.identity.as_deref();
    let user = identity.map(|i| i.user_id.clone());
    outbox.push_unchecked(reply::connected(&reply::Greeting {
        at: ctx.wall,
        client_id: &id,
        user_id: user.as_deref(),
        tick_hz: ctx.tick_hz,
        expires_at_ms: expires_at_ms(identity),
        auth_required: identity.is_none() && !ctx.policy.anonymous,
        batch: ctx.session.batch,
        binary: ctx.session.binary,
    }));
    if let Some(text) = ctx.welcome {
        outbox.push_unchecked(compat::welcome(ctx.wall, text));
    }
    if ctx.session.identity.is_some() || ctx.policy.anonymous {
        let since = ctx.session.defaults_since.take().map(Vec::from);
        join_defaults(ctx, since.unwrap_or_default());
    }
    let client_id = ctx.session.client_id;
    connection_event(
        ctx.ingress,
        ctx.shard,
        &client_id,
        user.as_deref(),
        "connect",
        None,
    );
}

/// Joins the `default_channels` the connection may subscribe to, once per connection, resuming
/// from `since` where given; answered with `subscribed` marked `"default":true`.
fn join_defaults(ctx: &mut Context<'_>, since: Vec<(String, StreamPosition)>) {
    if std::mem::replace(&mut ctx.session.defaults_joined, true) {
        return;
    }
    let defaults: Vec<String> = ctx
        .default_channels
        .iter()
        .filter(|name| {
            ctx.policy
                .can_subscribe(ctx.session.identity.as_deref(), name)
        })
        .cloned()
        .collect();
    if !defaults.is_empty() {
        let args = SubscribeArgs {
            channels: defaults,
            since,
            max_hz: None,
        };
        join(ctx, &args, None, JoinReply::Defaults);
    }
}

/// Publishes a `connect`/`disconnect` event on the `connections` channel.
pub fn connection_event(
    ingress: &Ingress,
    shard: usize,
    client_id: &uuid::Uuid,
    user_id: Option<&str>,
    kind: &str,
    reason: Option<&str>,
) {
    let data = serde_json::json!({
        "client_id": client_id.to_string(),
        "user_id": user_id,
        "shard": shard,
        "reason": reason,
    });
    let _ = ingress.publish_json(CONNECTIONS_CHANNEL, kind, data.to_string().into_bytes());
}

/// Handles one client message.
pub fn on_message(ctx: &mut Context<'_>, outbox: &mut Outbox, message: &mut [u8]) {
    let request = match command::parse(message) {
        Ok(r) => r,
        Err(e) => return push_reply(ctx, outbox, reply::command_error(&e)),
    };
    let id = request.id.as_deref();
    let unauthenticated = ctx.session.identity.is_none() && !ctx.policy.anonymous;
    let frame = match request.command {
        Command::Auth { token, since } => match ctx.policy.verify(&token, ctx.wall.unix_secs()) {
            Ok(identity) => {
                let frame = reply::authenticated(
                    ctx.wall,
                    &identity.user_id,
                    expires_at_ms(Some(&identity)),
                    id,
                );
                *ctx.auth = Some(token_timer(ctx, &identity));
                ctx.session.identity = Some(Box::new(identity));
                push_reply(ctx, outbox, frame);
                // The first successful auth admits the connection to its default channels.
                let since = match since.is_empty() {
                    true => ctx.session.defaults_since.take().map(Vec::from),
                    false => Some(since),
                };
                join_defaults(ctx, since.unwrap_or_default());
                return;
            }
            Err(e) => {
                *ctx.close = Some(CloseOrder {
                    code: CloseCode::UNAUTHORIZED,
                    text: if e == crate::auth::AuthError::Expired {
                        "token expired"
                    } else {
                        "invalid token"
                    },
                    reason: CloseReason::AuthFailed,
                });
                return;
            }
        },
        Command::Ping { ping_id } => reply::pong(ctx.wall, ping_id.as_deref(), id),
        _ if unauthenticated => reply::error(
            ErrorCode::Unauthorized,
            "authenticate first: {\"type\":\"auth\",\"token\":\"<jwt>\"}",
            id,
        ),
        Command::Subscribe(args) => match subscribe(ctx, &args, id) {
            Some(refusal) => refusal,
            None => return, // `subscribed` comes with the distributor's answer
        },
        Command::Unsubscribe(channels) => {
            for name in &channels {
                unsubscribe(ctx, name);
            }
            let names: Vec<&str> = channels.iter().map(String::as_str).collect();
            reply::subscription_change(ctx.wall, "unsubscribed", &names, id)
        }
        Command::Publish {
            channel,
            event_type,
            data,
            key,
            binary,
        } => match publish(
            ctx,
            &channel,
            &event_type,
            (data, binary),
            key.as_deref(),
            id,
        ) {
            Ok(()) => return, // with an `id`, `published` comes with the tick that numbers it
            Err(refusal) => reply::refusal(&refusal, id),
        },
        Command::GetSubscriptions => reply::subscriptions(&ctx.session.held_names(), id),
    };
    push_reply(ctx, outbox, frame);
}

/// Queues a reply, behind any `subscribe` still waiting for the distributor's answer.
fn push_reply(ctx: &mut Context<'_>, outbox: &mut Outbox, frame: Bytes) {
    if let Some(frame) = ctx.session.hold(frame) {
        outbox.push_unchecked(frame);
    }
}

fn publish(
    ctx: &mut Context<'_>,
    channel: &str,
    event_type: &str,
    (data, binary): (Vec<u8>, bool),
    key: Option<&str>,
    id: Option<&str>,
) -> Result<(), Refusal> {
    if !ctx
        .policy
        .can_publish(ctx.session.identity.as_deref(), channel)
    {
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            format!("not allowed to publish to `{channel}`"),
        ));
    }
    let namespace = ctx.policy.namespace(channel);
    if namespace.publish_rate > 0 {
        rate_limit(ctx, channel, namespace.publish_rate)?;
    }
    let publication = Publication {
        origin: Some(Origin {
            shard: ctx.shard as u32,
            conn: ctx.conn,
        }),
        channel: Arc::from(channel),
        event_type: Bytes::from(serde_json::to_vec(event_type).expect("a str serializes")),
        data: Bytes::from(data),
        binary,
        key: key.map(crate::distributor::ingress::json_key),
        ack: id.map(|id| Box::new(AckTo::Client { id: id.into() })),
        committed: None,
    };
    ctx.ingress.publish(publication).map_err(publish_refusal)
}

/// What a client is told when the ingress refuses its publication: each [`PublishError`] with
/// its own code (a new variant must choose one here).
fn publish_refusal(e: PublishError) -> Refusal {
    let code = match e {
        PublishError::Overloaded => {
            return Refusal::new(
                ErrorCode::Overloaded,
                "server overloaded, publish again later",
            )
        }
        PublishError::Stopped => {
            return Refusal::new(
                ErrorCode::Unavailable,
                "server is shutting down, publish again once reconnected",
            )
        }
        PublishError::InvalidChannel(_) => ErrorCode::InvalidChannel,
        PublishError::InvalidData(_) | PublishError::BinaryEventType(_) => ErrorCode::InvalidField,
    };
    Refusal::new(code, e.to_string())
}

/// Token bucket per connection and namespace; sustained abuse (more refusals in one second than
/// the rate itself, at least 10) closes the connection with 1008.
fn rate_limit(ctx: &mut Context<'_>, channel: &str, rate: u32) -> Result<(), Refusal> {
    let ns = crate::wire::channel::namespace(channel);
    let now = ctx.now;
    let rate_f = f64::from(rate);
    let i = match ctx.session.rates.iter().position(|b| b.namespace == ns) {
        Some(i) => i,
        None => {
            ctx.session.rates.push(RateBucket {
                namespace: ns.to_string(),
                tokens: rate_f,
                last: now,
                strikes: 0,
                window: now,
            });
            ctx.session.rates.len() - 1
        }
    };
    let b = &mut ctx.session.rates[i];
    b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * rate_f).min(rate_f);
    b.last = now;
    if b.tokens >= 1.0 {
        b.tokens -= 1.0;
        return Ok(());
    }
    if now.duration_since(b.window) >= std::time::Duration::from_secs(1) {
        b.window = now;
        b.strikes = 0;
    }
    b.strikes += 1;
    if b.strikes > rate.max(10) {
        *ctx.close = Some(CloseOrder {
            code: CloseCode::POLICY,
            text: "publish rate limit abused",
            reason: CloseReason::Abuse,
        });
    }
    Err(Refusal::new(
        ErrorCode::RateLimited,
        format!("at most {rate} publications per second in namespace `{ns}`"),
    ))
}

/// Checks a subscribe; on success asks the distributor to join the new channels and returns
/// `None` (the reply follows its answer), else returns the refusal.
fn subscribe(ctx: &mut Context<'_>, args: &SubscribeArgs, id: Option<&str>) -> Option<Bytes> {
    let channels = &args.channels;
    if let Some(name) = channels
        .iter()
        .find(|c| !ctx.policy.can_subscribe(ctx.session.identity.as_deref(), c))
    {
        return Some(reply::error(
            ErrorCode::Forbidden,
            &format!("not allowed to subscribe to `{name}`"),
            id,
        ));
    }
    let held = |name: &str| {
        ctx.session
            .channels
            .iter()
            .any(|s| s.held() && *s.name == *name)
    };
    let new = channels.iter().filter(|c| !held(c)).count();
    let max = ctx.policy.max_subscriptions;
    let holding = ctx.session.channels.iter().filter(|s| s.held()).count();
    if holding + new > max {
        return Some(reply::error(
            ErrorCode::LimitExceeded,
            &format!("at most {max} subscriptions per connection"),
            id,
        ));
    }
    // max_channels is enforced by the distributor, which owns the registry (exact under any
    // load): a refused join comes back as LIMIT_EXCEEDED.
    join(ctx, args, id, JoinReply::Subscribe);
    None
}

/// The rate level that keeps a conflated channel at or under `max_hz` on a `tick_hz` clock.
pub fn rate_floor(tick_hz: u32, max_hz: Option<u32>) -> u8 {
    let (Some(max), true) = (max_hz, tick_hz > 0) else {
        return 0;
    };
    (0..=MAX_RATE_LEVEL)
        .find(|&l| tick_hz >> l <= max)
        .unwrap_or(MAX_RATE_LEVEL)
}

/// Records the channels not yet subscribed as joining and asks the distributor for them; the
/// answer is a `subscribed` of kind `reply`, and replies to later commands wait behind it.
fn join(ctx: &mut Context<'_>, args: &SubscribeArgs, id: Option<&str>, reply: JoinReply) {
    let floor = rate_floor(ctx.tick_hz, args.max_hz);
    let mut channels = Vec::new();
    for name in &args.channels {
        if (ctx.session.channels.iter()).any(|s| s.held() && *s.name == **name) {
            continue;
        }
        let interned: Arc<str> = Arc::from(name.as_str());
        ctx.session.channels.push(Subscription {
            name: interned.clone(),
            state: SubState::Joining,
            floor,
        });
        let since = args
            .since
            .iter()
            .find(|(c, _)| c == name)
            .map(|(_, pos)| pos.clone());
        channels.push((interned, since));
    }
    ctx.session.expect_join();
    ctx.ingress.join(JoinRequest {
        shard: ctx.shard,
        conn: ctx.conn,
        id: id.map(str::to_string),
        reply: Some(reply),
        names: args.channels.clone(),
        channels,
        form: Form {
            deflate: ctx.deflate,
            binary: ctx.session.binary,
        },
    });
}

/// Removes one subscription of the connection (no-op if absent). One still joining is marked
/// cancelled: the distributor's answer sends its `leave` (see [`SubState`]).
pub fn unsubscribe(ctx: &mut Context<'_>, name: &str) {
    let session = &mut ctx.session;
    let Some(i) = (session.channels.iter()).position(|s| s.held() && &*s.name == name) else {
        return;
    };
    if session.channels[i].state == SubState::Joining {
        session.channels[i].state = SubState::Cancelled;
        return;
    }
    let sub = session.channels.remove(i);
    ctx.topics.unsubscribe(name, ctx.conn.slot);
    ctx.ingress.leave(ctx.shard, sub.name);
}

/// Removes every subscription of a closing connection.
pub fn unsubscribe_all(
    shard: usize,
    slot: Slot,
    session: &mut Session,
    topics: &mut Topics,
    ingress: &Ingress,
) {
    for sub in session.channels.drain(..) {
        // Channels still joining are settled by the distributor's answer (see [`SubState`]).
        if sub.state == SubState::Live {
            topics.unsubscribe(&sub.name, slot);
            ingress.leave(shard, sub.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_publish_error_is_told_with_its_own_code() {
        let code = |e| publish_refusal(e).code;
        assert_eq!(code(PublishError::Overloaded), ErrorCode::Overloaded);
        assert_eq!(code(PublishError::Stopped), ErrorCode::Unavailable);
        assert_eq!(
            code(PublishError::InvalidChannel("a b".into())),
            ErrorCode::InvalidChannel
        );
        assert_eq!(
            code(PublishError::InvalidData("NaN".into())),
            ErrorCode::InvalidField
        );
    }
}
