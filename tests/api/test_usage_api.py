"""GET /v1/usage/images through Django: real generations (over HTTP, against the simulator) put
at chosen moments by a clock, then read back in buckets and held to the ledger."""

from __future__ import annotations

import datetime
import itertools
import json
import uuid
from collections import Counter, defaultdict
from typing import Any

import pytest
from django.utils import timezone

from billing.models import LedgerEntry, LedgerKind
from generation import services
from generation import usage as usage_query
from generation.models import Generation
from keys import services as keys
from tests.support.money import assert_ledger_balanced

pytestmark = pytest.mark.smoke

URL = "/v1/usage/images"
DAY, HOUR, MINUTE = 86_400, 3_600, 60
# 2024-03-10T00:00:00Z, a Sunday: every moment below is an offset from it.
T0 = 1_710_028_800


class Clock:
    """What django.utils.timezone.now answers: every moment the product records (a request's
    creation, its settlement, its ledger lines) is read from it."""

    def __init__(self) -> None:
        self.now = datetime.datetime.fromtimestamp(T0, datetime.UTC)

    def at(self, unix_seconds: float) -> None:
        self.now = datetime.datetime.fromtimestamp(T0, datetime.UTC) + datetime.timedelta(
            seconds=unix_seconds - T0
        )


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(timezone, "now", lambda: clock.now)
    return clock


