"""The job API from outside (issue 17): ``Prefer: respond-async`` (or ``"async": true``) on the
images endpoints answers 202 with a job that a real Celery worker runs; the job is polled,
listed and cancelled over HTTP, with the official ``openai`` SDK and plain httpx, against a real
uvicorn server, the upstream simulator and the shared test database. Every test ends with the
money: what was delivered is charged once, at its quote, and the ledger balances.

The server and the worker share a Redis queue of this module's own (tests/support/worker.py), so
no other test's tasks reach this worker nor this module's reach another's."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI

from billing import services as billing
from generation.models import Generation
from tests.faults.load import simulator_calls, wait_until
from tests.integration import test_openai_node_sdk as node_sdk_tests
from tests.support.jobs import get_job, job_path, wait_for_job, wait_for_status
from tests.support.money import assert_ledger_balanced, ledger_kinds, ledger_rows
from tests.support.pictures import RED, picture
from tests.support.server import running_server
from tests.support.worker import Worker, redis_broker, running_worker

pytestmark = [pytest.mark.integration]

PRICE = 40  # seedream-4-0 at 1K (1024x1024)
ASYNC = {"Prefer": "respond-async"}
GENERATIONS = "/v1/images/generations"


@pytest.fixture(scope="module")
def jobs_env(live_server_env: dict[str, str]) -> Iterator[dict[str, str]]:
    # A synchronous repeat of a running request's Idempotency-Key waits this long before its 409.
    with redis_broker({**live_server_env, "IDEMPOTENCY_WAIT_SECONDS": "1"}) as env:
        yield env


@pytest.fixture(scope="module")
def jobs_api(jobs_env: dict[str, str]) -> Iterator[str]:
    """Two web processes, as in production: a job submitted to one is collected from either."""
    with running_server(jobs_env, workers=2) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def worker(jobs_env: dict[str, str]) -> Iterator[Worker]:
    """One worker with one pool process: it runs one job at a time, in the order submitted."""
    with running_worker(jobs_env) as started:
        yield started


@pytest.fixture
def customer(jobs_api, worker, default_prices, user_factory, api_key_factory):
    """(user, raw key) of a new customer with ``credits``."""

    def make(credits: int = 1000) -> tuple[Any, str]:
        user = user_factory(credits=credits)
        return user, api_key_factory(user).raw_key

    return make


def post(base_url: str, key: str, path: str, body: dict[str, Any], **headers: str):
    return httpx.post(
        f"{base_url}{path}",
        content=json.dumps(body),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", **headers},
        timeout=30,
    )


def generation_body(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": "seedream-4-0", "prompt": prompt, "size": "1K", **extra}


def unique(prompt: str) -> str:
    return f"{prompt} {uuid.uuid4().hex[:10]}"


def charges(user: Any, generation_pk: int) -> list[int]:
    """What the ledger charged for one generation (each charge row's credits, positive)."""
    reference = Generation.objects.get(pk=generation_pk).ledger_reference
    return [-amount for kind, amount, _ in ledger_rows(user, reference) if kind == "charge"]


def assert_accepted(response: httpx.Response, model: str = "seedream-4-0") -> dict[str, Any]:
    """A 202 with a queued job, and where to poll it: the job."""
    assert response.status_code == 202, response.text
    job = response.json()
    assert re.fullmatch(r"gen_[0-9a-f]+", job["id"]), job
    assert (job["object"], job["status"], job["model"], job["data"]) == (
        "image.generation", "queued", model, [],
    )  # fmt: skip
    assert isinstance(job["created"], int)
    # The hold, as /v1/images/quote prices it (a decimal string of dollars).
    assert job["quote"]["credits"] > 0, job
    assert job["quote"]["usd"] == billing.format_usd(job["quote"]["credits"]), job
    assert response.headers["Location"] == job_path(job["id"])
    # The request's x-request-id names the job from the first byte.
    assert response.headers["x-request-id"] == "req_" + job["id"].removeprefix("gen_")
    return job


def assert_completed_and_charged_once(
    user: Any, job: dict[str, Any], answer: httpx.Response
) -> dict[str, Any]:
    """The finished job is completed and charged exactly what was delivered, once."""
    assert answer.status_code == 200, answer.text
    done = answer.json()
    assert (done["id"], done["object"], done["status"]) == (
        job["id"],
        "image.generation",
        "completed",
    )
    generation = Generation.objects.get(public_id=job["id"])
    assert generation.source == Generation.Source.API
    assert len(done["data"]) == done["images_delivered"] == generation.images.count() > 0
    assert done["credits_charged"] == done["images_delivered"] * PRICE
    assert done["credits_charged"] <= done["quote"]["credits"] == generation.reserved_credits
    assert done["usage"]["generated_images"] == done["images_delivered"]
    assert answer.headers["x-credits-charged"] == str(done["credits_charged"])
    assert charges(user, generation.pk) == [done["credits_charged"]]
    return done


def assert_error(response: httpx.Response, status: int, code: str, param: object) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["param"] == param, error
    assert error["message"] and error["type"] == "invalid_request_error"


# --- 1. Each mode through the official SDK ----------------------------------------------------


def sdk_client(base_url: str, key: str) -> OpenAI:
    return OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)


