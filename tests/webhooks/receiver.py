"""A webhook receiver on loopback: a real HTTP server on a thread of its own, which records what
reached it and answers as told. Used by tests/webhooks and the browser tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.aiohttp_server import serving


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each POST with the next of ``statuses`` (200 once they run out). While ``hold``
    is set, it holds its answers until the test ends (a client waiting would time out)."""

    statuses: list[int] = field(default_factory=list)
    answer: bytes = b'{"received": true}'
    headers: dict[str, str] = field(default_factory=dict)
    hold: bool = False
    requests: list[Received] = field(default_factory=list)
    url: str = ""
    _released: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Received(dict(request.headers), await request.read()))
        if self.hold:
            if self._released is None:
                self._loop = asyncio.get_running_loop()
                self._released = asyncio.Event()
            await self._released.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(
            status=status, body=self.answer, content_type="application/json", headers=self.headers
        )

    def release(self) -> None:
        self.hold = False
        if self._released is not None and self._loop is not None:
            # Set on the receiver's own loop (asyncio.Event is not thread-safe).
            self._loop.call_soon_threadsafe(self._released.set)


@contextmanager
def receiving() -> Iterator[Receiver]:
    """A receiver at http://127.0.0.1:<port>/hooks (its ``url``)."""
    receiver = Receiver()
    with serving(receiver.handle, path="/hooks") as url:
        receiver.url = url
        try:
            yield receiver
        finally:
            receiver.release()
