//! A shard's connections: a slab indexed by [`Slot`], with the per-connection bookkeeping the
//! shard keeps beside the sans-IO [`Conn`]. The table names each connection with a [`ConnId`]
//! (slot and generation); a slot is reused only after the driver reported the connection closed,
//! and with the next generation, so nothing meant for an earlier connection reaches a newer one.
//! Its own module (not the shard's) because the shard loop and fan-out both work on it: fan-out
//! depends on the table, not on the shard.

pub(crate) mod send_queue;

pub use send_queue::SendQueue;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::conn::{AuthTimer, CloseOrder};
use crate::conn::{Conn, ConnSettings};
use crate::conn_id::{ConnId, Slot};

/// Per-connection application state (who the client is, what it asked for).
#[derive(Debug, Default)]
pub struct Session {
    /// Identifier sent in `connected`.
    pub client_id: uuid::Uuid,
    /// Channels subscribed or being joined.
    pub channels: Vec<Subscription>,
    /// The authenticated user, if any.
    pub identity: Option<Box<crate::auth::Identity>>,
    /// Publish rate buckets, per namespace (allocated on first rate-limited publish).
    pub rates: RareList<RateBucket>,
    /// Replies waiting behind a `subscribe` the distributor has not answered yet (allocated
    /// only while one is pending).
    pub held: Option<Box<HeldReplies>>,
    /// Where the client left its default channels (`?since=` on the upgrade), kept until they
    /// are joined.
    pub defaults_since: Option<Box<[(String, crate::wire::command::StreamPosition)]>>,
    /// The default channels were joined (once per connection).
    pub defaults_joined: bool,
    /// The client asked for tick batches (`?batch=1`): a channel's events of one tick come as
    /// one JSON array message.
    pub batch: bool,
    /// The client asked for binary frames (`?binary=1`): binary events come as binary frames,
    /// not in base64.
    pub binary: bool,
    /// The upgrade completed: `batch` and the connection's permessage-deflate are counted in the
    /// shard's gauges until the connection is removed.
    pub opened: bool,
}

impl Session {
    /// Notes a `subscribe` whose `subscribed` reply will come with the distributor's answer:
    /// replies to later commands wait behind it.
    pub fn expect_join(&mut self) {
        self.held
            .get_or_insert_with(Box::default)
            .queue
            .push_back(Held::Join);
    }

    /// Hands `frame` back to be queued now, or keeps it behind a pending join.
    pub fn hold(&mut self, frame: Bytes) -> Option<Bytes> {
        match &mut self.held {
            Some(held) => {
                held.bytes += frame.len();
                held.queue.push_back(Held::Reply(frame));
                None
            }
            None => Some(frame),
        }
    }

    /// The oldest pending join was answered: passes on the replies that waited behind it, up to
    /// the next pending join.
    pub fn release_held(&mut self, mut out: impl FnMut(Bytes)) {
        let Some(held) = &mut self.held else { return };
        if matches!(held.queue.front(), Some(Held::Join)) {
            held.queue.pop_front();
        }
        while let Some(Held::Reply(_)) = held.queue.front() {
            if let Some(Held::Reply(frame)) = held.queue.pop_front() {
                held.bytes -= frame.len();
                out(frame);
            }
        }
        if held.queue.is_empty() {
            self.held = None;
        }
    }

    /// Bytes of replies held back (they count against the client's queue cap).
    pub fn held_bytes(&self) -> usize {
        self.held.as_ref().map_or(0, |h| h.bytes)
    }

    /// How many `subscribe`s wait for the distributor's answer (replies are held behind them).
    pub fn pending_joins(&self) -> usize {
        self.held.as_ref().map_or(0, |h| {
            h.queue.iter().filter(|x| matches!(x, Held::Join)).count()
        })
    }
}

/// Replies held so that a client reads them in the order it sent its commands, although a
/// `subscribe` is answered a tick later, by the distributor.
#[derive(Debug, Default)]
pub struct HeldReplies {
    queue: VecDeque<Held>,
    bytes: usize,
}

#[derive(Debug)]
enum Held {
    /// A `subscribe` waiting for its answer.
    Join,
    /// A reply to a later command.
    Reply(Bytes),
}

/// A subscription's lifecycle. The distributor counts a subscriber in when it answers the
/// join (unless it refuses the channel), so only the shard side that sees the answer knows
/// whether a `leave` is owed: an unsubscribe or close while `Joining` sends none, and the
/// answer settles it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubState {
    /// Asked of the distributor, not answered yet.
    Joining,
    /// In the shard's topics.
    Live,
    /// Unsubscribed while joining: the answer sends the `leave` (if the channel was counted in)
    /// and drops the entry.
    Cancelled,
}

impl Subscription {
    /// Whether the client still holds it (joining or live, not cancelled).
    pub fn held(&self) -> bool {
        self.state != SubState::Cancelled
    }
}

