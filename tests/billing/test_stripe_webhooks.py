"""Stripe's webhook: signed events credit a purchase once, mark the ones that did not go through,
and take credits back after refunds and disputes."""

from __future__ import annotations

import json
import time

import pytest

from billing import services
from billing.models import CreditAccount, DebtEntry, LedgerEntry, Purchase, StripeEvent
from tests.support.money import assert_ledger_balanced, ledger_kinds, ledger_rows

from .conftest import completed, paid

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]


def test_the_whole_purchase_end_to_end(client, owner, fake_stripe, deliver, bought):
    session_id = bought.checkout_session_id
    event = completed(fake_stripe, bought)

    response = deliver(event)

    assert response.status_code == 200
    assert response.json() == {"received": True, "status": "processed"}
    bought.refresh_from_db()
    assert bought.status == "paid"
    assert bought.credited_at is not None
    assert bought.payment_intent_id == fake_stripe.sessions[session_id]["payment_intent"]
    charge = fake_stripe.charge_for(session_id)
    assert bought.charge_id == charge["id"]
    assert bought.receipt_url == charge["receipt_url"]
    assert ledger_rows(owner, f"purchase:{bought.public_id}") == [("top_up", 5000, 6000)]
    entry = LedgerEntry.objects.get(kind="top_up")
    assert entry.idempotency_key == f"stripe:{session_id}:credit"
    assert entry.description == "Card payment of $5.00"
    assert assert_ledger_balanced(owner) == 6000
    stored = StripeEvent.objects.get()
    assert (stored.id, stored.type, stored.status, stored.error) == (
        event["id"],
        "checkout.session.completed",
        "processed",
        "",
    )
    assert stored.payload == event

    success = client.get(
        f"/dashboard/billing/purchases/{bought.public_id}/?session_id={session_id}"
    )
    page = success.content.decode()
    assert "Payment received: <strong>5,000 credits</strong> were added" in page
    assert "Your balance is now <strong>6,000 credits</strong>" in page
    assert "data-poll-url" not in page

    billing = client.get("/dashboard/billing/").content.decode()
    assert "6,000 credits" in billing
    assert "Card payment of $5.00" in billing
    assert charge["receipt_url"] in billing
    assert '<span class="badge success">Paid</span>' in billing


def test_a_webhook_credits_even_if_the_customer_never_comes_back(
    owner, fake_stripe, deliver, bought
):
    # No success page visit at all: the webhook alone credits.
    paid(fake_stripe, deliver, bought)
    assert assert_ledger_balanced(owner) == 6000


@pytest.mark.parametrize(
    "signature",
    [
        "",  # missing
        "t=1700000000",  # no v1
        "garbage",
        "t=abc,v1=00",
    ],
)
def test_a_missing_or_malformed_signature_is_refused_and_changes_nothing(
    owner, fake_stripe, deliver, bought, signature
):
    response = deliver(completed(fake_stripe, bought), signature=signature)

    assert response.status_code == 400
    assert not StripeEvent.objects.exists()
    assert assert_ledger_balanced(owner) == 1000


def test_a_signature_made_with_another_secret_is_refused(owner, fake_stripe, deliver, bought):
    response = deliver(completed(fake_stripe, bought), secret="whsec_someone_else")

    assert response.status_code == 400
    assert "Invalid signature" in response.json()["error"]
    assert not StripeEvent.objects.exists()
    assert assert_ledger_balanced(owner) == 1000


def test_a_stale_signature_is_refused(owner, fake_stripe, deliver, bought):
    response = deliver(completed(fake_stripe, bought), timestamp=int(time.time()) - 301)

    assert response.status_code == 400
    assert "tolerance" in response.json()["error"]
    assert not StripeEvent.objects.exists()
    assert assert_ledger_balanced(owner) == 1000


def test_a_tampered_body_is_refused(owner, fake_stripe, deliver, bought):
    from tests.support.fake_stripe import sign

    from .conftest import WEBHOOK_SECRET

    event = completed(fake_stripe, bought)
    header = sign(json.dumps(event), WEBHOOK_SECRET)
    event["data"]["object"]["amount_total"] = 1

    response = deliver(event, signature=header)

    assert response.status_code == 400
    assert not StripeEvent.objects.exists()
    assert assert_ledger_balanced(owner) == 1000


def test_the_webhook_accepts_only_post(client, fake_stripe):
    assert client.get("/stripe/webhook/").status_code == 405


def test_without_stripe_keys_the_webhook_says_so(owner, fake_stripe, deliver, bought, settings):
    event = completed(fake_stripe, bought)
    settings.STRIPE_WEBHOOK_SECRET = ""

    response = deliver(event)

    assert response.status_code == 503
    assert "not set up" in response.json()["error"]
    assert not StripeEvent.objects.exists()


