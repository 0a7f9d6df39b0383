"""Rate limits (issue 6), in process, on both backends: the database (the embedded default) and
Redis (the production path).

Most tests run on a clock of their own (``ratelimits.time`` replaced) that stands still half a
second into a fixed window, so a burst can never straddle two windows and every header has one
exact value; ``clock.advance`` turns windows over. One test runs on the real clock to show that
waiting as long as Retry-After says is enough.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Account
from billing import services as billing
from billing.models import LedgerEntry
from generation import ratelimits, services
from generation.catalog import get_model, resolve_size
from generation.models import AccountRateLimit, ConcurrencySlot, Generation, RateCounter
from generation.refusals import RateLimited
from keys import services as keys
from server import metrics
from tests.support.money import assert_ledger_balanced, ledger_rows

pytestmark = pytest.mark.smoke

REDIS_URL = "redis://127.0.0.1:6379/7"  # this file's own database on the shared Redis
WINDOW = 10
START = 1_800_000_000.5  # half a second into a window (1_800_000_000 is a multiple of WINDOW)
# Listed out of order on purpose: tiers() sorts them by threshold.
TIERS = [
    {"id": "tier-2", "name": "Tier 2", "min_lifetime_credits": 20_000,
     "min_balance_credits": 10_000, "requests_per_minute": 20, "images_per_minute": 16,
     "concurrent_generations": 4},
    {"id": "free", "name": "Free", "min_lifetime_credits": 0, "min_balance_credits": 0,
     "requests_per_minute": 5, "images_per_minute": 4, "concurrent_generations": 2},
    {"id": "tier-1", "name": "Tier 1", "min_lifetime_credits": 5_000,
     "requests_per_minute": 10, "images_per_minute": 8, "concurrent_generations": 3},
]  # fmt: skip
DURATION = re.compile(r"^(\d+ms|\d+s|\d+m\d+s)$")


class Clock:
    """What ``ratelimits`` sees as ``time``: stands still unless advanced (or ``real``)."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.real = False

    def time(self) -> float:
        return time.time() if self.real else self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(params=["database", "redis"])
def backend(request, settings):
    if request.param == "redis":
        settings.RATE_LIMIT_REDIS_URL = REDIS_URL
        ratelimits._redis_client(REDIS_URL).flushdb()
    else:
        settings.RATE_LIMIT_REDIS_URL = ""
    return request.param


@pytest.fixture
def clock(monkeypatch):
    fake = Clock(START)
    monkeypatch.setattr(ratelimits, "time", fake)
    return fake


@pytest.fixture(autouse=True)
def rate_limits(settings, backend, clock):
    settings.RATE_LIMIT_TIERS = TIERS
    settings.RATE_LIMIT_WINDOW_SECONDS = WINDOW
    settings.RATE_LIMIT_SLOT_LEASE_SECONDS = 600
    settings.RATE_LIMIT_CONCURRENCY_RETRY_SECONDS = 2


@pytest.fixture
def sent(monkeypatch):
    """Playground generations handed to the broker (no broker needed)."""
    calls: list[int] = []
    monkeypatch.setattr(
        "generation.tasks.send_generation", lambda pk, countdown=0: calls.append(pk)
    )
    return calls


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def generate(client, key, *, n=1, prompt="a red fox"):
    return client.post(
        "/v1/images/generations",
        json.dumps({"model": "seedream-4-0", "prompt": prompt, "size": "1024x1024", "n": n}),
        content_type="application/json",
        headers=auth(key),
    )


def get_credits(client, key):
    return client.get("/v1/credits", headers=auth(key))


def rate_headers(response):
    return {
        name.lower(): value
        for name, value in response.headers.items()
        if name.lower().startswith("x-ratelimit-")
        or name.lower() in ("retry-after", "retry-after-ms")
    }


def limit_requests(response) -> int:
    return int(response.headers["x-ratelimit-limit-requests"])


def error(response):
    return response.json()["error"]


def spec(n=1):
    model = get_model("seedream-4-0")
    return services.GenerationSpec(
        model=model, prompt="a kite", size=resolve_size(model, "1024x1024"), n=n
    )


# - Tiers ----------------------------------------------------------------------------------------


