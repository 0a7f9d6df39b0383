"""What the dashboard overview summarises: a new account's first steps, this month's spend and
the last 30 days, day by day.

Both come from the Generation rows (what each request was charged and delivered), read through
the ``(account, -created_at)`` index, so a year of history costs the same two queries as a day.
Days are calendar days in UTC, the timezone the whole dashboard shows.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db.models import Count, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from accounts.models import Account
from billing.models import CreditAccount
from generation.models import Generation
from keys.models import ApiKey

CHART_DAYS = 30
# Drawing units of the chart's SVG viewBox; the CSS scales it to the card's width.
CHART_WIDTH = 600
CHART_HEIGHT = 120


@dataclass(frozen=True)
class Day:
    date: datetime.date
    credits: int
    images: int
    requests: int


@dataclass(frozen=True)
class Bar:
    x: int
    y: int
    width: int
    height: int
    day: Day


@dataclass(frozen=True)
class Chart:
    """One series as SVG bars, tallest day full height; a day with nothing draws no bar."""

    bars: list[Bar]
    peak: int
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT


@dataclass(frozen=True)
class MonthSpend:
    credits: int
    images: int
    requests: int
    since: datetime.date


@dataclass(frozen=True)
class FirstSteps:
    """The first-run checklist: get credits, create a key, make a first call.

    Each step is done by what the account has, not by what was clicked: credits once it has a
    balance or was ever given some (a grant, a card payment, a code), a key once it ever had one,
    a first call once it made any generation (through the API or the playground).
    """

    has_credits: bool
    has_key: bool
    has_called: bool

    @property
    def done(self) -> bool:
        return self.has_credits and self.has_key and self.has_called

    @property
    def count_done(self) -> int:
        return sum((self.has_credits, self.has_key, self.has_called))


def first_steps(account: Account) -> FirstSteps:
    credit = CreditAccount.objects.filter(owner=account).values(
        "balance_credits", "lifetime_credits"
    )
    figures = credit.first() or {"balance_credits": 0, "lifetime_credits": 0}
    return FirstSteps(
        has_credits=figures["balance_credits"] > 0 or figures["lifetime_credits"] > 0,
        has_key=ApiKey.objects.filter(account=account).exists(),
        has_called=Generation.objects.filter(account=account).exists(),
    )


def month_spend(account: Account, *, now: datetime.datetime | None = None) -> MonthSpend:
    today = timezone.localdate(now or timezone.now())
    first = today.replace(day=1)
    start = timezone.make_aware(datetime.datetime.combine(first, datetime.time.min))
    totals = Generation.objects.filter(account=account, created_at__gte=start).aggregate(
        credits=Coalesce(Sum("charged_credits"), 0),
        images=Coalesce(Sum("images_delivered"), 0),
        requests=Count("id"),
    )
    return MonthSpend(since=first, **totals)


def last_days(
    account: Account, *, days: int = CHART_DAYS, now: datetime.datetime | None = None
) -> list[Day]:
    """One entry per calendar day, oldest first, today last, days without requests included."""
    today = timezone.localdate(now or timezone.now())
    first = today - datetime.timedelta(days=days - 1)
    start = timezone.make_aware(datetime.datetime.combine(first, datetime.time.min))
    rows = (
        Generation.objects.filter(account=account, created_at__gte=start)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        # Not "images": that name is the Generation -> Image relation.
        .annotate(
            day_credits=Coalesce(Sum("charged_credits"), 0),
            day_images=Coalesce(Sum("images_delivered"), 0),
            day_requests=Count("id"),
        )
    )
    by_day = {row["day"]: row for row in rows}
    result = []
    for offset in range(days):
        date = first + datetime.timedelta(days=offset)
        row = by_day.get(date, {})
        result.append(
            Day(
                date=date,
                credits=row.get("day_credits", 0),
                images=row.get("day_images", 0),
                requests=row.get("day_requests", 0),
            )
        )
    return result


def chart(days: list[Day], field: str) -> Chart:
    values = [getattr(day, field) for day in days]
    peak = max(values, default=0)
    slot = CHART_WIDTH // max(len(days), 1)
    gap = max(slot // 5, 1)
    bars = []
    for index, (day, value) in enumerate(zip(days, values, strict=True)):
        if not value:
            continue
        # Integer drawing units; a day with any use gets at least a visible sliver.
        height = max(value * CHART_HEIGHT // peak, 2)
        bars.append(
            Bar(
                x=index * slot + gap // 2,
                y=CHART_HEIGHT - height,
                width=slot - gap,
                height=height,
                day=day,
            )
        )
    return Chart(bars=bars, peak=peak)
