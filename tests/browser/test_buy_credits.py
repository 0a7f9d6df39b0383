"""Buying credits in a real browser: choose a pack, pay on (the tests' fake of) Stripe Checkout,
come back while the webhook is on its way, and see the credits land."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from billing.models import Purchase
from tests.browser.support import PHONE, fill_sign_in, give_credits, load, settle, verified_customer
from tests.support.fake_stripe import FakeStripe, running_fake_stripe, sign

pytestmark = pytest.mark.usefixtures("default_prices")

WEBHOOK_SECRET = "whsec_browser_test"


@pytest.fixture(scope="module")
def fake_stripe_server() -> Iterator[FakeStripe]:
    with running_fake_stripe() as fake:
        yield fake


@pytest.fixture
def fake_stripe(fake_stripe_server: FakeStripe, settings: Any) -> FakeStripe:
    # live_server runs in this process, so these settings are the server's too.
    fake_stripe_server.reset()
    settings.STRIPE_SECRET_KEY = "sk_test_browser"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = fake_stripe_server.base_url
    settings.STRIPE_CURRENCY = "usd"
    settings.STRIPE_PACKS_CENTS = [500, 2000, 5000, 10000]
    settings.STRIPE_MIN_CENTS = 500
    settings.STRIPE_MAX_CENTS = 50_000
    # The fake's Checkout page stands where checkout.stripe.com stands in the pages' policy: the
    # buy form's redirect there is held to form-action.
    directives = settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]
    settings.CONTENT_SECURITY_POLICY = {
        "DIRECTIVES": directives
        | {"form-action": [*directives["form-action"], fake_stripe_server.base_url]}
    }
    return fake_stripe_server


def deliver_webhook(base_url: str, event: dict[str, Any]) -> httpx.Response:
    """What Stripe's servers do: POST the signed event to the endpoint."""
    body = json.dumps(event)
    return httpx.post(
        f"{base_url}/stripe/webhook/",
        content=body,
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": sign(body, WEBHOOK_SECRET),
        },
        timeout=30,
    )


def test_a_customer_buys_a_pack_by_card_and_sees_the_credits(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
    fake_stripe: FakeStripe,
) -> None:
    email = "buyer@example.com"
    give_credits(verified_customer(email), 1000)
    load(page, f"{live_server.url}/accounts/login/", console_errors)
    fill_sign_in(page, email)
    settle(page, console_errors)

    load(page, f"{live_server.url}/dashboard/billing/", console_errors)
    main = page.locator("main")
    expect(main).to_contain_text("Your balance is 1,000 credits")
    screenshot(page, "buy-credits")
    page.get_by_role("button", name="$20.00 20,000 credits").click()

    # Off to (the fake of) Stripe's hosted Checkout page.
    page.wait_for_url(f"{fake_stripe.base_url}/checkout/*")
    settle(page, console_errors)
    expect(page.get_by_role("heading", name="Fake Stripe Checkout")).to_be_visible()
    expect(page.locator("body")).to_contain_text("20.00 USD")
    screenshot(page, "buy-credits-checkout")
    page.get_by_role("button", name="Pay").click()

    # Back on the dashboard before Stripe's webhook: nothing credited yet, the page waits.
    page.wait_for_url(f"{live_server.url}/dashboard/billing/purchases/**")
    settle(page, console_errors)
    expect(main).to_contain_text("Payment received, crediting…")
    screenshot(page, "buy-credits-crediting")
    purchase = Purchase.objects.get()
    assert purchase.status == "pending"
    assert purchase.checkout_session_id is not None

    session = fake_stripe.session(purchase.checkout_session_id)
    response = deliver_webhook(
        live_server.url, fake_stripe.event("checkout.session.completed", session)
    )
    assert response.status_code == 200, response.text

    # The page looks again by itself and shows the credits.
    expect(main).to_contain_text("20,000 credits were added", timeout=15_000)
    expect(main).to_contain_text("Your balance is now 21,000 credits")
    settle(page, console_errors)
    screenshot(page, "buy-credits-paid")

    page.get_by_role("link", name="Back to billing").click()
    settle(page, console_errors)
    expect(main).to_contain_text("Your balance is 21,000 credits")
    payments = page.get_by_role("region", name="Card payments")
    expect(payments.locator("tbody tr")).to_have_count(1)
    expect(payments).to_contain_text("$20.00")
    expect(payments).to_contain_text("20,000")
    expect(payments).to_contain_text("Paid")
    receipt = payments.get_by_role("link", name="Receipt")
    expect(receipt).to_have_attribute("href", fake_stripe.charge_for(session["id"])["receipt_url"])
    history = page.get_by_role("region", name="History")
    expect(history.locator("tbody tr").first).to_contain_text("Card payment of $20.00")
    expect(history.locator("tbody tr").first).to_contain_text("+20,000")
    screenshot(page, "buy-credits-history")

    page.set_viewport_size(PHONE)
    load(page, f"{live_server.url}/dashboard/billing/", console_errors, phone=True)
    screenshot(page, "buy-credits-phone")
