//! The distributor's side of cluster mode. A publication to a shared channel is not numbered
//! here: at the tick it is conflated (where the namespace asks) and handed to the bridge as
//! one commit request per channel; what comes back from the stream — every node's committed
//! batches, in stream order — is queued like a publication whose seq, frame and time are
//! already fixed, so every node encodes the same frames. Node-local channels (the built-ins,
//! `cluster.local_namespaces`) take the single-node path.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::ack::AckTo;
use super::channels::ChannelRegistry;
use super::conflate::retain_newest_per_key;
use super::ingress::{Committed, Origin, Publication};
use super::{AckOutcome, PublishAck};
use crate::cluster::{ClusterLink, CommitRequest, CommittedBatch, EventRecord, FromCluster};
use crate::config::{Delivery, Namespaces};
use crate::log_limit::LogLimiter;

/// Who one committed event answers to (on the node that wrote it).
type ReplyTo = (Option<Origin>, Option<Box<AckTo>>);

/// Cluster mode's state in the distributor.
pub(crate) struct ClusterSide {
    link: ClusterLink,
    /// Publications of the current tick per shared channel, in arrival order.
    outgoing: HashMap<Arc<str>, Vec<Publication>>,
    /// Channels of `outgoing` in first-publication order.
    order: Vec<Arc<str>>,
    /// Per commit request in flight: each event's publisher and reply.
    waiting: HashMap<u64, (Arc<str>, Vec<ReplyTo>)>,
    next_token: u64,
    log: LogLimiter,
    /// The boot replay was received; the node is ready once it is dispatched.
    caught_up: bool,
}

impl ClusterSide {
    /// The distributor's cluster side, committing through `link`.
    pub(crate) fn new(link: ClusterLink) -> ClusterSide {
        ClusterSide {
            link,
            outgoing: HashMap::new(),
            order: Vec::new(),
            waiting: HashMap::new(),
            next_token: 0,
            log: LogLimiter::new(std::time::Duration::from_secs(10)),
            caught_up: false,
        }
    }

    /// Keeps `p` for this tick's commit if its channel is shared; gives it back if local.
    /// A client publication to a channel this node does not know creates it here first, so
    /// `max_channels` bounds what clients create (refused: `LIMIT_EXCEEDED`, nothing sent).
    pub(crate) fn take(
        &mut self,
        p: Publication,
        registry: &mut ChannelRegistry,
    ) -> Option<Publication> {
        if self.link.is_local(&p.channel) {
            return Some(p);
        }
        if p.origin.is_some() && !registry.create_for_client(&p.channel) {
            registry
                .acks
                .extend(PublishAck::of(&p, AckOutcome::ChannelLimit));
            return None;
        }
        let list = self.outgoing.entry(p.channel.clone()).or_default();
        if list.is_empty() {
            self.order.push(p.channel.clone());
        }
        list.push(p);
        None
    }

    /// Whether publications wait for this tick's commit requests.
    pub(crate) fn has_outgoing(&self) -> bool {
        !self.order.is_empty()
    }