def test_the_same_event_twice_credits_once(owner, fake_stripe, deliver, bought):
    event = completed(fake_stripe, bought)

    first, second = deliver(event), deliver(event)

    assert (first.status_code, second.status_code) == (200, 200)
    assert StripeEvent.objects.count() == 1
    assert ledger_kinds(owner) == [("grant", 1000), ("top_up", 5000)]
    assert assert_ledger_balanced(owner) == 6000


def test_two_events_for_one_payment_credit_once(owner, fake_stripe, deliver, bought):
    # Two distinct events (two ids) that both say the session is paid: the ledger key is the
    # session's, so the second finds the work done.
    session = fake_stripe.pay(bought.checkout_session_id)
    assert deliver(fake_stripe.event("checkout.session.completed", session)).status_code == 200
    again = fake_stripe.event("checkout.session.async_payment_succeeded", session)
    assert deliver(again).status_code == 200

    assert StripeEvent.objects.filter(status="processed").count() == 2
    assert assert_ledger_balanced(owner) == 6000


def test_an_asynchronous_payment_is_credited_when_it_succeeds(
    client, owner, fake_stripe, deliver, bought
):
    session = fake_stripe.pay(bought.checkout_session_id, asynchronous=True)
    assert deliver(fake_stripe.event("checkout.session.completed", session)).status_code == 200

    bought.refresh_from_db()
    assert bought.status == "pending"
    assert bought.payment_intent_id == session["payment_intent"]
    assert assert_ledger_balanced(owner) == 1000

    cleared = fake_stripe.settle(bought.checkout_session_id)
    event = fake_stripe.event("checkout.session.async_payment_succeeded", cleared)
    assert deliver(event).status_code == 200

    bought.refresh_from_db()
    assert bought.status == "paid"
    assert bought.receipt_url
    assert assert_ledger_balanced(owner) == 6000


def test_an_asynchronous_payment_that_fails_marks_the_purchase(
    client, owner, fake_stripe, deliver, bought
):
    session = fake_stripe.pay(bought.checkout_session_id, asynchronous=True)
    deliver(fake_stripe.event("checkout.session.completed", session))
    failed = fake_stripe.settle(bought.checkout_session_id, succeeded=False)

    assert (
        deliver(fake_stripe.event("checkout.session.async_payment_failed", failed)).status_code
        == 200
    )

    bought.refresh_from_db()
    assert bought.status == "failed"
    assert assert_ledger_balanced(owner) == 1000
    page = client.get(f"/dashboard/billing/purchases/{bought.public_id}/").content.decode()
    assert "The payment did not go through. Nothing was charged." in page


def test_an_expired_session_marks_the_purchase(client, owner, fake_stripe, deliver, bought):
    event = fake_stripe.event(
        "checkout.session.expired", fake_stripe.expire(bought.checkout_session_id)
    )

    assert deliver(event).status_code == 200

    bought.refresh_from_db()
    assert bought.status == "expired"
    assert assert_ledger_balanced(owner) == 1000
    billing = client.get("/dashboard/billing/").content.decode()
    assert '<span class="badge warning">Expired</span>' in billing


def test_a_late_expiry_never_undoes_a_payment(owner, fake_stripe, deliver, bought):
    paid(fake_stripe, deliver, bought)
    session = dict(fake_stripe.sessions[bought.checkout_session_id], status="expired")
    session.pop("payment_intent_data_metadata")

    assert deliver(fake_stripe.event("checkout.session.expired", session)).status_code == 200

    bought.refresh_from_db()
    assert bought.status == "paid"


def test_an_unknown_event_type_is_stored_and_acknowledged(fake_stripe, deliver):
    event = fake_stripe.event("customer.created", {"id": "cus_123", "object": "customer"})

    response = deliver(event)

    assert response.status_code == 200
    assert StripeEvent.objects.get(pk=event["id"]).status == "ignored"


def test_a_session_of_another_integration_is_ignored(owner, fake_stripe, deliver):
    # Payment Links or another app on the same Stripe account: not ours, nothing to retry.
    session = {
        "id": "cs_test_other",
        "object": "checkout.session",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": 500,
        "currency": "usd",
        "metadata": {},
        "client_reference_id": None,
    }

    response = deliver(fake_stripe.event("checkout.session.completed", session))

    assert response.status_code == 200
    assert StripeEvent.objects.get().status == "ignored"
    assert assert_ledger_balanced(owner) == 1000


def test_an_event_that_beats_the_saved_session_id_finds_the_purchase_by_its_metadata(
    owner, fake_stripe, deliver, bought
):
    event = completed(fake_stripe, bought)
    Purchase.objects.filter(pk=bought.pk).update(checkout_session_id=None)

    assert deliver(event).status_code == 200

    bought.refresh_from_db()
    assert bought.status == "paid"
    assert bought.checkout_session_id == event["data"]["object"]["id"]
    assert assert_ledger_balanced(owner) == 6000


