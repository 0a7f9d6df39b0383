"""What a process does while an optional dependency (Redis) is down: on purpose, and quietly.

Redis holds the rate limiters' counters and Django's cache (allauth's sign-in limits,
django-ratelimit's counters). Neither is worth an outage of the product: while Redis is
unreachable the rate limits are counted in the database instead (generation/ratelimits.py) and
the cache in this process's memory (server/cache.py). An ``Outage`` is one such use's view of
its Redis, per process:

- after a failure, callers skip Redis for REDIS_RETRY_SECONDS, so a Redis that hangs costs one
  request a socket timeout per interval rather than every request;
- the log says so once when it goes, at most once per REDIS_OUTAGE_LOG_SECONDS while it stays
  down, and once when it is back: never a stack trace per request;
- ``seedream_redis_fallbacks_total{use}`` counts each call the fallback served.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

from . import metrics

logger = logging.getLogger(__name__)


class Outage:
    """Whether ``use`` (a name for the log and the metric) should try its Redis now."""

    def __init__(self, use: str) -> None:
        self.use = use
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._logged_at = 0.0
        self._fallbacks_unlogged = 0

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def should_try(self) -> bool:
        """True while Redis is up, and once per retry interval while it is down."""
        if self._down_since is None:
            return True
        now = time.monotonic()
        with self._lock:
            if now < self._retry_at:
                return False
            # This caller tries; the others keep to the fallback until it has an answer.
            self._retry_at = now + settings.REDIS_RETRY_SECONDS
            return True

    def failed(self, error: BaseException) -> None:
        """Redis did not answer: fall back, and say so (once per log interval)."""
        now = time.monotonic()
        with self._lock:
            first = self._down_since is None
            if first:
                self._down_since = now
            self._retry_at = now + settings.REDIS_RETRY_SECONDS
            due = first or now - self._logged_at >= settings.REDIS_OUTAGE_LOG_SECONDS
            if due:
                self._logged_at = now
                served, self._fallbacks_unlogged = self._fallbacks_unlogged, 0
        if due:
            # The error's type only: its text may carry the Redis URL and its password.
            logger.warning(
                "%s: Redis unreachable (%s) for %.0f s; %s (%d calls served so since the last "
                "such line)",
                self.use,
                type(error).__name__,
                now - (self._down_since or now),
                _FALLBACK_WORDS.get(self.use, "falling back"),
                served,
            )

    def recovered(self) -> None:
        """Redis answered: back to it."""
        if self._down_since is None:
            return
        with self._lock:
            since, self._down_since = self._down_since, None
            self._fallbacks_unlogged = 0
        if since is not None:
            logger.warning(
                "%s: Redis answers again after %.0f s; using it again",
                self.use,
                time.monotonic() - since,
            )

    def fell_back(self) -> None:
        """One call was served by the fallback."""
        self._fallbacks_unlogged += 1
        metrics.redis_fallback(self.use)


_FALLBACK_WORDS = {
    "rate_limits": "counting rate limits in the database",
    "cache": "caching in this process's memory",
}
