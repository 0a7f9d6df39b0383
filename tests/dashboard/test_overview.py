"""The dashboard overview shows the customer's own balance, spend, activity and generations."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard import overview
from generation.catalog import get_model, resolve_size
from generation.models import Generation
from generation.services import GenerationSpec, begin_generation


@pytest.fixture
def generation_of(db):
    def make(user, prompt):
        model = get_model("seedream-4-0")
        spec = GenerationSpec(model=model, prompt=prompt, size=resolve_size(model, "1K"), n=1)
        return begin_generation(user=user, spec=spec)

    return make


@pytest.fixture
def record(db):
    """Finished generation rows written directly: the overview only reads them."""

    def make(user, when, *, charged=40, delivered=1, n=1):
        return Generation.objects.create(
            user=user, model="seedream-4-0", upstream_model="u", prompt="p", size="1K", n=n,
            status="succeeded", price_per_image_credits=40, reserved_credits=max(40 * n, charged),
            charged_credits=charged, images_delivered=delivered, created_at=when, deadline_at=when,
        )  # fmt: skip

    return make


def at(date: datetime.date, hour: int = 12) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(date, datetime.time(hour)))


def test_a_visitor_is_sent_to_log_in(client):
    response = client.get("/dashboard/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_owner_sees_their_balance_keys_and_generations_only(
    client, owner, outsider, api_key_factory, generation_of
):
    api_key_factory(owner)
    mine = generation_of(owner, "mine")
    theirs = generation_of(outsider, "theirs")
    client.force_login(owner)

    response = client.get("/dashboard/")
    page = response.content.decode()

    assert "960 credits" in page
    assert "$0.96" in page
    assert "1 active" in page
    assert list(response.context["generations"]) == [mine]
    assert theirs.public_id not in page


def test_spend_this_month_counts_only_this_calendar_month(owner, outsider, record):
    today = timezone.localdate()
    first = today.replace(day=1)
    record(owner, at(first, 0), charged=40)
    record(owner, at(today), charged=80, delivered=2, n=2)
    record(owner, at(first - datetime.timedelta(days=1), 23), charged=1000)  # last month
    record(outsider, at(today), charged=500)

    month = overview.month_spend(owner)

    assert (month.credits, month.images, month.requests, month.since) == (120, 3, 2, first)


def test_the_last_30_days_have_one_entry_per_day_with_gaps_filled(owner, outsider, record):
    today = timezone.localdate()
    record(owner, at(today), charged=40)
    record(owner, at(today), charged=0, delivered=0)  # a failed request: counted, not charged
    record(owner, at(today - datetime.timedelta(days=29)), charged=80, delivered=2, n=2)
    record(owner, at(today - datetime.timedelta(days=30)), charged=999)  # one day too old
    record(outsider, at(today), charged=500)

    days = overview.last_days(owner)

    assert len(days) == 30
    assert (days[0].date, days[-1].date) == (today - datetime.timedelta(days=29), today)
    assert (days[-1].credits, days[-1].images, days[-1].requests) == (40, 1, 2)
    assert (days[0].credits, days[0].images) == (80, 2)
    assert sum(day.credits for day in days[1:-1]) == 0


def test_the_chart_scales_bars_to_the_busiest_day_and_skips_empty_days(owner, record):
    today = timezone.localdate()
    record(owner, at(today), charged=400)
    record(owner, at(today - datetime.timedelta(days=1)), charged=100)

    chart = overview.chart(overview.last_days(owner), "credits")

    assert chart.peak == 400
    assert [bar.height for bar in chart.bars] == [chart.height // 4, chart.height]
    assert all(bar.y + bar.height == chart.height for bar in chart.bars)
    assert chart.bars[-1].x > chart.bars[0].x


def test_the_page_shows_the_month_and_the_daily_figures(client, owner, record):
    today = timezone.localdate()
    record(owner, at(today), charged=1234, delivered=1)
    client.force_login(owner)

    page = client.get("/dashboard/").content.decode()

    assert "1,234 credits" in page  # spent this month
    assert "$1.234" in page
    assert f'<time datetime="{today:%Y-%m-%d}">' in page
    assert page.count("<rect ") == 2  # one bar in each chart


def test_a_year_of_history_costs_the_same_few_queries_as_none(client, owner, record):
    client.force_login(owner)
    with CaptureQueriesContext(connection) as empty:
        client.get("/dashboard/")

    now = timezone.now()
    Generation.objects.bulk_create(
        Generation(
            user=owner, model="seedream-4-0", upstream_model="u", prompt="p", size="1K", n=1,
            status="succeeded", price_per_image_credits=40, reserved_credits=40,
            charged_credits=40, images_delivered=1,
            created_at=now - datetime.timedelta(hours=3 * i), deadline_at=now,
        )
        for i in range(8 * 365)  # eight requests a day for a year
    )  # fmt: skip
    with CaptureQueriesContext(connection) as year:
        response = client.get("/dashboard/")

    assert response.status_code == 200
    assert len(year) == len(empty) <= 12
    assert response.context["month"].requests > 0
    assert sum(day.requests for day in response.context["days"]) >= 8 * 29
