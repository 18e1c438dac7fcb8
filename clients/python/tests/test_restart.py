"""Real restarts: SIGTERM (reconnect hints, 1001), a new process on the same port (new epochs)."""

from __future__ import annotations

import asyncio
import time

from conftest import Recorder
from harness import Server, channel_info, fresh, publish, wait_for

from framecast import Client, StateChange

CONFIG = """
drain_timeout = "2s"
[namespaces.snap]
history_size = 100
snapshot = true
[namespaces.fleet]
history_size = 1000
snapshot = true
"""


async def test_restart_hint_honoured_resync_from_snapshot(proxies):
    server = await Server(CONFIG).start()
    p = await proxies(server.port)
    c = Client(p.ws_url)
    states: list[tuple[StateChange, float]] = []
    c.on("state", lambda s: states.append((s, time.monotonic())))
    hints: list[tuple[float, float]] = []
    # The client's own reading time of the hint (a listener may run later on a loaded host).
    c.on("draining", lambda d: hints.append((d.after_ms, d.received_at)))
    try:
        await c.connect()
        ch = fresh("snap:room")
        sub = await c.subscribe(ch)
        rec = Recorder(sub)
        await publish(server, ch, "a1", key="a")
        await publish(server, ch, "b1", key="b")
        await wait_for(lambda: len(rec.store()) == 2, "two keys")
        old_epoch = sub.position.epoch

        async def hold_off():
            p.refuse(True)

        server = await server.restart(hold_off)
        assert hints, "a reconnect hint arrived"
        await publish(server, ch, "a2", key="a")
        await publish(server, ch, "c2", key="c")

        async def two():
            info = await channel_info(server, ch)
            return info is not None and info["last_seq"] == 2

        await wait_for(two, "new process has 2 events")
        p.refuse(False)
        await wait_for(lambda: len(rec.caught_up) == 2 and len(rec.store()) == 2, rec.log)
        assert rec.store() == {"a": "a2", "c": "c2"}
        assert len(rec.resyncs) == 1
        assert sub.position.epoch != old_epoch
        await publish(server, ch, "b3", key="b")
        await wait_for(lambda: rec.store().get("b") == "b3", "live delta")
        assert not rec.violations
        after_ms, hint_at = hints[0]
        first = next(t for s, t in states if s.to_state == "connecting" and t >= hint_at)
        assert (first - hint_at) * 1000 >= after_ms - 1, (first - hint_at, after_ms)
    finally:
        await c.close()
        await server.stop()


async def test_200_clients_across_a_restart_lose_nothing():
    server = await Server(CONFIG).start()
    ch = fresh("fleet:all")
    n = 200
    clients = [Client(server.ws_url) for _ in range(n)]
    hint_at: dict[int, tuple[float, float]] = {}
    first_attempt: dict[int, float] = {}
    try:
        await asyncio.gather(*(c.connect() for c in clients))
        for i, c in enumerate(clients):

            def on_hint(d, i=i):
                hint_at.setdefault(i, (d.after_ms, d.received_at))  # the first hint counts

            def on_state(s, i=i):
                if s.to_state == "connecting" and i in hint_at and i not in first_attempt:
                    first_attempt[i] = time.monotonic()

            c.on("draining", on_hint)
            c.on("state", on_state)
        subs = await asyncio.gather(*(c.subscribe(ch) for c in clients))
        recs = [Recorder(sub) for sub in subs]
        for k in range(1, 11):
            await publish(server, ch, k, key=f"e{k}")
        await wait_for(lambda: all(len(r.store()) == 10 for r in recs), "first 10 everywhere", timeout=60)
        t0 = time.monotonic()
        server = await server.restart()
        for k in range(11, 21):
            await publish(server, ch, k, key=f"e{k}")
        await wait_for(
            lambda: all(len(r.caught_up) == 2 for r in recs),
            lambda: f"{sum(len(r.caught_up) == 2 for r in recs)}/{n} resubscribed",
            timeout=60,
        )
        back = time.monotonic() - t0
        for k in range(21, 31):
            await publish(server, ch, k, key=f"e{k}")
        want = sorted(f"e{k}" for k in range(11, 31))
        await wait_for(
            lambda: all(len(r.store()) == 20 for r in recs),
            lambda: f"{sum(len(r.store()) == 20 for r in recs)}/{n} complete",
            timeout=60,
        )
        for i in range(n):
            assert sorted(recs[i].store()) == want, i
            assert not recs[i].violations, (i, recs[i].violations)
            assert len(recs[i].resyncs) == 1, i
            assert [e.seq for e in recs[i].events[:10]] == list(range(1, 11))
            after_ms, at = hint_at[i]
            assert (first_attempt[i] - at) * 1000 >= after_ms - 1
        spread = max(h[0] for h in hint_at.values()) - min(h[0] for h in hint_at.values())
        print(
            f"\n# python: 200 clients resubscribed {back * 1000:.0f} ms after SIGTERM (hints over {spread:.0f} ms)"
        )
        assert spread >= 1000
    finally:
        await asyncio.gather(*(c.close() for c in clients))
        await server.stop()
