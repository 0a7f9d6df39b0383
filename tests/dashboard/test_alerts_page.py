"""The Alerts page: the account's low-balance line and the shares of a key's cap it is told
at, each bad value refused on its field with nothing changed, and what it saves told by the
workers after spending through /v1."""

from __future__ import annotations

import html
import json

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from billing import alerts
from billing.models import CreditAccount
from generation import services as generation
from generation import tasks
from keys import services as keys

URL = "/dashboard/alerts/"
ONE = {"model": "seedream-4-0", "prompt": "a red fox in snow", "size": "1024x1024"}  # 40 credits


def account_of(user) -> CreditAccount:
    return CreditAccount.objects.get(owner__personal_owner=user)


def settings_of(user) -> tuple[int | None, list[int]]:
    account = account_of(user)
    return account.low_balance_alert_credits, account.key_budget_alert_percents


def text(response) -> str:
    return html.unescape(response.content.decode())


@pytest.fixture
def due(monkeypatch):
    """The alerts each request set off, as the workers would be sent them."""
    sent: list[tuple[str, tuple[object, ...]]] = []
    monkeypatch.setattr(tasks, "send_alerts", sent.extend)
    return sent


def test_a_visitor_is_sent_to_sign_in(client, db):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_page_shows_the_defaults_where_alerts_go_and_the_capped_keys(
    client, owner, api_key_factory
):
    capped = api_key_factory(owner, "nightly batch").api_key
    keys.set_spend_controls(
        capped, cap_credits=2000, period="week", allowed_models=[], allowed_networks=[],
        known_models=[],
    )  # fmt: skip
    api_key_factory(owner, "uncapped")
    client.force_login(owner)

    page = text(client.get(URL))

    assert "Alerts go by email to <strong>owner@example.com</strong>" in page
    assert '<code>credits.low</code> event to your <a href="/dashboard/webhooks/">' in page
    assert 'value="50, 80, 100"' in page  # the account's default shares
    assert 'name="low_balance_alert_credits"' in page
    assert "No low-balance alert is set." in page
    assert "Your balance is 1,000 credits ($1.00)." in page
    assert "nightly batch" in page and "2,000 credits per week (UTC, from Monday)" in page
    assert f'href="/dashboard/keys/{capped.pk}/spend/"' in page
    assert "uncapped" not in page
    assert 'href="/dashboard/alerts/" aria-current="page">Alerts</a>' in page


def test_a_customer_without_credits_gets_an_account_for_its_alerts(client, user_factory):
    newcomer = user_factory("new@example.com")
    client.force_login(newcomer)

    assert client.get(URL).status_code == 200
    response = client.post(
        URL, {"low_balance_alert_credits": "100", "key_budget_alert_percents": ""}
    )

    assert response.status_code == 302
    assert settings_of(newcomer) == (100, [])
    assert account_of(newcomer).balance_credits == 0


def test_the_owner_saves_both_thresholds_sorted_and_once_each(client, owner):
    client.force_login(owner)

    response = client.post(
        URL, {"low_balance_alert_credits": "2,500", "key_budget_alert_percents": "100, 50 80,50%"}
    )

    assert response.status_code == 302
    assert response["Location"] == URL
    assert settings_of(owner) == (2500, [50, 80, 100])
    page = text(client.get(URL))
    assert "Your alerts are saved." in page
    assert "You are told when it falls below 2,500 credits ($2.50)." in page
    assert 'value="2500"' in page and 'value="50, 80, 100"' in page


def test_both_can_be_cleared(client, owner):
    client.force_login(owner)
    client.post(URL, {"low_balance_alert_credits": "900", "key_budget_alert_percents": "90"})

    client.post(URL, {"low_balance_alert_credits": "", "key_budget_alert_percents": ""})

    assert settings_of(owner) == (None, [])


