"""Stripe's webhook events: stored by id, then handled; each handler is safe to run again.

Exactly-once crediting does not rest on the event table alone (two deliveries of one event can
run at the same moment): each handler locks the purchase row, and every ledger line it writes has
a unique idempotency key derived from Stripe's ids, so a replay finds its work done.

An event whose handler fails is stored as ``failed`` with the error, and the endpoint answers 500
so that Stripe delivers it again; the next delivery is handled from the start.

An event whose mode is not the secret key's (a test-mode event reaching a live installation, or
the other way round: the endpoint's signing secret and STRIPE_SECRET_KEY belong to different
modes) moves no money. It is stored as ``ignored`` with the reason, one warning is logged (modes
only, never a key), and the endpoint answers 200: the event's mode never changes, so no later
delivery could be handled either, and Stripe would otherwise retry it for days. Once the keys
are put right, an operator can "Process again" in the admin.

A paid purchase is credited in its own transaction; Stripe's receipt link is fetched afterwards,
best effort (``payments.fill_missing_receipts`` fetches the ones that failed, every few minutes).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from . import payments, services, stripe_client
from .models import Purchase, StripeEvent
from .money import format_money

logger = logging.getLogger(__name__)

Status = Purchase.Status


class EventFailed(Exception):
    """Handling an event failed; it is stored as failed and Stripe should deliver it again."""


def receive(event: dict[str, Any]) -> StripeEvent:
    """Store a verified event (once per Stripe id) and handle it unless that was done before.

    Raises EventFailed when the handler failed.
    """
    row, _ = StripeEvent.objects.get_or_create(
        id=event["id"], defaults={"type": str(event.get("type", "")), "payload": event}
    )
    if row.status in (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED):
        return row
    return process(row)


def process(row: StripeEvent) -> StripeEvent:
    """Handle a stored event (again, if it failed before). Raises EventFailed."""
    handler = HANDLERS.get(row.type)
    now = timezone.now()
    done = StripeEvent.objects.filter(pk=row.pk)
    mismatch = stripe_client.mode_mismatch(row.payload)
    if mismatch:
        # Acknowledged, not failed: see the module's docstring.
        logger.warning("Stripe event %s (%s) ignored: %s", row.pk, row.type, mismatch)
        done.update(
            status=StripeEvent.Status.IGNORED,
            processed_at=now,
            error=mismatch,
            attempts=F("attempts") + 1,
        )
        row.refresh_from_db()
        return row
    if handler is None:
        done.update(status=StripeEvent.Status.IGNORED, processed_at=now, error="")
        row.refresh_from_db()
        return row
    try:
        note = handler(row.payload["data"]["object"])
    except Exception as exc:
        logger.exception("Stripe event %s (%s) failed", row.pk, row.type)
        # Unless a concurrent delivery of the same event has finished it meanwhile.
        done.exclude(status=StripeEvent.Status.PROCESSED).update(
            status=StripeEvent.Status.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            attempts=F("attempts") + 1,
        )
        raise EventFailed(f"{row.type} {row.pk}: {exc}") from exc
    done.update(
        status=StripeEvent.Status.IGNORED if note else StripeEvent.Status.PROCESSED,
        error=note or "",
        attempts=F("attempts") + 1,
        processed_at=timezone.now(),
    )
    row.refresh_from_db()
    return row


# Handlers take the event's data.object and return None when they did their work, or a note
# saying why the event does not concern this installation (it is then stored as ignored).

NOT_OURS = "No purchase of this installation matches this event."


def _locked_purchase(query: Q) -> Purchase | None:
    return Purchase.objects.select_for_update().filter(query).first()


def _purchase_id(metadata: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str((metadata or {}).get("purchase_id", "")))
    except ValueError:
        return None


def _session_purchase(session: dict[str, Any]) -> Purchase | None:
    """The purchase a Checkout Session pays for, locked; None if it is not one of ours."""
    purchase = _locked_purchase(Q(checkout_session_id=session["id"]))
    if purchase is None:
        # The webhook can beat the view's save of the session id: the metadata names it too.
        public_id = _purchase_id(session.get("metadata"))
        if public_id is None:
            return None
        purchase = _locked_purchase(Q(public_id=public_id, checkout_session_id__isnull=True))
        if purchase is None:
            return None
        purchase.checkout_session_id = session["id"]
        purchase.save(update_fields=["checkout_session_id", "updated_at"])
    if str(session.get("client_reference_id") or "") != str(purchase.user_id):
        raise ValueError(f"Session {session['id']} is not for the purchase's customer")
    return purchase


def _credit(purchase: Purchase, session: stripe_client.CheckoutSession) -> None:
    """Add a paid purchase's credits, once (the ledger key is the session's)."""
    if (session.amount_total, session.currency) != (purchase.amount_cents, purchase.currency):
        raise ValueError(
            f"Session {session.id} took {session.amount_total} {session.currency}, "
            f"the purchase is {purchase.amount_cents} {purchase.currency}"
        )
    if purchase.payment_intent_id != session.payment_intent_id:
        purchase.payment_intent_id = session.payment_intent_id
    if purchase.credited_at is None:
        services.grant(
            purchase.user,
            purchase.credits,
            kind=services.Kind.TOP_UP,
            description=f"Card payment of {format_money(purchase.amount_cents, purchase.currency)}",
            idempotency_key=f"stripe:{session.id}:credit",
            reference=f"purchase:{purchase.public_id}",
        )
        purchase.credited_at = timezone.now()
        purchase.status = Status.PAID
        purchase.failure_reason = ""
    purchase.save()


def _fill_receipt(purchase: Purchase) -> None:
    """Stripe's receipt link for the purchase's charge, for the billing history: best effort,
    once the credit is committed. A failed lookup leaves the purchase credited and its receipt
    to ``payments.fill_missing_receipts`` (a periodic task), or to a later event of the charge."""
    try:
        payments.fill_receipt(purchase)
    except (stripe_client.StripeUnavailable, stripe_client.PaymentsNotConfigured) as exc:
        logger.warning(
            "purchase %s is credited; its receipt is fetched later: %s", purchase.public_id, exc
        )


def checkout_session_completed(values: dict[str, Any]) -> str | None:
    """The customer finished Checkout: paid now (cards), or later (bank debits and the like)."""
    session = stripe_client.session_from(values)
    with transaction.atomic():
        purchase = _session_purchase(values)
        if purchase is None:
            return NOT_OURS
        if session.payment_status != "paid":
            # An asynchronous payment method: async_payment_succeeded or _failed follows.
            purchase.payment_intent_id = session.payment_intent_id
            purchase.save(update_fields=["payment_intent_id", "updated_at"])
            return None
        _credit(purchase, session)
    _fill_receipt(purchase)
    return None


def checkout_session_async_payment_succeeded(values: dict[str, Any]) -> str | None:
    session = stripe_client.session_from(values)
    with transaction.atomic():
        purchase = _session_purchase(values)
        if purchase is None:
            return NOT_OURS
        _credit(purchase, session)
    _fill_receipt(purchase)
    return None


def _mark_unpaid(values: dict[str, Any], status: str, reason: str) -> str | None:
    with transaction.atomic():
        purchase = _session_purchase(values)
        if purchase is None:
            return NOT_OURS
        # Only a purchase still waiting: an event arriving late never undoes a payment.
        if purchase.status == Status.PENDING:
            purchase.status = status
            purchase.failure_reason = reason
            purchase.save(update_fields=["status", "failure_reason", "updated_at"])
    return None


def checkout_session_async_payment_failed(values: dict[str, Any]) -> str | None:
    return _mark_unpaid(values, Status.FAILED, "The payment did not go through.")


def checkout_session_expired(values: dict[str, Any]) -> str | None:
    return _mark_unpaid(values, Status.EXPIRED, "The payment page expired before payment.")


def _reverse(purchase: Purchase, *, idempotency_key: str, what: str) -> None:
    """Take back the credits of what has been refunded and disputed so far, beyond what was
    taken back before. Proportional, rounded down; all of them when all the money went back."""
    returned_cents = min(purchase.amount_cents, purchase.refunded_cents + purchase.disputed_cents)
    target = purchase.credits * returned_cents // purchase.amount_cents
    delta = target - purchase.reversed_credits
    if delta <= 0:
        return
    services.take_back(
        purchase.user_id,
        delta,
        reference=f"purchase:{purchase.public_id}",
        idempotency_key=idempotency_key,
        description=f"{what} of {format_money(purchase.amount_cents, purchase.currency)}",
    )
    purchase.reversed_credits = target


def _credited_purchase(query: Q) -> Purchase | None:
    purchase = _locked_purchase(query)
    if purchase is not None and purchase.credited_at is None:
        # The refund or dispute overtook the payment's own event: fail, so that Stripe delivers
        # this again after the payment has been credited.
        raise ValueError(f"Purchase {purchase.public_id} has not been credited yet")
    return purchase


def charge_refunded(charge: dict[str, Any]) -> str | None:
    """A full or partial refund. ``amount_refunded`` is the running total, so an event that
    arrives late or twice asks for nothing new."""
    query = Q(charge_id=charge["id"])
    if charge.get("payment_intent"):
        query |= Q(payment_intent_id=charge["payment_intent"])
    if (public_id := _purchase_id(charge.get("metadata"))) is not None:
        query |= Q(public_id=public_id)
    with transaction.atomic():
        purchase = _credited_purchase(query)
        if purchase is None:
            return NOT_OURS
        purchase.charge_id = charge["id"]
        purchase.receipt_url = charge.get("receipt_url") or purchase.receipt_url
        refunded = min(int(charge.get("amount_refunded") or 0), purchase.amount_cents)
        if refunded > purchase.refunded_cents:
            purchase.refunded_cents = refunded
            _reverse(
                purchase,
                idempotency_key=f"stripe:{charge['id']}:refunded:{refunded}",
                what="Refund",
            )
            if purchase.status != Status.DISPUTED:
                full = refunded >= purchase.amount_cents
                purchase.status = Status.REFUNDED if full else Status.PARTIALLY_REFUNDED
        purchase.save()
    return None


def charge_dispute_created(dispute: dict[str, Any]) -> str | None:
    """A chargeback: the disputed money has left our account, so its credits go too."""
    charge = dispute.get("charge")
    charge_id = charge.get("id") if isinstance(charge, dict) else charge
    query = Q(charge_id=charge_id) if charge_id else Q(pk__in=[])
    if dispute.get("payment_intent"):
        query |= Q(payment_intent_id=dispute["payment_intent"])
    with transaction.atomic():
        purchase = _credited_purchase(query)
        if purchase is None:
            return NOT_OURS
        if purchase.disputed_cents == 0:  # Stripe allows one dispute per charge
            disputable = purchase.amount_cents - purchase.refunded_cents
            purchase.disputed_cents = min(int(dispute.get("amount") or 0), disputable)
            _reverse(purchase, idempotency_key=f"stripe:{dispute['id']}:dispute", what="Dispute")
            purchase.status = Status.DISPUTED
            purchase.charge_id = charge_id or purchase.charge_id
            purchase.save()
    return None


HANDLERS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "checkout.session.completed": checkout_session_completed,
    "checkout.session.async_payment_succeeded": checkout_session_async_payment_succeeded,
    "checkout.session.async_payment_failed": checkout_session_async_payment_failed,
    "checkout.session.expired": checkout_session_expired,
    "charge.refunded": charge_refunded,
    "charge.dispute.created": charge_dispute_created,
}
