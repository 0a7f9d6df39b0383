"""Invoices with the customer's company details: the billing details form, the account's Customer
at Stripe, Checkout sessions that make an invoice for every card payment, and the invoice kept
on the purchase and offered for download (to its owner only)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from billing import invoices, tasks
from billing.models import BillingProfile, Purchase, StripeEvent
from billing.redaction import REDACTED
from tests.support.money import assert_ledger_balanced

from .conftest import completed, paid

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]

DETAILS_URL = "/dashboard/billing/details/"
ACME = {
    "company_name": "Acme Widgets GmbH",
    "address_line1": "Hauptstraße 5",
    "address_line2": "3. Stock",
    "city": "Berlin",
    "postal_code": "10115",
    "state": "",
    "country": "DE",
    "tax_id_type": "eu_vat",
    "tax_id_value": "de 123 456 789",
}


def save_details(client, **changes):
    return client.post(DETAILS_URL, {**ACME, **changes})


def buy(client, **data):
    return client.post("/dashboard/billing/buy/", data)


def invoice_url(purchase):
    return f"/dashboard/billing/purchases/{purchase.public_id}/invoice/"


def test_details_go_to_the_accounts_customer_at_stripe(client, owner, fake_stripe):
    client.force_login(owner)

    response = save_details(client)

    assert response.status_code == 302
    assert response["Location"] == "/dashboard/billing/#billing-details"
    profile = BillingProfile.objects.get(account__owner__personal_owner=owner)
    assert (profile.company_name, profile.country, profile.tax_id_type, profile.tax_id_value) == (
        "Acme Widgets GmbH",
        "DE",
        "eu_vat",
        "DE123456789",  # as Stripe takes it: upper case, no spaces
    )
    [call] = fake_stripe.calls("POST", "/v1/customers")
    assert call.form["email"] == owner.email
    assert call.form["name"] == "Acme Widgets GmbH"
    assert call.form["address[line1]"] == "Hauptstraße 5"
    assert call.form["address[line2]"] == "3. Stock"
    assert call.form["address[postal_code]"] == "10115"
    assert call.form["address[country]"] == "DE"
    assert call.form["tax_id_data[0][type]"] == "eu_vat"
    assert call.form["tax_id_data[0][value]"] == "DE123456789"
    assert call.form["metadata[account_id]"] == str(owner.personal_account.pk)
    assert call.headers["idempotency-key"].startswith(f"customer-{profile.account_id}-")
    customer = fake_stripe.customer(profile.stripe_customer_id)
    assert customer["name"] == "Acme Widgets GmbH"
    [tax_id] = customer["tax_ids"]["data"]
    assert (tax_id["id"], tax_id["type"], tax_id["value"]) == (
        profile.stripe_tax_id,
        "eu_vat",
        "DE123456789",
    )
    page = client.get("/dashboard/billing/").content.decode()
    assert "Billing details saved: your next invoices show them." in page
    assert "Acme Widgets GmbH" in page and "Germany" in page and "DE123456789" in page
    assert "Change billing details" in page


def test_a_checkout_payment_makes_an_invoice_made_out_to_the_customer(
    client, owner, fake_stripe, deliver
):
    client.force_login(owner)
    save_details(client)

    assert buy(client, pack="2000").status_code == 303

    purchase = Purchase.objects.get()
    profile = BillingProfile.objects.get(account__owner__personal_owner=owner)
    [call] = fake_stripe.calls("POST", "/v1/checkout/sessions")
    assert call.form["customer"] == profile.stripe_customer_id
    assert "customer_email" not in call.form
    assert call.form["invoice_creation[enabled]"] == "true"
    data = "invoice_creation[invoice_data]"
    assert call.form[f"{data}[description]"] == "Prepaid credits: 20,000 Seedream API credits"
    assert str(purchase.public_id) in call.form[f"{data}[footer]"]
    assert call.form[f"{data}[metadata][purchase_id]"] == str(purchase.public_id)
    assert call.form[f"{data}[metadata][user_id]"] == str(owner.pk)
    # No card is kept unless the customer asks.
    assert "payment_intent_data[setup_future_usage]" not in call.form

    paid(fake_stripe, deliver, purchase)

    purchase.refresh_from_db()
    invoice = fake_stripe.invoice_for(purchase.checkout_session_id)
    assert (invoice["customer_name"], invoice["customer_address"]["city"]) == (
        "Acme Widgets GmbH",
        "Berlin",
    )
    assert invoice["customer_tax_ids"] == [{"type": "eu_vat", "value": "DE123456789"}]
    assert (purchase.status, purchase.invoice_id, purchase.invoice_number) == (
        "paid",
        invoice["id"],
        invoice["number"],
    )
    assert purchase.invoice_pdf_url == invoice["invoice_pdf"]
    assert purchase.hosted_invoice_url == invoice["hosted_invoice_url"]
    assert assert_ledger_balanced(owner) == 21_000


def test_the_billing_page_offers_the_invoice_and_the_link_leads_to_its_pdf(
    client, owner, fake_stripe, deliver, bought
):
    purchase = paid(fake_stripe, deliver, bought)

    page = client.get("/dashboard/billing/").content.decode()
    response = client.get(invoice_url(purchase))

    assert f'<a href="{invoice_url(purchase)}">Download invoice' in page
    assert response.status_code == 302
    assert (
        response["Location"] == fake_stripe.invoice_for(purchase.checkout_session_id)["invoice_pdf"]
    )
    # The link asked Stripe for the invoice's current link.
    assert fake_stripe.calls("GET", f"/v1/invoices/{purchase.invoice_id}")
    # The purchase's own page offers it too.
    own_page = client.get(f"/dashboard/billing/purchases/{purchase.public_id}/").content.decode()
    assert invoice_url(purchase) in own_page


def test_an_outsider_gets_404_for_someone_elses_invoice(
    client, owner, outsider, fake_stripe, deliver, bought
):
    purchase = paid(fake_stripe, deliver, bought)
    client.force_login(outsider)

    response = client.get(invoice_url(purchase))

    assert response.status_code == 404
    assert purchase.invoice_pdf_url not in response.content.decode()
    assert purchase.invoice_id not in client.get("/dashboard/billing/").content.decode()


def test_a_visitor_is_sent_to_log_in_for_an_invoice(client, owner, fake_stripe, deliver, bought):
    purchase = paid(fake_stripe, deliver, bought)
    client.logout()

    response = client.get(invoice_url(purchase))

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_a_purchase_without_an_invoice_has_no_invoice_page(client, owner, fake_stripe, bought):
    # Not paid yet: Stripe has made no invoice.
    assert client.get(invoice_url(bought)).status_code == 404


def test_the_invoice_link_falls_back_to_the_kept_one_when_stripe_is_down(
    client, owner, fake_stripe, deliver, bought
):
    purchase = paid(fake_stripe, deliver, bought)
    fake_stripe.fail_next("GET", "/v1/invoices/", status=500)

    response = client.get(invoice_url(purchase))

    assert response.status_code == 302
    assert response["Location"] == purchase.invoice_pdf_url


def test_the_download_never_leads_off_stripe_whatever_link_was_stored(
    client, owner, fake_stripe, deliver, bought
):
    purchase = paid(fake_stripe, deliver, bought)
    fake_stripe.fail_next("GET", "/v1/invoices/", status=500)  # the stored link is used
    Purchase.objects.filter(pk=purchase.pk).update(invoice_pdf_url="https://evil.example/x.pdf")

    response = client.get(invoice_url(purchase))

    assert (response.status_code, response["Location"]) == (302, "/dashboard/billing/")


@pytest.mark.parametrize(
    ("url", "ours"),
    [
        ("https://pay.stripe.com/invoice/acct_1/test_x/pdf", True),
        ("https://invoice.stripe.com/i/acct_1/x", True),
        ("http://pay.stripe.com/invoice/x", False),
        ("https://stripe.com.evil.example/x", False),
        ("https://evilstripe.com/x", False),
        ("javascript:alert(1)", False),
        ("", False),
    ],
)
def test_only_stripes_pages_are_stripes(url, ours, settings):
    settings.STRIPE_API_BASE = "https://api.stripe.com"
    assert invoices.is_stripes(url) is ours


def test_invoice_events_in_any_order_keep_the_invoice_once(
    client, owner, fake_stripe, deliver, bought
):
    # The invoice's own event comes before the session's: the metadata names the purchase.
    session = fake_stripe.pay(bought.checkout_session_id)
    invoice = fake_stripe.invoice(session["invoice"])
    paid_event = fake_stripe.event("invoice.paid", invoice)

    assert deliver(paid_event).json()["status"] == "processed"

    bought.refresh_from_db()
    assert (bought.status, bought.invoice_id, bought.invoice_pdf_url) == (
        "pending",
        invoice["id"],
        invoice["invoice_pdf"],
    )
    assert deliver(fake_stripe.event("checkout.session.completed", session)).status_code == 200
    assert deliver(fake_stripe.event("invoice.finalized", invoice)).status_code == 200
    assert deliver(paid_event).status_code == 200
    bought.refresh_from_db()
    assert (bought.status, bought.invoice_id, bought.invoice_number) == (
        "paid",
        invoice["id"],
        invoice["number"],
    )
    assert assert_ledger_balanced(owner) == 6000


def test_when_the_invoice_lookup_fails_the_event_or_the_periodic_task_fills_it(
    client, owner, fake_stripe, deliver, bought
):
    event = completed(fake_stripe, bought)
    fake_stripe.fail_next("GET", "/v1/invoices/", status=500)

    assert deliver(event).status_code == 200

    bought.refresh_from_db()
    assert bought.status == "paid"
    assert bought.invoice_id and not bought.invoice_pdf_url
    # Still offered: the link asks Stripe when it is followed.
    assert invoice_url(bought) in client.get("/dashboard/billing/").content.decode()
    assert tasks.fill_missing_receipts.apply().get() == 1
    bought.refresh_from_db()
    assert bought.invoice_pdf_url == fake_stripe.invoice(bought.invoice_id)["invoice_pdf"]
    calls = len(fake_stripe.requests)
    assert tasks.fill_missing_receipts.apply().get() == 0
    assert len(fake_stripe.requests) == calls


def test_an_invoice_of_no_purchase_of_ours_is_acknowledged_and_ignored(fake_stripe, deliver):
    stranger = {
        "id": "in_test_someone_else",
        "object": "invoice",
        "status": "paid",
        "metadata": {},
        "invoice_pdf": "https://example.com/x.pdf",
        "livemode": False,
    }

    response = deliver(fake_stripe.event("invoice.paid", stranger))

    assert response.json()["status"] == "ignored"
    assert StripeEvent.objects.get().error == "No purchase of this installation matches this event."


def test_an_invoice_naming_another_customer_is_refused(
    client, owner, outsider, fake_stripe, deliver, bought
):
    session = fake_stripe.pay(bought.checkout_session_id)
    invoice = fake_stripe.invoice(session["invoice"])
    invoice["metadata"]["account_id"] = str(outsider.personal_account.pk)
    invoice["metadata"]["user_id"] = str(outsider.pk)

    response = deliver(fake_stripe.event("invoice.paid", invoice))

    assert response.status_code == 500
    bought.refresh_from_db()
    assert bought.invoice_id == ""


def test_changed_details_update_the_customer_and_replace_its_tax_id(client, owner, fake_stripe):
    client.force_login(owner)
    save_details(client)
    profile = BillingProfile.objects.get(account__owner__personal_owner=owner)
    old_tax_id = profile.stripe_tax_id

    response = save_details(
        client,
        company_name="Acme Widgets Ltd",
        address_line1="1 High Street",
        address_line2="",
        city="London",
        postal_code="sw1a 1aa",
        country="GB",
        tax_id_type="gb_vat",
        tax_id_value="GB 123456789",
    )

    assert response.status_code == 302
    profile.refresh_from_db()
    customer = fake_stripe.customer(profile.stripe_customer_id)
    assert customer["name"] == "Acme Widgets Ltd"
    assert customer["address"]["line2"] is None  # cleared
    assert (customer["address"]["city"], customer["address"]["postal_code"]) == (
        "London",
        "SW1A 1AA",
    )
    assert [(t["type"], t["value"]) for t in customer["tax_ids"]["data"]] == [
        ("gb_vat", "GB123456789")
    ]
    assert profile.stripe_tax_id != old_tax_id
    assert len(fake_stripe.customers) == 1
    # Saving the same details again asks Stripe nothing.
    calls = len(fake_stripe.requests)
    save_details(
        client,
        **{k: getattr(profile, k) for k in ACME},
    )
    assert len(fake_stripe.requests) == calls


def test_removing_the_tax_id_removes_it_at_stripe(client, owner, fake_stripe):
    client.force_login(owner)
    save_details(client)

    save_details(client, tax_id_type="", tax_id_value="")

    profile = BillingProfile.objects.get(account__owner__personal_owner=owner)
    assert (profile.tax_id_type, profile.tax_id_value, profile.stripe_tax_id) == ("", "", "")
    assert fake_stripe.customer(profile.stripe_customer_id)["tax_ids"]["data"] == []


@pytest.mark.parametrize(
    ("changes", "field", "error"),
    [
        ({"company_name": ""}, "company_name", "This field is required."),
        ({"company_name": "x" * 151}, "company_name", "at most 150 characters"),
        ({"company_name": "Acme\x07Ltd"}, "company_name", "Use letters, digits and punctuation"),
        ({"address_line1": ""}, "address_line1", "This field is required."),
        ({"city": "y" * 101}, "city", "at most 100 characters"),
        ({"country": "XX"}, "country", "Select a valid choice."),
        ({"country": ""}, "country", "This field is required."),
        ({"postal_code": "10115; DROP"}, "postal_code", "Enter a postal code of letters"),
        (
            {"tax_id_value": "123456789"},
            "tax_id_value",
            "This does not look like a EU VAT number: it should look like DE123456789.",
        ),
        ({"tax_id_type": "xx_vat"}, "tax_id_type", "Select a valid choice."),
        ({"tax_id_type": ""}, "tax_id_type", "Choose the type of this tax id."),
        ({"tax_id_value": ""}, "tax_id_value", "Enter the tax id, or choose None as its type."),
        ({"tax_id_value": "9" * 65}, "tax_id_value", "at most 64 characters"),
        (
            {"tax_id_type": "us_ein", "tax_id_value": "123"},
            "tax_id_value",
            "it should look like 12-3456789.",
        ),
    ],
)
def test_bad_details_are_refused_with_a_clear_message_and_nothing_is_kept(
    client, owner, fake_stripe, changes, field, error
):
    client.force_login(owner)

    response = save_details(client, **changes)

    assert response.status_code == 400
    page = response.content.decode()
    assert error in page
    assert f'id="id_{field}"' in page
    assert fake_stripe.requests == []
    assert not BillingProfile.objects.exists()


def test_a_tax_id_stripe_refuses_is_refused_and_nothing_changes(client, owner, fake_stripe):
    client.force_login(owner)
    save_details(client)
    profile = BillingProfile.objects.get(account__owner__personal_owner=owner)

    # A shape our form lets through but Stripe's own check does not.
    response = save_details(client, company_name="Renamed", tax_id_value="DE12")

    assert response.status_code == 400
    assert "Stripe did not accept this tax id for the type chosen" in response.content.decode()
    profile.refresh_from_db()
    assert (profile.company_name, profile.tax_id_value) == ("Acme Widgets GmbH", "DE123456789")
    customer = fake_stripe.customer(profile.stripe_customer_id)
    assert customer["name"] == "Acme Widgets GmbH"
    assert [t["value"] for t in customer["tax_ids"]["data"]] == ["DE123456789"]


def test_details_saved_while_stripe_is_down_reach_it_before_the_next_payment(
    client, owner, fake_stripe
):
    client.force_login(owner)
    fake_stripe.fail_next("POST", "/v1/customers", status=500)

    response = save_details(client)

    assert response.status_code == 302
    page = client.get("/dashboard/billing/").content.decode()
    assert "Stripe could not be reached just now" in page
    profile = BillingProfile.objects.get(account__owner__personal_owner=owner)
    assert (profile.company_name, profile.stripe_customer_id) == ("Acme Widgets GmbH", "")

    assert buy(client, pack="500").status_code == 303

    profile.refresh_from_db()
    customer = fake_stripe.customer(profile.stripe_customer_id)
    assert customer["name"] == "Acme Widgets GmbH"
    assert fake_stripe.only_session()["customer"] == customer["id"]


def test_a_first_payment_without_details_makes_a_customer_with_the_email(
    client, owner, fake_stripe
):
    client.force_login(owner)

    buy(client, pack="500")

    [customer] = fake_stripe.customers.values()
    assert (customer["email"], customer["name"], customer["address"]) == (owner.email, None, None)
    # A second payment uses the same Customer, and asks nothing more of it.
    buy(client, pack="500")
    assert len(fake_stripe.calls("POST", "/v1/customers")) == 1
    assert {s["customer"] for s in fake_stripe.sessions.values()} == {customer["id"]}


def test_when_the_customer_cannot_be_made_nothing_is_started(client, owner, fake_stripe):
    client.force_login(owner)
    fake_stripe.fail_next("POST", "/v1/customers", status=500)

    response = buy(client, pack="500")

    assert response.status_code == 502
    assert "nothing was charged" in response.content.decode()
    assert not fake_stripe.sessions
    assert not Purchase.objects.exists()


def test_without_card_payments_details_are_kept_for_later(client, owner):
    client.force_login(owner)

    response = save_details(client)

    assert response.status_code == 302
    profile = BillingProfile.objects.get(account__owner__personal_owner=owner)
    assert (profile.company_name, profile.stripe_customer_id) == ("Acme Widgets GmbH", "")
    assert "Billing details saved" in client.get("/dashboard/billing/").content.decode()


def test_the_details_form_needs_a_csrf_token_and_a_signed_in_customer(owner, fake_stripe):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert save_details(client).status_code == 403
    anonymous = Client()
    response = save_details(anonymous)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert fake_stripe.requests == []
    assert not BillingProfile.objects.exists()


def test_closing_the_account_redacts_its_invoice_events(
    client, owner, fake_stripe, deliver, bought
):
    client.force_login(owner)
    save_details(client)
    session = fake_stripe.pay(bought.checkout_session_id)
    deliver(fake_stripe.event("checkout.session.completed", session))
    deliver(fake_stripe.event("invoice.paid", fake_stripe.invoice(session["invoice"])))

    response = client.post("/dashboard/account/close/", {"confirmation": "pw"})

    assert response.status_code == 302
    stored = StripeEvent.objects.get(type="invoice.paid").payload["data"]["object"]
    text = json.dumps(stored)
    for personal in ("Acme", "Hauptstra", "DE123456789", owner.email):
        assert personal not in text, personal
    assert stored["customer_address"] == REDACTED
    assert stored["customer_tax_ids"] == REDACTED
    # What the books need stays.
    assert stored["id"] == session["invoice"]
    assert stored["metadata"]["purchase_id"] == str(bought.public_id)


def test_an_account_cannot_save_its_details_without_end(client, owner, fake_stripe, monkeypatch):
    monkeypatch.setattr("billing.views.DETAILS_SAVES_PER_HOUR", 2)
    client.force_login(owner)
    saved = [save_details(client, city=city).status_code for city in ("Berlin", "Bonn")]

    refused = save_details(client, city="Köln")

    assert saved == [302, 302]
    assert refused.status_code == 429
    assert "saved your billing details many times this hour" in refused.content.decode()
    assert BillingProfile.objects.get().city == "Bonn"
    assert (
        fake_stripe.customer(BillingProfile.objects.get().stripe_customer_id)["address"]["city"]
        == "Bonn"
    )
