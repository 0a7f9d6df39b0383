"""Scale-out (issue 7, "Proof that it scales"): two web processes and two Celery workers share one
PostgreSQL, one Redis (rate limits and the broker) and one real S3-compatible server (Debian's
Swift with s3api, tests/support/swift.py), under concurrent API and playground load.

One web process is SIGKILLed with a slow generation in flight on it, and one worker with a
playground run in flight, while the survivors are busy. The reconciler then re-queues the dead
worker's run (the surviving worker finishes it) and fails and refunds the dead process's request
once past its deadline. Nothing is lost: every row is settled once, every balance equals its
ledger and what was delivered, the tight rate limit of one customer held exactly across both
processes, and every image works from either web process (the killed one replaced by a new one,
as a process manager does) since it lives in the bucket, not on a process's disk.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.db import connections
from django.test import Client
from django.utils import timezone

from accounts.models import User
from generation import ratelimits, services
from generation.models import AccountRateLimit, Generation, Image
from tests.support import swift as swift_support
from tests.support.money import assert_ledger_balanced, ledger_rows
from tests.support.server import server_process
from tests.support.worker import redis_broker, running_worker

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("default_prices"),
]

swift_s3 = swift_support.swift_s3  # the session's Swift (a fixture)

REDIS_URL = "redis://127.0.0.1:6379/9"  # this file's own database on the shared Redis
WINDOW = 5  # seconds: the rate-limit window of this test's servers
TIGHT_LIMIT = 3  # carol's requests per window
BURST = 10  # carol's requests in one window, over both servers
CREDITS = 1000
PRICE = 40  # seedream-4-0 at 1024x1024
UNSETTLED = [Generation.Status.QUEUED, Generation.Status.RUNNING]


@pytest.fixture
def shared_redis(settings: Any) -> None:
    """Rate limits in this file's own Redis database, emptied, for this process too (the test
    client's playground submissions and the reconciler count and release where the servers do)."""
    settings.RATE_LIMIT_REDIS_URL = REDIS_URL
    settings.RATE_LIMIT_WINDOW_SECONDS = WINDOW
    ratelimits._redis_client(REDIS_URL).flushdb()


def start_all(stack: ExitStack, managers: list[AbstractContextManager[Any]]) -> list[Any]:
    """Enter the context managers at once (each waits for its process to be ready, so starting
    them one after another would add up), to be exited with ``stack``."""
    with ThreadPoolExecutor(len(managers)) as pool:
        futures = [pool.submit(manager.__enter__) for manager in managers]
    for manager, future in zip(managers, futures, strict=True):
        if future.exception() is None:
            stack.push(manager)
    return [future.result() for future in futures]  # raises the first failure to start


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:8]}"


def generate(base_url: str, key: str, prompt: str, response_format: str = "url") -> httpx.Response:
    return httpx.post(
        f"{base_url}/v1/images/generations",
        json={
            "model": "seedream-4-0",
            "prompt": prompt,
            "size": "1024x1024",
            "response_format": response_format,
        },
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )


def in_own_connection(work: Callable[[], Any]) -> Callable[[], Any]:
    """``work`` for another thread: Django gives it a connection of its own, closed here."""

    def run() -> Any:
        try:
            return work()
        finally:
            connections.close_all()

    return run


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def start_of_a_window() -> None:
    """Sleep until just after the current rate-limit window turns over."""
    time.sleep(WINDOW - time.time() % WINDOW + 0.05)


def simulator_calls(simulator_url: str, prompt: str) -> int:
    base = simulator_url.removesuffix("/api/v3")
    return int(httpx.get(f"{base}/_sim/calls", params={"prompt": prompt}).json()["calls"])


def fetch_through(base_url: str, path: str) -> httpx.Response:
    """GET ``path`` from one web process and follow its redirect to the bucket."""
    redirect = httpx.get(f"{base_url}{path}", timeout=30)
    assert redirect.status_code == 302, (base_url, path, redirect.status_code, redirect.text)
    return httpx.get(redirect.headers["Location"], timeout=30)