def sdk_wait(client: OpenAI, job_id: str) -> httpx.Response:
    """Poll the job with the SDK's own client (its ``get``, the raw answer) until finished."""
    deadline = time.monotonic() + 60
    while True:
        answer = client.get(f"/images/generations/{job_id}", cast_to=httpx.Response)
        if answer.status_code != 202:
            return answer
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.2)


def test_an_async_generation_through_the_sdk_is_run_by_a_worker_and_collected(jobs_api, customer):
    user, key = customer()
    client = sdk_client(jobs_api, key)

    raw = client.images.with_raw_response.generate(
        model="seedream-4-0", prompt=unique("a lighthouse"), size="1K", extra_headers=ASYNC
    )

    job = assert_accepted(raw.http_response)
    assert raw.parse().data == []  # the SDK reads the job as an (empty) ImagesResponse
    # Held now, while it waits for the worker.
    assert assert_ledger_balanced(user) == 1000 - job["quote"]["credits"]
    done = assert_completed_and_charged_once(user, job, sdk_wait(client, job["id"]))
    assert done["images_delivered"] == 1 and done["data"][0]["url"]
    assert httpx.get(done["data"][0]["url"]).status_code == 200
    assert assert_ledger_balanced(user) == 1000 - PRICE


def test_an_async_edit_with_one_file_through_the_sdk(jobs_api, customer, simulator_url):
    user, key = customer()
    client = sdk_client(jobs_api, key)
    red = picture(RED)
    prompt = unique("one file")

    raw = client.images.with_raw_response.edit(
        model="seedream-4-0", image=("red.png", red, "image/png"), prompt=prompt, size="1K",
        extra_headers=ASYNC,
    )  # fmt: skip

    job = assert_accepted(raw.http_response)
    done = assert_completed_and_charged_once(user, job, sdk_wait(client, job["id"]))
    # The worker sent the reference the request carried, kept while the job was queued.
    sent = httpx.get(
        f"{simulator_url.removesuffix('/api/v3')}/_sim/calls", params={"prompt": prompt}
    ).json()["references"]
    assert sent == [[hashlib.sha256(red).hexdigest()]]
    assert done["usage"]["input_images"] == 1
    assert assert_ledger_balanced(user) == 1000 - done["credits_charged"]