def test_tiers_follow_lifetime_credits_and_where_a_tier_says_so_the_balance():
    assert [t.id for t in ratelimits.tiers()] == ["free", "tier-1", "tier-2"]
    assert ratelimits.tier_for(0, 0).id == "free"
    assert ratelimits.tier_for(4_999, 4_999).id == "free"
    assert ratelimits.tier_for(5_000, 0).id == "tier-1"
    # Tier 2 needs both: enough paid in total and enough left.
    assert ratelimits.tier_for(100_000, 9_999).id == "tier-1"
    assert ratelimits.tier_for(19_999, 50_000).id == "tier-1"
    assert ratelimits.tier_for(20_000, 10_000).id == "tier-2"
    free = ratelimits.tier_for(0, 0)
    assert ratelimits.next_tier(free).id == "tier-1"
    assert ratelimits.next_tier(ratelimits.tier_for(20_000, 10_000)) is None


def test_a_grant_or_top_up_moves_the_account_up_a_tier_and_the_headers_follow(
    client, user_factory, api_key_factory
):
    user = user_factory(credits=1000)
    key = api_key_factory(user).raw_key
    assert limit_requests(get_credits(client, key)) == 5  # Free

    billing.grant(user.personal_account, 4_000, description="welcome", idempotency_key="t:grant")
    assert limit_requests(get_credits(client, key)) == 10  # 5 000 in total: Tier 1

    top_up = LedgerEntry.Kind.TOP_UP
    billing.grant(
        user.personal_account, 15_000, description="card", idempotency_key="t:top", kind=top_up
    )
    response = get_credits(client, key)
    assert limit_requests(response) == 20  # 20 000 in total and 20 000 left: Tier 2
    assert response.headers["x-ratelimit-limit-images"] == "16"

    # Tier 2 also asks for a balance: spent below it, the account is back in Tier 1 ...
    billing.adjust(user.personal_account, -15_000, reason="spent elsewhere", operator="test")
    assert limit_requests(get_credits(client, key)) == 10
    # ... and a top-up that brings it back restores Tier 2.
    billing.grant(
        user.personal_account, 5_000, description="card", idempotency_key="t:top2", kind=top_up
    )
    assert limit_requests(get_credits(client, key)) == 20

    # A refunded payment takes its credits out of the total again.
    billing.take_back(
        user.personal_account.pk,
        20_000,
        reference="refund",
        idempotency_key="t:refund",
        description="refund",
    )
    assert limit_requests(get_credits(client, key)) == 10


def test_an_operator_override_replaces_the_tier_values_field_by_field(client, owner, owner_key):
    AccountRateLimit.objects.create(
        account=owner.personal_account, requests_per_minute=2, images_per_minute=100, note="test"
    )

    first = get_credits(client, owner_key)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-limit-images"] == "100"
    assert generate(client, owner_key, n=6).status_code == 200  # over Free's 4 images
    refused = get_credits(client, owner_key)

    assert refused.status_code == 429
    assert error(refused)["code"] == "rate_limit_requests"
    assert "a custom limit" in error(refused)["message"]
    # An empty field keeps the tier's value (Free: 2 at a time).
    assert ratelimits.limits_for(owner.personal_account).concurrent == 2
    assert ratelimits.limits_for(owner.personal_account).custom is True


# - Per-key limits -------------------------------------------------------------------------------


def test_a_key_limit_below_the_accounts_refuses_while_the_account_has_room(
    client, owner, api_key_factory
):
    limited = api_key_factory(owner, "limited")
    keys.set_key_limits(
        limited.api_key, requests_per_minute=2, images_per_minute=None, concurrent_generations=None
    )
    other = api_key_factory(owner, "other").raw_key

    first = get_credits(client, limited.raw_key)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert get_credits(client, limited.raw_key).status_code == 200
    refused = get_credits(client, limited.raw_key)

    assert refused.status_code == 429
    assert error(refused)["code"] == "rate_limit_requests"
    assert "this API key's" in error(refused)["message"]
    # The account (5 a window) has room: its other key is not affected, and the account's
    # own count shows every request that passed.
    passed = get_credits(client, other)
    assert passed.status_code == 200
    assert passed.headers["x-ratelimit-limit-requests"] == "5"
    assert passed.headers["x-ratelimit-remaining-requests"] == "2"


