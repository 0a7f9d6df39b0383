"""Prometheus metrics: their definitions, the cheap calls that move them, and the scrape.

Every process keeps its own values. With several processes on a host (uvicorn workers, Celery's
pool) the operator sets ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory, the same one for every
process of the host, and empties it when the host's processes start: prometheus-client then keeps
each process's values in a file there and ``/metrics``, asked of any one process, adds them all up.
Without it the values are this process's own (``make run``, tests).

The queue depth is not counted as things happen: it is read from the broker at scrape time.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# From a cached key lookup (milliseconds) to a 4K generation held for minutes.
_LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, float("inf"),
)  # fmt: skip

HTTP_REQUESTS = Counter(
    "seedream_http_requests_total",
    "HTTP requests answered, by route (URL pattern name), method and status code.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "seedream_http_request_duration_seconds",
    "Time from the request reaching Django to its response, by route and method.",
    ["route", "method"],
    buckets=_LATENCY_BUCKETS,
)
GENERATIONS = Counter(
    "seedream_generations_total",
    "Generations settled, by model, outcome (succeeded, partial, failed) and source (api, "
    "playground).",
    ["model", "outcome", "source"],
)
IMAGES = Counter(
    "seedream_images_delivered_total",
    "Images delivered (and charged), by model and source.",
    ["model", "source"],
)
UPSTREAM_DURATION = Histogram(
    "seedream_upstream_request_duration_seconds",
    "Upstream calls, each attempt: generate (the API call) or download (the image fetch).",
    ["operation"],
    buckets=_LATENCY_BUCKETS,
)
UPSTREAM_ERRORS = Counter(
    "seedream_upstream_errors_total",
    "Upstream calls that failed, each attempt, by operation and kind (rate_limited, timeout, "
    "upstream_error, prompt_blocked, ...).",
    ["operation", "kind"],
)
CREDITS_RESERVED = Counter(
    "seedream_credits_reserved_total",
    "Credits held when generations began (the ledger's reserve lines).",
    ["model", "source"],
)
CREDITS_CHARGED = Counter(
    "seedream_credits_charged_total",
    "Credits charged for delivered images (the ledger's charge lines).",
    ["model", "source"],
)
CREDITS_RELEASED = Counter(
    "seedream_credits_released_total",
    "Holds released when generations settled (the ledger's release lines); released minus "
    "charged is what went back to customers.",
    ["model", "source"],
)
IMAGES_NOT_STORED = Counter(
    "seedream_images_not_stored_total",
    "Generations whose delivered images could not be stored (settled as failed, uncharged).",
)
SETTLEMENT_RETRIES = Counter(
    "seedream_settlement_retries_total",
    "Settlements tried a second time after losing their database connection.",
)
SLOT_RELEASES_FAILED = Counter(
    "seedream_slot_releases_failed_total",
    "Concurrency slots that could not be given back when their generation ended (their store "
    "was unreachable); each lapses with its lease.",
)
ORPHAN_FILES_REMOVED = Counter(
    "seedream_orphan_files_removed_total",
    "Stored files that no image row named, removed by the orphan sweep.",
)
REDIS_FALLBACKS = Counter(
    "seedream_redis_fallbacks_total",
    "Calls served without Redis while it was unreachable, by use: rate_limits (counted in the "
    "database instead) or cache (this process's memory instead).",
    ["use"],
)
CELERY_TASKS = Counter(
    "seedream_celery_tasks_total",
    "Celery tasks finished, by task name and outcome (succeeded, failed, retried).",
    ["task", "outcome"],
)

# --- Requests (server.middleware.metrics_middleware) ----------------------------------------------

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The labelled children by (route, method, status): .labels() takes a lock and builds a key on
# every call, a dictionary lookup is cheaper. Bounded: routes are pattern names, not paths.
_request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_request(request: HttpRequest, status: int, seconds: float) -> None:
    match = request.resolver_match
    # The pattern's name (or its view's dotted path when unnamed): never the raw path, whose
    # values are unbounded. Requests no pattern matched (and static files) share one label.
    route = match.view_name if match is not None else "unmatched"
    method = request.method or ""
    if method not in _METHODS:
        method = "other"
    key = (route, method, status)
    children = _request_children.get(key)
    if children is None:
        children = _request_children[key] = (
            HTTP_REQUESTS.labels(route, method, str(status)),
            HTTP_DURATION.labels(route, method),
        )
    children[0].inc()
    children[1].observe(seconds)


# --- Generations and money (generation.services) --------------------------------------------------


def generation_reserved(generation: Any) -> None:
    """A generation began: its credits are held."""
    CREDITS_RESERVED.labels(generation.model, generation.source).inc(generation.reserved_credits)


def generation_settled(generation: Any) -> None:
    """A generation was settled (by its run or by the reconciler): exactly once per row."""
    model, source = generation.model, generation.source
    delivered = generation.images_delivered or 0
    if generation.status != "succeeded":
        outcome = "failed"
    elif delivered < generation.n:
        outcome = "partial"
    else:
        outcome = "succeeded"
    GENERATIONS.labels(model, outcome, source).inc()
    if delivered:
        IMAGES.labels(model, source).inc(delivered)
    CREDITS_RELEASED.labels(model, source).inc(generation.reserved_credits)
    if generation.charged_credits:
        CREDITS_CHARGED.labels(model, source).inc(generation.charged_credits)


def images_not_stored() -> None:
    IMAGES_NOT_STORED.inc()


def settlement_retried() -> None:
    SETTLEMENT_RETRIES.inc()


def slot_release_failed() -> None:
    SLOT_RELEASES_FAILED.inc()


def redis_fallback(use: str) -> None:
    REDIS_FALLBACKS.labels(use).inc()


def orphan_files_removed(count: int) -> None:
    ORPHAN_FILES_REMOVED.inc(count)


# --- Upstream calls (generation.upstream) ---------------------------------------------------------

_T = TypeVar("_T")


def timed_upstream(
    operation: str,
) -> Callable[[Callable[..., Coroutine[Any, Any, _T]]], Callable[..., Coroutine[Any, Any, _T]]]:
    """Time each call of an upstream coroutine and count its failures by kind.

    The coroutine returns either an object with a ``failure`` (None on success) or the outcome
    itself (a Failure has a ``kind``; a delivered image has none).
    """

    def decorate(
        call: Callable[..., Coroutine[Any, Any, _T]],
    ) -> Callable[..., Coroutine[Any, Any, _T]]:
        duration = UPSTREAM_DURATION.labels(operation)

        @functools.wraps(call)
        async def timed(*args: Any, **kwargs: Any) -> _T:
            started = time.perf_counter()
            try:
                result = await call(*args, **kwargs)
            except BaseException:
                # Cut off by the generation's deadline (a cancellation) or an unexpected error.
                duration.observe(time.perf_counter() - started)
                UPSTREAM_ERRORS.labels(operation, "cancelled_or_crashed").inc()
                raise
            duration.observe(time.perf_counter() - started)
            kind = getattr(getattr(result, "failure", result), "kind", None)
            if kind is not None:
                UPSTREAM_ERRORS.labels(operation, kind).inc()
            return result

        return timed

    return decorate


# --- Celery (server.celery_signals) --------------------------------------------------------------


def task_finished(task_name: str, outcome: str) -> None:
    CELERY_TASKS.labels(task_name or "unknown", outcome).inc()


# --- The scrape ----------------------------------------------------------------------------------


class QueueDepthCollector(Collector):
    """Messages waiting in the Celery queue, read from the broker when scraped."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        queue = settings.CELERY_TASK_DEFAULT_QUEUE
        try:
            depth = queue_depth(settings.CELERY_BROKER_URL, queue)
        except Exception as exc:
            # The scrape still answers; the missing series is what an alert should look for.
            logger.warning("could not read the Celery queue depth: %s", type(exc).__name__)
            return
        if depth is None:
            return
        family = GaugeMetricFamily(
            "seedream_celery_queue_length",
            "Messages waiting in the Celery queue (not yet taken by a worker), read when scraped.",
            labels=["queue"],
        )
        family.add_metric([queue], depth)
        yield family