def test_an_async_set_through_the_sdk_is_charged_for_the_images_delivered(jobs_api, customer):
    user, key = customer()
    client = sdk_client(jobs_api, key)
    options = {
        "sequential_image_generation": "auto",
        "sequential_image_generation_options": {"max_images": 3},
    }

    # The model makes two of the three the set may have.
    raw = client.images.with_raw_response.generate(
        model="seedream-4-0", prompt=unique("seasons [sim:set-count=2]"), size="1K",
        extra_body=options, extra_headers=ASYNC,
    )  # fmt: skip

    job = assert_accepted(raw.http_response)
    assert job["quote"]["credits"] == 3 * PRICE  # the hold is the most the set can cost
    done = assert_completed_and_charged_once(user, job, sdk_wait(client, job["id"]))
    assert (done["images_requested"], done["images_delivered"]) == (3, 2)
    assert done["credits_charged"] == 2 * PRICE
    assert assert_ledger_balanced(user) == 1000 - 2 * PRICE


def test_the_body_field_async_queues_a_job_as_json_and_as_a_multipart_field(jobs_api, customer):
    user, key = customer()
    as_json = post(
        jobs_api, key, GENERATIONS, generation_body(unique("no headers"), **{"async": True})
    )
    as_form = httpx.post(
        f"{jobs_api}/v1/images/edits",
        data={"model": "seedream-4-0", "prompt": unique("no headers"), "size": "1K",
              "async": "true"},
        files={"image": ("red.png", picture(RED), "image/png")},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )  # fmt: skip

    jobs = [assert_accepted(as_json), assert_accepted(as_form)]
    for job in jobs:
        assert_completed_and_charged_once(user, job, wait_for_job(jobs_api, key, job["id"]))
    assert assert_ledger_balanced(user) == 1000 - 2 * PRICE


# --- 2 and 3. Cancel -------------------------------------------------------------------------


def cancel(base_url: str, key: str, job_id: str) -> httpx.Response:
    return post(base_url, key, f"{job_path(job_id)}/cancel", {})


def listed(base_url: str, key: str, **params: Any) -> dict[str, Any]:
    response = httpx.get(
        f"{base_url}{GENERATIONS}",
        params=params,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def test_cancelling_a_queued_job_releases_its_hold_at_once_and_it_never_goes_upstream(
    jobs_api, customer, simulator_url
):
    user, key = customer()
    # The worker's only pool process is busy with this one, so the next job waits its turn.
    busy = assert_accepted(
        post(jobs_api, key, GENERATIONS, generation_body(unique("a slow tide [sim:latency=2]")),
             **ASYNC)
    )  # fmt: skip
    wait_for_status(jobs_api, key, busy["id"], "in_progress")
    prompt = unique("a waiting tide")
    waiting = assert_accepted(post(jobs_api, key, GENERATIONS, generation_body(prompt), **ASYNC))
    assert get_job(jobs_api, key, waiting["id"]).json()["status"] == "queued"
    assert assert_ledger_balanced(user) == 1000 - 2 * PRICE  # both held

    answer = cancel(jobs_api, key, waiting["id"])

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["id"], body["status"], body["data"], body["credits_charged"]) == (
        waiting["id"], "cancelled", [], 0,
    )  # fmt: skip
    assert "error" not in body
    assert answer.headers["x-credits-charged"] == "0"
    # Released at once: only the busy job's hold remains.
    assert assert_ledger_balanced(user) == 1000 - PRICE
    generation = Generation.objects.get(public_id=waiting["id"])
    assert [kind for kind, _, _ in ledger_rows(user, generation.ledger_reference)] == [
        "reserve", "release",
    ]  # fmt: skip
    # Cancelling it again changes nothing.
    again = cancel(jobs_api, key, waiting["id"])
    assert (again.status_code, again.json()["status"]) == (200, "cancelled")

    # The worker takes its task after the busy job (and before a job submitted after it), and
    # finds nothing to run.
    after = assert_accepted(
        post(jobs_api, key, GENERATIONS, generation_body(unique("a tide after")), **ASYNC)
    )
    assert_completed_and_charged_once(user, busy, wait_for_job(jobs_api, key, busy["id"]))
    assert_completed_and_charged_once(user, after, wait_for_job(jobs_api, key, after["id"]))
    assert simulator_calls(simulator_url, prompt) == 0
    generation.refresh_from_db()
    assert (generation.attempts, generation.images_delivered, generation.charged_credits) == (
        0, 0, 0,
    )  # fmt: skip
    assert get_job(jobs_api, key, waiting["id"]).json()["status"] == "cancelled"
    assert [job["id"] for job in listed(jobs_api, key, status="cancelled")["data"]] == [
        waiting["id"]
    ]
    assert assert_ledger_balanced(user) == 1000 - 2 * PRICE


