"""A client that hangs up while its credits are being reserved: the generation still runs,
exactly as for one that hangs up while the upstream works (tests/integration covers that one)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from generation import memory
from generation.models import ConcurrencySlot, Generation
from generation.services import pipeline
from tests.support.asgi import serve
from tests.support.money import assert_ledger_balanced, ledger_kinds

pytestmark = pytest.mark.postgres


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("hot_sql_on_loop", [True, False], ids=["event loop", "thread"])
def test_a_client_that_hangs_up_during_the_reservation_still_gets_its_generation(
    monkeypatch, owner, owner_key, default_prices, hot_sql_on_loop
):
    reserve = pipeline.reserve_generation

    async def slow_reservation(*args: Any, **kwargs: Any) -> Generation:
        generation = await reserve(*args, **kwargs)
        await asyncio.sleep(1.5)  # committed; the client hangs up before the view hears of it
        return generation

    monkeypatch.setattr(pipeline, "reserve_generation", slow_reservation)
    body = {"model": "seedream-4-0", "prompt": "a heron", "size": "1024x1024"}

    status, _ = serve(
        "POST",
        "/v1/images/generations",
        {"Authorization": f"Bearer {owner_key}", "Content-Type": "application/json"},
        body=json.dumps(body).encode(),
        hot_sql_on_loop=hot_sql_on_loop,
        # After the key's check (a hang-up before it leaves nothing to do), during the hold.
        hang_up_after=0.75,
    )

    assert status is None  # no answer: the client had gone
    generation = Generation.objects.get(user=owner)
    assert generation.status == Generation.Status.SUCCEEDED
    assert generation.images.count() == 1
    assert ledger_kinds(owner)[-1] == ("charge", -40)
    assert assert_ledger_balanced(owner) == 960
    assert not ConcurrencySlot.objects.exists()
    assert memory.budget().in_use == 0  # its images' memory went back once they were stored