impl Session {
    /// The oldest entry for `name` still waiting for the distributor's answer (answers come
    /// in request order, and entries are kept in request order).
    pub fn waiting(&self, name: &str) -> Option<usize> {
        self.channels
            .iter()
            .position(|s| s.state != SubState::Live && *s.name == *name)
    }

    /// Names of the channels the client holds.
    pub fn held_names(&self) -> Vec<&str> {
        (self.channels.iter())
            .filter(|s| s.held())
            .map(|s| &*s.name)
            .collect()
    }
}

/// One channel of a connection.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// The channel name.
    pub name: Arc<str>,
    /// Where the subscription is in its lifecycle.
    pub state: SubState,
    /// Rate level asked for with `max_hz`.
    pub floor: u8,
}

/// Events a client did not get on one channel, told in-stream before its next event there.
#[derive(Debug, Clone)]
pub struct PendingGap {
    /// The channel.
    pub channel: Arc<str>,
    /// Events not delivered.
    pub skipped: u64,
    /// First sequence number of the range.
    pub from_seq: u64,
    /// Last sequence number of the range.
    pub to_seq: u64,
}

/// A token bucket for one namespace's `publish_rate`.
#[derive(Debug)]
pub struct RateBucket {
    /// Namespace name.
    pub namespace: String,
    /// Tokens left (one per publication).
    pub tokens: f64,
    /// Last refill.
    pub last: std::time::Instant,
    /// Refusals in the current one-second window.
    pub strikes: u32,
    /// Start of that window.
    pub window: std::time::Instant,
}

/// Where a connection is with the driver. One send at a time; once the driver is told to
/// close, nothing else is asked of it until it reports `Closed` (a send still in flight then
/// completes, or is cancelled, without leaving `Closing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotIo {
    /// Registered, no send in flight.
    Idle,
    /// A send is in flight: the driver owns its batch until [`Event::Sent`].
    ///
    /// [`Event::Sent`]: crate::driver::Event::Sent
    Sending,
    /// The driver was told to close it; waiting for `Closed`.
    Closing,
}

/// One connection and the shard's bookkeeping for it.
#[derive(Debug)]
pub struct Entry {
    /// The connection's id (set by [`ConnTable::insert`]).
    pub id: ConnId,
    /// Protocol state and outbox.
    pub conn: Conn,
    /// Subscriptions.
    pub session: Session,
    /// What the driver is doing with the connection.
    pub io: SlotIo,
    /// Already waiting in the shard's send queue (`dirty`).
    pub dirty: bool,
    /// The earliest deadline the shard's timer queue holds for this connection, in the queue's
    /// own units (see `shard/deadlines.rs`; `u32::MAX`: none).
    pub timer_at: u32,
    /// Step-down level for conflated channels (0 = full rate), from the queue's fill.
    pub degrade: u8,
    /// Frame of the batch in which `degrade` was last evaluated.
    pub degrade_frame: u64,
    /// Missed events to report, per channel (empty unless events were dropped).
    pub gaps: RareList<PendingGap>,
    /// `wss://`: the connection's TLS session, between the socket and `conn`.
    pub tls: Option<Box<crate::tls::TlsSession>>,
}

impl Entry {
    /// A fresh entry around `conn`.
    pub fn new(conn: Conn, session: Session) -> Entry {
        Entry {
            id: ConnId::default(),
            conn,
            session,
            io: SlotIo::Idle,
            dirty: false,
            timer_at: u32::MAX,
            degrade: 0,
            degrade_frame: 0,
            gaps: RareList::default(),
            tls: None,
        }
    }

    /// Whether the driver was told to close it.
    pub fn is_closing(&self) -> bool {
        self.io == SlotIo::Closing
    }

    /// What the shard does after a read was handed to the connection: first the auth deadline
    /// the commands moved (`auth`), then the close they ordered (`order`), then the slow-consumer
    /// check: an outbox over
    /// `max_queued_bytes`, or replies held behind a join over it, closes with 1008.
    pub fn after_input(
        &mut self,
        order: Option<CloseOrder>,
        auth: Option<AuthTimer>,
        settings: &ConnSettings,
        now: Instant,
    ) {
        if let Some(timer) = auth {
            self.conn.set_auth_timer(timer);
        }
        if let Some(order) = order {
            self.conn.close(order.code, order.text, order.reason, now);
        }
        if self.conn.queue_over(settings.max_queued_bytes)
            || self.session.held_bytes() > settings.max_queued_bytes
        {
            self.conn.close_slow_consumer(now);
        }
    }
}

/// A list most connections never use: one pointer while empty (a `Vec` is three words), the
/// storage allocated on the first push and freed when the last element goes.
#[derive(Debug)]
pub struct RareList<T>(
    #[allow(clippy::box_collection)] // deliberate: 8 bytes per connection instead of 24
    Option<Box<Vec<T>>>,
);

