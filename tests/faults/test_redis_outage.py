"""Redis stopped mid-load, under a tier tight enough that its limits bite: every request is
still answered (200, or 429 from the limiter: never a 500), the limits still hold while Redis is
down, sign-in and /readyz keep answering, the log says so a few times rather than once per
request, and once Redis answers again the same web process counts there again.

The web process has one Redis of the test's own for everything (REDIS_URL: the cache, the rate
limits and the Celery broker, as an installation with one Redis has them). The API's
generations never touch the broker, so no worker is started. While Redis is down the limits are
counted in the database, afresh (server/outage.py, generation/ratelimits.py): an account may
pass up to its limit again in the window in which Redis went, and once more when it comes back
empty, but never more than its limit per window in each place.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest
from openai.types import ImagesResponse

from generation.models import Generation
from tests.support.money import balance
from tests.support.redis_server import RedisServer

from .books import Customer, assert_books_balance_and_nothing_held
from .conftest import Customers, Processes
from .load import (
    FORMATS,
    Call,
    generate_concurrently,
    sdk_generate_concurrently,
    simulator_calls,
    unique,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

PRICE = 40  # seedream-4-0 at 1024x1024
CREDITS = 5000
LIMIT = 6  # requests per window
# An hour: a phase of this test lies in one window (two, if it straddles the turn of the hour;
# the bounds below allow for that).
WINDOW = 3600
TIGHT_TIER = [
    {"id": "tight", "name": "Tight", "requests_per_minute": LIMIT, "images_per_minute": 1000,
     "concurrent_generations": 100},
]  # fmt: skip
SLOW = 3  # generations per customer with the upstream when Redis stops
METRICS_TOKEN = "fault-test-metrics-token"


@dataclass
class Tally:
    """What one customer was answered in one phase of the load."""

    served: int = 0
    refused: int = 0
    refusal_codes: set[str] = field(default_factory=set)
    prompts_served: list[str] = field(default_factory=list)

    def add(self, call: Call, answer: Any) -> None:
        """Count ``answer``; anything but a 200 or the limiter's 429 fails the test."""
        if isinstance(answer, ImagesResponse) or (
            isinstance(answer, httpx.Response) and answer.status_code == 200
        ):
            self.served += 1
            self.prompts_served.append(call.prompt)
            return
        if isinstance(answer, openai.RateLimitError):
            code = str(answer.code)
        elif isinstance(answer, httpx.Response) and answer.status_code == 429:
            code = answer.json()["error"]["code"]
        else:
            raise AssertionError(f"{call.prompt!r} was answered {describe(answer)}")
        self.refused += 1
        self.refusal_codes.add(code)


def describe(answer: Any) -> str:
    if isinstance(answer, httpx.Response):
        return f"{answer.status_code} {answer.text[:300]}"
    return repr(answer)


def windows_between(started: float, ended: float) -> int:
    """How many rate-limit windows the span touched (1, or 2 across the turn of one)."""
    return math.floor(ended / WINDOW) - math.floor(started / WINDOW) + 1


