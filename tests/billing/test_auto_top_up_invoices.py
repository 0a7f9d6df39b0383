"""Automatic top-ups are charged through a Stripe invoice made out with the company details the
customer entered, like Checkout payments: one invoice and one charge per top-up whatever is
asked again, credited once by whichever of ``invoice.paid`` and its PaymentIntent's
``payment_intent.succeeded`` comes first, and offered for download on the billing page."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.db import transaction
from django.test import Client
from django.utils import timezone

from billing import auto_top_up, stripe_client, tasks
from billing.models import BillingProfile, CreditAccount, Purchase, StripeEvent
from billing.redaction import REDACTED
from tests.support.fake_stripe import FakeStripe
from tests.support.money import assert_ledger_balanced, balance, ledger_kinds

from .test_auto_top_up import buy_and_save_card, charges, configure, posts, run_task, spend
from .test_stripe_invoices import invoice_url, save_details

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks: Any) -> Any:
    """``with on_commit():`` runs what waits for the commit (the decline's email)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def acme(client: Client, owner: Any, fake_stripe: FakeStripe, deliver: Any) -> CreditAccount:
    """The owner entered Acme's billing details, set "below 5,000 credits, buy $20.00" and
    bought $5.00 with the card saved: 6,000 credits, automatic top-up on."""
    client.force_login(owner)
    assert save_details(client).status_code == 302
    assert configure(client).status_code == 302
    buy_and_save_card(client, fake_stripe, deliver)
    account = CreditAccount.objects.get(owner__personal_owner=owner)
    assert account.auto_top_up_enabled
    return account


def auto_purchase() -> Purchase:
    return Purchase.objects.get(kind="auto")


def auto_invoices(fake_stripe: FakeStripe) -> list[dict[str, Any]]:
    return [i for i in fake_stripe.invoices.values() if i["metadata"].get("kind") == "auto"]


@pytest.mark.parametrize(
    "order",
    [
        ("invoice.paid", "payment_intent.succeeded"),
        ("payment_intent.succeeded", "invoice.paid"),
    ],
)
def test_an_auto_top_up_is_invoiced_to_the_company_and_credited_once_by_either_event(
    client, owner, fake_stripe, deliver, acme, order
):
    spend(owner, 1500)  # 4,500 credits: below 5,000

    assert run_task(acme) == "charged"

    purchase = auto_purchase()
    [invoice] = auto_invoices(fake_stripe)
    assert invoice["id"] == purchase.invoice_id
    # Made out as the customer entered their details.
    customer_id = BillingProfile.objects.get(account=acme).stripe_customer_id
    assert invoice["customer"] == customer_id
    assert invoice["customer_name"] == "Acme Widgets GmbH"
    assert (invoice["customer_address"]["line1"], invoice["customer_address"]["city"]) == (
        "Hauptstraße 5",
        "Berlin",
    )
    assert invoice["customer_tax_ids"] == [{"type": "eu_vat", "value": "DE123456789"}]
    assert (invoice["status"], invoice["amount_paid"], invoice["currency"]) == ("paid", 2000, "usd")
    assert invoice["metadata"] == {
        "purchase_id": str(purchase.public_id),
        "account_id": str(owner.personal_account.pk),
        "credits": "20000",
        "kind": "auto",
    }
    [line] = invoice["lines"]["data"]
    assert (line["amount"], line["description"]) == (
        2000,
        "Automatic top-up: 20,000 credits ($20.00)",
    )
    # Charged, not credited: the invoice's number and links are kept already.
    assert (purchase.status, purchase.credited_at) == ("pending", None)
    assert purchase.invoice_number == invoice["number"]
    assert purchase.invoice_pdf_url == invoice["invoice_pdf"]
    assert purchase.hosted_invoice_url == invoice["hosted_invoice_url"]
    intent = fake_stripe.invoice_payment_intent(invoice["id"])
    assert purchase.payment_intent_id == intent["id"]
    assert intent["metadata"] == {}  # Stripe copies none of the invoice's onto it

    events = {
        "invoice.paid": fake_stripe.event("invoice.paid", fake_stripe.invoice(invoice["id"])),
        "payment_intent.succeeded": fake_stripe.event("payment_intent.succeeded", intent),
    }
    for kind in order + order:
        assert deliver(events[kind]).status_code == 200
        # A second event of each kind (another id), as Stripe may send.
        again = fake_stripe.event(kind, events[kind]["data"]["object"])
        assert deliver(again).status_code == 200

    purchase.refresh_from_db()
    assert purchase.status == "paid"
    assert [k for k, _ in ledger_kinds(owner)].count("top_up") == 2  # the Checkout one, this one
    assert balance(owner) == 4500 + 20_000
    assert assert_ledger_balanced(owner) == 4500 + 20_000
    assert not StripeEvent.objects.filter(status="failed").exists()
    page = client.get("/dashboard/billing/").content.decode()
    assert "Automatic top-up of $20.00" in page
    assert f'href="{invoice_url(purchase)}"' in page
    assert page.count("Download invoice") == 2  # the Checkout payment's and this one
    response = client.get(invoice_url(purchase))
    assert (response.status_code, response["Location"]) == (302, invoice["invoice_pdf"])


class WorkerDied(Exception):
    pass


def test_the_task_twice_and_the_sweep_after_a_lost_worker_make_one_invoice_and_one_charge(
    owner, fake_stripe, deliver, acme
):
    spend(owner, 1500)
    purchase = auto_top_up.start(acme.pk)
    assert purchase is not None
    # The worker made the invoice and charged it, then died before anything it kept was
    # committed: the purchase knows no invoice.
    with pytest.raises(WorkerDied), transaction.atomic():
        assert auto_top_up.submit(purchase.pk) == "charged"
        raise WorkerDied
    purchase.refresh_from_db()
    assert (purchase.status, purchase.invoice_id, purchase.payment_intent_id) == ("pending", "", "")

    assert run_task(acme) == "nothing"  # a repeat of the task finds it in flight
    assert auto_top_up.sweep(timezone.now() + timedelta(minutes=6)) == 1
    assert run_task(acme) == "nothing"
    assert auto_top_up.sweep(timezone.now() + timedelta(minutes=12)) == 0

    purchase.refresh_from_db()
    [invoice] = auto_invoices(fake_stripe)
    assert purchase.invoice_id == invoice["id"]
    assert len(invoice["lines"]["data"]) == 1
    intent = fake_stripe.invoice_payment_intent(invoice["id"])
    assert purchase.payment_intent_id == intent["id"]
    # The sweep's calls were answered again (the same keys), not made anew.
    assert len(posts(fake_stripe, "/v1/invoices")) == 2
    assert len(fake_stripe.invoice_items) == 1
    paid = [c for c in fake_stripe.charges.values() if c["payment_intent"] == intent["id"]]
    assert len(paid) == 1
    deliver(fake_stripe.event("invoice.paid", fake_stripe.invoice(invoice["id"])))
    deliver(fake_stripe.event("payment_intent.succeeded", intent))
    assert assert_ledger_balanced(owner) == 4500 + 20_000


def test_running_the_task_twice_and_sweeping_charges_one_invoice_once(
    owner, fake_stripe, deliver, acme
):
    spend(owner, 1500)
    purchase = auto_top_up.start(acme.pk)
    assert purchase is not None
    # The worker died after making the invoice, before charging it.
    fake_stripe.fail_next("POST", "/v1/invoiceitems", status=500)
    with pytest.raises(stripe_client.StripeUnavailable):
        auto_top_up.submit(purchase.pk)
    purchase.refresh_from_db()
    assert (purchase.status, purchase.payment_intent_id) == ("pending", "")
    invoice_id = purchase.invoice_id
    assert invoice_id

    assert run_task(acme) == "nothing"  # in flight
    assert auto_top_up.sweep(timezone.now() + timedelta(minutes=6)) == 1
    assert auto_top_up.sweep(timezone.now() + timedelta(minutes=12)) == 0
    assert auto_top_up.submit(purchase.pk) == "nothing"
    assert run_task(acme) == "nothing"

    purchase.refresh_from_db()
    assert purchase.invoice_id == invoice_id
    [invoice] = auto_invoices(fake_stripe)
    assert (invoice["id"], invoice["status"]) == (invoice_id, "paid")
    assert len(invoice["lines"]["data"]) == 1
    assert len(posts(fake_stripe, "/v1/invoices")) == 1
    assert len(charges(fake_stripe)) == 1
    deliver(fake_stripe.event("invoice.paid", fake_stripe.invoice(invoice_id)))
    assert assert_ledger_balanced(owner) == 4500 + 20_000


def test_a_decline_on_pay_stops_auto_top_up_and_emails_once(
    client, owner, fake_stripe, deliver, acme, on_commit
):
    fake_stripe.decline_later(acme.auto_top_up_payment_method_id)
    spend(owner, 1500)

    with on_commit():
        assert run_task(acme) == "declined"

    purchase = auto_purchase()
    assert (purchase.status, purchase.failure_reason) == (
        "failed",
        "Your card has insufficient funds.",
    )
    [invoice] = auto_invoices(fake_stripe)
    # Finalized, declined, then voided: it never stands as an amount the customer owes.
    assert (invoice["status"], invoice["amount_paid"]) == ("void", 0)
    [void] = posts(fake_stripe, f"/v1/invoices/{invoice['id']}/void")
    assert void.headers["idempotency-key"] == f"auto-top-up-{purchase.public_id}-void"
    intent = fake_stripe.invoice_payment_intent(invoice["id"])
    assert purchase.payment_intent_id == intent["id"]
    account = CreditAccount.objects.get(owner__personal_owner=owner)
    assert (account.auto_top_up_enabled, account.auto_top_up_payment_method_id) == (False, "")
    assert len(mail.outbox) == 1

    # Stripe's events of the same decline, each twice, change nothing and email nobody again.
    with on_commit():
        for event in (
            fake_stripe.event("invoice.payment_failed", fake_stripe.invoice(invoice["id"])),
            fake_stripe.event("payment_intent.payment_failed", intent),
        ):
            assert deliver(event).status_code == deliver(event).status_code == 200
    assert len(mail.outbox) == 1
    assert auto_top_up.sweep(timezone.now() + timedelta(minutes=6)) == 0
    assert auto_top_up.submit(purchase.pk) == "nothing"
    assert len(charges(fake_stripe)) == 1
    assert balance(owner) == 4500
    # The voided invoice is not offered for download.
    client.force_login(owner)
    page = client.get("/dashboard/billing/").content.decode()
    assert f"/dashboard/billing/purchases/{purchase.public_id}/invoice/" not in page
    download = client.get(f"/dashboard/billing/purchases/{purchase.public_id}/invoice/")
    assert download.status_code == 404


def test_stripe_down_then_back_continues_the_same_invoice(owner, fake_stripe, deliver, acme):
    spend(owner, 1500)
    purchase = auto_top_up.start(acme.pk)
    assert purchase is not None
    key = f"auto-top-up-{purchase.public_id}"
    fake_stripe.fail_next("POST", "/v1/invoiceitems", status=500)
    with pytest.raises(stripe_client.StripeUnavailable):
        auto_top_up.submit(purchase.pk)
    purchase.refresh_from_db()
    invoice_id = purchase.invoice_id
    fake_stripe.fail_next("POST", f"/v1/invoices/{invoice_id}/pay", status=500)
    with pytest.raises(stripe_client.StripeUnavailable):
        auto_top_up.submit(purchase.pk)

    assert tasks.submit_auto_top_up.apply(args=[purchase.pk]).get() == "charged"

    purchase.refresh_from_db()
    assert (purchase.status, purchase.invoice_id) == ("pending", invoice_id)
    [invoice] = auto_invoices(fake_stripe)
    assert (invoice["id"], invoice["status"], len(invoice["lines"]["data"])) == (
        invoice_id,
        "paid",
        1,
    )
    # Every attempt of each call carried the same key.
    assert {c.headers["idempotency-key"] for c in posts(fake_stripe, "/v1/invoices")} == {
        f"{key}-invoice"
    }
    assert {c.headers["idempotency-key"] for c in posts(fake_stripe, "/v1/invoiceitems")} == {
        f"{key}-item"
    }
    assert {c.headers["idempotency-key"] for c in charges(fake_stripe)} == {f"{key}-pay"}
    assert len(charges(fake_stripe)) == 2  # one failed before reaching the card
    intent = fake_stripe.invoice_payment_intent(invoice_id)
    assert intent["status"] == "succeeded"
    deliver(fake_stripe.event("payment_intent.succeeded", intent))
    assert assert_ledger_balanced(owner) == 4500 + 20_000


def test_an_invoice_paid_event_that_does_not_match_its_top_up_credits_nothing(
    owner, outsider, fake_stripe, deliver, acme
):
    spend(owner, 1500)
    run_task(acme)
    purchase = auto_purchase()
    other = fake_stripe.invoice(purchase.invoice_id)
    other["metadata"]["account_id"] = str(outsider.personal_account.pk)
    short = fake_stripe.invoice(purchase.invoice_id)
    short["amount_paid"] = 500

    assert deliver(fake_stripe.event("invoice.paid", other)).status_code == 500
    assert deliver(fake_stripe.event("invoice.paid", short)).status_code == 500

    assert StripeEvent.objects.filter(status="failed").count() == 2
    assert balance(owner) == 4500


def test_closing_the_account_redacts_its_top_up_invoice_events(
    client, owner, fake_stripe, deliver, acme
):
    spend(owner, 1500)
    run_task(acme)
    purchase = auto_purchase()
    deliver(fake_stripe.event("invoice.paid", fake_stripe.invoice(purchase.invoice_id)))

    assert client.post("/dashboard/account/close/", {"confirmation": "pw"}).status_code == 302

    stored = StripeEvent.objects.get(type="invoice.paid").payload["data"]["object"]
    text = json.dumps(stored)
    for personal in ("Acme", "Hauptstra", "DE123456789", owner.email):
        assert personal not in text, personal
    assert (stored["customer_address"], stored["customer_tax_ids"]) == (REDACTED, REDACTED)
    assert stored["metadata"]["purchase_id"] == str(purchase.public_id)
