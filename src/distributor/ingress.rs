//! The lock-free way into the distributor: every publisher (client publish on any shard, the
//! embedding API, later HTTP and the cluster bridge) and every shard's channel-interest change
//! go through one crossbeam queue, so a shard's "now interested in X" is ordered before any
//! publication that client causes afterwards. Publications are bounded by a byte budget.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use thiserror::Error;

use crate::conn_id::ConnId;
use crate::limits::MAX_INGRESS_BYTES;
use crate::wire::binary_event::MAX_BINARY_EVENT_TYPE;
use crate::wire::channel;
use crate::wire::command::StreamPosition;

/// The client connection a publication came from (for `echo = false` namespaces).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Shard of the publishing connection.
    pub shard: u32,
    /// The connection there.
    pub conn: ConnId,
}

/// One event on its way to subscribers.
#[derive(Clone, Debug)]
pub struct Publication {
    /// The publishing client, if a client published it.
    pub origin: Option<Origin>,
    /// Target channel (already validated).
    pub channel: Arc<str>,
    /// Event type as a JSON string literal (quotes included).
    pub event_type: Bytes,
    /// Payload as JSON text, or with `binary` raw bytes.
    pub data: Bytes,
    /// `data` is raw bytes (a binary event: binary frames for `?binary=1` connections, base64
    /// in the JSON form).
    pub binary: bool,
    /// Conflation / snapshot key as a JSON string literal (quotes included), if any.
    pub key: Option<Bytes>,
    /// Where to send the `published` reply (a client `publish` with an `id`).
    pub ack: Option<Box<super::ack::AckTo>>,
    /// Set when the cluster committed it: its seq, frame and time are the stream's, not this
    /// tick's (`None`: numbered by this node's next tick).
    pub committed: Option<Box<Committed>>,
}

/// How the cluster numbered a publication (every node encodes it the same from this).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// Its seq in the channel.
    pub seq: u64,
    /// The frame its writer's tick had.
    pub frame: u64,
    /// Its writer's tick time, RFC 3339.
    pub timestamp: Bytes,
}

impl Publication {
    fn cost(&self) -> usize {
        cost(
            self.channel.len(),
            self.event_type.len(),
            self.data.len(),
            self.key.as_ref().map_or(0, Bytes::len),
        )
    }
}

/// The bytes of the ingress budget one publication takes: its buffers plus a fixed overhead.
fn cost(channel: usize, event_type: usize, data: usize, key: usize) -> usize {
    channel + event_type + data + key + 64
}

/// A shard asks to add one connection to channels (a `subscribe`, or default channels on
/// connect). Answered with [`Joined`] on the shard's inbox, in order with tick batches, so the
/// replayed events and the live ones meet without a gap or a duplicate.
#[derive(Clone, Debug)]
pub struct JoinRequest {
    /// The asking shard.
    pub shard: usize,
    /// The connection there (a reused slot must not get another connection's reply).
    pub conn: ConnId,
    /// The request's `id` (raw JSON) to echo.
    pub id: Option<String>,
    /// Which `subscribed` the client is sent (`None`: no reply).
    pub reply: Option<JoinReply>,
    /// Every channel the request named (for the reply), including ones already subscribed.
    pub names: Vec<String>,
    /// The channels to join now, each with where the client left it.
    pub channels: Vec<(Arc<str>, Option<StreamPosition>)>,
    /// The encoding the connection takes: replayed frames come in it.
    pub form: super::Form,
}

/// The `subscribed` a join is answered with on the client's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinReply {
    /// A client's `subscribe` (the reply carries its `id`).
    Subscribe,
    /// The server's `default_channels` (`"default":true`).
    Defaults,
}

/// The distributor's answer to a [`JoinRequest`].
#[derive(Clone, Debug)]
pub struct Joined {
    /// The request, returned.
    pub request: JoinRequest,
    /// Per joined channel: position and what to send before live events.
    pub channels: Vec<JoinedChannel>,
}

/// One channel of a [`Joined`].
#[derive(Clone, Debug)]
pub struct JoinedChannel {
    /// The channel.
    pub name: Arc<str>,
    /// Sequence number of its last dispatched event.
    pub seq: u64,
    /// Its epoch.
    pub epoch: Arc<str>,
    /// With `since`: whether the missed events follow (all of them) or not.
    pub recovered: Option<bool>,
    /// Frames to send first: the missed events, or the snapshot.
    pub frames: Vec<Bytes>,
    /// How many events `frames` holds (a snapshot is one buffer of many events).
    pub events: usize,
    /// Not joined, nothing counted: the request would have created more channels than
    /// clients may still create (`max_channels`), so none of its channels was joined.
    pub refused: bool,
}

/// Why a publication was not accepted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishError {
    /// The channel name breaks the naming rules.
    #[error("{}", channel::invalid_name_message(.0))]
    InvalidChannel(String),
    /// The payload could not be serialized as JSON.
    #[error("data is not serializable as JSON: {0}")]
    InvalidData(String),
    /// Too many bytes are waiting for the distributor; try again later.
    #[error("server overloaded: too many publications waiting")]
    Overloaded,
    /// The server is shutting down.
    #[error("server is stopped")]
    Stopped,
    /// A binary event's type does not fit its one-byte length.
    #[error("event_type of a binary event is {0} bytes; at most 255 are allowed")]
    BinaryEventType(usize),
}

