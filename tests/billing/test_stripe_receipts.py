"""A paid purchase is credited whatever happens to the second call to Stripe (the receipt): the
credit is committed first, the receipt fetched best effort, and a periodic task fetches the
ones that failed."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.conf import settings as conf
from django.utils import timezone

from billing import tasks
from billing.models import Purchase, StripeEvent
from config.celery import app
from tests.support.money import assert_ledger_balanced, ledger_kinds

from .conftest import SECRET_KEY, WEBHOOK_SECRET, completed, paid

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]

CHARGE_LOOKUP = "/v1/payment_intents/"


def test_a_paid_purchase_is_credited_when_the_receipt_lookup_fails(
    client, owner, fake_stripe, deliver, bought, caplog
):
    event = completed(fake_stripe, bought)
    fake_stripe.fail_next("GET", CHARGE_LOOKUP, status=500, message="Stripe is down")

    response = deliver(event)

    assert response.status_code == 200
    assert response.json() == {"received": True, "status": "processed"}
    assert len(fake_stripe.calls("GET", CHARGE_LOOKUP)) == 1
    stored = StripeEvent.objects.get()
    assert (stored.status, stored.error, stored.attempts) == ("processed", "", 1)
    bought.refresh_from_db()
    assert (bought.status, bought.receipt_url, bought.charge_id) == ("paid", "", "")
    assert ledger_kinds(owner) == [("grant", 1000), ("top_up", 5000)]
    assert assert_ledger_balanced(owner) == 6000
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "is credited; its receipt is fetched later" in warning.getMessage()
    for secret in (SECRET_KEY, WEBHOOK_SECRET):
        assert secret not in caplog.text
    # The customer sees the credits at once; the receipt link comes later.
    page = client.get("/dashboard/billing/").content.decode()
    assert '<span class="badge success">Paid</span>' in page
    assert "/receipts/" not in page


def test_a_redelivery_after_the_failed_lookup_changes_nothing(owner, fake_stripe, deliver, bought):
    event = completed(fake_stripe, bought)
    fake_stripe.fail_next("GET", CHARGE_LOOKUP, status=500)
    deliver(event)

    assert deliver(event).status_code == 200

    assert StripeEvent.objects.get().attempts == 1
    assert assert_ledger_balanced(owner) == 6000


def test_the_periodic_task_fills_the_receipt_later(client, owner, fake_stripe, deliver, bought):
    fake_stripe.fail_next("GET", CHARGE_LOOKUP, status=500)
    deliver(completed(fake_stripe, bought))

    filled = tasks.fill_missing_receipts.apply().get()

    assert filled == 1
    bought.refresh_from_db()
    charge = fake_stripe.charge_for(bought.checkout_session_id)
    assert (bought.charge_id, bought.receipt_url) == (charge["id"], charge["receipt_url"])
    assert charge["receipt_url"] in client.get("/dashboard/billing/").content.decode()
    # Nothing left to fetch: the next run asks Stripe nothing.
    calls = len(fake_stripe.requests)
    assert tasks.fill_missing_receipts.apply().get() == 0
    assert len(fake_stripe.requests) == calls
    assert assert_ledger_balanced(owner) == 6000


def test_the_task_stops_at_the_first_failure_and_tries_again_on_its_next_run(
    client, owner, fake_stripe, deliver, bought, caplog
):
    client.post("/dashboard/billing/buy/", {"pack": "2000"})
    second = Purchase.objects.exclude(pk=bought.pk).get()
    for purchase in (bought, second):
        fake_stripe.fail_next("GET", CHARGE_LOOKUP, status=500)
        deliver(completed(fake_stripe, purchase))
    caplog.clear()
    fake_stripe.fail_next("GET", CHARGE_LOOKUP, status=500, message="still down")

    assert tasks.fill_missing_receipts.apply().get() == 0

    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "still down" in warning.getMessage()
    assert Purchase.objects.filter(receipt_url="").count() == 2
    assert tasks.fill_missing_receipts.apply().get() == 2
    assert not Purchase.objects.filter(receipt_url="").exists()
    assert assert_ledger_balanced(owner) == 1000 + 5000 + 20_000


def test_the_task_leaves_old_and_unpaid_purchases_alone(
    client, owner, fake_stripe, deliver, bought
):
    fake_stripe.fail_next("GET", CHARGE_LOOKUP, status=500)
    paid(fake_stripe, deliver, bought)
    Purchase.objects.filter(pk=bought.pk).update(credited_at=timezone.now() - timedelta(days=8))
    # A bank debit still clearing: its PaymentIntent is known, nothing is credited yet.
    client.post("/dashboard/billing/buy/", {"pack": "2000"})
    clearing = Purchase.objects.exclude(pk=bought.pk).get()
    deliver(completed(fake_stripe, clearing, asynchronous=True))
    clearing.refresh_from_db()
    assert clearing.payment_intent_id and clearing.credited_at is None
    calls = len(fake_stripe.requests)

    assert tasks.fill_missing_receipts.apply().get() == 0

    assert len(fake_stripe.requests) == calls


def test_without_card_payments_the_task_does_nothing(settings):
    settings.STRIPE_SECRET_KEY = ""

    assert tasks.fill_missing_receipts.apply().get() == 0


def test_the_task_runs_on_the_beat_schedule():
    schedule = conf.CELERY_BEAT_SCHEDULE["fill-missing-receipts"]

    assert schedule["task"] == "billing.tasks.fill_missing_receipts"
    app.loader.import_default_modules()
    assert schedule["task"] in app.tasks
