"""Webhooks and promotion codes at the same moment from several threads, on PostgreSQL: the
database, not luck, makes each payment credit once and each code count once per account.

Each thread has its own connection, so these tests commit for real (transactional_db).
"""

from __future__ import annotations

import pytest
from django.test import Client

from billing import services
from billing.models import PromoCode, PromoRedemption, Purchase, StripeEvent
from billing.services import PromoCodeRefused
from tests.support.money import assert_ledger_balanced, ledger_kinds

from .conftest import signed_post
from .test_concurrency import run_at_once

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def bought(owner, fake_stripe):
    client = Client()
    client.force_login(owner)
    assert client.post("/dashboard/billing/buy/", {"pack": "500"}).status_code == 303
    return Purchase.objects.get()


def test_one_event_delivered_twice_at_the_same_moment_credits_once(owner, fake_stripe, bought):
    event = fake_stripe.event(
        "checkout.session.completed", fake_stripe.pay(bought.checkout_session_id)
    )

    results = run_at_once(2, lambda i: signed_post(Client(), event).status_code)

    assert results == [200, 200]
    assert StripeEvent.objects.get().status == "processed"
    assert ledger_kinds(owner) == [("grant", 1000), ("top_up", 5000)]
    assert assert_ledger_balanced(owner) == 6000


def test_ten_deliveries_of_two_events_for_one_payment_credit_once(owner, fake_stripe, bought):
    session = fake_stripe.pay(bought.checkout_session_id)
    events = [
        fake_stripe.event("checkout.session.completed", session),
        fake_stripe.event("checkout.session.async_payment_succeeded", session),
    ]

    results = run_at_once(10, lambda i: signed_post(Client(), events[i % 2]).status_code)

    assert results == [200] * 10
    assert StripeEvent.objects.filter(status="processed").count() == 2
    assert assert_ledger_balanced(owner) == 6000


def test_one_refund_delivered_at_once_takes_back_once(owner, fake_stripe, bought):
    session = fake_stripe.pay(bought.checkout_session_id)
    assert signed_post(Client(), fake_stripe.event("checkout.session.completed", session))
    refund = fake_stripe.event("charge.refunded", fake_stripe.refund(session["id"], 250))

    results = run_at_once(5, lambda i: signed_post(Client(), refund).status_code)

    assert results == [200] * 5
    assert ledger_kinds(owner)[-1] == ("reversal", -2500)
    assert assert_ledger_balanced(owner) == 3500


def test_a_won_dispute_delivered_at_once_gives_back_once(owner, fake_stripe, bought):
    session = fake_stripe.pay(bought.checkout_session_id)
    assert signed_post(Client(), fake_stripe.event("checkout.session.completed", session))
    dispute = fake_stripe.dispute(session["id"])
    assert signed_post(Client(), fake_stripe.event("charge.dispute.created", dispute))
    won = fake_stripe.close_dispute(dispute["id"], "won")
    events = [fake_stripe.event("charge.dispute.closed", won) for _ in range(2)]

    results = run_at_once(6, lambda i: signed_post(Client(), events[i % 2]).status_code)

    assert results == [200] * 6
    assert [k for k, _ in ledger_kinds(owner)].count("reinstated") == 1
    assert assert_ledger_balanced(owner) == 6000


def test_a_failed_refund_told_by_several_events_at_once_gives_back_once(owner, fake_stripe, bought):
    session = fake_stripe.pay(bought.checkout_session_id)
    assert signed_post(Client(), fake_stripe.event("checkout.session.completed", session))
    charge = fake_stripe.refund(session["id"], 500)
    refund = fake_stripe.latest_refund(session["id"])
    assert signed_post(Client(), fake_stripe.event("charge.refunded", charge))
    failed = fake_stripe.fail_refund(refund["id"])
    events = [
        fake_stripe.event(event_type, failed)
        for event_type in ("refund.failed", "refund.updated", "charge.refund.updated")
    ]

    results = run_at_once(6, lambda i: signed_post(Client(), events[i % 3]).status_code)

    assert results == [200] * 6
    assert ledger_kinds(owner)[1:] == [("top_up", 5000), ("reversal", -5000), ("reinstated", 5000)]
    assert assert_ledger_balanced(owner) == 6000


def test_the_last_use_of_a_code_goes_to_exactly_one_of_many_accounts(user_factory):
    code = PromoCode.objects.create(code="LAUNCH", credits=100, max_redemptions=3)
    users = [user_factory() for _ in range(10)]

    results = run_at_once(
        10, lambda i: services.redeem_promo_code(users[i].personal_account, "launch")
    )

    refused = [r for r in results if isinstance(r, PromoCodeRefused)]
    assert len(refused) == 7, results
    assert all(r.reason == "used_up" for r in refused)
    code.refresh_from_db()
    assert code.times_redeemed == 3
    assert PromoRedemption.objects.count() == 3
    assert sum(assert_ledger_balanced(user) for user in users) == 300


def test_one_account_redeeming_a_code_from_many_tabs_gets_it_once(user_factory):
    code = PromoCode.objects.create(code="LAUNCH", credits=100, max_redemptions=50)
    user = user_factory()

    results = run_at_once(8, lambda i: services.redeem_promo_code(user.personal_account, "LAUNCH"))

    refused = [r for r in results if isinstance(r, PromoCodeRefused)]
    assert len(refused) == 7, results
    assert all(r.reason == "already_redeemed" for r in refused)
    code.refresh_from_db()
    assert code.times_redeemed == 1
    assert assert_ledger_balanced(user) == 100
