"""Half-open detection, backoff and its reset, a full server, close while connecting."""

from __future__ import annotations

import asyncio

from conftest import Recorder
from harness import fresh, publish, wait_for

from framecast import Client, FramecastError, ReconnectOptions, StateChange, backoff_delay

CONFIG = "[namespaces.hist]\nhistory_size = 1000\n"


async def test_half_open_detected_by_heartbeat_then_recovered(servers, proxies, clients):
    server = await servers(CONFIG)
    p = await proxies(server.port)
    c = clients(p.ws_url, heartbeat=(0.3, 1.0))
    states: list[StateChange] = []
    c.on("state", states.append)
    await c.connect()
    ch = fresh("hist:half")
    rec = Recorder(await c.subscribe(ch))
    await publish(server, ch, 1)
    await wait_for(lambda: len(rec.events) == 1, "first event")
    p.blackhole(True)
    for i in range(2, 6):
        await publish(server, ch, i)
    await wait_for(
        lambda: any(s.to_state == "reconnecting" and s.reason == "heartbeat timeout" for s in states),
        lambda: f"heartbeat timeout: {[(s.to_state, s.reason) for s in states]}",
        timeout=15,
    )
    p.blackhole(False)
    await wait_for(lambda: len(rec.events) == 5, rec.log, timeout=15)
    assert rec.live_seqs() == [1, 2, 3, 4, 5]
    assert rec.caught_up[-1].recovered is True


async def test_backoff_full_jitter_spread_at_cap(servers, proxies):
    server = await servers()
    p = await proxies(server.port)
    p.refuse(True)
    o = ReconnectOptions(base=0.02, cap=0.16)
    c = Client(p.ws_url, reconnect=o)
    waits: list[StateChange] = []
    c.on("state", lambda s: s.to_state == "reconnecting" and waits.append(s))
    task = asyncio.ensure_future(c.connect())
    await wait_for(lambda: len(waits) >= 25, "25 attempts", timeout=30)
    await c.close()
    task.cancel()
    for i, w in enumerate(waits):
        assert w.attempt == i + 1
        assert w.retry_in is not None and 0 <= w.retry_in < min(o.cap, o.base * 2**i)
    assert len({w.retry_in for w in waits[4:]}) > 5, "spread at the cap"
    assert abs(p.accepted - len(waits)) <= 1
    assert backoff_delay(40, ReconnectOptions(), lambda: 0.5) == 15.0


async def test_attempt_counter_resets_only_after_reset_after(servers, proxies):
    server = await servers()
    p = await proxies(server.port)
    c = Client(p.ws_url, reconnect=ReconnectOptions(base=0.01, cap=0.05, reset_after=1.5))
    attempts: list[int | None] = []
    c.on("state", lambda s: s.to_state == "reconnecting" and attempts.append(s.attempt))
    await c.connect()
    try:
        for i in range(3):
            p.cut()
            await wait_for(lambda i=i: len(attempts) == i + 1 and c.state == "connected", "back")
        assert attempts == [1, 2, 3]
        await asyncio.sleep(1.7)
        p.cut()
        await wait_for(lambda: len(attempts) == 4 and c.state == "connected", "back")
        assert attempts[3] == 1
    finally:
        await c.close()


async def test_full_server_turned_away_retries_not_failure(servers):
    full = await servers("", ["--max-connections", "1"])
    a = Client(full.ws_url)
    await a.connect()
    b = Client(full.ws_url, reconnect=ReconnectOptions(base=0.05, cap=0.3))
    states: list[StateChange] = []
    b.on("state", states.append)
    connected = asyncio.ensure_future(b.connect())
    await wait_for(lambda: sum(s.to_state == "reconnecting" for s in states) >= 2, "b retries")
    assert b.state != "failed"
    await a.close()
    await asyncio.wait_for(connected, 20)
    assert b.state == "connected"
    await b.close()


async def test_close_while_connecting(servers, proxies):
    server = await servers()
    p = await proxies(server.port)
    c = Client(p.ws_url)
    pending = asyncio.ensure_future(c.connect())
    await asyncio.sleep(0)
    await c.close()
    try:
        await asyncio.wait_for(pending, 5)
    except FramecastError as e:
        assert e.code == "CLOSED"
    await asyncio.sleep(0.5)
    assert c.state == "closed"
    assert p.connections == 0
