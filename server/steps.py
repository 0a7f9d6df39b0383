"""Where a request's database steps run: one executor, whichever way the process is served.

A generation's pipeline (generation/services/pipeline.py) is written once, as coroutines, and
hands each database step to a ``Steps``:

- in a web process served by config.asgi on PostgreSQL (``asyncdb.enabled()``), its SQL runs on
  the event loop through the loop's own pool (``sql``), and the ORM's rare share on a worker
  thread (``run``): a generation crosses no thread;
- anywhere else (Django's test client, SQLite, single statements turned off) each step runs on
  the request's thread through ``sync_to_async``, giving its connection back when it ends
  (``asyncdb.closing_connection``), or, once the client has hung up (``detach``), on a thread of
  the loop's own pool, since the request's thread is no longer the request's to use;
- ``Steps.inline()`` is for synchronous callers (Celery tasks, management commands, tests) that
  drive the same coroutines through ``async_to_sync``: each step runs on the caller's own thread
  and connection, inside the caller's transaction if it has one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async

from . import asyncdb

_P = ParamSpec("_P")
_R = TypeVar("_R")


class Steps:
    def __init__(self, *, on_loop: bool, give_back_connections: bool) -> None:
        self.on_loop = on_loop
        self._give_back = give_back_connections
        self._detached = False

    @classmethod
    def for_request(cls) -> Steps:
        """The steps of a request being served (or run by Django's test client)."""
        return cls(on_loop=asyncdb.enabled(), give_back_connections=True)

    @classmethod
    def inline(cls) -> Steps:
        """The steps of a synchronous caller, on its own thread and connection."""
        return cls(on_loop=False, give_back_connections=False)

    def detach(self) -> None:
        """The client hung up: the request is over and its thread may be lent to another, so
        what is left runs elsewhere."""
        self._detached = True

    async def run(self, step: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """A synchronous (ORM) step."""
        if self.on_loop:
            return await asyncdb.on_a_thread(step, *args, **kwargs)
        work = asyncdb.closing_connection(step) if self._give_back else step
        return await sync_to_async(work, thread_sensitive=not self._detached)(*args, **kwargs)

    async def sql(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> Any:
        """One prepared statement in a transaction of its own (or in the caller's, inline);
        its first row or None."""
        if self.on_loop:
            return await asyncdb.fetchone(sql, params)
        return await self.run(asyncdb.execute, sql, params)
