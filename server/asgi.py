"""The ASGI application a web process serves (``config.asgi`` loads it once Django is set up).

A thin wrapper around Django's ASGI handler does three things for it:

- It answers the lifespan protocol, which Django does not speak: on startup it has the hot SQL
  run on this process's event loop (server/asyncdb.py) and runs the apps' startup hooks
  (server/lifespan.py); on shutdown (after uvicorn has drained its connections) it runs their
  shutdown hooks (the generation app waits for its generations still running, then hands back
  the rest: generation/lifespan.py) and closes the loop's database pool.
- It bounds each request's body in size and time before Django reads it (server/body_guard.py).
- It lends each HTTP request a thread for its synchronous work (Django's signals, the
  database steps) from a pool of reused threads. Left to itself, Django's handler starts a new
  thread for every request and another to join it; with hundreds of requests in flight that
  was the largest single cost after the database (bench/api_bench.py). A WSGI server reuses its
  threads the same way. The thread goes back to the pool when the request is answered (a
  generation whose client hung up finishes on a thread of its own: server/steps.py).
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from asgiref.sync import ThreadSensitiveContext

from . import asyncdb, body_guard, lifespan
from .asgi_handler import REQUEST_THREAD, Handler, RequestThread

logger = logging.getLogger(__name__)

django_application = Handler()

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class RequestThreads:
    """Single-thread executors lent to one request at a time, kept for the next one."""

    def __init__(self, keep: int) -> None:
        self._idle: list[RequestThread] = []
        self._keep = keep

    def take(self) -> RequestThread:
        if self._idle:
            executor = self._idle.pop()
            executor.used = False
            return executor
        return RequestThread()

    def give_back(self, executor: RequestThread) -> None:
        if len(self._idle) < self._keep:
            self._idle.append(executor)
        else:
            executor.shutdown(wait=False)


# Idle threads kept for the next requests (the slow benchmark has about 128 in flight per
# process); beyond that a burst's extra threads are let go.
_request_threads = RequestThreads(keep=256)


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    executor = _request_threads.take()
    # The handler closes on the loop what has nothing to close (server/asgi_handler.py).
    scope[REQUEST_THREAD] = executor
    try:
        # Django's handler opens a ThreadSensitiveContext of its own; inside this one it uses
        # this one's thread.
        async with ThreadSensitiveContext(executor=executor):
            await body_guard.guarded(django_application, scope, receive, send)  # type: ignore[arg-type]
    finally:
        _request_threads.give_back(executor)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                # The loop's own database pool first: the apps' startup hooks may use it.
                await asyncdb.serve()
                await lifespan.startup()
            except Exception as exc:
                # The server stops instead of serving without what its start should have set
                # up (with --lifespan on, as the Procfiles run it).
                logger.exception("startup failed")
                await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            # The apps' work first (generations still running settle through the pool), then
            # the pool.
            await lifespan.shutdown()
            await asyncdb.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


# Everything loaded so far (Django and the apps; the URL conf loads with the first request) lives
# as long as the process: move it out of the collector's sight, and collect the young generation
# less often. What was measured for it, and what was not, is in server/README.md.
gc.freeze()
gc.set_threshold(int(os.environ.get("GC_GEN0_THRESHOLD", "50000")), 50, 100)
