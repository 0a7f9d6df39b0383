"""A key's spend controls through /v1: its cap (counted with each hold, refused 402
key_budget_exceeded), its allowed models and addresses (refused 403 before anything is counted),
and the x-key-budget-* headers on every answer to a capped key."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from billing.limits import limit_for
from billing.models import LedgerEntry, SpendWindow
from generation.models import Generation
from keys.models import ApiKey
from tests.support.money import assert_ledger_balanced

pytestmark = [pytest.mark.smoke, pytest.mark.usefixtures("default_prices")]

ONE = {"model": "seedream-4-0", "prompt": "a red fox in snow", "size": "1024x1024"}  # 40 credits


def post(client, key, body=ONE, **extra):
    """``extra``: the request's environ (REMOTE_ADDR: the client's address)."""
    return client.post(
        "/v1/images/generations",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
        **extra,
    )


def controls(issued, **fields):
    ApiKey.objects.filter(pk=issued.api_key.pk).update(**fields)
    return issued.raw_key


def window_of(issued) -> SpendWindow:
    key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert key.spend_cap_credits is not None
    limit = limit_for(
        f"key:{key.pk}", key.spend_cap_period, key.spend_cap_credits, datetime.now(UTC)
    )
    return SpendWindow.objects.get(name=limit.window)


def test_a_capped_key_says_what_is_left_of_its_cap_after_each_answer(
    client, owner, api_key_factory
):
    issued = api_key_factory(owner)
    key = controls(issued, spend_cap_credits=100, spend_cap_period="day")

    first = post(client, key)

    assert first.status_code == 200, first.content
    assert first["x-key-budget-limit"] == "100"
    assert first["x-key-budget-remaining"] == "60"
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z")
    assert first["x-key-budget-reset"] == tomorrow
    second = post(client, key)
    assert second["x-key-budget-remaining"] == "20"
    assert window_of(issued).spent_credits == 80
    assert assert_ledger_balanced(owner) == 1000 - 80


def test_a_request_past_the_cap_is_refused_with_nothing_held(
    client, owner, api_key_factory, settings
):
    settings.SITE_URL = "https://images.example.com"
    issued = api_key_factory(owner)
    key = controls(issued, spend_cap_credits=70, spend_cap_period="month")
    assert post(client, key).status_code == 200
    entries = LedgerEntry.objects.count()

    refused = post(client, key)

    assert refused.status_code == 402
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "key_budget_exceeded")
    assert (
        "may spend 70 credits per month (UTC), 30 remain and this request holds 40"
        in (error["message"])
    )
    assert (
        f"https://images.example.com/dashboard/keys/{issued.api_key.pk}/spend/"
        in (error["message"])
    )
    assert refused["x-should-retry"] == "false"
    assert (refused["x-key-budget-limit"], refused["x-key-budget-remaining"]) == ("70", "30")
    # Nothing held or charged: the ledger has no new line, the window no new spend.
    assert LedgerEntry.objects.count() == entries
    assert window_of(issued).spent_credits == 40
    assert assert_ledger_balanced(owner) == 960
    failed = Generation.objects.get(status="failed")
    assert (failed.http_status, failed.error_code, failed.reserved_credits) == (
        402,
        "key_budget_exceeded",
        0,
    )


def test_what_a_generation_held_but_did_not_deliver_goes_back_to_the_cap(
    client, owner, api_key_factory
):
    issued = api_key_factory(owner)
    key = controls(issued, spend_cap_credits=200, spend_cap_period="total")
    body = {**ONE, "n": 3, "prompt": "three foxes [sim:deliver=1]"}

    response = post(client, key, body)

    assert response.status_code == 200, response.content
    assert len(response.json()["data"]) == 1
    assert window_of(issued).spent_credits == 40  # 120 held, 40 charged
    assert response["x-key-budget-remaining"] == "160"
    assert "x-key-budget-reset" not in response  # a cap in total never resets


def test_a_lowered_cap_applies_from_the_next_request(client, owner, api_key_factory):
    issued = api_key_factory(owner)
    key = controls(issued, spend_cap_credits=400, spend_cap_period="week")
    assert post(client, key).status_code == 200
    controls(issued, spend_cap_credits=60)

    assert post(client, key).json()["error"]["code"] == "key_budget_exceeded"
    controls(issued, spend_cap_credits=80)
    assert post(client, key).status_code == 200


def test_other_keys_of_the_account_are_not_held_to_one_keys_cap(client, owner, api_key_factory):
    capped = controls(api_key_factory(owner, "capped"), spend_cap_credits=40)
    free = api_key_factory(owner, "free").raw_key
    assert post(client, capped).status_code == 200
    assert post(client, capped).status_code == 402

    response = post(client, free)

    assert response.status_code == 200
    assert "x-key-budget-limit" not in response


def test_every_answer_to_a_capped_key_carries_its_budget(client, owner, api_key_factory):
    key = controls(api_key_factory(owner), spend_cap_credits=500)

    invalid = post(client, key, {**ONE, "size": "7x7"})
    listing = client.get("/v1/models", headers={"Authorization": f"Bearer {key}"})

    assert invalid.status_code == 400
    for response in (invalid, listing):
        assert (response["x-key-budget-limit"], response["x-key-budget-remaining"]) == (
            "500",
            "500",
        )


def test_a_model_outside_the_allowlist_is_refused_before_anything_is_counted(
    client, owner, api_key_factory, untouched
):
    key = controls(api_key_factory(owner), allowed_models=["seedream-3-0"])

    refused = post(client, key)

    assert refused.status_code == 403
    error = refused.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "permission_error",
        "model_not_allowed",
        "model",
    )
    assert "may not use seedream-4-0: it is limited to seedream-3-0" in error["message"]
    assert f"/dashboard/keys/{ApiKey.objects.get().pk}/spend/" in error["message"]
    assert refused["x-should-retry"] == "false"


def test_a_model_inside_the_allowlist_works(client, owner, api_key_factory):
    key = controls(api_key_factory(owner), allowed_models=["seedream-3-0", "seedream-4-0"])

    assert post(client, key).status_code == 200


def test_an_address_outside_the_allowlist_is_refused_before_anything_is_counted(
    client, owner, api_key_factory, untouched
):
    key = controls(api_key_factory(owner), allowed_networks=["203.0.113.0/24"])

    refused = post(client, key, REMOTE_ADDR="198.51.100.7")
    models = client.get(
        "/v1/models", headers={"Authorization": f"Bearer {key}"}, REMOTE_ADDR="198.51.100.7"
    )

    assert refused.status_code == models.status_code == 403
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("permission_error", "ip_not_allowed")
    assert "may not be used from 198.51.100.7: the key is limited to other" in error["message"]
    assert "203.0.113" not in error["message"]  # a leaked key's holder learns nothing of them
    assert f"/dashboard/keys/{ApiKey.objects.get().pk}/spend/" in error["message"]


@pytest.mark.parametrize("address", ["203.0.113.9", "2001:db8::1", "::ffff:203.0.113.200"])
def test_an_address_inside_the_allowlist_works(client, owner, api_key_factory, address):
    key = controls(api_key_factory(owner), allowed_networks=["203.0.113.0/24", "2001:db8::/32"])

    assert post(client, key, REMOTE_ADDR=address).status_code == 200
