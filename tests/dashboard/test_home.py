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


def cards_taken(settings, on: bool) -> None:
    settings.STRIPE_SECRET_KEY = "sk_test_home" if on else ""
    settings.STRIPE_WEBHOOK_SECRET = "whsec_home" if on else ""


@pytest.mark.parametrize(
    ("cards", "trial", "button"),
    [
        (True, 0, "Sign up to buy credits"),
        (False, 0, "Sign up"),
        (False, 500, "Sign up for 500 free credits"),
        (True, 500, "Sign up for 500 free credits"),
    ],
)
def test_a_visitor_is_asked_to_sign_up(client, db, settings, cards, trial, button):
    cards_taken(settings, cards)
    settings.SIGNUP_CREDITS = trial
    page = client.get("/").content.decode()
    signup = reverse("account_signup")
    assert f'href="{signup}">Create an account</a>' in page
    assert f'href="{signup}">{button}</a>' in page
    assert reverse("billing:ledger") not in page
    assert ("Buy credits with a card" in page) is cards
    assert ("free credits once its email address is confirmed" in page) is bool(trial)


def test_a_customer_is_sent_to_the_dashboard_and_to_buy_credits(client, user_factory, settings):
    cards_taken(settings, True)
    client.force_login(user_factory())
    page = client.get("/").content.decode()
    assert f'href="{reverse("dashboard:overview")}">Go to dashboard</a>' in page
    assert f'href="{reverse("billing:ledger")}">Buy credits</a>' in page
    assert "Create an account" not in page


def test_without_card_payments_a_customer_is_told_whom_to_ask(client, user_factory, settings):
    cards_taken(settings, False)
    settings.SUPPORT_EMAIL = "credits@operator.example"
    client.force_login(user_factory())
    page = client.get("/").content.decode()
    assert f'href="{reverse("billing:ledger")}">Get credits</a>' in page
    assert ">Buy credits<" not in page
    assert "buy credits" not in page.lower()
    assert 'Write to <a href="mailto:credits@operator.example?subject=Credits">' in page

    settings.SUPPORT_EMAIL = ""
    page = client.get("/").content.decode()
    assert "Ask the operator of this installation for credits" in page


def test_a_model_off_sale_says_so(client, db):
    remove_rule("seedream-3-0")
    page = client.get("/").content.decode()
    assert "not on sale" in page
