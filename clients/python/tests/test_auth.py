"""Tokens against a real server with jwt_secret."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest
from conftest import Recorder
from harness import fresh, wait_for

from framecast import Client, FramecastError, StateChange

SECRET = "test-secret-0123456789abcdef-0123456789"
CONFIG = f'jwt_secret = "{SECRET}"\n[namespaces.team]\nsubscribe = "token"\n'


def token(sub: str, ttl: float, **claims: object) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time() + ttl), **claims}, SECRET, algorithm="HS256")


@pytest.fixture
async def server(servers):
    return await servers(CONFIG)


@pytest.mark.parametrize("auth", ["message", "header", "query"])
async def test_valid_token_claims_enforced(server, clients, auth):
    c = clients(server.ws_url, auth=auth, token=token("alice", 60, channels=["team:red"]))
    info = await c.connect()
    assert info.user_id == "alice"
    assert info.token_expires_at and info.token_expires_at > time.time()
    await c.subscribe("team:red")
    with pytest.raises(FramecastError) as e:
        await c.subscribe("team:blue")
    assert e.value.code == "FORBIDDEN"
    assert c.state == "connected"


async def test_token_refresh_without_reconnect(server, proxies, clients):
    p = await proxies(server.port)
    asked: list[str] = []

    async def get_token(why: str) -> str:
        asked.append(why)
        return token("bob", 4)

    c = clients(p.ws_url, auth="message", get_token=get_token)
    refreshed: list[object] = []
    c.on("authenticated", refreshed.append)
    disconnects: list[object] = []
    c.on("disconnected", disconnects.append)
    await c.connect()
    ch = fresh("plain.refresh")
    rec = Recorder(await c.subscribe(ch))
    await wait_for(lambda: len(refreshed) >= 3, lambda: f"3 refreshes ({asked})", timeout=30)
    assert disconnects == []
    assert p.accepted == 1
    assert asked[0] == "connect" and all(w == "refresh" for w in asked[1:])
    await c.publish(ch, "still here")
    await wait_for(lambda: len(rec.events) == 1, "event")


@pytest.mark.parametrize("auth", ["header", "message"])
async def test_expired_token_without_get_token_fails_no_loop(server, proxies, clients, auth):
    p = await proxies(server.port)
    c = clients(p.ws_url, auth=auth, token=token("carol", -60))
    states: list[StateChange] = []
    c.on("state", states.append)
    with pytest.raises(FramecastError) as e:
        await c.connect()
    assert e.value.code == "FAILED"
    await asyncio.sleep(3)
    assert p.accepted == 1
    assert c.state == "failed"
    assert not any(s.to_state == "reconnecting" for s in states)


async def test_rejected_token_one_retry_then_failed(server, proxies, clients):
    p = await proxies(server.port)
    asked: list[str] = []

    def get_token(why: str) -> str:
        asked.append(why)
        return "not.a.valid-token"

    c = clients(p.ws_url, auth="message", token=token("dave", -10), get_token=get_token)
    with pytest.raises(FramecastError):
        await c.connect()
    await asyncio.sleep(2)
    assert c.state == "failed"
    assert asked == ["expired", "rejected"]
    assert p.accepted == 2


async def test_no_token_where_required_fails_no_loop(servers, proxies, clients):
    strict = await servers(CONFIG, ["--auth-timeout", "1s"])
    p = await proxies(strict.port)
    c = clients(p.ws_url, auth="message")
    asyncio.ensure_future(c.connect())
    await wait_for(lambda: c.state == "failed", "failed")
    await asyncio.sleep(2)
    assert p.accepted == 1


async def test_expiry_on_live_connection_then_get_token(server, clients):
    n = []

    def get_token(why: str) -> str | None:
        if why == "refresh":
            return None
        n.append(why)
        return token("erin", 60)

    c = clients(server.ws_url, auth="message", token=token("erin", 7), get_token=get_token)
    codes: list[tuple[int, str]] = []
    c.on("disconnected", codes.append)
    await c.connect()
    await wait_for(
        lambda: len(codes) == 1 and c.state == "connected", lambda: f"{codes} {c.state}", timeout=20
    )
    assert codes[0][0] == 4001
    assert n == ["expired"]


async def test_async_with_and_iteration(server):
    async with Client(server.ws_url, token=token("fay", 60)) as fc:
        sub = await fc.subscribe(fresh("plain.iter"))
        await fc.publish(sub.channel, {"n": 1})
        await fc.publish(sub.channel, {"n": 2})
        got = []
        async for event in sub:
            got.append(event.data["n"])
            if len(got) == 2:
                break
        assert got == [1, 2]
    assert fc.state == "closed"
