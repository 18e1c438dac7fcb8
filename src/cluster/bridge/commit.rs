//! Committing: one batch per channel in flight, numbered from the channel's head and written
//! with `Nats-Expected-Last-Subject-Sequence`; conflicts renumber, lost acknowledgements are
//! decided from the stream, snapshot entries follow a commit, and requests never sent expire
//! as `UNAVAILABLE`.
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream::{self, Context};
use async_nats::HeaderMap;
use futures_util::stream::FuturesUnordered;

use super::*;

impl Bridge {
    /// Sends the channel's next batch if none is in flight.
    pub(super) fn send_next(&mut self, channel: &Arc<str>, s: &mut Session) {
        if s.streams.is_none() || !self.p.stats.connected.load(Ordering::Relaxed) {
            return;
        }
        let Some(w) = self.writers.get_mut(channel) else {
            return;
        };
        if w.in_flight.is_some() || w.queue.is_empty() {
            return;
        }
        let requests = w.take_batch(MAX_BATCH_BYTES);
        self.next_msg += 1;
        let msg_id = format!("{}-{}-{}", self.p.config.node, self.boot_id, self.next_msg);
        self.own
            .insert(msg_id.clone(), requests.iter().map(|r| r.token).collect());
        let mut batch = InFlight {
            requests,
            msg_id,
            attempt: Attempt::Sending,
            sent_at: Instant::now(),
            numbering: None,
        };
        let (write, numbering) = self.write(channel, &batch, &s.js);
        batch.numbering = Some(numbering);
        s.writes.push(write);
        if let Some(w) = self.writers.get_mut(channel) {
            w.in_flight = Some(batch);
        }
    }

    /// The write of `batch` as numbered by the channel's current head.
    pub(super) fn write(
        &self,
        channel: &Arc<str>,
        batch: &InFlight,
        js: &Context,
    ) -> (WriteFuture, Numbering) {
        let events: Vec<EventRecord> = batch
            .requests
            .iter()
            .flat_map(|r| r.events.iter().cloned())
            .collect();
        let first = || match (&self.incarnation, self.p.retention.max_age.is_zero()) {
            (Some(inc), true) => crate::epoch::first(inc, channel),
            _ => crate::epoch::fresh(),
        };
        let (expected, n) = next_numbering(self.heads.get(channel), events.len() as u64, first);
        let mut headers = HeaderMap::new();
        headers.insert(record::SEQ, n.first_seq.to_string());
        headers.insert(record::COUNT, n.count.to_string());
        headers.insert(record::EPOCH, n.epoch.to_string());
        headers.insert(NODE, self.p.config.node.as_str());
        let message = jetstream::message::PublishMessage::build()
            .payload(record::encode(&events))
            .headers(headers)
            .message_id(&batch.msg_id)
            .expected_last_subject_sequence(expected);
        let subject = subject::event_subject(&self.prefix, channel);
        let js = js.clone();
        let channel = channel.clone();
        let write = Box::pin(async move {
            let outcome = write_once(&js, subject, message).await;
            (channel, outcome)
        });
        (write, n)
    }

    pub(super) fn on_write(
        &mut self,
        channel: &Arc<str>,
        outcome: WriteOutcome,
        js: &Context,
        side: &mut FuturesUnordered<SideFuture>,
    ) {
        let Some(w) = self.writers.get_mut(channel) else {
            return;
        };
        let Some(mut batch) = w.in_flight.take() else {
            return;
        };
        match outcome {
            WriteOutcome::Stored(stream_seq) => {
                let Some(n) = batch.numbering.clone() else {
                    return;
                };
                let us = batch.sent_at.elapsed().as_micros() as u64;
                self.p.stats.record_commit(us, n.count);
                let head = n.head_at(stream_seq);
                if self
                    .heads
                    .get(channel)
                    .is_none_or(|h| h.stream_seq < stream_seq)
                {
                    self.heads.insert(channel.clone(), head);
                }
                self.write_snapshots(channel, &batch, &n, js, side);
                self.release(&batch.requests);
            }
            WriteOutcome::Conflict(head) => {
                self.p.stats.retries.fetch_add(1, Ordering::Relaxed);
                match head {
                    Some(h) => {
                        self.heads.insert(channel.clone(), h);
                    }
                    None => {
                        self.heads.remove(channel);
                    }
                }
                batch.attempt = Attempt::Sending;
                // Resent by `send_next`'s caller through the queue's front.
                let w = self.writers.get_mut(channel).expect("looked up above");
                for r in batch.requests.into_iter().rev() {
                    w.queue.push_front(r);
                }
                // The same message id would be fine, but a fresh one keeps `own` exact.
                let tokens = self.own.remove(&batch.msg_id);
                debug_assert!(tokens.is_some());
            }
            WriteOutcome::Rejected(why) => {
                tracing::warn!(channel = %channel, error = %why, "cluster: the broker refused a batch; its publishers get UNAVAILABLE");
                self.own.remove(&batch.msg_id);
                self.fail(batch.requests);
            }
            WriteOutcome::Unknown(why) => {
                self.p.stats.retries.fetch_add(1, Ordering::Relaxed);
                if let Some(unlogged) = self.log.admit(Instant::now()) {
                    tracing::warn!(channel = %channel, error = %why, unlogged, "cluster: a commit's outcome is unknown; resolving it from the stream");
                }
                batch.attempt = Attempt::Unknown { target: None };
                let w = self.writers.get_mut(channel).expect("looked up above");
                w.in_flight = Some(batch);
            }
        }
    }

