"""The customer's usage: every API and playground request, filtered, paged and exported; and,
over the same filters, a chart and a summary CSV in time buckets from the query behind
GET /v1/usage/images (generation/usage.py).

Paged by keyset (the last row's time and id), not by offset: the hundredth page of 100,000 rows
costs what the first does, and there is no COUNT(*) over the whole history.
"""

from __future__ import annotations

import csv
import datetime
from collections.abc import Iterator
from dataclasses import dataclass

from django import forms
from django.db.models import F, QuerySet
from django.utils import timezone

from accounts.models import Account
from generation import usage
from generation.catalog import all_models
from generation.models import Generation
from keys.models import ApiKey

from . import paging

PAGE_SIZE = 50


class UsageFilterForm(forms.Form):
    key = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Key")
    model = forms.ChoiceField(required=False, label="Model")
    status = forms.ChoiceField(required=False, label="Status")
    source = forms.ChoiceField(required=False, label="Source")
    since = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, account: Account, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        keys = (
            ApiKey.objects.filter(account=account)
            .order_by("name")
            .values_list("pk", "name", "created_at")
        )
        self.fields["key"].choices = [  # type: ignore[attr-defined]
            ("", "All keys"),
            *((pk, name) for pk, name, _ in keys),
        ]
        # Each key's id in usage (GET /v1/usage/images's api_key_id), from the same query.
        self.key_ids = {pk: usage.key_id(pk, created_at) for pk, _, created_at in keys}
        self.fields["model"].choices = [("", "All models")] + [  # type: ignore[attr-defined]
            (m.id, m.id) for m in all_models()
        ]
        self.fields["status"].choices = [  # type: ignore[attr-defined]
            ("", "All statuses"),
            *Generation.Status.choices,
        ]
        self.fields["source"].choices = [  # type: ignore[attr-defined]
            ("", "API and playground"),
            *Generation.Source.choices,
        ]


def filtered(account: Account, form: UsageFilterForm) -> QuerySet[Generation]:
    """The account's generations that match the valid filters (an invalid filter is ignored)."""
    rows = Generation.objects.filter(account=account)
    data = form.cleaned_data if form.is_valid() else {}
    if data.get("key"):
        rows = rows.filter(api_key_id=data["key"])
    for name in ("model", "status", "source"):
        if data.get(name):
            rows = rows.filter(**{name: data[name]})
    if data.get("since"):
        rows = rows.filter(created_at__gte=_midnight(data["since"]))
    # The last day a date can name has no next day: everything is before its end.
    if data.get("until") and data["until"] < datetime.date.max:
        rows = rows.filter(created_at__lt=_midnight(data["until"] + datetime.timedelta(days=1)))
    return rows.select_related("api_key").order_by("-created_at", "-id")


def _midnight(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)


def page_after(rows: QuerySet[Generation], cursor: str | None) -> paging.Page[Generation]:
    return paging.page_after(rows, cursor, PAGE_SIZE)


CSV_COLUMNS = [
    "time", "generation", "key", "source", "model", "size", "n", "images_delivered",
    "credits_per_image", "credits_reserved", "credits_charged", "credits_not_charged",
    "status", "latency_ms", "error_code", "error", "reference_images",
]  # fmt: skip


class _Echo:
    def write(self, value: str) -> str:
        return value


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): a key
# named "=HYPERLINK(...)" must arrive as the text it is.
_FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str | None) -> str:
    text = value or ""
    return f"'{text}" if text.startswith(_FORMULA_LEADS) else text