def generate(client, key: str, **body: Any):
    body = {"model": "seedream-4-0", "prompt": "a red fox in snow", **body}
    return client.post(
        "/v1/images/generations",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


def get_usage(client, key: str, query: str | dict[str, Any]):
    """GET the usage with ``query``: a dict (a list value is repeated), or a query string as
    sent."""
    headers = {"Authorization": f"Bearer {key}"}
    if isinstance(query, str):
        return client.get(f"{URL}?{query}", headers=headers)
    return client.get(URL, query, headers=headers)


def all_buckets(client, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every page of the query, followed by next_page, its buckets in order."""
    buckets: list[dict[str, Any]] = []
    page: str | None = None
    for _ in range(100):
        response = get_usage(client, key, {**params, **({"page": page} if page else {})})
        assert response.status_code == 200, response.content
        body = response.json()
        buckets += body["data"]
        if not body["has_more"]:
            assert body["next_page"] is None
            return buckets
        page = body["next_page"]
    raise AssertionError("the pages never ended")


def ledger_charges(user, start: int, end: int) -> list[LedgerEntry]:
    """The user's charge lines written in [start, end)."""
    return list(
        LedgerEntry.objects.filter(
            account__owner__personal_owner=user,
            kind=LedgerKind.CHARGE,
            created_at__gte=usage_query.moment(start),
            created_at__lt=usage_query.moment(end),
        )
    )


def public_key_id(api_key) -> str:
    return usage_query.key_id(api_key.pk, api_key.created_at)


# - The hard requirement: the buckets are the ledger ----------------------------------------------


@pytest.fixture
def history(clock, client, user_factory, api_key_factory):
    """An owner with three keys making requests of three models at moments on both sides of
    minute, hour and day edges (some partly or wholly failed, charged for what was delivered);
    an outsider making requests at the same moments."""
    owner = user_factory("many@example.com", credits=1_000_000)
    outsider = user_factory("other@example.com", credits=1_000_000)
    owner_keys = [api_key_factory(owner, name) for name in ("laptop", "server", "ci")]
    outsider_key = api_key_factory(outsider, "theirs")
    plan = [
        # (seconds from T0, key, model, n, prompt)
        (-1, 0, "seedream-4-0", 1, "a fox"),
        (0, 1, "seedream-4-5", 2, "two owls"),
        (59.999999, 2, "seedream-3-0", 1, "a heron"),
        (60, 0, "seedream-4-5", 1, "[sim:block-prompt] blocked"),
        (HOUR - 1, 1, "seedream-4-0", 2, "[sim:deliver=1] one of two"),
        (HOUR, 2, "seedream-4-0", 3, "three cats"),
        (2 * HOUR + 30, 0, "seedream-3-0", 1, "a boat"),
        (DAY - 0.000001, 1, "seedream-4-5", 1, "a bell"),
        (DAY, 2, "seedream-4-0", 1, "[sim:error-500] fails"),
        (DAY + 1, 0, "seedream-4-0", 2, "kites"),
        (2 * DAY + 5 * HOUR, 1, "seedream-3-0", 1, "a lamp"),
    ]
    # The simulator counts calls by prompt for the whole session: each run's prompts are new.
    run = uuid.uuid4().hex
    for offset, key_index, model, n, prompt in plan:
        clock.at(T0 + offset)
        key = owner_keys[key_index].raw_key
        response = generate(client, key, model=model, n=n, prompt=f"{prompt} {run}")
        assert response.status_code in (200, 400, 502), response.content
        generate(client, outsider_key.raw_key, model=model, prompt="theirs")
    delivered = Generation.objects.filter(user=owner)
    assert {g.status for g in delivered} == {"succeeded", "failed"}
    assert any(0 < g.images_delivered < g.n for g in delivered)  # a partial delivery
    return owner, owner_keys


WINDOWS = [
    # (start, end, bucket_width, limit): whole days, cut days, cut hours, minutes across an edge
    (T0 - DAY, T0 + 3 * DAY, "1d", None),
    (T0 - 30, T0 + DAY + 30, "1d", None),
    (T0 + 30 * MINUTE, T0 + DAY + 30 * MINUTE, "1h", 5),
    (T0 - 90, T0 + 2 * HOUR, "1m", 1440),
    (T0 + 59, T0 + HOUR + 1, "1m", 7),
]


@pytest.mark.parametrize(("start", "end", "width", "limit"), WINDOWS)
def test_each_buckets_credits_are_the_ledgers_charges_of_its_time(
    client, history, start, end, width, limit
):
    owner, owner_keys = history
    params: dict[str, Any] = {"start_time": start, "end_time": end, "bucket_width": width}
    if limit:
        params["limit"] = limit

    buckets = all_buckets(client, owner_keys[0].raw_key, params)

    # The buckets tile the window, in order, without gaps or overlaps.
    assert buckets[0]["start_time"] == start and buckets[-1]["end_time"] == end
    for before, after in itertools.pairwise(buckets):
        assert before["end_time"] == after["start_time"]
    for bucket in buckets:
        charged = -sum(e.amount_credits for e in ledger_charges(owner, *_edges(bucket)))
        assert sum(r["credits"] for r in bucket["results"]) == charged, bucket
    assert sum(r["credits"] for b in buckets for r in b["results"]) == -sum(
        e.amount_credits for e in ledger_charges(owner, start, end)
    )


def _edges(bucket: dict[str, Any]) -> tuple[int, int]:
    return bucket["start_time"], bucket["end_time"]


@pytest.mark.parametrize("width", ["1d", "1h", "1m"])
def test_grouped_by_model_and_key_each_group_is_the_ledgers_charges_of_its_requests(
    client, history, width
):
    owner, owner_keys = history
    start, end = T0 - HOUR, T0 + 2 * DAY
    limit = usage_query.BUCKET_LIMITS[width][1]
    params = {
        "start_time": start,
        "end_time": end,
        "bucket_width": width,
        "limit": limit,
        "group_by[]": ["model", "api_key_id"],
    }
    generations = {g.ledger_reference: g for g in Generation.objects.filter(user=owner)}
    key_ids = {k.api_key.pk: public_key_id(k.api_key) for k in owner_keys}

    buckets = all_buckets(client, owner_keys[1].raw_key, params)

    for bucket in buckets:
        expected: Counter[tuple[str, str]] = Counter()
        for entry in ledger_charges(owner, *_edges(bucket)):
            made = generations[entry.reference]
            expected[made.model, key_ids[made.api_key_id]] -= entry.amount_credits
        shown = Counter(
            {(r["model"], r["api_key_id"]): r["credits"] for r in bucket["results"] if r["credits"]}
        )
        assert shown == expected, bucket
        for result in bucket["results"]:
            assert (result["size"], result["source"]) == (None, None)


def test_requests_and_images_are_every_accepted_request_and_every_delivered_image(client, history):
    owner, owner_keys = history

    buckets = all_buckets(
        client,
        owner_keys[0].raw_key,
        {"start_time": T0 - DAY, "end_time": T0 + 3 * DAY, "group_by": "model"},
    )

    by_day: dict[tuple[int, str], dict[str, int]] = defaultdict(lambda: Counter())
    for made in Generation.objects.filter(user=owner):
        assert made.finished_at is not None
        day = usage_query.unix_seconds(made.finished_at) // DAY * DAY
        figures = by_day[day, made.model]
        figures["num_model_requests"] += 1
        figures["images"] += made.images_delivered
    shown = {
        (b["start_time"], r["model"]): {k: r[k] for k in ("num_model_requests", "images")}
        for b in buckets
        for r in b["results"]
    }
    assert shown == {key: dict(value) for key, value in by_day.items()}
    # The blocked request and the one that failed upstream count, charged nothing.
    day0 = {r["model"]: r for b in buckets if b["start_time"] == T0 for r in b["results"]}
    assert day0["seedream-4-5"]["num_model_requests"] == 3


# - The page's shape ------------------------------------------------------------------------------


def test_a_page_is_openais_shape_with_empty_buckets_listed(clock, client, owner, owner_key):
    clock.at(T0 + DAY + 5)
    assert generate(client, owner_key, size="1024x1024").status_code == 200

    response = get_usage(client, owner_key, f"start_time={T0}&end_time={T0 + 3 * DAY}")

    assert response.status_code == 200
    assert response.json() == {
        "object": "page",
        "data": [
            {"object": "bucket", "start_time": T0, "end_time": T0 + DAY, "results": []},
            {
                "object": "bucket",
                "start_time": T0 + DAY,
                "end_time": T0 + 2 * DAY,
                "results": [
                    {
                        "object": "organization.usage.images.result",
                        "images": 1,
                        "num_model_requests": 1,
                        "credits": 40,
                        "model": None,
                        "api_key_id": None,
                        "api_key_name": None,
                        "size": None,
                        "source": None,
                    }
                ],
            },
            {
                "object": "bucket",
                "start_time": T0 + 2 * DAY,
                "end_time": T0 + 3 * DAY,
                "results": [],
            },
        ],
        "has_more": False,
        "next_page": None,
    }


def test_grouped_by_everything_each_result_names_its_group(clock, client, owner, api_key_factory):
    issued = api_key_factory(owner, "studio")
    clock.at(T0 + 10)
    generate(client, issued.raw_key, size="2048x2048")
    generate(client, issued.raw_key, model="seedream-3-0", size="1024x1024", n=2)

    query = f"start_time={T0}&end_time={T0 + DAY}&" + "&".join(
        f"group_by={name}" for name in ("model", "api_key_id", "size", "source")
    )
    results = get_usage(client, issued.raw_key, query).json()["data"][0]["results"]

    key = public_key_id(issued.api_key)
    assert [
        (r["model"], r["api_key_id"], r["api_key_name"], r["size"], r["source"], r["images"])
        for r in results
    ] == [
        ("seedream-3-0", key, "studio", "1024x1024", "api", 2),
        ("seedream-4-0", key, "studio", "2048x2048", "api", 1),
    ]


def test_a_window_is_paged_by_limit_with_an_opaque_cursor(client, owner_key):
    first = get_usage(client, owner_key, {"start_time": T0, "end_time": T0 + 10 * DAY}).json()

    assert len(first["data"]) == 7  # OpenAI's default for 1d
    assert first["has_more"] is True and isinstance(first["next_page"], str)
    rest = get_usage(
        client,
        owner_key,
        {"start_time": T0, "end_time": T0 + 10 * DAY, "page": first["next_page"]},
    ).json()
    assert [b["start_time"] for b in first["data"] + rest["data"]] == [
        T0 + day * DAY for day in range(10)
    ]
    assert (rest["has_more"], rest["next_page"]) == (False, None)


@pytest.mark.parametrize(
    ("width", "default", "most"), [("1d", 7, 31), ("1h", 24, 168), ("1m", 60, 1440)]
)
def test_the_limits_are_openais_per_bucket_width(client, owner_key, width, default, most):
    far = {"start_time": T0, "end_time": T0 + 2000 * DAY, "bucket_width": width}

    assert len(get_usage(client, owner_key, far).json()["data"]) == default
    assert len(get_usage(client, owner_key, {**far, "limit": most}).json()["data"]) == most
    refused = get_usage(client, owner_key, {**far, "limit": most + 1})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "limit"


def test_without_an_end_the_window_runs_to_the_end_of_the_current_bucket(
    clock, client, owner, owner_key
):
    clock.at(T0 + 2 * DAY + 13 * HOUR)
    generate(client, owner_key)

    body = get_usage(client, owner_key, {"start_time": T0}).json()

    assert [b["start_time"] for b in body["data"]] == [T0, T0 + DAY, T0 + 2 * DAY]
    assert body["data"][-1]["end_time"] == T0 + 3 * DAY
    assert body["data"][-1]["results"][0]["credits"] == 40
    later = get_usage(client, owner_key, {"start_time": T0 + 5 * DAY}).json()
    assert (later["data"], later["has_more"]) == ([], False)


# - What is counted -------------------------------------------------------------------------------


def test_a_refusal_for_credits_and_unsettled_work_are_not_counted_a_cancelled_job_is(
    clock, client, user_factory, api_key_factory
):
    poor = user_factory(credits=50)
    key = api_key_factory(poor).raw_key
    clock.at(T0 + 100)
    assert generate(client, key, size="1024x1024", n=2).status_code == 402  # 80 needed
    queued = client.post(
        "/v1/images/generations",
        json.dumps({"model": "seedream-4-0", "prompt": "later", "size": "1024x1024"}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}", "Prefer": "respond-async"},
    )
    assert queued.status_code == 202
    window = {"start_time": T0, "end_time": T0 + DAY}

    assert get_usage(client, key, window).json()["data"][0]["results"] == []

    clock.at(T0 + 200)
    cancelled = client.post(
        f"/v1/images/generations/{queued.json()['id']}/cancel",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert cancelled.json()["status"] == "cancelled"
    (result,) = get_usage(client, key, window).json()["data"][0]["results"]
    assert (result["num_model_requests"], result["images"], result["credits"]) == (1, 0, 0)
    assert assert_ledger_balanced(poor) == 50


def test_playground_requests_are_counted_as_their_source_with_no_key(
    clock, client, owner, owner_key, monkeypatch
):
    from generation import tasks

    monkeypatch.setattr(tasks, "send_generation", lambda pk, countdown=0: None)
    monkeypatch.setattr(
        "django.db.transaction.on_commit", lambda func, using=None, robust=False: func()
    )
    client.force_login(owner)
    clock.at(T0 + HOUR)
    client.post(
        "/dashboard/playground/",
        {"prompt": "a paper boat", "model": "seedream-4-0", "size": "2048x2048", "n": "1"},
        headers={"HX-Request": "true"},
    )
    services.run_queued_generation(Generation.objects.get().pk)
    generate(client, owner_key, size="2048x2048")

    results = get_usage(
        client,
        owner_key,
        {"start_time": T0, "end_time": T0 + DAY, "group_by": ["source", "api_key_id"]},
    ).json()["data"][0]["results"]
    only_playground = get_usage(
        client, owner_key, {"start_time": T0, "end_time": T0 + DAY, "sources[]": "playground"}
    ).json()["data"][0]["results"]

    assert [(r["source"], r["api_key_name"], r["credits"]) for r in results] == [
        ("api", "test key", 40),
        ("playground", None, 40),
    ]
    assert [r["api_key_id"] for r in results][1] is None
    assert [(r["num_model_requests"], r["credits"]) for r in only_playground] == [(1, 40)]


# - Filters and owners ----------------------------------------------------------------------------


def test_filters_narrow_by_model_key_size_and_source(clock, client, owner, api_key_factory):
    laptop, server = api_key_factory(owner, "laptop"), api_key_factory(owner, "server")
    clock.at(T0 + 10)
    made = [
        generate(client, laptop.raw_key, size="1024x1024"),
        generate(client, server.raw_key, size="2048x2048"),
        generate(client, server.raw_key, model="seedream-3-0", size="1024x1024"),
    ]
    small, large, older = (response.json()["credits_charged"] for response in made)
    assert (small, large, older) == (40, 40, 35)
    window = f"start_time={T0}&end_time={T0 + DAY}"

    def credits(query: str) -> int:
        body = get_usage(client, laptop.raw_key, f"{window}&{query}").json()
        return sum(r["credits"] for b in body["data"] for r in b["results"])

    server_id, laptop_id = public_key_id(server.api_key), public_key_id(laptop.api_key)
    assert credits("") == small + large + older
    assert credits(f"api_key_ids={server_id}") == large + older
    assert credits(f"api_key_ids[]={server_id}&api_key_ids[]={laptop_id}") == 115
    assert credits("models=seedream-3-0") == older
    assert credits("models[]=seedream-4-0&sizes[]=2048x2048") == large
    assert credits("sizes=1024x1024") == small + older
    assert credits("sources=playground") == 0
    assert credits("models=no-such-model") == 0


def test_a_keys_usage_id_is_public_and_stays_the_same_when_the_key_is_rotated(
    clock, client, owner, api_key_factory
):
    issued = api_key_factory(owner, "rotating")
    clock.at(T0 + 10)
    generate(client, issued.raw_key)
    window = {"start_time": T0, "end_time": T0 + DAY, "group_by": "api_key_id"}
    before = get_usage(client, issued.raw_key, window).json()["data"][0]["results"][0]

    rotated = keys.rotate_key(issued.api_key)
    after = get_usage(client, rotated.raw_key, window).json()["data"][0]["results"][0]

    assert before["api_key_id"] == after["api_key_id"]
    assert before["api_key_id"].startswith("key_")
    # Neither lookup id (half of a key) is in it, nor is it the row's number.
    for lookup_id in (issued.api_key.lookup_id, rotated.api_key.lookup_id):
        assert lookup_id[:8] not in before["api_key_id"]
    assert before["api_key_id"] != f"key_{issued.api_key.pk}"


def test_an_outsider_sees_only_its_own_account_even_naming_the_owners_key(
    clock, client, owner, owner_key, outsider, api_key_factory
):
    theirs = api_key_factory(outsider, "theirs")
    owners_key = owner.api_keys.get()
    clock.at(T0 + 10)
    generate(client, owner_key, n=3)
    generate(client, theirs.raw_key)
    window = f"start_time={T0}&end_time={T0 + DAY}&group_by=api_key_id"

    seen = get_usage(client, theirs.raw_key, window).json()["data"][0]["results"]
    naming = get_usage(
        client, theirs.raw_key, f"{window}&api_key_ids={public_key_id(owners_key)}"
    ).json()["data"][0]["results"]

    assert [(r["api_key_name"], r["credits"]) for r in seen] == [("theirs", 40)]
    assert naming == []


# - Bad input: a 400 naming the parameter, nothing charged ----------------------------------------

START = f"start_time={T0}"
BAD = [
    ("", "start_time", "missing_required_parameter"),
    ("start_time=", "start_time", "invalid_value"),
    ("start_time=yesterday", "start_time", "invalid_value"),
    ("start_time=-5", "start_time", "invalid_value"),
    ("start_time=1.5", "start_time", "invalid_value"),
    ("start_time=253402300800", "start_time", "invalid_value"),
    (f"{START}&start_time={T0}", "start_time", "invalid_value"),
    ("start_time=17%0010", "start_time", "invalid_value"),
    (f"{START}&end_time={T0}", "end_time", "invalid_value"),
    (f"{START}&end_time={T0 - 1}", "end_time", "invalid_value"),
    (f"{START}&end_time=soon", "end_time", "invalid_value"),
    (f"{START}&bucket_width=1w", "bucket_width", "invalid_value"),
    (f"{START}&bucket_width=", "bucket_width", "invalid_value"),
    (f"{START}&group_by=project_id", "group_by", "invalid_value"),
    (f"{START}&group_by[]=model&group_by[]=user_id", "group_by", "invalid_value"),
    (f"{START}&group_by=model,size", "group_by", "invalid_value"),
    (f"{START}&group_by=" + "&group_by=model" * 16, "group_by", "invalid_value"),
    (f"{START}&limit=0", "limit", "invalid_value"),
    (f"{START}&limit=32", "limit", "invalid_value"),
    (f"{START}&bucket_width=1h&limit=169", "limit", "invalid_value"),
    (f"{START}&limit=ten", "limit", "invalid_value"),
    (f"{START}&limit=%D9%A3", "limit", "invalid_value"),  # an Arabic-Indic digit
    (f"{START}&page=nonsense!", "page", "invalid_value"),
    (f"{START}&page=bm9uc2Vuc2U", "page", "invalid_value"),  # base64 of "nonsense"
    (f"{START}&page=%00", "page", "invalid_value"),
    (f"{START}&models=seedream%004-0", "models", "invalid_value"),
    (f"{START}&models=", "models", "invalid_value"),
    (f"{START}&models=" + "x" * 65, "models", "invalid_value"),
    (f"{START}&" + "&".join(f"models[]=m{i}" for i in range(101)), "models", "invalid_value"),
    (f"{START}&sizes=a%20b", "sizes", "invalid_value"),
    (f"{START}&api_key_ids[]=key_%00", "api_key_ids", "invalid_value"),
    (f"{START}&sources=image.generation", "sources", "invalid_value"),
]


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize(("query", "param", "code"), BAD)
def test_bad_input_is_a_400_naming_the_parameter(client, owner_key, query, param, code):
    response = get_usage(client, owner_key, query)

    assert response.status_code == 400, response.content
    assert response.json()["error"] == {
        "message": response.json()["error"]["message"],
        "type": "invalid_request_error",
        "code": code,
        "param": param,
    }
    assert response.json()["error"]["message"]


def _cursor_for(client, key: str, **params: Any) -> str:
    body = get_usage(client, key, {"start_time": T0, "end_time": T0 + 60 * DAY, **params}).json()
    return body["next_page"]


@pytest.mark.usefixtures("untouched")
def test_a_cursor_from_another_query_is_refused(client, owner_key):
    daily = _cursor_for(client, owner_key)
    hourly = _cursor_for(client, owner_key, bucket_width="1h")

    for query in [
        {"start_time": T0, "bucket_width": "1h", "page": daily},
        {"start_time": T0 + 1, "page": daily},
        {"start_time": T0, "page": hourly},
        {"start_time": T0, "end_time": T0 + DAY, "page": daily},  # past this window's end
    ]:
        response = get_usage(client, owner_key, query)
        assert response.status_code == 400, query
        assert response.json()["error"]["param"] == "page"


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize(("method", "status"), [("post", 405), ("put", 405), ("delete", 405)])
def test_other_methods_are_refused(client, owner_key, method, status):
    response = getattr(client, method)(
        f"{URL}?start_time={T0}", headers={"Authorization": f"Bearer {owner_key}"}
    )
    assert response.status_code == status
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.usefixtures("untouched")
def test_without_a_key_it_is_a_401(client):
    response = client.get(f"{URL}?start_time={T0}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_a_moment_on_an_edge_falls_in_the_bucket_that_starts_there(client, history):
    """The same on PostgreSQL and SQLite: the last microsecond of a minute, hour or day is in
    it, its first is in the next."""
    _, owner_keys = history

    def requests(width: str, start: int, end: int) -> dict[int, int]:
        most = usage_query.BUCKET_LIMITS[width][1]
        params = {"start_time": start, "end_time": end, "bucket_width": width, "limit": most}
        return {
            b["start_time"]: sum(r["num_model_requests"] for r in b["results"])
            for b in all_buckets(client, owner_keys[0].raw_key, params)
            if b["results"]
        }

    assert requests("1m", T0 - 60, T0 + 2 * MINUTE) == {T0 - 60: 1, T0: 2, T0 + 60: 1}
    assert requests("1h", T0 - HOUR, T0 + 3 * HOUR) == {
        T0 - HOUR: 1,
        T0: 4,
        T0 + HOUR: 1,
        T0 + 2 * HOUR: 1,
    }
    assert requests("1d", T0 - DAY, T0 + 3 * DAY) == {
        T0 - DAY: 1,
        T0: 7,
        T0 + DAY: 2,
        T0 + 2 * DAY: 1,
    }


def test_the_docs_example_is_an_answer_of_this_api(clock, client, owner, owner_key):
    from tests.dashboard.test_docs_page import docs, example

    shown = example(docs(client), "usage-example")
    clock.at(T0 + 10)
    generate(client, owner_key)
    answer = get_usage(
        client,
        owner_key,
        {"start_time": T0, "end_time": T0 + 30 * DAY, "group_by": ["model", "api_key_id"]},
    ).json()

    assert set(shown) == set(answer)
    assert set(shown["data"][0]) == set(answer["data"][0])
    assert set(shown["data"][0]["results"][0]) == set(answer["data"][0]["results"][0])
    # Its next_page is the cursor of its own query (start 1730419200, by the day): a real one.
    start = shown["data"][0]["start_time"]
    page = get_usage(
        client,
        owner_key,
        {"start_time": start, "end_time": start + 30 * DAY, "page": shown["next_page"]},
    ).json()
    assert page["data"][0]["start_time"] == start + 7 * DAY
