"""The storefront: live prices, how credits work, and the calls to sign up or buy credits."""

from __future__ import annotations

import pytest
from django.urls import reverse

from billing.models import Price

pytestmark = pytest.mark.smoke


def test_the_home_page_shows_live_prices_with_the_4k_tier(client, db):
    Price.objects.filter(model="seedream-4-0", size_tier="").update(credits_per_image=47)
    Price.objects.filter(model="seedream-4-0", size_tier="4k").update(credits_per_image=71)

    page = client.get("/").content.decode()

    assert "47 credits ($0.0470)" in page
    assert "71 credits ($0.0710)" in page
    assert "35 credits ($0.0350)" in page
    # Seedream 3.0 makes nothing above 2048x2048, so it has no 4K price to show.
    assert "not offered" in page


def test_a_model_without_its_own_4k_row_charges_the_usual_price_for_4k(client, db):
    Price.objects.filter(model="seedream-4-0", size_tier="4k").delete()
    page = client.get("/").content.decode()
    assert "same price" in page


def test_how_credits_work_follows_the_settings_and_the_price_table(client, db, settings):
    settings.CREDITS_PER_USD = 500
    Price.objects.filter(model="seedream-4-0", size_tier="").update(credits_per_image=30)

    page = client.get("/").content.decode()

    assert "500 credits make one US dollar" in page
    assert "one credit is $0.002" in page
    # 4 asked for, 3 delivered: 120 held, 90 charged, 30 released.
    assert "120 credits are held" in page
    assert "you pay 90 credits and 30 are released" in page
    assert "GET http://testserver/v1/credits" in page


def test_a_visitor_is_asked_to_sign_up(client, db):
    page = client.get("/").content.decode()
    signup = reverse("account_signup")
    assert f'href="{signup}">Create an account</a>' in page
    assert f'href="{signup}">Sign up to buy credits</a>' in page
    assert reverse("billing:ledger") not in page


def test_a_customer_is_sent_to_the_dashboard_and_to_buy_credits(client, user_factory):
    client.force_login(user_factory())
    page = client.get("/").content.decode()
    assert f'href="{reverse("dashboard:overview")}">Go to dashboard</a>' in page
    assert f'href="{reverse("billing:ledger")}">Buy credits</a>' in page
    assert "Create an account" not in page


def test_a_model_off_sale_says_so(client, db):
    Price.objects.filter(model="seedream-3-0").delete()
    page = client.get("/").content.decode()
    assert "not on sale" in page
