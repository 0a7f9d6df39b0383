"""Many threads at one account at once: PostgreSQL's row lock must serialise every balance change.

Each thread has its own database connection, so these tests commit for real (transactional_db).
"""

from __future__ import annotations

import pytest

from billing import services
from billing.models import CreditAccount, LedgerEntry
from billing.services import InsufficientCredits, Settlement
from tests.support.concurrency import run_at_once
from tests.support.money import assert_ledger_balanced, ledger_rows

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("transactional_db")]


def test_twenty_simultaneous_reservations_never_overdraw_the_balance(user_factory):
    user = user_factory(credits=400)

    results = run_at_once(
        20,
        lambda i: (
            services.hold(
                user.personal_account.pk,
                {"held_credits": 40},
                reference=f"gen:{i}",
                description="1 image",
            ).entry
        ),
    )

    succeeded = [r for r in results if isinstance(r, LedgerEntry)]
    refused = [r for r in results if isinstance(r, InsufficientCredits)]
    assert len(succeeded) == 10, results
    assert len(refused) == 10, results
    assert all(r.needed_credits == 40 and r.balance_credits < 40 for r in refused)
    assert sorted(e.balance_after_credits for e in succeeded) == list(range(0, 400, 40))
    assert CreditAccount.objects.get(owner__personal_owner=user).balance_credits == 0
    assert assert_ledger_balanced(user) == 0
    assert (
        LedgerEntry.objects.filter(account__owner__personal_owner=user, kind="reserve").count()
        == 10
    )


def test_ten_simultaneous_settlements_of_one_reference_settle_it_once(user_factory):
    user = user_factory(credits=1000)
    services.hold(
        user.personal_account.pk, {"held_credits": 160}, reference="gen:1", description="4 images"
    )

    results = run_at_once(
        10,
        lambda i: services.settle(
            user.personal_account.pk,
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
        lambda i: services.grant(
            user.personal_account, 500, description="Top-up", idempotency_key="stripe:cs_1"
        ),
    )

    assert all(isinstance(r, LedgerEntry) for r in results), results
    assert len({r.pk for r in results}) == 1
    assert assert_ledger_balanced(user) == 600


def test_simultaneous_first_grants_open_one_account_and_keep_every_credit(user_factory):
    newcomer = user_factory()

    results = run_at_once(
        10,
        lambda i: services.grant(
            newcomer.personal_account, 10, description="drip", idempotency_key=f"drip:{i}"
        ),
    )

    assert all(isinstance(r, LedgerEntry) for r in results), results
    assert CreditAccount.objects.filter(owner__personal_owner=newcomer).count() == 1
    assert assert_ledger_balanced(newcomer) == 100
