"""The usage page's chart and summary CSV: the query behind GET /v1/usage/images, over the page's
filters, by the day (by the hour for a short range), the owner's usage only."""

from __future__ import annotations

import csv
import datetime
import io
import re

import pytest

from generation import usage
from generation.models import Generation

pytestmark = pytest.mark.smoke

UTC = datetime.UTC
DAY1 = datetime.datetime(2024, 3, 10, tzinfo=UTC)


def at(day: int, hour: int = 12, minute: int = 0) -> datetime.datetime:
    return DAY1 + datetime.timedelta(days=day - 1, hours=hour, minutes=minute)


@pytest.fixture
def record(db):
    """Write settled generation rows directly: the page only reads them."""

    def make(user, when, *, api_key=None, model="seedream-4-0", charged=40, delivered=1, **extra):
        fields = {
            "account": user.personal_account, "user": user, "api_key": api_key, "model": model,
            "upstream_model": "u",
            "prompt": "p", "size": "1024x1024", "n": 2, "price_per_image_credits": 40,
            "reserved_credits": 80, "charged_credits": charged, "images_delivered": delivered,
            "status": "succeeded", "created_at": when, "deadline_at": when, "finished_at": when,
            **extra,
        }  # fmt: skip
        return Generation.objects.create(**fields)

    return make


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


def page(client, query: str = "") -> str:
    response = client.get(f"/dashboard/usage/?{query}")
    assert response.status_code == 200
    return response.content.decode()


def table(html: str) -> dict[str, tuple[int, int, int]]:
    """The chart's figures table: (requests, images, credits) by its bucket's label."""
    section = html[html.index('id="summary-title"') :]
    rows = re.findall(
        r'<tr><td><time datetime="[^"]+">([^<]+)</time></td><td class="num">([\d,]+)</td>'
        r'<td class="num">([\d,]+)</td><td class="num">([\d,]+)</td></tr>',
        section,
    )

    def number(text: str) -> int:
        return int(text.replace(",", ""))

    return {label: (number(a), number(b), number(c)) for label, a, b, c in rows}


def summary_csv(client, query: str = "") -> list[dict[str, str]]:
    response = client.get(f"/dashboard/usage-summary.csv?{query}")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert "attachment" in response["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_chart_draws_credits_and_images_per_day_with_the_figures_in_a_table(
    owner_client, owner, record
):
    record(owner, at(1), charged=80, delivered=2)
    record(owner, at(1, 23, 59), charged=0, delivered=0, status="failed")
    record(owner, at(3))

    html = page(owner_client, "since=2024-03-09&until=2024-03-12")

    assert "Day by day, Mar 9 to Mar 12, 2024" in html
    assert table(html) == {
        "Mar 12": (1, 1, 40),
        "Mar 11": (0, 0, 0),
        "Mar 10": (2, 2, 80),
        "Mar 9": (0, 0, 0),
    }
    assert "<title>Mar 10: 80 credits</title>" in html
    assert "<title>Mar 12: 40 credits</title>" in html
    assert "<title>Mar 10: 2 images</title>" in html
    assert re.search(r"<dt>Credits charged</dt><dd>120 ", html)
    # Server-rendered: no script and no inline style (the CSP allows neither).
    section = html[html.index('id="summary-title"') :]
    assert "<script" not in section and "style=" not in section


def test_the_chart_is_the_apis_answer_for_the_same_window(
    owner_client, client, owner, api_key_factory, record
):
    issued = api_key_factory(owner, "laptop")
    record(owner, at(1, 0, 0), api_key=issued.api_key, charged=40)
    record(owner, at(1, 23, 59), api_key=issued.api_key, charged=35, model="seedream-3-0")
    record(owner, at(2, 5), charged=80, delivered=2, source="playground")
    start = usage.unix_seconds(DAY1)

    html = page(owner_client, "since=2024-03-10&until=2024-03-12")
    answer = client.get(
        "/v1/usage/images",
        {"start_time": start, "end_time": start + 3 * 86_400},
        headers={"Authorization": f"Bearer {issued.raw_key}"},
    ).json()

    from_api = {
        b["start_time"]: tuple(sum(r[n] for r in b["results"]) for n in usage_names())
        for b in answer["data"]
    }
    from_page = table(html)
    assert [from_page[label] for label in ("Mar 10", "Mar 11", "Mar 12")] == [
        from_api[start + day * 86_400] for day in range(3)
    ]


def usage_names() -> tuple[str, str, str]:
    return ("num_model_requests", "images", "credits")


def test_the_filters_narrow_the_chart_as_they_narrow_the_list(
    owner_client, owner, api_key_factory, record
):
    laptop = api_key_factory(owner, "laptop").api_key
    server = api_key_factory(owner, "server").api_key
    record(owner, at(1), api_key=laptop, charged=40)
    record(owner, at(1), api_key=server, charged=35, model="seedream-3-0")
    record(owner, at(1), charged=80, source="playground")
    record(owner, at(1), api_key=server, charged=0, delivered=0, status="failed")
    window = "since=2024-03-10&until=2024-03-10"

    def credits(query: str) -> tuple[int, int]:
        figures = table(page(owner_client, f"{window}&{query}"))
        return (
            sum(requests for requests, _, _ in figures.values()),
            sum(credits for _, _, credits in figures.values()),
        )

    assert credits("") == (4, 155)
    assert credits(f"key={server.pk}") == (2, 35)
    assert credits("model=seedream-3-0") == (1, 35)
    assert credits("source=playground") == (1, 80)
    assert credits("status=failed") == (1, 0)


