"""The wire forms a client may choose, against a real framecast process: permessage-deflate
(compressed once per event on the server, inflated by `websockets`) and tick batches (a
channel's events of one tick as one JSON array message, handed out one by one)."""

from __future__ import annotations

import asyncio

from conftest import Recorder
from harness import fresh, publish, wait_for

CONFIG = """
tick_hz = 2
[namespaces.hist]
history_size = 100
"""


def _extensions(client: object) -> str:
    ws = client._ws  # type: ignore[attr-defined]
    assert ws is not None and ws.response is not None
    return str(ws.response.headers.get("Sec-WebSocket-Extensions", ""))


async def test_deflate_is_agreed_and_events_arrive_inflated(servers, clients):
    server = await servers(CONFIG)
    c = clients(server.ws_url)
    await c.connect()
    assert "permessage-deflate" in _extensions(c)
    ch = fresh("hist:z")
    rec = Recorder(await c.subscribe(ch))
    await asyncio.gather(*(publish(server, ch, {"x": i + 0.5, "unit": f"u{i}"}) for i in range(5)))
    await wait_for(lambda: len(rec.events) == 5, "five events")
    assert sorted(e.data["x"] for e in rec.events) == [0.5, 1.5, 2.5, 3.5, 4.5]
    assert rec.live_seqs() == [1, 2, 3, 4, 5]


async def test_compression_off_on_the_client_sends_no_offer(servers, clients):
    server = await servers(CONFIG)
    c = clients(server.ws_url, compression=False)
    await c.connect()
    assert _extensions(c) == ""


async def test_a_batch_client_gets_every_event_once_in_order(servers, clients):
    server = await servers(CONFIG)
    batched = clients(server.ws_url, batch=True)
    plain = clients(server.ws_url)
    await batched.connect()
    await plain.connect()
    ch = fresh("hist:batch")
    got = Recorder(await batched.subscribe(ch))
    want = Recorder(await plain.subscribe(ch))
    # Published together, so that ticks (2 Hz) carry several events each.
    await asyncio.gather(*(publish(server, ch, {"i": i}) for i in range(20)))
    await wait_for(lambda: len(got.events) == 20 and len(want.events) == 20, "20 events each")
    assert got.live_seqs() == list(range(1, 21))
    assert [e.data for e in got.events] == [e.data for e in want.events]
    assert not got.violations
