"""A worker SIGKILLed in the middle of an API job (``Prefer: respond-async``): the reconciler,
run by Celery beat as in production, queues the job again once its worker has been silent past
the model's time budget; another worker runs it to the end. The client polling the job sees it
complete once, with its images, charged once (the upstream was paid twice: that is ours).

The playground's version of this is tests/faults/test_killed_processes.py; an API job runs on
the same workers, so the same recovery must hold for it."""

from __future__ import annotations

import httpx
import pytest

from generation.models import Generation
from tests.support.jobs import get_job, wait_for_job
from tests.support.money import balance
from tests.support.redis_server import RedisServer
from tests.support.server import Server, server_process
from tests.support.worker import Worker, redis_broker, running_worker

from .books import assert_books_balance_and_nothing_held
from .conftest import Customers, Processes
from .load import simulator_calls, unique, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

PRICE = 40  # seedream-4-0 at 1024x1024
CREDITS = 1000


def test_a_worker_killed_mid_job_runs_it_again_and_the_job_completes_once_charged_once(
    fault_env: dict[str, str],
    own_redis: RedisServer,
    processes: Processes,
    customers: Customers,
    simulator_url: str,
):
    erin = customers.open(CREDITS)
    env = {
        **fault_env,
        # A run silent for 5 s (the time budget and one more) has lost its worker.
        "GENERATION_TIMEOUT_SECONDS": "4",
        "GENERATION_REDISPATCH_SECONDS": "1",
        "RECONCILE_EVERY_SECONDS": "1",
    }
    with redis_broker(env, url=own_redis.url()) as shared_env:
        web: Server
        doomed: Worker
        web, doomed = processes.all_at_once(
            lambda: server_process(shared_env), lambda: running_worker(shared_env)
        )
        prompt = unique("a slow windmill [sim:latency=2]")
        submitted = httpx.post(
            f"{web.url}/v1/images/generations",
            json={"model": "seedream-4-0", "prompt": prompt, "size": "1024x1024"},
            headers={"Authorization": f"Bearer {erin.key}", "Prefer": "respond-async"},
            timeout=30,
        )
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        wait_until(
            lambda: simulator_calls(simulator_url, prompt) == 1,
            "the worker's run is with the upstream",
        )

        doomed.kill()
        # Nobody is finishing it now: the job reads in progress, its credits held.
        polled = get_job(web.url, erin.key, job_id)
        assert (polled.status_code, polled.json()["status"]) == (202, "in_progress")
        assert balance(erin.user()) == CREDITS - PRICE
        processes.worker(shared_env, beat=True)
        done = wait_for_job(web.url, erin.key, job_id)

    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["status"], body["images_delivered"], body["credits_charged"]) == (
        "completed", 1, PRICE,
    )  # fmt: skip
    assert len(body["data"]) == 1
    generation = Generation.objects.get(public_id=job_id)
    assert (generation.status, generation.attempts) == ("succeeded", 2)
    assert generation.images.count() == 1
    assert simulator_calls(simulator_url, prompt) == 2  # run twice upstream, paid once
    assert balance(erin.user()) == CREDITS - PRICE
    assert_books_balance_and_nothing_held()
