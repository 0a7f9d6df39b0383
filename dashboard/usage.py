"""The customer's usage: every API and playground request, filtered, paged and exported.

Paged by keyset (the last row's time and id), not by offset: the hundredth page of 100,000 rows
costs what the first does, and there is no COUNT(*) over the whole history.
"""

from __future__ import annotations

import csv
import datetime
from collections.abc import Iterator

from django import forms
from django.db.models import F, QuerySet

from accounts.models import User
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

    def __init__(self, user: User, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        keys = ApiKey.objects.filter(user=user).order_by("name").values_list("pk", "name")
        self.fields["key"].choices = [("", "All keys"), *keys]  # type: ignore[attr-defined]
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


def filtered(user: User, form: UsageFilterForm) -> QuerySet[Generation]:
    """The user's generations that match the valid filters (an invalid filter is ignored)."""
    rows = Generation.objects.filter(user=user)
    data = form.cleaned_data if form.is_valid() else {}
    if data.get("key"):
        rows = rows.filter(api_key_id=data["key"])
    for name in ("model", "status", "source"):
        if data.get(name):
            rows = rows.filter(**{name: data[name]})
    if data.get("since"):
        rows = rows.filter(created_at__gte=_midnight(data["since"]))
    if data.get("until"):
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
