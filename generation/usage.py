"""Usage in time buckets: how many requests, images and credits, per minute, hour or day (UTC),
grouped and filtered. The one query behind ``GET /v1/usage/images`` (api/usage.py) and the
dashboard's usage chart and summary CSV (dashboard/usage.py).

What is counted, and when:

- A request is counted in the bucket of the moment it was settled (``Generation.finished_at``),
  which is the moment its ledger lines (the hold's release and the charge, ``gen:<id>``) are
  written: settle.py, hotpath.py and the reconciler give both the same ``now``. So the credits
  of a window are exactly the ledger's charge lines of that window. A request still running is
  counted once it settles.
- ``num_model_requests``: every request that was accepted (its credits held), whatever became
  of it: one that failed, was blocked or cancelled counts, charged 0. A request refused before
  that (invalid, over a limit, a balance too low) reached no model and is not counted; the one
  of those that leaves a row (a refusal for credits, kept for the usage log) is left out here
  as generation/services/jobs.py leaves it out of the jobs.
- ``images``: the images delivered; ``credits``: what was charged (``charged_credits``).

Aggregated in the database: one GROUP BY over the window, on the settle time truncated to the
bucket (Django's Trunc, in UTC: PostgreSQL's date_trunc, SQLite's own function), never a loop
over rows.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, DateTimeField, Q, QuerySet, Sum
from django.db.models.functions import Trunc

from accounts.models import Account
from keys.models import ApiKey

from .models import Generation

# OpenAI's bucket widths, in seconds, and the database's truncation for each.
BUCKET_WIDTHS = {"1m": 60, "1h": 3600, "1d": 86400}
_TRUNCATED_TO = {"1m": "minute", "1h": "hour", "1d": "day"}
# Buckets per page, by width: (default, most), as OpenAI's usage API has them.
BUCKET_LIMITS = {"1d": (7, 31), "1h": (24, 168), "1m": (60, 1440)}
GROUP_FIELDS = ("model", "api_key_id", "size", "source")
# Where a request came from (not OpenAI's image.generation / image.edit: ours are api and
# playground, Generation.Source).
SOURCES: tuple[str, ...] = tuple(Generation.Source.values)
# The last second a time can name (9999-12-31T23:59:59Z): Python's datetimes end there.
MAX_TIME = 253_402_300_799

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
# A refusal for credits leaves a row (for the usage log) but held nothing and reached no
# model: generation/services/jobs.py leaves the same rows out of the jobs.
_REFUSED_FOR_CREDITS = Q(status=Generation.Status.FAILED, http_status=402, reserved_credits=0)


# - Whose usage ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """The rows one caller's usage is made of: its generations and the keys they name."""

    generations: QuerySet[Generation]
    keys: QuerySet[ApiKey]


def scope_of(owner: Account) -> Scope:
    """Whose usage a caller sees: the one place that says it. A key, or a member on the usage
    page, sees its account's generations (every key's, and every member's playground runs)."""
    return Scope(
        generations=Generation.objects.filter(account=owner),
        keys=ApiKey.objects.filter(account=owner),
    )


def key_id(pk: int, created_at: datetime.datetime) -> str:
    """A key's public id in usage (``api_key_id``): ``key_`` and 24 hex characters.

    Keys have no public id of their own: the lookup id in the secret changes when the key is
    rotated (so a rotated key's history would change its id) and the row's number says how many
    keys there are. This is a digest of what never changes about the key, its row and the
    microsecond it was made: stable for the key's whole life, rotations included, and not
    guessable from outside. It reveals nothing of the secret. (Made from stored columns, it
    can become a stored ``ApiKey.public_id`` later with the same values.)"""
    micros = (created_at - _EPOCH) // datetime.timedelta(microseconds=1)
    digest = hashlib.sha256(f"seedream api key:{pk}:{micros}".encode()).hexdigest()
    return f"key_{digest[:24]}"


