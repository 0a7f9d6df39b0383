"""An organisation's keys spend the organisation's credits, within its limits, whoever of its
members made them; they keep working when that member leaves or closes their own account; its
generations, images and usage are the organisation's, and no one else's key sees them."""

from __future__ import annotations

import json
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts import services as accounts
from accounts.models import Account, Membership, Role
from billing import services as billing
from generation.models import Generation, Image
from keys import services as keys
from tests.support.money import assert_ledger_balanced, balance, ledger_rows

pytestmark = pytest.mark.smoke

BODY = {"model": "seedream-4-0", "prompt": "a red fox in snow", "size": "2048x2048"}


def generate(client, key):
    return client.post(
        "/v1/images/generations",
        json.dumps(BODY),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


@pytest.fixture
def acme(user_factory):
    """An organisation with 1,000 credits: Olga owns it, Dev is a developer."""
    olga = user_factory("olga@example.com")
    dev = user_factory("dev@example.com")
    org = Account.objects.create(kind=Account.Kind.ORGANISATION, name="Acme")
    Membership.objects.create(account=org, user=olga, role=Role.OWNER)
    Membership.objects.create(account=org, user=dev, role=Role.DEVELOPER)
    billing.grant(org, 1000, description="Acme's top-up", idempotency_key="acme:1")
    return org, olga, dev


def test_a_members_key_spends_the_organisations_credits_and_not_the_members(client, acme):
    org, _, dev = acme
    key = keys.create_key(org, "ci", made_by=dev)

    response = generate(client, key.raw_key)

    assert response.status_code == 200
    generation = Generation.objects.get()
    assert (generation.account, generation.user) == (org, dev)
    assert Image.objects.get().account == org
    assert assert_ledger_balanced(org) == 1000 - 40
    assert [kind for kind, _, _ in ledger_rows(org)] == ["grant", "reserve", "release", "charge"]
    assert assert_ledger_balanced(dev) == 0 and ledger_rows(dev) == []


def test_an_organisations_key_is_made_by_one_of_its_members(acme):
    org, _, _ = acme
    with pytest.raises(ValueError, match="made by one of its members"):
        keys.create_key(org, "nobody's")


def test_a_key_keeps_working_when_its_maker_leaves_or_closes_their_account(client, acme):
    org, _, dev = acme
    key = keys.create_key(org, "ci", made_by=dev)
    mine = keys.create_key(accounts.personal_account(dev), "my own")

    Membership.objects.filter(account=org, user=dev).delete()
    assert generate(client, key.raw_key).status_code == 200
    accounts.close_account(dev)

    assert generate(client, key.raw_key).status_code == 200
    refused = generate(client, mine.raw_key)
    assert refused.status_code == 401  # a closed person's own keys are revoked
    assert balance(org) == 1000 - 2 * 40


def test_an_organisation_that_runs_out_is_refused_even_if_the_member_has_credits(client, acme):
    org, _, dev = acme
    billing.grant(accounts.personal_account(dev), 5000, description="dev's", idempotency_key="d")
    billing.adjust(org, -990, reason="test", operator="test")
    key = keys.create_key(org, "ci", made_by=dev)

    response = generate(client, key.raw_key)

    assert response.status_code == 402
    assert response.json()["error"]["code"] == "insufficient_quota"
    assert (balance(org), balance(dev)) == (10, 5000)


def test_the_credits_endpoint_answers_the_keys_account(client, acme):
    org, _, dev = acme
    key = keys.create_key(org, "ci", made_by=dev)
    response = client.get("/v1/credits", headers={"Authorization": f"Bearer {key.raw_key}"})
    assert response.status_code == 200
    assert response.json()["balance"] == 1000


def test_another_accounts_key_sees_none_of_the_organisations_jobs_or_usage(
    client, acme, owner, owner_key
):
    org, olga, dev = acme
    first = keys.create_key(org, "ci", made_by=dev)
    second = keys.create_key(org, "laptop", made_by=olga)
    assert generate(client, first.raw_key).status_code == 200
    assert generate(client, second.raw_key).status_code == 200
    job = Generation.objects.filter(account=org).first().public_id

    def usage(key: str) -> list[dict]:
        answer = client.get(
            "/v1/usage/images",
            {
                "start_time": int(time.time()) - 86_400,
                "bucket_width": "1d",
                "group_by": "api_key_id",
            },
            headers={"Authorization": f"Bearer {key}"},
        )
        assert answer.status_code == 200
        return [result for bucket in answer.json()["data"] for result in bucket["results"]]

    # Any of the organisation's keys reads the organisation's usage, every key's of it.
    seen = usage(first.raw_key)
    assert sorted(r["images"] for r in seen) == [1, 1] and len({r["api_key_id"] for r in seen}) == 2
    assert usage(owner_key) == []
    outsider = client.get(
        f"/v1/images/generations/{job}", headers={"Authorization": f"Bearer {owner_key}"}
    )
    assert outsider.status_code == 404


def grant_credits(*args: str) -> str:
    out = StringIO()
    call_command("grant_credits", *args, stdout=out)
    return out.getvalue().strip()


def test_an_operator_grants_credits_to_an_organisation_by_name_or_id(acme):
    org, _, _ = acme

    by_name = grant_credits("acme", "500")
    by_id = grant_credits(f"org:{org.pk}", "250", "--reason", "Goodwill")

    assert by_name == (
        f"Granted 500 credits to the organisation Acme (org:{org.pk}); "
        "balance 1500 credits ($1.5000)."
    )
    assert by_id.startswith(f"Granted 250 credits to the organisation Acme (org:{org.pk})")
    assert ledger_rows(org)[-2:] == [("grant", 500, 1500), ("grant", 250, 1750)]
    assert assert_ledger_balanced(org) == 1750


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Nobody Inc", "No user or organisation named Nobody Inc"),
        ("org:999999", "No organisation org:999999"),
        ("org:x", "No organisation org:x"),
        ("nobody@example.com", "No user with the email nobody@example.com"),
    ],
)
def test_a_grant_to_no_such_account_is_refused_and_writes_nothing(acme, name, message):
    org, _, _ = acme
    with pytest.raises(CommandError, match=message):
        grant_credits(name, "500")
    assert balance(org) == 1000


def test_two_organisations_of_one_name_must_be_named_by_id(acme):
    org, _, _ = acme
    twin = Account.objects.create(kind=Account.Kind.ORGANISATION, name="ACME")

    with pytest.raises(CommandError, match=f"name one of org:{org.pk}, org:{twin.pk}"):
        grant_credits("Acme", "500")
    assert balance(org) == 1000
