"""A web process and a worker SIGKILLed mid-generation, under load: nothing is lost, nothing is
charged twice, no slot outlives its lease, and the service answers again without a restart of
anything but the dead process.

An API generation runs in the web process that took the request (generation/services/
pipeline.py), so a killed web process leaves its rows running with their credits held: the
reconciler, run by Celery beat as in production (RECONCILE_EVERY_SECONDS), fails and releases
them once past their deadline, and their concurrency slots lapse with their lease meanwhile. A
playground generation runs on a Celery worker, so a killed worker leaves its run claimed: the
reconciler queues it again once the worker has been silent past the time budget, and another
worker runs it to the end, charged once.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from generation import ratelimits, services
from generation.catalog import get_model, resolve_size
from generation.models import Generation
from tests.support.money import balance
from tests.support.redis_server import RedisServer
from tests.support.server import server_process
from tests.support.worker import redis_broker, running_worker

from .books import Customer, assert_books_balance_and_nothing_held
from .conftest import Customers, Processes
from .load import FORMATS, Call, generate_concurrently, simulator_calls, unique, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

PRICE = 40  # seedream-4-0 at 1024x1024
CREDITS = 1000
LEASE = 3  # RATE_LIMIT_SLOT_LEASE_SECONDS of the web processes
DEADLINE = 10  # GENERATION_DEADLINE_SECONDS of an API generation: the reconciler's cue
WAIT = 30  # seconds past the figure awaited after which a wait calls the test hung


def test_a_web_process_killed_mid_generation_loses_nothing_and_charges_nothing_twice(
    fault_env: dict[str, str],
    own_redis: RedisServer,
    processes: Processes,
    customers: Customers,
    simulator_url: str,
    tmp_path: Path,
):
    # Alice may run one generation at a time: the one the kill cuts off holds her only slot.
    alice = customers.open(CREDITS, concurrent_generations=1)
    bob = customers.open(CREDITS)
    env = {
        **fault_env,
        "RATE_LIMIT_SLOT_LEASE_SECONDS": str(LEASE),
        "GENERATION_DEADLINE_SECONDS": str(DEADLINE),
        "RECONCILE_EVERY_SECONDS": "1",
    }
    doomed = processes.web(env)
    cut_off = [Call(alice.key, unique("a very slow comet [sim:latency=60]"))] + [
        Call(bob.key, unique("a very slow comet [sim:latency=60]")) for _ in range(3)
    ]
    quick = [Call(bob.key, unique("a comet"), response_format=f) for f in FORMATS * 3]
    answers: list[Any] = []
    in_flight = threading.Thread(
        target=lambda: answers.extend(generate_concurrently(doomed.url, cut_off, timeout=90))
    )

    # The load: slow generations with the upstream while quick ones come and go beside them.
    in_flight.start()
    for response in generate_concurrently(doomed.url, quick):
        assert isinstance(response, httpx.Response) and response.status_code == 200, response
    wait_until(
        lambda: all(simulator_calls(simulator_url, call.prompt) == 1 for call in cut_off),
        "every slow generation is with the upstream",
    )
    os.killpg(doomed.process.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    doomed.process.wait(timeout=10)
    in_flight.join(timeout=WAIT)
    assert len(answers) == len(cut_off)
    assert all(isinstance(answer, httpx.HTTPError) for answer in answers), answers
    killed = [Generation.objects.get(prompt=call.prompt) for call in cut_off]
    assert {g.status for g in killed} == {"running"}  # their process is gone: nobody settles them

    # The process manager starts a new web process; Celery beat and a worker run the reconciler.
    with redis_broker(env, url=own_redis.url()) as worker_env:
        replacement, _ = processes.all_at_once(
            lambda: server_process(env),
            lambda: running_worker(worker_env, beat_schedule=tmp_path / "beat-schedule"),
        )

        # Alice's slot lapses with its lease, whether or not the reconciler has come yet ...
        lapsed = wait_until(
            lambda: ratelimits.current_usage(alice.user().personal_account).concurrent == 0,
            "the dead generation's slot lapses",
            timeout=LEASE + WAIT,
        )
        killed[0].refresh_from_db()
        print(
            f"\nthe killed generation's slot was free {time.monotonic() - killed_at:.1f} s "
            f"after the kill (lease {LEASE} s; waited {lapsed:.1f} s of it here), its row "
            f"still {killed[0].status}"
        )
        # ... so the service answers her again, on the new process.
        [again] = generate_concurrently(replacement.url, [Call(alice.key, unique("a comet"))])
        assert isinstance(again, httpx.Response) and again.status_code == 200, again

        # The reconciler fails and releases what the kill cut off, once past its deadline.
        released = wait_until(
            lambda: not Generation.objects.filter(status__in=Generation.UNSETTLED).exists(),
            "the reconciler settles the killed generations",
            timeout=DEADLINE + WAIT,
        )
        print(
            f"the reconciler released the holds {time.monotonic() - killed_at:.1f} s after "
            f"the kill (deadline {DEADLINE} s after each request; waited {released:.1f} s)"
        )

    for generation in killed:
        generation.refresh_from_db()
        assert (generation.status, generation.error_code, generation.charged_credits) == (
            "failed",
            "expired",
            0,
        )
        # An API generation is never sent upstream again: its customer was told it failed.
        assert simulator_calls(simulator_url, generation.prompt) == 1
    assert balance(alice.user()) == CREDITS - PRICE  # the generation after the kill
    assert balance(bob.user()) == CREDITS - len(quick) * PRICE
    assert_books_balance_and_nothing_held()


def submit(customer: Customer, prompt: str) -> Generation:
    """A playground generation, as the playground's form submits it."""
    model = get_model("seedream-4-0")
    assert model is not None
    spec = services.GenerationSpec(
        model=model, prompt=prompt, size=resolve_size(model, "1024x1024"), n=1
    )
    user = customer.user()
    return services.submit_generation(account=user.personal_account, user=user, spec=spec)


