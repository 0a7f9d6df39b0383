"""An event in the other mode than the secret key's (live against test, or test against live)
moves no money: it is acknowledged so that Stripe stops sending it, stored as ignored with the
reason, and logged once, without a secret."""

from __future__ import annotations

import logging

import pytest
from django.core import checks

from billing.models import Purchase, StripeEvent
from tests.support.money import assert_ledger_balanced, ledger_kinds

from .conftest import SECRET_KEY, WEBHOOK_SECRET, completed, paid

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]

LIVE_KEY = "sk_live_fake"


def warnings_about(caplog, event_id):
    return [
        r for r in caplog.records if r.levelno == logging.WARNING and event_id in r.getMessage()
    ]


def assert_no_secret_in(text):
    for secret in (SECRET_KEY, LIVE_KEY, WEBHOOK_SECRET):
        assert secret not in text


def test_a_live_mode_event_with_a_test_key_credits_nothing(
    owner, fake_stripe, deliver, bought, caplog
):
    event = completed(fake_stripe, bought)
    event["livemode"] = True

    response = deliver(event)

    # Acknowledged: no delivery of it could ever be handled, so Stripe should stop sending it.
    assert response.status_code == 200
    assert response.json() == {"received": True, "status": "ignored"}
    stored = StripeEvent.objects.get()
    assert stored.status == "ignored"
    assert stored.error == (
        "The event is in live mode and STRIPE_SECRET_KEY is a test-mode key: nothing done"
    )
    bought.refresh_from_db()
    assert (bought.status, bought.credited_at) == ("pending", None)
    assert assert_ledger_balanced(owner) == 1000
    (warning,) = warnings_about(caplog, event["id"])
    assert "live mode" in warning.getMessage()
    assert_no_secret_in(caplog.text)


@pytest.mark.parametrize("live_key", [LIVE_KEY, "rk_live_fake"])
def test_a_test_mode_event_with_a_live_key_credits_nothing(
    owner, fake_stripe, deliver, bought, settings, live_key
):
    event = completed(fake_stripe, bought)  # test mode, as the fake's objects are
    settings.STRIPE_SECRET_KEY = live_key

    response = deliver(event)

    assert response.json() == {"received": True, "status": "ignored"}
    assert StripeEvent.objects.get().error == (
        "The event is in test mode and STRIPE_SECRET_KEY is a live-mode key: nothing done"
    )
    assert assert_ledger_balanced(owner) == 1000


def test_a_refund_in_the_other_mode_takes_nothing_back(owner, fake_stripe, deliver, bought):
    paid(fake_stripe, deliver, bought)
    refund = fake_stripe.event(
        "charge.refunded", fake_stripe.refund(bought.checkout_session_id, 500), livemode=True
    )

    assert deliver(refund).json()["status"] == "ignored"

    bought.refresh_from_db()
    assert (bought.status, bought.reversed_credits) == ("paid", 0)
    assert assert_ledger_balanced(owner) == 6000


def test_an_event_whose_object_is_in_the_other_mode_credits_nothing(
    owner, fake_stripe, deliver, bought
):
    event = completed(fake_stripe, bought)
    event["data"]["object"]["livemode"] = True

    assert deliver(event).json()["status"] == "ignored"

    assert StripeEvent.objects.get().error == (
        "The event's object is in live mode and STRIPE_SECRET_KEY is a test-mode key: nothing done"
    )
    assert assert_ledger_balanced(owner) == 1000


@pytest.mark.parametrize("livemode", [None, "false", 0], ids=["missing", "text", "number"])
def test_an_event_without_a_boolean_livemode_credits_nothing(
    owner, fake_stripe, deliver, bought, livemode
):
    event = completed(fake_stripe, bought)
    if livemode is None:
        del event["livemode"]
    else:
        event["livemode"] = livemode

    assert deliver(event).json()["status"] == "ignored"

    assert "in no mode" in StripeEvent.objects.get().error
    assert assert_ledger_balanced(owner) == 1000


def test_delivered_again_it_is_acknowledged_and_logged_once(
    owner, fake_stripe, deliver, bought, caplog
):
    event = completed(fake_stripe, bought)
    event["livemode"] = True

    responses = [deliver(event) for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert StripeEvent.objects.get().attempts == 1
    assert len(warnings_about(caplog, event["id"])) == 1
    assert assert_ledger_balanced(owner) == 1000


def test_an_event_of_a_type_we_do_not_handle_is_ignored_with_the_reason_too(fake_stripe, deliver):
    event = fake_stripe.event("customer.created", {"id": "cus_1"}, livemode=True)

    assert deliver(event).json()["status"] == "ignored"

    assert "live mode" in StripeEvent.objects.get().error


def test_once_the_key_is_put_right_an_operator_processes_it_again(
    client, owner, user_factory, fake_stripe, deliver, bought, settings
):
    event = completed(fake_stripe, bought)  # test mode
    settings.STRIPE_SECRET_KEY = LIVE_KEY  # the operator pasted the wrong mode's key
    deliver(event)
    assert StripeEvent.objects.get().status == "ignored"

    settings.STRIPE_SECRET_KEY = SECRET_KEY
    client.force_login(user_factory("ops@example.com", is_staff=True, is_superuser=True))
    response = client.post(
        "/admin/billing/stripeevent/",
        {"action": "process_again", "_selected_action": [event["id"]]},
    )

    assert response.status_code == 302
    assert StripeEvent.objects.get().status == "processed"
    assert Purchase.objects.get().status == "paid"
    assert ledger_kinds(owner) == [("grant", 1000), ("top_up", 5000)]
    assert assert_ledger_balanced(owner) == 6000


def test_a_key_of_no_known_mode_is_a_configuration_error_and_credits_nothing(
    owner, fake_stripe, deliver, bought, settings
):
    settings.STRIPE_SECRET_KEY = "sk_fake_without_a_mode"

    errors = [e for e in checks.run_checks() if e.id == "billing.E001"]
    response = deliver(completed(fake_stripe, bought))

    assert len(errors) == 1
    assert "sk_fake_without_a_mode" not in errors[0].msg
    assert response.json()["status"] == "ignored"
    assert "STRIPE_SECRET_KEY starts with none of" in StripeEvent.objects.get().error
    assert assert_ledger_balanced(owner) == 1000


def test_a_key_of_a_known_mode_passes_the_check(fake_stripe):
    assert not [e for e in checks.run_checks() if e.id == "billing.E001"]
