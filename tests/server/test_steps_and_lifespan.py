"""The one executor for database steps (server/steps.py) and the apps' lifespan hooks
(server/lifespan.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import async_to_sync
from django.db import DataError, connection

from server import lifespan
from server.steps import Steps


@pytest.mark.smoke
def test_inline_steps_run_on_the_callers_thread_inside_its_transaction(db):
    caller = threading.get_ident()

    async def steps_of_a_pipeline() -> tuple[int, bool]:
        steps = Steps.inline()
        thread = await steps.run(threading.get_ident)
        in_transaction = await steps.run(lambda: connection.in_atomic_block)
        return thread, in_transaction

    thread, in_transaction = async_to_sync(steps_of_a_pipeline)()

    assert thread == caller
    assert in_transaction  # the test's transaction: inline steps see the caller's work
    assert not Steps.inline().on_loop


@pytest.mark.postgres
def test_inline_sql_runs_in_the_callers_transaction_and_survives_an_error(db):
    async def statements() -> tuple[int, str]:
        steps = Steps.inline()
        row = await steps.sql("SELECT 41 + %(one)s::int", {"one": 1})
        try:
            await steps.sql("SELECT 1 / %(zero)s::int", {"zero": 0})
        except DataError as exc:
            failed = type(exc).__name__
        return row[0], failed

    answer, failed = async_to_sync(statements)()

    assert (answer, failed) == (42, "DataError")
    # The failed statement was rolled back to its savepoint: the test's transaction goes on.
    assert connection.in_atomic_block
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


@pytest.mark.smoke
def test_a_detached_request_runs_its_later_steps_off_the_requests_thread(db):
    caller = threading.get_ident()

    async def hang_up() -> tuple[int, int]:
        steps = Steps.for_request()
        assert not steps.on_loop  # no served loop in a test
        before = await steps.run(threading.get_ident)
        steps.detach()
        after = await steps.run(threading.get_ident)
        return before, after

    before, after = async_to_sync(hang_up)()

    assert before == caller
    assert after != caller


@pytest.mark.smoke
def test_hooks_run_in_the_order_they_were_registered_once_each(monkeypatch):
    monkeypatch.setattr(lifespan, "_startup", [])
    monkeypatch.setattr(lifespan, "_shutdown", [])
    ran: list[str] = []

    async def first() -> None:
        ran.append("first")

    async def second() -> None:
        ran.append("second")

    for hook in (first, second, first):
        lifespan.on_shutdown(hook)
    lifespan.on_startup(second)

    asyncio.run(lifespan.startup())
    asyncio.run(lifespan.shutdown())

    assert ran == ["second", "first", "second"]


def test_the_generation_app_hands_back_its_work_at_shutdown():
    from generation import lifespan as generation_lifespan
    from generation import ratelimits, upstream

    hooks = lifespan._shutdown
    hand_back = hooks.index(generation_lifespan.hand_back_generations)
    # The clients the last settlements use close after them.
    assert hand_back < hooks.index(ratelimits.aclose)
    assert hand_back < hooks.index(upstream.close_client)
