"""The public docs page is built from the live catalog, price table and settings."""

from __future__ import annotations

import html
import json
import re

import pytest

from generation import catalog
from tests.support.prices import set_tier_price

pytestmark = pytest.mark.smoke

SECTIONS = [
    "authentication", "quickstart", "generations", "quality", "response", "edits", "models",
    "models-endpoint", "credits", "usage", "idempotency", "jobs", "errors", "rate-limits",
    "spend-controls", "organisations",
    "webhooks",
]  # fmt: skip


def docs(client) -> str:
    response = client.get("/docs/")
    assert response.status_code == 200
    return response.content.decode()


def example(page: str, element_id: str):
    """The JSON example in the docs' <pre id=...>."""
    match = re.search(rf'<pre id="{element_id}"[^>]*><code>(.*?)</code></pre>', page, re.S)
    assert match, f"no #{element_id} example"
    return json.loads(html.unescape(match.group(1)))


def section(page: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}".*?</section>', page, re.S)
    assert match, f"no #{section_id} section"
    return match.group(0)


def test_the_docs_show_live_prices_models_and_the_error_table(client, db):
    set_tier_price("seedream-3-0", "any size", 37)

    page = docs(client)

    assert "http://testserver/v1" in page
    assert "37 credits ($0.037) any size" in page
    assert "40 credits ($0.04) up to 4,194,304 pixels" in page
    assert "60 credits ($0.06) above 4,194,304 pixels" in page
    assert "+ 11 credits ($0.011) per reference image</span>" in page  # 5.5: none free
    for code in ["invalid_api_key", "insufficient_quota", "content_policy_violation"]:
        assert f"<code>{code}</code>" in page
    assert "1K, 2K, 4K" in page


def test_the_docs_list_a_model_added_in_configuration(client, db, settings):
    settings.SEEDREAM_MODELS = {
        **settings.SEEDREAM_MODELS,
        "seedream-house": {**settings.SEEDREAM_MODELS["seedream-4-0"], "name": "House"},
    }
    page = docs(client)
    assert "seedream-house" in page
    assert "not on sale" in page


def test_the_table_of_contents_links_every_section(client, db):
    page = docs(client)
    toc = re.search(r'<nav class="toc.*?</nav>', page, re.S)
    assert toc
    assert re.findall(r'href="#([\w-]+)"', toc.group(0)) == SECTIONS
    for section_id in SECTIONS:
        assert f'<section id="{section_id}"' in page


def test_the_model_example_is_what_the_api_answers_with_live_prices(client, db, owner_key):
    set_tier_price("seedream-4-0", "up to 2K", 43)
    set_tier_price("seedream-4-0", "4K", 66)

    shown = example(docs(client), "model-example")
    answered = client.get(
        "/v1/models/seedream-4-0", headers={"Authorization": f"Bearer {owner_key}"}
    ).json()

    assert shown == answered
    assert shown["price_per_image_credits"] == 43
    assert shown["price_per_image_credits_by_size_tier"] == {"up to 2K": 43, "4K": 66}
    assert [t["credits"] for t in shown["pricing"]["image_tiers"]] == [43, 66]
    assert "GET http://testserver/v1/models/{id}" in section(docs(client), "models-endpoint")


def test_the_credits_example_has_the_api_shape_and_the_live_rate(client, db, owner_key, settings):
    settings.CREDITS_PER_USD = 500

    shown = example(docs(client), "credits-example")
    answered = client.get("/v1/credits", headers={"Authorization": f"Bearer {owner_key}"}).json()

    assert shown.keys() == answered.keys()
    assert shown["object"] == answered["object"] == "credit_balance"
    assert shown["credits_per_usd"] == answered["credits_per_usd"] == 500
    assert shown["balance_usd"] == f"{shown['balance'] / 500:.4f}"
    assert "500 credits make one" in section(docs(client), "credits")


def test_idempotency_follows_the_settings(client, db, settings):
    settings.IDEMPOTENCY_WAIT_SECONDS = 45
    settings.IDEMPOTENCY_WINDOW_SECONDS = 48 * 3600

    text = section(docs(client), "idempotency")

    assert "up to 45 seconds" in text
    assert "kept for 48 hours" in text
    assert "idempotency_key_reused" in text
    assert "409 idempotency_request_in_progress" in text


def test_the_response_section_says_how_long_image_urls_live(client, db, settings):
    settings.IMAGE_BASE_URL = "https://images.example.com"
    settings.IMAGE_RETENTION_DAYS = 0
    text = section(docs(client), "response")
    assert "https://images.example.com/img/" in text
    assert "do not expire on a timer" in text

    settings.IMAGE_RETENTION_DAYS = 30
    text = section(docs(client), "response")
    assert "kept for 30 days" in text
    assert "b64_json" in text


def test_rate_limits_list_the_live_tiers_and_headers(client, db, settings):
    settings.UPSTREAM_MAX_RETRIES = 4
    settings.RATE_LIMIT_TIERS = [
        {"id": "free", "name": "Starter", "requests_per_minute": 7, "images_per_minute": 3,
         "concurrent_generations": 2},
        {"id": "big", "name": "Big", "min_lifetime_credits": 9000, "min_balance_credits": 500,
         "requests_per_minute": 70, "images_per_minute": 30, "concurrent_generations": 20},
    ]  # fmt: skip

    text = section(docs(client), "rate-limits")

    assert '<td>Starter</td><td>nothing</td><td class="num">7</td>' in text
    assert "<td>Big</td><td>9000 credits added, a balance of 500</td>" in text
    assert "x-ratelimit-remaining-requests" in text and "rate_limit_concurrency" in text
    assert "never a <code>429</code>" in text
    assert "up to 4 times on our side" in text
    assert "<code>upstream_busy</code></td><td>5 s</td>" in text
    assert "Retry-After" in text


def test_every_error_code_the_api_stores_is_in_the_error_table(client, db):
    from generation.services import settle

    page = docs(client)
    for status, code, *_ in settle._FAILURE_ERRORS.values():
        assert f'<td class="num">{status}</td>' in page
        assert f"<code>{code}</code>" in page


def test_the_docs_say_what_provenance_every_image_carries(client, db, settings):
    settings.C2PA_SIGNING_KEY = settings.C2PA_CERTIFICATE = ""
    settings.C2PA_DEVELOPMENT_SIGNER = False

    unsigned = section(docs(client), "response")
    settings.C2PA_DEVELOPMENT_SIGNER = True
    signed = section(docs(client), "response")

    for text in (unsigned, signed):
        assert "<code>trainedAlgorithmicMedia</code>" in text
        assert "your prompt is never written into the file" in text
    assert "C2PA" not in unsigned
    assert "signed C2PA manifest" in signed


def test_the_jobs_section_names_each_models_time_budget_from_the_catalog(client, db, settings):
    page = docs(client)
    section = re.search(r'<section id="jobs".*?</section>', page, re.S)
    assert section
    text = section.group(0)
    assert f"may take {settings.GENERATION_TIMEOUT_SECONDS} seconds" in text
    pro = catalog.get_model("seedream-5-0-pro")
    assert pro is not None
    assert f"{pro.name}: {pro.generation_timeout_seconds} seconds" in text
    assert pro.generation_timeout_seconds > settings.GENERATION_TIMEOUT_SECONDS
