"""Celery tasks: thin, they take ids and call one service.

The Message row, not the broker, is the truth: a task lost, sent twice or run by a worker that
dies is made good by the sweep, and only the claim that wins may send an attempt.
"""

from __future__ import annotations

import logging

from celery import shared_task

from . import services

logger = logging.getLogger(__name__)


@shared_task(name="webhooks.tasks.deliver", ignore_result=True, acks_late=True)
def deliver(message_id: int) -> str:
    return services.deliver(message_id)


def send_deliveries(message_ids: list[int], countdown: int = 0) -> None:
    """Queue an attempt for each message. A failure to reach the broker is logged, not raised:
    the rows are committed and the sweep sends them."""
    for message_id in message_ids:
        try:
            deliver.apply_async((message_id,), countdown=countdown or None)
        except Exception:
            logger.exception("could not send webhook message %s to the broker", message_id)
            return


@shared_task(name="webhooks.tasks.sweep", ignore_result=True)
def sweep() -> int:
    return services.sweep()
