"""The seq checker, fed by a scripted WebSocket server (the real one never misbehaves on purpose)."""

from __future__ import annotations

import asyncio
import json

import pytest
from conftest import Recorder
from harness import wait_for
from scripted import connected_message
from websockets.asyncio.server import ServerConnection, serve

from framecast import Client, FramecastError


def event(seq: int, **extra: object) -> str:
    msg = {"type": "event", "channel": "a", "seq": seq, "frame": seq, "timestamp": "2026-12-02T00:00:00.000Z"}
    return json.dumps({**msg, "event_type": "x", "data": seq, **extra})


async def test_jumps_repeats_and_gap_ranges():
    async def script(ws: ServerConnection) -> None:
        await ws.send(connected_message())
        sub = json.loads(await ws.recv())
        assert sub["type"] == "subscribe"
        ping = json.loads(await ws.recv())
        assert ping["type"] == "ping"
        await ws.send(
            json.dumps(
                {
                    "type": "subscribed",
                    "channels": ["a"],
                    "positions": {"a": {"seq": 0, "epoch": "e1"}},
                    "timestamp": "",
                    "id": sub["id"],
                }
            )
        )
        await ws.send(event(1, snapshot=True))
        await ws.send(
            json.dumps(
                {"type": "pong", "ping_id": "sync", "timestamp": "", "server_time_ms": 0, "id": ping["id"]}
            )
        )
        for s in (1, 2, 4, 4):
            await ws.send(event(s))
        await ws.send(json.dumps({"type": "gap", "channel": "a", "skipped": 3, "from_seq": 5, "to_seq": 9}))
        for s in (7, 10, 12):
            await ws.send(event(s))
        await ws.wait_closed()

    async with serve(script, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        c = Client(f"ws://127.0.0.1:{port}/ws", heartbeat=None)
        try:
            await c.connect()
            sub = await c.subscribe("a")
            rec = Recorder(sub)
            await wait_for(lambda: rec.events and rec.events[-1].seq == 12, rec.log)
            assert [e.seq for e in rec.events] == [1, 1, 2, 4, 7, 10, 12]
            assert rec.events[0].snapshot
            assert [(v.kind, v.expected, v.got) for v in rec.violations] == [
                ("seq-jump", 3, 4),
                ("duplicate", 5, 4),
                ("seq-jump", 11, 12),
            ]
            assert [(g.from_seq, g.to_seq) for g in rec.gaps] == [(5, 9)]
            assert sub.position is not None and (sub.position.seq, sub.position.epoch) == (12, "e1")
        finally:
            await c.close()
        await asyncio.sleep(0)


async def test_published_seq_tells_own_skipped_seqs_from_lost_ones():
    """echo = false: the publisher never gets its own events; published.seq says which seqs were
    its own, so only the others' missing seqs are violations (also when an event overtakes the
    acknowledgement, and not for a refused publish)."""

    async def script(ws: ServerConnection) -> None:
        await ws.send(connected_message())
        sub = json.loads(await ws.recv())
        pos = {"seq": 0, "epoch": "e1", "echo": False, "snapshot_events": 0, "replay_events": 0}
        await ws.send(
            json.dumps({"type": "subscribed", "channels": ["a"], "positions": {"a": pos}, "id": sub["id"]})
        )

        async def next_publish() -> dict[str, object]:
            while True:
                m = json.loads(await ws.recv())
                if m["type"] == "publish":
                    return m

        p = await next_publish()
        await ws.send(json.dumps({"type": "published", "channel": "a", "seq": 1, "frame": 1, "id": p["id"]}))
        await ws.send(event(2))
        p = await next_publish()
        await ws.send(event(4))  # overtakes the acknowledgement of seq 3
        await ws.send(json.dumps({"type": "published", "channel": "a", "seq": 3, "frame": 3, "id": p["id"]}))
        await ws.send(event(6))  # 5 is nobody's: lost
        p = await next_publish()
        await ws.send(json.dumps({"type": "error", "code": "RATE_LIMITED", "message": "slow", "id": p["id"]}))
        await ws.send(event(8))  # 7: lost, the refused publish explains nothing
        await ws.wait_closed()

    async with serve(script, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        c = Client(f"ws://127.0.0.1:{port}/ws", heartbeat=None)
        try:
            await c.connect()
            sub = await c.subscribe("a")
            rec = Recorder(sub)
            ack = await c.publish("a", "x")
            assert ack.seq == 1 and ack.frame == 1
            await wait_for(lambda: rec.events and rec.events[-1].seq == 2, rec.log)
            await c.publish("a", "y")
            await wait_for(lambda: rec.events and rec.events[-1].seq == 6, rec.log)
            with pytest.raises(FramecastError) as refused:
                await c.publish("a", "z")
            assert refused.value.code == "RATE_LIMITED"
            await wait_for(lambda: rec.events and rec.events[-1].seq == 8, rec.log)
            assert [(v.expected, v.got) for v in rec.violations] == [(5, 6), (7, 8)]
        finally:
            await c.close()
        await asyncio.sleep(0)