def test_cancelling_a_running_job_settles_it_when_the_upstream_answers(
    jobs_api, customer, simulator_url
):
    user, key = customer()
    prompt = unique("a slow comet [sim:latency=2]")
    job = assert_accepted(post(jobs_api, key, GENERATIONS, generation_body(prompt), **ASYNC))
    wait_until(lambda: simulator_calls(simulator_url, prompt) == 1, "the job is with the upstream")

    answer = cancel(jobs_api, key, job["id"])

    # Still in progress: it cannot be called back from the upstream.
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "in_progress"
    assert answer.headers["Location"] == job_path(job["id"])
    done = wait_for_job(jobs_api, key, job["id"])
    assert done.status_code == 200, done.text
    body = done.json()
    # What the upstream delivered before the cancel took effect is kept and charged, once.
    assert (body["status"], body["images_delivered"], body["credits_charged"]) == (
        "cancelled", 1, PRICE,
    )  # fmt: skip
    assert len(body["data"]) == 1
    generation = Generation.objects.get(public_id=job["id"])
    assert charges(user, generation.pk) == [PRICE]
    assert simulator_calls(simulator_url, prompt) == 1
    assert assert_ledger_balanced(user) == 1000 - PRICE
    # A cancelled job is not completed; cancelling it again changes nothing.
    assert job["id"] not in [j["id"] for j in listed(jobs_api, key, status="completed")["data"]]
    again = cancel(jobs_api, key, job["id"])
    assert (again.status_code, again.json()["status"]) == (200, "cancelled")
    assert assert_ledger_balanced(user) == 1000 - PRICE


# --- 4. A dropped synchronous request, collected by id ---------------------------------------


def test_a_dropped_request_is_collected_through_its_idempotency_key_as_a_job(
    jobs_api, customer, simulator_url
):
    user, key = customer()
    # Long enough upstream for the dropped request (1 s) and a repeat's wait (1 s) to pass first.
    body = generation_body(unique("a patient heron [sim:latency=5]"))
    once = {"Idempotency-Key": f"heron-{uuid.uuid4().hex}"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{jobs_api}{GENERATIONS}",
            json=body,
            headers={"Authorization": f"Bearer {key}", **once},
            timeout=1,
        )

    # Asked again as it was, it is still running: 409, and where to collect it.
    still_running = post(jobs_api, key, GENERATIONS, body, **once)
    assert_error(still_running, 409, "idempotency_request_in_progress", None)
    assert still_running.headers["Retry-After"]
    collect_at = still_running.headers["Location"]

    retry = post(jobs_api, key, GENERATIONS, body, **once, **ASYNC)

    # The same job, still running in the web process that took the dropped request.
    assert retry.status_code == 202, retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    generation = Generation.objects.get(user=user)
    job = retry.json()
    assert (job["id"], job["status"]) == (generation.public_id, "in_progress")
    assert retry.headers["Location"] == collect_at == job_path(job["id"])
    assert job["id"] in still_running.json()["error"]["message"]
    done = assert_completed_and_charged_once(user, job, wait_for_job(jobs_api, key, job["id"]))
    assert done["credits_charged"] == PRICE
    # Once finished, the key answers the finished job, sync or async, and charges nothing more.
    replayed = post(jobs_api, key, GENERATIONS, body, **once, **ASYNC)
    assert (replayed.status_code, replayed.headers["Idempotent-Replayed"]) == (200, "true")
    assert (replayed.json()["id"], replayed.json()["status"]) == (job["id"], "completed")
    synchronous = post(jobs_api, key, GENERATIONS, body, **once)
    assert (synchronous.status_code, synchronous.json()["id"]) == (200, job["id"])
    assert Generation.objects.filter(user=user).count() == 1
    assert simulator_calls(simulator_url, body["prompt"]) == 1
    assert ledger_kinds(user).count(("charge", -PRICE)) == 1
    assert assert_ledger_balanced(user) == 1000 - PRICE


