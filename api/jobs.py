"""Generations as jobs, on /v1: submitted with ``Prefer: respond-async`` (or ``"async": true``),
then collected, listed and cancelled.

- ``POST /v1/images/generations`` and ``/v1/images/edits`` with ``Prefer: respond-async``
  answer ``202`` at once with the job (``submit``) and a ``Location`` to poll; a worker runs it
  exactly as the playground's runs are run, with the same hold, limits and settlement.
- ``GET /v1/images/generations/{id}``: any generation of the key's account, synchronous ones
  included (a client that lost its connection collects here what it paid for).
- ``POST /v1/images/generations/{id}/cancel`` and ``GET /v1/images/generations`` (newest
  first, cursor pages, by status).

Another account's id answers exactly as an unknown one does: 404.
"""

from __future__ import annotations

import re
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse

from billing import services as billing
from generation import services
from generation.models import Generation
from generation.services import jobs

from . import answers
from .auth import ApiRequest, api_endpoint
from .errors import ApiError, invalid
from .refusals import stored_error
from .schemas import ImagesRequest

OBJECT = "image.generation"

# What a job id can look like (``gen_`` or ``req_`` and hex, a playground run's id): anything
# else names no job, and never reaches the database (PostgreSQL refuses a NUL byte in a text
# parameter: found by tests/integration/test_openapi_fuzz.py as a 500).
_JOB_ID_RE = re.compile(r"^[\x21-\x7e]{1,64}$")


def prefers_async(request: HttpRequest) -> bool:
    """Whether the request asks to be answered with a job (RFC 7240 ``Prefer:
    respond-async``, among any other preferences)."""
    prefer = request.headers.get("Prefer", "")
    return any(part.split(";")[0].strip().lower() == "respond-async" for part in prefer.split(","))


def new_job_id(request: HttpRequest) -> str | None:
    """The id a generation this request asks for gets: its x-request-id's (server/middleware.py
    gives every request one), so that header names the job from the first byte."""
    request_id = getattr(request, "request_id", None)
    return jobs.job_id_of(request_id) if request_id else None


def location(generation: Generation) -> str:
    return f"/v1/images/generations/{generation.public_id}"


async def submit(
    request: ApiRequest, asked: ImagesRequest, idempotency_key: str | None, request_hash: str
) -> HttpResponseBase:
    """Hold the credits and queue the work; answer 202 with the job. A repeated
    Idempotency-Key answers the first request's job (202 while it runs), never a second one."""
    steps, api_key = request.steps, request.api_key
    try:
        generation = await services.submit_job(
            steps,
            api_key=api_key,
            spec=asked.spec,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            public_id=new_job_id(request),
            rate_headers=request.answer_headers,
        )
    except services.IdempotentReplay as replay:
        response = await job_answer(request, replay.generation)
        response["Idempotent-Replayed"] = "true"
        return response
    return await job_answer(request, generation)


async def job_answer(request: HttpRequest, generation: Generation) -> HttpResponseBase:
    """The job as it stands: 202 with its status while it is queued or in progress (and a
    ``Location`` to poll), else 200 with what a synchronous request would have been answered
    (its images, or its error under ``error``), as a job."""
    status = generation.job_status
    fields = job_fields(generation)
    if not generation.is_finished:
        response: HttpResponseBase = JsonResponse({**fields, "data": []}, status=202)
        response["Location"] = location(generation)
        response["Retry-After"] = "2"
        return response
    completed = await _loaded(request, generation)
    if answers.succeeded(completed):
        return await answers.render(request, generation, completed, fields)
    body: dict[str, Any] = {**fields, "data": [], "credits_charged": generation.charged_credits}
    if status == jobs.FAILED:
        error = stored_error(generation)
        body["error"] = {
            "message": error.message,
            "type": error.type,
            "code": error.code,
            "param": error.param,
        }
    response = JsonResponse(body)
    response[answers.CREDITS_CHARGED_HEADER] = str(generation.charged_credits)
    return response