def test_a_new_threshold_is_armed_and_an_unchanged_one_left_as_told(client, owner):
    client.force_login(owner)
    account = account_of(owner)
    alerts.set_low_balance_alert(account.pk, 900)
    told = timezone.now()
    CreditAccount.objects.filter(pk=account.pk).update(low_balance_alerted_at=told)

    # Only the shares changed: the alert told already stays told.
    client.post(URL, {"low_balance_alert_credits": "900", "key_budget_alert_percents": "75"})
    assert account_of(owner).low_balance_alerted_at == told
    assert "you were told on" in text(client.get(URL))

    client.post(URL, {"low_balance_alert_credits": "950", "key_budget_alert_percents": "75"})
    assert account_of(owner).low_balance_alerted_at is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("low_balance_alert_credits", "0",
         "The alert is at least 1 credit: leave it empty for no alert."),
        ("low_balance_alert_credits", "ten", "Enter the alert as a whole number of credits"),
        ("low_balance_alert_credits", "-1", "Enter the alert as a whole number of credits"),
        ("low_balance_alert_credits", "1000000000001",
         "The alert is at most 1,000,000,000,000 credits."),
        ("key_budget_alert_percents", "0, 50", "0% is not a share of a cap: each is 1 to 100."),
        ("key_budget_alert_percents", "50, 101", "101% is not a share of a cap: each is 1 to 100."),
        ("key_budget_alert_percents", "50, half", "“half” is not a whole per cent"),
        ("key_budget_alert_percents", "12.5", "“12.5” is not a whole per cent"),
        ("key_budget_alert_percents", "10, 20, 30, 40, 50, 60", "At most 5 thresholds."),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_on_its_field_and_changes_nothing(
    client, owner, field, value, message
):
    client.force_login(owner)
    client.post(URL, {"low_balance_alert_credits": "700", "key_budget_alert_percents": "60, 90"})
    good = {"low_balance_alert_credits": "300", "key_budget_alert_percents": "25"}

    response = client.post(URL, {**good, field: value})

    assert response.status_code == 200
    form = response.context["form"]
    assert list(form.errors) == [field]
    assert message in form.errors[field][0]
    assert message in text(response)
    assert settings_of(owner) == (700, [60, 90])


def test_the_form_needs_the_csrf_token(owner):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner)

    response = strict.post(URL, {"low_balance_alert_credits": "5", "key_budget_alert_percents": ""})

    assert response.status_code == 403
    assert settings_of(owner) == (None, [50, 80, 100])


def test_one_customers_alerts_are_not_anothers(client, owner, outsider):
    client.force_login(outsider)
    client.post(URL, {"low_balance_alert_credits": "10", "key_budget_alert_percents": "10"})

    assert settings_of(outsider) == (10, [10])
    assert settings_of(owner) == (None, [50, 80, 100])


def test_the_keys_page_and_the_navigation_link_here(client, owner):
    client.force_login(owner)

    page = client.get("/dashboard/keys/").content.decode()

    assert page.count('href="/dashboard/alerts/"') == 2  # the navigation and the keys' help


@pytest.mark.usefixtures("default_prices")
def test_alerts_saved_on_the_page_are_told_after_spending_through_the_api(
    client, owner, api_key_factory, due
):
    issued = api_key_factory(owner, "capped")
    client.force_login(owner)
    client.post(URL, {"low_balance_alert_credits": "990", "key_budget_alert_percents": "50"})
    client.post(
        f"/dashboard/keys/{issued.api_key.pk}/spend/",
        {"spend_cap_credits": "80", "spend_cap_period": "month"},
    )

    response = client.post(
        "/v1/images/generations",
        json.dumps(ONE),
        content_type="application/json",
        headers={"Authorization": f"Bearer {issued.raw_key}"},
    )

    assert response.status_code == 200, response.content
    # 1000 -> 960: below 990; 40 of the cap's 80: its 50%.
    assert sorted(name for name, _ in due) == ["key_budget", "low_balance"]
    for name, args in due:
        sender = (
            generation.send_low_balance_alert
            if name == "low_balance"
            else generation.send_key_budget_alert
        )
        assert sender(*args) is True
    subjects = sorted(message.subject for message in mail.outbox)
    assert subjects[0].endswith("API key capped has spent 50% of its cap")
    assert subjects[1].endswith("Your credit balance is low")
    cap_email = next(m for m in mail.outbox if "50%" in m.subject)
    assert f"/dashboard/keys/{issued.api_key.pk}/spend/" in cap_email.body
