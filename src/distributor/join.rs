//! Answering a join: count the subscriber in, report each channel's position (seq, epoch) and
//! choose what precedes live events: the missed events from history when the client's `since`
//! can be served in full, otherwise the namespace's snapshot. The answer travels on the shard's
//! inbox ahead of the next tick, so replayed and live events meet without gap or repeat.

use super::channels::ChannelRegistry;
use super::ingress::{JoinReply, JoinRequest, Joined, JoinedChannel};
use crate::config::Namespaces;
use crate::limits::MAX_RECOVERY_BYTES;

/// Builds the answer to `request`.
pub(crate) fn answer(
    registry: &mut ChannelRegistry,
    mut request: JoinRequest,
    namespaces: &Namespaces,
) -> Joined {
    let asked = std::mem::take(&mut request.channels);
    let mut channels = Vec::with_capacity(asked.len());
    let mut replay_room = MAX_RECOVERY_BYTES;
    // The server's default channels are its own: they never hit the clients' max_channels.
    let by_client = request.reply != Some(JoinReply::Defaults);
    // All or nothing: a request that would create more channels than clients may still create
    // joins none of them (creating some first would hold room other requests could use).
    let creates = asked.iter().filter(|(n, _)| !registry.contains(n)).count();
    let refuse_all = by_client && creates > registry.client_room();
    // In a cluster, a client that subscribed before a channel's first event holds the empty
    // epoch: its `since` counts from the start of whatever epoch the stream began.
    let clustered = registry.clustered;
    let form = request.form;
    for (name, since) in &asked {
        let ns = namespaces.of(name);
        let state = match refuse_all {
            true => None,
            false => registry.join_as(request.shard, name.clone(), by_client),
        };
        let Some(state) = state else {
            // At max_channels: nothing was created or counted.
            channels.push(JoinedChannel {
                name: name.clone(),
                seq: 0,
                epoch: "".into(),
                recovered: None,
                frames: Vec::new(),
                events: 0,
                refused: true,
            });
            continue;
        };
        let recovered = since.as_ref().map(|pos| {
            let same_epoch = *pos.epoch == *state.epoch || (clustered && pos.epoch.is_empty());
            let missed = same_epoch
                .then(|| state.history.after(pos.seq, state.last_seq, form))
                .flatten()?;
            // One request replays at most MAX_RECOVERY_BYTES; beyond, the client resyncs.
            let bytes: usize = missed.iter().map(|f| f.len()).sum();
            replay_room = replay_room.checked_sub(bytes)?;
            Some(missed)
        });
        let (recovered, frames, events) = match recovered {
            Some(Some(missed)) => {
                let n = missed.len();
                (Some(true), missed, n)
            }
            other => {
                let snapshot = state.snapshot.get_mut().filter(|_| ns.snapshot);
                let events = snapshot.as_ref().map_or(0, |s| s.len());
                let frames = snapshot.and_then(|s| s.frames_for(form));
                let frames = frames.into_iter().collect();
                (other.map(|_| false), frames, events)
            }
        };
        channels.push(JoinedChannel {
            name: name.clone(),
            seq: state.last_seq,
            epoch: state.epoch.clone(),
            recovered,
            frames,
            events,
            refused: false,
        });
    }
    request.channels = asked;
    Joined { request, channels }
}
