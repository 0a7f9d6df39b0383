"""Health checks and the Prometheus scrape, for load balancers, orchestrators and monitoring.

- ``/healthz``: the process is alive and serving (no database): restart it when this fails.
- ``/readyz``: the database, each configured Redis and the image storage answer, each within
  READYZ_TIMEOUT_MS: send it traffic only while this says 200. The checks run side by side;
  a Redis that fails makes it "degraded" (still 200), see ``REQUIRED``.
- ``/metrics``: Prometheus text, only for ``Authorization: Bearer <METRICS_TOKEN>``; it does not
  exist (404) while METRICS_TOKEN is empty.

All three are served past the browser middleware (server/web_only.py), so polling them every
second costs no session, template or thread hop for middleware.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from . import metrics

# Without these a process can serve nothing: /readyz answers 503 while one fails. The Redis
# checks are optional: while Redis is down the rate limits count in the database, the cache
# lives in memory (server/outage.py) and playground runs wait for the broker (the reconciler
# sends them again), so /readyz answers 200 with "status": "degraded" and names them; taking
# every web process out of the load balancer for a Redis outage would be the real outage.
REQUIRED = frozenset({"database", "storage"})

# A name no image ever has: storage answers "no" to it, which is all we ask.
STORAGE_PROBE_NAME = "readyz-probe"
_ALLOWED = ("GET", "HEAD")


def _method_not_allowed() -> HttpResponse:
    return HttpResponse(status=405, headers={"Allow": ", ".join(_ALLOWED)})


async def healthz(request: HttpRequest) -> HttpResponse:
    if request.method not in _ALLOWED:
        return _method_not_allowed()
    return JsonResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


def _check_database() -> None:
    # Runs in the request's own database thread (thread-sensitive), so Django gives the
    # connection back when the request finishes, as for any view.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_storage() -> None:
    default_storage.exists(STORAGE_PROBE_NAME)


# One client per address and timeout, each with its own connection pool: a probe every second
# reuses a connection instead of opening one. redis-py's clients are thread-safe.
_redis_clients: dict[tuple[str, float], Any] = {}


def _check_redis(url: str, timeout: float) -> None:
    client = _redis_clients.get((url, timeout))
    if client is None:
        import redis

        client = _redis_clients[(url, timeout)] = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
    client.ping()


def redis_checks() -> dict[str, str]:
    """Check name -> Redis URL for each distinct Redis this installation uses."""
    candidates = [
        ("redis", settings.REDIS_URL),
        ("rate_limit_redis", getattr(settings, "RATE_LIMIT_REDIS_URL", "")),
        ("celery_broker", settings.CELERY_BROKER_URL),
    ]
    checks: dict[str, str] = {}
    for name, url in candidates:
        if (
            url
            and urlsplit(url).scheme in ("redis", "rediss", "unix")
            and url not in checks.values()
        ):
            checks[name] = url
    return checks


async def _run_check(
    name: str, start: Callable[[], Awaitable[None]], timeout: float
) -> tuple[str, dict[str, Any]]:
    started = time.perf_counter()
    result: dict[str, Any] = {"ok": True}
    try:
        await asyncio.wait_for(start(), timeout)
    except TimeoutError:
        result = {"ok": False, "error": f"no answer within {timeout * 1000:.0f} ms"}
    except Exception as exc:
        # The exception's type only: its text may name hosts, users or buckets, and this
        # endpoint answers anyone who can reach it.
        result = {"ok": False, "error": type(exc).__name__}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return name, result


async def readyz(request: HttpRequest) -> HttpResponse:
    if request.method not in _ALLOWED:
        return _method_not_allowed()
    timeout = settings.READYZ_TIMEOUT_MS / 1000
    starts: dict[str, Callable[[], Awaitable[None]]] = {
        "database": sync_to_async(_check_database),
        "storage": functools.partial(asyncio.to_thread, _check_storage),
    }
    for name, url in redis_checks().items():
        starts[name] = functools.partial(asyncio.to_thread, _check_redis, url, timeout)
    results = dict(
        await asyncio.gather(*(_run_check(name, start, timeout) for name, start in starts.items()))
    )
    failed = [name for name, result in results.items() if not result["ok"]]
    for name, result in results.items():
        result["required"] = name in REQUIRED
    unavailable = [name for name in failed if name in REQUIRED]
    status = "unavailable" if unavailable else "degraded" if failed else "ok"
    body: dict[str, Any] = {"status": status, "checks": results}
    if failed:
        body["failed"] = failed
    response = JsonResponse(
        body, status=503 if unavailable else 200, headers={"Cache-Control": "no-store"}
    )
    # A 503 here is a state the body reports, not a server error: without this Django logs an
    # error line for every poll while a dependency is down.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def _bearer_token(request: HttpRequest) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus scrape. A sync view: Django runs it on a thread, since reading every
    process's metric files and the broker's queue length blocks."""
    expected = settings.METRICS_TOKEN
    if not expected:
        return HttpResponse("Not Found\n", status=404, content_type="text/plain")
    if request.method not in _ALLOWED:
        return _method_not_allowed()
    supplied = _bearer_token(request)
    if not hmac.compare_digest(supplied.encode(), expected.encode()):
        return HttpResponse(
            "Unauthorized\n",
            status=401,
            content_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    body, content_type = metrics.render()
    return HttpResponse(body, content_type=content_type, headers={"Cache-Control": "no-store"})