def test_a_short_range_is_drawn_by_the_hour(owner_client, owner, record):
    record(owner, at(1, 0, 0))
    record(owner, at(1, 0, 59))
    record(owner, at(1, 23, 30), charged=35)

    html = page(owner_client, "since=2024-03-10&until=2024-03-10")

    figures = table(html)
    assert "Hour by hour, Mar 10, 2024" in html
    assert len(figures) == 24
    assert figures["Mar 10 00:00"] == (2, 2, 80)
    assert figures["Mar 10 23:00"] == (1, 1, 35)
    assert figures["Mar 10 12:00"] == (0, 0, 0)


def test_without_dates_the_chart_shows_the_last_30_days(owner_client, owner, record):
    from django.utils import timezone

    record(owner, timezone.now())

    html = page(owner_client)

    figures = table(html)
    assert len(figures) == 30
    assert sum(credits for _, _, credits in figures.values()) == 40


def test_a_range_longer_than_a_year_shows_its_last_year_and_says_so(owner_client, owner, record):
    record(owner, at(1))

    html = page(owner_client, "since=2020-01-01&until=2024-03-10")

    assert len(table(html)) == 366
    assert "its last 366 days are shown" in html
    assert "Mar 11, 2023 to Mar 10, 2024" in html


def test_from_after_to_draws_nothing(owner_client, owner, record):
    record(owner, at(1))

    html = page(owner_client, "since=2024-03-12&until=2024-03-10")

    assert "From is after To: there is nothing to count." in html
    assert table(html) == {}


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("since=1900-01-01&until=1900-01-05", "Nothing can be counted in this range."),
        ("until=0001-01-03", "Nothing can be counted in this range."),
        ("since=9999-12-30&until=9999-12-31", "Hour by hour, Dec 30 to Dec 31, 9999"),
        ("until=9999-12-31", "Day by day, Dec 2 to Dec 31, 9999"),
        ("since=1969-12-31&until=1970-01-01", "Hour by hour, Dec 31, 1969 to Jan 1, 1970"),
    ],
)
def test_the_first_and_last_days_a_date_can_name_are_no_error(
    owner_client, owner, record, query, says
):
    record(owner, at(1))

    html = page(owner_client, query)
    summary = summary_csv(owner_client, query)

    assert says in html
    assert all(row["credits"] == "0" for row in summary)


def test_an_outsider_sees_none_of_the_owners_usage_in_the_chart_or_the_summary(
    client, owner, outsider, api_key_factory, record
):
    key = api_key_factory(owner, "owner-key").api_key
    record(owner, at(1), api_key=key, charged=40)
    client.force_login(outsider)
    window = f"since=2024-03-10&until=2024-03-11&key={key.pk}"

    figures = table(page(client, window))
    rows = summary_csv(client, window)

    assert all(f == (0, 0, 0) for f in figures.values())
    assert all(row["credits"] == "0" and row["key"] == "" for row in rows)


def test_the_summary_csv_has_a_line_per_bucket_and_group_and_zeros_for_empty_ones(
    owner_client, owner, api_key_factory, record
):
    issued = api_key_factory(owner, "laptop").api_key
    record(owner, at(1, 9), api_key=issued, charged=40)
    record(owner, at(1, 10), api_key=issued, charged=40)
    record(owner, at(1, 11), api_key=issued, charged=35, model="seedream-3-0", size="2K")
    record(owner, at(3, 8), charged=80, delivered=2, source="playground")

    rows = summary_csv(owner_client, "since=2024-03-10&until=2024-03-12")

    key_id = usage.key_id(issued.pk, issued.created_at)
    columns = ("bucket_start", "model", "api_key_id", "key", "size", "source")
    figures = ("requests", "images", "credits")
    assert [tuple(r[c] for c in columns) for r in rows] == [
        ("2024-03-10T00:00:00+00:00", "seedream-3-0", key_id, "laptop", "2K", "api"),
        ("2024-03-10T00:00:00+00:00", "seedream-4-0", key_id, "laptop", "1024x1024", "api"),
        ("2024-03-11T00:00:00+00:00", "", "", "", "", ""),
        ("2024-03-12T00:00:00+00:00", "seedream-4-0", "", "", "1024x1024", "playground"),
    ]
    assert [tuple(int(r[f]) for f in figures) for r in rows] == [
        (1, 1, 35),
        (2, 2, 80),
        (0, 0, 0),
        (1, 2, 80),
    ]
    assert rows[0]["bucket_end"] == "2024-03-11T00:00:00+00:00"


def test_a_key_name_a_spreadsheet_would_run_is_exported_as_text(
    owner_client, owner, api_key_factory, record
):
    issued = api_key_factory(owner, "=HYPERLINK(1)").api_key
    record(owner, at(1), api_key=issued)

    rows = summary_csv(owner_client, "since=2024-03-10&until=2024-03-10")

    assert [r["key"] for r in rows if r["key"]] == ["'=HYPERLINK(1)"]


def test_a_visitor_is_sent_to_log_in_for_the_summary(client):
    response = client.get("/dashboard/usage-summary.csv")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
