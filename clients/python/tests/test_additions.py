"""The protocol additions of issue 14 (docs/protocol.md): token expiry in ``connected`` /
``authenticated``, default channels joined with positions and recovered with ``since``, channel
traits and snapshot/replay counts in ``positions``, ``published.seq``, 1013 + ``reconnect`` at
max_connections. Each test checks what the server sends and what the client makes of it."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import jwt
import pytest
from conftest import Recorder
from harness import Server, channel_info, full_server_upgrades, need, probe_features, publish, wait_for

from framecast import Draining, Event, StateChange

SECRET = "additions-secret-0123456789abcdef-0123"
CONFIG = f"""
default_channels = ["news:all", "system.status"]
jwt_secret = "{SECRET}"
allow_anonymous = true
status_interval = "1h"
[namespaces.news]
history_size = 100
[namespaces.snap]
history_size = 10
snapshot = true
[namespaces.noecho]
echo = false
history_size = 100
"""


def token(sub: str, ttl: float) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time() + ttl)}, SECRET, algorithm="HS256")


def exp_ms(tok: str) -> int:
    part = tok.split(".")[1]
    return int(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))["exp"]) * 1000


@pytest.fixture
async def server():
    s = await Server(CONFIG).start()
    s.features = await probe_features(s)  # type: ignore[attr-defined]
    print(f"\n# server additions: {s.features}")  # type: ignore[attr-defined]
    yield s
    await s.stop()


async def last_seq(server: Server, ch: str, want: int) -> None:
    async def at() -> bool:
        info = await channel_info(server, ch)
        return info is not None and info["last_seq"] == want

    await wait_for(at, f"{ch} at seq {want}")


@pytest.mark.parametrize("auth", ["header", "message"])
async def test_expires_at_ms_and_refresh_scheduled_from_it(server, clients, auth):
    need(server.features, "expires_at_ms")
    anon = clients(server.ws_url)
    info = await anon.connect()
    assert "expires_at_ms" in info.raw and info.raw["expires_at_ms"] is None
    assert anon.token_expires_at is None
    t = token("ada", 8)
    refreshed: list[object] = []
    c = clients(server.ws_url, auth=auth, token=t, get_token=lambda why: token("ada", 60))
    c.on("authenticated", lambda user: refreshed.append(c.token_expires_at))
    info = await c.connect()
    if auth == "header":
        assert info.raw["expires_at_ms"] == exp_ms(t)
    assert info.token_expires_at == exp_ms(t) / 1000
    # An 8 s token: refreshed at half its life on the live connection; `authenticated` says the new expiry.
    await wait_for(lambda: refreshed, "refreshed", timeout=15)
    assert isinstance(refreshed[0], float) and refreshed[0] > exp_ms(t) / 1000


async def test_traits_and_snapshot_events(server, clients):
    need(server.features, "traits")
    c = clients(server.ws_url)
    await c.connect()
    ch = f"snap:traits-{time.time_ns()}"
    for k in ("a", "b", "c"):
        await publish(server, ch, k, key=k)
    await publish(server, ch, "a2", key="a")
    await last_seq(server, ch, 4)
    sub = await c.subscribe(ch)
    rec = Recorder(sub)
    await wait_for(lambda: rec.caught_up, rec.log)
    tr = sub.traits
    assert (tr["delivery"], tr["history"], tr["snapshot"], tr["echo"]) == ("reliable", 10, True, True)
    assert isinstance(tr["rate_hz"], int)
    assert (tr["snapshot_events"], tr["replay_events"]) == (3, 0)
    # the three snapshot events (newest per key), then caught up: complete by count
    assert [type(i).__name__ for i in rec.items] == ["Event", "Event", "Event", "CaughtUp"]
    assert sorted(e.seq for e in rec.events) == [2, 3, 4] and all(e.snapshot for e in rec.events)


async def test_replay_events_count(server, proxies, clients):
    need(server.features, "traits")
    p = await proxies(server.port)
    c = clients(p.ws_url)
    await c.connect()
    ch = f"news:replay-{time.time_ns()}"
    sub = await c.subscribe(ch)
    rec = Recorder(sub)
    await publish(server, ch, 1)
    await wait_for(lambda: len(rec.events) == 1, "one")
    p.refuse(True)
    p.cut()
    await wait_for(lambda: c.state == "reconnecting", "reconnecting")
    for i in range(2, 7):
        await publish(server, ch, i)
    await last_seq(server, ch, 6)
    p.refuse(False)
    await wait_for(lambda: len(rec.caught_up) == 2, rec.log)
    assert rec.caught_up[-1].recovered is True
    assert sub.traits["replay_events"] == 5
    assert rec.live_seqs() == [1, 2, 3, 4, 5, 6]
    assert all(e.replay for e in rec.events[1:])
    assert isinstance(rec.items[-1], type(rec.caught_up[0])), "caught up right after the 5th replayed event"


@pytest.mark.parametrize("auth", ["none", "message", "strict"])
async def test_default_channels_recovered_with_since(server, servers, proxies, clients, auth):
    """since travels on the upgrade URL: anonymous; a token in ``auth`` on a server that allows
    anonymous connections (defaults joined at open); and one that does not (joined after auth)."""
    need(server.features, "defaults")
    if auth == "strict":
        server = await servers(CONFIG.replace("allow_anonymous = true", "allow_anonymous = false"))
    p = await proxies(server.port)
    kw = {"auth": "message", "token": token("bea", 600)} if auth != "none" else {}
    c = clients(p.ws_url, **kw)
    news: list[int] = []

    def on_event(e: Event) -> None:
        if e.channel == "news:all":
            news.append(e.data)

    c.on("event", on_event)
    await c.connect()
    await wait_for(
        lambda: (s := c.subscription("news:all")) is not None and s.state == "live", "default live"
    )
    sub = c.subscription("news:all")
    assert sub is not None and sub.is_default and sub.recoverable is True
    assert sub.position is not None
    base = sub.position.seq
    for i in range(1, 4):
        await publish(server, "news:all", base + i)
    await wait_for(lambda: len(news) == 3, "three live")
    p.refuse(True)
    p.cut()
    await wait_for(lambda: c.state == "reconnecting", "reconnecting")
    for i in range(4, 7):
        await publish(server, "news:all", base + i)
    await last_seq(server, "news:all", base + 6)
    p.refuse(False)
    await wait_for(lambda: len(news) == 6, lambda: f"recovered: {news}")
    await asyncio.sleep(0.1)
    assert news == list(range(base + 1, base + 7)), "each event once, in order, none lost"
    # Iterating a default channel, then unsubscribing: the channel stays joined.
    it = await c.subscribe("news:all")
    rec = Recorder(it)
    await publish(server, "news:all", base + 7)
    await wait_for(lambda: rec.events, "iterated")
    await it.unsubscribe()
    assert "news:all" in await c.subscriptions(), "still joined"
    await publish(server, "news:all", base + 8)
    await wait_for(lambda: len(news) == 8, "client events continue")
    assert [e.data for e in rec.events] == [base + 7]
    assert not rec.violations and not rec.resyncs


async def test_published_seq_echo_false(server, clients):
    need(server.features, "published_seq")
    a = clients(server.ws_url)
    await a.connect()
    ch = f"noecho:seq-{time.time_ns()}"
    sub = await a.subscribe(ch)
    rec = Recorder(sub)
    own: list[int] = []
    for i in range(5):
        ack = await a.publish(ch, f"a{i}")
        assert isinstance(ack.seq, int) and isinstance(ack.frame, int)
        own.append(ack.seq)
        await publish(server, ch, f"h{i}")
    await wait_for(lambda: len(rec.events) == 5, rec.log)
    assert sorted(own + rec.live_seqs()) == list(range(1, 11)), "own + delivered = every seq once"
    assert [e.data for e in rec.events] == [f"h{i}" for i in range(5)]
    assert not rec.violations


async def test_full_server_1013_after_ms(servers, clients):
    full = await servers("", ["--max-connections", "1"])
    a = clients(full.ws_url)
    await a.connect()
    if not await full_server_upgrades(full):
        need({}, "full1013")
    b = clients(full.ws_url)
    states: list[tuple[StateChange, float]] = []
    b.on("state", lambda s: states.append((s, time.monotonic())))
    hints: list[Draining] = []
    b.on("draining", hints.append)
    codes: list[int] = []
    b.on("disconnected", lambda d: codes.append(d[0]))
    connecting = asyncio.ensure_future(b.connect())
    await wait_for(lambda: codes, "b turned away")
    assert codes[0] == 1013
    assert hints, "a reconnect hint first"
    h = hints[0]
    assert 1000 <= h.after_ms <= 5000 and "full" in h.reason
    await a.close()
    await asyncio.wait_for(connecting, 30)
    first = next(t for s, t in states if s.to_state == "connecting" and t >= h.received_at)
    assert (first - h.received_at) * 1000 >= h.after_ms
    assert b.state == "connected"
    assert not any(s.to_state == "failed" for s, _ in states)
