//! The streams the bridge needs: created on first use (with an incarnation id in the
//! events stream's description, which names channels' first epochs), updated when the
//! namespaces' retention changed, found again when another node created them first.
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{stream, Context};

use super::*;

impl Bridge {
    /// Creates (or updates) the event and snapshot streams; returns the event stream and its
    /// incarnation id.
    pub(super) async fn ensure_streams(
        &self,
        js: &Context,
    ) -> Result<(stream::Stream, Arc<str>), String> {
        let storage = match self.p.config.storage {
            Storage::File => stream::StorageType::File,
            Storage::Memory => stream::StorageType::Memory,
        };
        let events = stream::Config {
            name: self.events_stream.clone(),
            subjects: vec![format!("{}.ev.>", self.prefix)],
            max_messages_per_subject: self.p.retention.max_msgs_per_subject,
            max_age: self.p.retention.max_age,
            storage,
            num_replicas: self.p.config.replicas,
            allow_direct: true,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        let snapshots = stream::Config {
            name: self.snap_stream.clone(),
            subjects: vec![format!("{}.snap.>", self.prefix)],
            // Two writers' entries for one key can land out of order: a few are kept and a
            // booting node takes the highest seq.
            max_messages_per_subject: SNAPSHOT_ENTRIES_PER_KEY,
            storage,
            num_replicas: self.p.config.replicas,
            allow_direct: true,
            ..Default::default()
        };
        let (stream, incarnation) = ensure_stream(js, events).await?;
        ensure_stream(js, snapshots).await?;
        tracing::info!(stream = %self.events_stream, %incarnation, "cluster: streams ready");
        Ok((stream, incarnation))
    }
}

/// Gets the stream `config` names, creating it (with a new incarnation id in its description)
/// if it does not exist, and updating its limits if they changed; returns it and its
/// incarnation. Two nodes creating it at once: one wins, the other reads the winner's.
async fn ensure_stream(
    js: &Context,
    mut config: stream::Config,
) -> Result<(stream::Stream, Arc<str>), String> {
    let name = config.name.clone();
    let timed = |what: &'static str| {
        let name = name.clone();
        move |_| format!("{name}: {what} timed out")
    };
    let existing = tokio::time::timeout(REQUEST_TIMEOUT, js.get_stream(&config.name))
        .await
        .map_err(timed("lookup"))?;
    let stream = match existing {
        Ok(s) => s,
        Err(_) => {
            let id = format!("{:016x}", uuid::Uuid::new_v4().as_u128() as u64);
            config.description = Some(format!("{INCARNATION_PREFIX}{id}"));
            let created = tokio::time::timeout(REQUEST_TIMEOUT, js.create_stream(config.clone()))
                .await
                .map_err(timed("create"))?;
            match created {
                Ok(s) => s,
                Err(_) => tokio::time::timeout(REQUEST_TIMEOUT, js.get_stream(&config.name))
                    .await
                    .map_err(timed("lookup"))?
                    .map_err(|e| format!("{}: {e}", config.name))?,
            }
        }
    };
    let have = stream.cached_info().config.clone();
    let incarnation = have
        .description
        .as_deref()
        .and_then(|d| d.strip_prefix(INCARNATION_PREFIX))
        .map(Arc::from)
        .unwrap_or_else(|| Arc::from(have.name.as_str()));
    let changed = have.max_messages_per_subject != config.max_messages_per_subject
        || have.max_age != config.max_age
        || have.num_replicas != config.num_replicas
        || have.subjects != config.subjects;
    if changed {
        config.description = have.description.clone();
        tokio::time::timeout(REQUEST_TIMEOUT, js.update_stream(config.clone()))
            .await
            .map_err(timed("update"))?
            .map_err(|e| format!("{}: {e}", config.name))?;
        tracing::info!(stream = %config.name, "cluster: stream limits updated");
    }
    Ok((stream, incarnation))
}

/// What a framecast-created stream's description starts with, before its incarnation id.
const INCARNATION_PREFIX: &str = "framecast stream, incarnation ";
