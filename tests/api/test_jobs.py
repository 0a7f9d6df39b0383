"""Generations as jobs: Prefer: respond-async (or "async": true) answers 202 with a job that a
worker runs; the job is collected, listed and cancelled by its owner, and another account's id
is a 404. The worker here is the service a Celery task calls (run_queued_generation); the real
worker process is in tests/integration/test_jobs.py."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from generation import services, tasks
from generation.models import Generation
from generation.services import run
from tests.api.test_validation import assert_error
from tests.support.money import assert_ledger_balanced, balance, ledger_kinds
from tests.support.pictures import picture

pytestmark = pytest.mark.smoke

ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def sent(monkeypatch):
    """The generation ids handed to the broker (the broker itself is not needed here)."""
    calls: list[int] = []
    monkeypatch.setattr(tasks, "send_generation", lambda pk, countdown=0: calls.append(pk))
    return calls


def prompt(text="a kite over the sea"):
    return f"{text} {uuid.uuid4().hex}"


def body(**fields):
    return {"model": "seedream-4-0", "prompt": prompt(), "size": "1024x1024", **fields}


def post(client, key, payload, headers=None, path="/v1/images/generations"):
    return client.post(
        path,
        json.dumps(payload),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}", **(headers or {})},
    )


def get(client, key, path, **params):
    return client.get(path, params, headers={"Authorization": f"Bearer {key}"})


def cancel(client, key, job_id):
    return client.post(
        f"/v1/images/generations/{job_id}/cancel", headers={"Authorization": f"Bearer {key}"}
    )


def run_worker(job_id):
    generation = Generation.objects.get(public_id=job_id)
    return services.run_queued_generation(generation.pk).status


def upstream_calls(simulator_url, text):
    base = simulator_url.removesuffix("/api/v3")
    return httpx.get(f"{base}/_sim/calls", params={"prompt": text}).json()["calls"]


def test_prefer_respond_async_answers_202_with_the_job_and_holds_its_quote(
    client, owner, owner_key, sent
):
    response = post(client, owner_key, body(n=2), ASYNC)

    assert response.status_code == 202, response.content
    job = response.json()
    assert job["object"] == "image.generation"
    assert job["status"] == "queued"
    assert job["model"] == "seedream-4-0"
    assert job["quote"] == {"credits": 80, "usd": "0.0800"}
    assert job["data"] == []
    assert response["Location"] == f"/v1/images/generations/{job['id']}"
    # The job's id is the request's, so the first header names it.
    assert job["id"] == "gen_" + response["x-request-id"].removeprefix("req_")
    generation = Generation.objects.get(public_id=job["id"])
    assert sent == [generation.pk]
    assert (generation.status, generation.reserved_credits) == ("queued", 80)
    assert ledger_kinds(owner)[-1] == ("reserve", -80)


def test_a_job_is_run_by_the_worker_and_collected_with_the_synchronous_answer(
    client, owner, owner_key, sent
):
    job = post(client, owner_key, body(n=2), ASYNC).json()
    pending = get(client, owner_key, f"/v1/images/generations/{job['id']}")
    assert pending.status_code == 202
    assert pending.json()["status"] == "queued"

    assert run_worker(job["id"]) == "done"

    done = get(client, owner_key, f"/v1/images/generations/{job['id']}")
    assert done.status_code == 200
    answer = done.json()
    assert answer["status"] == "completed"
    assert answer["id"] == job["id"]
    assert len(answer["data"]) == 2
    assert all(item["url"].startswith("http://testserver/img/") for item in answer["data"])
    assert answer["credits_charged"] == 80
    assert answer["usage"]["generated_images"] == 2
    assert done["x-credits-charged"] == "80"
    assert assert_ledger_balanced(owner) == 920


def test_the_body_field_async_true_asks_for_a_job_too(client, owner_key, sent):
    response = post(client, owner_key, {**body(), "async": True})

    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    assert len(sent) == 1


def test_a_multipart_edit_with_async_true_is_a_job_that_keeps_its_reference(
    client, owner, owner_key, sent, simulator_url
):
    text = prompt("dress the cat")
    response = client.post(
        "/v1/images/edits",
        {
            "model": "seedream-4-0",
            "prompt": text,
            "size": "1024x1024",
            "async": "true",
            "image": SimpleUploadedFile("cat.png", picture(), content_type="image/png"),
        },
        headers={"Authorization": f"Bearer {owner_key}"},
    )
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]

    assert run_worker(job_id) == "done"

    answer = get(client, owner_key, f"/v1/images/generations/{job_id}").json()
    assert answer["status"] == "completed"
    assert answer["usage"]["input_images"] == 1
    calls = httpx.get(
        simulator_url.removesuffix("/api/v3") + "/_sim/calls", params={"prompt": text}
    ).json()
    assert calls["calls"] == 1
    assert assert_ledger_balanced(owner) == 1000 - answer["credits_charged"]


def test_a_job_cannot_also_be_a_stream(client, owner, owner_key, sent):
    response = post(client, owner_key, body(stream=True), ASYNC)

    assert_error(response, 400, param="stream")
    assert sent == []
    assert not Generation.objects.exists()
    assert assert_ledger_balanced(owner) == 1000


def test_a_job_the_balance_cannot_cover_is_refused_402_at_submit(
    client, user_factory, api_key_factory, sent
):
    poor = user_factory("poor@example.com", credits=30)
    key = api_key_factory(poor).raw_key

    response = post(client, key, body(), ASYNC)

    assert_error(response, 402, code="insufficient_quota", type_="insufficient_quota")
    assert sent == []
    assert assert_ledger_balanced(poor) == 30


def test_cancelling_a_queued_job_releases_its_hold_at_once_and_it_never_runs(
    client, owner, owner_key, sent, simulator_url
):
    payload = body()
    job = post(client, owner_key, payload, ASYNC).json()
    assert balance(owner) == 960

    response = cancel(client, owner_key, job["id"])

    assert response.status_code == 200, response.content
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["credits_charged"] == 0
    assert cancelled["data"] == []
    assert assert_ledger_balanced(owner) == 1000
    # The task that was sent finds nothing to run.
    assert run_worker(job["id"]) == "not_claimed"
    assert upstream_calls(simulator_url, payload["prompt"]) == 0
    # Cancelling it again changes nothing.
    again = cancel(client, owner_key, job["id"])
    assert again.status_code == 200
    assert again.json()["status"] == "cancelled"
    assert assert_ledger_balanced(owner) == 1000


def test_a_running_job_cancelled_settles_when_the_upstream_answers_charged_for_what_it_delivered(
    client, owner, owner_key, sent, monkeypatch
):
    job = post(client, owner_key, body(), ASYNC).json()
    answers = []
    produce = run.produce_images

    async def cancelled_while_upstream_works(*args, **kwargs):
        # The owner cancels while the worker waits on the upstream.
        answers.append(await sync_to_async(cancel)(client, owner_key, job["id"]))
        return await produce(*args, **kwargs)

    monkeypatch.setattr(run, "produce_images", cancelled_while_upstream_works)

    assert run_worker(job["id"]) == "done"

    assert answers[0].status_code == 202
    assert answers[0].json()["status"] == "in_progress"
    answer = get(client, owner_key, f"/v1/images/generations/{job['id']}").json()
    assert answer["status"] == "cancelled"
    assert len(answer["data"]) == 1
    assert answer["credits_charged"] == 40
    assert assert_ledger_balanced(owner) == 960


def test_a_finished_job_cannot_be_cancelled(client, owner, owner_key):
    finished = post(client, owner_key, body())
    assert finished.status_code == 200

    response = cancel(client, owner_key, finished.json()["id"])

    assert_error(response, 409, code="job_finished", param="id")
    assert (
        get(client, owner_key, f"/v1/images/generations/{finished.json()['id']}").json()["status"]
        == "completed"
    )
    assert assert_ledger_balanced(owner) == 960


def test_a_synchronous_generation_is_a_job_by_its_id_and_by_its_request_id(client, owner_key):
    response = post(client, owner_key, body())
    answer = response.json()

    by_id = get(client, owner_key, f"/v1/images/generations/{answer['id']}")
    by_request = get(client, owner_key, f"/v1/images/generations/{response['x-request-id']}")

    assert by_id.status_code == by_request.status_code == 200
    assert by_id.json() == by_request.json()
    assert by_id.json()["status"] == "completed"
    assert by_id.json()["data"] == answer["data"]


def test_another_accounts_job_reads_exactly_like_an_unknown_one(
    client, owner_key, outsider, api_key_factory, sent
):
    job = post(client, owner_key, body(), ASYNC).json()
    outsider_key = api_key_factory(outsider).raw_key

    theirs = get(client, outsider_key, f"/v1/images/generations/{job['id']}")
    unknown = get(client, outsider_key, "/v1/images/generations/gen_0000")
    cancelled = cancel(client, outsider_key, job["id"])

    for response in (theirs, unknown, cancelled):
        assert_error(response, 404, code="not_found", param="id")
    assert theirs.json()["error"]["message"].replace(job["id"], "X") == unknown.json()["error"][
        "message"
    ].replace("gen_0000", "X")
    assert Generation.objects.get(public_id=job["id"]).cancel_requested_at is None
    assert get(client, outsider_key, "/v1/images/generations").json()["data"] == []


def test_a_failed_job_answers_its_error_and_charges_nothing(client, owner, owner_key, sent):
    job = post(client, owner_key, body(prompt=prompt("[sim:block-prompt]")), ASYNC).json()

    assert run_worker(job["id"]) == "done"

    response = get(client, owner_key, f"/v1/images/generations/{job['id']}")
    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "failed"
    assert answer["error"]["code"] == "content_policy_violation"
    assert answer["credits_charged"] == 0
    assert assert_ledger_balanced(owner) == 1000


def test_the_list_is_newest_first_in_pages_and_by_status(client, owner_key, sent):
    first = post(client, owner_key, body()).json()["id"]  # completed
    second = post(client, owner_key, body(), ASYNC).json()["id"]  # queued
    third = post(client, owner_key, body(), ASYNC).json()["id"]
    cancel(client, owner_key, third)

    everything = get(client, owner_key, "/v1/images/generations").json()
    assert everything["object"] == "list"
    assert [job["id"] for job in everything["data"]] == [third, second, first]
    assert [job["status"] for job in everything["data"]] == ["cancelled", "queued", "completed"]
    assert everything["has_more"] is False

    page = get(client, owner_key, "/v1/images/generations", limit=2).json()
    assert [job["id"] for job in page["data"]] == [third, second]
    assert (page["first_id"], page["last_id"], page["has_more"]) == (third, second, True)
    rest = get(client, owner_key, "/v1/images/generations", limit=2, after=second).json()
    assert [job["id"] for job in rest["data"]] == [first]
    assert rest["has_more"] is False

    queued = get(client, owner_key, "/v1/images/generations", status="queued").json()
    assert [job["id"] for job in queued["data"]] == [second]
    cancelled = get(client, owner_key, "/v1/images/generations", status="cancelled").json()
    assert [job["id"] for job in cancelled["data"]] == [third]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"status": "done"}, "status"),
        ({"after": "gen_unknown"}, "after"),
    ],
)
def test_a_bad_list_query_is_a_400_naming_it(client, owner_key, params, param):
    assert_error(get(client, owner_key, "/v1/images/generations", **params), 400, param=param)


def test_a_repeated_idempotency_key_answers_the_same_job_and_charges_once(
    client, owner, owner_key, sent
):
    payload = body()
    headers = {**ASYNC, "Idempotency-Key": "order-7"}
    first = post(client, owner_key, payload, headers)
    second = post(client, owner_key, payload, headers)

    assert first.status_code == second.status_code == 202
    assert second.json()["id"] == first.json()["id"]
    assert second["Idempotent-Replayed"] == "true"
    assert len(sent) == 1

    run_worker(first.json()["id"])
    third = post(client, owner_key, payload, headers)
    assert third.status_code == 200
    assert third.json()["status"] == "completed"
    assert third["Idempotent-Replayed"] == "true"
    assert Generation.objects.count() == 1
    assert assert_ledger_balanced(owner) == 960


def test_a_synchronous_repeat_of_a_running_job_is_409_naming_the_job(
    client, owner_key, sent, settings
):
    settings.IDEMPOTENCY_WAIT_SECONDS = 0
    payload = body()
    job = post(client, owner_key, payload, {**ASYNC, "Idempotency-Key": "k-9"}).json()

    response = post(client, owner_key, payload, {"Idempotency-Key": "k-9"})

    error = assert_error(response, 409, code="idempotency_request_in_progress")
    assert job["id"] in error["message"]
    assert response["Location"] == f"/v1/images/generations/{job['id']}"
    assert response["Retry-After"] == "1"


def test_a_multipart_edit_repeated_with_its_idempotency_key_is_answered_once(
    client, owner, owner_key, simulator_url
):
    # Each multipart request has its own random boundary: the key compares what it means.
    text = prompt("a watercolour cat")

    def edit(**extra):
        return client.post(
            "/v1/images/edits",
            {
                "model": "seedream-4-0",
                "prompt": text,
                "size": "1024x1024",
                "image": SimpleUploadedFile("cat.png", picture(), content_type="image/png"),
                **extra,
            },
            headers={"Authorization": f"Bearer {owner_key}", "Idempotency-Key": "edit-1"},
        )

    first, second = edit(), edit()
    other_picture = client.post(
        "/v1/images/edits",
        {
            "model": "seedream-4-0",
            "prompt": text,
            "size": "1024x1024",
            "image": SimpleUploadedFile("cat.png", picture((1, 2, 3)), content_type="image/png"),
        },
        headers={"Authorization": f"Bearer {owner_key}", "Idempotency-Key": "edit-1"},
    )

    assert first.status_code == second.status_code == 200, second.content
    assert second.json()["data"] == first.json()["data"]
    assert second["Idempotent-Replayed"] == "true"
    assert_error(other_picture, 400, code="idempotency_key_reused", param="Idempotency-Key")
    assert upstream_calls(simulator_url, text) == 1
    assert assert_ledger_balanced(owner) == 1000 - first.json()["credits_charged"]


def test_a_synchronous_request_asked_again_with_async_true_is_the_same_job(
    client, owner, owner_key
):
    payload = body()
    headers = {"Idempotency-Key": "sync-then-async"}
    first = post(client, owner_key, payload, headers)

    again = post(client, owner_key, {**payload, "async": True}, headers)

    assert again.status_code == 200, again.content
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "completed"
    assert again["Idempotent-Replayed"] == "true"
    assert assert_ledger_balanced(owner) == 960


def test_a_worker_never_starts_a_job_whose_cancel_has_begun(client, owner_key, sent):
    job = post(client, owner_key, body(), ASYNC).json()
    # The cancel has marked the row but not yet settled it when the worker looks.
    Generation.objects.filter(public_id=job["id"]).update(cancel_requested_at=timezone.now())

    assert run_worker(job["id"]) == "not_claimed"
