"""The wire forms a client may choose, against a real framecast process: permessage-deflate
(compressed once per event on the server, inflated by `websockets`), tick batches (a
channel's events of one tick as one JSON array message, handed out one by one) and binary events
(binary frames with `binary=True`, base64 in JSON otherwise: the same bytes either way)."""

from __future__ import annotations

import asyncio
from array import array
from typing import Any

import pytest
from conftest import Recorder
from harness import channel_info, fresh, publish, publish_bytes, wait_for

from framecast import Event, FramecastError

CONFIG = """
tick_hz = 2
[namespaces.hist]
history_size = 100
[namespaces.snap]
history_size = 10
snapshot = true
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
    assert (await batched.connect()).batch, "the server says it batches"
    assert not (await plain.connect()).batch
    ch = fresh("hist:batch")
    got = Recorder(await batched.subscribe(ch))
    want = Recorder(await plain.subscribe(ch))
    # Published together, so that ticks (2 Hz) carry several events each.
    await asyncio.gather(*(publish(server, ch, {"i": i}) for i in range(20)))
    await wait_for(lambda: len(got.events) == 20 and len(want.events) == 20, "20 events each")
    assert got.live_seqs() == list(range(1, 21))
    assert [e.data for e in got.events] == [e.data for e in want.events]
    assert not got.violations


def f32(*xs: float) -> bytes:
    return array("f", xs).tobytes()


def as_f32(data: object) -> list[float]:
    assert isinstance(data, bytes), data
    a = array("f")
    a.frombytes(data)
    return list(a)


def seen(e: Event) -> tuple[Any, ...]:
    """What an application sees of an event."""
    return (e.seq, e.event_type, e.key, e.snapshot, e.data)


async def _last_seq(server: Any, ch: str, n: int) -> bool:
    info = await channel_info(server, ch)
    return info is not None and info.get("last_seq") == n


async def test_http_octet_stream_reaches_every_wire_form_as_the_same_bytes(servers, clients):
    server = await servers(CONFIG)
    forms = {
        "binary": clients(server.ws_url, binary=True),
        "json": clients(server.ws_url),
        "batch": clients(server.ws_url, batch=True),
        "binary_batch": clients(server.ws_url, binary=True, batch=True),
    }
    infos = await asyncio.gather(*(c.connect() for c in forms.values()))
    assert [(i.batch, i.binary) for i in infos] == [
        (False, True),
        (False, False),
        (True, False),
        (True, True),
    ]
    ch = fresh("hist:bin")
    recs = {name: Recorder(await c.subscribe(ch)) for name, c in forms.items()}
    # Published together, so that ticks (2 Hz) mix binary and JSON events.
    await asyncio.gather(
        publish_bytes(server, ch, f32(1.5, -2.25, 3e9), event_type="f32"),
        publish_bytes(server, ch, b"\x00\x01\xfe\xff", event_type="raw", key="k1"),
        publish(server, ch, {"json": True}),
        publish_bytes(server, ch, b""),
    )
    await wait_for(
        lambda: all(len(r.events) == 4 for r in recs.values()),
        lambda: "; ".join(f"{n}: {r.log()}" for n, r in recs.items()),
    )
    want = [seen(e) for e in recs["json"].events]
    for name, rec in recs.items():
        assert rec.live_seqs() == [1, 2, 3, 4], name
        assert [seen(e) for e in rec.events] == want, name
        assert not rec.violations, name
    by_type = {e.event_type: e for e in recs["json"].events}
    assert as_f32(by_type["f32"].data) == [1.5, -2.25, 3e9]
    assert by_type["message"].data in (b"", {"json": True})
    assert sorted(e.encoding for e in recs["binary"].events) == ["binary", "binary", "binary", "json"]
    assert sorted(e.encoding for e in recs["binary_batch"].events) == ["binary", "binary", "binary", "json"]
    assert sorted(e.encoding for e in recs["json"].events) == ["base64", "base64", "base64", "json"]
    assert sorted(e.encoding for e in recs["batch"].events) == ["base64", "base64", "base64", "json"]


async def test_publish_binary_reaches_other_clients_float32_round_trip(servers, clients):
    server = await servers(CONFIG)
    publisher = clients(server.ws_url)
    binary = clients(server.ws_url, binary=True)
    plain = clients(server.ws_url)
    await asyncio.gather(publisher.connect(), binary.connect(), plain.connect())
    ch = fresh("hist:pubbin")
    got = Recorder(await binary.subscribe(ch))
    got_json = Recorder(await plain.subscribe(ch))
    ack = await publisher.publish_binary(ch, f32(1.5, -2.25, 3e9), event_type="f32", key="pos")
    assert (ack.channel, ack.seq) == (ch, 1)
    assert isinstance(ack.frame, int)
    ack2 = await binary.publish_binary(ch, bytearray(b"\x01\x02\x03"))
    assert ack2.seq == 2
    await wait_for(lambda: len(got.events) == 2 and len(got_json.events) == 2, "two events each")
    for rec, encoding in ((got, "binary"), (got_json, "base64")):
        a, b = rec.events
        assert (a.encoding, a.event_type, a.key, a.frame) == (encoding, "f32", "pos", ack.frame)
        assert as_f32(a.data) == [1.5, -2.25, 3e9]
        assert (b.encoding, b.event_type, b.key, b.data) == (encoding, "message", None, b"\x01\x02\x03")
    assert got.events[0].timestamp == got_json.events[0].timestamp
    with pytest.raises(FramecastError) as e:
        await publisher.publish_binary(ch, b"\x00", event_type="t" * 256)
    assert e.value.code != "TIMEOUT"


async def test_binary_events_are_kept_snapshot_and_replay_as_binary_frames(servers, proxies, clients):
    server = await servers(CONFIG)
    ch = fresh("snap:bin")
    await publish_bytes(server, ch, f32(1, 2), event_type="f32", key="a")
    await publish_bytes(server, ch, f32(3, 4), event_type="f32", key="b")
    await wait_for(lambda: _last_seq(server, ch, 2), "2 published")
    p = await proxies(server.port)
    binary = clients(p.ws_url, binary=True)
    plain = clients(server.ws_url)
    await asyncio.gather(binary.connect(), plain.connect())
    rec = Recorder(await binary.subscribe(ch))
    rec_json = Recorder(await plain.subscribe(ch))
    await wait_for(lambda: len(rec.events) == 2 and len(rec_json.events) == 2, "snapshots")
    for r, encoding in ((rec, "binary"), (rec_json, "base64")):
        assert [(e.seq, e.key, e.snapshot, e.encoding, as_f32(e.data)) for e in r.events] == [
            (1, "a", True, encoding, [1.0, 2.0]),
            (2, "b", True, encoding, [3.0, 4.0]),
        ]
    # Away while two more are published: recovered with since, replayed as binary frames.
    p.refuse(True)
    p.cut()
    await wait_for(lambda: binary.state == "reconnecting", "reconnecting")
    with pytest.raises(FramecastError) as e:
        await binary.publish_binary(ch, f32(5))
    assert e.value.code == "NOT_CONNECTED"
    await plain.publish_binary(ch, f32(5), event_type="f32", key="a")
    await publish_bytes(server, ch, f32(6), event_type="f32", key="c")
    await wait_for(lambda: _last_seq(server, ch, 4), "4 published")
    p.refuse(False)
    await wait_for(lambda: len(rec.caught_up) == 2 and len(rec.events) == 4, rec.log)
    assert rec.caught_up[1].recovered is True
    assert [(e.seq, e.key, e.replay, e.encoding, as_f32(e.data)) for e in rec.events[2:]] == [
        (3, "a", True, "binary", [5.0]),
        (4, "c", True, "binary", [6.0]),
    ]
    sub = binary.subscription(ch)
    assert sub is not None and sub.position is not None and sub.position.seq == 4
    await binary.publish_binary(ch, f32(7), event_type="f32", key="b")
    await wait_for(lambda: len(rec.events) == 5 and len(rec_json.events) == 5, "a live one")
    assert rec.live_seqs() == [3, 4, 5]
    assert not rec.events[4].replay
    assert [as_f32(e.data) for e in rec_json.events] == [[1, 2], [3, 4], [5], [6], [7]]
    assert not rec.violations and not rec_json.violations