@dataclass(frozen=True)
class KeyLabel:
    id: str
    name: str


def key_labels(scope: Scope) -> dict[int, KeyLabel]:
    """Every key of the scope by its row id: its public id and its name."""
    return {
        pk: KeyLabel(key_id(pk, created_at), name)
        for pk, created_at, name in scope.keys.values_list("pk", "created_at", "name")
    }


# - The query ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageQuery:
    """A window ``[start_time, end_time)`` in Unix seconds, cut into UTC buckets of
    ``bucket_width``, grouped by ``group_by`` (a subset of GROUP_FIELDS) and filtered: an
    empty filter is no filter. ``statuses`` is the dashboard's (Generation.Status values)."""

    start_time: int
    end_time: int
    bucket_width: str = "1d"
    group_by: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    api_key_ids: tuple[str, ...] = ()
    sizes: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.bucket_width not in BUCKET_WIDTHS:
            raise ValueError(f"unknown bucket width {self.bucket_width!r}")
        if unknown := set(self.group_by) - set(GROUP_FIELDS):
            raise ValueError(f"unknown group_by {sorted(unknown)}")
        if not 0 <= self.start_time <= MAX_TIME or not 0 <= self.end_time <= MAX_TIME:
            raise ValueError("times must be within 0 and MAX_TIME")

    @property
    def width_seconds(self) -> int:
        return BUCKET_WIDTHS[self.bucket_width]


@dataclass(frozen=True)
class Result:
    """One group's figures in one bucket. A field not grouped by is None; so is the key of a
    playground request (no key) and the size or source when they are not grouped."""

    images: int
    num_model_requests: int
    credits: int
    model: str | None = None
    api_key_id: str | None = None
    api_key_name: str | None = None
    size: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class Bucket:
    """``[start_time, end_time)`` in Unix seconds: a whole minute, hour or day in UTC, except
    where the window cuts it (the first starts at the window's start, the last ends at its end).
    ``results`` is empty when nothing was settled in it."""

    start_time: int
    end_time: int
    results: list[Result] = field(default_factory=list)

    @property
    def start(self) -> datetime.datetime:
        return moment(self.start_time)

    @property
    def end(self) -> datetime.datetime:
        return moment(self.end_time)

    def total(self, name: str) -> int:
        return sum(getattr(result, name) for result in self.results)

    @property
    def images(self) -> int:
        return self.total("images")

    @property
    def num_model_requests(self) -> int:
        return self.total("num_model_requests")

    @property
    def credits(self) -> int:
        return self.total("credits")


@dataclass(frozen=True)
class Page:
    buckets: list[Bucket]
    # Where the next page starts (a bucket's start), or None: this page reaches end_time.
    next_start: int | None


