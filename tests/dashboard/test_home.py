"""The storefront: live prices, how credits work, and the calls to sign up or buy credits."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.support.prices import remove_rule, set_tier_price

pytestmark = pytest.mark.smoke


def test_the_home_page_shows_every_rule_live_tier_by_tier(client, db):
    set_tier_price("seedream-4-0", "up to 2K", 47)
    set_tier_price("seedream-4-0", "4K", 71)

    page = client.get("/").content.decode()

    assert "47 credits ($0.047) up to 4,194,304 pixels" in page
    assert "71 credits ($0.071) above 4,194,304 pixels" in page
    assert "35 credits ($0.035) any size" in page
    # Pro: two tiers and paid references after the first free one.
    assert "60 credits ($0.06) up to 2,359,296 pixels (up to 1.5K)" in page
    assert "120 credits ($0.12) above 2,359,296 pixels (2K)" in page
    assert "+ 4 credits ($0.004) per reference image after the first 1" in page


def test_how_credits_work_follows_the_settings_and_the_price_rules(client, db, settings):
    settings.CREDITS_PER_USD = 500
    set_tier_price("seedream-4-0", "up to 2K", 30)

    page = client.get("/").content.decode()

    assert "500 credits make one US dollar" in page
    assert "one credit is $0.002" in page
    # 4 asked for at 4.0's default size (2048x2048), 3 delivered: 120 held, 90 charged.
    assert "for 4 images at 2048x2048, 30 credits each, and 120 credits are held" in page
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
    remove_rule("seedream-3-0")
    page = client.get("/").content.decode()
    assert "not on sale" in page