def test_a_key_images_limit_counts_for_that_key_and_the_account_for_all(
    client, owner, api_key_factory
):
    limited = api_key_factory(owner, "limited")
    keys.set_key_limits(
        limited.api_key, requests_per_minute=None, images_per_minute=2, concurrent_generations=None
    )
    other = api_key_factory(owner, "other").raw_key

    assert generate(client, limited.raw_key, n=2).status_code == 200
    over_key = generate(client, limited.raw_key)
    assert over_key.status_code == 429
    assert error(over_key)["code"] == "rate_limit_images"
    assert "this API key's" in error(over_key)["message"]

    assert generate(client, other, n=2).status_code == 200  # the account's 4
    over_account = generate(client, other)
    assert over_account.status_code == 429
    assert error(over_account)["code"] == "rate_limit_images"
    assert "your account's" in error(over_account)["message"]


def test_a_key_concurrency_limit_below_the_accounts(client, owner, api_key_factory):
    limited = api_key_factory(owner, "limited")
    keys.set_key_limits(
        limited.api_key, requests_per_minute=None, images_per_minute=None, concurrent_generations=1
    )
    other = api_key_factory(owner, "other").raw_key
    # A generation of the limited key in flight (the account may run 2).
    ratelimits.admit(owner.personal_account, limited.api_key, images=1, slot_holder="in-flight")

    refused = generate(client, limited.raw_key)
    assert refused.status_code == 429
    assert error(refused)["code"] == "rate_limit_concurrency"
    assert "this API key's limit is 1 generations at a time" in error(refused)["message"]
    assert generate(client, other).status_code == 200

    ratelimits.release(owner.personal_account.pk, limited.api_key.pk, "in-flight")
    assert generate(client, limited.raw_key).status_code == 200


# - Headers --------------------------------------------------------------------------------------


def test_every_success_carries_the_openai_headers(client, owner_key):
    response = generate(client, owner_key, n=3)

    assert response.status_code == 200
    assert rate_headers(response) == {
        "x-ratelimit-limit-requests": "5",
        "x-ratelimit-remaining-requests": "4",
        "x-ratelimit-reset-requests": "10s",  # 9.5 s to the turn of the window, rounded up
        "x-ratelimit-limit-images": "4",
        "x-ratelimit-remaining-images": "1",
        "x-ratelimit-reset-images": "10s",
    }


def test_a_429_says_which_limit_and_tier_and_when_to_retry(client, owner_key):
    for _ in range(5):
        assert get_credits(client, owner_key).status_code == 200

    refused = get_credits(client, owner_key)

    assert refused.status_code == 429
    assert error(refused)["type"] == "rate_limit_error"
    assert error(refused)["code"] == "rate_limit_requests"
    assert "5 requests per 10 seconds" in error(refused)["message"]
    assert "Free tier" in error(refused)["message"]
    assert rate_headers(refused) == {
        "x-ratelimit-limit-requests": "5",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "10s",
        "x-ratelimit-limit-images": "4",
        "x-ratelimit-remaining-images": "4",
        "x-ratelimit-reset-images": "10s",
        "x-ratelimit-tier": "free",
        "retry-after": "10",
        "retry-after-ms": "9500",
    }
    assert "x-should-retry" not in refused.headers


def test_a_429_reports_the_use_of_every_limit_not_only_the_one_that_refused(client, owner_key):
    assert generate(client, owner_key, n=3).status_code == 200
    for _ in range(4):
        assert get_credits(client, owner_key).status_code == 200

    refused = generate(client, owner_key, n=1)

    assert error(refused)["code"] == "rate_limit_requests"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-remaining-images"] == "1"


def test_retry_after_is_exact_one_millisecond_early_is_refused_and_on_time_passes(
    client, owner_key, clock
):
    clock.advance(0.0004)  # a wait that is not a whole number of milliseconds
    for _ in range(5):
        get_credits(client, owner_key)
    refused = get_credits(client, owner_key)
    wait_ms = int(refused.headers["retry-after-ms"])

    clock.advance((wait_ms - 1) / 1000)
    assert get_credits(client, owner_key).status_code == 429
    clock.advance(1 / 1000)
    assert get_credits(client, owner_key).status_code == 200


