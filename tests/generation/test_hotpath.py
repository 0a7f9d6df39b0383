"""The single-statement path (generation/hotpath.py, PostgreSQL) writes exactly what the ORM path
writes.

Each case runs the same generation twice, once per path, for two customers with the same balance,
and compares every row it leaves: the generation, its images, the ledger lines and the balance.
The statements also run on an event loop through a pool of their own (server/asyncdb.py, what a
served web process does); those cases commit, since the pool's connections are not the test's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connections
from django.utils import timezone

from billing import services as billing
from billing.models import CreditAccount, LedgerEntry, SpendWindow
from generation import hotpath, ratelimits, services
from generation.catalog import get_model, resolve_size
from generation.models import AccountRateLimit, Generation, Image
from generation.refusals import Reason, Refusal, ShortOfCredits
from generation.services import reserve as reserve_module
from generation.services import settle as settle_module
from generation.upstream import DeliveredImage, Failure, FailureKind
from keys import services as keys
from keys.models import ApiKey
from server import asyncdb
from server.steps import Steps
from tests.support.money import assert_ledger_balanced
from tests.support.outcomes import one_per_call
from tests.support.provenance import small_jpeg

pytestmark = pytest.mark.postgres

IMAGE = DeliveredImage(small_jpeg(), "image/jpeg", "jpg", 1024, 1024)
BLOCKED = Failure(FailureKind.OUTPUT_BLOCKED, "OutputImageSensitiveContentDetected", "Blocked.")


def spec(n: int) -> services.GenerationSpec:
    model = get_model("seedream-4-0")
    assert model is not None
    return services.GenerationSpec(
        model=model, prompt="a fox", size=resolve_size(model, "1024x1024"), n=n, seed=7
    )


def run(settings: Any, user: Any, *, single_statement: bool, n: int, outcomes: list[Any]) -> Any:
    settings.GENERATION_SINGLE_STATEMENT_SQL = single_statement
    assert hotpath.available() is single_statement
    key = keys.create_key(user.personal_account, "k").api_key
    generation = services.begin_generation(
        account=user.personal_account, made_by_id=user.pk, spec=spec(n), api_key=key
    )
    return services.complete_generation(generation, one_per_call(outcomes), latency_ms=12)


NOW = datetime(2026, 12, 6, 4, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """Every timezone.now() is one instant (microseconds included), so both paths' timestamps
    can be compared exactly."""
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    return NOW


def generation_row(generation: Generation) -> dict[str, Any]:
    row: dict[str, Any] = dict(Generation.objects.filter(pk=generation.pk).values().get())
    for volatile in ("id", "public_id", "account_id", "user_id", "api_key_id"):
        row.pop(volatile)
    return row


def ledger(user: Any, generation: Generation) -> list[tuple[Any, ...]]:
    """This generation's lines, with its own ids written as placeholders."""
    ref = generation.ledger_reference
    lines = LedgerEntry.objects.filter(account__owner__personal_owner=user, reference=ref).order_by(
        "id"
    )
    return [
        (
            line.kind,
            line.amount_credits,
            line.balance_after_credits,
            line.reference.replace(ref, "REF"),
            line.idempotency_key.replace(ref, "REF"),
            line.description.replace(generation.public_id, "PUBLIC_ID"),
            line.created_at,
        )
        for line in lines
    ]


def images(generation: Generation) -> list[tuple[Any, ...]]:
    return [
        (
            i.index,
            i.account_id == generation.account_id,
            i.content_type,
            i.width,
            i.height,
            i.bytes,
            i.created_at,
            len(i.token),
            i.file.name == services.image_storage_name(i.token, "jpg"),
        )
        for i in Image.objects.filter(generation=generation).order_by("index")
    ]


