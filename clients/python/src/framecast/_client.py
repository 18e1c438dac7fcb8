"""The framecast asyncio client: its own reconnect loop (server hints first, then full-jitter
backoff), resubscription with ``since``, requests settled by ``id``, token refresh, RTT and clock."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random as _random
import ssl as _ssl
import time
from collections.abc import Awaitable, Callable, Generator
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from ._binary import BINARY_VERSION, decode_base64, decode_binary_event, encode_binary_publish
from ._errors import FramecastError
from ._subscription import EventCallback, Subscription
from ._timing import Clock, backoff_delay, refresh_delay, token_expiry
from ._types import (
    ConnectedInfo,
    ConnectionState,
    Delivery,
    Draining,
    Event,
    EventEncoding,
    Position,
    PublishAck,
    ReconnectOptions,
    StateChange,
    TokenReason,
)

log = logging.getLogger("framecast")

TokenProvider = Callable[[TokenReason], "Awaitable[str | None] | str | None"]


class _Pending:
    __slots__ = ("future", "kind", "sub", "t0", "timer", "wall0")

    def __init__(self, future: asyncio.Future[Any], kind: str, sub: Subscription | None) -> None:
        self.future = future
        self.kind = kind
        self.sub = sub
        self.t0: float | None = None
        self.wall0: float | None = None
        self.timer: asyncio.TimerHandle | None = None


class _SubscribeCall:
    """What ``subscribe()`` returns: the subscription is registered at once (the NeuroGraph shape
    needs no ``await``); awaiting it waits until the subscription is live and returns it."""

    def __init__(self, sub: Subscription) -> None:
        self.subscription = sub

    def __await__(self) -> Generator[Any, None, Subscription]:
        return self.subscription.wait_ready().__await__()


def _parse_time(ts: str) -> float:
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return float("nan")


class Client:
    """A framecast connection.

    >>> async with Client("ws://127.0.0.1:8080/ws") as fc:
    ...     async for event in await fc.subscribe("chat:42"):
    ...         print(event.seq, event.data)
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        get_token: TokenProvider | None = None,
        auth: Literal["header", "query", "message"] = "header",
        reconnect: bool | ReconnectOptions = True,
        auto_reconnect: bool | None = None,
        heartbeat: tuple[float, float] | None = (15.0, 10.0),
        connect_timeout: float = 10.0,
        request_timeout: float = 10.0,
        queue_size: int = 1024,
        max_size: int = 16 * 1024 * 1024,
        compression: bool = True,
        batch: bool = False,
        binary: bool = False,
        ssl: _ssl.SSLContext | None = None,
        refresh_margin: float | None = None,
        random: Callable[[], float] = _random.random,
        debug: bool = False,
    ) -> None:
        if ssl is not None and not url.lower().startswith("wss://"):
            raise ValueError(f"ssl is for wss:// URLs, not {url}")
        self.url = url
        self._ssl = ssl
        self._token = token
        self._get_token = get_token
        self._auth = auth
        if auto_reconnect is False:
            reconnect = False
        self._reconnect: ReconnectOptions | None = (
            None if reconnect is False else (ReconnectOptions() if reconnect is True else reconnect)
        )
        self._heartbeat = heartbeat
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.queue_size = queue_size
        self._max_size = max_size
        self._compression = compression
        self._batch = batch
        self._binary = binary
        self._refresh_margin = refresh_margin
        self._random = random
        if debug:
            logging.getLogger("framecast").setLevel(logging.DEBUG)
        self.clock = Clock()
        """The server clock estimate (offset in seconds from the minimum-RTT sample of the last 8)."""
        self._state: ConnectionState = "idle"
        self._ws: ClientConnection | None = None
        self._outbox: asyncio.Queue[str | bytes] | None = None
        self._online = False
        self._gen = 0
        self._attempt = 0
        self._connected_at = 0.0
        self._hint: tuple[float, float] | None = None
        self._pending: dict[int, _Pending] = {}
        self._next_id = 1
        self._subs: dict[str, Subscription] = {}
        self._awaiting: list[Subscription] = []
        self._sync_ping = False
        self._token_retry_used = False
        self._token_reason: TokenReason | None = None
        self._token_expires_at: float | None = None
        self._info: ConnectedInfo | None = None
        self._hello: dict[str, Any] | None = None
        self._auth_pending = False
        self._auth_user: str | None = None
        self._auth_expires: Any = None
        self._ever_connected = False
        self._waiters: list[asyncio.Future[ConnectedInfo]] = []
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._wake = asyncio.Event()
        self._refresh_task: asyncio.Task[None] | None = None
        self._listeners: dict[str, list[Callable[[Any], Any]]] = {}
        self._failure: FramecastError | None = None
        self._defaults_since: set[str] = set()
        self.rtt: float | None = None
        """The last measured round trip, seconds."""

    # ---- properties and events ------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def info(self) -> ConnectedInfo | None:
        return self._info

    @property
    def token_expires_at(self) -> float | None:
        return self._token_expires_at

    def on(self, event: str, listener: Callable[[Any], Any]) -> Callable[[], None]:
        """Listens to ``state`` (StateChange), ``connected`` (ConnectedInfo), ``disconnected``
        (code, reason), ``draining`` (Draining), ``authenticated`` (user id), ``event`` (every Event,
        also of default channels nobody subscribed), ``notification`` (dict), ``error``. Listeners run
        in the reader: keep them short (coroutine listeners are scheduled as tasks)."""
        self._listeners.setdefault(event, []).append(listener)
        return lambda: self._listeners.get(event, []).remove(listener)

    def _emit(self, event: str, value: Any) -> None:
        for listener in list(self._listeners.get(event, [])):
            try:
                r = listener(value)
                if inspect.isawaitable(r):
                    asyncio.ensure_future(r)
            except Exception:
                log.exception("framecast: %s listener failed", event)

    def _set_state(self, to: ConnectionState, **kw: Any) -> None:
        frm = self._state
        if frm == to and to != "reconnecting":
            return
        self._state = to
        log.debug("framecast: %s -> %s %s", frm, to, kw)
        self._emit("state", StateChange(frm, to, **kw))

    # ---- lifecycle ------------------------------------------------------------------------------

    async def connect(self) -> ConnectedInfo:
        """Starts the connection loop (if not running) and waits until connected. Raises
        FramecastError(FAILED) if the client gives up (e.g. a rejected token)."""
        if self._state == "connected" and self._info:
            return self._info
        fut: asyncio.Future[ConnectedInfo] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        if self._task is None or self._task.done():
            self._closing = False
            self._failure = None
            self._attempt = 0
            self._token_retry_used = False
            self._task = asyncio.get_running_loop().create_task(self._run())
        return await fut

    async def run_forever(self) -> None:
        """Runs until ``close()``; raises FramecastError if the client failed (the NeuroGraph shape)."""
        if self._task is None or self._task.done():
            await self.connect()
        assert self._task is not None
        await asyncio.shield(self._task)
        if self._failure:
            raise self._failure

    async def close(self) -> None:
        """Closes for good (until ``connect()`` again); pending requests fail, subscriptions end."""
        self._closing = True
        self._wake.set()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(1000, "client closed"), 2)
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self._task), 5)
            if not self._task.done():
                self._task.cancel()
        self._teardown(1000, "client closed", final=True)
        for sub in list(self._subs.values()):
            sub._end()
        self._subs.clear()
        self._set_state("closed", reason="client closed")
        self._settle_waiters(FramecastError("CLOSED", "client closed"))

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _settle_waiters(self, err: FramecastError | None) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if w.done():
                continue
            if err:
                w.set_exception(err)
            elif self._info:
                w.set_result(self._info)

    async def _run(self) -> None:
        reconnected = False
        while not self._closing:
            self._gen += 1
            gen = self._gen
            self._set_state("connecting")
            self._hint = None
            status = 0
            untrusted = False
            code, reason = 1006, ""
            token = self._token
            exp = token_expiry(token)
            fetched = True
            if self._get_token and (not token or (exp is not None and exp - time.time() < 5)):
                why: TokenReason = self._token_reason or ("expired" if token else "connect")
                self._token_reason = None
                try:
                    r = self._get_token(why)
                    token = await r if inspect.isawaitable(r) else r
                    self._token = token
                except Exception as e:
                    self._emit("error", FramecastError("TOKEN_FETCH", f"get_token failed: {e}"))
                    fetched = False
                    reason = "get_token failed"
            if fetched:
                url, headers = self.url, {}
                # Default channels are joined by the server as soon as the connection may act (at
                # open when anonymous connections are allowed, even if a token follows in `auth`;
                # else after the first `auth`): their positions travel on the upgrade URL, which the
                # server keeps for either case.
                since = self._since_for_defaults()
                self._defaults_since = set(since)
                if since:
                    encoded = quote(json.dumps(since, separators=(",", ":")))
                    url += ("&" if "?" in url else "?") + "since=" + encoded
                if token and self._auth == "query":
                    url += ("&" if "?" in url else "?") + "token=" + quote(token)
                if token and self._auth == "header":
                    headers["Authorization"] = f"Bearer {token}"
                if self._batch:
                    url += ("&" if "?" in url else "?") + "batch=1"
                if self._binary:
                    url += ("&" if "?" in url else "?") + "binary=1"
                wall0 = time.time()
                # wss:// without a context: websockets' default (the system's trust store).
                tls: dict[str, Any] = {"ssl": self._ssl} if self._ssl is not None else {}
                try:
                    ws = await connect(
                        url,
                        **tls,
                        additional_headers=headers or None,
                        compression="deflate" if self._compression else None,
                        max_size=self._max_size,
                        open_timeout=self.connect_timeout,
                        ping_interval=self._heartbeat[0] if self._heartbeat else None,
                        ping_timeout=self._heartbeat[1] if self._heartbeat else None,
                        close_timeout=2,
                    )
                except InvalidStatus as e:
                    status = e.response.status_code
                    reason = f"HTTP {status}"
                except _ssl.SSLCertVerificationError as e:
                    # Not a network condition: retrying cannot make the certificate trusted.
                    reason = f"TLS certificate verification failed: {e.verify_message or e}"
                    untrusted = True
                except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as e:
                    reason = str(e) or type(e).__name__
                else:
                    if self._closing:
                        await ws.close()
                        break
                    code, reason = await self._session(ws, gen, wall0, reconnected, token)
            if self._closing:
                break
            delay = self._after_loss(code, reason, status, untrusted=untrusted)
            if delay is None:
                break
            reconnected = True
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _session(
        self,
        ws: ClientConnection,
        gen: int,
        wall0: float,
        reconnected: bool,
        token: str | None,
    ) -> tuple[int, str]:
        self._ws = ws
        self._online = True
        outbox: asyncio.Queue[str | bytes] = asyncio.Queue()
        self._outbox = outbox
        loop = asyncio.get_running_loop()
        writer = loop.create_task(self._writer(ws, outbox))

        def no_hello() -> None:
            if self._hello is None:
                ws.transport.abort()

        watchdog = loop.call_later(self.connect_timeout, no_hello)
        if token and self._auth == "message":
            self._auth_pending = True
            self._set_state("authenticating")
            self._request({"type": "auth", "token": token}, "auth")
        for sub in list(self._subs.values()):
            sub._sync()
        reason_override = ""
        try:
            async for raw in ws:
                if gen != self._gen:
                    break
                await self._on_message(raw, wall0, reconnected)
        except ConnectionClosed as e:
            if e.sent is not None and e.sent.code == 1011 and e.rcvd is None:
                reason_override = "heartbeat timeout"
        finally:
            watchdog.cancel()
            writer.cancel()
        code = ws.close_code or 1006
        reason = reason_override or ws.close_reason or ""
        return code, reason

    async def _writer(self, ws: ClientConnection, outbox: asyncio.Queue[str | bytes]) -> None:
        with contextlib.suppress(ConnectionClosed, asyncio.CancelledError):
            while True:
                await ws.send(await outbox.get())

    def _teardown(self, code: int, reason: str, *, final: bool) -> None:
        self._gen += 1
        self._ws = None
        self._outbox = None
        self._online = False
        self._auth_pending = False
        self._auth_user = None
        self._auth_expires = None
        self._hello = None
        self._info = None
        self._awaiting = []
        if self._refresh_task:
            self._refresh_task.cancel()
            self._refresh_task = None
        pending, self._pending = self._pending, {}
        for p in pending.values():
            if p.timer:
                p.timer.cancel()
            if p.kind == "publish" and p.sub:
                p.sub._publish_settled(None)
            if not p.future.done():
                p.future.set_exception(
                    FramecastError(
                        "CLOSED" if final else "CONNECTION_LOST", f"connection closed ({code} {reason})"
                    )
                )
                p.future.exception()
        for sub in list(self._subs.values()):
            sub._connection_lost()

    def _fail(self, reason: str, code: int | None = None) -> None:
        self._teardown(code or 1006, reason, final=True)
        self._failure = FramecastError("FAILED", reason)
        self._set_state("failed", code=code, reason=reason)
        self._settle_waiters(self._failure)

    def _after_loss(self, code: int, reason: str, status: int, *, untrusted: bool = False) -> float | None:
        """Decides what follows a lost connection: a delay, or None (failed / closed)."""
        was_connected = self._info is not None
        hint = self._hint
        self._teardown(code, reason, final=False)
        o = self._reconnect
        if was_connected and time.monotonic() - self._connected_at >= (o.reset_after if o else 60):
            self._attempt = 0
        failure = None
        if code == 4001 or status == 401:
            if self._get_token and not self._token_retry_used:
                self._token_retry_used = True
                self._token = None
                self._token_reason = "expired" if reason == "token expired" else "rejected"
            else:
                failure = f"token rejected ({reason or status})"
        elif status == 403:
            failure = "upgrade refused (403: origin not allowed)"
        elif code in (1002, 1003, 1007):
            failure = f"protocol error ({code} {reason})"
        elif untrusted:
            failure = reason
        self._emit("disconnected", (code, reason))
        if failure:
            self._fail(failure, code)
            return None
        if o is None:
            self._set_state("closed", code=code, reason=reason)
            self._settle_waiters(FramecastError("CLOSED", f"connection closed ({code} {reason})"))
            return None
        if hint:
            delay = max(0.0, hint[0] + hint[1] - time.monotonic())  # not a failed attempt
        elif code == 1008 and reason == "slow consumer":
            delay = self._random() * o.slow_consumer_max
        else:
            if self._attempt >= o.max_attempts:
                self._fail(f"gave up after {self._attempt} attempts", code)
                return None
            delay = backoff_delay(self._attempt, o, self._random)
            self._attempt += 1
        self._set_state("reconnecting", code=code, reason=reason, retry_in=delay, attempt=self._attempt)
        return delay

    def _become_connected(self, reconnected: bool) -> None:
        hello = self._hello or {}
        server_exp = self._auth_expires if self._auth_expires is not None else hello.get("expires_at_ms")
        self._token_expires_at = (
            server_exp / 1000 if isinstance(server_exp, int) else token_expiry(self._token)
        )
        user = self._auth_user if self._auth_user is not None else hello.get("user_id")
        self._info = ConnectedInfo(
            client_id=str(hello.get("client_id", "")),
            user_id=user,
            tick_hz=int(hello.get("tick_hz", 0)),
            server_time_ms=int(hello.get("server_time_ms", 0)),
            token_expires_at=self._token_expires_at,
            reconnected=reconnected,
            batch=hello.get("batch") is True,
            binary=hello.get("binary") is True,
            raw=hello,
        )
        self._connected_at = time.monotonic()
        self._token_retry_used = False
        self._ever_connected = True
        self._set_state("connected")
        self._schedule_refresh()
        self._emit("connected", self._info)
        self._settle_waiters(None)

    # ---- messages -------------------------------------------------------------------------------

    def _make_event(self, msg: dict[str, Any], snapshot: bool, replay: bool) -> Event:
        ts = str(msg.get("timestamp", ""))
        server_time = _parse_time(ts)
        key = msg.get("key")
        enc = msg.get("encoding")
        encoding: EventEncoding = "binary" if enc == "binary" else "base64" if enc == "base64" else "json"
        return Event(
            channel=str(msg.get("channel")),
            seq=int(msg.get("seq", 0)),
            frame=int(msg.get("frame", 0)),
            event_type=str(msg.get("event_type", "message")),
            data=msg.get("data"),
            key=key if isinstance(key, str) else None,
            snapshot=snapshot,
            replay=replay,
            timestamp=ts,
            server_time=server_time,
            local_time=self.clock.to_local(server_time),
            raw=msg,
            encoding=encoding,
        )

    async def _on_message(self, raw: str | bytes, wall0: float, reconnected: bool) -> None:
        if isinstance(raw, bytes) and raw[:1] == bytes((BINARY_VERSION,)):
            # A binary event (``?binary=1``): no JSON message starts with 0x01.
            try:
                event = decode_binary_event(raw)
            except FramecastError as e:
                self._emit("error", e)
                return
            await self._dispatch(event, wall0, reconnected)
            return
        try:
            parsed = json.loads(raw)
        except ValueError:
            self._emit("error", FramecastError("PROTOCOL", "server sent invalid JSON"))
            return
        # A tick batch: one channel's events of one tick, in order.
        for msg in parsed if isinstance(parsed, list) else [parsed]:
            if isinstance(msg, dict):
                await self._dispatch(msg, wall0, reconnected)

    async def _dispatch(self, msg: dict[str, Any], wall0: float, reconnected: bool) -> None:
        kind = msg.get("type")
        if kind == "event":
            data = msg.get("data")
            if msg.get("encoding") == "base64" and isinstance(data, str):
                # A binary event in JSON form: the application gets the same bytes as from a frame.
                try:
                    msg["data"] = decode_base64(data)
                except ValueError:
                    what = f"server sent invalid base64 data on {msg.get('channel')} (left as is)"
                    self._emit("error", FramecastError("PROTOCOL", what))
            sub = self._subs.get(str(msg.get("channel")))
            event = (
                await sub._event(msg) if sub else self._make_event(msg, msg.get("snapshot") is True, False)
            )
            if event:
                self._emit("event", event)
            return
        if kind == "gap":
            sub = self._subs.get(str(msg.get("channel")))
            if sub:
                await sub._gap(msg)
            return
        if kind == "connected":
            self._hello = msg
            if isinstance(msg.get("server_time_ms"), int):
                self.clock.sample(wall0, time.time(), msg["server_time_ms"] / 1000)
            if not self._auth_pending:
                self._become_connected(reconnected or self._ever_connected)
            return
        if kind == "reconnect":
            after = max(0.0, float(msg.get("after_ms") or 0) / 1000)
            received_at = time.monotonic()
            self._hint = (received_at, after)
            self._set_state("draining", reason=str(msg.get("reason", "")))
            self._emit("draining", Draining(after * 1000, str(msg.get("reason", "")), received_at))
            return
        if kind == "notification":
            self._emit("notification", msg.get("data") or {})
            return
        # Replies come in command order: any reply proves the frames that followed earlier
        # `subscribed` replies (snapshot, replay) have all arrived (not `published`: newer servers
        # send it as soon as the event is numbered, out of order with other replies).
        if kind != "published":
            self._flush_awaiting()
        rid = msg.get("id")
        req = self._pending.pop(rid, None) if isinstance(rid, int) else None
        if req and req.timer:
            req.timer.cancel()
        result: Any = msg
        if kind == "subscribed":
            if req is None and msg.get("default") is True:
                self._joined_defaults(msg)
            elif req and req.sub:
                req.sub._subscribed(msg)
        elif kind == "published":
            if req and req.sub:
                req.sub._publish_settled(msg)
        elif kind == "unsubscribed":
            if req and req.sub:
                req.sub._unsubscribed()
        elif kind == "pong":
            if req and req.t0 is not None:
                rtt = time.monotonic() - req.t0
                self.rtt = rtt
                if isinstance(msg.get("server_time_ms"), int) and req.wall0 is not None:
                    self.clock.sample(req.wall0, time.time(), msg["server_time_ms"] / 1000)
                result = rtt
        elif kind == "authenticated":
            user = msg.get("user_id")
            self._auth_user = user if isinstance(user, str) else None
            self._auth_expires = msg.get("expires_at_ms")
            if self._auth_pending:
                self._auth_pending = False
                if self._hello is not None:
                    self._become_connected(reconnected or self._ever_connected)
            else:
                server_exp = msg.get("expires_at_ms")
                self._token_expires_at = (
                    server_exp / 1000 if isinstance(server_exp, int) else token_expiry(self._token)
                )
                self._emit("authenticated", self._auth_user)
                self._schedule_refresh()
        elif kind == "error":
            err = FramecastError(str(msg.get("code", "UNKNOWN")), str(msg.get("message", "")))
            if req is None:
                self._emit("error", err)
                return
            if req.kind == "subscribe" and req.sub:
                req.sub._refused(err)
            elif req.kind == "publish" and req.sub:
                req.sub._publish_settled(None)
            elif req.kind == "unsubscribe" and req.sub:
                req.sub._unsubscribed()
            if not req.future.done():
                req.future.set_exception(err)
                req.future.exception()
            return
        if req and not req.future.done():
            req.future.set_result(result)

    def _joined_defaults(self, msg: dict[str, Any]) -> None:
        """The server joined its ``default_channels`` (``subscribed`` without ``id``)."""
        names = msg.get("channels")
        if not isinstance(names, list):
            names = list((msg.get("positions") or {}).keys())
        for name in map(str, names):
            sub = self._subs.get(name)
            if sub is None:
                sub = Subscription(
                    self, name, max_hz=None, since=None, queue_size=self.queue_size, delivery=None, user=False
                )
                self._subs[name] = sub
            sub._joined_as_default(msg, name in self._defaults_since)

    def _since_for_defaults(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for sub in self._subs.values():
            pos = sub.position
            if sub.is_default and pos and pos.epoch and sub.recoverable is not False:
                out[sub.channel] = {"seq": pos.seq, "epoch": pos.epoch}
        return out

    def _flush_awaiting(self) -> None:
        done, self._awaiting = self._awaiting, []
        for sub in done:
            sub._caught_up()

    def _await_end(self, sub: Subscription) -> None:
        self._awaiting.append(sub)

    def _released(self, sub: Subscription) -> None:
        if self._subs.get(sub.channel) is sub:
            del self._subs[sub.channel]

    # ---- requests -------------------------------------------------------------------------------

    def _request(
        self,
        msg: dict[str, Any],
        kind: str,
        sub: Subscription | None = None,
        timeout: float | None = None,
        payload: bytes | None = None,
    ) -> asyncio.Future[Any]:
        """Sends ``msg`` with a fresh ``id``; with ``payload``, as a binary publish."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if not self._online or self._outbox is None:
            fut.set_exception(FramecastError("NOT_CONNECTED", f"not connected ({self._state})"))
            return fut
        rid = self._next_id
        text = json.dumps({**msg, "id": rid})
        wire: str | bytes = text
        if payload is not None:
            try:
                wire = encode_binary_publish(text.encode(), payload)
            except FramecastError as e:
                fut.set_exception(e)
                return fut
        self._next_id += 1
        p = _Pending(fut, kind, sub)
        if kind == "ping":
            p.t0 = time.monotonic()
            p.wall0 = time.time()
        t = self.request_timeout if timeout is None else timeout
        if t > 0:

            def expire() -> None:
                if self._pending.get(rid) is p:
                    del self._pending[rid]
                    if p.kind == "publish" and p.sub:
                        p.sub._publish_settled(None)
                    if not fut.done():
                        fut.set_exception(FramecastError("TIMEOUT", f"no reply to {msg['type']} in {t} s"))

            p.timer = loop.call_later(t, expire)
        self._pending[rid] = p
        self._outbox.put_nowait(wire)
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        return fut

    def _send_subscribe(self, sub: Subscription, since: Position | None) -> None:
        msg: dict[str, Any] = {"type": "subscribe", "channels": [sub.channel]}
        if since:
            msg["since"] = {sub.channel: {"seq": since.seq, "epoch": since.epoch}}
        if sub.max_hz is not None:
            msg["max_hz"] = sub.max_hz
        self._request(msg, "subscribe", sub, timeout=0)
        if not self._sync_ping:
            # One ping after this turn's subscribes: its pong marks the end of their snapshots.
            self._sync_ping = True

            def ping() -> None:
                self._sync_ping = False
                if self._online:
                    self._request({"type": "ping", "ping_id": "sync"}, "sync", timeout=0)

            asyncio.get_running_loop().call_soon(ping)

    def _send_unsubscribe(self, sub: Subscription) -> None:
        self._request({"type": "unsubscribe", "channels": [sub.channel]}, "unsubscribe", sub)

    # ---- API ------------------------------------------------------------------------------------

    def subscribe(
        self,
        channel: str,
        callback: EventCallback | None = None,
        *,
        max_hz: int | None = None,
        since: Position | None = None,
        queue_size: int | None = None,
        delivery: Delivery | None = None,
    ) -> _SubscribeCall:
        """Subscribes to ``channel``. Use it either way:

        - ``async for event in await client.subscribe("chat:42"): ...`` (waits until live);
        - ``client.subscribe("metrics", callback)`` (the NeuroGraph shape; the callback, sync or async,
          runs in its own task, never in the reader).

        ``delivery`` says how a full queue is handled: ``reliable`` (default) stops reading (the
        server closes 1008, the client recovers without loss), ``conflated``/``volatile`` drop the
        oldest queued event with a local ``Gap``."""
        sub = self._subs.get(channel)
        if sub is None:
            sub = Subscription(
                self,
                channel,
                max_hz=max_hz,
                since=since,
                queue_size=queue_size or self.queue_size,
                delivery=delivery,
            )
            self._subs[channel] = sub
        if callback is not None:
            sub._add_callback(callback)
        sub._want()
        return _SubscribeCall(sub)

    def subscription(self, channel: str) -> Subscription | None:
        return self._subs.get(channel)

    def unsubscribe(self, channel: str) -> asyncio.Future[None]:
        """Unsubscribes now; await the result to wait for the server's confirmation."""
        sub = self._subs.get(channel)
        if sub:
            return sub.unsubscribe()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def publish(
        self, channel: str, data: Any, *, event_type: str | None = None, key: str | None = None
    ) -> PublishAck:
        """Publishes; returns on ``published``; raises FramecastError on ``error`` (FORBIDDEN,
        RATE_LIMITED, …) or NOT_CONNECTED / CONNECTION_LOST (outcome unknown). Nothing is queued
        offline and nothing is resent."""
        return await self._publish({"type": "publish", "channel": channel, "data": data}, event_type, key)

    async def publish_binary(
        self,
        channel: str,
        data: bytes | bytearray | memoryview,
        *,
        event_type: str | None = None,
        key: str | None = None,
    ) -> PublishAck:
        """Publishes raw bytes as a binary event (a binary WebSocket message: ``0x01``, ``0``, u16
        length of the JSON part, the ``publish`` JSON without ``data``, then the payload), e.g.
        ``await fc.publish_binary("pos:1", array("f", [1.5, -2.25]).tobytes(), event_type="f32")``.
        Subscribers get the same bytes as ``event.data``. Returns and raises like ``publish``."""
        return await self._publish({"type": "publish", "channel": channel}, event_type, key, bytes(data))

    async def _publish(
        self, msg: dict[str, Any], event_type: str | None, key: str | None, payload: bytes | None = None
    ) -> PublishAck:
        channel = str(msg["channel"])
        if event_type is not None:
            msg["event_type"] = event_type
        if key is not None:
            msg["key"] = key
        sub = self._subs.get(channel)
        fut = self._request(msg, "publish", sub, payload=payload)
        if sub and not fut.done():
            sub._publish_sent()
        reply = await fut
        seq, frame = reply.get("seq"), reply.get("frame")
        return PublishAck(
            str(reply.get("channel", channel)),
            seq if isinstance(seq, int) else None,
            frame if isinstance(frame, int) else None,
            reply.get("superseded") is True,
        )

    async def ping(self) -> float:
        """Round-trip time in seconds (also a clock sample)."""
        rtt: float = await self._request({"type": "ping"}, "ping")
        return rtt

    async def subscriptions(self) -> list[str]:
        """The server's view of this connection's channels."""
        reply = await self._request({"type": "get_subscriptions"}, "subscriptions")
        return list(reply.get("channels") or [])

    # ---- token refresh --------------------------------------------------------------------------

    def _schedule_refresh(self) -> None:
        if self._refresh_task:
            self._refresh_task.cancel()
            self._refresh_task = None
        exp = self._token_expires_at
        if self._get_token is None or exp is None:
            return
        self._refresh_task = asyncio.get_running_loop().create_task(self._refresh(self._gen, exp))

    async def _refresh(self, gen: int, exp: float) -> None:
        assert self._get_token is not None
        await asyncio.sleep(refresh_delay(exp, time.time(), self._refresh_margin))
        while gen == self._gen:
            try:
                r = self._get_token("refresh")
                token = await r if inspect.isawaitable(r) else r
            except Exception as e:
                self._emit("error", FramecastError("TOKEN_FETCH", f"get_token failed: {e}"))
                token = None
            if token:
                self._token = token
                if gen == self._gen:
                    self._request({"type": "auth", "token": token}, "auth")
                return
            left = exp - time.time()
            if left <= 2:
                return
            await asyncio.sleep(min(5.0, left / 2))