def burst(base_url: str, customer: Customer, count: int, what: str, tally: Tally) -> None:
    """``count`` quick generations at once, half over raw HTTP and half through the SDK."""
    calls = [Call(customer.key, unique(what), response_format=FORMATS[i % 2]) for i in range(count)]
    raw, sdk = calls[: count // 2], calls[count // 2 :]
    answers: list[Any] = [*generate_concurrently(base_url, raw)]
    answers += sdk_generate_concurrently(base_url, sdk)
    for call, answer in zip(raw + sdk, answers, strict=True):
        tally.add(call, answer)


def fallbacks_in_metrics(base_url: str, use: str) -> float:
    scrape = httpx.get(
        f"{base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    )
    assert scrape.status_code == 200, scrape.text
    found = re.search(rf'^seedream_redis_fallbacks_total{{use="{use}"}} (\S+)$', scrape.text, re.M)
    return float(found.group(1)) if found else 0.0


def sign_in_attempt(base_url: str) -> tuple[int, int]:
    """The sign-in page, then a wrong password sent through it (allauth counts failed sign-ins
    in the cache): both statuses."""
    with httpx.Client(base_url=base_url, timeout=10, trust_env=False) as browser:
        page = browser.get("/accounts/login/")
        attempt = browser.post(
            "/accounts/login/",
            data={
                "login": "nobody@example.com",
                "password": "not the password",
                "csrfmiddlewaretoken": browser.cookies.get("csrftoken", ""),
            },
        )
        return page.status_code, attempt.status_code


def test_redis_stopped_mid_load_every_request_is_answered_and_the_limits_still_hold(
    fault_env: dict[str, str],
    own_redis: RedisServer,
    processes: Processes,
    customers: Customers,
    simulator_url: str,
    static_root: str,
):
    alice, bob, carol = (customers.open(CREDITS) for _ in range(3))
    payers = (alice, bob)
    env = {
        **fault_env,
        "REDIS_URL": own_redis.url(),
        "RATE_LIMIT_REDIS_URL": own_redis.url(),
        "CELERY_BROKER_URL": own_redis.url(),
        "RATE_LIMIT_TIERS": json.dumps(TIGHT_TIER),
        "RATE_LIMIT_WINDOW_SECONDS": str(WINDOW),
        "REDIS_RETRY_SECONDS": "1",
        "METRICS_TOKEN": METRICS_TOKEN,
        "STATIC_ROOT": static_root,  # the sign-in page renders
        # Room for the slow generations' latency.
        "UPSTREAM_TIMEOUT_SECONDS": "10",
        "GENERATION_TIMEOUT_SECONDS": "20",
    }
    web = processes.web(env)
    before = {c.user_id: Tally() for c in payers}
    down = {c.user_id: Tally() for c in payers}
    after = Tally()

    # Redis up: each customer's first requests of the window go to the upstream and are still
    # there when it stops ...
    up_started = time.time()
    slow = [
        Call(c.key, unique("a slow lighthouse [sim:latency=4]"), response_format=f)
        for c in payers
        for f in (FORMATS * SLOW)[:SLOW]
    ]
    slow_answers: list[Any] = []
    in_flight = threading.Thread(
        target=lambda: slow_answers.extend(generate_concurrently(web.url, slow))
    )
    in_flight.start()
    wait_until(
        lambda: all(simulator_calls(simulator_url, call.prompt) == 1 for call in slow),
        "every slow generation is with the upstream",
    )
    # ... and beside them the limits bite (counted in Redis).
    for customer in payers:
        burst(web.url, customer, LIMIT - SLOW + 2, "a lighthouse", before[customer.user_id])
    up_ended = time.time()
    for customer in payers:
        tally = before[customer.user_id]
        assert 0 < tally.served <= LIMIT * windows_between(up_started, up_ended) - SLOW, tally
        assert tally.refusal_codes == {"rate_limit_requests"}, tally
        assert own_redis.client().keys(f"seedream:rl:a{customer.account_id}:requests:*")

    mid_generation = Generation.objects.filter(
        prompt__in=[c.prompt for c in slow], status=Generation.Status.RUNNING
    ).count()
    own_redis.stop()
    stopped_at = time.monotonic()

    # Redis down: two bursts of twice the limit each, for each customer, and the pages.
    down_started = time.time()
    for _ in range(2):
        for customer in payers:
            burst(web.url, customer, 2 * LIMIT, "a lighthouse", down[customer.user_id])
    page, attempt = sign_in_attempt(web.url)
    ready = httpx.get(f"{web.url}/readyz", timeout=10)
    down_ended = time.time()
    in_flight.join(timeout=60)

    assert (page, attempt) == (200, 200), web.log()
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "degraded" and ready.json()["failed"] == ["redis"]
    # The generations admitted before Redis stopped finished while it was down, and were served.
    assert len(slow_answers) == len(slow)
    for answer in slow_answers:
        assert isinstance(answer, httpx.Response) and answer.status_code == 200, describe(answer)
    windows = windows_between(down_started, down_ended)
    for customer in payers:
        tally = down[customer.user_id]
        # Enforced, in the database: no more than the limit passed in the window ...
        assert 0 < tally.served <= LIMIT * windows, tally
        assert tally.served + tally.refused == 4 * LIMIT
        assert tally.refusal_codes == {"rate_limit_requests"}, tally
    # ... and the outage was logged a few times, not once per request, without a stack trace.
    log = web.log()
    outage_lines = log.count("Redis unreachable")
    assert 1 <= outage_lines <= 4, log
    assert "Traceback" not in log, log
    assert fallbacks_in_metrics(web.url, "rate_limits") > 0
    assert fallbacks_in_metrics(web.url, "cache") > 0

    # Redis back (empty): the same process counts there again, within a retry interval.
    own_redis.start()
    back_at = time.monotonic()

    def counted_in_redis_again() -> bool:
        [answer] = generate_concurrently(web.url, [Call(carol.key, unique("a lighthouse"))])
        Tally().add(Call(carol.key, "carol"), answer)  # a 200, or the limiter's 429
        return bool(own_redis.client().keys(f"seedream:rl:a{carol.account_id}:requests:*"))

    recovered = wait_until(counted_in_redis_again, "the web process counts in Redis again")
    after_started = time.time()
    burst(web.url, alice, LIMIT + 2, "a lighthouse", after)
    after_ended = time.time()
    assert 0 < after.served <= LIMIT * windows_between(after_started, after_ended), after
    assert after.refusal_codes <= {"rate_limit_requests"}
    assert "Redis answers again" in web.log()
    assert httpx.get(f"{web.url}/readyz", timeout=10).json()["status"] == "ok"

    served_down = sum(t.served for t in down.values())
    refused_down = sum(t.refused for t in down.values())
    print(
        f"\nRedis down {back_at - stopped_at:.1f} s: {served_down + refused_down} generation "
        f"requests answered (2 customers), {served_down} served and {refused_down} refused 429 "
        f"by the limit of {LIMIT} requests per window per account (served per account: "
        f"{[t.served for t in down.values()]} in {windows} window(s)); {len(slow)} generations "
        f"admitted before the stop ({mid_generation} of them still with the upstream then) "
        f"finished during it; sign-in {page}/{attempt}, /readyz "
        f"{ready.status_code} {ready.json()['status']}; {outage_lines} 'Redis unreachable' log "
        f"lines; counted in Redis again {recovered:.1f} s after it came back; up: "
        f"{[t.served for t in before.values()]} served beside {SLOW} slow each, "
        f"{windows_between(up_started, up_ended)} window(s)"
    )

    # Nothing lost, nothing charged twice: one generation (sent upstream once) per 200, charged
    # once; a 429 made none.
    for customer in payers:
        served = (
            before[customer.user_id].prompts_served
            + [c.prompt for c in slow if c.key == customer.key]
            + down[customer.user_id].prompts_served
            + (after.prompts_served if customer is alice else [])
        )
        generations = Generation.objects.filter(user_id=customer.user_id)
        assert sorted(generations.values_list("prompt", flat=True)) == sorted(served)
        assert {g.status for g in generations} == {"succeeded"}
        assert all(simulator_calls(simulator_url, prompt) == 1 for prompt in served)
        assert balance(customer.user()) == CREDITS - len(served) * PRICE
    assert_books_balance_and_nothing_held(redis_url=own_redis.url())
