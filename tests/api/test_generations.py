"""POST /v1/images/generations through Django, against the upstream simulator over HTTP."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image as PILImage

from generation.models import Generation, Image
from tests.support.money import assert_ledger_balanced, ledger_kinds
from tests.support.prices import set_tier_price
from tests.support.responses import json_of

pytestmark = pytest.mark.smoke


def generate(client, key, **body):
    body = {"model": "seedream-4-0", "prompt": "a red fox in snow", "size": "1024x1024", **body}
    return client.post(
        "/v1/images/generations",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


def fetch_image(client, url):
    path = url.removeprefix("http://testserver")
    response = client.get(path)
    assert response.status_code == 200
    data = b"".join(response.streaming_content)
    return response, data


def test_it_returns_hosted_urls_and_charges_exactly_the_images_delivered(client, owner, owner_key):
    response = generate(client, owner_key, n=2)

    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["data"]) == 2
    assert body["credits_charged"] == 80
    assert body["images_delivered"] == 2
    assert body["id"].startswith("gen_")
    assert isinstance(body["created"], int)
    urls = [item["url"] for item in body["data"]]
    assert len(set(urls)) == 2
    assert all(url.startswith("http://testserver/img/") and url.endswith(".jpg") for url in urls)
    assert assert_ledger_balanced(owner) == 1000 - 80
    assert ledger_kinds(owner) == [
        ("grant", 1000),
        ("reserve", -80),
        ("release", 80),
        ("charge", -80),
    ]

    generation = Generation.objects.get()
    assert generation.status == Generation.Status.SUCCEEDED
    assert (generation.n, generation.images_delivered, generation.charged_credits) == (2, 2, 80)
    assert generation.upstream_model == "seedream-4-0-250828"
    assert generation.latency_ms is not None


def test_the_hosted_url_serves_a_jpeg_of_the_requested_size_cacheable_for_a_day(client, owner_key):
    url = generate(client, owner_key, size="1536x1024").json()["data"][0]["url"]

    response, data = fetch_image(client, url)

    assert response["Content-Type"] == "image/jpeg"
    # As long as the deletion promise allows (IMAGE_CACHE_SECONDS), not the year it used to be.
    assert response["Cache-Control"] == "public, max-age=86400"
    assert response["X-Content-Type-Options"] == "nosniff"
    with PILImage.open(io.BytesIO(data)) as picture:
        assert picture.format == "JPEG"
        assert picture.size == (1536, 1024)


def test_image_urls_use_the_configured_cdn_base(client, owner_key, settings):
    settings.IMAGE_BASE_URL = "https://cdn.example.com"
    url = generate(client, owner_key).json()["data"][0]["url"]
    assert url.startswith("https://cdn.example.com/img/")


def test_b64_json_returns_the_image_inline(client, owner, owner_key):
    response = generate(client, owner_key, response_format="b64_json", size="1024x1536")

    assert response.status_code == 200
    item = json_of(response)["data"][0]
    assert "url" not in item
    with PILImage.open(io.BytesIO(base64.b64decode(item["b64_json"]))) as picture:
        assert picture.size == (1024, 1536)
    # The image is kept for the gallery all the same.
    assert Image.objects.filter(generation__user=owner).count() == 1
    assert assert_ledger_balanced(owner) == 960


def test_a_model_default_size_applies_when_size_is_absent_or_auto(client, owner_key):
    first = generate(client, owner_key, model="seedream-3-0", size=None)
    second = generate(client, owner_key, model="seedream-3-0", size="auto")
    assert first.status_code == second.status_code == 200
    assert list(Generation.objects.values_list("size", flat=True)) == ["1024x1024", "1024x1024"]


def test_a_4k_image_is_priced_in_its_tier(client, owner, owner_key):
    response = generate(client, owner_key, size="4K")
    assert response.status_code == 200, response.content
    assert response.json()["credits_charged"] == 60
    assert assert_ledger_balanced(owner) == 940


def test_a_price_edited_in_the_table_applies_to_the_next_request(client, owner, owner_key):
    set_tier_price("seedream-4-0", "up to 2K", 55)
    assert generate(client, owner_key).json()["credits_charged"] == 55
    assert assert_ledger_balanced(owner) == 945


def test_seed_and_guidance_scale_reach_the_upstream_for_seedream_3(client, owner_key):
    def image_bytes(**extra):
        response = generate(client, owner_key, model="seedream-3-0", **extra)
        assert response.status_code == 200, response.content
        return fetch_image(client, response.json()["data"][0]["url"])[1]

    same_a = image_bytes(seed=7, guidance_scale=5.5)
    same_b = image_bytes(seed=7, guidance_scale=5.5)
    other = image_bytes(seed=8, guidance_scale=5.5)
    assert same_a == same_b
    assert same_a != other
    assert Generation.objects.filter(params__seed=7, params__guidance_scale=5.5).count() == 2


def test_the_watermark_is_off_unless_asked_for(client, owner_key):
    def image_bytes(**extra):
        response = generate(client, owner_key, model="seedream-3-0", seed=1, **extra)
        return fetch_image(client, response.json()["data"][0]["url"])[1]

    assert image_bytes() == image_bytes(watermark=False)
    assert image_bytes() != image_bytes(watermark=True)


def test_it_answers_402_with_the_cost_and_the_balance_and_charges_nothing(
    client, user_factory, api_key_factory, settings
):
    settings.SITE_URL = "https://images.example.com"
    poor = user_factory(credits=100)
    key = api_key_factory(poor).raw_key

    response = generate(client, key, n=3)

    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "insufficient_quota"
    assert error["type"] == "insufficient_quota"
    assert error["message"] == (
        "Insufficient credits: this request costs 120 credits ($0.12) and your balance is "
        "100 credits ($0.10). Add credits at https://images.example.com/dashboard/billing/"
    )
    assert assert_ledger_balanced(poor) == 100
    assert ledger_kinds(poor) == [("grant", 100)]
    refused = Generation.objects.get(user=poor)
    assert (refused.status, refused.http_status, refused.reserved_credits) == ("failed", 402, 0)
    assert refused.error_code == error["code"]
    assert refused.error_message == error["message"]  # what a stored failure answers with


def test_a_request_exactly_worth_the_balance_succeeds_and_leaves_zero(
    client, user_factory, api_key_factory
):
    user = user_factory(credits=80)
    response = generate(client, api_key_factory(user).raw_key, n=2)
    assert response.status_code == 200, response.content
    assert assert_ledger_balanced(user) == 0
    assert generate(client, api_key_factory(user).raw_key).status_code == 402


def test_every_response_carries_a_request_id(client, owner_key):
    responses = [
        generate(client, owner_key),
        client.get("/v1/models"),
        client.get("/v1/nope"),
        client.get("/img/nope.jpg"),
        client.get("/"),
    ]
    ids = [response["x-request-id"] for response in responses]
    assert all(request_id.startswith("req_") for request_id in ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    "path",
    [
        "/img/AAAAAAAAAAAAAAAAAAAAAA.jpg",
        "/img/short.jpg",
        "/img/..%2F..%2Fsecret_key.jpg",
        "/img/AAAAAAAAAAAAAAAAAAAAAA.exe",
    ],
)
def test_unknown_or_malformed_image_paths_are_404(client, path):
    assert client.get(path).status_code == 404


def test_the_key_owner_identity_is_recorded_but_the_key_is_not_stored(client, owner, owner_key):
    generate(client, owner_key, user="customer-42")
    generation = Generation.objects.get()
    assert generation.api_key.user == owner
    stored = json.dumps(list(Generation.objects.values()), default=str)
    assert owner_key not in stored
