"""Money under real concurrency: two server processes, one PostgreSQL, parallel clients."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest

from accounts.models import Account, Membership, Role
from billing import services as billing
from billing.models import SpendWindow
from generation.models import Generation
from keys import services as keys
from keys.models import ApiKey
from tests.support.clients import hang_up
from tests.support.money import assert_ledger_balanced, ledger_kinds
from tests.support.server import running_server

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture(scope="module")
def two_process_api(live_server_env):
    with running_server(live_server_env, workers=2) as base_url:
        yield base_url


async def _fire(base_url, key, bodies, headers=None):
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        return await asyncio.gather(
            *(
                client.post(
                    "/v1/images/generations",
                    content=json.dumps(body),
                    headers={
                        "Authorization": f"Bearer {key}",
                        "Content-Type": "application/json",
                        **(headers or {}),
                    },
                )
                for body in bodies
            )
        )


def test_30_parallel_requests_against_a_balance_for_10_images_give_10_images(
    two_process_api, default_prices, user_factory, api_key_factory
):
    user = user_factory(credits=400)
    key = api_key_factory(user).raw_key
    bodies = [
        {"model": "seedream-4-0", "prompt": f"fox {i}", "size": "1024x1024"} for i in range(30)
    ]

    responses = asyncio.run(_fire(two_process_api, key, bodies))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 10 + [402] * 20
    assert assert_ledger_balanced(user) == 0
    assert Generation.objects.filter(user=user, status="succeeded").count() == 10
    kinds = [kind for kind, _ in ledger_kinds(user)]
    assert kinds.count("charge") == 10
    assert kinds.count("reserve") == kinds.count("release") == 10


def test_30_parallel_requests_from_three_members_keys_spend_the_organisations_10_images(
    two_process_api, default_prices, user_factory
):
    members = [user_factory() for _ in range(3)]
    org = Account.objects.create(kind=Account.Kind.ORGANISATION, name="Acme")
    for member in members:
        Membership.objects.create(account=org, user=member, role=Role.DEVELOPER)
        billing.grant(member.personal_account, 400, description="own", idempotency_key=f"{member}")
    billing.grant(org, 400, description="Acme's", idempotency_key="acme")
    member_keys = [keys.create_key(org, "ci", made_by=member).raw_key for member in members]
    bodies = [
        {"model": "seedream-4-0", "prompt": f"fox {i}", "size": "1024x1024"} for i in range(10)
    ]

    async def fire_all():
        return await asyncio.gather(*(_fire(two_process_api, key, bodies) for key in member_keys))

    responses = [response for batch in asyncio.run(fire_all()) for response in batch]

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 10 + [402] * 20
    assert assert_ledger_balanced(org) == 0
    assert Generation.objects.filter(account=org, status="succeeded").count() == 10
    # The members' own money is untouched.
    assert [assert_ledger_balanced(member) for member in members] == [400, 400, 400]


def test_30_parallel_requests_with_a_key_capped_at_10_images_spend_exactly_the_cap(
    two_process_api, default_prices, user_factory, api_key_factory
):
    user = user_factory(credits=100_000)
    issued = api_key_factory(user)
    ApiKey.objects.filter(pk=issued.api_key.pk).update(spend_cap_credits=400)  # 10 x 40
    bodies = [
        {"model": "seedream-4-0", "prompt": f"fox {i}", "size": "1024x1024"} for i in range(30)
    ]

    responses = asyncio.run(_fire(two_process_api, issued.raw_key, bodies))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 10 + [402] * 20
    refused = [r.json()["error"]["code"] for r in responses if r.status_code == 402]
    assert set(refused) == {"key_budget_exceeded"}
    # Exactly the cap spent: charged, none held, and the window agrees with the ledger.
    assert assert_ledger_balanced(user) == 100_000 - 400
    assert SpendWindow.objects.get().spent_credits == 400
    assert not Generation.objects.filter(user=user, status__in=Generation.UNSETTLED).exists()
    assert {r.headers["x-key-budget-limit"] for r in responses} == {"400"}


def test_concurrent_repeats_of_one_idempotency_key_charge_once(
    two_process_api, default_prices, user_factory, api_key_factory
):
    user = user_factory(credits=1000)
    key = api_key_factory(user).raw_key
    body = {
        "model": "seedream-4-0",
        "prompt": f"a slow kite {uuid.uuid4()} [sim:latency=0.5]",
        "size": "1024x1024",
    }

    responses = asyncio.run(
        _fire(two_process_api, key, [body] * 6, headers={"Idempotency-Key": "once"})
    )

    assert [response.status_code for response in responses] == [200] * 6
    assert len({response.json()["id"] for response in responses}) == 1
    assert Generation.objects.filter(user=user).count() == 1
    assert assert_ledger_balanced(user) == 960


@pytest.fixture(scope="module")
def small_pool_api(live_server_env):
    """A server whose PostgreSQL pool holds two connections: any leak shows within three."""
    env = {**live_server_env, "DB_POOL_MIN_SIZE": "1", "DB_POOL_MAX_SIZE": "2"}
    with running_server({**env, "DB_POOL_TIMEOUT": "3"}) as base_url:
        yield base_url


def test_clients_that_hang_up_leak_no_database_connections(
    small_pool_api, default_prices, user_factory, api_key_factory
):
    user = user_factory(credits=10_000)
    key = api_key_factory(user).raw_key
    headers = {"Authorization": f"Bearer {key}"}
    for _ in range(4):
        hang_up(small_pool_api, key, latency=0.6, after=0.2)
    deadline = time.monotonic() + 10
    while Generation.objects.filter(user=user, status="running").exists():
        assert time.monotonic() < deadline, "the hung-up generations never settled"
        time.sleep(0.2)

    for _ in range(3):
        response = httpx.post(
            f"{small_pool_api}/v1/images/generations",
            json={"model": "seedream-4-0", "prompt": "after", "size": "1024x1024"},
            headers=headers,
            timeout=30,
        )
        assert response.status_code == 200, response.text
    assert Generation.objects.filter(user=user, status="succeeded").count() == 7
    assert assert_ledger_balanced(user) == 10_000 - 7 * 40
