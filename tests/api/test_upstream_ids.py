"""A model's upstream ids are tried in order: when the upstream does not know one (a renamed or
re-spelled id), the next is used, the operator is told once, and the customer sees nothing."""

from __future__ import annotations

import copy
import json
import uuid

import httpx
import pytest

from generation import upstream
from generation.models import Generation
from tests.support.money import assert_ledger_balanced

pytestmark = pytest.mark.smoke


@pytest.fixture
def first_id_unknown(settings, monkeypatch):
    monkeypatch.setattr(upstream, "_unknown_upstream_ids", set())
    models = copy.deepcopy(settings.SEEDREAM_MODELS)
    models["seedream-4-0"]["upstream"]["byteplus"] = ["seedream-4-0-999999", "seedream-4-0-250828"]
    settings.SEEDREAM_MODELS = models


def generate(client, key, prompt):
    return client.post(
        "/v1/images/generations",
        json.dumps({"model": "seedream-4-0", "prompt": prompt, "size": "1024x1024"}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


def calls(simulator_url, prompt):
    base = simulator_url.removesuffix("/api/v3")
    return httpx.get(f"{base}/_sim/calls", params={"prompt": prompt}).json()["calls"]


def test_an_unknown_upstream_id_falls_back_to_the_next_and_is_remembered(
    client, owner, owner_key, first_id_unknown, simulator_url, caplog
):
    first, second = f"a kite {uuid.uuid4().hex}", f"a kite {uuid.uuid4().hex}"

    answers = [generate(client, owner_key, first), generate(client, owner_key, second)]

    assert [a.status_code for a in answers] == [200, 200]
    # The first request paid one refused call; the second went straight to the id that works.
    assert (calls(simulator_url, first), calls(simulator_url, second)) == (2, 1)
    assert caplog.text.count("upstream does not know model id seedream-4-0-999999") == 1
    assert Generation.objects.filter(status="succeeded").count() == 2
    assert assert_ledger_balanced(owner) == 1000 - 2 * 40


def test_when_no_id_is_known_the_customer_gets_the_configuration_error_uncharged(
    client, owner, owner_key, settings, monkeypatch
):
    monkeypatch.setattr(upstream, "_unknown_upstream_ids", set())
    models = copy.deepcopy(settings.SEEDREAM_MODELS)
    models["seedream-4-0"]["upstream"]["byteplus"] = ["seedream-4-0-1", "seedream-4-0-2"]
    settings.SEEDREAM_MODELS = models

    response = generate(client, owner_key, "a kite")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert assert_ledger_balanced(owner) == 1000
