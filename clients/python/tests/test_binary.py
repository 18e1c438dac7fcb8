"""Binary events without the real server: frames laid out byte by byte here (never with the
client's own helpers, so a wrong offset fails), fed to the client by a scripted WebSocket server;
the binary publish read back byte by byte; base64 JSON events alone, in tick batches, as snapshots."""

from __future__ import annotations

import asyncio
import json
from array import array
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import Recorder
from harness import wait_for
from scripted import connected_message
from websockets.asyncio.server import ServerConnection, serve

from framecast import Client, Event, FramecastError, ReconnectOptions
from framecast._binary import decode_binary_event


def frame(
    channel: str,
    event_type: str,
    seq: int,
    payload: bytes,
    *,
    tick: int | None = None,
    time_ms: int = 1,
    key: str | None = None,
    snapshot: bool = False,
    h: int | None = None,
) -> bytes:
    """A binary event frame, from the table in docs/protocol.md (little-endian, by hand)."""
    c, t, k = channel.encode(), event_type.encode(), (key or "").encode()
    end = 32 + len(c) + len(t) + len(k)
    h = h if h is not None else (end + 7) // 8 * 8
    flags = (1 if snapshot else 0) | (2 if key is not None else 0)
    out = bytearray()
    out.append(0x01)
    out.append(flags)
    out += h.to_bytes(2, "little")
    out.append(len(c))
    out.append(len(t))
    out += len(k).to_bytes(2, "little")
    out += seq.to_bytes(8, "little")
    out += (seq if tick is None else tick).to_bytes(8, "little")
    out += time_ms.to_bytes(8, "little")
    out += c + t + k
    out += b"\xee" * (h - end)  # padding: whatever it holds, it is skipped
    assert len(out) == h
    return bytes(out + payload)


def f32(*xs: float) -> bytes:
    return array("f", xs).tobytes()


def as_f32(data: bytes) -> list[float]:
    a = array("f")
    a.frombytes(data)
    return list(a)


def json_event(channel: str, seq: int, **extra: Any) -> str:
    msg = {
        "type": "event",
        "channel": channel,
        "seq": seq,
        "frame": seq,
        "timestamp": "2026-12-07T15:00:00.000Z",
    }
    return json.dumps({**msg, "event_type": "x", "data": {"seq": seq}, **extra})


