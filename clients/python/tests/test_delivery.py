"""Delivery and recovery against a real framecast process, with real faults through a TCP proxy."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from conftest import Recorder
from harness import channel_info, fresh, metrics, publish, wait_for

from framecast import FramecastError, Position

CONFIG = """
default_channels = ["defaults.metrics"]
max_queued_bytes = "64KiB"
# A key makes subscribe = "authenticated" meaningful; anonymous clients stay allowed.
jwt_secret = "delivery-secret-0123456789abcdef-0123"
allow_anonymous = true
[namespaces.hist]
history_size = 1000
[namespaces.snap]
history_size = 10
snapshot = true
[namespaces.pos]
delivery = "conflated"
snapshot = true
[namespaces.priv]
subscribe = "authenticated"
[namespaces.ro]
publish = false
[namespaces.rl]
publish_rate = 5
[namespaces.noecho]
echo = false
history_size = 100
"""


@pytest.fixture
async def server(servers):
    return await servers(CONFIG)


async def test_positions_then_seq_plus_one(server, clients):
    ch = fresh("hist:pos")
    for i in range(1, 4):
        await publish(server, ch, {"i": i})
    await wait_for(lambda: _last_seq(server, ch, 3), "3 events published")
    c = clients(server.ws_url)
    await c.connect()
    sub = await c.subscribe(ch)
    assert sub.state == "live"
    assert sub.position is not None and sub.position.seq == 3 and sub.position.epoch
    rec = Recorder(sub)
    await publish(server, ch, {"i": 4})
    await publish(server, ch, {"i": 5})
    await wait_for(lambda: len(rec.events) == 2, "two live events")
    assert rec.live_seqs() == [4, 5]
    assert [e.data["i"] for e in rec.events] == [4, 5]
    assert rec.events[0]["data"] == {"i": 4}, "the seeds' dict access"
    assert not rec.violations


async def _last_seq(server, ch, n):
    info = await channel_info(server, ch)
    return info is not None and info["last_seq"] == n


async def test_cut_during_100_publishes_each_event_once_in_order(server, proxies, clients):
    p = await proxies(server.port)
    c = clients(p.ws_url)
    connects = []
    c.on("connected", connects.append)
    await c.connect()
    ch = fresh("hist:cut")
    rec = Recorder(await c.subscribe(ch))
    for i in range(1, 101):
        await publish(server, ch, {"i": i})
        if i in (30, 65):
            p.cut()
        if i % 10 == 0:
            await asyncio.sleep(0.02)
    await wait_for(lambda: len(rec.events) >= 100, lambda: f"100 events, got {len(rec.events)}: {rec.log()}")
    await asyncio.sleep(0.2)
    assert rec.live_seqs() == list(range(1, 101))
    assert [e.data["i"] for e in rec.events] == list(range(1, 101))
    assert not rec.violations and not rec.resyncs
    assert len(connects) >= 3
    assert all(cu.recovered for cu in rec.caught_up[1:])


async def test_reconnect_after_zero_events(server, proxies, clients):
    p = await proxies(server.port)
    c = clients(p.ws_url)
    await c.connect()
    ch = fresh("plain.zero")
    sub = await c.subscribe(ch)
    rec = Recorder(sub)
    assert sub.position == Position(0, sub.position.epoch)
    p.cut()
    await wait_for(lambda: len(rec.caught_up) == 2, "resubscribed")
    assert rec.caught_up[1].recovered is True
    await publish(server, ch, "x")
    await wait_for(lambda: len(rec.events) == 1, "event")
    assert rec.live_seqs() == [1]
    assert not rec.resyncs


async def test_history_overflow_resync_snapshot_then_deltas(server, proxies, clients):
    p = await proxies(server.port)
    c = clients(p.ws_url)
    await c.connect()
    ch = fresh("snap:overflow")
    sub = await c.subscribe(ch)
    store: list[object] = []
    sub.on("resync", lambda _r: store.clear())
    rec = Recorder(sub)
    for i in range(1, 4):
        await publish(server, ch, i)
    await wait_for(lambda: len(rec.events) == 3, "3 events")
    p.refuse(True)
    p.cut()
    await wait_for(lambda: c.state == "reconnecting", "reconnecting")
    for i in range(4, 31):
        await publish(server, ch, i)
    await wait_for(lambda: _last_seq(server, ch, 30), "30 published")
    p.refuse(False)
    await wait_for(lambda: len(rec.caught_up) == 2, lambda: f"resubscribed: {rec.log()}")
    await publish(server, ch, 31)
    await wait_for(lambda: rec.events[-1].seq == 31, rec.log)
    assert len(rec.resyncs) == 1 and rec.resyncs[0].reason == "recovered-false"
    after = rec.items[rec.items.index(rec.resyncs[0]) + 1 :]
    evs = [i for i in after if hasattr(i, "seq")]
    assert [(e.seq, e.snapshot, e.data) for e in evs] == [(30, True, 30), (31, False, 31)]
    assert not rec.violations


async def test_slow_consumer_server_closes_client_recovers_without_loss(server, proxies, clients):
    p = await proxies(server.port)
    # Queue caps count wire bytes, and the repetitive test blobs would compress to nothing.
    c = clients(p.ws_url, compression=False)
    closes = []
    c.on("disconnected", closes.append)
    await c.connect()
    ch = fresh("hist:slow")
    rec = Recorder(await c.subscribe(ch))
    before = (await metrics(server)).get("framecast_slow_consumer_closes_total", 0)
    p.pause_server_reads(True)
    blob = "x" * 32 * 1024
    for i in range(1, 251):
        await publish(server, ch, {"i": i, "blob": blob})

    async def closed():
        return (await metrics(server)).get("framecast_slow_consumer_closes_total", 0) > before

    await wait_for(closed, "the server closed the slow consumer", timeout=30, interval=0.05)
    p.pause_server_reads(False)
    await wait_for(lambda: len(rec.events) >= 250, lambda: f"250 events, got {len(rec.events)}", timeout=60)
    assert rec.live_seqs() == list(range(1, 251))
    assert closes, "disconnected"
    assert not rec.violations and not rec.resyncs


async def test_full_queue_on_reliable_stops_reading_then_recovers_without_loss(server, clients):
    """The client's own bounded queue: a consumer that does not read stops the reader, TCP pushes
    back, the server closes the connection (1008), the client recovers every event."""
    # Queue caps count wire bytes, and the repetitive test blobs would compress to nothing.
    c = clients(server.ws_url, queue_size=4, compression=False)
    closes = []
    c.on("disconnected", closes.append)
    await c.connect()
    ch = fresh("hist:queue")
    gate = asyncio.Event()
    rec = Recorder(await c.subscribe(ch), gate=gate)
    before = (await metrics(server)).get("framecast_slow_consumer_closes_total", 0)
    blob = "q" * 32 * 1024
    for i in range(1, 301):
        await publish(server, ch, {"i": i, "blob": blob})

    async def closed():
        return (await metrics(server)).get("framecast_slow_consumer_closes_total", 0) > before

    await wait_for(closed, "the server closed the stalled client", timeout=30, interval=0.05)
    gate.set()
    await wait_for(lambda: len(rec.events) >= 300, lambda: f"300 events, got {len(rec.events)}", timeout=60)
    assert rec.live_seqs() == list(range(1, 301))
    assert closes
    assert not rec.violations and not rec.resyncs


async def test_forbidden_keeps_the_connection(server, clients):
    c = clients(server.ws_url)
    info = await c.connect()
    with pytest.raises(FramecastError) as e:
        await c.subscribe(fresh("priv:x"))
    assert e.value.code == "FORBIDDEN"
    with pytest.raises(FramecastError) as e2:
        await c.publish(fresh("ro:x"), 1)
    assert e2.value.code == "FORBIDDEN"
    ch = fresh("hist:ok")
    rec = Recorder(await c.subscribe(ch))
    ack = await c.publish(ch, {"hello": 1})
    assert ack.channel == ch
    await wait_for(lambda: len(rec.events) == 1, "own event")
    assert c.state == "connected" and c.info and c.info.client_id == info.client_id


async def test_rate_limited(server, clients):
    c = clients(server.ws_url)
    info = await c.connect()
    ch = fresh("rl:x")
    results = await asyncio.gather(*(c.publish(ch, i) for i in range(10)), return_exceptions=True)
    limited = [r for r in results if isinstance(r, FramecastError)]
    assert len(limited) >= 3
    assert all(r.code == "RATE_LIMITED" and r.retryable for r in limited)
    assert any(not isinstance(r, Exception) for r in results)
    assert await c.ping() >= 0
    assert c.state == "connected" and c.info and c.info.client_id == info.client_id


async def test_publish_offline_is_not_queued(server, proxies, clients):
    p = await proxies(server.port)
    c = clients(p.ws_url)
    await c.connect()
    ch = fresh("hist:offline")
    rec = Recorder(await c.subscribe(ch))
    p.refuse(True)
    p.cut()
    await wait_for(lambda: c.state == "reconnecting", "reconnecting")
    with pytest.raises(FramecastError) as e:
        await c.publish(ch, "lost")
    assert e.value.code == "NOT_CONNECTED"
    p.refuse(False)
    await wait_for(lambda: len(rec.caught_up) == 2, "back")
    await c.publish(ch, "after")
    await wait_for(lambda: len(rec.events) == 1, "one event")
    await asyncio.sleep(0.2)
    assert [e.data for e in rec.events] == ["after"]


async def test_ping_and_clock(server, clients):
    c = clients(server.ws_url)
    await c.connect()
    for _ in range(4):
        assert await c.ping() >= 0
    assert c.rtt is not None and c.rtt < 5
    assert c.clock.synced
    assert abs(c.clock.offset) <= c.clock.error + 0.005


async def test_conflated_step_down_gap(server, proxies, clients):
    p = await proxies(server.port)
    # Queue caps count wire bytes, and the repetitive test blobs would compress to nothing.
    c = clients(p.ws_url, compression=False)
    closes = []
    c.on("disconnected", closes.append)
    await c.connect()
    ch = fresh("pos:world")
    rec = Recorder(await c.subscribe(ch, delivery="conflated"))
    p.pause_server_reads(True)
    blob = "p" * 12 * 1024  # 4 keys x 12 KiB per tick stays under the 64 KiB cap
    n = 0
    dropped_at = 0.0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 40
    while loop.time() < deadline:
        batch = []
        for _ in range(8):
            n += 1
            batch.append(publish(server, ch, {"n": n, "blob": blob}, key=f"avatar-{n % 4}"))
        await asyncio.gather(*batch)
        if n % 80 == 0:
            m = await metrics(server)
            if m.get("framecast_dropped_events_total", 0) > 0 and not dropped_at:
                dropped_at = loop.time()
            if dropped_at and loop.time() - dropped_at > 1:
                break
    assert dropped_at, "the server dropped events for the paused client"
    p.pause_server_reads(False)
    n += 1
    await publish(server, ch, {"n": n, "last": True}, key="avatar-last")
    await wait_for(lambda: any(e.data.get("last") for e in rec.events), rec.log, timeout=60)
    assert rec.gaps, f"gap notices ({len(rec.events)} events for {n} publishes)"
    assert not rec.violations, rec.violations[:3]
    assert closes == []
    seqs = rec.live_seqs()
    assert all(b > a for a, b in itertools.pairwise(seqs))


async def test_echo_false_own_seqs_are_not_violations(server, clients):
    a, b = clients(server.ws_url), clients(server.ws_url)
    await a.connect()
    await b.connect()
    ch = fresh("noecho:s")
    ra, rb = Recorder(await a.subscribe(ch)), Recorder(await b.subscribe(ch))
    for i in range(5):
        await a.publish(ch, f"a{i}")
        await b.publish(ch, f"b{i}")
    await wait_for(lambda: len(ra.events) == 5 and len(rb.events) == 5, "each sees the other's 5")
    assert [e.data for e in ra.events] == [f"b{i}" for i in range(5)]
    assert not ra.violations and not rb.violations


async def test_default_channels_unrecoverable_resync(server, proxies, clients):
    p = await proxies(server.port)
    c = clients(p.ws_url)
    seen = []
    c.on("event", lambda e: seen.append(e.channel))
    await c.connect()
    await publish(server, "defaults.metrics", {"cpu": 1})
    await wait_for(lambda: "defaults.metrics" in seen, "default channel without subscribing")
    sub = await c.subscribe("defaults.metrics")
    rec = Recorder(sub)
    # Today's server gives default channels no position; once it does they recover like any other.
    positioned = sub.recoverable is True
    await publish(server, "defaults.metrics", {"cpu": 2})
    await wait_for(lambda: len(rec.events) == 1, "one event")
    p.refuse(True)
    p.cut()
    await wait_for(lambda: c.state == "reconnecting", "reconnecting")
    await publish(server, "defaults.metrics", {"cpu": 3})
    await asyncio.sleep(0.1)
    p.refuse(False)
    await wait_for(lambda: len(rec.caught_up) == 2, "back")
    await publish(server, "defaults.metrics", {"cpu": 4})
    await wait_for(lambda: len(rec.events) == 2, "event after reconnect")
    assert [r.reason for r in rec.resyncs] == ["recovered-false" if positioned else "unrecoverable"]
    assert not rec.violations


async def test_subscribe_unsubscribe_races(server, clients):
    c = clients(server.ws_url)
    await c.connect()
    chs = [fresh("hist:race") for _ in range(5)]
    for i in range(30):
        for ch in chs:
            c.subscribe(ch)
            unsub = c.unsubscribe(ch)
            if i % 3 == 0:
                await unsub
    counts: dict[str, int] = {}

    def count(e):
        counts[e.channel] = counts.get(e.channel, 0) + 1

    subs = [await c.subscribe(ch, count) for ch in chs[:3]]
    assert all(s.state == "live" for s in subs)

    async def agreed():
        names = await c.subscriptions()
        return all((ch in names) == (i < 3) for i, ch in enumerate(chs))

    await wait_for(agreed, "the server agrees")
    for ch in chs:
        await publish(server, ch, 1)
    await wait_for(lambda: all(counts.get(ch) == 1 for ch in chs[:3]), lambda: str(counts))
    await asyncio.sleep(0.2)
    assert [counts.get(ch, 0) for ch in chs] == [1, 1, 1, 0, 0]


async def test_neurograph_shape_callback_and_run_forever(server, clients):
    c = clients(server.ws_url, auto_reconnect=True, debug=False)
    await c.connect()
    got = []
    c.subscribe("metrics", lambda data: got.append(data["data"]))
    runner = asyncio.ensure_future(c.run_forever())
    await wait_for(lambda: (s := c.subscription("metrics")) is not None and s.state == "live", "live")
    await publish(server, "metrics", {"cpu_percent": 45.2})
    await wait_for(lambda: got == [{"cpu_percent": 45.2}], lambda: str(got))
    await c.close()
    await asyncio.wait_for(runner, 10)