def test_a_worker_killed_mid_generation_is_run_again_and_charged_once(
    fault_env: dict[str, str],
    own_redis: RedisServer,
    processes: Processes,
    customers: Customers,
    simulator_url: str,
):
    dave = customers.open(CREDITS)
    env = {
        **fault_env,
        # A run silent for 5 s (the time budget and one more) has lost its worker.
        "GENERATION_TIMEOUT_SECONDS": "4",
        "GENERATION_REDISPATCH_SECONDS": "1",
        "RECONCILE_EVERY_SECONDS": "1",
    }
    with redis_broker(env, url=own_redis.url()) as worker_env:
        doomed = processes.worker(worker_env)
        cut_off = submit(dave, unique("a slow windmill [sim:latency=2]"))
        queued = [submit(dave, unique("a windmill")) for _ in range(3)]
        wait_until(
            lambda: simulator_calls(simulator_url, cut_off.prompt) == 1,
            "the worker's run is with the upstream",
        )

        doomed.kill()
        killed_at = time.monotonic()
        cut_off.refresh_from_db()
        assert (cut_off.status, cut_off.attempts) == ("running", 1)
        processes.worker(worker_env, beat=True)
        done = wait_until(
            lambda: not Generation.objects.filter(status__in=Generation.UNSETTLED).exists(),
            "every playground generation is settled",
            timeout=WAIT * 2,
        )
        print(
            f"\nevery run settled {time.monotonic() - killed_at:.1f} s after the kill "
            f"(waited {done:.1f} s)"
        )
        # The service answers again: new work goes through the new worker.
        after = submit(dave, unique("a windmill"))
        wait_until(
            lambda: Generation.objects.filter(pk=after.pk, status="succeeded").exists(),
            "a run submitted after the kill succeeds",
        )

    cut_off.refresh_from_db()
    assert (cut_off.status, cut_off.attempts, cut_off.charged_credits) == ("succeeded", 2, PRICE)
    assert simulator_calls(simulator_url, cut_off.prompt) == 2  # run twice upstream, paid once
    for generation in queued:
        generation.refresh_from_db()
        assert (generation.status, generation.charged_credits) == ("succeeded", PRICE)
    assert balance(dave.user()) == CREDITS - 5 * PRICE
    assert_books_balance_and_nothing_held()
