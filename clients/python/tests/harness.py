"""Real parts for the tests: a framecast process, a fault-injecting TCP proxy, HTTP publishing,
metrics, and waiting for conditions (never sleeping and hoping)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

CLIENTS_DIR = Path(__file__).resolve().parents[2]
TLS_DIR = CLIENTS_DIR.parent / "tests" / "fixtures" / "tls"
"""The repository's test certificates: ``ca.pem`` and leaves for ``localhost`` / ``127.0.0.1``."""


def tls_args(key: str = "rsa") -> list[str]:
    """The flags that make a server serve ``wss://`` with the test leaf ``server-{key}`` (rsa, ecdsa)."""
    return [
        "--tls-cert-file",
        str(TLS_DIR / f"server-{key}.pem"),
        "--tls-key-file",
        str(TLS_DIR / f"server-{key}.key"),
    ]


def trust_test_ca() -> ssl.SSLContext:
    """A client context that verifies certificates (and host names) against the test CA only."""
    return ssl.create_default_context(cafile=str(TLS_DIR / "ca.pem"))


def framecast_bin() -> str:
    # A relative FRAMECAST_BIN is relative to clients/, like the default.
    path = (CLIENTS_DIR / os.environ.get("FRAMECAST_BIN", "../target/debug/framecast")).resolve()
    if not path.exists():
        raise RuntimeError(
            f"framecast binary not found at {path} (build it with cargo, or set FRAMECAST_BIN)"
        )
    return str(path)


class Server:
    """A framecast process on 127.0.0.1 (port 0 unless ``listen`` is given)."""

    def __init__(self, config: str = "", args: list[str] | None = None, listen: str = "127.0.0.1:0"):
        self.config = config
        self.args = args or []
        self.listen = listen
        self.proc: asyncio.subprocess.Process | None = None
        self.addr = ""
        self.scheme = "ws"
        """``wss`` when the server said it serves TLS (``scheme`` on its "framecast listening" line)."""
        self.logs: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return int(self.addr.rsplit(":", 1)[1])

    @property
    def tls(self) -> bool:
        return self.scheme == "wss"

    @property
    def host(self) -> str:
        # TLS by name, which the test certificates carry (as they do 127.0.0.1).
        return f"localhost:{self.port}" if self.tls else self.addr

    @property
    def ws_url(self) -> str:
        return f"{self.scheme}://{self.host}/ws"

    @property
    def http_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """What a client of this server trusts: the test CA when it serves TLS."""
        return trust_test_ca() if self.tls else None

    async def start(self) -> Server:
        fd, cfg = tempfile.mkstemp(prefix="framecast-py-", suffix=".toml")
        with os.fdopen(fd, "w") as f:
            f.write(self.config)
        self.proc = await asyncio.create_subprocess_exec(
            framecast_bin(),
            "--listen",
            self.listen,
            "--shards",
            "1",
            "--pin-cores",
            "false",
            "--log-format",
            "json",
            "--log-level",
            "info",
            "--config",
            cfg,
            *self.args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        listening: asyncio.Future[tuple[str, str]] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.get_running_loop().create_task(self._read_logs(listening))
        try:
            self.addr, self.scheme = await asyncio.wait_for(listening, 30)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            raise
        return self

    async def _read_logs(self, listening: asyncio.Future[tuple[str, str]]) -> None:
        assert self.proc and self.proc.stderr
        while line := await self.proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            self.logs.append(text)
            with contextlib.suppress(ValueError):
                v = json.loads(text)
                fields = v.get("fields", {})
                if fields.get("message") == "framecast listening" and not listening.done():
                    listening.set_result((fields["addr"], fields.get("scheme", "ws")))
        if not listening.done():
            listening.set_exception(
                RuntimeError("framecast exited before listening:\n" + "\n".join(self.logs))
            )

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._reader:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._reader, 5)
        return self.proc.returncode

    async def restart(self, between: Callable[[], Awaitable[None]] | None = None) -> Server:
        """SIGTERM, wait, then a new process on the same address (new epochs)."""
        await self.stop()
        if between:
            await between()
        last: BaseException | None = None
        for _ in range(50):
            try:
                return await Server(self.config, self.args, self.addr).start()
            except RuntimeError as e:
                last = e
                await asyncio.sleep(0.1)
        raise AssertionError(f"restart failed: {last}")


class Proxy:
    """TCP proxy with real faults: cut, blackhole (half-open), pause reads from the server, refuse."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.accepted = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._blackhole = False
        self._refuse = False
        self._reads = asyncio.Event()
        self._reads.set()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def connections(self) -> int:
        return len(self._pairs)

    async def start(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._refuse:
            cw.transport.abort()
            return
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            cw.transport.abort()
            return
        pair = (cw, uw)
        self._pairs.add(pair)

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, from_server: bool) -> None:
            with contextlib.suppress(Exception):
                while True:
                    if from_server:
                        await self._reads.wait()
                    data = await r.read(65536)
                    if not data:
                        break
                    if not self._blackhole:
                        w.write(data)
                        await w.drain()

        await asyncio.wait(
            [asyncio.create_task(pump(cr, uw, False)), asyncio.create_task(pump(ur, cw, True))],
            return_when=asyncio.FIRST_COMPLETED,
        )
        self._drop(pair)

    def _drop(self, pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        self._pairs.discard(pair)
        for w in pair:
            w.transport.abort()

    def cut(self) -> None:
        for pair in list(self._pairs):
            self._drop(pair)

    def blackhole(self, on: bool = True) -> None:
        self._blackhole = on

    def pause_server_reads(self, on: bool = True) -> None:
        if on:
            self._reads.clear()
        else:
            self._reads.set()

    def refuse(self, on: bool = True) -> None:
        self._refuse = on

    async def close(self) -> None:
        self.cut()
        if self._server:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)


async def http(
    method: str,
    url: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    """A minimal HTTP/1.1 request (Connection: close): ``body`` as JSON, or ``raw`` bytes as
    ``application/octet-stream``. ``https://`` verifies the server against ``context`` (default:
    ``ssl.create_default_context()``, the system's trust store)."""
    m = re.match(r"(https?)://([^/:]+):(\d+)(/.*)", url)
    assert m, url
    tls, host, port, path = m.group(1) == "https", m.group(2), int(m.group(3)), m.group(4)
    payload = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
    if tls:
        ctx = context or ssl.create_default_context()
        r, w = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=host)
    else:
        r, w = await asyncio.open_connection(host, port)
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {len(payload)}\r\n"
    )
    if raw is not None:
        head += "Content-Type: application/octet-stream\r\n"
    elif body is not None:
        head += "Content-Type: application/json\r\n"
    w.write(head.encode() + b"\r\n" + payload)
    await w.drain()
    raw = await r.read()
    w.close()
    status = int(raw.split(b" ", 2)[1])
    return status, raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in raw else b""


