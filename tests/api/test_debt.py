"""An account that owes credits after a refund or dispute: the API says why it refuses work,
and works again once a top-up has paid what was owed."""

from __future__ import annotations

import json

import pytest

from billing import services
from generation.models import Generation
from tests.support.money import assert_ledger_balanced

pytestmark = pytest.mark.smoke

BODY = {"model": "seedream-4-0", "prompt": "a red fox in snow", "size": "2048x2048"}


def generate(client, key):
    return client.post(
        "/v1/images/generations",
        json.dumps(BODY),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


def owe(user, credits):
    services.take_back(
        user.personal_account.pk,
        credits,
        reference="purchase:test",
        idempotency_key=f"stripe:ch_test:refunded:{credits}",
        description="Refund of $5.00",
    )


def test_an_account_that_owes_credits_gets_402_with_the_reason(client, owner, owner_key, settings):
    settings.SITE_URL = "https://images.example.com"
    owe(owner, 5000)  # 1000 taken from the balance, 4000 owed

    response = generate(client, owner_key)

    assert response.status_code == 402
    error = response.json()["error"]
    assert error["type"] == "insufficient_quota"
    assert error["code"] == "insufficient_quota"
    assert error["message"] == (
        "Your account owes 4,000 credits ($4.00) after a card payment was refunded or disputed. "
        "API use is paused until that is paid: add credits at "
        "https://images.example.com/dashboard/billing/ and they pay it first."
    )
    refused = Generation.objects.get()
    assert (refused.status, refused.http_status, refused.reserved_credits) == ("failed", 402, 0)
    assert refused.error_message == error["message"]
    assert assert_ledger_balanced(owner) == 0


def test_credits_left_over_do_not_let_an_owing_account_through(client, owner, owner_key):
    # The debt blocks the API even when the balance could pay for the request.
    services.hold(
        owner.personal_account.pk, {"held_credits": 400}, reference="gen:held", description="held"
    )
    owe(owner, 700)  # takes the 600 left, owes 100
    services.settle(
        owner.personal_account.pk,
        {"held_credits": 400, "charged_credits": 0},
        reference="gen:held",
        description="x",
    )
    assert services.balance_credits(owner.personal_account) == 400

    response = generate(client, owner_key)

    assert response.status_code == 402
    assert "owes 100 credits" in response.json()["error"]["message"]


def test_a_top_up_pays_the_debt_and_the_api_works_again(client, owner, owner_key):
    owe(owner, 1500)
    services.grant(
        owner.personal_account,
        5000,
        kind="top_up",
        description="Card",
        idempotency_key="stripe:cs_2",
    )

    response = generate(client, owner_key)

    assert response.status_code == 200, response.content
    assert services.debt_credits(owner.personal_account.pk) == 0
    assert assert_ledger_balanced(owner) == 5000 - 500 - 40


def test_a_plain_shortfall_still_says_what_the_request_costs(client, user_factory, api_key_factory):
    poor = user_factory(credits=10)

    response = generate(client, api_key_factory(poor).raw_key)

    assert response.status_code == 402
    assert response.json()["error"]["message"].startswith("Insufficient credits: this request")