pub(crate) enum IngressMsg {
    Publish(Publication),
    /// From the cluster bridge: a committed batch, a snapshot entry, failed requests.
    Cluster(crate::cluster::FromCluster),
    Join(JoinRequest),
    /// A subscriber on `shard` left `channel`.
    Leave {
        shard: usize,
        channel: Arc<str>,
    },
    Stop,
}

/// A cloneable handle for sending into the distributor.
#[derive(Clone)]
pub struct Ingress {
    tx: Sender<IngressMsg>,
    /// Rung after a join is queued, so the distributor answers it between ticks instead of
    /// at the next one (publications do not ring: they wait for their tick anyway).
    doorbell: Sender<()>,
    pending_bytes: Arc<AtomicUsize>,
}

/// The distributor's end of the [`Ingress`] queue.
pub(crate) struct IngressRx {
    /// Everything sent, in order.
    pub msgs: Receiver<IngressMsg>,
    /// Holds a ring while a join waits (capacity one: rings coalesce).
    pub doorbell: Receiver<()>,
}

impl Ingress {
    pub(crate) fn new() -> (Ingress, IngressRx) {
        let (tx, msgs) = crossbeam_channel::unbounded();
        let (doorbell, rung) = crossbeam_channel::bounded(1);
        (
            Ingress {
                tx,
                doorbell,
                pending_bytes: Arc::new(AtomicUsize::new(0)),
            },
            IngressRx {
                msgs,
                doorbell: rung,
            },
        )
    }

    /// Queues a publication for the next tick.
    pub fn publish(&self, p: Publication) -> Result<(), PublishError> {
        let cost = p.cost();
        self.reserve(cost)?;
        self.send_reserved(p, cost)
    }

    /// Validates, encodes and queues an event: the embedding and HTTP entry point.
    pub fn publish_json(
        &self,
        channel: &str,
        event_type: &str,
        data: Vec<u8>,
    ) -> Result<(), PublishError> {
        self.publish_keyed(channel, event_type, None, data)
    }

    /// As [`publish_json`](Self::publish_json), with a conflation / snapshot `key`.
    pub fn publish_keyed(
        &self,
        channel: &str,
        event_type: &str,
        key: Option<&str>,
        data: Vec<u8>,
    ) -> Result<(), PublishError> {
        self.publish_to_all(&[channel], event_type, key, Bytes::from(data))
    }

    /// Queues one event for every channel in `channels`, all or none: the byte budget is taken
    /// for the whole set at once, and the channels share one `data` buffer (no copy per channel
    /// here; the distributor encodes each channel's frame once). `event_type` and `key` are
    /// encoded once for the set. Names are validated here even when a caller (the HTTP route)
    /// already did: this is a public entry point, and the check is linear.
    pub fn publish_to_all<C: AsRef<str>>(
        &self,
        channels: &[C],
        event_type: &str,
        key: Option<&str>,
        data: Bytes,
    ) -> Result<(), PublishError> {
        self.publish_to_all_replying(channels, event_type, key, data, false, None)
    }

    /// As [`publish_to_all`](Self::publish_to_all) for a binary event: `data` is raw bytes,
    /// delivered as binary frames to connections that asked for them (`?binary=1`) and in
    /// base64 to the others.
    pub fn publish_binary_to_all<C: AsRef<str>>(
        &self,
        channels: &[C],
        event_type: &str,
        key: Option<&str>,
        data: Bytes,
    ) -> Result<(), PublishError> {
        self.publish_to_all_replying(channels, event_type, key, data, true, None)
    }

    /// As [`publish_to_all`](Self::publish_to_all), with one outcome per channel sent to
    /// `reply` (an HTTP broadcast waiting for its seqs).
    pub(crate) fn publish_to_all_replying<C: AsRef<str>>(
        &self,
        channels: &[C],
        event_type: &str,
        key: Option<&str>,
        data: Bytes,
        binary: bool,
        reply: Option<super::ack::AckTo>,
    ) -> Result<(), PublishError> {
        if binary && event_type.len() > MAX_BINARY_EVENT_TYPE {
            return Err(PublishError::BinaryEventType(event_type.len()));
        }
        if let Some(bad) = channels
            .iter()
            .map(AsRef::as_ref)
            .find(|c| !channel::is_valid(c))
        {
            return Err(PublishError::InvalidChannel(bad.chars().take(64).collect()));
        }
        let event_type = Bytes::from(serde_json::to_vec(event_type).expect("a str serializes"));
        let key = key.map(json_key);
        let each = |name: &str| {
            cost(
                name.len(),
                event_type.len(),
                data.len(),
                key.as_ref().map_or(0, Bytes::len),
            )
        };
        let mut unsent: usize = channels.iter().map(|c| each(c.as_ref())).sum();
        self.reserve(unsent)?;
        for name in channels {
            let name = name.as_ref();
            let p = Publication {
                origin: None,
                channel: Arc::from(name),
                event_type: event_type.clone(),
                data: data.clone(),
                binary,
                key: key.clone(),
                ack: reply.clone().map(Box::new),
                committed: None,
            };
            let this = each(name);
            // `unsent` covers this publication and every later one: on `Stopped`, all of it
            // goes back (the distributor releases only what it received).
            self.send_reserved(p, unsent)?;
            unsent -= this;
        }
        Ok(())
    }

