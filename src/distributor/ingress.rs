//! The lock-free way into the distributor: every publisher (client publish on any shard, the
//! embedding API, later HTTP and the cluster bridge) and every shard's channel-interest change
//! go through one crossbeam queue, so a shard's "now interested in X" is ordered before any
//! publication that client causes afterwards. Publications are bounded by a byte budget.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use thiserror::Error;

use crate::config::limits::MAX_INGRESS_BYTES;
use crate::wire::channel;

/// The client connection a publication came from (for `echo = false` namespaces).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Shard of the publishing connection.
    pub shard: u32,
    /// The connection's serial number within its shard.
    pub serial: u64,
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
    /// Payload as JSON text.
    pub data: Bytes,
}

impl Publication {
    fn cost(&self) -> usize {
        self.channel.len() + self.event_type.len() + self.data.len() + 64
    }
}

/// Why a publication was not accepted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// The channel name breaks the naming rules.
    #[error("invalid channel name `{0}`: use 1-200 bytes of letters, digits and _-.:/@")]
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
}

pub(crate) enum IngressMsg {
    Publish(Publication),
    /// A subscriber joined (`delta` 1) or left (-1) on `shard`, leaving `local` there.
    Subscribers {
        shard: usize,
        channel: Arc<str>,
        delta: i64,
        local: usize,
    },
    Stop,
}

/// A cloneable handle for sending into the distributor.
#[derive(Clone)]
pub struct Ingress {
    tx: Sender<IngressMsg>,
    pending_bytes: Arc<AtomicUsize>,
}

impl Ingress {
    pub(crate) fn new() -> (Ingress, Receiver<IngressMsg>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (
            Ingress {
                tx,
                pending_bytes: Arc::new(AtomicUsize::new(0)),
            },
            rx,
        )
    }

    /// Queues a publication for the next tick.
    pub fn publish(&self, p: Publication) -> Result<(), PublishError> {
        let cost = p.cost();
        if self.pending_bytes.fetch_add(cost, Ordering::Relaxed) + cost > MAX_INGRESS_BYTES {
            self.pending_bytes.fetch_sub(cost, Ordering::Relaxed);
            return Err(PublishError::Overloaded);
        }
        self.tx
            .send(IngressMsg::Publish(p))
            .map_err(|_| PublishError::Stopped)
    }

    /// Validates, encodes and queues an event: the embedding and HTTP entry point.
    pub fn publish_json(
        &self,
        channel: &str,
        event_type: &str,
        data: Vec<u8>,
    ) -> Result<(), PublishError> {
        if !channel::is_valid(channel) {
            return Err(PublishError::InvalidChannel(
                channel.chars().take(64).collect(),
            ));
        }
        let event_type = serde_json::to_vec(event_type).expect("a str always serializes");
        self.publish(Publication {
            origin: None,
            channel: Arc::from(channel),
            event_type: Bytes::from(event_type),
            data: Bytes::from(data),
        })
    }

    /// Tells the distributor a shard's subscriber count of `channel` changed by `delta` to
    /// `local`; sent on every subscribe and unsubscribe (not per event).
    pub(crate) fn subscribers(&self, shard: usize, channel: Arc<str>, delta: i64, local: usize) {
        let _ = self.tx.send(IngressMsg::Subscribers {
            shard,
            channel,
            delta,
            local,
        });
    }

    pub(crate) fn stop(&self) {
        let _ = self.tx.send(IngressMsg::Stop);
    }

    pub(crate) fn release(&self, bytes: usize) {
        self.pending_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    pub(crate) fn cost_of(p: &Publication) -> usize {
        p.cost()
    }
}