    /// Hands this tick's publications to the bridge, one request per channel; replies for
    /// what cannot be handed over (or was conflated away) go to `acks`.
    pub(crate) fn flush(
        &mut self,
        frame: u64,
        timestamp: &str,
        namespaces: &Namespaces,
        acks: &mut Vec<PublishAck>,
        now: Instant,
    ) {
        let timestamp = Bytes::copy_from_slice(timestamp.as_bytes());
        for channel in self.order.drain(..) {
            let Some(mut pending) = self.outgoing.remove(&channel) else {
                continue;
            };
            let ns = namespaces.of(&channel);
            if ns.delivery == Delivery::Conflated {
                retain_newest_per_key(&mut pending, |p| {
                    acks.extend(PublishAck::of(p, AckOutcome::Superseded { frame }));
                });
            }
            let events = pending
                .iter()
                .map(|p| EventRecord {
                    event_type: p.event_type.clone(),
                    data: p.data.clone(),
                    binary: p.binary,
                    key: p.key.clone(),
                    frame,
                    timestamp: timestamp.clone(),
                })
                .collect();
            self.next_token += 1;
            let token = self.next_token;
            let request = CommitRequest {
                channel: channel.clone(),
                events,
                token,
                snapshot: ns.snapshot,
                queued_at: now,
            };
            match self.link.submit(request) {
                Ok(()) => {
                    let replies = pending.into_iter().map(|p| (p.origin, p.ack)).collect();
                    self.waiting.insert(token, (channel, replies));
                }
                Err(_) => {
                    self.link
                        .stats
                        .unavailable
                        .fetch_add(pending.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    for p in &pending {
                        acks.extend(PublishAck::of(p, AckOutcome::Unavailable));
                    }
                }
            }
        }
    }

    /// After a dispatch: everything received so far went out, so a received boot replay makes
    /// the node ready (joins now see every replayed event).
    pub(crate) fn after_dispatch(&mut self) {
        if std::mem::take(&mut self.caught_up) {
            self.link
                .stats
                .booted
                .store(true, std::sync::atomic::Ordering::Relaxed);
            tracing::info!("cluster: boot replay dispatched; ready");
        }
    }

    /// Applies one message from the bridge.
    pub(crate) fn receive(
        &mut self,
        msg: FromCluster,
        registry: &mut ChannelRegistry,
        namespaces: &Namespaces,
        now: Instant,
    ) {
        match msg {
            FromCluster::Committed(batch) => {
                self.link.taken(batch.events.len());
                self.committed(batch, registry, now);
            }
            FromCluster::Snapshot {
                channel,
                epoch,
                seq,
                event,
            } => {
                if namespaces.of(&channel).snapshot {
                    registry.put_snapshot_entry(
                        &channel,
                        &epoch,
                        seq,
                        &event_publication(&channel, event, seq, None),
                    );
                }
            }
            FromCluster::Incarnation(id) => registry.set_incarnation(id),
            FromCluster::CaughtUp => self.caught_up = true,
            FromCluster::Failed { tokens } => {
                for token in tokens {
                    let Some((channel, replies)) = self.waiting.remove(&token) else {
                        continue;
                    };
                    for (origin, ack) in replies {
                        registry.acks.extend(ack.and_then(|to| {
                            PublishAck::to(origin, &to, &channel, AckOutcome::Unavailable)
                        }));
                    }
                }
            }
        }
    }

    fn committed(&mut self, batch: CommittedBatch, registry: &mut ChannelRegistry, now: Instant) {
        let CommittedBatch {
            channel,
            epoch,
            first_seq,
            events,
            tokens,
        } = batch;
        let mut replies = tokens
            .iter()
            .flat_map(|t| self.waiting.remove(t).map(|(_, r)| r).unwrap_or_default())
            .fuse();
        let publications: Vec<Publication> = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let (origin, ack) = replies.next().unwrap_or((None, None));
                let mut p = event_publication(&channel, e, first_seq + i as u64, ack);
                p.origin = origin;
                p
            })
            .collect();
        let queued = registry.queue_committed(&channel, &epoch, first_seq, publications);
        (self.link.stats.lost).store(registry.lost_events, std::sync::atomic::Ordering::Relaxed);
        if let Err(why) = queued {
            if let Some(unlogged) = self.log.admit(now) {
                tracing::warn!(channel = %channel, first_seq, unlogged, "cluster: {why}");
            }
        }
    }
}

/// A committed event as a publication with its numbering fixed.
fn event_publication(
    channel: &Arc<str>,
    e: EventRecord,
    seq: u64,
    ack: Option<Box<AckTo>>,
) -> Publication {
    Publication {
        origin: None,
        channel: channel.clone(),
        event_type: e.event_type,
        data: e.data,
        binary: e.binary,
        key: e.key,
        ack,
        committed: Some(Box::new(Committed {
            seq,
            frame: e.frame,
            timestamp: e.timestamp,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn_id::ConnId;

    fn client_publication(channel: &str) -> Publication {
        Publication {
            origin: Some(Origin {
                shard: 0,
                conn: ConnId::default(),
            }),
            channel: Arc::from(channel),
            event_type: Bytes::from_static(b"\"e\""),
            data: Bytes::from_static(b"1"),
            binary: false,
            key: None,
            ack: Some(Box::new(AckTo::Client { id: "\"1\"".into() })),
            committed: None,
        }
    }

    #[test]
    fn clients_create_at_most_max_channels_in_a_cluster_too() {
        let mut side = ClusterSide::new(ClusterLink::detached(&[]));
        let mut reg = ChannelRegistry::with_client_limit(1);
        assert!(side.take(client_publication("a"), &mut reg).is_none());
        assert!(side.take(client_publication("b"), &mut reg).is_none());
        let outcomes: Vec<_> = reg.acks.iter().map(|a| (&*a.channel, a.outcome)).collect();
        assert_eq!(outcomes, vec![("b", AckOutcome::ChannelLimit)]);
        assert!(side.has_outgoing(), "`a` waits for its commit");
    }

    #[test]
    fn a_request_the_bridge_cannot_take_is_answered_unavailable() {
        let mut side = ClusterSide::new(ClusterLink::detached(&[]));
        let mut reg = ChannelRegistry::default();
        assert!(side.take(client_publication("a"), &mut reg).is_none());
        let mut acks = Vec::new();
        side.flush(1, "t", &Namespaces::default(), &mut acks, Instant::now());
        assert_eq!(acks.len(), 1);
        assert_eq!(acks[0].outcome, AckOutcome::Unavailable);
        assert!(!side.has_outgoing());
    }

    #[test]
    fn node_local_channels_take_the_single_node_path() {
        let mut side = ClusterSide::new(ClusterLink::detached(&["telemetry"]));
        let mut reg = ChannelRegistry::default();
        assert!(side
            .take(client_publication("telemetry:x"), &mut reg)
            .is_some());
        assert!(side
            .take(client_publication("heartbeat"), &mut reg)
            .is_some());
        assert!(!side.has_outgoing());
    }
}
