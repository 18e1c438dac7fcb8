"""wss:// end to end: the server serves TLS itself (tls_cert_file / tls_key_file) with the
repository's test certificates; the client trusts the test CA through ``ssl=`` (verification on,
host name checked against ``localhost``), and one that does not trust it fails at once."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from conftest import Recorder
from harness import fresh, http, publish, publish_bytes, tls_args, trust_test_ca, wait_for

from framecast import Client, FramecastError, StateChange


@pytest.mark.parametrize("key", ["rsa", "ecdsa"])
async def test_wss_round_trip_trusting_the_test_ca(servers, clients, key):
    server = await servers(args=tls_args(key))
    assert server.tls, server.logs
    assert server.ws_url == f"wss://localhost:{server.port}/ws"
    c = clients(server.ws_url, ssl=trust_test_ca())
    info = await c.connect()
    assert info.client_id
    ch = fresh("tls:")
    rec = Recorder(await c.subscribe(ch))
    # Over HTTPS (the same port, the same certificate): one small event, one of many TLS records.
    await publish(server, ch, {"from": "https"})
    big = "x" * 200_000
    await publish(server, ch, {"big": big})
    await publish_bytes(server, ch, bytes(range(256)) * 4, event_type="raw")
    ack = await c.publish(ch, {"from": "client"})
    assert ack.seq == 4
    await wait_for(lambda: len(rec.events) == 4, rec.log)
    assert [e.seq for e in rec.events] == [1, 2, 3, 4]
    assert rec.events[0].data == {"from": "https"}
    assert rec.events[1].data == {"big": big}
    assert rec.events[2].data == bytes(range(256)) * 4 and rec.events[2].encoding == "base64"
    assert rec.events[3].data == {"from": "client"}
    assert rec.violations == [] and rec.gaps == []
    rtt = await c.ping()
    assert rtt >= 0


async def test_binary_frames_over_wss(servers, clients):
    server = await servers(args=tls_args())
    c = clients(server.ws_url, ssl=trust_test_ca(), binary=True)
    await c.connect()
    ch = fresh("tls:bin")
    rec = Recorder(await c.subscribe(ch))
    payload = bytes(range(256)) * 64
    await publish_bytes(server, ch, payload, event_type="raw")
    await c.publish_binary(ch, payload[::-1], event_type="raw")
    await wait_for(lambda: len(rec.events) == 2, rec.log)
    assert [(e.encoding, e.data) for e in rec.events] == [("binary", payload), ("binary", payload[::-1])]


async def test_untrusted_certificate_fails_with_a_certificate_error(servers):
    server = await servers(args=tls_args())
    # The default context (the system's trust store) does not know the test CA.
    c = Client(server.ws_url)
    states: list[StateChange] = []
    c.on("state", states.append)
    try:
        with pytest.raises(FramecastError) as failed:
            await asyncio.wait_for(c.connect(), 20)
    finally:
        await c.close()
    assert failed.value.code == "FAILED"
    assert "TLS certificate verification failed" in str(failed.value), failed.value
    assert "unable to get local issuer certificate" in str(failed.value), failed.value
    # Never retried, never connected: the first attempt fails for good.
    assert [s.to_state for s in states] == ["connecting", "failed", "closed"], states
    # HTTPS without the CA is refused by the same check (the server is fine: with it, it answers).
    with pytest.raises(ssl.SSLCertVerificationError):
        await http("GET", f"{server.http_url}/api/v1/channels/none")
    status, _ = await http("GET", f"{server.http_url}/metrics", context=trust_test_ca())
    assert status == 200


def test_ssl_is_refused_for_a_plain_url():
    with pytest.raises(ValueError, match="wss://"):
        Client("ws://127.0.0.1:1/ws", ssl=trust_test_ca())
