"""Idempotency-Key: a repeat within 24 hours answers the same and charges once."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from api.views import request_fingerprint
from generation import services
from generation.catalog import get_model, resolve_size
from generation.models import Generation
from tests.support.money import assert_ledger_balanced, ledger_kinds
from tests.support.responses import json_of

pytestmark = pytest.mark.smoke


def generate(client, key, idempotency_key, body=None, raw=None):
    payload = raw if raw is not None else json.dumps(body)
    return client.post(
        "/v1/images/generations",
        payload,
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idempotency_key},
    )


def upstream_calls(simulator_url, prompt):
    base = simulator_url.removesuffix("/api/v3")
    return httpx.get(f"{base}/_sim/calls", params={"prompt": prompt}).json()["calls"]


@pytest.fixture
def body():
    return {"model": "seedream-4-0", "prompt": f"a kite {uuid.uuid4().hex}", "size": "1024x1024"}


def test_a_replay_returns_the_stored_response_and_charges_once(
    client, owner, owner_key, body, simulator_url
):
    first = generate(client, owner_key, "order-1", body)
    second = generate(client, owner_key, "order-1", body)

    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert upstream_calls(simulator_url, body["prompt"]) == 1
    assert Generation.objects.count() == 1
    assert assert_ledger_balanced(owner) == 960


def test_the_same_json_with_other_spacing_and_key_order_is_a_replay(client, owner_key, body):
    first = generate(client, owner_key, "k", body)
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2)
    second = generate(client, owner_key, "k", raw=reordered)
    assert second.json()["id"] == first.json()["id"]


def test_a_b64_replay_returns_the_same_image(client, owner_key, body):
    body["response_format"] = "b64_json"
    first = generate(client, owner_key, "b64", body)
    second = generate(client, owner_key, "b64", body)
    assert json_of(second)["data"][0]["b64_json"] == json_of(first)["data"][0]["b64_json"]


def test_the_same_key_with_a_different_body_is_a_400_and_costs_nothing(
    client, owner, owner_key, body
):
    generate(client, owner_key, "k", body)
    response = generate(client, owner_key, "k", {**body, "n": 2})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert response.json()["error"]["param"] == "Idempotency-Key"
    assert Generation.objects.count() == 1
    assert assert_ledger_balanced(owner) == 960


def test_a_replayed_failure_answers_the_same_error_without_a_new_reservation(
    client, owner, owner_key, body
):
    body["prompt"] += " [sim:block-prompt]"
    first = generate(client, owner_key, "bad", body)
    second = generate(client, owner_key, "bad", body)

    assert first.status_code == second.status_code == 400
    assert second.json() == first.json()
    assert second["x-should-retry"] == "false"
    assert [kind for kind, _ in ledger_kinds(owner)] == ["grant", "reserve", "release"]


def test_keys_belong_to_their_account(client, owner_key, outsider, api_key_factory, body):
    mine = generate(client, owner_key, "shared-name", body)
    theirs = generate(client, api_key_factory(outsider).raw_key, "shared-name", body)
    assert mine.json()["id"] != theirs.json()["id"]
    assert assert_ledger_balanced(outsider) == 960


def test_a_key_older_than_24_hours_is_free_again(client, owner, owner_key, body):
    first = generate(client, owner_key, "daily", body)
    Generation.objects.update(created_at=timezone.now() - timedelta(hours=25))
    second = generate(client, owner_key, "daily", body)
    assert second.json()["id"] != first.json()["id"]
    assert assert_ledger_balanced(owner) == 920


def test_a_repeat_while_the_first_still_runs_gets_409_to_retry(
    client, owner, owner_key, body, settings
):
    settings.IDEMPOTENCY_WAIT_SECONDS = 0
    raw = json.dumps(body)
    model = get_model("seedream-4-0")
    services.begin_generation(
        account=owner.personal_account,
        made_by_id=owner.pk,
        spec=services.GenerationSpec(
            model=model, prompt=body["prompt"], size=resolve_size(model, "1024x1024"), n=1
        ),
        idempotency_key="slow",
        request_hash=request_fingerprint(raw.encode()),
    )

    response = generate(client, owner_key, "slow", raw=raw)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_request_in_progress"
    assert response["Retry-After"] == "1"
    assert Generation.objects.count() == 1
