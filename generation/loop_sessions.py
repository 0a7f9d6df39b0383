"""One aiohttp client session per event loop, for the modules that speak HTTP (the upstream
client, the reference-image fetcher): a server process has one loop, each Celery run its own,
and a client session must not outlive the loop it was made on, so they are keyed by the loop
itself, weakly."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable

import aiohttp


class SessionPerLoop:
    def __init__(self, make: Callable[[], aiohttp.ClientSession]) -> None:
        self._make = make
        self._sessions: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, aiohttp.ClientSession
        ] = weakref.WeakKeyDictionary()

    def get(self) -> aiohttp.ClientSession:
        """The running loop's session, made on first use (or after it was closed)."""
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            session = self._sessions[loop] = self._make()
        return session

    async def close(self) -> None:
        """Close the running loop's session, if it has one."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()
