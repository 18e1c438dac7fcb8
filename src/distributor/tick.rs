//! One tick's work, as a pure function of the registry: number each pending publication per
//! channel (after conflation, for conflated channels), encode it once into a complete WebSocket
//! frame, join a channel's frames into one `Bytes`, keep what the namespace asks for (history
//! slices, snapshot, rate-level windows), and list the channel for every shard with subscribers.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::batch::tick_batch;
use super::binary_twin::{mix_deflated, BinaryTwin};
use super::channels::ChannelRegistry;
use super::conflate::{crossed, retain_newest_per_key};
use super::deflated::deflate_frames;
use super::form::EventForms;
use super::{AckOutcome, ChannelFrames, Exclusion, Publication, PublishAck};
use crate::config::{Delivery, Namespaces};
use crate::protocol::compress::FrameDeflater;
use crate::wire::event::{put_event_frame, EventFields};

/// Bytes an event frame adds around its payload, for sizing the joined buffer up front.
const FRAME_OVERHEAD: usize = 160;

/// What one tick is.
#[derive(Clone, Copy, Debug)]
pub struct TickInput<'a> {
    /// Frame number.
    pub frame: u64,
    /// RFC 3339 time of the tick.
    pub timestamp: &'a str,
    /// The same moment in ms since the Unix epoch.
    pub unix_ms: u64,
    /// Number of shards.
    pub shards: usize,
    /// Monotonic time (history ages).
    pub now: Instant,
    /// Rate-level boundaries this tick crosses (see [`super::conflate::boundaries`]).
    pub boundaries: u8,
    /// Host degradation level: conflated channels go out only when this level's boundary is
    /// crossed (0 = every tick).
    pub host_level: u8,
    /// Whether rate levels exist (a frame clock runs).
    pub levels: bool,
}

impl<'a> TickInput<'a> {
    /// A tick without a frame clock (immediate mode): no rate levels.
    pub fn immediate(frame: u64, timestamp: &'a str, shards: usize, now: Instant) -> TickInput<'a> {
        TickInput {
            frame,
            timestamp,
            unix_ms: 0,
            shards,
            now,
            boundaries: 0,
            host_level: 0,
            levels: false,
        }
    }
}

/// Event `seq` of `channel` as this tick carries it.
fn event_fields<'a>(
    channel: &'a str,
    seq: u64,
    input: &TickInput<'a>,
    p: &'a Publication,
) -> EventFields<'a> {
    // A committed event carries its writer's frame and time, so every node encodes it alike.
    let (frame, timestamp, unix_ms) = match &p.committed {
        Some(c) => (
            c.frame,
            std::str::from_utf8(&c.timestamp).unwrap_or(input.timestamp),
            // Only a binary frame shows it; a JSON event would parse it for nothing.
            if p.binary {
                committed_unix_ms(&c.timestamp)
            } else {
                input.unix_ms
            },
        ),
        None => (input.frame, input.timestamp, input.unix_ms),
    };
    EventFields {
        channel,
        seq,
        frame,
        timestamp,
        unix_ms,
        event_type: &p.event_type,
        data: &p.data,
        key: p.key.as_deref(),
        snapshot: false,
        binary: p.binary,
    }
}

/// A committed event's time (RFC 3339, from its writer) in ms since the Unix epoch.
pub(crate) fn committed_unix_ms(timestamp: &[u8]) -> u64 {
    std::str::from_utf8(timestamp)
        .ok()
        .and_then(crate::wire::WallTime::parse_rfc3339)
        .map_or(0, crate::wire::WallTime::unix_ms)
}

/// The seq `p` gets when the previous event had `prev`: the cluster's, or the next one.
fn seq_after(prev: u64, p: &Publication) -> u64 {
    p.committed.as_ref().map_or(prev + 1, |c| c.seq)
}

/// The `published` reply to `p` (if it asked for one): numbered `seq` in tick `frame`.
fn numbered(p: &Publication, seq: u64, frame: u64) -> Option<PublishAck> {
    PublishAck::of(p, AckOutcome::Numbered { seq, frame })
}

