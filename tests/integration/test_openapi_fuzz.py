"""Property-based fuzzing of /v1 against its own OpenAPI document (api/openapi.py).

Schemathesis reads GET /v1/openapi.json from a real server process (uvicorn, the simulator
upstream, this session's database) and sends every operation well-formed (positive) and
malformed (negative) requests with a funded key, checking each answer: no 5xx but the
upstream-fault statuses the document gives that operation, every status, header and body as
the document says, every error OpenAI-shaped, auth enforced, other methods 405. After each
operation's run, every balance equals its ledger, no credits are held, no generation is left
unsettled and no concurrency slot is taken.

The number of examples per operation and mode is ``OPENAPI_FUZZ_EXAMPLES`` (default 50: the
whole run takes a few minutes on two cores); CI may raise it. Seeds of what it found are
regular tests in tests/api/test_openapi_findings.py.
"""

from __future__ import annotations

import collections
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.openapi import document
from billing.models import LedgerEntry, LedgerKind
from generation.models import ConcurrencySlot, Generation
from tests.support.money import assert_ledger_balanced
from tests.support.server import server_process

# The database marker is spelled out: pytest-django decides which test databases to create from
# the collected items' markers and fixtures, and schemathesis's items do not list the fixtures
# their lazy schema brings in.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

EXAMPLES = int(os.environ.get("OPENAPI_FUZZ_EXAMPLES", "50"))
METRICS_TOKEN = "fuzz-metrics"
# Requests the run sent, by operation and status (printed at the end, for the record).
STATUSES: collections.Counter[tuple[str, int]] = collections.Counter()
STARTED = time.monotonic()


@pytest.fixture(scope="module")
def fuzz_api(live_server_env: dict[str, str]) -> Iterator[str]:
    """A server of its own, whose /metrics counts exactly the requests of this run."""
    with server_process({**live_server_env, "METRICS_TOKEN": METRICS_TOKEN}) as server:
        base_url = server.url
        yield base_url
        print(server.log()[-5000:])
        served = _served(base_url)
        minutes = (time.monotonic() - STARTED) / 60
        print(f"\nOpenAPI fuzz: the server answered {served} /v1 requests in {minutes:.1f} min")
        for (operation, status), count in sorted(STATUSES.items()):
            print(f"  {operation}: {status} x{count}")


