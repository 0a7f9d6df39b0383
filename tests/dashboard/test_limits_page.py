"""The Limits page and a key's own limits: the owner's figures only, and the way up."""

from __future__ import annotations

import pytest

from billing import services as billing
from generation.models import AccountRateLimit

TIERS = [
    {"id": "free", "name": "Free", "min_lifetime_credits": 0, "requests_per_minute": 10,
     "images_per_minute": 5, "concurrent_generations": 1},
    {"id": "tier-1", "name": "Tier 1", "min_lifetime_credits": 5000, "requests_per_minute": 100,
     "images_per_minute": 50, "concurrent_generations": 4},
    {"id": "tier-2", "name": "Tier 2", "min_lifetime_credits": 20000,
     "min_balance_credits": 10000, "requests_per_minute": 500, "images_per_minute": 200,
     "concurrent_generations": 10},
]  # fmt: skip


@pytest.fixture(autouse=True)
def tiers(settings):
    settings.RATE_LIMIT_TIERS = TIERS


def test_a_visitor_is_sent_to_log_in(client, db):
    for url in ("/dashboard/limits/", "/dashboard/keys/1/limits"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_it_shows_the_tier_its_limits_and_what_unlocks_the_next(client, owner, owner_key):
    client.force_login(owner)
    client.get("/v1/credits", headers={"Authorization": f"Bearer {owner_key}"})

    page = client.get("/dashboard/limits/").content.decode()

    assert "Your account is on <strong>Free</strong>" in page
    assert "10 per minute" in page and "5 per minute" in page and "1 in flight" in page
    assert "<td>1</td>" in page  # the /v1/credits call just made
    assert "You have added 1,000 credits ($1.00) in total." in page
    assert "after 4,000 more credits added" in page


def test_a_top_up_moves_the_account_up_and_the_page_follows(client, owner):
    billing.grant(
        owner.personal_account, 5000, description="top-up", idempotency_key="t1", kind="top_up"
    )
    client.force_login(owner)

    page = client.get("/dashboard/limits/").content.decode()

    assert "Your account is on <strong>Tier 1</strong>" in page
    assert "after 14,000 more credits added and with a balance 4,000 credits higher" in page


def test_a_custom_limit_is_shown_as_such(client, owner):
    AccountRateLimit.objects.create(account=owner.personal_account, requests_per_minute=999)
    client.force_login(owner)

    page = client.get("/dashboard/limits/").content.decode()

    assert "with a custom limit set for you" in page
    assert "999 per minute" in page


def test_the_owner_sets_and_clears_a_keys_own_limits(client, owner, api_key_factory):
    key = api_key_factory(owner, "ci").api_key
    client.force_login(owner)
    url = f"/dashboard/keys/{key.pk}/limits"

    response = client.post(url, {"requests_per_minute": "3", "images_per_minute": "",
                                 "concurrent_generations": "1"})  # fmt: skip

    assert response.status_code == 302
    key.refresh_from_db()
    assert (key.requests_per_minute, key.images_per_minute, key.concurrent_generations) == (
        3, None, 1,
    )  # fmt: skip
    assert (
        "own limits: 3 requests/min 1 at a time" in client.get("/dashboard/keys/").content.decode()
    )
    client.post(
        url, {"requests_per_minute": "", "images_per_minute": "", "concurrent_generations": ""}
    )
    key.refresh_from_db()
    assert key.requests_per_minute is None


def test_a_bad_limit_is_refused_on_its_field(client, owner, api_key_factory):
    key = api_key_factory(owner).api_key
    client.force_login(owner)

    response = client.post(f"/dashboard/keys/{key.pk}/limits", {"requests_per_minute": "0"})

    assert response.status_code == 200
    assert "Ensure this value is greater than or equal to 1." in response.content.decode()
    key.refresh_from_db()
    assert key.requests_per_minute is None


def test_an_outsider_cannot_see_or_set_anothers_key_limits(
    client, owner, outsider, api_key_factory
):
    key = api_key_factory(owner).api_key
    client.force_login(outsider)

    assert client.get(f"/dashboard/keys/{key.pk}/limits").status_code == 404
    assert (
        client.post(f"/dashboard/keys/{key.pk}/limits", {"requests_per_minute": "1"}).status_code
        == 404
    )
    key.refresh_from_db()
    assert key.requests_per_minute is None
    assert key.name not in client.get("/dashboard/limits/").content.decode()


def test_operators_see_the_tier_and_the_limits_in_force_on_a_custom_limit(
    client, owner, user_factory
):
    admin = user_factory("root@example.com", is_staff=True, is_superuser=True)
    override = AccountRateLimit.objects.create(
        account=owner.personal_account, images_per_minute=7, note="launch"
    )
    client.force_login(admin)

    page = client.get(f"/admin/generation/accountratelimit/{override.pk}/change/").content.decode()

    assert "Free" in page  # the tier without the override
    assert "10 / 7 / 1" in page  # requests / images / concurrent in force
    listing = client.get("/admin/generation/accountratelimit/").content.decode()
    assert "owner@example.com" in listing and "launch" in listing


@pytest.mark.parametrize("cards", [True, False])
def test_the_way_up_offers_a_card_payment_only_when_cards_are_taken(client, owner, settings, cards):
    settings.STRIPE_SECRET_KEY = "sk_test_limits" if cards else ""
    settings.STRIPE_WEBHOOK_SECRET = "whsec_limits" if cards else ""
    settings.SUPPORT_EMAIL = "limits@operator.example"
    client.force_login(owner)

    page = client.get("/dashboard/limits/").content.decode()

    assert ('href="/dashboard/billing/">Buy credits</a>' in page) is cards
    assert ('href="mailto:limits@operator.example?subject=Credits"' in page) is not cards
    # Custom limits: the same address either way.
    assert 'Write to <a href="mailto:limits@operator.example">' in page