/// Encodes every pending publication; returns each shard's items (index = shard). Replies to
/// acknowledged publications are left in the registry's `acks`.
pub fn encode_tick(
    registry: &mut ChannelRegistry,
    input: &TickInput<'_>,
    namespaces: &Namespaces,
) -> Vec<Vec<ChannelFrames>> {
    let mut per_shard: Vec<Vec<ChannelFrames>> = (0..input.shards).map(|_| Vec::new()).collect();
    let dirty = registry.take_dirty();
    let mut kept_deflater = registry.deflater.take();
    let demand = registry.demand;
    // Compressed twins only while some connection agreed to deflate (events before replay plain).
    let mut deflater = kept_deflater.as_mut().filter(|_| demand.deflate);
    let mut acks = Vec::new();
    let mut deferred = Vec::new();
    let mut levelled = Vec::new();
    for name in &dirty {
        let ns = namespaces.of(name);
        let conflated = ns.delivery == Delivery::Conflated;
        if conflated && !crossed(input.boundaries, input.host_level) {
            deferred.push(name.clone());
            continue;
        }
        let Some(state) = registry.get_mut(name) else {
            continue;
        };
        let mut pending = std::mem::take(&mut state.pending);
        // Committed events were conflated by their writer; dropping one here would be a gap.
        if conflated && pending.iter().all(|p| p.committed.is_none()) {
            retain_newest_per_key(&mut pending, |p| {
                let outcome = AckOutcome::Superseded { frame: input.frame };
                acks.extend(PublishAck::of(p, outcome));
            });
        }
        if ns.snapshot {
            let mut seq = state.last_seq;
            for p in &pending {
                seq = seq_after(seq, p);
                let event = event_fields(name, seq, input, p);
                let snapshot = state.snapshot.get_or_default();
                snapshot.put_with(p.key.as_ref(), &event, deflater.as_deref_mut());
            }
        }
        let subscribed = !state.shards.is_empty();
        // Cluster mode: events the stream dropped before this node read them (told to the
        // subscribers there are now; a later subscriber starts after them anyway).
        let lost = state.lost.take();
        let history_cap = ns.history_size as usize;
        if !subscribed && history_cap == 0 {
            for p in &pending {
                state.last_seq = seq_after(state.last_seq, p);
                acks.extend(numbered(p, state.last_seq, input.frame));
            }
            continue;
        }
        let size: usize = pending
            .iter()
            .map(|p| p.data.len() + p.event_type.len() + name.len() + FRAME_OVERHEAD)
            .sum();
        let mut out = BytesMut::with_capacity(size);
        // Cluster mode: events the stream dropped before this node read them.
        if let Some(lost) = lost.filter(|_| subscribed) {
            let (from, to) = *lost;
            out.extend_from_slice(&crate::wire::reply::gap(name, to + 1 - from, from, to));
        }
        let events_from = out.len();
        let feed_levels = conflated && subscribed && input.levels;
        // Frame boundaries, only when history or rate levels keep per-event slices.
        let track = history_cap > 0 || feed_levels;
        let mut spans = Vec::new();
        let mut exclusions = Vec::new();
        // Binary events: the same events with those as binary frames, built beside the plain
        // ones (a copy of each JSON event's frame, so `?binary=1` connections get one buffer).
        let mut bin = (pending.iter().any(|p| p.binary)).then(|| BinaryTwin::new(&out, size));
        let first_seq = pending
            .first()
            .map_or(state.last_seq + 1, |p| seq_after(state.last_seq, p));
        for p in &pending {
            state.last_seq = seq_after(state.last_seq, p);
            acks.extend(numbered(p, state.last_seq, input.frame));
            let start = out.len();
            let fields = event_fields(name, state.last_seq, input, p);
            put_event_frame(&mut out, &fields);
            if track {
                spans.push((start, out.len(), state.last_seq));
            }
            let excluded = p.origin.filter(|_| !ns.echo);
            if let Some(origin) = excluded {
                exclusions.push(Exclusion {
                    origin,
                    start: start as u32,
                    end: out.len() as u32,
                });
            }
            if let Some(twin) = &mut bin {
                twin.add(&fields, &out, start, excluded);
            }
        }
        let frames = out.freeze();
        let twin = deflater
            .as_deref_mut()
            .map(|d| deflate_frames(d, &frames, Some(&exclusions[..]).filter(|x| !x.is_empty())));
        let binary = bin.map(BinaryTwin::freeze);
        // For `?binary=1` connections that agreed to deflate: the binary frames beside the JSON
        // events' compressed frames (no second compression).
        let binary_deflated = match (&binary, &twin) {
            (Some((bin, events)), Some((deflated, bounds))) => {
                Some(mix_deflated(bin, events, deflated, bounds, events_from))
            }
            _ => None,
        };
        for (i, (&(start, end, seq), p)) in spans.iter().zip(&pending).enumerate() {
            let frame = frames.slice(start..end);
            let deflated = twin.as_ref().map_or(Bytes::new(), |(t, bounds)| {
                t.frames.slice(bounds.twin(start)..bounds.twin(end))
            });
            let binary_frame = match (&binary, p.binary) {
                (Some((t, events)), true) => t.frames.slice(events[i].bin.clone()),
                _ => Bytes::new(),
            };
            if feed_levels {
                let origin = if ns.echo { None } else { p.origin };
                state
                    .levels
                    .get_or_default()
                    .add(p.key.as_ref(), seq, (&frame, &deflated), origin);
            }
            let forms = EventForms {
                plain: frame.clone(),
                deflated,
                binary: binary_frame,
            };
            state.history.push(seq, forms, input.now, history_cap);
        }
        state.dispatched_frame = input.frame;
        let variants = if feed_levels && input.boundaries != 0 {
            state
                .levels
                .get_mut()
                .and_then(|l| {
                    l.emit(
                        name,
                        input.boundaries,
                        state.last_seq,
                        deflater.as_deref_mut(),
                    )
                })
                .map(Arc::from)
        } else {
            None
        };
        if feed_levels && state.has_level_windows() {
            levelled.push(name.clone());
        }
        if subscribed {
            // A publisher that must not get its own event back is served event by event.
            let batch = if demand.batch && exclusions.is_empty() {
                let count = pending.len() as u32;
                tick_batch(&frames, events_from, count, deflater.as_deref_mut())
            } else {
                None
            };
            let item = ChannelFrames {
                channel: name.clone(),
                frames,
                first_seq,
                count: pending.len() as u32,
                exclusions: (!exclusions.is_empty()).then(|| Arc::from(exclusions)),
                delivery: ns.delivery,
                variants,
                deflated: twin.map(|(t, _)| t),
                binary: binary.map(|(t, _)| t),
                binary_deflated,
                batch,
            };
            for shard in state.shards.iter() {
                if let Some(list) = per_shard.get_mut(shard) {
                    list.push(item.clone());
                }
            }
        }
    }
    registry.return_dirty(dirty);
    registry.acks.extend(acks);
    registry.defer(deferred);
    emit_level_windows(registry, input, &mut per_shard, levelled, deflater);
    registry.deflater = kept_deflater;
    per_shard
}

