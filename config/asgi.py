"""ASGI entry point: `uvicorn config.asgi:application`.

Django's ASGI handler does not speak the lifespan protocol, so a thin wrapper answers it: on
shutdown (after uvicorn has drained its connections) it waits for this process's generations
still running (those whose client hung up) for SHUTDOWN_GRACE_SECONDS, then hands back the rest
(failed and refunded at once, see api/inflight.py).
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_application = get_asgi_application()

from asgiref.sync import sync_to_async  # noqa: E402
from django.conf import settings  # noqa: E402

from api import inflight, services  # noqa: E402

logger = logging.getLogger("config.asgi")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    await django_application(scope, receive, send)  # type: ignore[arg-type]


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await _hand_back_generations()
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
