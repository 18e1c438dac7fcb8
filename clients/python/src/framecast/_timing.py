"""Backoff, the clock-offset estimator and JWT expiry: no I/O."""

from __future__ import annotations

import base64
import json
import random as _random
import time
from collections import deque
from collections.abc import Callable

from ._types import ReconnectOptions


def backoff_delay(attempt: int, o: ReconnectOptions, random: Callable[[], float] = _random.random) -> float:
    """Full jitter: U(0, min(cap, base·2^attempt)); the jitter applies after the cap, so a fleet
    keeps spreading once every client reached it."""
    return float(random() * min(o.cap, o.base * 2.0 ** min(attempt, 30)))


class Clock:
    """Offset of the server's clock (NTP style): each sample is ``server - (t0 + t1) / 2`` with error
    ≤ rtt/2; the estimate is the minimum-RTT sample of the last ``keep``. Seconds throughout."""

    def __init__(self, keep: int = 8) -> None:
        self._samples: deque[tuple[float, float]] = deque(maxlen=keep)
        self._best: tuple[float, float] | None = None

    def sample(self, t0: float, t1: float, server_time: float) -> None:
        self._samples.append((server_time - (t0 + t1) / 2, max(0.0, t1 - t0)))
        self._best = min(self._samples, key=lambda s: s[1])

    @property
    def synced(self) -> bool:
        return self._best is not None

    @property
    def offset(self) -> float:
        """Server time minus local time, seconds (0 before any sample)."""
        return self._best[0] if self._best else 0.0

    @property
    def error(self) -> float:
        """Upper bound of the offset's error, seconds."""
        return self._best[1] / 2 if self._best else float("inf")

    def server_now(self) -> float:
        return time.time() + self.offset

    def to_local(self, server_time: float) -> float:
        return server_time - self.offset


def token_expiry(token: str | None) -> float | None:
    """The ``exp`` claim of a JWT (seconds since the epoch; the signature is not checked)."""
    if not token:
        return None
    parts = token.split(".")
    if len(parts) < 2:
        return None
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        exp = json.loads(raw).get("exp")
    except (ValueError, AttributeError):
        return None
    return float(exp) if isinstance(exp, int | float) else None


def refresh_delay(exp: float, now: float, margin: float | None = None) -> float:
    """When to refresh a token expiring at ``exp``: ``max(30 s, 10 %)`` of its remaining life before
    it, but not before half of it has passed."""
    life = exp - now
    if life <= 0:
        return 0.0
    m = min(margin if margin is not None else max(30.0, life / 10), life / 2)
    return max(0.0, life - m)
