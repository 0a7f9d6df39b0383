"""A closed account's Stripe events are kept for the books without what names the customer: the
stored ones are redacted when it closes, and later ones are stored redacted (and still acted on).
"""

from __future__ import annotations

import importlib
import json

import pytest
from django.apps import apps

from accounts.models import User
from billing.models import Purchase, StripeEvent
from billing.redaction import REDACTED, redact
from tests.support.money import assert_ledger_balanced

from .conftest import completed, paid

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]

CLOSE_URL = "/dashboard/account/close/"
# What the fake Stripe keeps of a payer (tests/support/fake_stripe.py), beside the email.
PERSONAL = ("Ada Lovelace", "St James")


def personal_data_in(event, email):
    text = json.dumps(event.payload)
    return [found for found in (email, *PERSONAL) if found in text]


def close(client, user):
    client.force_login(user)
    response = client.post(CLOSE_URL, {"confirmation": "pw"})
    assert response.status_code == 302, response.content
    user.refresh_from_db()
    assert user.closed_at is not None


@pytest.fixture
def history(client, owner, outsider, fake_stripe, deliver, bought):
    """The owner paid, had part refunded and disputed the rest; the outsider paid too. The
    events are stored as they came: the payer's email, name and address in all but the refund's."""
    paid(fake_stripe, deliver, bought)
    session_id = bought.checkout_session_id
    deliver(fake_stripe.event("charge.refunded", fake_stripe.refund(session_id, 200)))
    deliver(fake_stripe.event("refund.created", fake_stripe.latest_refund(session_id)))
    deliver(fake_stripe.event("charge.dispute.created", fake_stripe.dispute(session_id, 300)))
    client.force_login(outsider)
    client.post("/dashboard/billing/buy/", {"pack": "500"})
    theirs = Purchase.objects.get(user=outsider)
    paid(fake_stripe, deliver, theirs)
    ours = StripeEvent.objects.exclude(payload__data__object__id=theirs.checkout_session_id)
    assert sorted(e.type for e in ours if personal_data_in(e, "owner@example.com")) == [
        "charge.dispute.created",
        "charge.refunded",
        "checkout.session.completed",
    ]
    assert ours.count() == 4
    return theirs


def test_closing_an_account_redacts_its_stored_stripe_events(client, owner, outsider, history):
    before = {e.pk: e.payload for e in StripeEvent.objects.all()}
    theirs = StripeEvent.objects.get(payload__data__object__id=history.checkout_session_id)

    close(client, owner)

    ours = StripeEvent.objects.exclude(pk=theirs.pk)
    for event in ours:
        assert personal_data_in(event, "owner@example.com") == [], event.type
        # What the books and the handlers need stays: ids, amounts, statuses, our metadata.
        obj, was = event.payload["data"]["object"], before[event.pk]["data"]["object"]
        for key in ("id", "amount", "amount_total", "amount_refunded", "currency", "status"):
            assert obj.get(key) == was.get(key), (event.type, key)
        for key in ("payment_intent", "charge", "metadata", "client_reference_id", "receipt_url"):
            assert obj.get(key) == was.get(key), (event.type, key)
        assert event.payload["id"] == before[event.pk]["id"]
        assert event.payload["type"] == before[event.pk]["type"]
    session = ours.get(type="checkout.session.completed").payload["data"]["object"]
    # Paid as the account's Customer: the session has no customer_email of its own, and the
    # email the customer gave is in customer_details.
    assert session["customer_email"] is None
    assert session["customer_details"] == REDACTED
    charge = ours.get(type="charge.refunded").payload["data"]["object"]
    assert (charge["billing_details"], charge["receipt_email"]) == (REDACTED, REDACTED)
    dispute = ours.get(type="charge.dispute.created").payload["data"]["object"]
    assert dispute["evidence"] == REDACTED
    # The outsider's event is as it came.
    theirs.refresh_from_db()
    assert theirs.payload == before[theirs.pk]
    assert "outsider@example.com" in json.dumps(theirs.payload)
    assert assert_ledger_balanced(owner) == 1000
    assert assert_ledger_balanced(outsider) == 6000


def test_a_later_event_for_a_closed_account_is_stored_redacted_and_still_acted_on(
    client, owner, fake_stripe, deliver, bought, history
):
    close(client, owner)
    # Stripe sends the rest of the story after the account is gone.
    charge = fake_stripe.refund(bought.checkout_session_id, 200)
    assert charge["receipt_email"] == "owner@example.com"
    event = fake_stripe.event("charge.refunded", charge)

    response = deliver(event)

    assert response.json()["status"] == "processed"
    stored = StripeEvent.objects.get(pk=event["id"])
    assert personal_data_in(stored, "owner@example.com") == []
    assert stored.payload["data"]["object"]["amount_refunded"] == 400
    bought.refresh_from_db()
    assert bought.refunded_cents == 400
    # 5000 credits: 2000 for the first refund, 3000 for the dispute, the rest now (all of it).
    assert bought.reversed_credits == 5000
    assert assert_ledger_balanced(owner) == 1000


def test_an_event_of_an_open_account_is_stored_as_it_came(owner, fake_stripe, deliver, bought):
    event = completed(fake_stripe, bought)

    deliver(event)

    assert StripeEvent.objects.get().payload == event


def test_closing_an_account_without_purchases_touches_no_event(client, outsider, history):
    before = {e.pk: e.payload for e in StripeEvent.objects.all()}
    loner = User.objects.create_user("loner@example.com", "pw")

    close(client, loner)

    assert {e.pk: e.payload for e in StripeEvent.objects.all()} == before


def test_the_migration_redacts_the_events_of_accounts_closed_before(owner, history):
    # Closed before closure redacted anything: the data migration does it.
    User.objects.filter(pk=owner.pk).update(closed_at="2026-01-01T00:00:00Z")
    migration = importlib.import_module("billing.migrations.0010_redact_events_of_closed_accounts")

    migration.redact_events_of_closed_accounts(apps, None)

    ours = StripeEvent.objects.exclude(payload__data__object__id=history.checkout_session_id)
    assert all(personal_data_in(e, "owner@example.com") == [] for e in ours)
    theirs = StripeEvent.objects.get(payload__data__object__id=history.checkout_session_id)
    assert "outsider@example.com" in json.dumps(theirs.payload)


def test_redact_takes_out_emails_wherever_they_are_and_keeps_the_rest():
    event = {
        "id": "evt_1",
        "livemode": False,
        "data": {
            "object": {
                "id": "ch_1",
                "amount": 500,
                "description": "Top-up for ada@example.org (account 7)",
                "metadata": {"purchase_id": "abc", "user_id": "7"},
                "billing_details": {"email": None, "name": "Ada"},
                "shipping": None,
                "refunds": {"data": [{"id": "re_1", "destination_details": {"card": {}}}]},
            }
        },
    }

    clean = redact(event)

    obj = clean["data"]["object"]
    assert obj["description"] == f"Top-up for {REDACTED} (account 7)"
    assert obj["billing_details"] == REDACTED
    assert obj["shipping"] is None  # nothing there, nothing to hide
    assert obj["refunds"]["data"][0] == {"id": "re_1", "destination_details": REDACTED}
    assert (obj["id"], obj["amount"], obj["metadata"]) == (
        "ch_1",
        500,
        event["data"]["object"]["metadata"],
    )
    assert clean["livemode"] is False
    assert event["data"]["object"]["billing_details"]["name"] == "Ada"  # a copy, not in place
