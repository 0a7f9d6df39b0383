"""Generations as jobs: found, listed and cancelled by their owner.

Every generation is a job, whether it was asked for synchronously (the request runs it), with
``Prefer: respond-async`` (a worker runs it: ``pipeline.submit_job``) or in the playground. Its
row is the truth; a job's status is read from it (``job_status``), so a client that lost its
connection collects the same result a worker or a request settled.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import Account

from ..models import Generation, JobStatus
from ..refusals import Reason, Refusal
from .reconcile import fail_and_release

# A job's status as the API names it (OpenAI's and our webhooks' words).
QUEUED = JobStatus.QUEUED
IN_PROGRESS = JobStatus.IN_PROGRESS
COMPLETED = JobStatus.COMPLETED
FAILED = JobStatus.FAILED
CANCELLED = JobStatus.CANCELLED
JOB_STATUSES = JobStatus.ALL

# The x-request-id of the request that asked for a generation names it too: an API
# generation's id is "gen_" and its request id's hex (api/views.py).
_REQUEST_PREFIX = "req_"
_JOB_PREFIX = "gen_"

LIST_LIMIT_DEFAULT = 20
LIST_LIMIT_MAX = 100


def job_id_of(request_id: str) -> str:
    """The id of the generation a request (by its x-request-id) asks for."""
    return _JOB_PREFIX + request_id.removeprefix(_REQUEST_PREFIX)


def find_job(account: Account, job_id: str) -> Generation | None:
    """``account``'s generation by its id (or its request's x-request-id); None for anyone
    else's, so that another account's id reads exactly like an unknown one."""
    if job_id.startswith(_REQUEST_PREFIX):
        job_id = job_id_of(job_id)
    return Generation.objects.filter(account=account, public_id=job_id).first()


def _statuses(status: str) -> Q:
    """The rows whose job status is ``status`` (one of JOB_STATUSES)."""
    cancelled = Q(cancel_requested_at__isnull=False)
    return {
        QUEUED: Q(status=Generation.Status.QUEUED),
        IN_PROGRESS: Q(status=Generation.Status.RUNNING),
        COMPLETED: Q(status=Generation.Status.SUCCEEDED) & ~cancelled,
        FAILED: Q(status=Generation.Status.FAILED) & ~cancelled,
        CANCELLED: ~Q(status__in=Generation.UNSETTLED) & cancelled,
    }[status]


@dataclass(frozen=True)
class JobPage:
    jobs: list[Generation]
    has_more: bool


def list_jobs(
    account: Account,
    *,
    limit: int = LIST_LIMIT_DEFAULT,
    after: str | None = None,
    status: str | None = None,
) -> JobPage | None:
    """``account``'s jobs, newest first, ``limit`` at a time. ``after``: the id of the last job of
    the previous page (None if that id is not one of theirs). Refusals of a request for
    credits are not jobs: nothing ran."""
    rows: QuerySet[Generation] = Generation.objects.filter(account=account).exclude(
        status=Generation.Status.FAILED, http_status=402, reserved_credits=0
    )
    if status is not None:
        rows = rows.filter(_statuses(status))
    if after is not None:
        cursor = find_job(account, after)
        if cursor is None:
            return None
        # The order is (-created_at, -id): the rows after the cursor's place in it.
        rows = rows.filter(
            Q(created_at__lt=cursor.created_at) | Q(created_at=cursor.created_at, id__lt=cursor.pk)
        )
    page = list(rows.order_by("-created_at", "-id")[: limit + 1])
    return JobPage(page[:limit], has_more=len(page) > limit)


def cancel_job(generation: Generation) -> Generation:
    """Cancel ``generation`` for its owner. A queued one is settled at once: its hold released,
    nothing charged, never sent upstream. A running one is marked, and settles when the
    upstream answers, charged for what it delivered by then. Cancelling a cancelled job again
    changes nothing; a finished one cannot be cancelled (Refusal)."""
    now = timezone.now()
    marked = Generation.objects.filter(
        pk=generation.pk, status__in=Generation.UNSETTLED, cancel_requested_at__isnull=True
    ).update(cancel_requested_at=now)
    if marked:
        fail_and_release(
            generation.pk,
            [Generation.Status.QUEUED],
            now,
            message="The generation was cancelled before it started. You were not charged.",
            note="cancelled before it started, nothing charged",
            code="cancelled",
            status=409,
        )
    generation.refresh_from_db()
    if generation.cancel_requested_at is None:
        raise Refusal(
            Reason.JOB_FINISHED,
            f"The generation {generation.public_id} has already finished "
            f"({generation.job_status}); only a queued or in-progress one can be cancelled.",
            param="id",
            code="job_finished",
        )
    return generation