def test_a_dropped_edit_is_collected_through_its_idempotency_key_as_a_job(
    jobs_api, customer, simulator_url
):
    """The same for an edit, multipart as the SDKs send it: each request's form has a boundary
    of its own, so the repeat's bytes differ from the first's though its meaning does not."""
    user, key = customer()
    fields = {"model": "seedream-4-0", "prompt": unique("a patient edit [sim:latency=3]"),
              "size": "1K"}  # fmt: skip
    files = {"image": ("red.png", picture(RED), "image/png")}
    once = {"Authorization": f"Bearer {key}", "Idempotency-Key": f"edit-{uuid.uuid4().hex}"}
    try:
        early = httpx.post(
            f"{jobs_api}/v1/images/edits", data=fields, files=files, headers=once, timeout=1
        )
    except httpx.ReadTimeout:
        early = None  # dropped, as the client meant to
    assert early is None, f"answered before the upstream: {early.status_code} {early.text}"

    retry = httpx.post(
        f"{jobs_api}/v1/images/edits", data=fields, files=files, headers={**once, **ASYNC},
        timeout=30,
    )  # fmt: skip

    assert retry.status_code == 202, retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    job = retry.json()
    assert job["id"] == Generation.objects.get(user=user).public_id
    assert_completed_and_charged_once(user, job, wait_for_job(jobs_api, key, job["id"]))
    assert simulator_calls(simulator_url, fields["prompt"]) == 1
    assert assert_ledger_balanced(user) == 1000 - PRICE


def test_a_synchronous_generation_is_a_job_named_by_its_x_request_id(
    jobs_api, customer, user_factory, api_key_factory
):
    user, key = customer()
    answer = post(jobs_api, key, GENERATIONS, generation_body(unique("a named heron")))
    assert answer.status_code == 200, answer.text
    request_id = answer.headers["x-request-id"]
    assert request_id.startswith("req_")
    job_id = "gen_" + request_id.removeprefix("req_")
    assert answer.json()["id"] == job_id

    by_job_id = get_job(jobs_api, key, job_id)
    by_request_id = get_job(jobs_api, key, request_id)

    for collected in (by_job_id, by_request_id):
        assert collected.status_code == 200, collected.text
        body = collected.json()
        assert (body["id"], body["status"]) == (job_id, "completed")
        assert [item["url"] for item in body["data"]] == [
            item["url"] for item in answer.json()["data"]
        ]
        assert body["credits_charged"] == answer.json()["credits_charged"] == PRICE
    # Another account's key finds neither.
    other = api_key_factory(user_factory(credits=1000)).raw_key
    for some_id in (job_id, request_id):
        assert get_job(jobs_api, other, some_id).status_code == 404
    assert ledger_kinds(user).count(("charge", -PRICE)) == 1
    assert assert_ledger_balanced(user) == 1000 - PRICE


# --- Bad inputs --------------------------------------------------------------------------------