    /// Unknown outcomes whose stream position was reached: committed if the stream held the
    /// batch's message id (the consumer took it out of `own`), else sent again.
    pub(super) fn resolve_unknown(&mut self) {
        let delivered = self.delivered;
        for w in self.writers.values_mut() {
            let Some(InFlight {
                attempt: Attempt::Unknown { target: Some(t) },
                msg_id,
                ..
            }) = &w.in_flight
            else {
                continue;
            };
            if delivered < *t {
                continue;
            }
            let committed = !self.own.contains_key(msg_id);
            let batch = w.in_flight.take().expect("matched above");
            if committed {
                let cost: usize = batch.requests.iter().map(CommitRequest::cost).sum();
                self.p.pending_bytes.fetch_sub(cost, Ordering::Relaxed);
            } else {
                self.own.remove(&batch.msg_id);
                for r in batch.requests.into_iter().rev() {
                    w.queue.push_front(r);
                }
            }
        }
        self.p.stats.pending_bytes.store(
            self.p.pending_bytes.load(Ordering::Relaxed) as u64,
            Ordering::Relaxed,
        );
    }

    /// Snapshot entries for a committed batch's keyed events (newest per key), written after
    /// the commit; a booting node reads them before the events.
    pub(super) fn write_snapshots(
        &self,
        channel: &Arc<str>,
        batch: &InFlight,
        n: &Numbering,
        js: &Context,
        side: &mut FuturesUnordered<SideFuture>,
    ) {
        if !batch.requests.iter().any(|r| r.snapshot) {
            return;
        }
        let events: Vec<&EventRecord> = batch
            .requests
            .iter()
            .flat_map(|r| r.events.iter())
            .collect();
        let mut newest: HashMap<Option<&[u8]>, (u64, &EventRecord)> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            newest.insert(e.key.as_deref(), (n.first_seq + i as u64, e));
        }
        for (key, (seq, e)) in newest {
            let mut headers = HeaderMap::new();
            headers.insert(record::SEQ, seq.to_string());
            headers.insert(record::COUNT, "1");
            headers.insert(record::EPOCH, n.epoch.to_string());
            let message = jetstream::message::PublishMessage::build()
                .payload(record::encode(std::slice::from_ref(e)))
                .headers(headers);
            let subject = subject::snapshot_subject(&self.prefix, channel, key);
            let js = js.clone();
            side.push(Box::pin(async move {
                let sent = async { js.send_publish(subject, message).await?.await.map(|_| ()) };
                if let Ok(Err(e)) | Err(e) = tokio::time::timeout(REQUEST_TIMEOUT, sent)
                    .await
                    .map_err(|_| {
                        async_nats::jetstream::context::PublishError::new(
                            async_nats::jetstream::context::PublishErrorKind::TimedOut,
                        )
                    })
                {
                    tracing::debug!(error = %e, "cluster: a snapshot entry was not written");
                }
            }));
        }
    }

    /// Queued requests older than `commit_timeout` get `UNAVAILABLE` (in-flight ones wait for
    /// their outcome: they may have been committed).
    pub(super) fn expire(&mut self, now: Instant) {
        let timeout = self.p.config.commit_timeout;
        let mut expired = Vec::new();
        for w in self.writers.values_mut() {
            while w
                .queue
                .front()
                .is_some_and(|r| now.duration_since(r.queued_at) >= timeout)
            {
                expired.extend(w.queue.pop_front());
            }
        }
        if !expired.is_empty() {
            self.fail(expired);
        }
    }

    pub(super) fn fail(&mut self, requests: Vec<CommitRequest>) {
        self.p
            .stats
            .unavailable
            .fetch_add(requests.len() as u64, Ordering::Relaxed);
        self.release(&requests);
        (self.p.sink)(FromCluster::Failed {
            tokens: requests.iter().map(|r| r.token).collect(),
        });
    }

    pub(super) fn release(&self, requests: &[CommitRequest]) {
        let cost: usize = requests.iter().map(CommitRequest::cost).sum();
        let left = self.p.pending_bytes.fetch_sub(cost, Ordering::Relaxed) - cost;
        self.p
            .stats
            .pending_bytes
            .store(left as u64, Ordering::Relaxed);
    }
}

/// One publish and its acknowledgement, classified.
async fn write_once(
    js: &Context,
    subject: String,
    message: jetstream::message::PublishMessage,
) -> WriteOutcome {
    use async_nats::jetstream::context::PublishErrorKind as Kind;
    let sent = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let ack = js.send_publish(subject.clone(), message).await?;
        ack.await
    })
    .await;
    match sent {
        Ok(Ok(ack)) => WriteOutcome::Stored(ack.sequence),
        Ok(Err(e)) if e.kind() == Kind::WrongLastSequence => {
            WriteOutcome::Conflict(read_head(js, &subject).await)
        }
        Ok(Err(e)) if e.kind() == Kind::MaxPayloadExceeded => WriteOutcome::Rejected(e.to_string()),
        Ok(Err(e)) => WriteOutcome::Unknown(e.to_string()),
        Err(_) => WriteOutcome::Unknown("no acknowledgement in time".into()),
    }
}

/// The channel's head from the stream leader (not a replica: a replica may lag).
async fn read_head(js: &Context, subject: &str) -> Option<Head> {
    let stream = js.get_stream_no_info(stream_of(subject)).await.ok()?;
    let m = tokio::time::timeout(
        REQUEST_TIMEOUT,
        stream.get_last_raw_message_by_subject(subject),
    )
    .await
    .ok()?
    .ok()?;
    Numbering::from_headers(&m.headers).map(|n| n.head_at(m.sequence))
}

/// The events stream's name for one of its subjects (`fc.ev.x` → `FC_EV`).
fn stream_of(subject: &str) -> String {
    let prefix = subject.split(".ev.").next().unwrap_or(subject);
    format!("{}_EV", prefix.to_ascii_uppercase())
}
