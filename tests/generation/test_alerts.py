"""Alerts a hold sets off: the account's low balance (an email and a credits.low webhook event)
and a key's share of its cap (an email), each told once per crossing."""

from __future__ import annotations

import json

import pytest
from django.core import mail

from billing import alerts, services
from billing.limits import crossed_percents
from billing.models import CreditAccount
from generation import services as generation
from generation import tasks
from keys.models import ApiKey
from webhooks import services as webhooks
from webhooks.models import Event

pytestmark = [pytest.mark.smoke, pytest.mark.usefixtures("default_prices")]

ONE = {"model": "seedream-4-0", "prompt": "a red fox", "size": "1024x1024"}  # 40 credits


@pytest.fixture
def due(monkeypatch):
    """The alerts each request set off, as the workers would be sent them."""
    sent: list[tuple[str, tuple[object, ...]]] = []
    monkeypatch.setattr(tasks, "send_alerts", sent.extend)
    return sent


def spend(client, key, times=1):
    for _ in range(times):
        response = client.post(
            "/v1/images/generations",
            json.dumps(ONE),
            content_type="application/json",
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 200, response.content


def run_workers(due):
    """What the workers do with the alerts sent so far: True for each alert told."""
    told = [
        generation.send_low_balance_alert(*args)
        if name == "low_balance"
        else generation.send_key_budget_alert(*args)
        for name, args in due
    ]
    due.clear()
    return told


def test_the_low_balance_alert_is_told_once_per_crossing(client, owner, owner_key, due):
    webhooks.create_endpoint(
        owner.personal_account, "https://hooks.example.com/seedream", ["credits.low"]
    )
    account = CreditAccount.objects.get(owner__personal_owner=owner)
    alerts.set_low_balance_alert(account.pk, 900)

    spend(client, owner_key, 2)  # 1000 -> 920: above the line
    assert due == []
    spend(client, owner_key)  # 880: below it
    assert due == [("low_balance", (account.pk,))]
    assert run_workers(due) == [True]
    spend(client, owner_key, 3)  # further down: told already
    assert due == []
    # A worker that runs the same alert again (a repeat) tells nothing more.
    assert generation.send_low_balance_alert(account.pk) is False

    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject.endswith("Your credit balance is low")
    assert "below the 900 credits" in mail.outbox[0].body
    assert "/dashboard/alerts/" in mail.outbox[0].body  # where to change or turn it off
    event = json.loads(Event.objects.get(type="credits.low").payload)
    assert event["data"] == {
        "object": "credits.balance",
        "balance_credits": 880,
        "threshold_credits": 900,
    }


def test_credits_that_lift_the_balance_to_the_line_rearm_the_alert(client, owner, owner_key, due):
    account = CreditAccount.objects.get(owner__personal_owner=owner)
    alerts.set_low_balance_alert(account.pk, 980)
    spend(client, owner_key)  # 960: told
    assert run_workers(due) == [True]
    spend(client, owner_key)  # 920: the hold and its release cross nothing new
    assert due == []

    services.grant(
        owner.personal_account, 20, description="top-up", idempotency_key="t1"
    )  # 940: still below
    spend(client, owner_key)  # 900
    assert due == []
    services.grant(
        owner.personal_account, 100, description="top-up", idempotency_key="t2"
    )  # 1000: re-armed
    spend(client, owner_key)  # 960: below again

    assert run_workers(due) == [True]
    assert len(mail.outbox) == 2


def test_a_new_line_is_armed_at_once(client, owner, owner_key, due):
    account = CreditAccount.objects.get(owner__personal_owner=owner)
    alerts.set_low_balance_alert(account.pk, 980)
    spend(client, owner_key)
    run_workers(due)
    alerts.set_low_balance_alert(account.pk, 2000)  # above the balance already

    spend(client, owner_key)

    assert run_workers(due) == [True]
    assert "below the 2,000 credits" in mail.outbox[-1].body


def test_a_keys_cap_alerts_at_each_threshold_once_per_window(client, owner, api_key_factory, due):
    issued = api_key_factory(owner, "capped")
    ApiKey.objects.filter(pk=issued.api_key.pk).update(
        spend_cap_credits=200, spend_cap_period="day"
    )

    told = []
    for _ in range(5):  # 40, 80, 120 (60%), 160 (80%), 200 (100%) of 200
        spend(client, issued.raw_key)
        told += [args[1] for _, args in due]
        run_workers(due)

    assert told == [50, 80, 100]
    subjects = [message.subject for message in mail.outbox]
    assert [s.split("capped ")[1] for s in subjects] == [
        "has spent 50% of its cap",
        "has spent 80% of its cap",
        "has reached its spend cap",
    ]
    assert "200 of 200 credits" in mail.outbox[-1].body


@pytest.mark.parametrize(
    ("before", "after", "crossed"),
    [(0, 40, 0), (80, 100, 50), (99, 100, 50), (100, 101, 0), (0, 200, 100), (150, 170, 80)],
)
def test_crossed_percents(before, after, crossed):
    assert crossed_percents([50, 80, 100], 200, before, after) == crossed


def test_a_raised_cap_tells_its_shares_afresh(client, owner, api_key_factory, due):
    issued = api_key_factory(owner, "capped")
    ApiKey.objects.filter(pk=issued.api_key.pk).update(
        spend_cap_credits=80, spend_cap_period="month"
    )
    spend(client, issued.raw_key, 2)  # 80 of 80: 50% then 100%
    assert [args[1] for _, args in due] == [50, 100]
    run_workers(due)
    ApiKey.objects.filter(pk=issued.api_key.pk).update(spend_cap_credits=400)

    spend(client, issued.raw_key, 3)  # 200 of 400: the new cap's 50%

    assert [args[1] for _, args in due] == [50]
    assert run_workers(due) == [True]
