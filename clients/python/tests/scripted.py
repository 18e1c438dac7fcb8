"""Parts of the scripted WebSocket servers some tests talk to instead of framecast (to send what
the real server never does on purpose)."""

from __future__ import annotations

import json
import time


def connected_message() -> str:
    """The ``connected`` greeting a scripted server opens with (client ``c1``, anonymous, 60 Hz)."""
    return json.dumps(
        {
            "type": "connected",
            "client_id": "c1",
            "user_id": None,
            "timestamp": "",
            "server_time_ms": int(time.time() * 1000),
            "tick_hz": 60,
        }
    )