def moment(unix_seconds: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(unix_seconds, datetime.UTC)


def unix_seconds(when: datetime.datetime) -> int:
    return (when - _EPOCH) // datetime.timedelta(seconds=1)


def end_of_current_bucket(bucket_width: str, now: datetime.datetime) -> int:
    """The end of the bucket ``now`` is in: a window without an end runs to there."""
    width = BUCKET_WIDTHS[bucket_width]
    return min((unix_seconds(now) // width + 1) * width, MAX_TIME)


def is_bucket_start(query: UsageQuery, when: int) -> bool:
    """Whether a page may start at ``when``: the window's start, or a bucket edge inside it."""
    inside = query.start_time <= when < query.end_time
    return inside and (when == query.start_time or when % query.width_seconds == 0)


def bucket_edges(query: UsageQuery, first: int, limit: int) -> tuple[list[tuple[int, int]], bool]:
    """Up to ``limit`` buckets from ``first`` (a bucket start), and whether more follow."""
    width = query.width_seconds
    edges: list[tuple[int, int]] = []
    start = first
    while start < query.end_time and len(edges) < limit:
        end = min((start // width + 1) * width, query.end_time)
        edges.append((start, end))
        start = end
    return edges, start < query.end_time


def images_usage(
    owner: Account, query: UsageQuery, *, first: int | None = None, limit: int
) -> Page:
    """``limit`` buckets of ``owner``'s usage from ``first`` (None: the window's start), each
    with its results: one per group with anything settled in it, ordered by the groups'
    values. One aggregate query for the page."""
    scope = scope_of(owner)
    edges, more = bucket_edges(query, query.start_time if first is None else first, limit)
    if not edges:
        return Page([], None)
    labels = key_labels(scope) if "api_key_id" in query.group_by or query.api_key_ids else {}
    found = _aggregate(scope, query, edges[0][0], edges[-1][1], labels)
    width = query.width_seconds
    buckets = [
        Bucket(start, end, sorted(found.get(start // width * width, []), key=_order))
        for start, end in edges
    ]
    return Page(buckets, edges[-1][1] if more else None)


def whole_window(owner: Account, query: UsageQuery) -> list[Bucket]:
    """Every bucket of the window at once (the dashboard's chart and summary: its window is
    bounded by the page, dashboard/usage.py)."""
    count = -(-(query.end_time - query.start_time) // query.width_seconds) + 1
    return images_usage(owner, query, limit=count).buckets


def _aggregate(
    scope: Scope, query: UsageQuery, start: int, end: int, labels: dict[int, KeyLabel]
) -> dict[int, list[Result]]:
    """The results of ``[start, end)`` by the aligned start of their bucket."""
    rows = _counted(scope, query, start, end, labels)
    # Django's column for the key is api_key_id; the other groups are columns of their name.
    columns = list(query.group_by)
    truncated = Trunc(
        "finished_at",
        _TRUNCATED_TO[query.bucket_width],
        output_field=DateTimeField(),
        tzinfo=datetime.UTC,
    )
    grouped = (
        rows.annotate(bucket=truncated)
        .values("bucket", *columns)
        # Not "images": that name is the Generation -> Image relation.
        .annotate(
            in_images=Sum("images_delivered"),
            in_requests=Count("id"),
            in_credits=Sum("charged_credits"),
        )
        .order_by()
    )
    found: dict[int, list[Result]] = {}
    for row in grouped:
        found.setdefault(unix_seconds(row["bucket"]), []).append(_result(row, labels))
    return found


def _counted(
    scope: Scope, query: UsageQuery, start: int, end: int, labels: dict[int, KeyLabel]
) -> QuerySet[Generation]:
    rows = scope.generations.filter(
        finished_at__gte=moment(start), finished_at__lt=moment(end)
    ).exclude(_REFUSED_FOR_CREDITS)
    if query.models:
        rows = rows.filter(model__in=query.models)
    if query.sizes:
        rows = rows.filter(size__in=query.sizes)
    if query.sources:
        rows = rows.filter(source__in=query.sources)
    if query.statuses:
        rows = rows.filter(status__in=query.statuses)
    if query.api_key_ids:
        # Another account's key id (or an unknown one) names none of these keys: no rows.
        wanted = set(query.api_key_ids)
        rows = rows.filter(api_key_id__in=[pk for pk, k in labels.items() if k.id in wanted])
    return rows


def _result(row: dict[str, Any], labels: dict[int, KeyLabel]) -> Result:
    key = labels.get(row["api_key_id"]) if row.get("api_key_id") is not None else None
    return Result(
        images=row["in_images"] or 0,
        num_model_requests=row["in_requests"],
        credits=row["in_credits"] or 0,
        model=row.get("model"),
        api_key_id=key.id if key else None,
        api_key_name=key.name if key else None,
        size=row.get("size"),
        source=row.get("source"),
    )


def _order(result: Result) -> tuple[Any, ...]:
    # By each group's value; None (a playground request's key) after the others.
    values: Iterable[str | None] = (
        result.model,
        result.api_key_name,
        result.api_key_id,
        result.size,
        result.source,
    )
    return tuple((value is None, value or "") for value in values)
