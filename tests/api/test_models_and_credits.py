"""GET /v1/models, /v1/models/{id} and /v1/credits."""

from __future__ import annotations

import copy
import json

import pytest

from generation.models import Generation
from tests.support.prices import remove_rule, set_rule

pytestmark = pytest.mark.smoke


def get(client, path, key):
    return client.get(path, headers={"Authorization": f"Bearer {key}"})


def test_models_are_listed_in_openai_format_with_their_prices(client, owner_key, settings):
    response = get(client, "/v1/models", owner_key)

    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == list(settings.SEEDREAM_MODELS)
    for model in body["data"]:
        assert model["object"] == "model"
        assert isinstance(model["created"], int)
        assert model["owned_by"] == "bytedance"
    four = next(m for m in body["data"] if m["id"] == "seedream-4-0")
    assert four["price_per_image_credits"] == 40
    assert four["price_per_image_usd"] == "0.0400"
    assert four["price_per_image_credits_by_size_tier"] == {"up to 2K": 40, "4K": 60}
    assert four["pricing"]["image_tiers"] == [
        {"name": "up to 2K", "max_pixels": 2048 * 2048, "credits": 40, "usd": "0.0400"},
        {"name": "4K", "max_pixels": None, "credits": 60, "usd": "0.0600"},
    ]
    assert four["pricing"]["reference_image"] == {"credits": 0, "usd": "0.0000", "free_per_call": 0}
    pro = next(m for m in body["data"] if m["id"] == "seedream-5-0-pro")
    assert pro["price_per_image_credits"] == 60  # at its default size, 1024x1024
    assert [t["max_pixels"] for t in pro["pricing"]["image_tiers"]] == [2_359_296, None]
    assert pro["pricing"]["reference_image"] == {"credits": 4, "usd": "0.0040", "free_per_call": 1}
    assert pro["sizes"]["keyword_reach"] == 1.1025
    assert four["size_keywords"] == ["1K", "2K", "4K"]


def test_the_catalog_comes_from_configuration(client, owner, owner_key, settings):
    catalog = copy.deepcopy(settings.SEEDREAM_MODELS)
    entry = copy.deepcopy(catalog["seedream-4-0"])
    entry["upstream"] = {"byteplus": ["doubao-seedream-4-5-251128"]}
    entry["size"]["min_pixels"] = 2560 * 1440
    catalog["seedream-house"] = entry
    settings.SEEDREAM_MODELS = catalog
    set_rule("seedream-house", [("any size", None, 50)])

    listed = [m["id"] for m in get(client, "/v1/models", owner_key).json()["data"]]
    response = client.post(
        "/v1/images/generations",
        json.dumps({"model": "seedream-house", "prompt": "a fox", "size": "2560x1440"}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {owner_key}"},
    )

    assert "seedream-house" in listed
    assert response.status_code == 200, response.content
    assert Generation.objects.get().upstream_model == "doubao-seedream-4-5-251128"
    assert response.json()["credits_charged"] == 50


def test_a_model_without_a_price_is_not_sold(client, owner, owner_key):
    remove_rule("seedream-3-0")
    response = client.post(
        "/v1/images/generations",
        json.dumps({"model": "seedream-3-0", "prompt": "a fox"}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {owner_key}"},
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_not_priced"
    assert not Generation.objects.exists()


def test_one_model_is_returned_by_id(client, owner_key):
    body = get(client, "/v1/models/seedream-3-0", owner_key).json()
    assert body["id"] == "seedream-3-0"
    assert body["object"] == "model"
    assert body["supports_guidance_scale"] is True


def test_an_unknown_model_id_is_404_model_not_found(client, owner_key):
    response = get(client, "/v1/models/gpt-image-1", owner_key)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


@pytest.mark.parametrize("path", ["/v1/models", "/v1/models/seedream-4-0", "/v1/credits"])
def test_reading_endpoints_need_a_key(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize("path", ["/v1/models", "/v1/credits"])
def test_reading_endpoints_refuse_post(client, owner_key, path):
    response = client.post(path, headers={"Authorization": f"Bearer {owner_key}"})
    assert response.status_code == 405
    assert response["Allow"] == "GET"


def test_credits_show_the_key_owners_balance_and_its_dollar_value(
    client, owner, owner_key, outsider, settings
):
    settings.CREDITS_PER_USD = 1000
    assert get(client, "/v1/credits", owner_key).json() == {
        "object": "credit_balance",
        "balance": 1000,
        "balance_usd": "1.0000",
        "currency": "usd",
        "credits_per_usd": 1000,
    }
    client.post(
        "/v1/images/generations",
        json.dumps({"model": "seedream-4-0", "prompt": "a fox", "size": "1024x1024"}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {owner_key}"},
    )
    assert get(client, "/v1/credits", owner_key).json()["balance"] == 960
