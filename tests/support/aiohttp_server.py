"""A one-route HTTP server on loopback, for an upstream misbehaving in a way the simulator does
not offer. It runs on a thread of its own, so the code under test talks to it over real HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextmanager
def serving(handler: Handler, path: str = "/api/v3/images/generations") -> Iterator[str]:
    """Serve ``handler`` for POST ``path``; yields the base URL (``.../api/v3``)."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner: list[web.AppRunner] = []
    port: list[int] = []

    async def start() -> None:
        app = web.Application()
        app.router.add_post(path, handler)
        runner.append(web.AppRunner(app))
        await runner[0].setup()
        site = web.TCPSite(runner[0], "127.0.0.1", 0)
        await site.start()
        port.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    started.wait()
    try:
        yield f"http://127.0.0.1:{port[0]}{path.removesuffix('/images/generations')}"
    finally:
        asyncio.run_coroutine_threadsafe(runner[0].cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
