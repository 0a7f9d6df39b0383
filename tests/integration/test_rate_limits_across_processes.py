"""Rate limits across real server processes (issue 6): two uvicorn processes share the counters,
in Redis (the production path) or in the database (the embedded default; SQLite or PostgreSQL,
whichever this run uses), and the official openai SDK backs off on its own when told to.

Windows are a few seconds long and every burst starts right after one turns over, so a burst
never straddles two windows.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import timedelta

import httpx
import openai
import pytest
from django.utils import timezone
from openai import OpenAI

from billing.models import LedgerEntry
from generation import catalog, ratelimits, services
from generation.models import Generation
from tests.support.money import assert_ledger_balanced, ledger_rows
from tests.support.server import running_server, server_process

pytestmark = [pytest.mark.integration, pytest.mark.smoke, pytest.mark.django_db(transaction=True)]

REDIS_URL = "redis://127.0.0.1:6379/8"  # this file's own database on the shared Redis
WINDOW = 5
BACKENDS = [
    pytest.param("redis", id="redis"),
    pytest.param("database", id="database"),
]


@pytest.fixture
def backend(request, settings):
    """Point this process (the reconciler, current_usage) where the servers count."""
    if request.param == "redis":
        settings.RATE_LIMIT_REDIS_URL = REDIS_URL
        ratelimits._redis_client(REDIS_URL).flushdb()
    else:
        settings.RATE_LIMIT_REDIS_URL = ""
    settings.RATE_LIMIT_WINDOW_SECONDS = WINDOW
    return request.param


def server_env(
    base: dict[str, str],
    backend: str,
    *,
    requests: int = 1_000_000,
    images: int = 1_000_000,
    concurrent: int = 100_000,
    lease: int = 600,
) -> dict[str, str]:
    tier = {
        "id": "tier-x", "name": "Tier X", "requests_per_minute": requests,
        "images_per_minute": images, "concurrent_generations": concurrent,
    }  # fmt: skip
    return {
        **base,
        "RATE_LIMIT_TIERS": json.dumps([tier]),
        "RATE_LIMIT_WINDOW_SECONDS": str(WINDOW),
        "RATE_LIMIT_REDIS_URL": REDIS_URL if backend == "redis" else "",
        "RATE_LIMIT_SLOT_LEASE_SECONDS": str(lease),
    }


@contextmanager
def two_servers(env: dict[str, str]) -> Iterator[list[str]]:
    with ExitStack() as stack:
        yield [stack.enter_context(running_server(env)) for _ in range(2)]


def start_of_a_window() -> None:
    """Sleep until just after the current window turns over."""
    time.sleep(WINDOW - time.time() % WINDOW + 0.05)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def generate(base_url: str, key: str, prompt: str, timeout: float = 60) -> httpx.Response:
    return httpx.post(
        f"{base_url}/v1/images/generations",
        json={"model": "seedream-4-0", "prompt": prompt, "size": "1024x1024"},
        headers=auth(key),
        timeout=timeout,
    )


def slow_prompt(seconds: float) -> str:
    return f"a patient heron {uuid.uuid4()} [sim:latency={seconds}]"


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_exactly_the_allowed_number_pass_in_a_window_across_two_processes(
    backend, live_server_env, default_prices, user_factory, api_key_factory
):
    allowed = 7
    user = user_factory(credits=1000)
    key = api_key_factory(user).raw_key
    with two_servers(server_env(live_server_env, backend, requests=allowed)) as urls:
        start_of_a_window()
        with ThreadPoolExecutor(max_workers=24) as pool:
            responses = list(
                pool.map(
                    lambda i: httpx.get(f"{urls[i % 2]}/v1/credits", headers=auth(key), timeout=30),
                    range(24),
                )
            )

        passed = [r for r in responses if r.status_code == 200]
        refused = [r for r in responses if r.status_code != 200]
        assert len(passed) == allowed
        assert {r.status_code for r in refused} == {429}
        assert {r.json()["error"]["code"] for r in refused} == {"rate_limit_requests"}
        # Each request that passed was counted once, atomically: each saw a different count.
        assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in passed) == list(
            range(allowed)
        )

        # Waiting as long as the servers said lets the next request through, on either server.
        time.sleep(max(int(r.headers["retry-after-ms"]) for r in refused) / 1000)
        for url in urls:
            assert httpx.get(f"{url}/v1/credits", headers=auth(key)).status_code == 200


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_the_concurrency_limit_holds_under_parallel_load_across_two_processes(
    backend, live_server_env, default_prices, user_factory, api_key_factory
):
    user = user_factory(credits=1000)
    key = api_key_factory(user).raw_key
    with two_servers(server_env(live_server_env, backend, concurrent=3)) as urls:
        with ThreadPoolExecutor(max_workers=10) as pool:
            responses = list(
                pool.map(lambda i: generate(urls[i % 2], key, slow_prompt(2)), range(10))
            )

        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] * 3 + [429] * 7
        refused = [r for r in responses if r.status_code == 429]
        assert {r.json()["error"]["code"] for r in refused} == {"rate_limit_concurrency"}
        assert {r.headers["Retry-After"] for r in refused} == {"2"}

        # Every slot came back when its generation ended: three more can run at once.
        assert ratelimits.current_usage(user.personal_account).concurrent == 0
        with ThreadPoolExecutor(max_workers=3) as pool:
            again = list(pool.map(lambda i: generate(urls[i % 2], key, slow_prompt(1)), range(3)))
        assert [r.status_code for r in again] == [200] * 3

    # Only the six that ran were charged; the refused ones cost nothing.
    assert Generation.objects.filter(user=user).count() == 6
    assert assert_ledger_balanced(user) == 1000 - 6 * 40


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_a_slot_held_by_a_killed_process_frees_after_its_lease_and_the_money_is_settled_once(
    backend, live_server_env, default_prices, user_factory, api_key_factory
):
    lease = 8
    user = user_factory(credits=1000)
    key = api_key_factory(user).raw_key
    env = server_env(live_server_env, backend, concurrent=1, lease=lease)
    with server_process(env) as doomed, running_server(env) as survivor_url:
        doomed_url = doomed.url
        failures: list[BaseException] = []

        def call_the_doomed_server() -> None:
            try:
                generate(doomed_url, key, slow_prompt(30))
            except httpx.HTTPError as exc:  # the server dies under it
                failures.append(exc)

        caller = threading.Thread(target=call_the_doomed_server)
        caller.start()
        deadline = time.monotonic() + 20
        while not Generation.objects.filter(user=user, status=Generation.Status.RUNNING).exists():
            assert time.monotonic() < deadline, "the slow generation never started"
            time.sleep(0.05)
        killed = Generation.objects.get(user=user)

        os.killpg(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait(timeout=10)
        caller.join(timeout=30)
        assert failures, "the request to the killed server should have failed"

        # The dead process's slot is still leased: the survivor refuses a second generation ...
        blocked = generate(survivor_url, key, "a fox")
        assert blocked.status_code == 429
        assert blocked.json()["error"]["code"] == "rate_limit_concurrency"

        # ... until the lease (taken before the row was written) has run out.
        lease_over = killed.created_at + timedelta(seconds=lease)
        time.sleep(max((lease_over - timezone.now()).total_seconds(), 0) + 0.2)
        assert generate(survivor_url, key, "a fox").status_code == 200

    # The reconciler settles the orphan: released in full, charged nothing, once.
    assert services.reconcile_stuck_generations(now=killed.deadline_at + timedelta(seconds=1)) == 1
    assert services.reconcile_stuck_generations(now=killed.deadline_at + timedelta(seconds=2)) == 0
    killed.refresh_from_db()
    assert (killed.status, killed.error_code, killed.charged_credits) == ("failed", "expired", 0)
    assert [(kind, amount) for kind, amount, _ in ledger_rows(user, killed.ledger_reference)] == [
        ("reserve", -40),
        ("release", 40),
    ]
    charges = LedgerEntry.objects.filter(
        account__owner__personal_owner=user, kind=LedgerEntry.Kind.CHARGE
    )
    assert [c.amount_credits for c in charges] == [-40]  # the survivor's generation, once
    assert assert_ledger_balanced(user) == 960
    assert ratelimits.current_usage(user.personal_account).concurrent == 0


@pytest.mark.parametrize("backend", [BACKENDS[0]], indirect=True)
def test_the_openai_sdk_over_its_limit_backs_off_on_its_own_and_succeeds(
    backend, live_server_env, default_prices, user_factory, api_key_factory
):
    user = user_factory(credits=1000)
    key = api_key_factory(user).raw_key
    with running_server(server_env(live_server_env, backend, requests=2)) as url:
        patient = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=2)
        hasty = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        start_of_a_window()
        assert patient.models.list().data
        assert patient.models.list().data

        # Over the limit: without retries the SDK raises RateLimitError with our code ...
        with pytest.raises(openai.RateLimitError) as caught:
            hasty.models.list()
        assert caught.value.code == "rate_limit_requests"

        # ... and with its default retries it waits as told and gets through, raising nothing.
        response = patient.models.with_raw_response.list()
        assert response.retries_taken == 1
        assert [model.id for model in response.parse().data] == [m.id for m in catalog.all_models()]
        assert response.headers["x-ratelimit-remaining-requests"] == "1"
