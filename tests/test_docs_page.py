"""The public docs page is built from the live catalog and price table."""

from __future__ import annotations

import pytest

from billing.models import Price

pytestmark = pytest.mark.smoke


def test_the_docs_show_live_prices_models_and_the_error_table(client, db):
    Price.objects.filter(model="seedream-3-0", size_tier="").update(credits_per_image=37)

    page = client.get("/docs/").content.decode()

    assert "http://testserver/v1" in page
    assert "37 (any size)" in page
    assert "40 (any size), 60 (4k)" in page
    for code in ["invalid_api_key", "insufficient_quota", "content_policy_violation"]:
        assert f"<code>{code}</code>" in page
    assert "1K, 2K, 4K" in page


def test_the_docs_list_a_model_added_in_configuration(client, db, settings):
    settings.SEEDREAM_MODELS = {
        **settings.SEEDREAM_MODELS,
        "seedream-4-5": {**settings.SEEDREAM_MODELS["seedream-4-0"], "name": "Seedream 4.5"},
    }
    page = client.get("/docs/").content.decode()
    assert "seedream-4-5" in page
    assert "not on sale" in page
