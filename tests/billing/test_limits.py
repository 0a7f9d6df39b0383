"""Spend caps in billing: the UTC windows a hold counts in, and the database refusing a hold
past the cap (nothing held) on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from billing import services
from billing.limits import SpendCapReached, limit_for, window_bounds
from billing.models import LedgerEntry, SpendWindow
from tests.support.money import assert_ledger_balanced

pytestmark = pytest.mark.smoke


@pytest.mark.parametrize(
    ("period", "at", "start", "end"),
    [
        ("day", datetime(2026, 12, 6, 23, 59, tzinfo=UTC), "2026-12-06", "2026-12-07"),
        ("week", datetime(2026, 12, 6, 12, tzinfo=UTC), "2026-11-30", "2026-12-07"),  # a Sunday
        ("week", datetime(2026, 12, 7, 0, tzinfo=UTC), "2026-12-07", "2026-12-14"),  # Monday
        ("month", datetime(2026, 12, 31, 23, tzinfo=UTC), "2026-12-01", "2027-01-01"),
        ("month", datetime(2026, 2, 28, 1, tzinfo=UTC), "2026-02-01", "2026-03-01"),
    ],
)
def test_windows_are_drawn_in_utc(period, at, start, end):
    begins, ends = window_bounds(period, at)
    assert (f"{begins:%Y-%m-%d}", f"{ends:%Y-%m-%d}") == (start, end)


def test_a_time_in_another_zone_falls_in_its_utc_day():
    tokyo = timezone(timedelta(hours=9))
    limit = limit_for("key:1", "day", 100, datetime(2026, 12, 7, 8, 0, tzinfo=tokyo))
    assert limit.window == "key:1:day:2026-12-06"


def test_a_cap_in_total_has_one_window_that_never_resets():
    limit = limit_for("key:1", "total", 100, datetime(2026, 12, 7, tzinfo=UTC))
    assert (limit.window, limit.resets_at) == ("key:1:total", None)


def test_an_unknown_period_or_a_naive_time_is_a_programming_error():
    with pytest.raises(ValueError, match="Unknown spend period"):
        window_bounds("fortnight", datetime(2026, 12, 7, tzinfo=UTC))
    with pytest.raises(ValueError, match="aware"):
        window_bounds("day", datetime(2026, 12, 7))


def hold(user, credits, reference, limit):
    return services.hold(
        user.personal_account.pk,
        {"held_credits": credits},
        reference=reference,
        description="x",
        limit=limit,
    )


def test_holds_count_in_the_window_until_the_cap_refuses_one(owner):
    limit = limit_for("key:7", "day", 100, datetime.now(UTC))
    first = hold(owner, 60, "gen:1", limit)
    assert (first.window.spent_before_credits, first.window.spent_after_credits) == (0, 60)
    lines = LedgerEntry.objects.count()

    with pytest.raises(SpendCapReached) as refused:
        hold(owner, 41, "gen:2", limit)

    assert (refused.value.remaining_credits, refused.value.needed_credits) == (40, 41)
    # The refused hold left nothing: no ledger line, the balance and the window as they were.
    assert LedgerEntry.objects.count() == lines
    assert assert_ledger_balanced(owner) == 940
    assert SpendWindow.objects.get(name=limit.window).spent_credits == 60
    assert hold(owner, 40, "gen:3", limit).window.remaining_credits == 0


def test_a_settlement_gives_back_what_it_held_and_did_not_charge(owner):
    limit = limit_for("key:7", "month", 100, datetime.now(UTC))
    hold(owner, 80, "gen:1", limit)

    settled = services.settle(
        owner.personal_account.pk,
        {"held_credits": 80, "charged_credits": 30},
        reference="gen:1",
        description="x",
        spend_window=limit.window,
    )

    assert settled is not None
    assert SpendWindow.objects.get(name=limit.window).spent_credits == 30
    # Settled once: a repeat gives nothing back again.
    assert (
        services.settle(
            owner.personal_account.pk,
            {"held_credits": 80, "charged_credits": 30},
            reference="gen:1",
            description="x",
            spend_window=limit.window,
        )
        is None
    )
    assert SpendWindow.objects.get(name=limit.window).spent_credits == 30


def test_the_database_refuses_a_window_past_its_cap_whoever_writes_it(db):
    from django.db import IntegrityError

    with pytest.raises(IntegrityError):
        SpendWindow.objects.create(name="key:1:total", cap_credits=10, spent_credits=11)
