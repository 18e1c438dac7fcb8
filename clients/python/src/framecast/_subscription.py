"""One channel of a client: the server-side state machine, seq checking and a bounded queue."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._errors import FramecastError
from ._types import (
    CaughtUp,
    Delivery,
    Event,
    Gap,
    Item,
    Position,
    Resync,
    SubscriptionState,
    Violation,
)

if TYPE_CHECKING:
    from ._client import Client

log = logging.getLogger("framecast")

EventCallback = Callable[[Event], Awaitable[None] | None]


class _End:
    pass


_END = _End()


class _Queue:
    """A bounded FIFO for one consumer. ``put`` waits while full (a reliable subscription stops the
    client's reader, so TCP pushes back to the server); ``force`` ignores the bound."""

    def __init__(self, maxsize: int) -> None:
        self.items: deque[Item | _End] = deque()
        self.maxsize = maxsize
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()

    def full(self) -> bool:
        return len(self.items) >= self.maxsize

    async def put(self, item: Item) -> None:
        while self.full():
            self._writable.clear()
            await self._writable.wait()
        self.force(item)

    def force(self, item: Item | _End) -> None:
        self.items.append(item)
        self._readable.set()

    def drop_oldest_event(self) -> Event | None:
        """Removes the oldest event, leaving a local gap in its place (merged with a neighbour)."""
        for i, item in enumerate(self.items):
            if isinstance(item, Event):
                del self.items[i]
                prev = self.items[i - 1] if i > 0 else None
                if isinstance(prev, Gap) and prev.local:
                    self.items[i - 1] = Gap(item.channel, prev.skipped + 1, prev.from_seq, item.seq, True)
                else:
                    self.items.insert(i, Gap(item.channel, 1, item.seq, item.seq, True))
                return item
        return None

    async def get(self) -> Item | _End:
        while not self.items:
            self._readable.clear()
            await self._readable.wait()
        item = self.items.popleft()
        self._writable.set()
        return item


class Subscription:
    """A channel subscription. Iterate it for its events (``async for event in sub``) or ``items()``
    for events and notices (``Gap``, ``Resync``, ``Violation``, ``CaughtUp``) in stream order; or give
    ``subscribe()`` a callback. Events are delivered exactly once, in seq order."""

    def __init__(
        self,
        client: Client,
        channel: str,
        *,
        max_hz: int | None,
        since: Position | None,
        queue_size: int,
        delivery: Delivery | None,
        user: bool = True,
    ) -> None:
        self.channel = channel
        self.max_hz = max_hz
        self.since = since
        self.delivery: Delivery = delivery or "reliable"
        self._delivery_given = delivery is not None
        self._client = client
        self._state: SubscriptionState = "pending"
        self._position: Position | None = None
        self._desired = False
        self._on_server = False
        self._inflight: str | None = None
        self._sent_since = False
        self._recoverable: bool | None = None
        self._check_continuity = False
        self._gap_until = 0
        self._head: int | None = None
        # Snapshot + replay events still to come after `subscribed` (when the server says).
        self._expect = -1
        # A default channel: joined by the server on every connection; `_user` is whether anyone
        # subscribed to it here (nothing is queued for a default channel nobody asked for).
        self._pinned = False
        self._joined_by_server = False
        self._user = user
        # Own publications (``echo = false``): acknowledged seqs, unacknowledged publishes, jumps
        # forgiven on their credit, and a plain count for servers without ``published.seq``.
        self._own_seqs: set[int] = set()
        self._unacked = 0
        self._credit = 0
        self._legacy_own = 0
        self._queue_size = queue_size
        self._queue = _Queue(queue_size)
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed = asyncio.Event()
        self._callbacks: list[EventCallback] = []
        self._listeners: dict[str, list[Callable[[Any], Any]]] = {}
        self._consumer: asyncio.Task[None] | None = None
        self._error: FramecastError | None = None
        self._recovered: bool | None = None
        self.traits: dict[str, Any] = {}
        """Channel traits the server stated in ``positions`` (delivery, history, …), if any."""

    # ---- public ---------------------------------------------------------------------------------

    @property
    def state(self) -> SubscriptionState:
        return self._state

    @property
    def position(self) -> Position | None:
        """The last delivered position (``epoch`` is "" when the server never stated it)."""
        p = self._position
        return Position(p.seq, p.epoch) if p else None

    @property
    def is_default(self) -> bool:
        """One of the server's ``default_channels``: joined by the server on every connection
        (recovered with ``since`` on the upgrade URL); unsubscribing keeps it joined."""
        return self._pinned

    @property
    def recoverable(self) -> bool | None:
        """Whether ``since`` can recover this channel (False for default channels today)."""
        return self._recoverable

    def on(self, kind: str, listener: Callable[[Any], Any]) -> None:
        """Listens to ``gap``, ``resync``, ``violation``, ``caught_up`` (called in stream order, on the
        consumer's side) or ``state`` (called at once)."""
        self._listeners.setdefault(kind, []).append(listener)

    async def wait_ready(self) -> Subscription:
        """Waits until the subscription is live (its snapshot or replay complete)."""
        await asyncio.shield(self._ready)
        return self

    async def items(self) -> AsyncIterator[Item]:
        """Events and notices in stream order, until the subscription ends."""
        while True:
            item = await self._queue.get()
            if isinstance(item, _End):
                self._queue.force(item)  # other iterators end too
                return
            self._notify(item)
            yield item

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        async for item in self.items():
            if isinstance(item, Event):
                yield item

    def unsubscribe(self) -> asyncio.Future[None]:
        """Unsubscribes now; the returned future (await it or not) resolves once the server confirmed
        (or at once while offline). A default channel stays joined: its iterators end."""
        if self._pinned:
            self._user = False
            self._queue.force(_END)
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        self._desired = False
        self._sync()
        return asyncio.ensure_future(self._wait_closed())

    async def _wait_closed(self) -> None:
        if self._client.state in ("connected", "draining"):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), self._client.request_timeout)

    # ---- internals ------------------------------------------------------------------------------

    def _notify(self, item: Item) -> None:
        kind = {Gap: "gap", Resync: "resync", Violation: "violation", CaughtUp: "caught_up"}.get(type(item))
        if kind:
            for listener in list(self._listeners.get(kind, [])):
                try:
                    listener(item)
                except Exception:
                    log.exception("framecast: %s listener failed", kind)

    def _add_callback(self, callback: EventCallback) -> None:
        self._callbacks.append(callback)
        if self._consumer is None:
            self._consumer = asyncio.get_running_loop().create_task(self._consume())

    async def _consume(self) -> None:
        async for event in self:
            for cb in list(self._callbacks):
                try:
                    r = cb(event)
                    if inspect.isawaitable(r):
                        await r
                except Exception:
                    log.exception("framecast: callback for %s failed", self.channel)

    def _want(self) -> None:
        if not self._user:
            self._user = True
            self._queue = _Queue(self._queue_size)
            if self._state == "live":
                self._queue.force(CaughtUp(self.channel, self.position, self._recovered))
        if not self._desired or self._state in ("failed", "closed"):
            self._desired = True
            if self._state in ("failed", "closed"):
                self._error = None
                self._closed.clear()
                if self._ready.done():
                    self._ready = asyncio.get_running_loop().create_future()
                self._set_state("pending")
        self._sync()

    def _set_state(self, to: SubscriptionState) -> None:
        if self._state == to:
            return
        frm = self._state
        self._state = to
        for listener in list(self._listeners.get("state", [])):
            listener((frm, to))

    def _sync(self) -> None:
        c = self._client
        if not c._online or self._inflight:
            if not self._desired and not self._on_server and not self._inflight:
                self._close()
            return
        if self._desired and not self._on_server and self._state != "failed":
            if self._pinned and not self._user:
                return  # the server joins its default channels on connect
            since: Position | None = None
            if self._position and self._recoverable is not False and self._position.epoch:
                since = self._position
            elif not self._position and self.since:
                since = self.since
            self._inflight = "subscribe"
            self._sent_since = since is not None
            self._set_state("recovering" if since else "subscribing")
            c._send_subscribe(self, since)
        elif not self._desired and self._on_server:
            self._inflight = "unsubscribe"
            c._send_unsubscribe(self)
        elif not self._desired:
            self._close()

    def _close(self) -> None:
        if self._state == "closed":
            return
        self._position = None
        self._recoverable = None
        self._reset_own()
        self._set_state("closed")
        self._closed.set()
        if not self._ready.done():
            self._ready.set_exception(FramecastError("CLOSED", f"unsubscribed from {self.channel}"))
            self._ready.exception()  # retrieved: no "never retrieved" warning
        self._queue.force(_END)
        self._client._released(self)

    def _subscribed(self, msg: dict[str, Any]) -> None:
        """The reply to this subscription's ``subscribe``."""
        self._inflight = None
        self._on_server = True
        if not self._desired:
            self._sync()
            return
        positions = msg.get("positions") or {}
        p = positions.get(self.channel) if isinstance(positions, dict) else None
        if self._joined_by_server and p is None:
            return  # a default channel the server joined first: confirmed
        self._gap_until = 0
        self._apply(p, self._sent_since)

    def _joined_as_default(self, msg: dict[str, Any], sent_since: bool) -> None:
        """The server joined this default channel (``subscribed`` with ``"default": true``)."""
        positions = msg.get("positions") or {}
        self._pinned = True
        self._joined_by_server = True
        self._on_server = True
        self._desired = True
        self._gap_until = 0
        if self._state in ("closed", "pending", "failed"):
            self._set_state("recovering" if sent_since else "subscribing")
        self._apply(positions.get(self.channel) if isinstance(positions, dict) else None, sent_since)

    def _apply(self, p: Any, sent_since: bool) -> None:
        self._expect = -1
        valid = isinstance(p, dict) and isinstance(p.get("seq"), int) and isinstance(p.get("epoch"), str)
        if not valid or not isinstance(p, dict):
            if self._position:
                self._check_continuity = True
            self._recoverable = False
            self._set_live(None)
            return
        self._recoverable = True
        seq, epoch, recovered = p["seq"], p["epoch"], p.get("recovered")
        self.traits = {k: v for k, v in p.items() if k not in ("seq", "epoch", "recovered")}
        if not self._delivery_given and self.traits.get("delivery") in ("reliable", "conflated", "volatile"):
            self.delivery = self.traits["delivery"]
        self._recovered = None
        if sent_since and recovered is True:
            # positions.seq is the channel head at join time: replay runs since.seq+1..seq, then live.
            self._head = seq
            if not self._position:
                self._position = Position(self.since.seq if self.since else seq, epoch)
            self._recovered = True
        elif sent_since:
            self._position = Position(seq, epoch)
            self._head = None
            self._reset_own()
            self._recovered = False
            self._queue_notice(Resync(self.channel, "recovered-false", Position(seq, epoch)))
        else:
            self._position = Position(seq, epoch)
        snap, replay = self.traits.get("snapshot_events"), self.traits.get("replay_events")
        if isinstance(snap, int) and isinstance(replay, int):
            # The server says how many snapshot and replayed events follow.
            self._expect = snap + replay
            if self._expect == 0:
                self._caught_up()
                return
        # Otherwise (older servers) the reply to a later command marks the end.
        self._client._await_end(self)

    def _queue_notice(self, item: Item) -> None:
        if self._user:
            self._queue.force(item)

    def _set_live(self, recovered: bool | None) -> None:
        self._head = None
        self._expect = -1
        self._set_state("live")
        self._queue_notice(CaughtUp(self.channel, self.position, recovered))
        if not self._ready.done():
            self._ready.set_result(None)

    def _caught_up(self) -> None:
        if self._state in ("subscribing", "recovering"):
            self._set_live(self._recovered)

    def _unsubscribed(self) -> None:
        self._inflight = None
        self._on_server = False
        self._sync()

    def _refused(self, err: FramecastError) -> None:
        self._inflight = None
        self._on_server = False
        if not self._desired:
            self._sync()
            return
        self._error = err
        self._set_state("failed")
        if not self._ready.done():
            self._ready.set_exception(err)
            self._ready.exception()
        self._queue.force(_END)

    def _connection_lost(self) -> None:
        self._on_server = False
        self._joined_by_server = False
        self._expect = -1
        self._inflight = None
        self._gap_until = 0
        self._head = None
        self._check_continuity = False
        if not self._desired:
            self._close()
        elif self._state != "failed":
            self._set_state("pending")

    def _end(self) -> None:
        """The client closed for good."""
        self._desired = False
        self._on_server = False
        self._inflight = None
        self._close()

    def _reset_own(self) -> None:
        self._own_seqs.clear()
        self._credit = 0
        self._legacy_own = 0

    def _publish_sent(self) -> None:
        self._unacked += 1

    def _publish_settled(self, ack: dict[str, Any] | None) -> None:
        """A publication's outcome: ``published`` (with the ``seq`` it got, on servers that say) or
        None (refused or unknown). On an ``echo = false`` channel that seq never arrives here, so the
        seq checker skips it; any other missing seq is still a violation."""
        self._unacked = max(0, self._unacked - 1)
        self._credit = min(self._credit, self._unacked)
        if ack is None:
            return
        seq = ack.get("seq")
        if isinstance(seq, int):
            pos = self._position
            if pos and seq <= pos.seq:
                if self._credit > 0:
                    self._credit -= 1  # its jump was already forgiven on credit
            elif len(self._own_seqs) < 100_000:
                self._own_seqs.add(seq)
        elif ack.get("superseded") is not True and self._legacy_own < 1_000_000:
            self._legacy_own += 1  # a server without ``published.seq``: forgive as many jumps

    def _unexplained(self, last: int, seq: int) -> int:
        missing = seq - last - 1
        for s in list(self._own_seqs):
            if last < s < seq:
                self._own_seqs.discard(s)
                missing -= 1
            elif s <= last:
                self._own_seqs.discard(s)
        on_credit = min(missing, self._unacked - self._credit)
        if on_credit > 0:
            self._credit += on_credit
            missing -= on_credit
        legacy = min(missing, self._legacy_own)
        self._legacy_own -= legacy
        return missing - legacy

    async def _gap(self, msg: dict[str, Any]) -> None:
        if not self._desired:
            return
        gap = Gap(self.channel, int(msg["skipped"]), int(msg["from_seq"]), int(msg["to_seq"]))
        self._gap_until = max(self._gap_until, gap.to_seq)
        await self._put(gap)

    async def _event(self, msg: dict[str, Any]) -> Event | None:
        if not self._desired or self._state in ("failed", "closed"):
            return None
        seq = int(msg["seq"])
        snapshot = msg.get("snapshot") is True
        replay = False
        if not snapshot:
            pos = self._position
            if pos is None:
                self._position = Position(seq, "")
            elif self._check_continuity:
                self._check_continuity = False
                if seq != pos.seq + 1:
                    await self._put(Resync(self.channel, "unrecoverable", None))
                pos.seq = seq
            else:
                last = pos.seq
                if seq <= last:
                    await self._put(Violation(self.channel, "duplicate", last + 1, seq))
                    return None
                if seq - last > 1 and seq > self._gap_until + 1 and self._unexplained(last, seq) > 0:
                    await self._put(Violation(self.channel, "seq-jump", last + 1, seq))
                self._own_seqs.discard(seq)
                pos.seq = seq
            replay = self._head is not None and seq <= self._head
        completes = self._expect > 0
        if completes:
            self._expect -= 1
            completes = self._expect == 0
        event = self._client._make_event(msg, snapshot, replay)
        await self._put(event)
        if completes:
            self._caught_up()
        return event

    async def _put(self, item: Item) -> None:
        if not self._user:
            return  # a default channel nobody subscribed to here: client "event" listeners only
        if self.delivery == "reliable":
            await self._queue.put(item)  # full: the reader waits, TCP pushes back on the server
            return
        if isinstance(item, Event) and self._queue.full():
            self._queue.drop_oldest_event()  # conflated / volatile: newest wins, told by a local Gap
        self._queue.force(item)
