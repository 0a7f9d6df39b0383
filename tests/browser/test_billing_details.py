"""Invoices and automatic top-up in a real browser: the customer fills in their company's billing
details, buys a pack with the card saved for automatic top-ups (on the tests' fake of Stripe
Checkout), sets when to top up, downloads the invoice, sees an automatic top-up arrive, and what
the page says when the bank declines one. Screenshots on a desktop and a phone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from billing import auto_top_up, services, tasks
from billing.models import CreditAccount, Purchase
from tests.browser.support import (
    DESKTOP,
    PHONE,
    axe_violations,
    give_credits,
    load,
    settle,
    sign_in_as,
    verified_customer,
)
from tests.browser.test_buy_credits import (  # noqa: F401 (fixtures)
    deliver_webhook,
    fake_stripe,
    fake_stripe_server,
)
from tests.support.fake_stripe import FakeStripe

pytestmark = pytest.mark.usefixtures("default_prices")


def test_a_company_gets_invoices_and_automatic_top_ups(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
    fake_stripe: FakeStripe,  # noqa: F811
) -> None:
    user = verified_customer("finance@acme.example")
    give_credits(user, 1000)
    sign_in_as(page, live_server.url, user)
    billing_url = f"{live_server.url}/dashboard/billing/"
    load(page, billing_url, console_errors)
    main = page.locator("main")

    # Billing details, as the invoices will show them.
    details = main.get_by_role("region", name="Billing details")
    details.get_by_label("Company or full name").fill("Acme Widgets GmbH")
    details.get_by_label("Address", exact=True).fill("Hauptstraße 5")
    details.get_by_label("Postal code").fill("10115")
    details.get_by_label("City").fill("Berlin")
    details.get_by_label("Country").select_option("DE")
    details.get_by_label("Tax id type").select_option("eu_vat")
    details.get_by_label("Tax id", exact=True).fill("DE123456789")
    details.get_by_role("button", name="Save billing details").click()
    settle(page, console_errors)
    expect(main).to_contain_text("Billing details saved: your next invoices show them.")
    expect(details.locator("address")).to_contain_text("Acme Widgets GmbH")
    expect(details.locator("address")).to_contain_text("Germany")

    # When to top up; no card is saved yet.
    top_up = main.get_by_role("region", name="Automatic top-up")
    top_up.get_by_label("Threshold").fill("5000")
    top_up.get_by_label("Amount (USD)").fill("20")
    top_up.get_by_role("button", name="Save").click()
    settle(page, console_errors)
    expect(main).to_contain_text("Settings saved. To turn automatic top-up on, buy credits")

    # A pack, paid with the card saved for automatic top-ups.
    main.get_by_label("Save the card I pay with for automatic top-ups").check()
    main.get_by_role("button", name="$5.00 5,000 credits").click()
    page.wait_for_url(f"{fake_stripe.base_url}/checkout/*")
    page.get_by_role("button", name="Pay").click()
    page.wait_for_url(f"{live_server.url}/dashboard/billing/purchases/**")
    purchase = Purchase.objects.get()
    session = fake_stripe.session(str(purchase.checkout_session_id))
    assert deliver_webhook(
        live_server.url, fake_stripe.event("checkout.session.completed", session)
    ).is_success
    expect(main).to_contain_text("5,000 credits were added", timeout=15_000)
    expect(main.get_by_role("link", name="Download invoice")).to_be_visible()
    settle(page, console_errors)

    load(page, billing_url, console_errors)
    expect(top_up).to_contain_text("When a request takes your balance below 5,000 credits")
    expect(top_up).to_contain_text("$20.00 (20,000 credits) to Visa ending 4242")
    payments = main.get_by_role("region", name="Card payments")
    invoice = payments.get_by_role("link", name="Download invoice")
    expect(invoice).to_have_count(1)
    href = invoice.get_attribute("href")
    assert href == f"/dashboard/billing/purchases/{purchase.public_id}/invoice/"
    download = page.request.get(f"{live_server.url}{href}", max_redirects=0)
    assert download.status == 302
    pdf = download.headers["location"]
    assert pdf == fake_stripe.invoice_for(session["id"])["invoice_pdf"]
    assert page.request.get(pdf).headers["content-type"] == "application/pdf"

    # A request takes the balance below the threshold: the card is charged, the webhook credits.
    account = CreditAccount.objects.get(owner__personal_owner=user)
    services.hold(
        user.personal_account.pk, {"held_credits": 1500}, reference="gen:1", description="held"
    )
    assert auto_top_up.due(account, before_credits=6000, after_credits=4500)
    assert tasks.auto_top_up.apply(args=[account.pk]).get() == "charged"
    automatic = Purchase.objects.get(kind="auto")
    intent = fake_stripe.payment_intent(automatic.payment_intent_id)
    assert deliver_webhook(
        live_server.url, fake_stripe.event("payment_intent.succeeded", intent)
    ).is_success

    load(page, billing_url, console_errors)
    expect(payments.locator("tbody tr")).to_have_count(2)
    expect(payments.locator("tbody tr").first).to_contain_text("Automatic top-up")
    expect(payments.locator("tbody tr").first).to_contain_text("$20.00")
    expect(payments.locator("tbody tr").first.get_by_role("link", name="Receipt")).to_be_visible()
    history = main.get_by_role("region", name="History")
    expect(history.locator("tbody tr").first).to_contain_text("Automatic top-up of $20.00")
    assert axe_violations(page, "billing with invoices and automatic top-up") == []
    screenshot(page, "billing-invoices-auto-top-up")
    page.set_viewport_size(PHONE)
    load(page, billing_url, console_errors, phone=True)
    screenshot(page, "billing-invoices-auto-top-up-phone")
    page.set_viewport_size(DESKTOP)

    # The bank declines the next one: automatic top-up stops, and the page says why.
    fake_stripe.decline_later(account.auto_top_up_payment_method_id)
    services.hold(
        user.personal_account.pk, {"held_credits": 20_000}, reference="gen:2", description="held"
    )
    assert tasks.auto_top_up.apply(args=[account.pk]).get() == "declined"
    load(page, billing_url, console_errors)
    expect(top_up).to_contain_text("Automatic top-up stopped on")
    expect(top_up).to_contain_text("Your card has insufficient funds.")
    expect(top_up.get_by_role("button", name="Remove card")).to_have_count(0)
    expect(payments.locator("tbody tr").first).to_contain_text("Failed")
    screenshot(page, "billing-auto-top-up-stopped")
    page.set_viewport_size(PHONE)
    load(page, billing_url, console_errors, phone=True)
    screenshot(page, "billing-auto-top-up-stopped-phone")


def test_the_details_form_says_what_is_wrong(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
    fake_stripe: FakeStripe,  # noqa: F811
) -> None:
    user = verified_customer("typo@acme.example")
    give_credits(user)
    sign_in_as(page, live_server.url, user)
    load(page, f"{live_server.url}/dashboard/billing/", console_errors)
    details = page.get_by_role("region", name="Billing details")
    details.get_by_label("Company or full name").fill("Acme Widgets GmbH")
    details.get_by_label("Address", exact=True).fill("Hauptstraße 5")
    details.get_by_label("City").fill("Berlin")
    details.get_by_label("Country").select_option("DE")
    details.get_by_label("Tax id type").select_option("gb_vat")
    details.get_by_label("Tax id", exact=True).fill("DE123456789")

    # The page answers 400 with the form: expected here, so not an error of the page.
    with page.expect_response(lambda r: "/details/" in r.url) as answer:
        details.get_by_role("button", name="Save billing details").click()
    assert answer.value.status == 400
    console_errors.clear()
    page.wait_for_load_state("networkidle")

    field = details.get_by_label("Tax id", exact=True)
    expect(details).to_contain_text(
        "This does not look like a UK VAT number: it should look like GB123456789."
    )
    expect(field).to_have_attribute("aria-invalid", "true")
    assert axe_violations(page, "billing details refused") == []
    screenshot(page, "billing-details-refused")
