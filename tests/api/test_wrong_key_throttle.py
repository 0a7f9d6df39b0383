"""An address that keeps sending wrong API keys is told to stop (api/auth.py)."""

from __future__ import annotations

import pytest
from django.core.cache import cache

pytestmark = pytest.mark.smoke

BODY = {"model": "seedream-4-0", "prompt": "a fox"}


@pytest.fixture
def three_a_minute(settings):
    cache.clear()
    settings.API_KEY_FAILURES_PER_MINUTE = 3
    yield
    cache.clear()


def post(client, key, address="203.0.113.7"):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post(
        "/v1/images/generations", BODY, content_type="application/json",
        headers=headers, REMOTE_ADDR=address,
    )  # fmt: skip


def test_after_repeated_wrong_keys_the_address_gets_429_not_401(client, owner, three_a_minute):
    wrong = [post(client, "sk-seedream-0000000000000000_wrong") for _ in range(3)]
    missing = post(client, None)

    assert [r.status_code for r in wrong] == [401, 401, 401]
    assert missing.status_code == 429
    error = missing.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "too_many_invalid_keys")
    assert missing["Retry-After"] == "60"
    assert missing["x-should-retry"] == "false"  # retrying a wrong key cannot help


def test_a_right_key_from_that_address_still_works_and_others_are_untouched(
    client, owner, owner_key, three_a_minute
):
    for _ in range(4):
        post(client, "sk-seedream-0000000000000000_wrong")

    assert post(client, owner_key).status_code == 200
    assert post(client, "sk-seedream-0000000000000000_wrong", "198.51.100.9").status_code == 401