def test_bad_ids_and_bad_requests_answer_openai_shaped_errors_and_charge_nothing(
    jobs_api, customer, user_factory, api_key_factory
):
    user, key = customer()
    finished = post(jobs_api, key, GENERATIONS, generation_body(unique("a finished one")))
    assert finished.status_code == 200, finished.text
    job_id = finished.json()["id"]
    outsider = api_key_factory(user_factory(credits=1000)).raw_key

    # An unknown id and another account's id read the same.
    for some_key, some_id in ((key, "gen_" + "0" * 32), (key, "nonsense"), (outsider, job_id)):
        assert_error(get_job(jobs_api, some_key, some_id), 404, "not_found", "id")
        assert_error(cancel(jobs_api, some_key, some_id), 404, "not_found", "id")
    assert_error(cancel(jobs_api, key, job_id), 409, "job_finished", "id")
    assert get_job(jobs_api, key, job_id).json()["status"] == "completed"  # unchanged
    # The list's parameters.
    for params, param in (
        ({"status": "done"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"after": "gen_unknown"}, "after"),
        ({"after": job_id}, None),
    ):
        response = httpx.get(
            f"{jobs_api}{GENERATIONS}", params=params,
            headers={"Authorization": f"Bearer {key}"}, timeout=30,
        )  # fmt: skip
        if param is None:  # the last id of the account's only page: an empty page after it
            assert response.json()["data"] == [] and response.json()["has_more"] is False
        else:
            assert_error(response, 400, "invalid_value", param)
    assert_error(
        httpx.get(f"{jobs_api}{GENERATIONS}", params={"after": job_id},
                  headers={"Authorization": f"Bearer {outsider}"}, timeout=30),
        400, "invalid_value", "after",
    )  # fmt: skip
    # A job is not a stream.
    both = post(jobs_api, key, GENERATIONS, generation_body(unique("x"), stream=True), **ASYNC)
    assert_error(both, 400, "invalid_value", "stream")
    assert Generation.objects.filter(user=user).count() == 1
    assert assert_ledger_balanced(user) == 1000 - PRICE


# --- 5. Thirty at once against ten images' worth -----------------------------------------------


async def _submit_all(base_url: str, key: str, bodies: list[dict[str, Any]]):
    async with httpx.AsyncClient(
        base_url=base_url, timeout=60, limits=httpx.Limits(max_connections=len(bodies))
    ) as client:
        return await asyncio.gather(
            *(
                client.post(
                    GENERATIONS,
                    content=json.dumps(body),
                    headers={
                        "Authorization": f"Bearer {key}",
                        "Content-Type": "application/json",
                        **ASYNC,
                    },
                )
                for body in bodies
            )
        )


@pytest.mark.postgres  # real row locks under the concurrent holds
def test_30_concurrent_jobs_against_10_images_of_credits_settle_10_and_refuse_20_at_submit(
    jobs_api, customer
):
    # The rate limits are the unlimited test tier (tests/conftest.py's live_server_env): only
    # the credits can refuse.
    user, key = customer(credits=10 * PRICE)
    bodies = [generation_body(unique(f"fox {i}")) for i in range(30)]

    responses = asyncio.run(_submit_all(jobs_api, key, bodies))

    assert sorted(r.status_code for r in responses) == [202] * 10 + [402] * 20, [
        r.text for r in responses if r.status_code not in (202, 402)
    ]
    refused = [r.json()["error"] for r in responses if r.status_code == 402]
    assert {(e["code"], e["type"]) for e in refused} == {
        ("insufficient_quota", "insufficient_quota")
    }
    jobs = [assert_accepted(r) for r in responses if r.status_code == 202]
    assert assert_ledger_balanced(user) == 0  # all ten held at submit

    for job in jobs:
        assert_completed_and_charged_once(user, job, wait_for_job(jobs_api, key, job["id"]))

    assert assert_ledger_balanced(user) == 0
    kinds = [kind for kind, _ in ledger_kinds(user)]
    assert kinds.count("charge") == kinds.count("reserve") == kinds.count("release") == 10
    assert Generation.objects.filter(user=user, status="succeeded").count() == 10
    # The list has the ten jobs (refusals are not jobs), newest first, in cursor pages.
    ids, after = [], None
    while True:
        page = listed(jobs_api, key, limit=4, **({"after": after} if after else {}))
        assert page["object"] == "list"
        ids += [job["id"] for job in page["data"]]
        assert page["has_more"] is (len(ids) < 10)
        assert (page["first_id"], page["last_id"]) == (
            page["data"][0]["id"],
            page["data"][-1]["id"],
        )
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert sorted(ids) == sorted(job["id"] for job in jobs)
    newest_first = Generation.objects.filter(public_id__in=ids).order_by("-created_at", "-id")
    assert ids == [g.public_id for g in newest_first]
    completed = listed(jobs_api, key, status="completed", limit=100)["data"]
    assert {j["id"] for j in completed} == set(ids)
    assert all(j["credits_charged"] == PRICE for j in completed)
    assert listed(jobs_api, key, status="queued")["data"] == []


