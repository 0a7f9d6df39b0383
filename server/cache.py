"""Django's Redis cache, kept answering from this process's memory while Redis is down.

The cache holds allauth's sign-in, sign-up and password-reset rate limits and django-ratelimit's
counters (promotion codes, Checkout Sessions, wrong API keys). With Django's plain RedisCache a
Redis outage made every one of those pages answer 500. Here each call goes to Redis while it
answers and to a ``LocMemCache`` of this process's own while it does not (server/outage.py
decides when to try again and says so in the log): the pages keep working, and the limits are
still enforced, per process rather than across all of them, until Redis is back. What was
cached in memory during the outage is not copied to Redis afterwards; counters start again.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

from .outage import Outage

_outage = Outage("cache")


class RedisCacheWithFallback(RedisCache):
    """``RedisCache``, each call served by a local memory cache while Redis is unreachable."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._fallback = LocMemCache(
            f"redis-fallback-{id(self)}",
            {
                "TIMEOUT": params.get("TIMEOUT", DEFAULT_TIMEOUT),
                "KEY_PREFIX": params.get("KEY_PREFIX", ""),
                "VERSION": params.get("VERSION", 1),
                "OPTIONS": {"MAX_ENTRIES": 10_000},
            },
        )

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if _outage.should_try():
            try:
                result = getattr(super(), name)(*args, **kwargs)
            except RedisError as error:
                _outage.failed(error)
            else:
                _outage.recovered()
                return result
        _outage.fell_back()
        return getattr(self._fallback, name)(*args, **kwargs)

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> Any:
        return self._call("add", key, value, timeout, version)

    def get(self, key: Any, default: Any = None, version: Any = None) -> Any:
        return self._call("get", key, default, version)

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> Any:
        return self._call("set", key, value, timeout, version)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> Any:
        return self._call("touch", key, timeout, version)

    def delete(self, key: Any, version: Any = None) -> Any:
        return self._call("delete", key, version)

    def get_many(self, keys: Any, version: Any = None) -> Any:
        return self._call("get_many", keys, version)

    def has_key(self, key: Any, version: Any = None) -> Any:
        return self._call("has_key", key, version)

    def incr(self, key: Any, delta: int = 1, version: Any = None) -> Any:
        return self._call("incr", key, delta, version)

    def set_many(self, data: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> Any:
        return self._call("set_many", data, timeout, version)

    def delete_many(self, keys: Any, version: Any = None) -> Any:
        return self._call("delete_many", keys, version)

    def clear(self) -> Any:
        return self._call("clear")