impl<T> Default for RareList<T> {
    fn default() -> Self {
        RareList(None)
    }
}

impl<T> RareList<T> {
    /// Appends an element.
    pub fn push(&mut self, value: T) {
        self.0.get_or_insert_with(Box::default).push(value);
    }

    /// Removes element `i` (the last one takes its place), freeing the storage when empty.
    pub fn swap_remove(&mut self, i: usize) -> T {
        let list = self.0.as_mut().expect("index within a non-empty list");
        let value = list.swap_remove(i);
        if list.is_empty() {
            self.0 = None;
        }
        value
    }
}

impl<T> std::ops::Deref for RareList<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl<T> std::ops::DerefMut for RareList<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.0.as_deref_mut().map_or(&mut [], Vec::as_mut_slice)
    }
}

/// Slab of entries, each slot with the generation of its latest connection.
#[derive(Debug, Default)]
pub struct ConnTable {
    slots: Vec<TableSlot>,
    free: Vec<Slot>,
    live: usize,
}

#[derive(Debug, Default)]
struct TableSlot {
    /// The id of the slot's latest connection (live or gone).
    id: ConnId,
    entry: Option<Entry>,
}

impl ConnTable {
    /// Stores an entry under the next generation of a free slot; returns (and sets) its id.
    pub fn insert(&mut self, mut entry: Entry) -> ConnId {
        self.live += 1;
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = self.slots.len() as Slot;
                self.slots.push(TableSlot {
                    id: ConnId::new(slot, 0),
                    entry: None,
                });
                slot
            }
        };
        let place = &mut self.slots[slot as usize];
        debug_assert!(place.entry.is_none());
        place.id = place.id.next();
        entry.id = place.id;
        place.entry = Some(entry);
        place.id
    }

    /// Frees the slot of `id`, if it still holds that connection.
    pub fn remove(&mut self, id: ConnId) -> Option<Entry> {
        let place = self.slots.get_mut(id.slot as usize)?;
        if place.id != id {
            return None;
        }
        let entry = place.entry.take()?;
        self.live -= 1;
        self.free.push(id.slot);
        Some(entry)
    }

    /// The entry in `slot`, if live (for the shard's own slot lists, which it keeps in step
    /// with the table).
    pub fn get_mut(&mut self, slot: Slot) -> Option<&mut Entry> {
        self.slots.get_mut(slot as usize)?.entry.as_mut()
    }

    /// The entry of connection `id`, if it is still in the table (for what comes from the
    /// driver or the distributor, which may name a connection that is gone).
    pub fn get_id_mut(&mut self, id: ConnId) -> Option<&mut Entry> {
        let place = self.slots.get_mut(id.slot as usize)?;
        if place.id != id {
            return None;
        }
        place.entry.as_mut()
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no entry is live.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Every live entry with its slot.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Slot, &mut Entry)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, e)| e.entry.as_mut().map(|e| (i as Slot, e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_joins_counts_the_joins_replies_wait_behind() {
        let mut s = Session::default();
        assert_eq!(s.pending_joins(), 0);
        s.expect_join();
        assert!(s.hold(Bytes::from_static(b"r")).is_none());
        s.expect_join();
        assert_eq!(s.pending_joins(), 2);
        let mut out = Vec::new();
        s.release_held(|f| out.push(f));
        assert_eq!((s.pending_joins(), out.len()), (1, 1));
        s.release_held(|f| out.push(f));
        assert_eq!(s.pending_joins(), 0);
    }

    fn entry() -> Entry {
        let now = Instant::now();
        let conn = Conn::new(
            now,
            &crate::testing::settings(1024),
            crate::conn::Admission::Admit,
        );
        Entry::new(conn, Session::default())
    }

    #[test]
    fn a_reused_slot_names_a_new_connection() {
        let mut table = ConnTable::default();
        let first = table.insert(entry());
        assert_eq!(table.get_id_mut(first).map(|e| e.id), Some(first));
        assert!(table.remove(first).is_some());
        let second = table.insert(entry());
        assert_eq!(second.slot, first.slot);
        assert_ne!(second, first);
        assert!(
            table.get_id_mut(first).is_none(),
            "an answer for the gone connection"
        );
        assert!(table.remove(first).is_none());
        assert!(table.get_id_mut(second).is_some());
    }

    #[test]
    fn an_unused_rare_list_costs_one_pointer() {
        assert_eq!(std::mem::size_of::<RareList<PendingGap>>(), 8);
    }

    #[test]
    fn a_rare_list_frees_its_storage_when_the_last_element_goes() {
        let mut list = RareList::default();
        list.push(1);
        list.push(2);
        assert_eq!(list.swap_remove(0), 1);
        assert_eq!(&*list, &[2]);
        assert!(list.0.is_some());
        list.swap_remove(0);
        assert!(list.0.is_none() && list.is_empty());
    }
}
