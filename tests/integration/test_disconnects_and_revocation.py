"""What happens across processes: a client that hangs up, a key revoked while a server runs."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from django.conf import settings
from openai import OpenAI

from generation.models import ConcurrencySlot, Generation
from keys import services as keys
from tests.support.clients import hang_up
from tests.support.money import assert_ledger_balanced

pytestmark = [pytest.mark.integration, pytest.mark.smoke]


def test_a_client_that_hangs_up_still_gets_its_generation_settled(
    live_api, default_prices, user_factory, api_key_factory
):
    user = user_factory(credits=1000)
    key = api_key_factory(user).raw_key

    hang_up(live_api, key, latency=1.5, after=0.5)

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        generation = Generation.objects.get(user=user)
        if generation.is_finished:
            break
        time.sleep(0.2)
    # The image the upstream delivered is stored, charged once and kept; nothing stays held:
    # neither credits nor its concurrency slot (this server counts limits in the database).
    assert generation.status == Generation.Status.SUCCEEDED
    assert generation.images.count() == 1
    assert assert_ledger_balanced(user) == 960
    assert not ConcurrencySlot.objects.filter(holder=generation.public_id).exists()


def test_a_key_revoked_while_the_server_runs_fails_on_its_very_next_request(
    live_api, default_prices, user_factory, api_key_factory
):
    user = user_factory(credits=1000)
    issued = api_key_factory(user)
    client = OpenAI(base_url=f"{live_api}/v1", api_key=issued.raw_key, max_retries=0)
    assert client.models.list().data

    keys.revoke_key(issued.api_key)

    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_a_rotated_key_stops_working_at_once_and_its_successor_works(
    live_api, default_prices, user_factory, api_key_factory
):
    user = user_factory(credits=1000)
    issued = api_key_factory(user)
    old = OpenAI(base_url=f"{live_api}/v1", api_key=issued.raw_key, max_retries=0)
    assert old.models.list().data

    rotated = keys.rotate_key(issued.api_key)

    with pytest.raises(openai.AuthenticationError):
        old.models.list()
    new = OpenAI(base_url=f"{live_api}/v1", api_key=rotated.raw_key, max_retries=0)
    assert new.models.list().data


def test_a_chunked_body_over_the_limit_is_a_413_in_openai_shape(
    live_api, default_prices, user_factory, api_key_factory
):
    user = user_factory(credits=1000)
    key = api_key_factory(user).raw_key

    # The generations path may carry reference images: its limit is the image body limit.
    megabytes = settings.API_MAX_IMAGE_BODY_BYTES // 2**20 + 2

    def chunks():
        yield b'{"model": "seedream-4-0", "prompt": "'
        for _ in range(megabytes):
            yield b"a" * 2**20
        yield b'"}'

    response = httpx.post(
        f"{live_api}/v1/images/generations",
        content=chunks(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert assert_ledger_balanced(user) == 1000
