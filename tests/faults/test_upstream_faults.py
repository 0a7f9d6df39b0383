"""The upstream slow, truncated, garbage and closing connections, under concurrent load through
the official ``openai`` SDK against a real web process.

The simulator breaks each answer the way a faulty upstream or a proxy before it would
(simulator/faults.py: ``[sim:close]``, ``[sim:garbage]``, ``[sim:truncate]``,
``[sim:truncate-image]``, ``[sim:slow-body=S]``, ``[sim:slow-image=S]``, ``[sim:latency=S]``).
Whatever breaks, the customer gets the documented OpenAI-shaped error (README, "Errors": 502
``upstream_error`` when Seedream failed or its image could not be fetched or read, 503
``upstream_timeout`` when a call or the download timed out), is charged nothing for it, no hold
or slot is left, and the good requests sent at the same time succeed and are charged once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types import ImagesResponse

from generation.models import Generation
from tests.support.money import balance
from tests.support.server import running_server

from .books import assert_books_balance_and_nothing_held
from .conftest import FAULT_ENV, Customers
from .load import FORMATS, Call, sdk_generate_concurrently, simulator_calls, unique

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

PRICE = 40  # seedream-4-0 at 1024x1024
CREDITS = 1000
ATTEMPTS = 3  # UPSTREAM_MAX_RETRIES (2) + 1: what is retried is called three times
FAULTY_CALLS = 3
GOOD_CALLS = 3


# Shorter than FAULT_ENV's: the slow faults here wait them out (a good call takes well under 1 s).
TIMEOUTS = {
    "UPSTREAM_TIMEOUT_SECONDS": "2",
    "UPSTREAM_IMAGE_TIMEOUT_SECONDS": "2",
    "GENERATION_TIMEOUT_SECONDS": "4",
}


@pytest.fixture(scope="module")
def web(live_server_env: dict[str, str]) -> Iterator[str]:
    """One web process for the module, with short upstream timeouts: 2 s a call or a download,
    4 s for a whole generation."""
    with running_server({**live_server_env, **FAULT_ENV, **TIMEOUTS}) as base_url:
        yield base_url


# id: marker, the status and code the customer gets, and how many upstream calls were made for
# it (None where a timeout decides: as many attempts as fit in the generation's time budget).
FAULTS: dict[str, tuple[str, int, str, int | None]] = {
    "connection-closed": ("[sim:close]", 502, "upstream_error", ATTEMPTS),
    "garbage-answer": ("[sim:garbage]", 502, "upstream_error", ATTEMPTS),
    "truncated-answer": ("[sim:truncate]", 502, "upstream_error", ATTEMPTS),
    # The call answered; its image broke in transfer. A download is not retried: 1 call.
    "truncated-image": ("[sim:truncate-image]", 502, "upstream_error", 1),
    "slow-answer": ("[sim:latency=30]", 503, "upstream_timeout", None),
    "trickled-answer": ("[sim:slow-body=30]", 503, "upstream_timeout", None),
    "trickled-image": ("[sim:slow-image=30]", 503, "upstream_timeout", 1),
}


@pytest.mark.parametrize(
    ("marker", "status", "code", "attempts"), list(FAULTS.values()), ids=list(FAULTS)
)
def test_a_broken_upstream_answer_is_an_openai_error_and_charges_nothing(
    web: str,
    customers: Customers,
    simulator_url: str,
    marker: str,
    status: int,
    code: str,
    attempts: int | None,
):
    unlucky, bystander = customers.open(CREDITS), customers.open(CREDITS)
    faulty = [Call(unlucky.key, unique(f"a broken kite {marker}")) for _ in range(FAULTY_CALLS)]
    good = [Call(unlucky.key, unique("a kite"))] + [
        Call(bystander.key, unique("a kite")) for _ in range(GOOD_CALLS - 1)
    ]

    results = sdk_generate_concurrently(web, faulty + good)

    for call, result in zip(faulty, results[:FAULTY_CALLS], strict=True):
        assert_openai_error(result, status, code)
        generation = Generation.objects.get(prompt=call.prompt)
        assert (generation.status, generation.charged_credits, generation.error_code) == (
            "failed",
            0,
            code,
        )
        if attempts is not None:
            assert simulator_calls(simulator_url, call.prompt) == attempts
    for result in results[FAULTY_CALLS:]:
        assert isinstance(result, ImagesResponse), result
        assert result.data and len(result.data) == 1 and result.data[0].url
    assert balance(unlucky.user()) == CREDITS - PRICE
    assert balance(bystander.user()) == CREDITS - (GOOD_CALLS - 1) * PRICE
    assert_books_balance_and_nothing_held()


def assert_openai_error(result: Any, status: int, code: str) -> None:
    assert isinstance(result, openai.APIStatusError), result
    assert result.status_code == status, result
    # The body is OpenAI's error object, and says that nothing was charged.
    assert isinstance(result.body, dict)
    assert set(result.body) == {"message", "type", "code", "param"}, result.body
    assert (result.type, result.code) == ("server_error", code)
    assert result.message.endswith("You were not charged.")


@pytest.mark.parametrize("marker", ["[sim:slow-body=1]", "[sim:slow-image=1]"])
def test_a_slow_upstream_within_the_time_budget_delivers_and_charges_once(
    web: str, customers: Customers, simulator_url: str, marker: str
):
    customer = customers.open(CREDITS)
    calls = [Call(customer.key, unique(f"a patient kite {marker}")) for _ in range(3)]

    results = sdk_generate_concurrently(web, calls)

    for call, result in zip(calls, results, strict=True):
        assert isinstance(result, ImagesResponse), result
        assert simulator_calls(simulator_url, call.prompt) == 1
    assert balance(customer.user()) == CREDITS - 3 * PRICE
    assert_books_balance_and_nothing_held()


def test_every_fault_at_once_beside_good_requests(
    web: str, customers: Customers, simulator_url: str
):
    """All the faults above in one load, with good requests of other customers among them."""
    unlucky = customers.open(CREDITS)
    others = [customers.open(CREDITS) for _ in range(3)]
    faulty = [
        Call(unlucky.key, unique(f"a broken mill {marker}")) for marker, *_ in FAULTS.values()
    ]
    good = [Call(c.key, unique("a mill"), response_format=f) for c in others for f in FORMATS]

    results = sdk_generate_concurrently(web, faulty + good)

    for (_, status, code, _), result in zip(FAULTS.values(), results[: len(faulty)], strict=True):
        assert_openai_error(result, status, code)
    for result in results[len(faulty) :]:
        assert isinstance(result, ImagesResponse), result
        assert result.data and (result.data[0].url or result.data[0].b64_json)
    assert balance(unlucky.user()) == CREDITS
    for customer in others:
        assert balance(customer.user()) == CREDITS - 2 * PRICE
    assert_books_balance_and_nothing_held()
