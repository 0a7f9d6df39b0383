"""Redis down (issue 14, item 5): the cache answers from the process's memory, so sign-in and
the limits page keep working and their limits still hold; it goes back to Redis when it answers.
The rate limiter's own fallback is tested in tests/generation/test_rate_limits.py."""

from __future__ import annotations

from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.core.cache import cache
from django.test import Client

import server.cache
from server import metrics

pytestmark = pytest.mark.smoke

PASSWORD = "correct horse battery 42"
DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens there
LIVE_REDIS = "redis://127.0.0.1:6379/8"  # this file's own database on the shared Redis


def redis_cache(url: str) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": "server.cache.RedisCacheWithFallback",
            "LOCATION": url,
            "KEY_PREFIX": "test-redis-down",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }


@pytest.fixture
def redis_is_down(settings: Any) -> None:
    settings.CACHES = redis_cache(DEAD_REDIS)
    settings.RATE_LIMIT_REDIS_URL = DEAD_REDIS


@pytest.fixture
def customer(user_factory: Any) -> Any:
    user = user_factory("down@example.com", credits=100, second_factor=False)
    user.set_password(PASSWORD)
    user.save()
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    return user


def fallbacks() -> float:
    return metrics.REDIS_FALLBACKS.labels("cache")._value.get()


def test_with_redis_down_sign_in_works_and_its_lockout_still_holds(
    client: Client, customer: Any, redis_is_down: None, settings: Any, caplog: Any
) -> None:
    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "3/300s/ip,3/300s/key"}
    before = fallbacks()

    assert client.get("/accounts/login/").status_code == 200
    for _ in range(3):
        wrong = client.post("/accounts/login/", {"login": customer.email, "password": "wrong"})
        assert wrong.status_code == 200
    locked = client.post("/accounts/login/", {"login": customer.email, "password": PASSWORD})

    assert "Too many failed login attempts" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    assert fallbacks() > before
    assert caplog.text.count("cache: Redis unreachable") == 1
    assert "Traceback" not in caplog.text


def test_with_redis_down_a_signed_in_customer_sees_the_limits_page(
    client: Client, customer: Any, redis_is_down: None, settings: Any
) -> None:
    settings.RATE_LIMIT_TIERS = [
        {"id": "free", "name": "Outage Free Tier", "requests_per_minute": 60,
         "images_per_minute": 20, "concurrent_generations": 3},
    ]  # fmt: skip
    client.force_login(customer)

    response = client.get("/dashboard/limits/")

    assert response.status_code == 200
    assert "Outage Free Tier" in response.content.decode()


def test_the_cache_goes_back_to_redis_once_it_answers(settings: Any, monkeypatch: Any) -> None:
    settings.CACHES = redis_cache(DEAD_REDIS)
    cache.set("during", "memory")
    assert cache.get("during") == "memory"  # kept in this process's memory meanwhile
    assert server.cache._outage.down

    settings.CACHES = redis_cache(LIVE_REDIS)
    monkeypatch.setattr(server.cache._outage, "_retry_at", 0.0)  # the pause is over
    cache.set("after", "redis", 30)

    assert not server.cache._outage.down
    # Written to Redis itself: a second client of that Redis reads it.
    import redis

    stored = redis.Redis.from_url(LIVE_REDIS).keys("test-redis-down:*after")
    assert stored
    cache.delete("after")


def test_counters_in_the_fallback_count(settings: Any) -> None:
    settings.CACHES = redis_cache(DEAD_REDIS)
    cache.set("n", 1)

    assert cache.incr("n") == 2
    assert cache.add("n", 5) is False
    assert cache.get_many(["n", "missing"]) == {"n": 2}
    cache.delete_many(["n"])
    assert cache.get("n") is None
