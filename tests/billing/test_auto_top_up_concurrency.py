"""Automatic top-up raced on real connections (PostgreSQL): tasks of one crossing running at the
same moment charge the card once (one invoice, paid once), and the webhook delivered at the same
moment (the invoice's ``invoice.paid`` and its PaymentIntent's event, each twice) credits once.

Each thread has its own connection, so these tests commit for real (transactional_db).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.test import Client

from billing import auto_top_up, services, tasks
from billing.models import CreditAccount, Purchase, StripeEvent
from tests.support.concurrency import run_at_once
from tests.support.fake_stripe import FakeStripe
from tests.support.money import assert_ledger_balanced, ledger_kinds

from .conftest import signed_post

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def armed(owner: Any, fake_stripe: FakeStripe) -> CreditAccount:
    """Below 5,000 credits buy $20.00, with a card saved in a $5.00 payment: 6,000 credits,
    then a request held 1,500 of them (below the threshold)."""
    client = Client()
    client.force_login(owner)
    client.post("/dashboard/billing/auto-top-up/", {"threshold_credits": 5000, "amount": "20"})
    client.post("/dashboard/billing/buy/", {"pack": "500", "save_card": "on"})
    session = fake_stripe.pay(str(Purchase.objects.get().checkout_session_id))
    assert signed_post(Client(), fake_stripe.event("checkout.session.completed", session))
    services.hold(
        owner.personal_account.pk, {"held_credits": 1500}, reference="gen:1", description="held"
    )
    account = CreditAccount.objects.get(owner__personal_owner=owner)
    assert account.auto_top_up_enabled and account.balance_credits == 4500
    return account


def test_tasks_of_one_crossing_at_the_same_moment_charge_once(owner, fake_stripe, armed):
    results = run_at_once(4, lambda i: tasks.auto_top_up.apply(args=[armed.pk]).get())

    assert sorted(results) == ["charged", "nothing", "nothing", "nothing"], results
    pays = [r for r in fake_stripe.requests if r.path.endswith("/pay")]
    assert len(pays) == 1
    purchase = Purchase.objects.get(kind="auto")
    assert purchase.status == "pending"
    assert len([i for i in fake_stripe.invoices.values() if i["id"] == purchase.invoice_id]) == 1

    intent = fake_stripe.event(
        "payment_intent.succeeded", fake_stripe.payment_intent(purchase.payment_intent_id)
    )
    invoice = fake_stripe.event("invoice.paid", fake_stripe.invoice(purchase.invoice_id))
    # Each event twice, and the invoice's and its PaymentIntent's at the same moment.
    events = [intent, invoice, intent, invoice]
    delivered = run_at_once(4, lambda i: signed_post(Client(), events[i]).status_code)

    assert delivered == [200, 200, 200, 200]
    assert StripeEvent.objects.get(type="payment_intent.succeeded").status == "processed"
    assert StripeEvent.objects.get(type="invoice.paid").status == "processed"
    purchase.refresh_from_db()
    assert purchase.status == "paid"
    assert [k for k, _ in ledger_kinds(owner)].count("top_up") == 2
    assert assert_ledger_balanced(owner) == 4500 + 20_000


def test_a_decline_seen_by_the_api_and_the_webhook_at_once_emails_once(owner, fake_stripe, armed):
    fake_stripe.decline_later(armed.auto_top_up_payment_method_id)
    assert tasks.auto_top_up.apply(args=[armed.pk]).get() == "declined"
    purchase = Purchase.objects.get(kind="auto")
    event = fake_stripe.event(
        "payment_intent.payment_failed", fake_stripe.payment_intent(purchase.payment_intent_id)
    )
    card = armed.auto_top_up_payment_method_id
    # Back to the moment before the decline was recorded: the API's answer and Stripe's event
    # now race to record it.
    CreditAccount.objects.filter(pk=armed.pk).update(
        auto_top_up_enabled=True, auto_top_up_payment_method_id=card
    )
    Purchase.objects.filter(pk=purchase.pk).update(status="pending")
    mail.outbox.clear()

    def either(i: int) -> Any:
        if i % 2:
            return signed_post(Client(), event).status_code
        return auto_top_up.declined(purchase, payment_method_id=card, reason="No.")

    results = run_at_once(4, either)

    assert sorted(map(str, results)).count("200") == 2, results
    assert len(mail.outbox) == 1
    account = CreditAccount.objects.get(pk=armed.pk)
    assert (account.auto_top_up_enabled, account.auto_top_up_payment_method_id) == (False, "")
    assert assert_ledger_balanced(owner) == 4500