def test_waiting_as_long_as_retry_after_says_then_retrying_succeeds(
    client, owner, owner_key, clock, settings
):
    clock.real = True
    settings.RATE_LIMIT_WINDOW_SECONDS = 2
    AccountRateLimit.objects.create(account=owner.personal_account, requests_per_minute=1)
    # Start right after a window turns over, so both requests fall in it.
    time.sleep(2 - time.time() % 2 + 0.01)
    assert get_credits(client, owner_key).status_code == 200
    refused = get_credits(client, owner_key)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 2

    time.sleep(int(refused.headers["retry-after-ms"]) / 1000)

    assert get_credits(client, owner_key).status_code == 200


def test_the_concurrency_429_asks_for_a_short_wait(client, owner, owner_key):
    ratelimits.admit(owner.personal_account, None, images=1, slot_holder="a")
    ratelimits.admit(owner.personal_account, None, images=1, slot_holder="b")

    refused = generate(client, owner_key)

    assert refused.status_code == 429
    assert error(refused)["code"] == "rate_limit_concurrency"
    assert "2 generations at a time" in error(refused)["message"]
    assert "Free tier" in error(refused)["message"]
    assert (refused.headers["Retry-After"], refused.headers["retry-after-ms"]) == ("2", "2000")
    # Refused, it counted nothing: 2 images of 4 used by the two in flight.
    assert refused.headers["x-ratelimit-remaining-images"] == "2"


def test_duration_is_the_openai_reset_format():
    assert ratelimits.duration(0.0004) == "1ms"
    assert ratelimits.duration(0.059) == "59ms"
    assert ratelimits.duration(1) == "1s"
    assert ratelimits.duration(1.2) == "2s"
    assert ratelimits.duration(59.5) == "1m0s"
    assert ratelimits.duration(60) == "1m0s"
    assert ratelimits.duration(61) == "1m1s"
    for seconds in (0.001, 0.5, 0.999, 1.0, 9.5, 30, 59.999, 60, 119.5):
        assert DURATION.match(ratelimits.duration(seconds)), seconds


# - Counting -------------------------------------------------------------------------------------


def test_exactly_the_limit_passes_in_a_window_and_the_next_window_starts_afresh(
    client, owner_key, clock
):
    statuses = [get_credits(client, owner_key).status_code for _ in range(8)]
    assert statuses == [200] * 5 + [429] * 3

    clock.advance(WINDOW)
    response = get_credits(client, owner_key)
    assert response.status_code == 200
    assert response.headers["x-ratelimit-remaining-requests"] == "4"


def test_models_and_credits_carry_headers_and_count_as_requests(client, owner_key):
    remaining = [
        client.get(path, headers=auth(owner_key)).headers["x-ratelimit-remaining-requests"]
        for path in ("/v1/models", "/v1/models/seedream-4-0", "/v1/credits")
    ]
    assert remaining == ["4", "3", "2"]


def test_an_invalid_request_carries_headers_and_counts_as_a_request(client, owner_key):
    response = generate(client, owner_key, n=11)
    assert response.status_code == 400
    assert response.headers["x-ratelimit-remaining-requests"] == "4"
    assert response.headers["x-ratelimit-remaining-images"] == "4"


def test_a_401_carries_no_rate_limit_headers(client, owner_key):
    for response in (
        generate(client, "sk-seedream-wrong"),
        client.get("/v1/models"),
        client.get("/v1/credits", headers=auth("sk-seedream-wrong")),
    ):
        assert response.status_code == 401
        assert rate_headers(response) == {}
    # And they counted against nobody.
    assert get_credits(client, owner_key).headers["x-ratelimit-remaining-requests"] == "4"


def test_the_images_limit_counts_n(client, owner_key):
    first = generate(client, owner_key, n=3)
    assert first.headers["x-ratelimit-remaining-images"] == "1"

    refused = generate(client, owner_key, n=2)
    assert refused.status_code == 429
    assert error(refused)["code"] == "rate_limit_images"
    assert "4 images per 10 seconds" in error(refused)["message"]
    assert refused.headers["x-ratelimit-remaining-images"] == "1"
    assert "x-should-retry" not in refused.headers  # the next window has room

    assert generate(client, owner_key, n=1).status_code == 200


def test_more_images_than_the_limit_allows_is_a_clear_429_not_worth_retrying(
    client, owner, owner_key
):
    refused = generate(client, owner_key, n=5)

    assert refused.status_code == 429
    assert error(refused)["code"] == "rate_limit_images"
    assert "asks for 5 images" in error(refused)["message"]
    assert "fewer images" in error(refused)["message"]
    # No window will ever take it: the SDKs must not retry it.
    assert refused.headers["x-should-retry"] == "false"
    assert not Generation.objects.filter(user=owner).exists()


