"""The dashboard overview shows the customer's own balance, spend, activity and generations."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing import services as billing
from dashboard import overview
from generation.catalog import get_model, resolve_size
from generation.models import Generation
from generation.services import GenerationSpec, begin_generation
from keys import services as keys


@pytest.fixture
def generation_of(db):
    def make(user, prompt):
        model = get_model("seedream-4-0")
        spec = GenerationSpec(model=model, prompt=prompt, size=resolve_size(model, "1K"), n=1)
        return begin_generation(account=user.personal_account, made_by_id=user.pk, spec=spec)

    return make


@pytest.fixture
def record(db):
    """Finished generation rows written directly: the overview only reads them."""

    def make(user, when, *, charged=40, delivered=1, n=1):
        return Generation.objects.create(account=user.personal_account, user=user,
            model="seedream-4-0", upstream_model="u", prompt="p", size="1K", n=n,
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

    month = overview.month_spend(owner.personal_account)

    assert (month.credits, month.images, month.requests, month.since) == (120, 3, 2, first)


def test_the_last_30_days_have_one_entry_per_day_with_gaps_filled(owner, outsider, record):
    today = timezone.localdate()
    record(owner, at(today), charged=40)
    record(owner, at(today), charged=0, delivered=0)  # a failed request: counted, not charged
    record(owner, at(today - datetime.timedelta(days=29)), charged=80, delivered=2, n=2)
    record(owner, at(today - datetime.timedelta(days=30)), charged=999)  # one day too old
    record(outsider, at(today), charged=500)

    days = overview.last_days(owner.personal_account)

    assert len(days) == 30
    assert (days[0].date, days[-1].date) == (today - datetime.timedelta(days=29), today)
    assert (days[-1].credits, days[-1].images, days[-1].requests) == (40, 1, 2)
    assert (days[0].credits, days[0].images) == (80, 2)
    assert sum(day.credits for day in days[1:-1]) == 0


def test_the_chart_scales_bars_to_the_busiest_day_and_skips_empty_days(owner, record):
    today = timezone.localdate()
    record(owner, at(today), charged=400)
    record(owner, at(today - datetime.timedelta(days=1)), charged=100)

    chart = overview.chart(overview.last_days(owner.personal_account), "credits")

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
            account=owner.personal_account,
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


# The first-run checklist: get credits, create a key, make a first call.


def checklist_of(client):
    page = client.get("/dashboard/").content.decode()
    if 'id="first-steps-title"' not in page:
        return None
    start = page.index('<section class="card first-steps"')
    return page[start : page.index("</section>", start)]


def test_a_new_account_sees_three_steps_to_do(client, user_factory, settings):
    owner = user_factory()
    settings.SUPPORT_EMAIL = "help@operator.example"
    client.force_login(owner)
    checklist = checklist_of(client)
    assert checklist is not None
    assert "0 of 3 done" in checklist
    assert "Done" not in checklist
    # No card payments here: whom to ask, and the promotion code, instead of a buy button.
    assert 'href="mailto:help@operator.example?subject=Credits"' in checklist
    assert "Buy credits" not in checklist
    assert 'href="/dashboard/keys/">Create a key</a>' in checklist
    assert 'href="/dashboard/playground/">Open the playground</a>' in checklist


def test_with_card_payments_the_first_step_is_a_buy_button(client, user_factory, settings):
    owner = user_factory()
    settings.STRIPE_SECRET_KEY = "sk_test_overview"
    settings.STRIPE_WEBHOOK_SECRET = "whsec_overview"
    client.force_login(owner)
    assert 'href="/dashboard/billing/">Buy credits</a>' in checklist_of(client)


def test_with_a_trial_the_first_step_mentions_it(client, user_factory, settings):
    owner = user_factory()
    settings.SIGNUP_CREDITS = 250
    client.force_login(owner)
    assert "confirm your email address for 250 free credits" in checklist_of(client)


def test_each_step_ticks_when_done_and_the_list_goes_when_all_are(
    client, user_factory, outsider, api_key_factory, generation_of
):
    owner = user_factory()
    client.force_login(owner)
    # Another customer's progress ticks nothing of ours.
    billing.grant(
        outsider.personal_account, 100, description="theirs", idempotency_key="outsider-credits"
    )
    api_key_factory(outsider)
    generation_of(outsider, "theirs")
    assert "0 of 3 done" in checklist_of(client)

    billing.grant(owner.personal_account, 100, description="trial", idempotency_key="owner-credits")
    assert overview.first_steps(owner.personal_account) == overview.FirstSteps(True, False, False)
    assert "1 of 3 done" in checklist_of(client)

    issued = api_key_factory(owner)
    assert "2 of 3 done" in checklist_of(client)

    # A revoked key still counts: the step was done.
    keys.revoke_key(issued.api_key)
    assert overview.first_steps(owner.personal_account).has_key

    generation_of(owner, "first")
    assert overview.first_steps(owner.personal_account).done
    assert checklist_of(client) is None


def test_credits_received_and_spent_still_count(user_factory):
    owner = user_factory()
    billing.grant(owner.personal_account, 40, description="trial", idempotency_key="spent")
    billing.adjust(owner.personal_account, -40, reason="spent it all", operator="test")
    assert overview.first_steps(owner.personal_account).has_credits


def test_a_generation_alone_does_not_hide_the_list(client, user_factory, record):
    owner = user_factory()
    record(owner, timezone.now())
    client.force_login(owner)
    assert "1 of 3 done" in checklist_of(client)
