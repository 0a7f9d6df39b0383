"""Celery tasks: thin, they call one service."""

from __future__ import annotations

from celery import shared_task

from . import auto_top_up as top_ups
from . import invoices, payments, stripe_client

# An automatic top-up whose charge could not reach Stripe is asked again after these many
# seconds, then given up (the purchase fails; automatic top-up stays on). Every attempt carries
# the purchase's idempotency key, so the card is charged at most once however many there are.
AUTO_TOP_UP_RETRY_SECONDS = (30, 120, 600, 1800)


@shared_task(name="billing.tasks.fill_missing_receipts", ignore_result=True)
def fill_missing_receipts() -> int:
    """Receipts (and the cards saved with them) and invoice links that could not be fetched
    when their purchases were credited."""
    return payments.fill_missing_receipts() + invoices.fill_missing_invoices()


@shared_task(name="billing.tasks.auto_top_up", ignore_result=True)
def auto_top_up(account_id: int) -> str:
    """Top the account up if that is still due (``billing.auto_top_up.due`` said so after a
    hold): the caller sends it after its transaction commits. Running it twice, or at once
    with itself, charges once."""
    purchase = top_ups.start(account_id)
    if purchase is None:
        return "nothing"
    try:
        return top_ups.submit(purchase.pk)
    except stripe_client.StripeUnavailable:
        submit_auto_top_up.apply_async((purchase.pk,), countdown=AUTO_TOP_UP_RETRY_SECONDS[0])
        return "retrying"


@shared_task(name="billing.tasks.submit_auto_top_up", ignore_result=True)
def submit_auto_top_up(purchase_id: int, attempt: int = 1) -> str:
    """Ask Stripe again to charge a pending automatic top-up it could not be reached for."""
    try:
        return top_ups.submit(purchase_id)
    except stripe_client.StripeUnavailable:
        if attempt >= len(AUTO_TOP_UP_RETRY_SECONDS):
            top_ups.give_up(purchase_id)
            return "given up"
        submit_auto_top_up.apply_async(
            (purchase_id, attempt + 1), countdown=AUTO_TOP_UP_RETRY_SECONDS[attempt]
        )
        return "retrying"


@shared_task(name="billing.tasks.sweep_auto_top_ups", ignore_result=True)
def sweep_auto_top_ups() -> int:
    return top_ups.sweep()