def test_a_429_charges_nothing_and_writes_no_ledger_line(client, owner, owner_key):
    assert generate(client, owner_key, n=4).status_code == 200
    before = ledger_rows(owner)
    generations = Generation.objects.count()

    refused = generate(client, owner_key, n=1)

    assert refused.status_code == 429
    assert ledger_rows(owner) == before
    assert Generation.objects.count() == generations
    assert assert_ledger_balanced(owner) == 1000 - 4 * 40


def test_402_is_for_money_and_429_for_speed(client, user_factory, api_key_factory):
    broke = user_factory(credits=0)
    broke_key = api_key_factory(broke).raw_key
    rich = user_factory(credits=10_000)  # Tier 1: 10 requests
    rich_key = api_key_factory(rich).raw_key

    # Under its limits, an account without money gets 402, with the headers, every time.
    for _ in range(3):
        no_money = generate(client, broke_key)
        assert no_money.status_code == 402
        assert error(no_money)["code"] == "insufficient_quota"
        assert "x-ratelimit-remaining-requests" in no_money.headers
    # The refused generations held no slot (Free runs 2 at a time).
    assert ratelimits.current_usage(broke.personal_account).concurrent == 0

    for _ in range(10):
        assert get_credits(client, rich_key).status_code == 200
    too_fast = generate(client, rich_key)
    assert too_fast.status_code == 429
    assert error(too_fast)["type"] == "rate_limit_error"
    assert error(too_fast)["code"] == "rate_limit_requests"
    assert assert_ledger_balanced(rich) == 10_000
    assert not LedgerEntry.objects.filter(account__owner__personal_owner=broke).exists()


# - Concurrency slots ----------------------------------------------------------------------------


def test_api_generations_give_their_slot_back_when_they_end(client, owner, owner_key):
    # Free runs 2 at a time: three in a row pass because each gives its slot back.
    for _ in range(3):
        assert generate(client, owner_key).status_code == 200
    assert ratelimits.current_usage(owner.personal_account).concurrent == 0

    # A failed generation gives it back too.
    failed = generate(client, owner_key, prompt="x [sim:block-prompt]")
    assert failed.status_code == 400
    assert ratelimits.current_usage(owner.personal_account).concurrent == 0


def test_a_refused_request_holds_no_slot(client, owner, owner_key):
    assert generate(client, owner_key, n=5).status_code == 429  # images
    assert generate(client, owner_key, n=11).status_code == 400  # invalid
    assert ratelimits.current_usage(owner.personal_account).concurrent == 0


