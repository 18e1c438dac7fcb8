"""Public data types of the framecast client."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ConnectionState = Literal[
    "idle", "connecting", "authenticating", "connected", "draining", "reconnecting", "failed", "closed"
]
"""Connection states: ``idle`` before ``connect()``, ``closed`` after ``close()``."""

SubscriptionState = Literal["pending", "subscribing", "recovering", "live", "failed", "closed"]
"""Subscription states (as in the TypeScript client)."""

TokenReason = Literal["connect", "refresh", "rejected", "expired"]
"""Why ``get_token`` is called."""

Delivery = Literal["reliable", "conflated", "volatile"]

EventEncoding = Literal["json", "binary", "base64"]
"""How an event arrived: ``json``, ``binary`` (a binary frame, on a ``binary=True`` connection) or
``base64`` (a binary event in JSON form, decoded). ``data`` is ``bytes`` for both binary forms."""


@dataclass(slots=True)
class Position:
    """The last delivered event of a channel: ``seq`` within ``epoch`` ("" when unknown)."""

    seq: int
    epoch: str


@dataclass(frozen=True, slots=True)
class Event:
    """One event, delivered exactly once. ``event["data"]`` works too (the seeds' dict shape)."""

    channel: str
    seq: int
    frame: int
    event_type: str
    data: Any
    """Parsed JSON, or ``bytes`` for a binary event (``encoding`` ``binary`` or ``base64``)."""
    key: str | None
    snapshot: bool
    replay: bool
    timestamp: str
    server_time: float
    """``timestamp`` in seconds since the epoch, server clock."""
    local_time: float
    """``server_time`` on the local clock (estimated offset removed)."""
    raw: dict[str, Any] = field(repr=False, compare=False)
    """The event message (for a binary frame, its header fields in the JSON names; ``data`` is
    the decoded bytes in both binary forms)."""
    encoding: EventEncoding = "json"
    """``json``, ``binary`` (came as a binary frame) or ``base64`` (came as JSON, decoded)."""

    def __getitem__(self, name: str) -> Any:
        return self.raw[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.raw.get(name, default)


@dataclass(frozen=True, slots=True)
class Gap:
    """Events between ``from_seq`` and ``to_seq`` were not delivered: ``skipped`` of them were not
    sent (the others, newest per key on conflated channels, follow). ``local`` gaps come from this
    client's own full queue on a non-reliable subscription."""

    channel: str
    skipped: int
    from_seq: int
    to_seq: int
    local: bool = False


@dataclass(frozen=True, slots=True)
class Resync:
    """Discard local state for the channel: snapshot events (if any) follow."""

    channel: str
    reason: Literal["recovered-false", "unrecoverable"]
    position: Position | None


@dataclass(frozen=True, slots=True)
class Violation:
    """A seq jump without ``gap``, or a repeated seq: a bug, reported, never hidden."""

    channel: str
    kind: Literal["seq-jump", "duplicate"]
    expected: int
    got: int


@dataclass(frozen=True, slots=True)
class CaughtUp:
    """The snapshot or replay after a (re)subscribe is complete; live events follow."""

    channel: str
    position: Position | None
    recovered: bool | None


Item = Event | Gap | Resync | Violation | CaughtUp
"""Everything a subscription yields from ``items()``, in stream order."""


@dataclass(frozen=True, slots=True)
class ConnectedInfo:
    """What ``connected`` said (plus the authenticated user)."""

    client_id: str
    user_id: str | None
    tick_hz: int
    server_time_ms: int
    token_expires_at: float | None
    """Seconds since the epoch, from the server if it says, else from the token's ``exp``."""
    reconnected: bool
    batch: bool
    """The server sends this connection tick batches (``batch=True`` asked, and it said so)."""
    binary: bool
    """The server sends binary events as binary frames (``binary=True`` asked, and it said so)."""
    raw: dict[str, Any] = field(repr=False, compare=False)

    def __getitem__(self, name: str) -> Any:
        return self.raw[name]


@dataclass(frozen=True, slots=True)
class StateChange:
    """A connection state change."""

    from_state: ConnectionState
    to_state: ConnectionState
    code: int | None = None
    reason: str | None = None
    retry_in: float | None = None
    """With ``reconnecting``: seconds until the next attempt."""
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class Draining:
    """A ``reconnect`` hint: the server is going away (or is full). The next attempt starts no
    earlier than ``received_at + after_ms / 1000`` (``received_at``: ``time.monotonic()`` when the
    client read the hint)."""

    after_ms: float
    reason: str
    received_at: float


@dataclass(frozen=True, slots=True)
class PublishAck:
    """A ``published`` reply: the ``seq`` and ``frame`` the event got (servers from 2026-12; None on
    older ones), or ``superseded`` (conflated: a newer event of the same key replaced it, no seq)."""

    channel: str
    seq: int | None = None
    frame: int | None = None
    superseded: bool = False


@dataclass(frozen=True, slots=True)
class ReconnectOptions:
    """Reconnect timing (seconds): full-jitter backoff U(0, min(cap, base·2^n))."""

    base: float = 0.25
    cap: float = 30.0
    reset_after: float = 60.0
    max_attempts: float = float("inf")
    slow_consumer_max: float = 1.0
