"""Operators in the admin: promotion codes to make, purchases and Stripe events to read."""

from __future__ import annotations

import pytest

from billing.models import PromoCode, Purchase, StripeEvent
from tests.support.money import assert_ledger_balanced

pytestmark = pytest.mark.smoke


@pytest.fixture
def operator_client(client, user_factory):
    client.force_login(user_factory("ops@example.com", is_staff=True, is_superuser=True))
    return client


def add_code(client, **fields):
    data = {"code": "", "credits": "", "max_redemptions": "1", "note": "", "active": "on"}
    data.update(fields)
    data.setdefault("expires_at_0", "")
    data.setdefault("expires_at_1", "")
    return client.post("/admin/billing/promocode/add/", data)


def test_an_operator_makes_a_multi_use_code_with_an_expiry(operator_client):
    response = add_code(
        operator_client,
        code="launch week",
        credits="5000",
        max_redemptions="100",
        expires_at_0="2030-01-31",
        expires_at_1="23:59:00",
    )

    assert response.status_code == 302, response.content.decode()
    code = PromoCode.objects.get()
    assert (code.code, code.credits, code.max_redemptions) == ("LAUNCHWEEK", 5000, 100)
    assert code.expires_at is not None


def test_a_code_that_differs_only_in_case_is_refused(operator_client):
    PromoCode.objects.create(code="LAUNCH", credits=1)

    response = add_code(operator_client, code="launch", credits="10")

    assert response.status_code == 200
    assert "exists already (codes ignore case)" in response.content.decode()
    assert PromoCode.objects.count() == 1


def test_purchases_and_events_are_read_only(operator_client, owner):
    Purchase.objects.create(
        owner=owner.personal_account, user=owner, amount_cents=500, currency="usd", credits=5000
    )
    StripeEvent.objects.create(id="evt_1", type="customer.created", payload={})

    for model in ("purchase", "stripeevent", "striperefund", "debtentry", "promoredemption"):
        assert operator_client.get(f"/admin/billing/{model}/").status_code == 200
        assert operator_client.get(f"/admin/billing/{model}/add/").status_code == 403
    page = operator_client.get("/admin/billing/purchase/").content.decode()
    assert "owner@example.com" in page and "$5.00" in page


def test_an_operator_processes_a_failed_event_again(operator_client, owner, fake_stripe):
    operator_client.force_login(owner)
    operator_client.post("/dashboard/billing/buy/", {"pack": "500"})
    purchase = Purchase.objects.get()
    event = fake_stripe.event(
        "checkout.session.completed", fake_stripe.pay(purchase.checkout_session_id)
    )
    StripeEvent.objects.create(
        id=event["id"], type=event["type"], payload=event, status="failed", error="boom"
    )
    from django.contrib.auth import get_user_model

    operator_client.force_login(get_user_model().objects.get(email="ops@example.com"))

    response = operator_client.post(
        "/admin/billing/stripeevent/",
        {"action": "process_again", "_selected_action": [event["id"]]},
    )

    assert response.status_code == 302
    assert StripeEvent.objects.get().status == "processed"
    assert assert_ledger_balanced(owner) == 6000
