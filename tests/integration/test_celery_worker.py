"""Playground generations through a real Celery worker process and the Redis broker.

The test process queues work exactly as the playground does; a `celery -A config worker`
subprocess takes it from Redis, calls the upstream simulator over HTTP, stores the images and
settles the ledger in the shared PostgreSQL test database.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.utils import timezone

from generation import services
from generation.catalog import get_model, resolve_size
from generation.models import Generation, Image
from tests.support.money import assert_ledger_balanced, ledger_kinds
from tests.support.worker import redis_broker, running_worker

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("default_prices")]


@pytest.fixture
def broker_env(live_server_env: dict[str, str]) -> Iterator[dict[str, str]]:
    with redis_broker(live_server_env) as env:
        yield env


def submit(user: Any, prompt: str, n: int = 1) -> Generation:
    model = get_model("seedream-4-0")
    assert model is not None
    spec = services.GenerationSpec(
        model=model, prompt=prompt, size=resolve_size(model, "1024x1024"), n=n
    )
    return services.submit_generation(account=user.personal_account, user=user, spec=spec)


def wait_for(
    generation: Generation, *statuses: str, timeout: float = 30, worker=None
) -> Generation:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        generation.refresh_from_db()
        if generation.status in statuses:
            return generation
        time.sleep(0.1)
    raise AssertionError(
        f"{generation.public_id} is still {generation.status}"
        + (f"\n{worker.log()}" if worker else "")
    )


def simulator_calls(simulator_url: str, prompt: str) -> int:
    base = simulator_url.removesuffix("/api/v3")
    return int(httpx.get(f"{base}/_sim/calls", params={"prompt": prompt}).json()["calls"])


@pytest.mark.django_db(transaction=True)
def test_the_playground_queues_and_a_worker_runs_it_from_redis(broker_env, user_factory, client):
    owner = user_factory(credits=1000)
    client.force_login(owner)
    with running_worker(broker_env) as worker:
        response = client.post(
            "/dashboard/playground/",
            {
                "prompt": "a lighthouse in fog",
                "model": "seedream-4-0",
                "size": "1K",
                "n": "2",
            },
        )
        assert response.status_code == 302, response.content.decode()
        generation = Generation.objects.get(user=owner)
        assert generation.source == "playground"

        done = wait_for(generation, "succeeded", "failed", worker=worker)

    assert done.status == "succeeded", worker.log()
    assert (done.images_delivered, done.charged_credits, done.attempts) == (2, 80, 1)
    assert Image.objects.filter(generation=done).count() == 2
    gallery = client.get("/dashboard/gallery/").content.decode()
    for image in Image.objects.filter(generation=done):
        assert f"/img/t/{image.token}.webp" in gallery
    assert assert_ledger_balanced(owner) == 920
    assert ledger_kinds(owner) == [
        ("grant", 1000),
        ("reserve", -80),
        ("release", 80),
        ("charge", -80),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_generation_is_recovered_and_charged_once(
    broker_env, user_factory, simulator_url, settings
):
    owner = user_factory(credits=1000)
    prompt = f"a slow windmill {uuid.uuid4().hex[:6]} [sim:latency=3]"
    with running_worker(broker_env) as worker:
        generation = submit(owner, prompt)
        wait_for(generation, "running")
        time.sleep(0.5)  # the upstream call is under way
        worker.kill()
    generation.refresh_from_db()
    assert generation.status == "running"  # nobody will finish it: its worker is gone

    # The reconciler's next pass, once the dead worker has been silent past the time budget.
    settings.GENERATION_TIMEOUT_SECONDS = 1
    settings.GENERATION_REDISPATCH_SECONDS = 1
    services.reconcile_stuck_generations(now=timezone.now() + timedelta(seconds=3))
    generation.refresh_from_db()
    assert generation.status == "queued"

    with running_worker(broker_env) as worker:
        done = wait_for(generation, "succeeded", "failed")

    assert done.status == "succeeded", worker.log()
    assert (done.attempts, done.images_delivered, done.charged_credits) == (2, 1, 40)
    assert simulator_calls(simulator_url, prompt) == 2  # the upstream ran it twice...
    assert ledger_kinds(owner).count(("charge", -40)) == 1  # ...the customer paid once
    assert assert_ledger_balanced(owner) == 960
