"""Shared fixtures: personas and factories, the upstream simulator, the real ASGI server.

Nothing of ours is faked: the upstream simulator speaks the real protocol over HTTP on loopback
and every test that generates images goes through the real upstream client to it.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.db import connection

from accounts.models import User
from billing import pricing
from billing import services as billing
from billing.models import PriceRule, PriceTier
from generation import catalog
from keys import services as keys
from simulator.process import running_simulator
from tests.support.server import running_server

SIMULATOR_KEY = "sim-local-key"
UNLIMITED_TIERS = [
    {"id": "test", "name": "Test", "requests_per_minute": 1_000_000,
     "images_per_minute": 1_000_000, "concurrent_generations": 100_000},
]  # fmt: skip

# Django's test client runs each async view on a short-lived event loop, which leaves that loop's
# pooled upstream client to be collected unclosed; at exit aiohttp's complaint about it meets a
# closed stream. Harmless in tests (a server keeps one loop and one client), so keep it quiet.
logging.raiseExceptions = False


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    """The simulator's ``.../api/v3`` base, one process for the whole session."""
    with running_simulator(api_key=SIMULATOR_KEY) as url:
        yield url


@pytest.fixture(autouse=True)
def _redis_seen_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with Redis believed up (a test that points at a dead one leaves its
    process-wide outage state behind otherwise)."""
    import server.cache
    from generation import ratelimits
    from server.outage import Outage

    monkeypatch.setattr(ratelimits, "_outage", Outage("rate_limits"))
    monkeypatch.setattr(server.cache, "_outage", Outage("cache"))
    monkeypatch.setattr(ratelimits, "_database_holders", set())


@pytest.fixture(autouse=True)
def _nothing_cached_from_another_test() -> Iterator[None]:
    """Each test reads the catalog overrides and the price rules afresh: what an earlier test
    made (and rolled back), or found missing, is not left in this process's caches."""
    catalog.forget_overrides()
    pricing.forget_rules()
    yield
    catalog.forget_overrides()
    pricing.forget_rules()


@pytest.fixture(autouse=True)
def _test_settings(
    settings: Any, simulator_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = str(tmp_path_factory.getbasetemp() / "media")
    settings.UPSTREAM_BASE_URL = simulator_url
    settings.UPSTREAM_API_KEY = SIMULATOR_KEY
    settings.UPSTREAM_IMAGE_HOSTS = ["127.0.0.1"]
    settings.UPSTREAM_RETRY_BACKOFF_MS = 10
    settings.IMAGE_BASE_URL = ""
    settings.PRICE_CACHE_SECONDS = 0
    # Rate limits out of the way, except where a test sets its own (tests/api/test_rate_limits*).
    settings.RATE_LIMIT_TIERS = UNLIMITED_TIERS
    settings.RATE_LIMIT_REDIS_URL = ""
    # Wrong keys sent on purpose add up across tests from one address (tests/api/test_auth*).
    settings.API_KEY_FAILURES_PER_MINUTE = 1_000_000
    # Pages render without a collectstatic manifest.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> None:
    """Accounts are numbered far from users: a person's user id and their personal account's
    id would otherwise be the same number in nearly every test, and code that passed one where
    the other belongs would pass them."""
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT setval(pg_get_serial_sequence('accounts_account', 'id'), 70000)")
        else:
            cursor.execute("DELETE FROM sqlite_sequence WHERE name = 'accounts_account'")
            cursor.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES ('accounts_account', 70000)"
            )


@pytest.fixture
def user_factory(db: None) -> Callable[..., User]:
    counter = iter(range(1, 1_000_000))

    def make(
        email: str | None = None,
        *,
        credits: int = 0,
        second_factor: bool | None = None,
        **extra: Any,
    ) -> User:
        """A user; staff get a second factor (the admin requires one) unless ``second_factor``
        says otherwise."""
        user = User.objects.create_user(email or f"user{next(counter)}@example.com", "pw", **extra)
        if second_factor if second_factor is not None else user.is_staff:
            Authenticator.objects.create(
                user=user, type=Authenticator.Type.TOTP, data={"secret": "test-not-used"}
            )
        if credits:
            billing.grant(
                user.personal_account,
                credits,
                description="test credits",
                idempotency_key=f"test:{user.pk}",
            )
        return user

    return make


@pytest.fixture
def api_key_factory(db: None) -> Callable[..., keys.IssuedKey]:
    def make(
        user: User, name: str = "test key", expires_at: datetime | None = None
    ) -> keys.IssuedKey:
        return keys.create_key(user.personal_account, name, expires_at=expires_at)

    return make


@pytest.fixture
def owner(user_factory: Callable[..., User]) -> User:
    """A customer with credits for 25 standard images."""
    return user_factory("owner@example.com", credits=1000)


@pytest.fixture
def owner_key(owner: User, api_key_factory: Callable[..., keys.IssuedKey]) -> str:
    return api_key_factory(owner).raw_key


@pytest.fixture
def outsider(user_factory: Callable[..., User]) -> User:
    return user_factory("outsider@example.com", credits=1000)


def _database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    auth = f"{user}:{db['PASSWORD']}@" if db.get("PASSWORD") else (f"{user}@" if user else "")
    return f"postgres://{auth}{host}:{port}/{db['NAME']}"


@pytest.fixture
def default_prices(transactional_db: None) -> None:
    """Transactional tests flush every table, the seeded price rules too: seed them again."""
    seed = importlib.import_module("billing.migrations.0012_price_rules_from_prices")
    seed.seed_rules(PriceRule, PriceTier)
    pricing.forget_rules()


@pytest.fixture(scope="session")
def live_server_env(
    django_db_setup: None,
    django_db_blocker: Any,
    simulator_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """The environment a server subprocess needs to share this session's test database."""
    with django_db_blocker.unblock():
        db_url = _database_url()
        connection.close()
    data_dir = tmp_path_factory.mktemp("server-data")
    env = {
        "DATABASE_URL": db_url,
        "DATA_DIR": str(data_dir),
        "API_KEY_PEPPERS": settings.API_KEY_PEPPERS,
        # Webhook signing secrets encrypted here must decrypt there.
        "WEBHOOK_SECRET_KEYS": settings.WEBHOOK_SECRET_KEYS,
        "SECRET_KEY": settings.SECRET_KEY,
        "UPSTREAM_BASE_URL": simulator_url,
        "UPSTREAM_API_KEY": SIMULATOR_KEY,
        "UPSTREAM_IMAGE_HOSTS": "127.0.0.1",
        "UPSTREAM_RETRY_BACKOFF_MS": "10",
        "RATE_LIMIT_TIERS": json.dumps(UNLIMITED_TIERS),
        "RATE_LIMIT_REDIS_URL": "",
        "API_KEY_FAILURES_PER_MINUTE": "1000000",
        "DB_POOL_MIN_SIZE": "1",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    # A server process renders pages as in production, from collected static files (their
    # manifest names each file's hashed copy): collected once, into its DATA_DIR.
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=settings.BASE_DIR,
        env={**os.environ, **env},
        check=True,
    )
    return env


@pytest.fixture(scope="session")
def live_api(live_server_env: dict[str, str]) -> Iterator[str]:
    """The product served by uvicorn on loopback; yields its base URL (no /v1)."""
    with running_server(live_server_env) as base_url:
        yield base_url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests that need PostgreSQL's real row locks are skipped on SQLite, and say so.
    if "sqlite" in settings.DATABASES["default"]["ENGINE"]:
        skip = pytest.mark.skip(reason="needs PostgreSQL")
        for item in items:
            if "postgres" in item.keywords:
                item.add_marker(skip)
