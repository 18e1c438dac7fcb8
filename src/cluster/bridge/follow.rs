//! Following the stream: the snapshot entries at boot, then every committed batch of every
//! node in stream order, handed to the distributor unchanged; lag and boot readiness.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream::{self, consumer, stream, Context};
use futures_util::stream::StreamExt;

use super::*;

/// A batch read this long after the stream stored it counts as replayed.
const REPLAY_AGE_NS: i128 = 1_000_000_000;

impl Bridge {
    /// Reads the snapshot stream's entries into the sink (boot only); the distributor keeps the
    /// highest seq per key.
    pub(super) async fn load_snapshots(&mut self, js: &Context) -> Result<(), String> {
        let mut stream = js
            .get_stream(&self.snap_stream)
            .await
            .map_err(|e| e.to_string())?;
        let total = stream
            .info()
            .await
            .map_err(|e| e.to_string())?
            .state
            .messages;
        if total == 0 {
            return Ok(());
        }
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        let mut loaded = 0u64;
        loop {
            let next = tokio::time::timeout(REQUEST_TIMEOUT, messages.next()).await;
            let m = match next {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => return Err(e.to_string()),
                Ok(None) | Err(_) => return Err("the snapshot stream ended early".into()),
            };
            let pending = m.info().map(|i| i.pending).unwrap_or(0);
            if let Some(entry) = self.snapshot_entry(&m) {
                (self.p.sink)(entry);
                loaded += 1;
            }
            if pending == 0 {
                break;
            }
        }
        tracing::info!(entries = loaded, "cluster: snapshot entries loaded");
        Ok(())
    }

    pub(super) fn snapshot_entry(&self, m: &jetstream::Message) -> Option<FromCluster> {
        let channel = subject::snapshot_channel_of(&self.prefix, m.subject.as_str())?;
        let n = Numbering::from_headers(m.headers.as_ref()?)?;
        let event = record::decode(&m.payload, 1).ok()?.pop()?;
        Some(FromCluster::Snapshot {
            channel: Arc::from(channel),
            epoch: n.epoch,
            seq: n.first_seq,
            event,
        })
    }

    /// An ordered consumer of the event stream from the first batch not yet delivered.
    pub(super) async fn follow(&mut self, events: &mut stream::Stream) -> Result<Messages, String> {
        let deliver_policy = if self.delivered == 0 {
            consumer::DeliverPolicy::All
        } else {
            consumer::DeliverPolicy::ByStartSequence {
                start_sequence: self.delivered + 1,
            }
        };
        let consumer = tokio::time::timeout(
            REQUEST_TIMEOUT,
            events.create_consumer(consumer::pull::OrderedConfig {
                deliver_policy,
                ..Default::default()
            }),
        )
        .await
        .map_err(|_| "timed out creating the consumer".to_string())?
        .map_err(|e| e.to_string())?;
        let messages = consumer.messages().await.map_err(|e| e.to_string())?;
        if self.boot_target.is_none() {
            let last = events
                .info()
                .await
                .map_err(|e| e.to_string())?
                .state
                .last_sequence;
            self.boot_target = Some(last);
            self.on_stream_last(last);
        }
        Ok(Box::pin(messages))
    }

    /// The stream's last sequence is `last`: lag, boot readiness, unknown outcomes' targets.
    pub(super) fn on_stream_last(&mut self, last: u64) {
        self.p.stats.stream_last_seq.store(last, Ordering::Relaxed);
        self.p
            .stats
            .lag
            .store(last.saturating_sub(self.delivered), Ordering::Relaxed);
        if self
            .boot_target
            .is_some_and(|target| self.delivered >= target)
        {
            self.hand_caught_up();
        }
        for w in self.writers.values_mut() {
            if let Some(InFlight {
                attempt: Attempt::Unknown { target: t @ None },
                ..
            }) = &mut w.in_flight
            {
                *t = Some(last);
            }
        }
    }

    /// Tells the distributor, once, that everything the stream held at boot is handed over:
    /// it turns the node ready when it has dispatched that much.
    pub(super) fn hand_caught_up(&mut self) {
        if !self.caught_up_handed {
            self.caught_up_handed = true;
            tracing::info!(
                delivered = self.delivered,
                "cluster: caught up with the stream"
            );
            (self.p.sink)(FromCluster::CaughtUp);
        }
    }

    pub(super) fn needs_target(&self) -> bool {
        self.writers.values().any(|w| {
            matches!(
                w.in_flight,
                Some(InFlight {
                    attempt: Attempt::Unknown { target: None },
                    ..
                })
            )
        })
    }

    /// One batch from the stream, any node's.
    pub(super) fn on_message(&mut self, m: jetstream::Message) {
        let Ok(info) = m.info() else { return };
        let stream_seq = info.stream_sequence;
        if stream_seq <= self.delivered {
            return; // already delivered (a recreated consumer)
        }
        self.delivered = stream_seq;
        self.p
            .stats
            .delivered_seq
            .store(stream_seq, Ordering::Relaxed);
        self.last_delivery = Instant::now();
        // Lag is the distance to the stream's last sequence as last read (the consumer's own
        // pending count was seen stuck at thousands after a pause while it was caught up).
        let last = self.p.stats.stream_last_seq.load(Ordering::Relaxed);
        (self.p.stats.lag).store(last.saturating_sub(stream_seq), Ordering::Relaxed);
        let Some(batch) = self.decode(&m, stream_seq) else {
            if let Some(unlogged) = self.log.admit(Instant::now()) {
                tracing::warn!(subject = %m.subject, stream_seq, unlogged, "cluster: skipped a message that is not a framecast batch");
            }
            return;
        };
        let events = batch.events.len();
        self.p
            .stats
            .received
            .fetch_add(events as u64, Ordering::Relaxed);
        // Replayed: the boot replay, and later whatever this node reads more than a second
        // after the stream stored it (catching up after a pause), not live traffic.
        let stored_ns = info.published.unix_timestamp_nanos();
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        if !self.caught_up_handed || now_ns - stored_ns > REPLAY_AGE_NS {
            self.p
                .stats
                .replayed
                .fetch_add(events as u64, Ordering::Relaxed);
        }
        self.p.undelivered.fetch_add(events, Ordering::Relaxed);
        (self.p.sink)(FromCluster::Committed(batch));
        if self.boot_target.is_some_and(|target| stream_seq >= target) {
            self.hand_caught_up();
        }
    }

    pub(super) fn decode(
        &mut self,
        m: &jetstream::Message,
        stream_seq: u64,
    ) -> Option<CommittedBatch> {
        let channel: Arc<str> = Arc::from(subject::channel_of(&self.prefix, m.subject.as_str())?);
        let headers = m.headers.as_ref()?;
        let n = Numbering::from_headers(headers)?;
        let events = record::decode(&m.payload, n.count as usize).ok()?;
        let head = n.head_at(stream_seq);
        match self.heads.get_mut(&channel) {
            Some(h) if h.stream_seq >= stream_seq => {}
            Some(h) => *h = head,
            None => {
                self.heads.insert(channel.clone(), head);
            }
        }
        let tokens = headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .and_then(|id| self.own.remove(id.as_str()))
            .unwrap_or_default();
        Some(CommittedBatch {
            channel,
            epoch: n.epoch,
            first_seq: n.first_seq,
            events,
            tokens,
        })
    }
}