def _served(base_url: str) -> int:
    """The /v1 requests the server has answered (its Prometheus counter, every status)."""
    text = httpx.get(
        f"{base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    ).text
    total = 0.0
    for line in text.splitlines():
        match = re.match(r"^seedream_http_requests_total\{(.*)\} ([0-9.e+]+)$", line)
        if match and 'route="metrics"' not in match.group(1):
            total += float(match.group(2))
    return int(total)


@pytest.fixture(scope="module")
def api_schema(fuzz_api: str) -> Any:
    """The document as the server serves it, read by schemathesis."""
    schema = schemathesis.openapi.from_url(f"{fuzz_api}/v1/openapi.json")
    # Unknown query parameters are ignored, as OpenAI's API ignores them: not a negative case.
    schema.config.generation.update(max_examples=EXAMPLES, allow_extra_parameters=False)
    return schema


@pytest.fixture
def funded(fuzz_api, default_prices, user_factory, api_key_factory) -> Iterator[str]:
    """A key with credits for any request the fuzzer can make; after the run, the money and
    the limits are as they must be."""
    user = user_factory(credits=10_000_000)
    key = api_key_factory(user).raw_key
    yield key
    _cancel_queued_jobs(fuzz_api, key)
    assert_ledger_balanced(user)
    held = LedgerEntry.objects.filter(
        account__owner__personal_owner=user, kind__in=(LedgerKind.RESERVE, LedgerKind.RELEASE)
    )
    assert sum(entry.amount_credits for entry in held) == 0, "credits are still held"
    assert not Generation.objects.filter(status__in=Generation.UNSETTLED).exists()
    assert not ConcurrencySlot.objects.exists()


def _cancel_queued_jobs(base_url: str, key: str) -> None:
    """Jobs the fuzzer queued (``Prefer: respond-async``, ``"async": true``) wait for a worker,
    which this run has none of: a customer cancels them, and their holds come back at once."""
    headers = {"Authorization": f"Bearer {key}"}
    listed = httpx.get(
        f"{base_url}/v1/images/generations",
        params={"status": "queued", "limit": 100},
        headers=headers,
    ).json()
    for job in listed["data"]:
        response = httpx.post(
            f"{base_url}/v1/images/generations/{job['id']}/cancel", headers=headers
        )
        assert response.json()["status"] == "cancelled", response.text


# What the document allows is mostly refused by a model's own rules (its sizes, its extras): a
# share of the positive bodies are made ones a model takes, so that generations run, are held,
# charged, streamed and queued, and the money is checked after real work.
_MODELS = ("seedream-4-0", "seedream-4-5", "seedream-5-0-lite", "seedream-5-0-flash")
_RUNNABLE = st.one_of(
    st.fixed_dictionaries(
        {"model": st.sampled_from(_MODELS), "size": st.sampled_from(["1024x1024", "2K", None])}
    ),
    st.none(),
)
# The fields a model may refuse whatever their value (one model's extra, another's mode).
_MODEL_DEPENDENT = (
    "guidance_scale", "background", "sequential_image_generation",
    "sequential_image_generation_options", "layer_decomposition", "max_layers", "quality",
    "output_format", "images", "image", "mask",
)  # fmt: skip


def _make_runnable(body: dict[str, Any], runnable: dict[str, Any]) -> None:
    for name in _MODEL_DEPENDENT:
        body.pop(name, None)
    body["model"] = runnable["model"]
    body["prompt"] = body.get("prompt") or "a kite"
    if runnable["size"] is None:
        body.pop("size", None)
    else:
        body["size"] = runnable["size"]


@schemathesis.check
def no_undocumented_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 5xx only where the document gives the operation that status (the upstream's faults,
    a busy server): never a 500."""
    if response.status_code >= 500:
        documented = case.operation.definition.raw.get("responses", {})
        assert str(response.status_code) in documented, (
            f"{response.status_code} from {case.operation.label}: {response.text[:500]}"
        )
    return None


@schemathesis.check
def openai_shaped_errors(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every error is OpenAI's ``{"error": {"message", "type", "code", "param"}}``."""
    if response.status_code >= 400:
        assert response.headers.get("content-type", [""])[0] == "application/json"
        error = response.json()["error"]
        assert set(error) == {"message", "type", "code", "param"}, error
        assert isinstance(error["message"], str) and error["message"], error
        assert isinstance(error["type"], str) and error["type"], error
    return None


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_as_its_document_says(api_schema, funded, mode):
    """Each operation in turn, ``EXAMPLES`` requests each (plus the checks' own probes: the
    request without its key, other methods); every operation's findings are reported, not
    only the first."""
    headers = {"Authorization": f"Bearer {funded}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    findings = {}
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode), runnable=_RUNNABLE)
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,  # the same requests each run: a finding is then a regression
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
        )
        def run(case: Any, runnable: dict[str, Any] | None) -> None:
            if mode == GenerationMode.POSITIVE and runnable and isinstance(case.body, dict):
                _make_runnable(case.body, runnable)
            response = case.call(headers=headers, timeout=120)
            STATUSES[(f"{case.operation.label} [{mode.value}]", response.status_code)] += 1
            case.validate_response(
                response,
                headers=headers,
                additional_checks=[no_undocumented_server_error, openai_shaped_errors],
                # A request the document allows may still be refused by the model's own rules
                # (its sizes, the extras it takes, whether bytes are an image): a documented
                # 400, which the response checks hold to the error schema.
                excluded_checks=[positive_data_acceptance, not_a_server_error],
            )

        try:
            run()
        # Each operation's finding is collected, not the first only (a group is BaseException).
        except (Exception, BaseExceptionGroup) as failure:
            findings[operation.label] = failure
    # Every operation of the document but the document itself (schemathesis leaves out the
    # URL it read the schema from; tests/api/test_openapi.py covers it).
    described = {
        f"{method.upper()} {path}"
        for path, item in document()["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert {op.label for op in operations} == described - {"GET /openapi.json"}
    print(f"\n{mode.value}: {len(operations)} operations, findings: {sorted(findings)}")
    assert not findings, "\n\n".join(f"{label}:\n{failure}" for label, failure in findings.items())
