"""Keyset pages, newest first, for any table with ``created_at`` and an integer id.

Paged by the last row's time and id, not by offset: the hundredth page of 100,000 rows costs
what the first does, and there is no COUNT(*) over the whole history. The query must be ordered
``("-created_at", "-id")`` and served by an index that starts with the owner and those columns.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db.models import Model, Q, QuerySet

Row = TypeVar("Row", bound=Model)

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


@dataclass(frozen=True)
class Page(Generic[Row]):
    rows: list[Row]
    next_cursor: str | None


def cursor_of(row: Any) -> str:
    # Whole microseconds since the epoch: exact, and nothing that needs escaping in a URL.
    micros = (row.created_at - _EPOCH) // datetime.timedelta(microseconds=1)
    return f"{micros}_{row.pk}"


def page_after(rows: QuerySet[Row], cursor: str | None, size: int) -> Page[Row]:
    """Up to ``size`` rows older than ``cursor`` ("<epoch µs>_<id>"), and the next cursor.
    A mangled cursor starts from the newest."""
    if cursor:
        micros, _, ident = cursor.partition("_")
        try:
            when = _EPOCH + datetime.timedelta(microseconds=int(micros))
            pk = int(ident)
        except (ValueError, OverflowError):
            pass
        else:
            rows = rows.filter(Q(created_at__lt=when) | Q(created_at=when, pk__lt=pk))
    found = list(rows[: size + 1])
    if len(found) <= size:
        return Page(found, None)
    return Page(found[:size], cursor_of(found[size - 1]))
