"""The generation app's part in a web process's start and stop (server/lifespan.py).

At shutdown, after the server has drained its connections: wait for this process's
generations still running (those whose client hung up) for SHUTDOWN_GRACE_SECONDS, then hand
back the rest (failed and refunded at once, see generation/inflight.py), and close the rate
limiter's Redis client and the upstream client's connections.
"""

from __future__ import annotations

import logging

from asgiref.sync import sync_to_async
from django.conf import settings

from server import lifespan

from . import inflight, input_fetch, ratelimits, services, upstream

logger = logging.getLogger(__name__)


@lifespan.on_shutdown
async def hand_back_generations() -> None:
    running = inflight.count()
    if running:
        logger.info("shutting down: waiting for %d generations", running)
    left = await inflight.drain(settings.SHUTDOWN_GRACE_SECONDS)
    for generation_id in left:
        if await sync_to_async(services.abandon_generation)(generation_id):
            logger.warning("generation %s handed back at shutdown (refunded)", generation_id)


lifespan.on_shutdown(ratelimits.aclose)
# After the generations: the last settlements are made, so the upstream's connections can go.
lifespan.on_shutdown(upstream.close_client)
# The customers' reference URLs are fetched before anything is held: nothing waits on them.
lifespan.on_shutdown(input_fetch.close_client)