def test_a_session_whose_amount_differs_is_not_credited(owner, fake_stripe, deliver, bought):
    event = completed(fake_stripe, bought)
    event["data"]["object"]["amount_total"] = 50_000

    response = deliver(event)

    assert response.status_code == 500
    stored = StripeEvent.objects.get()
    assert stored.status == "failed"
    assert "took 50000 usd, the purchase is 500 usd" in stored.error
    assert assert_ledger_balanced(owner) == 1000


def test_a_failed_event_is_stored_with_its_error_and_handled_when_delivered_again(
    owner, fake_stripe, deliver, bought
):
    # A refund that overtakes the payment's own event cannot be handled yet.
    payment = completed(fake_stripe, bought)
    refund = fake_stripe.event(
        "charge.refunded", fake_stripe.refund(bought.checkout_session_id, 500)
    )

    first = deliver(refund)

    assert first.status_code == 500
    stored = StripeEvent.objects.get(pk=refund["id"])
    assert (stored.status, stored.attempts) == ("failed", 1)
    assert "has not been credited yet" in stored.error
    assert assert_ledger_balanced(owner) == 1000

    assert deliver(payment).status_code == 200
    second = deliver(refund)

    assert second.status_code == 200
    stored.refresh_from_db()
    assert (stored.status, stored.error, stored.attempts) == ("processed", "", 2)
    assert ledger_kinds(owner) == [("grant", 1000), ("top_up", 5000), ("reversal", -5000)]
    assert assert_ledger_balanced(owner) == 1000


def test_a_full_refund_takes_every_credit_back(client, owner, fake_stripe, deliver, bought):
    paid(fake_stripe, deliver, bought)
    charge = fake_stripe.refund(bought.checkout_session_id, 500)

    assert deliver(fake_stripe.event("charge.refunded", charge)).status_code == 200

    bought.refresh_from_db()
    assert (bought.status, bought.refunded_cents, bought.reversed_credits) == (
        "refunded",
        500,
        5000,
    )
    assert ledger_rows(owner, f"purchase:{bought.public_id}") == [
        ("top_up", 5000, 6000),
        ("reversal", -5000, 1000),
    ]
    assert LedgerEntry.objects.get(kind="reversal").description == (
        "Refund of $5.00: 5000 credits taken back"
    )
    assert services.debt_credits(owner.personal_account.pk) == 0
    assert assert_ledger_balanced(owner) == 1000
    assert (
        '<span class="badge warning">Refunded</span>'
        in client.get("/dashboard/billing/").content.decode()
    )


def test_partial_refunds_take_back_their_share_once_each(owner, fake_stripe, deliver, bought):
    paid(fake_stripe, deliver, bought)
    first = fake_stripe.event(
        "charge.refunded", fake_stripe.refund(bought.checkout_session_id, 150)
    )
    second = fake_stripe.event(
        "charge.refunded", fake_stripe.refund(bought.checkout_session_id, 100)
    )

    # Delivered out of order and twice over: amount_refunded is a running total.
    for event in (second, first, second, first):
        assert deliver(event).status_code == 200

    bought.refresh_from_db()
    assert (bought.status, bought.refunded_cents, bought.reversed_credits) == (
        "partially_refunded",
        250,
        2500,
    )
    assert ledger_kinds(owner) == [("grant", 1000), ("top_up", 5000), ("reversal", -2500)]
    assert assert_ledger_balanced(owner) == 3500


def test_partial_refunds_in_order_add_up_to_the_whole(owner, fake_stripe, deliver, bought):
    paid(fake_stripe, deliver, bought)
    for cents in (150, 350):
        charge = fake_stripe.refund(bought.checkout_session_id, cents)
        assert deliver(fake_stripe.event("charge.refunded", charge)).status_code == 200

    bought.refresh_from_db()
    assert bought.status == "refunded"
    assert ledger_kinds(owner)[-2:] == [("reversal", -1500), ("reversal", -3500)]
    assert assert_ledger_balanced(owner) == 1000


def test_a_refund_that_overtakes_the_payment_waits_for_it(owner, fake_stripe, deliver, bought):
    payment = completed(fake_stripe, bought)
    refund = fake_stripe.event(
        "charge.refunded", fake_stripe.refund(bought.checkout_session_id, 500)
    )

    assert deliver(refund).status_code == 500  # Stripe will deliver it again
    assert deliver(payment).status_code == 200
    assert deliver(refund).status_code == 200

    assert ledger_kinds(owner) == [("grant", 1000), ("top_up", 5000), ("reversal", -5000)]
    assert assert_ledger_balanced(owner) == 1000