# kombu's Redis transport keeps a queue's messages in one list per priority step: the queue's own
# name, then the name plus "\x06\x16" and the step (only used when tasks carry priorities).
_REDIS_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def queue_depth(broker_url: str, queue: str) -> int | None:
    """Messages waiting in ``queue``; None for a broker this cannot read."""
    scheme = urlsplit(broker_url).scheme
    if scheme in ("redis", "rediss"):
        import redis

        timeout = settings.READYZ_TIMEOUT_MS / 1000
        client = redis.Redis.from_url(
            broker_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        try:
            pipe = client.pipeline(transaction=False)
            for suffix in _REDIS_PRIORITY_SUFFIXES:
                pipe.llen(queue + suffix)
            return sum(int(n) for n in pipe.execute())
        finally:
            client.close()
    if scheme == "filesystem":
        # One file per message, named "<time>_<uuid>.<queue>.msg" (kombu's filesystem transport).
        options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
        folder = Path(options.get("data_folder_in", "data_in"))
        suffix = f".{queue}.msg"
        with os.scandir(folder) as entries:
            return sum(1 for entry in entries if entry.name.endswith(suffix))
    return None


def render() -> tuple[bytes, str]:
    """The exposition text for a scrape and its content type. Blocking: run it off the loop."""
    extra = CollectorRegistry()
    extra.register(QueueDepthCollector())
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    return body + generate_latest(extra), CONTENT_TYPE_LATEST


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
