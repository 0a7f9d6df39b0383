"""GET /v1/usage/images from the official `openai` SDK against our real server: its generic
``client.get`` with the query as ``options={"params": ...}``, lists sent as it sends them."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from billing.models import LedgerEntry, LedgerKind
from generation import usage

pytestmark = [pytest.mark.integration, pytest.mark.smoke]


@pytest.fixture
def sent() -> list[httpx.Request]:
    """The requests the SDK clients send, as they leave them."""
    return []


@pytest.fixture
def customer(live_api, default_prices, user_factory, api_key_factory, sent):
    """A customer with two keys, and an SDK client for each."""
    user = user_factory(credits=1000)
    keys = [api_key_factory(user, name) for name in ("laptop", "server")]
    clients = [
        OpenAI(
            base_url=f"{live_api}/v1",
            api_key=k.raw_key,
            max_retries=0,
            http_client=httpx.Client(event_hooks={"request": [sent.append]}),
        )
        for k in keys
    ]
    return user, keys, clients


def usage_page(client: OpenAI, **params: Any) -> Any:
    return client.get("/usage/images", cast_to=object, options={"params": params})


def test_the_sdk_reads_its_usage_grouped_by_a_list_and_pages_through_it(customer, sent):
    user, keys, (laptop, server) = customer
    start = int(time.time()) // 3600 * 3600 - 3 * 3600
    laptop.images.generate(model="seedream-4-0", prompt="a fox", size="1024x1024", n=2)
    server.images.generate(model="seedream-3-0", prompt="a heron", size="1024x1024")

    query = {
        "start_time": start,
        # Explicit: the hour may turn while the test runs, and what is made now is inside.
        "end_time": start + 5 * 3600,
        "bucket_width": "1h",
        "limit": 2,
        "group_by": ["model", "api_key_id"],
    }

    pages = [usage_page(laptop, **query)]
    while pages[-1]["has_more"]:
        pages.append(usage_page(laptop, **query, page=pages[-1]["next_page"]))

    assert [(p["object"], len(p["data"]), p["has_more"]) for p in pages] == [
        ("page", 2, True),
        ("page", 2, True),
        ("page", 1, False),
    ]
    assert pages[-1]["next_page"] is None
    # The SDK sends a list in brackets, one value each.
    assert sent[-1].url.params.get_list("group_by[]") == ["model", "api_key_id"]
    buckets = [bucket for page in pages for bucket in page["data"]]
    assert [b["start_time"] for b in buckets] == [start + hour * 3600 for hour in range(5)]
    assert buckets[0]["results"] == buckets[1]["results"] == []
    results = [r for b in buckets for r in b["results"]]
    key_ids = [usage.key_id(k.api_key.pk, k.api_key.created_at) for k in keys]
    assert [
        (r["object"], r["model"], r["api_key_id"], r["images"], r["num_model_requests"])
        for r in results
    ] == [
        ("organization.usage.images.result", "seedream-3-0", key_ids[1], 1, 1),
        ("organization.usage.images.result", "seedream-4-0", key_ids[0], 2, 1),
    ]
    charged = LedgerEntry.objects.filter(
        account__owner__personal_owner=user, kind=LedgerKind.CHARGE
    )
    assert sum(r["credits"] for r in results) == -sum(e.amount_credits for e in charged) == 115


def test_the_sdk_gets_a_bad_query_as_a_400_naming_the_parameter(customer):
    _, _, (laptop, _) = customer

    with pytest.raises(openai.BadRequestError) as refused:
        usage_page(laptop, start_time=1_700_000_000, group_by=["model", "project_id"])

    assert refused.value.status_code == 400
    assert refused.value.param == "group_by"
    assert refused.value.code == "invalid_value"
