"""A model's lifecycle, from the catalog: a deprecated model answers with Deprecation, Sunset
and Link headers; a retired one answers 410 naming its replacement, charging nothing."""

from __future__ import annotations

import copy
import json

import pytest
from django.utils.http import parse_http_date

from generation import catalog
from generation.models import Generation
from tests.support.money import assert_ledger_balanced

pytestmark = pytest.mark.smoke


def generate(client, key, model):
    return client.post(
        "/v1/images/generations",
        json.dumps({"model": model, "prompt": "a lighthouse"}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


def test_a_deprecated_model_answers_and_says_until_when_and_what_to_use(client, owner, owner_key):
    model = catalog.get_model("seedream-3-0")

    response = generate(client, owner_key, "seedream-3-0")

    assert response.status_code == 200
    assert response["Deprecation"] == f"@{catalog.day_start(model.deprecated)}"
    assert parse_http_date(response["Sunset"]) == catalog.day_start(model.sunset)
    assert 'rel="deprecation"' in response["Link"]
    assert '/v1/models/seedream-4-0>; rel="successor-version"' in response["Link"]
    assert assert_ledger_balanced(owner) == 1000 - response.json()["credits_charged"]


def test_an_active_model_carries_no_lifecycle_headers(client, owner_key):
    response = generate(client, owner_key, "seedream-4-0")

    assert response.status_code == 200
    assert "Deprecation" not in response and "Sunset" not in response


def test_the_models_endpoint_tells_each_models_status(client, owner_key):
    headers = {"Authorization": f"Bearer {owner_key}"}
    listed = client.get("/v1/models", headers=headers).json()["data"]
    detail = client.get("/v1/models/seedream-3-0", headers=headers)

    statuses = {m["id"]: m["status"] for m in listed}
    assert statuses["seedream-5-5"] == "active"
    assert statuses["seedream-3-0"] == "deprecated"
    assert detail.json()["replacement"] == "seedream-4-0"
    assert detail["Sunset"]
    five = next(m for m in listed if m["id"] == "seedream-5-0-lite")
    assert five["aliases"] == ["seedream-5-0"]
    assert five["sizes"]["keywords"] == {"2K": "2048x2048", "3K": "3072x3072"}
    assert five["sizes"]["min_pixels"] == 3_686_400


def test_a_model_is_found_by_its_dated_upstream_id_too(client, owner_key):
    headers = {"Authorization": f"Bearer {owner_key}"}

    response = client.get("/v1/models/seedream-4-0-250828", headers=headers)

    assert response.status_code == 200
    assert response.json()["id"] == "seedream-4-0"


def test_a_retired_model_answers_410_naming_its_replacement_and_charges_nothing(
    client, owner, owner_key, settings
):
    models = copy.deepcopy(settings.SEEDREAM_MODELS)
    models["seedream-3-0"]["sunset"] = "2026-01-31"
    settings.SEEDREAM_MODELS = models

    response = generate(client, owner_key, "seedream-3-0")

    assert response.status_code == 410
    error = response.json()["error"]
    assert error["code"] == "model_retired"
    assert error["param"] == "model"
    assert "2026-01-31" in error["message"] and "'seedream-4-0'" in error["message"]
    assert response["x-should-retry"] == "false"
    assert not Generation.objects.exists()
    assert assert_ledger_balanced(owner) == 1000


def test_an_edit_only_model_is_refused_a_prompt_alone_and_names_the_models_that_can(
    client, owner, owner_key
):
    response = generate(client, owner_key, "seededit-3-0")

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("unsupported_model_mode", "model")
    assert "seedream-5-5" in error["message"]
    assert not Generation.objects.exists()