def test_playground_generations_hold_a_slot_until_the_worker_settles_them(
    owner, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = services.submit_generation(account=owner.personal_account, user=owner, spec=spec())
        services.submit_generation(account=owner.personal_account, user=owner, spec=spec())
    assert ratelimits.current_usage(owner.personal_account).concurrent == 2

    with pytest.raises(RateLimited) as caught:
        services.submit_generation(account=owner.personal_account, user=owner, spec=spec())
    assert caught.value.code == "rate_limit_concurrency"
    assert len(sent) == 2

    assert services.run_queued_generation(first.pk).status == "done"
    assert ratelimits.current_usage(owner.personal_account).concurrent == 1
    with django_capture_on_commit_callbacks(execute=True):
        services.submit_generation(account=owner.personal_account, user=owner, spec=spec())
    assert len(sent) == 3


def test_the_reconciler_gives_back_the_slot_of_a_generation_it_settles(
    owner, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        stuck = services.submit_generation(
            account=owner.personal_account, user=owner, spec=spec(n=2)
        )
    assert ratelimits.current_usage(owner.personal_account).concurrent == 1

    services.reconcile_stuck_generations(now=stuck.deadline_at + timedelta(seconds=1))

    assert ratelimits.current_usage(owner.personal_account).concurrent == 0
    assert assert_ledger_balanced(owner) == 1000


def test_a_slot_whose_holder_died_frees_itself_when_its_lease_runs_out(owner, clock, settings):
    settings.RATE_LIMIT_SLOT_LEASE_SECONDS = 0
    ratelimits.admit(owner.personal_account, None, images=1, slot_holder="dead-1")
    ratelimits.admit(owner.personal_account, None, images=1, slot_holder="dead-2")
    # Leases of zero seconds are over at once (the database backend reads the real clock).
    clock.advance(0.001)
    time.sleep(0.01)
    assert ratelimits.current_usage(owner.personal_account).concurrent == 0

    # Free runs 2 at a time: a third generation gets a slot (it would be refused, 429, if the
    # dead ones still held theirs), and holds the only one.
    alive = ratelimits.admit(
        owner.personal_account, None, images=1, slot_holder="alive", slot_lease_seconds=600
    )

    assert alive.headers["x-ratelimit-remaining-requests"] == "2"
    assert ratelimits.current_usage(owner.personal_account).concurrent == 1


def test_prune_database_counters_drops_finished_windows_and_dead_slots(backend, owner):
    if backend != "database":
        pytest.skip("Redis expires its own keys")
    window = int(START // WINDOW)
    for number in (window - 5, window - 2, window - 1, window, 0):
        RateCounter.objects.create(bucket=f"u{owner.pk}:requests", window_number=number, count=1)
    now = timezone.now()
    ConcurrencySlot.objects.create(scope="u1", holder="dead", expires_at=now - timedelta(seconds=1))
    ConcurrencySlot.objects.create(scope="u1", holder="alive", expires_at=now + timedelta(hours=1))

    assert ratelimits.prune_database_counters() == 3

    # The current and previous windows stay, and the row slot-takers lock (window 0).
    assert sorted(RateCounter.objects.values_list("window_number", flat=True)) == [
        0, window - 1, window,
    ]  # fmt: skip
    assert list(ConcurrencySlot.objects.values_list("holder", flat=True)) == ["alive"]


# - Repeats and outages --------------------------------------------------------------------------


def test_an_idempotent_repeat_counts_as_a_request_but_not_as_new_work(client, owner, owner_key):
    body = {"model": "seedream-4-0", "prompt": "a kite", "size": "1024x1024", "n": 2}
    headers = {**auth(owner_key), "Idempotency-Key": "order-42"}

    def send():
        return client.post(
            "/v1/images/generations", json.dumps(body), content_type="application/json",
            headers=headers,
        )  # fmt: skip

    first, repeat, again = send(), send(), send()

    assert first.status_code == repeat.status_code == again.status_code == 200
    assert repeat["Idempotent-Replayed"] == "true"
    # Free tier: 4 images a window. The repeats used no images (and no slot), only requests.
    assert again.headers["x-ratelimit-remaining-images"] == "2"
    assert again.headers["x-ratelimit-remaining-requests"] == "2"


def fallbacks(use: str) -> float:
    return metrics.REDIS_FALLBACKS.labels(use)._value.get()


def test_an_unreachable_redis_still_limits_counting_in_the_database(
    client, owner_key, settings, backend, caplog
):
    settings.RATE_LIMIT_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    before = fallbacks("rate_limits")

    answers = [generate(client, owner_key) for _ in range(5)]

    # The free tier's 4 images a window pass, with their headers; the fifth is refused.
    assert [a.status_code for a in answers] == [200] * 4 + [429]
    assert answers[3].headers["x-ratelimit-remaining-images"] == "0"
    assert answers[4].json()["error"]["code"] == "rate_limit_images"
    assert RateCounter.objects.exists()
    # One line for the outage, not a trace per request; each fallback counted.
    assert caplog.text.count("Redis unreachable") == 1
    assert "Traceback" not in caplog.text
    assert fallbacks("rate_limits") == before + 5
    assert not ConcurrencySlot.objects.exists()  # each generation's slot given back


def test_an_unreachable_redis_is_tried_again_after_a_pause_and_used_when_back(
    owner, settings, backend, caplog, monkeypatch
):
    settings.RATE_LIMIT_REDIS_URL = "redis://127.0.0.1:1/0"
    settings.REDIS_RETRY_SECONDS = 30
    tried = []
    real_check = ratelimits._check_redis
    monkeypatch.setattr(ratelimits, "_check_redis", lambda *a: tried.append(1) or real_check(*a))
    ratelimits.admit(owner.personal_account, None)
    ratelimits.admit(owner.personal_account, None)
    assert len(tried) == 1  # the second did not wait on a dead Redis

    settings.RATE_LIMIT_REDIS_URL = REDIS_URL
    ratelimits._redis_client(REDIS_URL).flushdb()
    monkeypatch.setattr(ratelimits._outage, "_retry_at", 0.0)  # the pause is over
    admission = ratelimits.admit(owner.personal_account, None)

    assert len(tried) == 2
    assert admission.headers["x-ratelimit-remaining-requests"] == "4"  # Redis counts afresh
    assert "Redis answers again" in caplog.text


def test_a_slot_taken_in_the_database_during_an_outage_is_given_back_by_another_process(
    owner, settings, backend
):
    settings.RATE_LIMIT_REDIS_URL = "redis://127.0.0.1:1/0"
    ratelimits.admit(owner.personal_account, None, images=1, slot_holder="gen_outage")
    assert ConcurrencySlot.objects.filter(holder="gen_outage").exists()
    # Another process (a worker) releases it after Redis came back: it knows nothing of the
    # outage, and still finds the row.
    ratelimits._database_holders.clear()
    settings.RATE_LIMIT_REDIS_URL = REDIS_URL

    ratelimits.release(owner.personal_account.pk, None, "gen_outage")

    assert not ConcurrencySlot.objects.exists()


# - On the event loop (a served web process: api/views.py's async path) ---------------------------


@pytest.fixture
def loaded(owner):
    """The owner's account with what the API's key lookup loads along (nothing is read on the
    loop)."""
    return Account.objects.select_related("credit_account", "rate_limit_override").get(
        personal_owner=owner
    )


def on_a_loop(step):
    """Run ``step()`` on an event loop of its own, as a served web process runs the limiter."""

    async def run():
        try:
            return await step()
        finally:
            await ratelimits.aclose()

    return asyncio.run(run())


@pytest.mark.django_db(transaction=True)
def test_on_the_event_loop_the_same_counters_pass_and_refuse(backend, loaded):
    account = loaded
    # The free tier allows 5 requests a window.
    passed = [on_a_loop(lambda: ratelimits.aadmit(account, None)).headers for _ in range(5)]
    with pytest.raises(RateLimited) as on_loop:
        on_a_loop(lambda: ratelimits.aadmit(account, None))
    with pytest.raises(RateLimited) as on_thread:
        ratelimits.admit(account, None)

    assert [h["x-ratelimit-remaining-requests"] for h in passed] == ["4", "3", "2", "1", "0"]
    assert on_loop.value.code == on_thread.value.code == "rate_limit_requests"
    assert on_loop.value.limit_headers == on_thread.value.limit_headers
    assert on_loop.value.retry_after_seconds == on_thread.value.retry_after_seconds


@pytest.mark.django_db(transaction=True)
def test_on_the_event_loop_a_slot_is_taken_and_given_back(backend, loaded):
    account = loaded
    holders = ["gen_a", "gen_b"]  # the free tier: 2 generations at a time
    for holder in holders:
        on_a_loop(lambda h=holder: ratelimits.aadmit(account, None, images=1, slot_holder=h))
    with pytest.raises(RateLimited) as refused:
        on_a_loop(lambda: ratelimits.aadmit(account, None, images=1, slot_holder="gen_c"))
    assert refused.value.kind == "concurrency"

    on_a_loop(lambda: ratelimits.arelease(account.pk, None, "gen_a"))

    on_a_loop(lambda: ratelimits.aadmit(account, None, images=1, slot_holder="gen_c"))
    assert ratelimits.current_usage(account).concurrent == 2


@pytest.mark.django_db(transaction=True)
def test_on_the_event_loop_an_unreachable_redis_still_limits(loaded, settings, caplog):
    account = loaded
    settings.RATE_LIMIT_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there

    admissions = [
        on_a_loop(lambda h=h: ratelimits.aadmit(account, None, images=1, slot_holder=h))
        for h in ("gen_x", "gen_y")
    ]
    with pytest.raises(RateLimited) as refused:  # the free tier: 2 generations at a time
        on_a_loop(lambda: ratelimits.aadmit(account, None, images=1, slot_holder="gen_z"))
    on_a_loop(lambda: ratelimits.arelease(account.pk, None, "gen_x"))

    assert [a.headers["x-ratelimit-remaining-requests"] for a in admissions] == ["4", "3"]
    assert refused.value.kind == "concurrency"
    assert list(ConcurrencySlot.objects.values_list("holder", flat=True)) == ["gen_y"]
    assert caplog.text.count("Redis unreachable") == 1
