"""The usage page and its CSV: the owner's requests only, filtered, paged, bounded in queries."""

from __future__ import annotations

import csv
import datetime
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from generation.models import Generation, InputImage
from keys.models import ApiKey


@pytest.fixture
def record(db):
    """Write generation rows directly: the usage page only reads them."""

    def make(user, *, api_key=None, model="seedream-4-0", status="succeeded", when=None, **extra):
        when = when or timezone.now()
        fields = {
            "account": user.personal_account, "user": user, "api_key": api_key, "model": model,
            "upstream_model": "u",
            "prompt": "p", "size": "1024x1024", "n": 2, "price_per_image_credits": 40,
            "reserved_credits": 80, "charged_credits": 40, "images_delivered": 1,
            "status": status, "created_at": when, "deadline_at": when, "latency_ms": 1234,
            **extra,
        }  # fmt: skip
        return Generation.objects.create(**fields)

    return make


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.mark.parametrize("url", ["/dashboard/usage/", "/dashboard/usage.csv"])
def test_a_visitor_is_sent_to_log_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_owner_sees_each_request_with_what_it_cost(
    owner_client, owner, api_key_factory, record
):
    key = api_key_factory(owner, "laptop").api_key
    record(owner, api_key=key, error_message="1 of 2 images were not delivered: blocked")

    page = owner_client.get("/dashboard/usage/").content.decode()

    for text in [
        "laptop",
        "seedream-4-0",
        "1024x1024",
        "1,234 ms",
        "1 of 2 images were not delivered",
    ]:
        assert text in page
    assert '<td class="num">40</td>' in page  # charged, and not charged


def test_an_outsider_sees_none_of_it_even_naming_the_owners_key(
    client, owner, outsider, api_key_factory, record
):
    key = api_key_factory(owner, "owner-secret-key-name").api_key
    record(owner, api_key=key, prompt="owners prompt", error_message="owners error")
    client.force_login(outsider)

    page = client.get(f"/dashboard/usage/?key={key.pk}").content.decode()
    exported = client.get(f"/dashboard/usage.csv?key={key.pk}")
    rows = list(csv.reader(io.StringIO(b"".join(exported.streaming_content).decode())))

    assert "owners error" not in page and "owner-secret-key-name" not in page
    assert "No requests match." in page
    assert rows == [rows[0]]  # the header alone


def test_filters_narrow_the_rows(owner_client, owner, api_key_factory, record):
    laptop = api_key_factory(owner, "laptop").api_key
    server = api_key_factory(owner, "server").api_key
    now = timezone.now()
    record(owner, api_key=laptop, error_message="A", when=now - datetime.timedelta(days=3))
    record(owner, api_key=server, error_message="B", status="failed")
    record(owner, api_key=server, error_message="C", model="seedream-3-0")

    def shown(query):
        page = owner_client.get(f"/dashboard/usage/?{query}").content.decode()
        return {marker for marker in "ABC" if f"<td>{marker}</td>" in page}

    assert shown("") == {"A", "B", "C"}
    assert shown(f"key={server.pk}") == {"B", "C"}
    assert shown("status=failed") == {"B"}
    assert shown("model=seedream-3-0") == {"C"}
    assert shown(f"until={(now - datetime.timedelta(days=2)).date()}") == {"A"}
    assert shown(f"since={now.date()}") == {"B", "C"}
    assert shown("status=nonsense") == {"A", "B", "C"}  # an invalid filter is ignored, not an error


