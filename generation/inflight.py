"""The generations this web process is running, so that stopping it can wait for them.

A generation runs as a task of its own, shielded from its request (a client that hangs up does
not stop it), so a server that drains its connections has not yet drained its generations: on
shutdown (generation/lifespan.py) ``drain`` waits for them up to a grace period, and what is still
running then is handed back (failed, its reservation released) rather than left to the
reconciler's deadline. Whichever settles a row first wins; the other finds it settled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

_running: dict[int, asyncio.Future[object]] = {}
# Reservations whose client hung up while they were being made: each becomes a running
# generation (tracked above) once made.
_opening: set[asyncio.Future[Any]] = set()


def track(generation_id: int, work: Awaitable[object]) -> None:
    future = asyncio.ensure_future(work)
    _running[generation_id] = future
    future.add_done_callback(lambda _: _running.pop(generation_id, None))


def track_opening(opening: asyncio.Future[Any]) -> None:
    """A reservation being made whose client hung up. Call after adding the callback that
    starts (and tracks) its generation: callbacks run in order, so by the time it leaves this
    set its generation, if any, is in the other."""
    _opening.add(opening)
    opening.add_done_callback(_opening.discard)


def count() -> int:
    return len(_running) + len(_opening)


async def drain(grace_seconds: float) -> list[int]:
    """Wait up to ``grace_seconds`` for every running generation (and every reservation being
    made for one); cancel and return the ids of those still running then."""
    deadline = asyncio.get_running_loop().time() + grace_seconds
    if _opening:
        await asyncio.wait(set(_opening), timeout=grace_seconds)
    pending = set(_running.values())
    if pending:
        remaining = max(deadline - asyncio.get_running_loop().time(), 0)
        await asyncio.wait(pending, timeout=remaining)
    left = [gid for gid, future in _running.items() if not future.done()]
    for gid in left:
        _running[gid].cancel()
    return left
