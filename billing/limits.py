"""Spend caps: the windows a capped spender's holds are counted in, and the refusal.

A cap is a money rule, so it lives here; billing knows nothing about who spends. A caller (the
generation pipeline, for an API key with a cap) names the spender (``key:42``), its period and
its cap; billing draws the window the spend falls in, in UTC, and counts the hold in
``SpendWindow`` in the same transaction or statement as the hold itself (billing.services.hold
and billing.statements.window_cte). The database's check constraint refuses a hold that would
pass the cap, whichever process makes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import BillingError
from .models import SPEND_CAP_CONSTRAINT

PERIODS = ("day", "week", "month", "total")


@dataclass(frozen=True)
class Limit:
    """A cap on one spender's spend in one window: what a hold is counted against."""

    window: str
    cap_credits: int
    period: str
    resets_at: datetime | None  # None: a cap in total never resets


def limit_for(holder: str, period: str, cap_credits: int, at: datetime) -> Limit:
    """The window of ``holder``'s cap (``period``, one of PERIODS) that ``at`` falls in."""
    start, end = window_bounds(period, at)
    stamp = "" if start is None else f":{start:%Y-%m-%d}"
    return Limit(
        window=f"{holder}:{period}{stamp}", cap_credits=cap_credits, period=period, resets_at=end
    )


def window_bounds(period: str, at: datetime) -> tuple[datetime | None, datetime | None]:
    """The UTC start and end of the ``period`` window holding ``at`` (None, None: in total)."""
    if at.tzinfo is None:
        raise ValueError("A spend window needs an aware time")
    at = at.astimezone(UTC)
    day = datetime(at.year, at.month, at.day, tzinfo=UTC)
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period == "month":
        start = day.replace(day=1)
        if start.month == 12:
            return start, start.replace(year=start.year + 1, month=1)
        return start, start.replace(month=start.month + 1)
    if period == "total":
        return None, None
    raise ValueError(f"Unknown spend period {period!r}: one of {', '.join(PERIODS)}")


class SpendCapReached(BillingError):
    """A hold would take a spender past its cap in this window: nothing was held."""

    def __init__(self, limit: Limit, *, needed_credits: int, spent_credits: int) -> None:
        super().__init__(f"{limit.window}: {needed_credits} would pass {limit.cap_credits}")
        self.limit = limit
        self.needed_credits = needed_credits
        self.spent_credits = spent_credits

    @property
    def remaining_credits(self) -> int:
        return max(0, self.limit.cap_credits - self.spent_credits)


def crossed_percents(
    percents: list[int], cap_credits: int, before_credits: int, after_credits: int
) -> int:
    """The highest of ``percents`` (of ``cap_credits``) that a spend from ``before_credits`` to
    ``after_credits`` reached or passed, or 0 if it crossed none."""
    crossed = [p for p in percents if before_credits * 100 < p * cap_credits <= after_credits * 100]
    return max(crossed, default=0)


@dataclass(frozen=True)
class Counted:
    """A hold counted in its window: the window's spend before and after it, and the highest
    alert threshold already told for the window."""

    limit: Limit
    spent_before_credits: int
    spent_after_credits: int
    alerted_percent: int

    @property
    def remaining_credits(self) -> int:
        return max(0, self.limit.cap_credits - self.spent_after_credits)


# One statement on PostgreSQL and SQLite alike: the window's row made or added to, and the
# cap as the hold saw it written with it. The check constraint SPEND_CAP_CONSTRAINT refuses a
# sum past the cap, so two holds racing for the last credits of a cap cannot both pass.
COUNT_SQL = """
    INSERT INTO {table} (name, cap_credits, spent_credits, alerted_percent, updated_at)
    {rows}
    ON CONFLICT (name) DO UPDATE SET
        spent_credits = {table}.spent_credits + excluded.spent_credits,
        cap_credits = excluded.cap_credits,
        -- A changed cap's shares are new figures: its alerts are told afresh.
        alerted_percent = CASE WHEN excluded.cap_credits = {table}.cap_credits
            THEN {table}.alerted_percent ELSE 0 END,
        updated_at = excluded.updated_at
    RETURNING spent_credits, alerted_percent
"""
# The row the ORM's statement counts (the hot path's selects it from its own CTE instead).
COUNT_VALUES = "VALUES (%(w_name)s, %(w_cap)s, %(w_held)s, 0, %(w_now)s)"


def count_params(limit: Limit, held_credits: int, now: datetime) -> dict[str, Any]:
    return {
        "w_name": limit.window,
        "w_cap": limit.cap_credits,
        "w_held": held_credits,
        "w_now": now,
    }


def is_cap_refusal(error: BaseException) -> bool:
    """Whether a database error is the spend cap's check refusing a hold (PostgreSQL names the
    constraint in its diagnostics, SQLite in its message)."""
    cause = error.__cause__
    diag = getattr(cause, "diag", None)
    if diag is not None and getattr(diag, "constraint_name", None):
        return bool(diag.constraint_name == SPEND_CAP_CONSTRAINT)
    return SPEND_CAP_CONSTRAINT in str(error)
