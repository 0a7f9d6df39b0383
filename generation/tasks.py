"""Celery tasks: thin, they take ids (or nothing) and call one service.

The Generation row, not the broker, is the truth: a task that is lost, sent twice or run by a
worker that dies is made good by the reconciler, and only one run can ever settle a row.
"""

from __future__ import annotations

import logging

from celery import shared_task

from billing import tasks as billing_tasks

from . import ratelimits, services

logger = logging.getLogger(__name__)


@shared_task(name="generation.tasks.run_generation", ignore_result=True, acks_late=True)
def run_generation(generation_id: int) -> str:
    result = services.run_queued_generation(generation_id)
    if result.status == "retry":
        logger.info("generation %s: transient upstream fault, retrying", generation_id)
        send_generation(generation_id, countdown=result.retry_in_seconds)
    return result.status


def send_generation(generation_id: int, countdown: int = 0) -> None:
    """Queue a run. A failure to reach the broker is logged, not raised: the row is already
    committed and the reconciler sends it again."""
    try:
        run_generation.apply_async((generation_id,), countdown=countdown or None)
    except Exception:
        logger.exception("could not send generation %s to the broker", generation_id)


@shared_task(name="generation.tasks.reconcile_stuck_generations", ignore_result=True)
def reconcile_stuck_generations() -> int:
    return services.reconcile_stuck_generations()


@shared_task(name="generation.tasks.purge_expired_images", ignore_result=True)
def purge_expired_images() -> int:
    return services.purge_expired_images()


@shared_task(name="generation.tasks.sweep_orphan_files", ignore_result=True)
def sweep_orphan_files() -> int:
    return services.sweep_orphan_files()


@shared_task(name="generation.tasks.prune_rate_limit_counters", ignore_result=True)
def prune_rate_limit_counters() -> int:
    return ratelimits.prune_database_counters()


@shared_task(name="generation.tasks.alert_low_balance", ignore_result=True)
def alert_low_balance(account_id: int) -> bool:
    return services.send_low_balance_alert(account_id)


@shared_task(name="generation.tasks.alert_key_budget", ignore_result=True)
def alert_key_budget(window: str, percent: int) -> bool:
    return services.send_key_budget_alert(window, percent)


_ALERTS = {
    "low_balance": alert_low_balance,
    "key_budget": alert_key_budget,
    "auto_top_up": billing_tasks.auto_top_up,
}


def send_alerts(due: list[tuple[str, tuple[object, ...]]]) -> None:
    """Queue the alerts (and the automatic top-up) a hold set off. A failure to reach the
    broker is logged, not raised: the request succeeded. A low-balance alert is claimed only
    when sent, so the next hold below the line sends it; a lost top-up is started by billing's
    sweep; a lost share of a key's cap is told when the next hold crosses a higher one."""
    for name, arguments in due:
        try:
            _ALERTS[name].apply_async(arguments)
        except Exception:
            logger.exception("could not send the %s alert to the broker", name)