def test_two_web_processes_and_two_workers_lose_nothing_when_one_of_each_is_killed(
    live_server_env: dict[str, str],
    swift_s3: swift_support.Swift,
    shared_redis: None,
    simulator_url: str,
    settings: Any,
    user_factory: Callable[..., User],
    api_key_factory: Callable[..., Any],
) -> None:
    alice, bob, carol, dave, erin = (user_factory(credits=CREDITS) for _ in range(5))
    AccountRateLimit.objects.create(account=carol.personal_account, requests_per_minute=TIGHT_LIMIT)
    key = {user.pk: api_key_factory(user).raw_key for user in (alice, bob, carol)}
    base_env = {
        **live_server_env,
        **swift_s3.env(),
        "RATE_LIMIT_REDIS_URL": REDIS_URL,
        "RATE_LIMIT_WINDOW_SECONDS": str(WINDOW),
    }
    # (server that answered, response format, response) of every API call that must succeed.
    answers: list[tuple[str, str, httpx.Response]] = []

    def call(user: User, base_url: str, prompt: str, response_format: str) -> None:
        response = generate(base_url, key[user.pk], prompt, response_format)
        assert response.status_code == 200, response.text
        answers.append((base_url, response_format, response))

    def api_load(users: list[User], urls: list[str], calls: int) -> list[Callable[[], None]]:
        """Each user's calls spread over ``urls``: mostly url, every third b64_json, one slow."""
        jobs: list[Callable[[], None]] = []
        for user in users:
            for i in range(calls):
                slow = " [sim:latency=1]" if i == 1 else ""
                prompt = unique(f"a harbour {user.pk}-{i}{slow}")
                response_format = "b64_json" if i % 3 == 2 else "url"
                url = urls[(i + user.pk) % len(urls)]
                jobs.append(functools.partial(call, user, url, prompt, response_format))
        return jobs

    with redis_broker(base_env) as env, ExitStack() as stack:
        doomed, survivor, doomed_worker, _ = start_all(
            stack, [server_process(env), server_process(env), running_worker(env),
                    running_worker(env)],
        )  # fmt: skip
        servers = [doomed.url, survivor.url]

        # A slow request in flight on the web process that will be killed: it never answers.
        doomed_prompt = unique("a very slow comet [sim:latency=30]")
        doomed_failures: list[BaseException] = []

        def call_the_doomed_server() -> None:
            try:
                generate(doomed.url, key[alice.pk], doomed_prompt)
            except httpx.HTTPError as exc:  # the server dies under it
                doomed_failures.append(exc)

        doomed_caller = threading.Thread(target=call_the_doomed_server)
        doomed_caller.start()

        # Phase 1, both web processes up: alice and bob over both, and carol's burst at the
        # start of a window, half to each process.
        def carol_burst() -> list[httpx.Response]:
            start_of_a_window()
            with ThreadPoolExecutor(BURST) as pool:
                return list(
                    pool.map(
                        lambda i: generate(servers[i % 2], key[carol.pk], unique("a kite")),
                        range(BURST),
                    )
                )

        with ThreadPoolExecutor(8) as pool:
            burst = pool.submit(carol_burst)
            phase_1 = [pool.submit(job) for job in api_load([alice, bob], servers, 6)]
        for future in phase_1:
            future.result()
        passed = [r for r in burst.result() if r.status_code == 200]
        refused = [r for r in burst.result() if r.status_code != 200]
        assert len(passed) == TIGHT_LIMIT, [r.status_code for r in burst.result()]
        assert {r.status_code for r in refused} == {429}
        assert {r.json()["error"]["code"] for r in refused} == {"rate_limit_requests"}
        # Each pass was counted once, atomically, in the one counter both processes share.
        assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in passed) == list(
            range(TIGHT_LIMIT)
        )
        assert Generation.objects.filter(user=carol).count() == TIGHT_LIMIT
        answers.extend((str(r.url).split("/v1/")[0], "url", r) for r in passed)

        # Two slow playground runs: one worker each (one process each, prefetching one task).
        playground = Client()
        playground.force_login(dave)

        def play(client: Client, prompt: str, n: int = 1) -> None:
            form = {"prompt": prompt, "model": "seedream-4-0", "size": "1K", "n": str(n)}
            response = client.post("/dashboard/playground/", form)
            assert response.status_code == 302, response.content.decode()

        slow_prompts = [unique(f"a slow windmill {i} [sim:latency=2]") for i in range(2)]
        for prompt in slow_prompts:
            play(playground, prompt)
        # Both upstream calls under way (so each worker has one in flight), and the doomed one.
        wait_until(
            lambda: all(simulator_calls(simulator_url, p) == 1 for p in slow_prompts),
            "both workers call the upstream for a slow playground generation",
        )
        wait_until(
            lambda: simulator_calls(simulator_url, doomed_prompt) == 1,
            "the doomed request calls the upstream",
        )
        assert Generation.objects.filter(prompt__in=slow_prompts, status="running").count() == 2

        # Phase 2: API calls to the survivor and more playground work, and mid-load the other web
        # process and one worker are SIGKILLed with their generations in flight.
        erin_client = Client()
        erin_client.force_login(erin)

        def erin_plays() -> None:
            for i in range(3):
                play(erin_client, unique(f"a lantern {i}"), n=2 if i == 1 else 1)

        with ThreadPoolExecutor(8) as pool:
            phase_2: list[Future[Any]] = [pool.submit(in_own_connection(erin_plays))]
            phase_2 += [pool.submit(job) for job in api_load([alice, bob], [survivor.url], 3)]
            doomed_worker.kill()
            os.killpg(doomed.process.pid, signal.SIGKILL)  # its own process group
            doomed.process.wait(timeout=10)
            # The process manager starts a new web process in its place, meanwhile.
            (replacement,) = start_all(stack, [server_process(env)])
        for future in phase_2:
            future.result()
        doomed_caller.join(timeout=30)
        assert doomed_failures, "the request to the killed server should have failed"

        # The surviving worker drains the queue; only the dead worker's run stays unsettled.
        def unsettled_playground() -> list[Generation]:
            return list(Generation.objects.filter(source="playground", status__in=UNSETTLED))

        wait_until(lambda: len(unsettled_playground()) <= 1, "the surviving worker is idle")
        left = unsettled_playground()
        assert len(left) == 1, "the killed worker should have died with a run in flight"
        orphan = left[0]
        assert orphan.prompt in slow_prompts and orphan.status == "running"
        assert (orphan.attempts, orphan.charged_credits) == (1, 0)

        # The reconciler's pass once the dead worker has been silent past the time budget ...
        settings.GENERATION_TIMEOUT_SECONDS = 1
        settings.GENERATION_REDISPATCH_SECONDS = 1
        assert services.reconcile_stuck_generations(now=timezone.now() + timedelta(seconds=3)) == 0
        orphan.refresh_from_db()
        assert orphan.status == "queued"
        # ... and the surviving worker finishes it.
        wait_until(
            lambda: Generation.objects.filter(pk=orphan.pk, status__in=UNSETTLED).count() == 0,
            "the re-queued run is finished",
        )
        orphan.refresh_from_db()
        assert (orphan.status, orphan.attempts, orphan.charged_credits) == ("succeeded", 2, PRICE)
        assert simulator_calls(simulator_url, orphan.prompt) == 2  # run twice, paid once

        # The dead web process's request: failed and refunded once past its deadline.
        killed = Generation.objects.get(prompt=doomed_prompt)
        assert killed.status == "running"
        later = killed.deadline_at + timedelta(seconds=1)
        assert services.reconcile_stuck_generations(now=later) == 1
        assert services.reconcile_stuck_generations(now=later) == 0
        killed.refresh_from_db()
        assert (killed.status, killed.error_code, killed.charged_credits) == (
            "failed",
            "expired",
            0,
        )

        # Every generation is settled, each exactly once.
        assert not Generation.objects.filter(status__in=UNSETTLED).exists()
        generations = list(Generation.objects.all())
        assert len(generations) == (
            1 + 2 * (6 + 3) + TIGHT_LIMIT + 2 + 3  # doomed, alice and bob, carol, dave, erin
        )
        for generation in generations:
            expected = ("failed", 0) if generation.pk == killed.pk else ("succeeded", generation.n)
            delivered = Image.objects.filter(generation=generation).count()
            assert (generation.status, generation.images_delivered, delivered) == (
                *expected,
                expected[1],
            ), generation.public_id
            assert generation.charged_credits == PRICE * delivered
            mine = [
                (kind, amount)
                for kind, amount, _ in ledger_rows(generation.user, generation.ledger_reference)
            ]
            charge = [("charge", -generation.charged_credits)] if generation.charged_credits else []
            assert mine == [
                ("reserve", -generation.reserved_credits),
                ("release", generation.reserved_credits),
                *charge,
            ], generation.public_id

        # Every balance equals its ledger and what was delivered; no slot is left held.
        for user in (alice, bob, carol, dave, erin):
            charged = sum(g.charged_credits for g in generations if g.user_id == user.pk)
            assert assert_ledger_balanced(user) == CREDITS - charged
            assert ratelimits.current_usage(user.personal_account).concurrent == 0
        assert assert_ledger_balanced(alice) == CREDITS - (6 + 3) * PRICE  # the doomed one: 0

        # Every image works from both live web processes: the survivor and the replacement.
        live = [survivor.url, replacement.url]
        images = {image.token: image for image in Image.objects.all()}
        stored = {
            token: swift_s3.client()
            .get_object(Bucket=swift_s3.bucket, Key=image.file.name)["Body"]
            .read()
            for token, image in images.items()
        }
        paths = {
            token: f"/img/{token}.{i.file.name.rsplit('.', 1)[1]}" for token, i in images.items()
        }
        assert len(answers) == 2 * (6 + 3) + TIGHT_LIMIT
        # URLs from both servers, the killed one's too: each is checked on the live two.
        assert {url for url, response_format, _ in answers if response_format == "url"} == set(
            servers
        )
        for base_url, response_format, response in answers:
            (item,) = response.json()["data"]
            image = Image.objects.get(generation__public_id=response.json()["id"])
            if response_format == "b64_json":
                assert base64.b64decode(item["b64_json"]) == stored[image.token]
                continue
            assert item["url"] == f"{base_url}{paths[image.token]}"  # the answering server's

        def check_image(target: tuple[str, str]) -> None:
            base_url, token = target
            served = fetch_through(base_url, paths[token])
            assert (served.status_code, served.headers["Content-Type"]) == (200, "image/jpeg")
            assert served.content == stored[token]

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(check_image, [(url, token) for url in live for token in images]))

        # The gallery's thumbnail URLs work from the survivor (made on first request from the
        # original in the bucket, kept there).
        # The page itself is rendered here: the servers have no collectstatic manifest.
        gallery = playground.get("/dashboard/gallery/")
        assert gallery.status_code == 200
        thumbnails = re.findall(r'src="(/img/t/[^"]+\.webp)"', gallery.content.decode())
        assert sorted(thumbnails) == sorted(
            f"/img/t/{image.token}.webp"
            for image in images.values()
            if image.account_id == dave.personal_account.pk
        )
        with ThreadPoolExecutor(len(thumbnails)) as pool:
            served = list(pool.map(functools.partial(fetch_through, survivor.url), thumbnails))
        assert {(r.status_code, r.headers["Content-Type"]) for r in served} == {(200, "image/webp")}
