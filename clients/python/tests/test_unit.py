"""Pure parts."""

from __future__ import annotations

import base64
import json

from framecast import Clock, ReconnectOptions, backoff_delay, refresh_delay, token_expiry


def test_clock_min_rtt_of_last_8():
    c = Clock()
    assert not c.synced
    c.sample(1.0, 1.1, 5.05)
    c.sample(2.0, 2.01, 6.105)
    c.sample(3.0, 3.05, 7.0)
    assert abs(c.offset - 4.1) < 1e-9
    assert abs(c.error - 0.005) < 1e-9
    for _ in range(8):
        c.sample(10.0, 10.02, 14.01)
    assert abs(c.offset - 4.0) < 1e-9


def test_token_expiry_and_refresh():
    payload = base64.urlsafe_b64encode(json.dumps({"exp": 2_000_000_000}).encode()).decode().rstrip("=")
    assert token_expiry(f"h.{payload}.s") == 2_000_000_000
    assert token_expiry("garbage") is None
    assert refresh_delay(1000 + 3600, 1000) == 3240
    assert refresh_delay(1000 + 120, 1000) == 90
    assert refresh_delay(1000 + 4, 1000) == 2
    assert refresh_delay(999, 1000) == 0


def test_backoff_bounds():
    o = ReconnectOptions()
    assert backoff_delay(0, o, lambda: 0.999) < 0.25
    assert backoff_delay(50, o, lambda: 0.999) < 30
    assert backoff_delay(50, o, lambda: 0.0) == 0
