from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from harness import Proxy, Server

from framecast import CaughtUp, Client, Event, Gap, Item, ReconnectOptions, Resync, Subscription, Violation


class Recorder:
    """Consumes a subscription's items in order (optionally held back by ``gate``)."""

    def __init__(self, sub: Subscription, gate: asyncio.Event | None = None) -> None:
        self.sub = sub
        self.items: list[Item] = []
        self.gate = gate
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for item in self.sub.items():
            if self.gate is not None:
                await self.gate.wait()
            self.items.append(item)

    @property
    def events(self) -> list[Event]:
        return [i for i in self.items if isinstance(i, Event)]

    def live_seqs(self) -> list[int]:
        return [e.seq for e in self.events if not e.snapshot]

    @property
    def gaps(self) -> list[Gap]:
        return [i for i in self.items if isinstance(i, Gap)]

    @property
    def resyncs(self) -> list[Resync]:
        return [i for i in self.items if isinstance(i, Resync)]

    @property
    def violations(self) -> list[Violation]:
        return [i for i in self.items if isinstance(i, Violation)]

    @property
    def caught_up(self) -> list[CaughtUp]:
        return [i for i in self.items if isinstance(i, CaughtUp)]

    def store(self) -> dict[str | None, object]:
        """Newest data per key, cleared at each Resync (what an application would keep)."""
        out: dict[str | None, object] = {}
        for i in self.items:
            if isinstance(i, Resync):
                out.clear()
            elif isinstance(i, Event):
                out[i.key] = i.data
        return out

    def log(self) -> str:
        out = []
        for i in self.items[-12:]:
            if isinstance(i, Event):
                out.append(f"{'snap' if i.snapshot else 'ev'}:{i.seq}")
            else:
                out.append(type(i).__name__)
        return " ".join(out)


@pytest.fixture
async def servers() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    started: list[Server] = []

    async def make(config: str = "", args: list[str] | None = None) -> Server:
        s = await Server(config, args).start()
        started.append(s)
        return s

    yield make
    for s in started:
        await s.stop()


@pytest.fixture
async def proxies() -> AsyncIterator[Callable[[int], Awaitable[Proxy]]]:
    made: list[Proxy] = []

    async def make(port: int) -> Proxy:
        p = await Proxy(port).start()
        made.append(p)
        return p

    yield make
    for p in made:
        await p.close()


@pytest.fixture
async def clients() -> AsyncIterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(url: str, **kw: Any) -> Client:
        kw.setdefault("reconnect", ReconnectOptions(base=0.1, cap=1.0))
        c = Client(url, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        with contextlib.suppress(Exception):
            await c.close()
