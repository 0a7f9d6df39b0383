"""Debug pages and error reports hide a password written inside a URL (server/error_reports.py)."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from django.views.debug import technical_500_response

from server.error_reports import scrub

pytestmark = pytest.mark.smoke


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgres://app:s3cret@db.internal:5432/seedream",
         "postgres://app:********************@db.internal:5432/seedream"),
        ("redis://:hunter2@cache.internal:6379/0",
         "redis://:********************@cache.internal:6379/0"),
        ("postgres://app@db.internal/seedream", "postgres://app@db.internal/seedream"),
        ("https://example.com/a:b", "https://example.com/a:b"),
    ],
)  # fmt: skip
def test_a_password_inside_a_url_is_hidden_and_the_rest_kept(url, shown):
    assert scrub(url) == shown


# Built, not written out: the page shows this file's source around the error, and its lines
# must not be what is found.
SECRETS = ("db-" + "word-1", "redis-" + "word-2")


def debug_page() -> str:
    request = RequestFactory().get("/boom")
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        return str(
            technical_500_response(request, type(exc), exc, exc.__traceback__).content.decode()
        )


def test_the_debug_page_shows_no_password_of_any_url_setting(settings):
    settings.DEBUG = True
    db, redis = SECRETS
    settings.DATABASE_URL = f"postgres://app:{db}@db.internal:5432/seedream"
    settings.REDIS_URL = f"redis://:{redis}@cache.internal:6379/0"
    settings.CELERY_BROKER_URL = settings.REDIS_URL
    del db, redis

    page = debug_page()

    assert not [secret for secret in SECRETS if secret in page]
    assert "db.internal" in page and "cache.internal" in page
