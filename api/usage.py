"""``GET /v1/usage/images``: the key's account's usage in time buckets, in the shape of OpenAI's
usage API for images (``GET /v1/organization/usage/images``), with credits.

The query is generation/usage.py's (the dashboard draws its chart from the same one); this
module reads the query string into it and writes the page. Arrays come as OpenAI's SDKs send
them (``group_by[]=model&group_by[]=size``) or repeated (``group_by=model&group_by=size``).
Every bad parameter is a 400 naming it; nothing here is charged.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import asdict
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from generation import usage

from .auth import ApiRequest, api_endpoint
from .errors import ApiError, invalid

BUCKET_OBJECT = "bucket"
RESULT_OBJECT = "organization.usage.images.result"
# How many values one array parameter (its plain and [] forms together) may have.
MAX_VALUES = 100
GROUP_BY_MAX_VALUES = 16
# A filter's value: printable ASCII, no spaces (models, sizes and key ids are all of it).
VALUE_RE = re.compile(r"^[\x21-\x7e]{1,64}$")
TIME_RE = re.compile(r"^[0-9]{1,12}$")
PAGE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SCALARS = ("start_time", "end_time", "bucket_width", "limit", "page")
_FILTERS = {"models": "model", "api_key_ids": "API key id", "sizes": "size", "sources": "source"}


@api_endpoint("GET")
async def images_usage(request: ApiRequest) -> HttpResponse:
    query, first, limit = _read(request)
    page = await request.steps.run(
        usage.images_usage, request.api_key.account, query, first=first, limit=limit
    )
    next_page = _cursor(query, page.next_start) if page.next_start is not None else None
    return JsonResponse(
        {
            "object": "page",
            "data": [_bucket(bucket) for bucket in page.buckets],
            "has_more": next_page is not None,
            "next_page": next_page,
        }
    )


def _bucket(bucket: usage.Bucket) -> dict[str, Any]:
    return {
        "object": BUCKET_OBJECT,
        "start_time": bucket.start_time,
        "end_time": bucket.end_time,
        "results": [{"object": RESULT_OBJECT, **asdict(result)} for result in bucket.results],
    }


# - Reading the query string ---------------------------------------------------------------------


def _read(request: HttpRequest) -> tuple[usage.UsageQuery, int | None, int]:
    """The query, the page's first bucket (None: the window's start) and its bucket count."""
    for name in _SCALARS:
        if len(request.GET.getlist(name)) > 1:
            raise invalid(f"'{name}' was given more than once; give it once.", param=name)
    width = request.GET.get("bucket_width", "1d")
    if width not in usage.BUCKET_WIDTHS:
        raise invalid(
            f"Invalid value for 'bucket_width': expected one of {', '.join(usage.BUCKET_WIDTHS)}.",
            param="bucket_width",
        )
    start = _time(request, "start_time")
    if start is None:
        raise ApiError(
            400,
            "Missing required parameter: 'start_time' (Unix seconds, inclusive).",
            code="missing_required_parameter",
            param="start_time",
        )
    end = _time(request, "end_time")
    if end is None:
        end = usage.end_of_current_bucket(width, timezone.now())
        # A window that starts after the current bucket is empty: no buckets, not an error.
        end = max(end, start)
    elif end <= start:
        raise invalid(
            "Invalid value for 'end_time': it must be after 'start_time'.", param="end_time"
        )
    group_by = _array(request, "group_by", GROUP_BY_MAX_VALUES)
    if unknown := [name for name in group_by if name not in usage.GROUP_FIELDS]:
        raise invalid(
            f"Invalid value for 'group_by': {_shown(unknown[0])} is not one of "
            f"{', '.join(usage.GROUP_FIELDS)}.",
            param="group_by",
        )
    filters = {name: _array(request, name, MAX_VALUES) for name in _FILTERS}
    if unknown := [name for name in filters["sources"] if name not in usage.SOURCES]:
        raise invalid(
            f"Invalid value for 'sources': {_shown(unknown[0])} is not one of "
            f"{', '.join(usage.SOURCES)} (where the request came from).",
            param="sources",
        )
    query = usage.UsageQuery(
        start_time=start,
        end_time=end,
        bucket_width=width,
        group_by=tuple(dict.fromkeys(group_by)),
        **{name: tuple(dict.fromkeys(values)) for name, values in filters.items()},
    )
    return query, _first(request, query), _limit(request, width)


def _time(request: HttpRequest, name: str) -> int | None:
    value = request.GET.get(name)
    if value is None:
        return None
    if not TIME_RE.match(value) or int(value) > usage.MAX_TIME:
        raise invalid(
            f"Invalid value for '{name}': expected Unix seconds, an integer from 0 to "
            f"{usage.MAX_TIME}.",
            param=name,
        )
    return int(value)


def _array(request: HttpRequest, name: str, most: int) -> list[str]:
    """An array parameter's values, from ``name`` and ``name[]`` alike."""
    values = request.GET.getlist(name) + request.GET.getlist(f"{name}[]")
    if len(values) > most:
        raise invalid(f"Too many values for '{name}': at most {most}.", param=name)
    for value in values:
        if not VALUE_RE.match(value):
            raise invalid(
                f"Invalid value for '{name}': each value is 1 to 64 printable characters, "
                "without spaces.",
                param=name,
            )
    return values


def _shown(value: str) -> str:
    return f"'{value[:64]}'"


def _limit(request: HttpRequest, width: str) -> int:
    default, most = usage.BUCKET_LIMITS[width]
    value = request.GET.get("limit")
    if value is None:
        return default
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= most:
        raise invalid(
            f"Invalid value for 'limit': expected an integer from 1 to {most} buckets with "
            f"bucket_width={width}.",
            param="limit",
        )
    return int(value)


# - Pages ----------------------------------------------------------------------------------------

# A page is where its first bucket starts, for one bucket width and window start: a cursor from
# another query is refused rather than read as a place in this one.
_CURSOR_RE = re.compile(r"^(1m|1h|1d):([0-9]{1,12}):([0-9]{1,12})$")


def _cursor(query: usage.UsageQuery, next_start: int) -> str:
    text = f"{query.bucket_width}:{query.start_time}:{next_start}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _first(request: HttpRequest, query: usage.UsageQuery) -> int | None:
    page = request.GET.get("page")
    if page is None:
        return None
    refused = invalid(
        "Invalid value for 'page': pass the 'next_page' of the previous page, with the same "
        "start_time and bucket_width.",
        param="page",
    )
    if not PAGE_RE.match(page):
        raise refused
    try:
        text = base64.urlsafe_b64decode(page + "=" * (-len(page) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise refused from None
    match = _CURSOR_RE.match(text)
    if match is None:
        raise refused
    width, start, first = match[1], int(match[2]), int(match[3])
    if (width, start) != (query.bucket_width, query.start_time):
        raise refused
    if first == query.start_time or not usage.is_bucket_start(query, first):
        raise refused
    return first
