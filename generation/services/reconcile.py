"""The reconciler: the Generation row, not a process, is the truth. Rows past their deadline are
failed and their holds released; lost or abandoned worker runs (the playground's, API jobs) are
sent again."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing import services as billing
from server import metrics

from .. import catalog, ratelimits
from ..models import Generation
from .announce import announce_finished
from .settle import quote_of

logger = logging.getLogger(__name__)


def reconcile_stuck_generations(now: datetime | None = None) -> int:
    """Fail and release every generation still unsettled past its deadline, and put lost or
    abandoned playground runs back on the queue. Returns how many were failed."""
    now = now or timezone.now()
    _redispatch_lost_runs(now)
    stuck = Generation.objects.filter(
        status__in=Generation.UNSETTLED, deadline_at__lt=now
    ).values_list("pk", flat=True)[:500]
    count = 0
    for pk in stuck:
        if fail_and_release(
            pk,
            list(Generation.UNSETTLED),
            now,
            message="The generation did not finish in time. You were not charged.",
            note="expired, nothing delivered",
        ):
            count += 1
    if count:
        logger.warning("reconciled %d generations stuck past their deadline", count)
    return count


def fail_and_release(
    pk: int,
    from_statuses: list[str],
    now: datetime,
    *,
    message: str,
    note: str,
    code: str = "expired",
    status: int = 503,
) -> bool:
    """Claim an unsettled row as failed and give its whole reservation back; False if another
    process settled it first."""
    with transaction.atomic():
        claimed = Generation.objects.filter(pk=pk, status__in=from_statuses).update(
            status=Generation.Status.FAILED,
            http_status=status,
            error_code=code,
            error_message=message,
            finished_at=now,
        )
        if not claimed:
            return False
        generation = Generation.objects.get(pk=pk)
        ratelimits.release(generation.account_id, generation.api_key_id, generation.public_id)
        announce_finished(generation.pk, generation.account_id)
        billing.settle(
            generation.account_id,
            quote_of(generation).settlement(delivered=[]),
            reference=generation.ledger_reference,
            description=f"{note} ({generation.public_id})",
            spend_window=generation.spend_window,
            now=now,
        )
    metrics.generation_settled(generation)
    return True


def release_work_of_closing_account(account_id: int) -> int:
    """An account is closing: every generation of it still queued or running is failed and its
    hold released at once. A queued playground run is then never sent upstream; a running one
    that delivers later finds its row settled, is charged nothing, and its files are removed
    (settle.py). Returns how many were released."""
    now = timezone.now()
    unsettled = Generation.objects.filter(
        account_id=account_id, status__in=Generation.UNSETTLED
    ).values_list("pk", flat=True)
    return sum(
        fail_and_release(
            pk,
            list(Generation.UNSETTLED),
            now,
            message="The account was closed before the generation finished. Not charged.",
            note="account closed, nothing charged",
            code="account_closed",
            status=410,
        )
        for pk in list(unsettled)
    )


def abandon_generation(generation_id: int) -> bool:
    """A web process stopping hands back a generation it could not finish in its grace
    period: failed, the reservation released, nothing charged (unless it settled meanwhile)."""
    return fail_and_release(
        generation_id,
        [Generation.Status.RUNNING],
        timezone.now(),
        message="The server restarted before the generation finished. You were not charged.",
        note="interrupted by a restart, nothing charged",
    )


def _redispatch_lost_runs(now: datetime) -> None:
    """Playground rows whose task never started (a lost message) are sent again; rows whose
    worker went silent past the upstream time budget (a killed worker) are queued again, or
    failed and refunded once they have used up their attempts."""
    from .. import tasks  # tasks imports the services

    wait = timedelta(seconds=settings.GENERATION_REDISPATCH_SECONDS)
    # The rows workers run (the playground's, and API jobs): each was dispatched once at least.
    queued_work = Generation.objects.filter(dispatched_at__isnull=False, deadline_at__gte=now)
    lost = queued_work.filter(status=Generation.Status.QUEUED, dispatched_at__lt=now - wait)
    # Silent for longer than its model's time budget: its worker is gone.
    silent = {
        m.id: timedelta(seconds=m.generation_timeout_seconds) + wait for m in catalog.all_models()
    }
    shortest = min(
        [timedelta(seconds=settings.GENERATION_TIMEOUT_SECONDS) + wait, *silent.values()]
    )
    dead = queued_work.filter(status=Generation.Status.RUNNING, started_at__lt=now - shortest)
    rows = dead.values_list("pk", "model", "started_at", "attempts", "cancel_requested_at")
    for pk, model, started_at, attempts, cancelled in rows[:500]:
        model_silent = silent.get(
            model, timedelta(seconds=settings.GENERATION_TIMEOUT_SECONDS) + wait
        )
        if started_at is not None and started_at >= now - model_silent:
            continue
        if attempts >= settings.GENERATION_MAX_ATTEMPTS or cancelled:
            fail_and_release(
                pk,
                [Generation.Status.RUNNING],
                now,
                message="The image service did not answer in time. You were not charged.",
                note="abandoned, nothing delivered",
            )
            continue
        requeued = Generation.objects.filter(
            pk=pk, status=Generation.Status.RUNNING, started_at__lt=now - model_silent
        ).update(status=Generation.Status.QUEUED, dispatched_at=now)
        if requeued:
            logger.warning("generation %s: its worker went silent; queued again", pk)
            tasks.send_generation(pk)
    for pk in lost.values_list("pk", flat=True)[:500]:
        resent = Generation.objects.filter(
            pk=pk, status=Generation.Status.QUEUED, dispatched_at__lt=now - wait
        ).update(dispatched_at=now)
        if resent:
            logger.warning("generation %s: its task never started; sent again", pk)
            tasks.send_generation(pk)