# --- A failed job, and a job answered in base64 ----------------------------------------------


def test_a_failed_job_answers_the_error_a_synchronous_request_would_have_and_charges_nothing(
    jobs_api, customer
):
    user, key = customer()
    synchronous = post(jobs_api, key, GENERATIONS, generation_body(unique("[sim:block-prompt]")))
    assert synchronous.status_code == 400, synchronous.text

    submitted = post(
        jobs_api, key, GENERATIONS, generation_body(unique("[sim:block-prompt]")), **ASYNC
    )

    job = assert_accepted(submitted)
    failed = wait_for_job(jobs_api, key, job["id"])
    assert failed.status_code == 200, failed.text
    body = failed.json()
    assert (body["status"], body["data"], body["credits_charged"]) == ("failed", [], 0)
    wanted = synchronous.json()["error"]
    assert {k: body["error"][k] for k in ("type", "code", "param")} == {
        k: wanted[k] for k in ("type", "code", "param")
    }
    assert body["error"]["message"]
    assert failed.headers["x-credits-charged"] == "0"
    assert [j["id"] for j in listed(jobs_api, key, status="failed")["data"]] == [
        job["id"],
        # A synchronous failure is a job too, named by its x-request-id.
        "gen_" + synchronous.headers["x-request-id"].removeprefix("req_"),
    ]
    assert "charge" not in [kind for kind, _ in ledger_kinds(user)]
    assert assert_ledger_balanced(user) == 1000


def test_a_job_asked_for_in_base64_is_collected_in_base64(jobs_api, customer):
    user, key = customer()
    job = assert_accepted(
        post(
            jobs_api, key, GENERATIONS,
            generation_body(unique("a lighthouse"), response_format="b64_json"), **ASYNC,
        )
    )  # fmt: skip

    done = assert_completed_and_charged_once(user, job, wait_for_job(jobs_api, key, job["id"]))

    [item] = done["data"]
    assert "url" not in item
    assert base64.b64decode(item["b64_json"]).startswith((b"\xff\xd8", b"\x89PNG"))
    assert assert_ledger_balanced(user) == 1000 - PRICE


# --- 7. The official Node SDK ----------------------------------------------------------------

# tests/node/sdk.mjs, as the Node SDK's own tests drive it (skipped without Node).
node = node_sdk_tests.node
node_sdk = node_sdk_tests.node_sdk


def test_an_async_generation_through_the_node_sdk(jobs_api, customer, node):
    user, key = customer()
    asked = {"model": "seedream-4-0", "prompt": unique("a lighthouse by node"), "size": "1K"}

    [submitted] = node_sdk(
        node, jobs_api, key, {"op": "generate", "params": asked, "options": {"headers": ASYNC}}
    )

    assert submitted["ok"], submitted
    job = submitted["result"]  # the SDK hands back the job's body as the answer
    assert (job["object"], job["status"], job["data"]) == ("image.generation", "queued", [])
    wait_for_job(jobs_api, key, job["id"])
    [collected] = node_sdk(
        node, jobs_api, key, {"op": "get", "path": f"/images/generations/{job['id']}"}
    )
    assert collected["ok"], collected
    done = collected["result"]
    assert (done["id"], done["status"], done["credits_charged"]) == (job["id"], "completed", PRICE)
    assert len(done["data"]) == 1 and done["data"][0]["url"]
    generation = Generation.objects.get(public_id=job["id"])
    assert charges(user, generation.pk) == [PRICE]
    assert assert_ledger_balanced(user) == 1000 - PRICE
