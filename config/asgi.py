"""ASGI entry point: `uvicorn config.asgi:application`.

A thin wrapper around Django's ASGI handler does two things for it:

- It answers the lifespan protocol, which Django does not speak: on startup it has the API's
  hot SQL run on this process's event loop (api/asyncdb.py); on shutdown (after uvicorn has
  drained its connections) it waits for this process's generations still running (those whose
  client hung up) for SHUTDOWN_GRACE_SECONDS, then hands back the rest (failed and refunded at
  once, see api/inflight.py), and closes the loop's database pool and Redis client.
- It lends each HTTP request a thread for its synchronous work (Django's signals, the
  database steps) from a pool of reused threads. Left to itself, Django's handler starts a new
  thread for every request and another to join it; with hundreds of requests in flight that
  was the largest single cost after the database (bench/api_bench.py). A WSGI server reuses its
  threads the same way. The thread goes back to the pool when the request is answered (a
  generation whose client hung up finishes on a thread of its own: api/views.py).
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# What get_asgi_application() does, with a handler that spares two thread hops per request.
django.setup(set_prefix=False)

from config.asgi_handler import REQUEST_THREAD, Handler, RequestThread  # noqa: E402 (apps first)

django_application = Handler()

from asgiref.sync import ThreadSensitiveContext, sync_to_async  # noqa: E402
from django.conf import settings  # noqa: E402

from api import asyncdb, inflight, ratelimits, services  # noqa: E402

logger = logging.getLogger("config.asgi")

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


# As many idle threads as a process serves requests at once in the slow benchmark; beyond that
# a burst's extra threads are let go.
_request_threads = RequestThreads(keep=256)


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    executor = _request_threads.take()
    # The handler closes on the loop what has nothing to close (config/asgi_handler.py).
    scope[REQUEST_THREAD] = executor
    try:
        # Django's handler opens a ThreadSensitiveContext of its own; inside this one it uses
        # this one's thread.
        async with ThreadSensitiveContext(executor=executor):
            await django_application(scope, receive, send)  # type: ignore[arg-type]
    finally:
        _request_threads.give_back(executor)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await asyncdb.serve()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await _hand_back_generations()
            await asyncdb.close()
            await ratelimits.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _hand_back_generations() -> None:
    running = inflight.count()
    if running:
        logger.info("shutting down: waiting for %d generations", running)
    left = await inflight.drain(settings.SHUTDOWN_GRACE_SECONDS)
    for generation_id in left:
        if await sync_to_async(services.abandon_generation)(generation_id):
            logger.warning("generation %s handed back at shutdown (refunded)", generation_id)


# Everything loaded so far (Django, the apps, the URL conf) lives as long as the process: move it
# out of the collector's sight, and collect the young generation less often. With hundreds of
# requests in flight this cut the CPU per request by 5 to 30 % in A/B runs (bench/README.md).
gc.freeze()
gc.set_threshold(int(os.environ.get("GC_GEN0_THRESHOLD", "50000")), 50, 100)