async def _loaded(request: HttpRequest, generation: Generation) -> services.Completed:
    steps = request.steps  # type: ignore[attr-defined]
    completed: services.Completed = await steps.run(answers.load_completed, generation)
    return completed


def job_fields(generation: Generation) -> dict[str, Any]:
    """What every view of a job has: its id, status, model, when, and the quote it holds (or
    held: what was charged is ``credits_charged`` once it is finished)."""
    return {
        "id": generation.public_id,
        "object": OBJECT,
        "status": generation.job_status,
        "model": generation.model,
        "created": int(generation.created_at.timestamp()),
        "finished_at": (
            int(generation.finished_at.timestamp()) if generation.finished_at else None
        ),
        "images_requested": generation.n,
        "images_delivered": generation.images_delivered,
        "quote": {
            "credits": generation.reserved_credits,
            "usd": billing.format_usd(generation.reserved_credits),
        },
    }


def _listed(generation: Generation) -> dict[str, Any]:
    fields = job_fields(generation)
    if generation.is_finished:
        fields["credits_charged"] = generation.charged_credits
    return fields


def _not_found(job_id: str) -> ApiError:
    return ApiError(
        404,
        f"No generation with id '{job_id[:64]}' was found for this API key's account.",
        code="not_found",
        param="id",
    )


async def _owned(request: ApiRequest, job_id: str) -> Generation:
    if not _JOB_ID_RE.match(job_id):
        raise _not_found(job_id)
    generation = await request.steps.run(jobs.find_job, request.api_key.account, job_id)
    if generation is None:
        raise _not_found(job_id)
    return generation


@api_endpoint("GET")
async def generation_detail(request: ApiRequest, job_id: str) -> HttpResponseBase:
    """A generation of the key's account, as a job."""
    return await job_answer(request, await _owned(request, job_id))


@api_endpoint("POST")
async def generation_cancel(request: ApiRequest, job_id: str) -> HttpResponseBase:
    """Cancel a queued or running generation (a queued one's hold is released at once); the
    job as it stands afterwards. 409 ``job_finished`` for one that finished."""
    generation = await _owned(request, job_id)
    cancelled = await request.steps.run(jobs.cancel_job, generation)
    return await job_answer(request, cancelled)


async def list_generations(request: ApiRequest) -> HttpResponse:
    """The account's jobs, newest first: ``limit`` (1 to 100, 20 by default), ``after`` (the
    last id of the previous page) and ``status``, in OpenAI's list shape. Each item is the job
    without its images (GET the job for them)."""
    limit = _limit(request.GET.get("limit"))
    status = request.GET.get("status")
    if status is not None and status not in jobs.JOB_STATUSES:
        raise invalid(
            f"Invalid value for 'status': expected one of {', '.join(jobs.JOB_STATUSES)}.",
            param="status",
        )
    after = request.GET.get("after")
    if after is not None and not _JOB_ID_RE.match(after):
        raise invalid(
            "Invalid value for 'after': no generation of this account has that id.",
            param="after",
        )
    page = await request.steps.run(
        jobs.list_jobs, request.api_key.account, limit=limit, after=after, status=status
    )
    if page is None:
        raise invalid(
            "Invalid value for 'after': no generation of this account has that id.",
            param="after",
        )
    data = [_listed(generation) for generation in page.jobs]
    return JsonResponse(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": page.has_more,
        }
    )


def _limit(value: str | None) -> int:
    if value is None:
        return jobs.LIST_LIMIT_DEFAULT
    if not value.isdigit() or not 1 <= int(value) <= jobs.LIST_LIMIT_MAX:
        raise invalid(
            f"Invalid value for 'limit': expected an integer from 1 to {jobs.LIST_LIMIT_MAX}.",
            param="limit",
        )
    return int(value)
