"""framecast: asyncio client for the framecast event-streaming server.

``async with Client(url) as fc`` · ``async for event in await fc.subscribe("chat:42")`` ·
``fc.subscribe("metrics", callback)`` + ``await fc.run_forever()`` · ``await fc.publish(...)`` ·
``await fc.publish_binary(...)`` · ``await fc.ping()``. See the README for the semantics (reconnect
hints, ``since`` recovery, resync, gaps, bounded queues, token refresh, binary events).
"""

from ._client import Client
from ._errors import FramecastError
from ._subscription import Subscription
from ._timing import Clock, backoff_delay, refresh_delay, token_expiry
from ._types import (
    CaughtUp,
    ConnectedInfo,
    ConnectionState,
    Draining,
    Event,
    EventEncoding,
    Gap,
    Item,
    Position,
    PublishAck,
    ReconnectOptions,
    Resync,
    StateChange,
    SubscriptionState,
    TokenReason,
    Violation,
)

__all__ = [
    "CaughtUp",
    "Client",
    "Clock",
    "ConnectedInfo",
    "ConnectionState",
    "Draining",
    "Event",
    "EventEncoding",
    "FramecastError",
    "Gap",
    "Item",
    "Position",
    "PublishAck",
    "ReconnectOptions",
    "Resync",
    "StateChange",
    "Subscription",
    "SubscriptionState",
    "TokenReason",
    "Violation",
    "backoff_delay",
    "refresh_delay",
    "token_expiry",
]
__version__ = "0.1.0"
