"""Celery tasks: thin, they take ids (or nothing) and call one service."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="api.tasks.reconcile_stuck_generations", ignore_result=True)
def reconcile_stuck_generations() -> int:
    return services.reconcile_stuck_generations()
