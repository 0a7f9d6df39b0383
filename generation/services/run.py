"""Producing a generation's images: the upstream calls, and a queued (playground) run on a
Celery worker, retried while its faults are transient."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import models
from django.utils import timezone

from server.steps import Steps

from .. import catalog, upstream
from ..memory import Reservation
from ..models import Generation
from ..references import Reference
from ..upstream import Failure, FailureKind, Outcome
from . import inputs, settle

logger = logging.getLogger(__name__)


def upstream_request(
    generation: Generation, references: tuple[Reference, ...] = ()
) -> upstream.UpstreamRequest:
    """What the upstream is sent for ``generation``: only the fields its model takes, as its
    catalog entry says (a model gone from the catalog since is sent none of the extras), and
    its reference images in order."""
    params = generation.params
    model = catalog.get_model(generation.model)
    watermark = bool(params.get("watermark", False))
    if model is None:
        return upstream.UpstreamRequest(
            generation.upstream_model,
            generation.prompt,
            generation.size,
            watermark=watermark,
            images=tuple(r.data_url() for r in references),
        )
    return upstream.UpstreamRequest.for_model(
        model,
        upstream_model=generation.upstream_model,
        prompt=generation.prompt,
        size=generation.size,
        watermark=watermark,
        seed=params.get("seed"),
        guidance_scale=params.get("guidance_scale"),
        output_format=params.get("output_format"),
        background=params.get("background"),
        images=tuple(r.data_url() for r in references),
        max_images=params.get("max_images"),
        max_layers=params.get("layers"),
    )


async def produce_images(
    generation: Generation,
    memory: Reservation | None = None,
    references: tuple[Reference, ...] = (),
) -> list[Outcome]:
    """The generation's images from the upstream, read into memory counted in ``memory``."""
    request = upstream_request(generation, references)
    return await upstream.generate_images(request, generation.calls, memory)


_TRANSIENT = {FailureKind.RATE_LIMITED, FailureKind.UPSTREAM_ERROR, FailureKind.TIMEOUT}


@dataclass(frozen=True)
class RunResult:
    """What ``run_queued_generation`` did: finished the row, found it taken, or queued it again
    to be sent after ``retry_in_seconds``."""

    status: str
    retry_in_seconds: int = 0


def run_queued_generation(generation_id: int) -> RunResult:
    """Claim a queued playground generation (exactly one worker can), run it and settle it: the
    pipeline's ``run``, for a Celery worker.

    When nothing was delivered and every failure was transient, the row goes back to the queue
    for a later attempt (with exponential backoff) while its attempts and deadline allow.
    """
    catalog.refresh()  # the fields a model takes, and its fallback upstream ids
    now = timezone.now()
    # A job its owner is cancelling is never started (its cancel settles it).
    claimed = Generation.objects.filter(
        pk=generation_id,
        status=Generation.Status.QUEUED,
        deadline_at__gt=now,
        cancel_requested_at__isnull=True,
    ).update(status=Generation.Status.RUNNING, started_at=now, attempts=models.F("attempts") + 1)
    if not claimed:
        return RunResult("not_claimed")
    generation = Generation.objects.get(pk=generation_id)
    return async_to_sync(_run_claimed)(Steps.inline(), generation)


async def _run_claimed(steps: Steps, generation: Generation) -> RunResult:
    started = time.monotonic()
    references: tuple[Reference, ...] = ()
    if generation.params.get("references"):
        references = await steps.run(inputs.load_references, generation)
    try:
        outcomes = await produce_images(generation, references=references)
    finally:
        # Each run has its own event loop, so its pooled upstream client goes with it.
        await upstream.close_client()
    latency_ms = int((time.monotonic() - started) * 1000)
    failures = [o for o in outcomes if isinstance(o, Failure)]
    if len(failures) == len(outcomes) and all(f.kind in _TRANSIENT for f in failures):
        backoff = await steps.run(_queue_again, generation)
        if backoff is not None:
            return RunResult("retry", backoff)
    await settle.settle_generation(steps, generation, outcomes, latency_ms=latency_ms)
    return RunResult("done")


def _queue_again(generation: Generation) -> int | None:
    """Put a run whose every failure was transient back on the queue, with exponential
    backoff, while its attempts and deadline allow: the backoff in seconds, or None."""
    backoff = settings.GENERATION_RETRY_BACKOFF_SECONDS * 2 ** (generation.attempts - 1)
    retry_at = timezone.now() + timedelta(seconds=backoff)
    if (
        generation.attempts >= settings.GENERATION_MAX_ATTEMPTS
        or retry_at >= generation.deadline_at
    ):
        return None
    # dispatched_at is when the next run is due, so the reconciler does not resend it while it
    # waits out its backoff.
    requeued = Generation.objects.filter(
        pk=generation.pk, status=Generation.Status.RUNNING, cancel_requested_at__isnull=True
    ).update(status=Generation.Status.QUEUED, dispatched_at=retry_at)
    return backoff if requeued else None