def csv_lines(rows: QuerySet[Generation]) -> Iterator[str]:
    """The rows as CSV, streamed: memory stays flat however long the history."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    values = rows.annotate(key_name=F("api_key__name")).values_list(
        "created_at", "public_id", "key_name", "source", "model", "size", "n",
        "images_delivered", "price_per_image_credits", "reserved_credits", "charged_credits",
        "status", "latency_ms", "error_code", "error_message", "params__references",
    )  # fmt: skip
    for row in values.iterator(chunk_size=2000):
        (created, public_id, key_name, source, model, size, n, delivered, price, reserved,
         charged, status, latency, code, message, references) = row  # fmt: skip
        yield writer.writerow(
            [
                created.isoformat(),
                _text(public_id),
                _text(key_name),
                _text(source),
                _text(model),
                _text(size),
                n,
                delivered,
                price,
                reserved,
                charged,
                reserved - charged,
                _text(status),
                "" if latency is None else latency,
                _text(code),
                _text(message),
                references or 0,
            ]
        )


# - The summary: the same query as GET /v1/usage/images (generation/usage.py) ---------------------

# The longest window the chart and the summary CSV cover: a year of days (a longer range shows
# its last year, and says so).
SUMMARY_MAX_DAYS = 366
SUMMARY_DEFAULT_DAYS = 30
# Up to this many days, the chart is by the hour.
HOURLY_UP_TO_DAYS = 2
# Drawing units of one bucket's slot in the chart's SVG viewBox (the CSS scales the picture to
# the card's width): an 8-unit bar and a 2-unit gap.
SLOT_UNITS = 10
BAR_UNITS = 8
CHART_HEIGHT = 120
_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Summary:
    """The window the filters give, its buckets and totals."""

    query: usage.UsageQuery | None  # None: the range is empty (From after To)
    buckets: list[usage.Bucket]
    first_day: datetime.date
    last_day: datetime.date
    cut: bool  # the range was longer than SUMMARY_MAX_DAYS: its last days are shown

    @property
    def hourly(self) -> bool:
        return self.query is not None and self.query.bucket_width == "1h"

    def total(self, name: str) -> int:
        return sum(bucket.total(name) for bucket in self.buckets)

    @property
    def totals(self) -> dict[str, int]:
        return {name: self.total(name) for name in ("num_model_requests", "images", "credits")}

    @property
    def first_label(self) -> str:
        return bucket_label(self.buckets[0], self.hourly) if self.buckets else ""

    @property
    def last_label(self) -> str:
        return bucket_label(self.buckets[-1], self.hourly) if self.buckets else ""


def summary_query(
    form: UsageFilterForm, *, group: bool = False
) -> tuple[usage.UsageQuery | None, datetime.date, datetime.date, bool]:
    """The usage query the page's filters ask for (an invalid filter is ignored, as the list
    ignores it): days From to To, in UTC, by the hour for a short range; ``group``: by every
    field, for the summary CSV."""
    data = form.cleaned_data if form.is_valid() else {}
    last = data.get("until") or timezone.now().date()
    first = data.get("since") or _days_after(last, 1 - SUMMARY_DEFAULT_DAYS)
    cut = (last - first).days + 1 > SUMMARY_MAX_DAYS
    if cut:
        first = _days_after(last, 1 - SUMMARY_MAX_DAYS)
    # Times are Unix seconds: a range before 1970 (or after 9999) has nothing to count.
    start = max(_unix_midnight(first), 0)
    end = min(_unix_midnight(last) + 86_400, usage.MAX_TIME)
    if first > last or end <= start:
        return None, first, last, False
    filters: dict[str, tuple[str, ...]] = {}
    if data.get("key"):
        # A valid choice is one of the account's keys (the form offers no other).
        filters["api_key_ids"] = (form.key_ids[data["key"]],)
    for name, field in (("models", "model"), ("sources", "source"), ("statuses", "status")):
        if data.get(field):
            filters[name] = (data[field],)
    query = usage.UsageQuery(
        start_time=start,
        end_time=end,
        bucket_width="1h" if (last - first).days + 1 <= HOURLY_UP_TO_DAYS else "1d",
        group_by=usage.GROUP_FIELDS if group else (),
        **filters,
    )
    return query, first, last, cut


def _days_after(day: datetime.date, days: int) -> datetime.date:
    """``day`` moved by ``days``, stopping at the first day a date can name."""
    return datetime.date.fromordinal(max(day.toordinal() + days, 1))


def _unix_midnight(day: datetime.date) -> int:
    """The Unix time of ``day``'s start (UTC), for any date (negative before 1970)."""
    return (day.toordinal() - datetime.date(1970, 1, 1).toordinal()) * 86_400


def summary(account: Account, form: UsageFilterForm, *, group: bool = False) -> Summary:
    query, first, last, cut = summary_query(form, group=group)
    buckets = usage.whole_window(account, query) if query is not None else []
    return Summary(query, buckets, first, last, cut)


@dataclass(frozen=True)
class Bar:
    x: int
    y: int
    width: int
    height: int
    title: str


@dataclass(frozen=True)
class Chart:
    """One figure of each bucket as SVG bars, the largest full height; an empty bucket draws
    no bar."""

    bars: list[Bar]
    peak: int
    width: int
    height: int = CHART_HEIGHT


def bucket_label(bucket: usage.Bucket, hourly: bool) -> str:
    return bucket.start.strftime("%b %-d %H:%M" if hourly else "%b %-d")


def chart(summary: Summary, name: str, unit: str) -> Chart:
    values = [bucket.total(name) for bucket in summary.buckets]
    peak = max(values, default=0)
    bars = []
    for index, (bucket, value) in enumerate(zip(summary.buckets, values, strict=True)):
        if not value:
            continue
        # Integer drawing units; a bucket with any use gets at least a visible sliver.
        height = max(value * CHART_HEIGHT // peak, 2)
        bars.append(
            Bar(
                x=index * SLOT_UNITS + (SLOT_UNITS - BAR_UNITS) // 2,
                y=CHART_HEIGHT - height,
                width=BAR_UNITS,
                height=height,
                title=f"{bucket_label(bucket, summary.hourly)}: {value:,} {unit}",
            )
        )
    return Chart(bars=bars, peak=peak, width=max(len(values), 1) * SLOT_UNITS)


SUMMARY_CSV_COLUMNS = [
    "bucket_start", "bucket_end", "model", "api_key_id", "key", "size", "source",
    "requests", "images", "credits",
]  # fmt: skip


def summary_csv_lines(summary: Summary) -> Iterator[str]:
    """One line per bucket and group (model, key, size, source), UTC; a bucket with nothing in
    it is one line of zeros, so the lines have no gaps in time."""
    writer = csv.writer(_Echo())
    yield writer.writerow(SUMMARY_CSV_COLUMNS)
    for bucket in summary.buckets:
        edges = [bucket.start.isoformat(), bucket.end.isoformat()]
        if not bucket.results:
            yield writer.writerow([*edges, "", "", "", "", "", 0, 0, 0])
        for result in bucket.results:
            yield writer.writerow(
                [
                    *edges,
                    _text(result.model),
                    _text(result.api_key_id),
                    _text(result.api_key_name),
                    _text(result.size),
                    _text(result.source),
                    result.num_model_requests,
                    result.images,
                    result.credits,
                ]
            )
