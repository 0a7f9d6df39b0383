"""The generations this web process is running, so that stopping it can wait for them.

A generation runs as a task of its own, shielded from its request (a client that hangs up does
not stop it), so a server that drains its connections has not yet drained its generations: on
shutdown (config/asgi.py) ``drain`` waits for them up to a grace period, and what is still
running then is handed back (failed, its reservation released) rather than left to the
reconciler's deadline. Whichever settles a row first wins; the other finds it settled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

_running: dict[int, asyncio.Future[object]] = {}


def track(generation_id: int, work: Awaitable[object]) -> None:
    future = asyncio.ensure_future(work)
    _running[generation_id] = future
    future.add_done_callback(lambda _: _running.pop(generation_id, None))


def count() -> int:
    return len(_running)


async def drain(grace_seconds: float) -> list[int]:
    """Wait up to ``grace_seconds`` for every running generation; cancel and return the ids of
    those still running then."""
    pending = set(_running.values())
    if pending:
        await asyncio.wait(pending, timeout=grace_seconds)
    left = [gid for gid, future in _running.items() if not future.done()]
    for gid in left:
        _running[gid].cancel()
    return left