def test_pages_follow_each_other_without_gaps_or_repeats(owner_client, owner, record):
    start = timezone.now()
    for i in range(120):
        # Pairs share a timestamp, so the cursor's tie-break on id matters.
        record(owner, error_message=f"row{i:03d}", when=start + datetime.timedelta(seconds=i // 2))
    seen, url = [], "/dashboard/usage/"
    for _ in range(5):
        if not url:
            break
        page = owner_client.get(url).context["page"]
        seen += [g.error_message for g in page.rows]
        url = f"/dashboard/usage/?after={page.next_cursor}" if page.next_cursor else None
    assert url is None
    assert seen == [f"row{i:03d}" for i in reversed(range(120))]


def test_the_csv_has_every_filtered_row_with_the_cost_per_image(owner_client, owner, record):
    for i in range(3):
        record(owner, error_message=f"e{i}")
    record(owner, model="seedream-3-0", error_message="other")

    response = owner_client.get("/dashboard/usage.csv?model=seedream-4-0")

    assert response["Content-Type"] == "text/csv"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["error"] for r in rows] == ["e2", "e1", "e0"]
    assert rows[0]["credits_per_image"] == "40"
    assert (rows[0]["credits_charged"], rows[0]["credits_not_charged"]) == ("40", "40")


@pytest.mark.parametrize("lead", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_a_spreadsheet_would_run_as_a_formula_is_exported_as_text(
    owner_client, owner, api_key_factory, record, lead
):
    key = api_key_factory(owner, "k").api_key
    # As it could reach the row (key names are trimmed when typed, but not every way in is).
    ApiKey.objects.filter(pk=key.pk).update(name=f'{lead}HYPERLINK("https://evil.example","x")')
    record(owner, api_key=key, error_message=f"{lead}1+1")
    record(owner, error_message="plain words")

    response = owner_client.get("/dashboard/usage.csv")

    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[1]["key"] == f'\'{lead}HYPERLINK("https://evil.example","x")'
    assert rows[1]["error"] == f"'{lead}1+1"
    assert rows[0]["error"] == "plain words"  # nothing else changes


def double_rows(user, times):
    """Copy ``user``'s generation rows onto themselves ``times`` times: 100,000 rows in a
    second instead of the twenty that building model instances takes."""
    fields = [
        f.column for f in Generation._meta.concrete_fields if f.column not in ("id", "public_id")
    ]
    columns = ", ".join(fields)
    table = Generation._meta.db_table
    with connection.cursor() as cursor:
        for round_ in range(times):
            cursor.execute(
                f"INSERT INTO {table} (public_id, {columns}) "  # noqa: S608 (our own names)
                f"SELECT public_id || '_{round_}', {columns} FROM {table} WHERE user_id = %s",
                [user.pk],
            )


def test_the_page_costs_the_same_few_queries_with_many_rows(owner_client, owner, api_key_factory):
    key = api_key_factory(owner).api_key
    now = timezone.now()
    Generation.objects.bulk_create(
        Generation(
            account=owner.personal_account,
            user=owner,
            api_key=key,
            model="seedream-4-0",
            upstream_model="u",
            prompt="p",
            size="1K",
            n=1,
            status="succeeded",
            created_at=now - datetime.timedelta(seconds=i),
            deadline_at=now,
        )
        for i in range(1563)
    )
    double_rows(owner, 6)
    assert Generation.objects.filter(user=owner).count() >= 100_000
    # Each count is read at once: a capture reads Django's query log when asked, and the next
    # request empties that log.
    with CaptureQueriesContext(connection) as first:
        owner_client.get("/dashboard/usage/")
    first_sql = [q["sql"] for q in first.captured_queries]
    # A key filter costs one query (its id in usage, for the chart's query), on every page.
    with CaptureQueriesContext(connection) as first_of_a_key:
        owner_client.get(f"/dashboard/usage/?key={key.pk}")
    first_of_a_key_count = len(first_of_a_key)
    cursor = owner_client.get(f"/dashboard/usage/?key={key.pk}").context["page"].next_cursor
    with CaptureQueriesContext(connection) as deep:
        owner_client.get(f"/dashboard/usage/?after={cursor}&key={key.pk}")
    assert len(first_sql) <= 8
    assert len(deep) == first_of_a_key_count <= len(first_sql) + 1
    # No COUNT over the history: the chart's one aggregate counts its window's requests only.
    (counted,) = [sql for sql in first_sql if "COUNT(" in sql.upper()]
    assert '"finished_at" >= ' in counted and '"finished_at" < ' in counted


def test_a_request_shows_the_reference_images_it_was_made_from(owner_client, owner, record):
    generation = record(owner, params={"references": 2})
    inputs = [
        InputImage.objects.create(
            generation=generation,
            account=owner.personal_account,
            index=index,
            file=f"inputs/x/{index}.png",
            content_type="image/png",
            width=64,
            height=48,
            bytes=100,
        )
        for index in range(2)
    ]
    record(owner, error_message="plain")  # a prompt alone: made from nothing

    page = owner_client.get("/dashboard/usage/").content.decode()
    exported = owner_client.get("/dashboard/usage.csv")

    for kept in inputs:
        assert f"/dashboard/inputs/{kept.token}/thumbnail/" in page
    rows = list(csv.DictReader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert [r["reference_images"] for r in rows] == ["0", "2"]