/// At a boundary, conflated channels with no new event this tick still close their rate-level
/// windows, so a stepped-down subscriber gets the newest state without waiting for more events.
fn emit_level_windows(
    registry: &mut ChannelRegistry,
    input: &TickInput<'_>,
    per_shard: &mut [Vec<ChannelFrames>],
    fresh: Vec<Arc<str>>,
    mut deflater: Option<&mut FrameDeflater>,
) {
    let previous = std::mem::take(&mut registry.levelled);
    let mut still = Vec::with_capacity(previous.len() + fresh.len());
    for name in previous {
        let Some(state) = registry.get_mut(&name) else {
            continue;
        };
        if state.dispatched_frame == input.frame {
            continue; // handled (and re-listed if needed) above
        }
        if input.boundaries != 0 {
            let last_seq = state.last_seq;
            let emitted = (state.levels.get_mut())
                .and_then(|l| l.emit(&name, input.boundaries, last_seq, deflater.as_deref_mut()));
            if let Some(variants) = emitted {
                let item = ChannelFrames {
                    channel: name.clone(),
                    frames: Bytes::new(),
                    first_seq: state.last_seq + 1,
                    count: 0,
                    exclusions: None,
                    delivery: Delivery::Conflated,
                    variants: Some(Arc::from(variants)),
                    deflated: None,
                    binary: None,
                    binary_deflated: None,
                    batch: None,
                };
                for shard in state.shards.iter() {
                    if let Some(list) = per_shard.get_mut(shard) {
                        list.push(item.clone());
                    }
                }
            }
        }
        if state.has_level_windows() {
            still.push(name);
        }
    }
    still.extend(fresh);
    registry.levelled = still;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributor::conflate::boundaries;
    use crate::distributor::Publication;

    fn publication(channel: &str, n: u32) -> Publication {
        Publication {
            origin: None,
            channel: Arc::from(channel),
            event_type: Bytes::from_static(b"\"t\""),
            data: Bytes::from(n.to_string()),
            binary: false,
            key: None,
            ack: None,
            committed: None,
        }
    }

    fn conflated() -> Namespaces {
        let t: toml::Table = "[namespaces.pos]\ndelivery = \"conflated\"\n"
            .parse()
            .unwrap();
        Namespaces::from_toml(t["namespaces"].as_table().unwrap()).unwrap()
    }

    fn ticked(frame: u64) -> TickInput<'static> {
        TickInput {
            frame,
            timestamp: "ts",
            unix_ms: 0,
            shards: 1,
            now: Instant::now(),
            boundaries: boundaries(frame - 1, frame),
            host_level: 0,
            levels: true,
        }
    }

    #[test]
    fn seq_counts_per_channel_and_only_interested_shards_get_frames() {
        let mut reg = ChannelRegistry::default();
        reg.join(1, Arc::from("a"));
        for n in 0..3 {
            reg.queue(publication("a", n));
        }
        reg.queue(publication("nobody", 0));
        let batches = encode_tick(
            &mut reg,
            &TickInput::immediate(7, "ts", 2, Instant::now()),
            &Namespaces::default(),
        );
        assert!(batches[0].is_empty());
        assert_eq!(batches[1].len(), 1);
        assert_eq!(batches[1][0].count, 3);
        assert_eq!(batches[1][0].first_seq, 1);
        let text = String::from_utf8_lossy(&batches[1][0].frames).to_string();
        assert!(
            text.contains("\"seq\":1,")
                && text.contains("\"seq\":3,")
                && text.contains("\"frame\":7,")
        );
        reg.queue(publication("a", 9));
        let next = encode_tick(
            &mut reg,
            &TickInput::immediate(8, "ts", 2, Instant::now()),
            &Namespaces::default(),
        );
        assert!(String::from_utf8_lossy(&next[1][0].frames).contains("\"seq\":4,"));
        assert!(!reg.has_pending());
    }

    #[test]
    fn conflated_channel_sends_only_the_newest_event_of_a_tick() {
        let mut reg = ChannelRegistry::default();
        reg.join(0, Arc::from("pos:x"));
        for n in 0..5 {
            reg.queue(publication("pos:x", n));
        }
        let out = encode_tick(&mut reg, &ticked(1), &conflated());
        assert_eq!(out[0][0].count, 1);
        let text = String::from_utf8_lossy(&out[0][0].frames).to_string();
        assert!(
            text.contains("\"seq\":1,") && text.contains("\"data\":4}"),
            "{text}"
        );
    }

    #[test]
    fn level_windows_close_at_boundaries_even_without_new_events() {
        let mut reg = ChannelRegistry::default();
        reg.join(0, Arc::from("pos:x"));
        reg.queue(publication("pos:x", 1));
        let first = encode_tick(&mut reg, &ticked(1), &conflated());
        assert!(
            first[0][0].variants.is_none(),
            "frame 1 crosses no boundary"
        );
        let second = encode_tick(&mut reg, &ticked(2), &conflated());
        let variants = second[0][0].variants.as_ref().expect("level 1 closes at 2");
        assert_eq!(second[0][0].count, 0);
        let one = variants[0].as_ref().unwrap();
        assert!(String::from_utf8_lossy(&one.bytes).contains("\"data\":1}"));
    }

    #[test]
    fn host_degradation_defers_conflated_channels_to_their_boundary() {
        let mut reg = ChannelRegistry::default();
        reg.join(0, Arc::from("pos:x"));
        reg.queue(publication("pos:x", 1));
        let mut input = ticked(3);
        input.host_level = 1;
        assert!(encode_tick(&mut reg, &input, &conflated())[0].is_empty());
        reg.queue(publication("pos:x", 2));
        let mut input = ticked(4);
        input.host_level = 1;
        let out = encode_tick(&mut reg, &input, &conflated());
        assert_eq!(
            out[0][0].count, 1,
            "the two ticks' events merge into the newest"
        );
    }

    #[test]
    fn with_compression_each_channel_gets_a_compressed_twin_of_the_same_events() {
        let t: toml::Table = "[namespaces.chat]\nhistory_size = 10\necho = false\n"
            .parse()
            .unwrap();
        let ns = Namespaces::from_toml(t["namespaces"].as_table().unwrap()).unwrap();
        let mut reg = ChannelRegistry::default();
        reg.deflater = Some(FrameDeflater::new(1));
        reg.join(0, Arc::from("chat:1"));
        let me = crate::distributor::Origin {
            shard: 0,
            conn: crate::conn_id::ConnId::default(),
        };
        for n in 0..3u32 {
            let mut p = publication("chat:1", n);
            p.data = Bytes::from(format!(
                r#"{{"x":{n}.5,"y":{n}.25,"label":"unit {n} position"}}"#
            ));
            p.origin = (n == 1).then_some(me);
            reg.queue(p);
        }
        let input = TickInput::immediate(1, "2026-12-03T15:00:00.000Z", 1, Instant::now());
        let item = &encode_tick(&mut reg, &input, &ns)[0][0];
        let twin = item.deflated.as_ref().expect("compression is on");
        let plain = crate::testing::read_server_frames(&item.frames);
        let inflated = crate::testing::read_server_frames(&twin.frames);
        assert_eq!(plain.len(), 3);
        assert!(inflated.iter().all(|(compressed, _)| *compressed));
        let payloads = |v: &[(bool, Vec<u8>)]| v.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>();
        assert_eq!(payloads(&plain), payloads(&inflated));
        assert!(twin.frames.len() < item.frames.len());
        // The publisher's own event is excluded from the twin as from the plain frames.
        let x = twin.exclusions.as_ref().unwrap()[0];
        let own =
            crate::testing::read_server_frames(&twin.frames[x.start as usize..x.end as usize]);
        assert_eq!(own[0].1, plain[1].1);
        // History keeps both: a deflate joiner replays compressed frames.
        let state = reg.get_mut("chat:1").unwrap();
        let replay = state
            .history
            .after(
                1,
                3,
                crate::distributor::Form {
                    deflate: true,
                    binary: false,
                },
            )
            .unwrap();
        let replayed: Vec<_> = replay
            .iter()
            .flat_map(|f| crate::testing::read_server_frames(f))
            .collect();
        assert!(replayed.iter().all(|(compressed, _)| *compressed));
        assert_eq!(payloads(&replayed), payloads(&plain[1..]));
    }

    #[test]
    fn without_a_compressing_or_batching_connection_neither_form_is_built() {
        let mut reg = ChannelRegistry::default();
        reg.deflater = Some(FrameDeflater::new(2));
        reg.demand = crate::distributor::channels::WireDemand {
            deflate: false,
            batch: false,
        };
        reg.join(0, Arc::from("a"));
        for n in 0..3 {
            reg.queue(publication("a", n));
        }
        let input = TickInput::immediate(1, "ts", 1, Instant::now());
        let item = &encode_tick(&mut reg, &input, &Namespaces::default())[0][0];
        assert_eq!(item.count, 3);
        assert!(item.deflated.is_none() && item.batch.is_none());
        assert!(
            reg.deflater.is_some(),
            "kept for when a compressing client comes"
        );
    }

    #[test]
    fn history_keeps_frames_while_nobody_is_subscribed() {
        let t: toml::Table = "[namespaces.chat]\nhistory_size = 10\n".parse().unwrap();
        let ns = Namespaces::from_toml(t["namespaces"].as_table().unwrap()).unwrap();
        let mut reg = ChannelRegistry::default();
        for n in 0..3 {
            reg.queue(publication("chat:1", n));
        }
        encode_tick(
            &mut reg,
            &TickInput::immediate(1, "ts", 1, Instant::now()),
            &ns,
        );
        let state = reg.get_mut("chat:1").unwrap();
        assert_eq!(
            state.history.after(1, 3, Default::default()).unwrap().len(),
            2
        );
    }
}