async def publish(
    server: Server, channel: str, data: Any, *, key: str | None = None, event_type: str = "message"
) -> None:
    body: dict[str, Any] = {"channel": channel, "data": data, "event_type": event_type}
    if key is not None:
        body["key"] = key
    status, text = await http("POST", f"{server.http_url}/api/v1/broadcast", body, context=server.ssl_context)
    assert status == 202, (status, text)


async def publish_bytes(
    server: Server, channel: str, data: bytes, *, key: str | None = None, event_type: str | None = None
) -> None:
    """A binary event through ``POST /api/v1/broadcast?channel=…`` with an octet-stream body."""
    from urllib.parse import urlencode

    query = {"channel": channel}
    if event_type is not None:
        query["event_type"] = event_type
    if key is not None:
        query["key"] = key
    status, text = await http(
        "POST", f"{server.http_url}/api/v1/broadcast?{urlencode(query)}", raw=data, context=server.ssl_context
    )
    assert status == 202, (status, text)


async def channel_info(server: Server, channel: str) -> dict[str, Any] | None:
    from urllib.parse import quote

    status, body = await http(
        "GET", f"{server.http_url}/api/v1/channels/{quote(channel, safe='')}", context=server.ssl_context
    )
    return json.loads(body) if status == 200 else None


async def metrics(server: Server) -> dict[str, float]:
    _, body = await http("GET", f"{server.http_url}/metrics", context=server.ssl_context)
    out: dict[str, float] = {}
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
    return out


async def wait_for(
    cond: Callable[[], Any], message: str | Callable[[], str], timeout: float = 20, interval: float = 0.02
) -> Any:
    """Polls ``cond`` (sync or async) until truthy; fails with ``message`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if asyncio.iscoroutine(v):
            v = await v
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout} s: {message() if callable(message) else message}"
            )
        await asyncio.sleep(interval)


_counter = itertools.count(1)


def fresh(prefix: str) -> str:
    return f"{prefix}{os.getpid()}-{int(time.time() * 1000) % 10**8}-{next(_counter)}"


LANDED: frozenset[str] = frozenset(
    # framecast-7d40c37 (2026-12-02 04:00): items 1-7 of PROTOCOL-ADDITIONS.md.
    {"expires_at_ms", "traits", "defaults", "published_seq", "full1013", "cors"}
)
"""Protocol additions of issue 14 the repository's server has (per /work/bin/CHANGES.md): their
tests fail instead of skipping when the server under test lacks them. Keep in step with
testkit/src/probe.ts."""


async def probe_features(server: Server, channel: str = "probe.features") -> dict[str, bool]:
    """Which additions the server sends, found by asking (replies come in command order)."""
    from websockets.asyncio.client import connect

    msgs: list[dict[str, Any]] = []
    async with connect(server.ws_url, ssl=server.ssl_context) as ws:
        await ws.send(json.dumps({"type": "subscribe", "channels": [channel], "id": 1}))
        await ws.send(json.dumps({"type": "publish", "channel": channel, "data": 0, "id": 2}))
        await ws.send(json.dumps({"type": "ping", "id": 3}))
        # `published` is not ordered with other replies (a pong may overtake it): wait for both.
        while not (
            any(m.get("type") == "pong" for m in msgs)
            and any(m.get("type") == "published" or m.get("id") == 2 for m in msgs)
        ):
            msgs.append(json.loads(await ws.recv()))
    hello = next((m for m in msgs if m.get("type") == "connected"), {})
    sub = next((m for m in msgs if m.get("type") == "subscribed" and m.get("id") == 1), {})
    pos = (sub.get("positions") or {}).get(channel) or {}
    published = next((m for m in msgs if m.get("type") == "published"), {})
    return {
        "expires_at_ms": "expires_at_ms" in hello,
        "traits": "delivery" in pos and "snapshot_events" in pos,
        "defaults": any(m.get("type") == "subscribed" and m.get("default") is True for m in msgs),
        "published_seq": isinstance(published.get("seq"), int),
    }


async def full_server_upgrades(server: Server) -> bool:
    """Whether a server at max_connections completes the upgrade (then 1013) instead of 503."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    try:
        async with connect(server.ws_url, ssl=server.ssl_context):
            return True
    except InvalidStatus:
        return False


def need(features: dict[str, bool], what: str) -> None:
    """Skips (saying so) a test of an addition the server lacks, unless it has landed."""
    import pytest

    if features.get(what):
        return
    assert what not in LANDED, f"the server lacks {what}, which has landed"
    pytest.skip(f"the server does not send {what} yet")
