"""Many threads at one account at once: PostgreSQL's row lock must serialise every balance change.

Each thread has its own database connection, so these tests commit for real (transactional_db).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from billing import services
from billing.models import CreditAccount, LedgerEntry
from billing.services import InsufficientCredits, Settlement
from tests.support.money import assert_ledger_balanced, ledger_rows

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("transactional_db")]


def run_at_once(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` on ``count`` threads released together; each result is what it returned
    or the exception it raised."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    # Hand this thread's connection back to the pool so every worker gets one straight away.
    connection.close()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"
    return results


def test_twenty_simultaneous_reservations_never_overdraw_the_balance(user_factory):
    user = user_factory(credits=400)

    results = run_at_once(
        20,
        lambda i: services.hold(
            user.pk, {"held_credits": 40}, reference=f"gen:{i}", description="1 image"
        ),
    )

    succeeded = [r for r in results if isinstance(r, LedgerEntry)]
    refused = [r for r in results if isinstance(r, InsufficientCredits)]
    assert len(succeeded) == 10, results
    assert len(refused) == 10, results
    assert all(r.needed_credits == 40 and r.balance_credits < 40 for r in refused)
    assert sorted(e.balance_after_credits for e in succeeded) == list(range(0, 400, 40))
    assert CreditAccount.objects.get(user=user).balance_credits == 0
    assert assert_ledger_balanced(user) == 0
    assert LedgerEntry.objects.filter(account__user=user, kind="reserve").count() == 10


def test_ten_simultaneous_settlements_of_one_reference_settle_it_once(user_factory):
    user = user_factory(credits=1000)
    services.hold(user.pk, {"held_credits": 160}, reference="gen:1", description="4 images")

    results = run_at_once(
        10,
        lambda i: services.settle(
            user.pk,
            {"held_credits": 160, "charged_credits": 80},
            reference="gen:1",
            description="4 images",
        ),
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    settlements = [r for r in results if r is not None]
    assert settlements == [Settlement(charged_credits=80, released_credits=80, balance_credits=920)]
    assert results.count(None) == 9
    assert ledger_rows(user, "gen:1") == [
        ("reserve", -160, 840),
        ("release", 160, 1000),
        ("charge", -80, 920),
    ]
    assert assert_ledger_balanced(user) == 920


def test_simultaneous_replays_of_one_grant_add_the_credits_once(user_factory):
    user = user_factory(credits=100)

    results = run_at_once(
        10,
        lambda i: services.grant(user, 500, description="Top-up", idempotency_key="stripe:cs_1"),
    )

    assert all(isinstance(r, LedgerEntry) for r in results), results
    assert len({r.pk for r in results}) == 1
    assert assert_ledger_balanced(user) == 600


def test_simultaneous_first_grants_open_one_account_and_keep_every_credit(user_factory):
    newcomer = user_factory()

    results = run_at_once(
        10,
        lambda i: services.grant(newcomer, 10, description="drip", idempotency_key=f"drip:{i}"),
    )

    assert all(isinstance(r, LedgerEntry) for r in results), results
    assert CreditAccount.objects.filter(user=newcomer).count() == 1
    assert assert_ledger_balanced(newcomer) == 100