    /// Takes `cost` bytes of the ingress budget, or none if that would pass
    /// [`MAX_INGRESS_BYTES`]. The distributor gives them back with [`release`](Self::release)
    /// once it has taken the publications off the queue.
    fn reserve(&self, cost: usize) -> Result<(), PublishError> {
        if self.pending_bytes.fetch_add(cost, Ordering::Relaxed) + cost > MAX_INGRESS_BYTES {
            self.release(cost);
            return Err(PublishError::Overloaded);
        }
        Ok(())
    }

    /// Queues a publication whose budget is reserved. If the distributor has stopped, it gives
    /// back `unsent`: the bytes reserved for `p` and for any publication of the same set not
    /// yet queued.
    fn send_reserved(&self, p: Publication, unsent: usize) -> Result<(), PublishError> {
        self.tx.send(IngressMsg::Publish(p)).map_err(|_| {
            self.release(unsent);
            PublishError::Stopped
        })
    }

    /// Asks to add a connection to channels; answered on the shard's inbox.
    pub(crate) fn join(&self, request: JoinRequest) {
        let _ = self.tx.send(IngressMsg::Join(request));
        let _ = self.doorbell.try_send(()); // full: a ring is already waiting
    }

    /// Tells the distributor one subscriber on `shard` left `channel`.
    pub(crate) fn leave(&self, shard: usize, channel: Arc<str>) {
        let _ = self.tx.send(IngressMsg::Leave { shard, channel });
    }

    /// Where the cluster bridge delivers: this queue, without ringing (committed batches go
    /// out at the next tick anyway).
    pub(crate) fn cluster_sink(&self) -> crate::cluster::Sink {
        let tx = self.tx.clone();
        Box::new(move |msg| {
            let _ = tx.send(IngressMsg::Cluster(msg));
        })
    }

    pub(crate) fn stop(&self) {
        let _ = self.tx.send(IngressMsg::Stop);
    }

    /// Gives back `bytes` of the ingress budget (taken by [`reserve`](Self::reserve)).
    pub(crate) fn release(&self, bytes: usize) {
        self.pending_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    pub(crate) fn cost_of(p: &Publication) -> usize {
        p.cost()
    }
}

/// A key as the JSON string literal events carry.
pub fn json_key(key: &str) -> Bytes {
    Bytes::from(serde_json::to_vec(key).expect("a str always serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(ingress: &Ingress) -> usize {
        ingress.pending_bytes.load(Ordering::Relaxed)
    }

    #[test]
    fn the_budget_taken_is_what_the_distributor_releases() {
        let (ingress, rx) = Ingress::new();
        let names = vec!["a".to_string(), "bb".to_string()];
        ingress
            .publish_to_all(&names, "e", Some("k"), Bytes::from_static(b"1"))
            .unwrap();
        ingress
            .publish_keyed("ccc", "e", None, b"22".to_vec())
            .unwrap();
        let mut released = 0;
        while let Ok(msg) = rx.msgs.try_recv() {
            if let IngressMsg::Publish(p) = msg {
                released += Ingress::cost_of(&p);
            }
        }
        assert_eq!(pending(&ingress), released);
        ingress.release(released);
        assert_eq!(pending(&ingress), 0);
    }

    #[test]
    fn a_stopped_distributor_gives_the_whole_set_back() {
        let (ingress, rx) = Ingress::new();
        drop(rx);
        let names = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let sent = ingress.publish_to_all(&names, "e", None, Bytes::from_static(b"1"));
        assert_eq!(sent, Err(PublishError::Stopped));
        assert_eq!(pending(&ingress), 0);
        assert_eq!(
            ingress.publish_json("a", "e", b"1".to_vec()),
            Err(PublishError::Stopped)
        );
        assert_eq!(pending(&ingress), 0);
    }

    #[test]
    fn an_over_budget_set_takes_nothing() {
        let (ingress, _rx) = Ingress::new();
        let names: Vec<String> = (0..3).map(|i| format!("c{i}")).collect();
        let data = Bytes::from(vec![b'1'; MAX_INGRESS_BYTES / 2]);
        let sent = ingress.publish_to_all(&names, "e", None, data);
        assert_eq!(sent, Err(PublishError::Overloaded));
        assert_eq!(pending(&ingress), 0);
    }

    #[test]
    fn an_invalid_name_queues_nothing() {
        let (ingress, rx) = Ingress::new();
        let names = vec!["ok".to_string(), String::new()];
        let sent = ingress.publish_to_all(&names, "e", None, Bytes::from_static(b"1"));
        assert!(matches!(sent, Err(PublishError::InvalidChannel(_))));
        assert!(rx.msgs.try_recv().is_err());
        assert_eq!(pending(&ingress), 0);
    }
}