def account(user: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict(
        CreditAccount.objects.filter(owner__personal_owner=user).values().get()
    )
    for volatile in ("id", "owner_id"):
        row.pop(volatile)
    return row


def outcome(user: Any, completed: Any) -> dict[str, Any]:
    generation = completed.generation
    return {
        "generation": generation_row(generation),
        "ledger": ledger(user, generation),
        "images": images(generation),
        "returned_images": [(i.index, i.pk is not None) for i in completed.images],
        "balance": assert_ledger_balanced(user),
        "account": account(user),
    }


def in_debt(user: Any) -> None:
    """Leave ``user`` owing 400 credits with 400 on its balance: a hold made before a dispute
    took back more than the balance, then released."""
    reference = f"gen:before-{user.pk}"
    billing.hold(
        user.personal_account.pk, {"held_credits": 400}, reference=reference, description="held"
    )
    owing = billing.balance_credits(user.personal_account) + 400
    billing.take_back(
        user.personal_account.pk,
        owing,
        reference="dispute",
        idempotency_key=f"d:{user.pk}",
        description="x",
    )
    billing.settle(
        user.personal_account.pk,
        {"held_credits": 400, "charged_credits": 0},
        reference=reference,
        description="released",
    )
    assert billing.debt_credits(user.personal_account.pk) == 400


LONG = "a description longer than the ledger's column " * 8


@pytest.mark.parametrize(
    ("n", "outcomes"),
    [
        pytest.param(2, [IMAGE, IMAGE], id="all delivered"),
        pytest.param(3, [IMAGE, BLOCKED, IMAGE], id="some delivered"),
        pytest.param(1, [BLOCKED], id="none delivered"),
        pytest.param(10, [IMAGE, BLOCKED] * 3 + [IMAGE] * 4, id="ten asked, seven delivered"),
    ],
)
def test_both_paths_write_the_same_rows(settings, user_factory, fixed_clock, n, outcomes):
    orm_user, single_user = user_factory(credits=1000), user_factory(credits=1000)

    by_orm = outcome(
        orm_user, run(settings, orm_user, single_statement=False, n=n, outcomes=outcomes)
    )
    by_single = outcome(
        single_user, run(settings, single_user, single_statement=True, n=n, outcomes=outcomes)
    )

    assert by_single == by_orm
    assert by_single["balance"] == 1000 - 40 * sum(o is IMAGE for o in outcomes)
    assert by_single["generation"]["finished_at"] == fixed_clock
    assert {line[-1] for line in by_single["ledger"]} == {fixed_clock}


def test_both_paths_cut_a_description_longer_than_the_column_alike(
    settings, user_factory, fixed_clock, monkeypatch
):
    monkeypatch.setattr(reserve_module, "_describe", lambda generation: LONG)
    monkeypatch.setattr(settle_module, "_describe_settlement", lambda g, delivered: LONG)
    rows = []
    for single_statement in (False, True):
        user = user_factory(credits=1000)
        completed = run(
            settings, user, single_statement=single_statement, n=2, outcomes=[IMAGE, BLOCKED]
        )
        rows.append(outcome(user, completed))

    assert rows[0] == rows[1]
    descriptions = [line[5] for line in rows[1]["ledger"]]
    assert descriptions == [LONG[:255], f"Released hold: {LONG}"[:255], LONG[:255]]


def test_both_paths_settle_alike_for_an_account_that_went_into_debt_meanwhile(
    settings, user_factory, fixed_clock
):
    rows = []
    for single_statement in (False, True):
        settings.GENERATION_SINGLE_STATEMENT_SQL = single_statement
        user = user_factory(credits=1000)
        generation = services.begin_generation(
            account=user.personal_account, made_by_id=user.pk, spec=spec(4)
        )
        in_debt(user)  # after the hold: the settlement must still go through
        completed = services.complete_generation(
            generation, one_per_call([IMAGE, IMAGE, BLOCKED, IMAGE]), latency_ms=3
        )
        rows.append(outcome(user, completed))

    assert rows[0] == rows[1]
    assert rows[1]["account"]["owed_credits"] == 400
    assert rows[1]["generation"]["charged_credits"] == 120


def test_both_paths_refuse_an_account_in_debt_alike(settings, user_factory, fixed_clock):
    rows = []
    for single_statement in (False, True):
        settings.GENERATION_SINGLE_STATEMENT_SQL = single_statement
        user = user_factory(credits=1000)
        in_debt(user)
        with pytest.raises(ShortOfCredits) as refused:
            services.begin_generation(
                account=user.personal_account, made_by_id=user.pk, spec=spec(1)
            )
        assert refused.value.owed_credits == 400
        assert "owes 400 credits" in refused.value.message
        rows.append((generation_row(Generation.objects.get(user=user)), account(user)))
        assert assert_ledger_balanced(user) == 400

    assert rows[0] == rows[1]
    assert rows[1][0]["status"] == "failed" and rows[1][0]["reserved_credits"] == 0


def test_a_refusal_for_credits_takes_the_orm_path_and_leaves_the_same_failed_row(
    settings, user_factory, fixed_clock
):
    rows = []
    for single_statement in (False, True):
        settings.GENERATION_SINGLE_STATEMENT_SQL = single_statement
        user = user_factory(credits=30)
        with pytest.raises(ShortOfCredits):
            services.begin_generation(
                account=user.personal_account, made_by_id=user.pk, spec=spec(1)
            )
        rows.append(generation_row(Generation.objects.get(user=user)))
        assert assert_ledger_balanced(user) == 30
    assert rows[0] == rows[1]
    assert rows[1]["status"] == "failed" and rows[1]["http_status"] == 402


def test_a_late_settlement_after_the_reconciler_charges_nothing_on_either_path(
    settings, user_factory
):
    for single_statement in (False, True):
        settings.GENERATION_SINGLE_STATEMENT_SQL = single_statement
        user = user_factory(credits=1000)
        generation = services.begin_generation(
            account=user.personal_account, made_by_id=user.pk, spec=spec(1)
        )
        services.reconcile_stuck_generations(now=generation.deadline_at + timedelta(seconds=1))

        completed = services.complete_generation(generation, [IMAGE], latency_ms=5)

        assert completed.images == []
        assert not Image.objects.filter(generation=generation).exists()
        assert assert_ledger_balanced(user) == 1000


def test_a_settlement_without_its_reservation_is_refused_and_writes_nothing(settings, owner):
    settings.GENERATION_SINGLE_STATEMENT_SQL = True
    generation = services.begin_generation(
        account=owner.personal_account, made_by_id=owner.pk, spec=spec(1)
    )
    # Not what the ledger holds for it.
    generation.price_per_image_credits = generation.reserved_credits = 80
    generation.price_quote = billing.Quote.flat(80, 1).record()

    with pytest.raises(ValueError, match="No reservation"):
        services.complete_generation(generation, [IMAGE], latency_ms=5)

    assert Generation.objects.get().status == Generation.Status.RUNNING
    assert not Image.objects.exists()
    assert assert_ledger_balanced(owner) == 960


def find_key_inline(lookup_id: str) -> ApiKey | None:
    """The single-statement key lookup, on the test's own connection."""
    return async_to_sync(hotpath.find_key)(Steps.inline(), lookup_id)


def key_and_what_the_orm_loads(owner: Any, custom_limits: bool) -> tuple[Any, ApiKey]:
    """A new key of ``owner`` (with custom limits, or none), and the key as the ORM's
    ``select_related`` loads it with its account, credit account and custom limits."""
    issued = keys.create_key(owner.personal_account, "k")
    if custom_limits:
        AccountRateLimit.objects.create(account=owner.personal_account, requests_per_minute=7)
    by_orm = ApiKey.objects.select_related(
        "account__personal_owner", "account__credit_account", "account__rate_limit_override"
    ).get(pk=issued.api_key.pk)
    return issued, by_orm


@pytest.mark.parametrize("custom_limits", [False, True])
def test_the_key_lookup_loads_what_select_related_loads(owner, custom_limits):
    issued, by_orm = key_and_what_the_orm_loads(owner, custom_limits)

    found = keys.authenticate(issued.raw_key, lookup=find_key_inline)

    assert found.pk == by_orm.pk and found.account.personal_owner == owner
    assert found.account.credit_account.balance_credits == 1000
    assert ratelimits.limits_for(found.account, found) == ratelimits.limits_for(
        by_orm.account, by_orm
    )
    assert find_key_inline("no-such-lookup-id") is None


def test_the_key_lookup_of_an_account_without_a_credit_account(user_factory):
    user = user_factory()
    CreditAccount.objects.filter(owner__personal_owner=user).delete()
    issued = keys.create_key(user.personal_account, "k")

    found = keys.authenticate(issued.raw_key, lookup=find_key_inline)

    assert ratelimits.limits_for(found.user.personal_account, found).tier == ratelimits.tiers()[0]


def on_the_server_loop(step: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``step`` as a served process would: on a loop whose hot SQL goes through asyncdb."""

    async def served() -> Any:
        await asyncdb.serve()
        try:
            assert asyncdb.enabled()
            return await step()
        finally:
            await asyncdb.close()
            # What ran on a thread (the ORM's share) used that thread's connections.
            await sync_to_async(connections.close_all)()

    return asyncio.run(served())


@pytest.fixture
def cached_prices(settings: Any, default_prices: None) -> None:
    # A stale price list sends the quote to a thread (its refresh queries).
    settings.PRICE_CACHE_SECONDS = 600
    billing.price_rule("seedream-4-0")
    cached = billing.cached_quote("seedream-4-0", max_pixels=1024 * 1024, calls=1)
    assert cached is not None and cached.held_credits == 40


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("n", "outcomes"),
    [
        pytest.param(2, [IMAGE, IMAGE], id="all delivered"),
        pytest.param(3, [IMAGE, BLOCKED, IMAGE], id="some delivered"),
        pytest.param(1, [BLOCKED], id="none delivered"),
    ],
)
def test_on_the_event_loop_the_same_rows_are_written(
    settings, user_factory, cached_prices, fixed_clock, n, outcomes
):
    orm_user, loop_user = user_factory(credits=1000), user_factory(credits=1000)
    by_orm = outcome(
        orm_user, run(settings, orm_user, single_statement=False, n=n, outcomes=outcomes)
    )
    settings.GENERATION_SINGLE_STATEMENT_SQL = True
    key = keys.create_key(loop_user.personal_account, "k").api_key

    async def generate() -> Any:
        steps = Steps.for_request()
        assert steps.on_loop
        generation = await services.reserve_generation(
            steps,
            account=loop_user.personal_account,
            made_by_id=loop_user.pk,
            spec=spec(n),
            api_key=key,
            public_id="gen_loop",
        )
        assert generation.pk is not None
        return await services.settle_generation(
            steps, generation, one_per_call(outcomes), latency_ms=12
        )

    by_loop = outcome(loop_user, on_the_server_loop(generate))

    assert by_loop == by_orm
    assert by_loop["balance"] == 1000 - 40 * sum(o is IMAGE for o in outcomes)


@pytest.mark.django_db(transaction=True)
def test_on_the_event_loop_a_refusal_for_credits_is_recorded_by_the_orm(
    settings, user_factory, cached_prices
):
    settings.GENERATION_SINGLE_STATEMENT_SQL = True
    user = user_factory(credits=30)
    key = keys.create_key(user.personal_account, "k").api_key

    async def generate() -> Any:
        await services.reserve_generation(
            Steps.for_request(),
            account=user.personal_account,
            made_by_id=user.pk,
            spec=spec(1),
            api_key=key,
            public_id="gen_x",
        )

    with pytest.raises(ShortOfCredits):
        on_the_server_loop(generate)
    refused = generation_row(Generation.objects.get(user=user))
    assert (refused["status"], refused["http_status"]) == ("failed", 402)
    assert assert_ledger_balanced(user) == 30


@pytest.mark.django_db(transaction=True)
def test_on_the_event_loop_a_late_settlement_charges_nothing(
    settings, owner, cached_prices, tmp_path
):
    settings.GENERATION_SINGLE_STATEMENT_SQL = True
    settings.MEDIA_ROOT = str(tmp_path)
    generation = services.begin_generation(
        account=owner.personal_account, made_by_id=owner.pk, spec=spec(1)
    )
    services.reconcile_stuck_generations(now=generation.deadline_at + timedelta(seconds=1))

    completed = on_the_server_loop(
        lambda: services.settle_generation(Steps.for_request(), generation, [IMAGE], latency_ms=5)
    )

    assert completed.images == []
    assert not [f for f in tmp_path.rglob("*") if f.is_file()]  # the stored file went again
    assert completed.generation.status == Generation.Status.FAILED
    assert not Image.objects.filter(generation=generation).exists()
    assert assert_ledger_balanced(owner) == 1000


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("custom_limits", [False, True])
def test_on_the_event_loop_the_key_lookup_loads_what_select_related_loads(owner, custom_limits):
    issued, by_orm = key_and_what_the_orm_loads(owner, custom_limits)

    found = on_the_server_loop(
        lambda: keys.aauthenticate(
            issued.raw_key,
            lookup=lambda lookup_id: hotpath.find_key(Steps.for_request(), lookup_id),
            run_write=asyncdb.on_a_thread,
        )
    )
    missing = on_the_server_loop(lambda: hotpath.find_key(Steps.for_request(), "no-such-lookup-id"))

    assert found.pk == by_orm.pk and found.account.personal_owner == owner
    assert found.account.credit_account.balance_credits == 1000
    assert found.created_at == by_orm.created_at  # same instant, same time zone handling
    assert ratelimits.limits_for(found.account, found) == ratelimits.limits_for(
        by_orm.account, by_orm
    )
    assert missing is None
    # Its use was recorded (on a thread: the ORM).
    assert ApiKey.objects.get(pk=issued.api_key.pk).last_used_at is not None


def test_only_the_server_loop_runs_the_hot_sql_there():
    assert not asyncdb.enabled()  # not served: no loop at all

    async def elsewhere() -> bool:
        return asyncdb.enabled()

    assert on_the_server_loop(elsewhere) is True  # (on_the_server_loop serves its own loop)
    assert asyncio.run(elsewhere()) is False  # another loop than the server's


def test_without_single_statements_a_served_process_keeps_the_orm_path(settings):
    # GENERATION_SINGLE_STATEMENT_SQL=false (or SQLite): serving opens no pool of its own.
    settings.GENERATION_SINGLE_STATEMENT_SQL = False

    async def served() -> bool:
        await asyncdb.serve()
        try:
            return asyncdb.enabled()
        finally:
            await asyncdb.close()

    assert asyncio.run(served()) is False


def test_a_request_with_an_idempotency_key_takes_the_single_statement_too(
    settings, user_factory, fixed_clock, monkeypatch
):
    rows = []
    for single_statement in (False, True):
        settings.GENERATION_SINGLE_STATEMENT_SQL = single_statement
        if single_statement:
            monkeypatch.setattr(reserve_module, "_reserve_with_orm", forbidden_orm_reservation)
        user = user_factory(credits=1000)
        generation = services.begin_generation(
            account=user.personal_account,
            made_by_id=user.pk,
            spec=spec(2),
            idempotency_key="key-1",
            request_hash="hash-1",
        )
        completed = services.complete_generation(
            generation, one_per_call([IMAGE, IMAGE]), latency_ms=3
        )
        rows.append(outcome(user, completed))

    assert rows[0] == rows[1]
    assert rows[1]["generation"]["idempotency_key"] == "key-1"
    assert rows[1]["generation"]["request_hash"] == "hash-1"


def forbidden_orm_reservation(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("reserved through the ORM, not the single statement")


def test_a_key_the_single_statement_recorded_answers_its_repeats(settings, owner):
    settings.GENERATION_SINGLE_STATEMENT_SQL = True
    first = services.begin_generation(
        account=owner.personal_account,
        made_by_id=owner.pk,
        spec=spec(1),
        idempotency_key="key",
        request_hash="hash",
    )

    with pytest.raises(services.IdempotentReplay) as replay:
        services.begin_generation(
            account=owner.personal_account,
            made_by_id=owner.pk,
            spec=spec(1),
            idempotency_key="key",
            request_hash="hash",
        )
    with pytest.raises(Refusal) as reused:
        services.begin_generation(
            account=owner.personal_account,
            made_by_id=owner.pk,
            spec=spec(1),
            idempotency_key="key",
            request_hash="another body",
        )

    assert replay.value.generation.pk == first.pk
    assert reused.value.reason == Reason.IDEMPOTENCY_KEY_REUSED
    assert Generation.objects.count() == 1
    assert assert_ledger_balanced(owner) == 960


def test_a_request_that_loses_the_race_for_its_key_is_answered_as_the_winners_repeat(
    settings, owner, monkeypatch
):
    settings.GENERATION_SINGLE_STATEMENT_SQL = True
    winner = services.begin_generation(
        account=owner.personal_account,
        made_by_id=owner.pk,
        spec=spec(1),
        idempotency_key="key",
        request_hash="hash",
    )
    # The loser looked for the key before the winner's row committed, and found nothing.
    check = reserve_module._check_idempotency
    looks = iter([lambda *args: None])
    monkeypatch.setattr(
        reserve_module, "_check_idempotency", lambda *args: next(looks, check)(*args)
    )

    with pytest.raises(services.IdempotentReplay) as replay:
        services.begin_generation(
            account=owner.personal_account,
            made_by_id=owner.pk,
            spec=spec(1),
            idempotency_key="key",
            request_hash="hash",
        )

    assert replay.value.generation.pk == winner.pk
    assert Generation.objects.count() == 1
    assert assert_ledger_balanced(owner) == 960  # the loser's statement moved nothing


def run_capped(settings: Any, user: Any, *, single_statement: bool, cap: int) -> dict[str, Any]:
    """Two generations (of 2, 1 delivered; then of 2) by a key capped at ``cap`` credits a day;
    the second is refused if the cap cannot take its hold. Every row, the window's included."""
    settings.GENERATION_SINGLE_STATEMENT_SQL = single_statement
    key = keys.create_key(user.personal_account, "k").api_key
    ApiKey.objects.filter(pk=key.pk).update(spend_cap_credits=cap, spend_cap_period="day")
    key.refresh_from_db()
    first = services.begin_generation(
        account=user.personal_account, made_by_id=user.pk, spec=spec(2), api_key=key
    )
    completed = services.complete_generation(first, one_per_call([IMAGE, BLOCKED]), latency_ms=12)
    try:
        services.begin_generation(
            account=user.personal_account, made_by_id=user.pk, spec=spec(2), api_key=key
        )
        second = "held"
    except Refusal as refused:
        second = f"{refused.reason}"
    row = outcome(user, completed)
    row["generation"]["spend_window"] = row["generation"]["spend_window"].replace(
        f"key:{key.pk}:", "key:KEY:"
    )
    window = SpendWindow.objects.values("cap_credits", "spent_credits", "alerted_percent")
    return {
        **row,
        "second": second,
        "window": list(window.filter(name__startswith=f"key:{key.pk}:")),
    }


@pytest.mark.parametrize(("cap", "second"), [(200, "held"), (100, "key_budget_exceeded")])
def test_both_paths_count_a_capped_keys_holds_alike(
    settings, user_factory, fixed_clock, cap, second
):
    by_orm = run_capped(settings, user_factory(credits=1000), single_statement=False, cap=cap)
    by_single = run_capped(settings, user_factory(credits=1000), single_statement=True, cap=cap)

    assert by_single == by_orm
    assert by_single["second"] == second
    # 80 held, 40 charged and 40 given back; then 80 more held, or refused with nothing held.
    spent = 40 + (80 if second == "held" else 0)
    assert by_single["window"] == [
        {"cap_credits": cap, "spent_credits": spent, "alerted_percent": 0}
    ]
