"""Celery tasks: thin, they call one service."""

from __future__ import annotations

from celery import shared_task

from . import payments


@shared_task(name="billing.tasks.fill_missing_receipts", ignore_result=True)
def fill_missing_receipts() -> int:
    return payments.fill_missing_receipts()