class Conn:
    """One accepted connection: everything the client sent, in order (JSON parsed, bytes as is)."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.inbox: asyncio.Queue[dict[str, Any] | bytes] = asyncio.Queue()
        self.sent: list[dict[str, Any] | bytes] = []

    async def next(self, kind: str) -> Any:
        """The next message of type ``kind`` (``"binary"``: the next binary message)."""
        while True:
            m = await asyncio.wait_for(self.inbox.get(), 10)
            if (kind == "binary" and isinstance(m, bytes)) or (isinstance(m, dict) and m.get("type") == kind):
                return m

    async def send(self, m: str | bytes | dict[str, Any] | list[Any]) -> None:
        await self.ws.send(m if isinstance(m, str | bytes) else json.dumps(m))

    async def subscribed(self, channel: str, **position: Any) -> dict[str, Any]:
        sub = await self.next("subscribe")
        pos = {"snapshot_events": 0, "replay_events": 0, **position}
        await self.send(
            {"type": "subscribed", "channels": [channel], "positions": {channel: pos}, "id": sub["id"]}
        )
        return sub  # type: ignore[no-any-return]


class Scripted:
    def __init__(self) -> None:
        self.conns: asyncio.Queue[Conn] = asyncio.Queue()
        self.paths: list[str] = []
        self.port = 0

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.paths.append(ws.request.path)
        conn = Conn(ws)
        await ws.send(connected_message())
        await self.conns.put(conn)
        async for raw in ws:
            m = raw if isinstance(raw, bytes) else json.loads(raw)
            conn.sent.append(m)
            await conn.inbox.put(m)

    async def next(self) -> Conn:
        return await asyncio.wait_for(self.conns.get(), 10)


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    s = Scripted()
    async with serve(s.handler, "127.0.0.1", 0) as server:
        s.port = server.sockets[0].getsockname()[1]
        yield s


async def connect(s: Scripted, **kw: Any) -> tuple[Client, Conn, list[FramecastError]]:
    kw.setdefault("reconnect", ReconnectOptions(base=0.01, cap=0.02))
    c = Client(f"ws://127.0.0.1:{s.port}/ws", heartbeat=None, **kw)
    errors: list[FramecastError] = []
    c.on("error", errors.append)
    await c.connect()
    return c, await s.next(), errors


def test_decoding_a_crafted_frame_directly():
    ms = 1_796_655_600_123  # 2026-12-07T15:00:00.123Z
    assert datetime.fromtimestamp(ms / 1000, UTC).isoformat().startswith("2026-12-07T15:00:00.123")
    raw = frame(
        "pos:1", "f32", 2**40 + 1, f32(1.5, -2.25, 3e9), tick=2**33 + 7, time_ms=ms, key="avatar", h=56
    )
    m = decode_binary_event(raw)
    assert m == {
        "type": "event",
        "channel": "pos:1",
        "seq": 2**40 + 1,
        "frame": 2**33 + 7,
        "timestamp": "2026-12-07T15:00:00.123Z",
        "event_type": "f32",
        "key": "avatar",
        "encoding": "binary",
        "data": f32(1.5, -2.25, 3e9),
    }
    assert isinstance(m["data"], bytes)
    snap = decode_binary_event(frame("s", "message", 2, b"", tick=9, time_ms=0, snapshot=True))
    assert snap["snapshot"] is True and "key" not in snap and snap["data"] == b""
    assert snap["timestamp"] == "1970-01-01T00:00:00.000Z"
    good = frame("x", "t", 1, b"\x01\x02")
    for bad in (good[:2] + bytes([200, 0]) + good[4:], good[:2] + bytes([24, 0]) + good[4:], good[:20]):
        with pytest.raises(FramecastError) as e:
            decode_binary_event(bad)
        assert e.value.code == "PROTOCOL"


async def test_binary_asks_for_binary_1(scripted):
    c, _, _ = await connect(scripted, binary=True, batch=True)
    await c.close()
    plain, _, _ = await connect(scripted)
    await plain.close()
    assert "binary=1" in scripted.paths[0].split("?")[1].split("&")
    assert "batch=1" in scripted.paths[0].split("?")[1].split("&")
    assert "binary" not in scripted.paths[1]


async def test_a_binary_frame_is_the_event_a_json_event_gives(scripted):
    c, conn, errors = await connect(scripted, binary=True)
    try:
        call = c.subscribe("pos:1")
        await conn.subscribed("pos:1", seq=2**40, epoch="e1")
        sub = await call
        rec = Recorder(sub)
        all_events: list[Event] = []
        c.on("event", all_events.append)
        ms = 1_796_655_600_123
        await conn.send(
            frame(
                "pos:1",
                "f32",
                2**40 + 1,
                f32(1.5, -2.25, 3e9),
                tick=2**33 + 7,
                time_ms=ms,
                key="avatar",
                h=56,
            )
        )
        await wait_for(lambda: rec.events, "one event")
        e = rec.events[0]
        assert (e.channel, e.seq, e.frame, e.event_type, e.key) == (
            "pos:1",
            2**40 + 1,
            2**33 + 7,
            "f32",
            "avatar",
        )
        assert (e.snapshot, e.replay, e.encoding) == (False, False, "binary")
        assert e.timestamp == "2026-12-07T15:00:00.123Z"
        assert abs(e.server_time - ms / 1000) < 1e-6
        assert isinstance(e.data, bytes) and as_f32(e.data) == [1.5, -2.25, 3e9]
        assert e["data"] == e.data and e["event_type"] == "f32"
        assert sub.position is not None and (sub.position.seq, sub.position.epoch) == (2**40 + 1, "e1")
        assert all_events == [e]
        assert not errors
    finally:
        await c.close()


async def test_binary_and_json_events_share_the_seq_bookkeeping(scripted):
    c, conn, _ = await connect(scripted, binary=True)
    try:
        call = c.subscribe("m")
        await conn.subscribed("m", seq=10, epoch="e1")
        sub = await call
        rec = Recorder(sub)

        def binary(seq: int, **kw: Any) -> bytes:
            return frame("m", "f32", seq, f32(seq), **kw)

        b64 = "AAAoQQ=="  # f32 [10.5]
        for m in (
            json_event("m", 11),
            binary(12),
            json_event("m", 13, encoding="base64", data=b64),
            binary(13),  # a repeat, binary or not
            binary(15),  # 14 missing
            json.dumps({"type": "gap", "channel": "m", "skipped": 2, "from_seq": 16, "to_seq": 18}),
            binary(19),
        ):
            await conn.send(m)
        await wait_for(lambda: rec.events and rec.events[-1].seq == 19, rec.log)
        assert [(e.seq, e.encoding) for e in rec.events] == [
            (11, "json"),
            (12, "binary"),
            (13, "base64"),
            (15, "binary"),
            (19, "binary"),
        ]
        assert as_f32(rec.events[2].data) == [10.5]
        assert [(v.kind, v.expected, v.got) for v in rec.violations] == [
            ("duplicate", 14, 13),
            ("seq-jump", 14, 15),
        ]
        assert sub.position is not None and (sub.position.seq, sub.position.epoch) == (19, "e1")

        # Reconnect: since is the last binary event; a recovered replay comes as binary frames.
        await conn.ws.close(1012)
        again = await scripted.next()
        sub_msg = await again.next("subscribe")
        assert sub_msg["since"] == {"m": {"seq": 19, "epoch": "e1"}}
        pos = {"seq": 21, "epoch": "e1", "recovered": True, "snapshot_events": 0, "replay_events": 2}
        await again.send(
            {
                "type": "subscribed",
                "channels": ["m"],
                "positions": {"m": pos},
                "recovered": True,
                "id": sub_msg["id"],
            }
        )
        await again.send(binary(20))
        await again.send(binary(21))
        await again.send(json_event("m", 22))
        await wait_for(lambda: rec.events[-1].seq == 22, rec.log)
        assert [(e.seq, e.replay) for e in rec.events[-3:]] == [(20, True), (21, True), (22, False)]
        assert len(rec.violations) == 2
        assert len(rec.caught_up) == 2
    finally:
        await c.close()


async def test_a_binary_snapshot_counts_toward_snapshot_events(scripted):
    c, conn, _ = await connect(scripted, binary=True)
    try:
        call = c.subscribe("s")
        await conn.subscribed("s", seq=3, epoch="e1", snapshot_events=1)
        await conn.send(frame("s", "f32", 2, f32(4), tick=9, key="a", snapshot=True))
        sub = await call  # live once the snapshot is complete
        rec = Recorder(sub)
        await conn.send(frame("s", "f32", 4, f32(5), tick=10))
        await wait_for(lambda: len(rec.events) == 2, rec.log)
        assert [(e.seq, e.snapshot, e.key) for e in rec.events] == [(2, True, "a"), (4, False, None)]
        assert sub.position is not None and sub.position.seq == 4
    finally:
        await c.close()


async def test_base64_events_decode_to_bytes_alone_batched_and_as_snapshots(scripted):
    c, conn, errors = await connect(scripted)
    try:
        call = c.subscribe("p")
        await conn.subscribed("p", seq=0, epoch="e1", snapshot_events=1)
        ev = {"encoding": "base64", "event_type": "f32"}
        # "AACAPwAAAEA=" is the spec's example: f32 [1, 2].
        await conn.send(json_event("p", 7, snapshot=True, key="a", **ev, data="AACAPwAAAEA="))
        sub = await call
        rec = Recorder(sub)
        await conn.send(json_event("p", 1, **ev, data="AACAPwAAAEA="))
        batch = [json.loads(json_event("p", s, **ev, data=d)) for s, d in ((2, "AQID"), (3, ""), (4, "/+8="))]
        await conn.send(batch)
        await wait_for(lambda: len(rec.events) == 5, rec.log)
        assert [(e.seq, e.snapshot, e.encoding, e.data) for e in rec.events] == [
            (7, True, "base64", b"\x00\x00\x80\x3f\x00\x00\x00\x40"),
            (1, False, "base64", b"\x00\x00\x80\x3f\x00\x00\x00\x40"),
            (2, False, "base64", b"\x01\x02\x03"),
            (3, False, "base64", b""),
            (4, False, "base64", b"\xff\xef"),
        ]
        assert as_f32(rec.events[1].data) == [1.0, 2.0]
        assert not errors
        await conn.send(json_event("p", 5, **ev, data="not base64!"))
        await wait_for(lambda: len(rec.events) == 6, rec.log)
        assert [e.code for e in errors] == ["PROTOCOL"]
        assert rec.events[-1].data == "not base64!"  # delivered (its seq counted), left as sent
        # Plain JSON data stays JSON, even a string that happens to be valid base64.
        await conn.send(json_event("p", 6, data="AQID"))
        await wait_for(lambda: len(rec.events) == 7, rec.log)
        assert (rec.events[-1].data, rec.events[-1].encoding) == ("AQID", "json")
    finally:
        await c.close()


async def test_malformed_binary_frames_are_protocol_errors(scripted):
    c, conn, errors = await connect(scripted, binary=True)
    try:
        call = c.subscribe("x")
        await conn.subscribed("x", seq=0, epoch="e1")
        rec = Recorder(await call)
        good = frame("x", "t", 1, b"\x01\x02")
        await conn.send(good[:2] + bytes([200, 0]) + good[4:])  # H past the end
        await conn.send(good[:2] + bytes([24, 0]) + good[4:])  # H inside the strings
        await conn.send(good[:20])  # truncated
        # A binary message not starting with 0x01 is JSON, as before.
        await conn.send(json_event("x", 1).encode())
        await wait_for(lambda: rec.events, rec.log)
        assert [e.code for e in errors] == ["PROTOCOL"] * 3
        assert [(e.seq, e.encoding, e.data) for e in rec.events] == [(1, "json", {"seq": 1})]
    finally:
        await c.close()


async def test_publish_binary_lays_out_the_message_and_settles_on_published(scripted):
    c, conn, _ = await connect(scripted, binary=True)
    try:
        task = asyncio.ensure_future(
            c.publish_binary("pos:1", f32(1.5, -2.25, 3e9), event_type="f32", key="k")
        )
        msg = await conn.next("binary")
        assert msg[0] == 0x01 and msg[1] == 0
        j = msg[2] + msg[3] * 256
        head = json.loads(msg[4 : 4 + j])
        assert sorted(head) == ["channel", "event_type", "id", "key", "type"]
        assert {**head, "id": 0} == {
            "type": "publish",
            "channel": "pos:1",
            "event_type": "f32",
            "key": "k",
            "id": 0,
        }
        assert isinstance(head["id"], int)
        assert as_f32(msg[4 + j :]) == [1.5, -2.25, 3e9]
        await conn.send({"type": "published", "channel": "pos:1", "seq": 1, "frame": 9, "id": head["id"]})
        ack = await task
        assert (ack.channel, ack.seq, ack.frame, ack.superseded) == ("pos:1", 1, 9, False)

        # bytearray / memoryview, no options; an error reply raises.
        task = asyncio.ensure_future(c.publish_binary("other", memoryview(bytearray(b"\x09\x08\x07"))))
        msg = await conn.next("binary")
        j = int.from_bytes(msg[2:4], "little")
        head = json.loads(msg[4 : 4 + j])
        assert sorted(head) == ["channel", "id", "type"]
        assert msg[4 + j :] == b"\x09\x08\x07"
        await conn.send({"type": "error", "code": "FORBIDDEN", "message": "no", "id": head["id"]})
        with pytest.raises(FramecastError) as e:
            await task
        assert e.value.code == "FORBIDDEN"

        with pytest.raises(FramecastError) as e:
            await c.publish_binary("a", b"\x01", key="k" * 70_000)
        assert e.value.code == "INVALID_FIELD"
        assert sum(isinstance(m, bytes) for m in conn.sent) == 2
    finally:
        await c.close()
    offline = Client(f"ws://127.0.0.1:{scripted.port}/ws", heartbeat=None)
    with pytest.raises(FramecastError) as e:
        await offline.publish_binary("a", b"\x01")
    assert e.value.code == "NOT_CONNECTED"
