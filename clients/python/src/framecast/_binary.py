"""Binary events (docs/protocol.md, "Binary events"): the little-endian frame a ``?binary=1``
connection receives, the binary ``publish`` message, and the base64 form of JSON-only connections."""

from __future__ import annotations

import base64
import binascii
import struct
from datetime import UTC, datetime
from typing import Any

from ._errors import FramecastError

BINARY_VERSION = 0x01
"""The format version: the first byte of every binary event and binary publish."""

_HEADER = struct.Struct("<BBHBBHQQQ")  # version, flags, H, C, T, K, seq, frame, time ms
_FLAG_SNAPSHOT = 1
_FLAG_KEY = 2


def iso_ms(ms: int) -> str:
    """RFC 3339 UTC with milliseconds, as the server writes ``timestamp``."""
    secs, milli = divmod(ms, 1000)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{milli:03d}Z"


def decode_binary_event(frame: bytes) -> dict[str, Any]:
    """The message a JSON ``event`` would have parsed to, for a binary event frame: ``data`` is the
    payload (``bytes``) and ``encoding`` is ``"binary"``. Raises FramecastError(PROTOCOL) on a
    malformed frame."""
    n = len(frame)
    if n < _HEADER.size or frame[0] != BINARY_VERSION:
        raise FramecastError("PROTOCOL", f"server sent a binary message that is no binary event ({n} bytes)")
    _, flags, h, c, t, k, seq, tick, ms = _HEADER.unpack_from(frame)
    strings = _HEADER.size + c + t + k
    if h < strings or h > n:
        raise FramecastError(
            "PROTOCOL", f"binary event header length {h} does not fit (strings end at {strings}, {n} bytes)"
        )
    at = _HEADER.size
    try:
        channel = frame[at : at + c].decode()
        event_type = frame[at + c : at + c + t].decode()
        key = frame[at + c + t : strings].decode()
        timestamp = iso_ms(ms)
    except (UnicodeDecodeError, ValueError, OverflowError, OSError) as e:
        raise FramecastError("PROTOCOL", f"binary event header does not decode: {e}") from None
    msg: dict[str, Any] = {
        "type": "event",
        "channel": channel,
        "seq": seq,
        "frame": tick,
        "timestamp": timestamp,
        "event_type": event_type,
        "encoding": "binary",
        "data": frame[h:],
    }
    if flags & _FLAG_KEY:
        msg["key"] = key
    if flags & _FLAG_SNAPSHOT:
        msg["snapshot"] = True
    return msg


def encode_binary_publish(head: bytes, payload: bytes) -> bytes:
    """A binary ``publish``: ``0x01``, ``0``, u16 LE length of the JSON part, the JSON part (a
    ``publish`` object without ``data``), then the payload."""
    if len(head) > 0xFFFF:
        raise FramecastError(
            "INVALID_FIELD", f"the publish header is {len(head)} bytes (at most 65535 in a binary publish)"
        )
    return struct.pack("<BBH", BINARY_VERSION, 0, len(head)) + head + payload


def decode_base64(text: str) -> bytes:
    """Standard base64 with padding to bytes; raises ValueError on anything else."""
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as e:
        raise ValueError(str(e)) from None