def test_a_dispute_takes_the_credits_back(owner, fake_stripe, deliver, bought):
    paid(fake_stripe, deliver, bought)
    dispute = fake_stripe.event(
        "charge.dispute.created", fake_stripe.dispute(bought.checkout_session_id)
    )

    assert deliver(dispute).status_code == 200
    assert deliver(dispute).status_code == 200

    bought.refresh_from_db()
    assert (bought.status, bought.disputed_cents, bought.reversed_credits) == (
        "disputed",
        500,
        5000,
    )
    assert LedgerEntry.objects.get(kind="reversal").description.startswith("Dispute of $5.00")
    assert assert_ledger_balanced(owner) == 1000


def test_a_dispute_after_a_partial_refund_takes_only_the_rest(owner, fake_stripe, deliver, bought):
    paid(fake_stripe, deliver, bought)
    deliver(
        fake_stripe.event("charge.refunded", fake_stripe.refund(bought.checkout_session_id, 200))
    )
    dispute = fake_stripe.dispute(bought.checkout_session_id, amount_cents=300)

    assert deliver(fake_stripe.event("charge.dispute.created", dispute)).status_code == 200

    bought.refresh_from_db()
    assert bought.reversed_credits == 5000
    assert ledger_kinds(owner)[-2:] == [("reversal", -2000), ("reversal", -3000)]
    assert assert_ledger_balanced(owner) == 1000


def test_a_dispute_larger_than_the_balance_records_a_debt_that_a_top_up_pays(
    client, owner, fake_stripe, deliver, bought
):
    paid(fake_stripe, deliver, bought)
    # The customer spends most of it: 6000 -> 1200.
    services.hold(
        owner.personal_account.pk,
        {"held_credits": 4800},
        reference="gen:1",
        description="120 images",
    )
    services.settle(
        owner.personal_account.pk,
        {"held_credits": 4800, "charged_credits": 4800},
        reference="gen:1",
        description="120",
    )
    dispute = fake_stripe.dispute(bought.checkout_session_id)

    assert deliver(fake_stripe.event("charge.dispute.created", dispute)).status_code == 200

    account = CreditAccount.objects.get(owner__personal_owner=owner)
    assert (account.balance_credits, account.owed_credits) == (0, 3800)
    reversal = LedgerEntry.objects.get(kind="reversal")
    assert (reversal.amount_credits, reversal.balance_after_credits) == (-1200, 0)
    assert "3800 of them owed because the balance could not cover them" in reversal.description
    debt = DebtEntry.objects.get()
    assert (debt.amount_credits, debt.owed_after_credits) == (3800, 3800)
    assert assert_ledger_balanced(owner) == 0
    page = client.get("/dashboard/billing/").content.decode()
    assert "Your account owes 3,800 credits" in page

    # The next purchase pays the debt first, in the same transaction as its credit.
    client.post("/dashboard/billing/buy/", {"pack": "500"})
    second = Purchase.objects.exclude(pk=bought.pk).get()
    paid(fake_stripe, deliver, second)

    account.refresh_from_db()
    assert (account.balance_credits, account.owed_credits) == (1200, 0)
    assert ledger_kinds(owner)[-2:] == [("top_up", 5000), ("debt_payment", -3800)]
    assert list(
        DebtEntry.objects.order_by("id").values_list("amount_credits", "owed_after_credits")
    ) == [
        (3800, 3800),
        (-3800, 0),
    ]
    assert assert_ledger_balanced(owner) == 1200
    assert "owes" not in client.get("/dashboard/billing/").content.decode()


def test_a_session_started_before_accounts_named_its_buyer_and_is_credited(
    owner, fake_stripe, deliver, bought, user_factory
):
    # Sessions opened before purchases belonged to accounts named the buying user, and their
    # metadata no account: such a session, still open at the upgrade, is credited as it was.
    buyer = user_factory("buyer@example.com")
    Purchase.objects.filter(pk=bought.pk).update(user=buyer)
    event = completed(fake_stripe, bought)
    session = event["data"]["object"]
    session["client_reference_id"] = str(buyer.pk)
    del session["metadata"]["account_id"]

    assert deliver(event).status_code == 200
    assert assert_ledger_balanced(owner) == 6000


def test_a_session_naming_an_account_must_name_the_purchases(
    owner, fake_stripe, deliver, bought, user_factory
):
    buyer = user_factory("buyer@example.com")
    Purchase.objects.filter(pk=bought.pk).update(user=buyer)
    event = completed(fake_stripe, bought)
    event["data"]["object"]["client_reference_id"] = str(buyer.pk)  # a user's id, not its account

    response = deliver(event)

    assert response.status_code == 500
    assert assert_ledger_balanced(owner) == 1000
