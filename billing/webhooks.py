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

Refunds and disputes: each handler records what Stripe reports (a refund by its id and status,
the charge's running refunded total, the dispute), then brings the credits taken back to what
the money that left amounts to (``_rebalance``): more after a refund or a dispute, fewer after
a refund failed or a dispute was won. The figure is computed from what is recorded, never added
up from events, so a late, repeated or concurrent event asks for nothing new; each ledger line is
keyed by the event that caused it.

A paid purchase is credited in its own transaction; Stripe's receipt link is fetched afterwards,
best effort (``payments.fill_missing_receipts`` fetches the ones that failed, every few minutes).

An automatic top-up (``billing.auto_top_up``) is an invoice charged to the saved card, without
a session: ``invoice.paid`` or its PaymentIntent's ``payment_intent.succeeded``, whichever comes
first, credits it (keyed by the invoice), and ``invoice.payment_failed`` or
``payment_intent.payment_failed`` is its decline. For a Checkout payment the PaymentIntent's
events only bring the card the customer saved. ``invoice.finalized`` and ``invoice.paid`` keep
the links of every payment's invoice (``billing.invoices``), in whatever order they come.

A closed account's events are stored without what names a person (``billing.redaction``): the
ones stored before are redacted when it closes, and later ones before they are stored.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Account, User

from . import auto_top_up, invoices, payments, services, stripe_client
from .models import Purchase, PurchaseKind, StripeEvent, StripeRefund
from .money import format_money
from .redaction import events_about, redact

logger = logging.getLogger(__name__)

Status = Purchase.Status


class EventFailed(Exception):
    """Handling an event failed; it is stored as failed and Stripe should deliver it again."""


def receive(event: dict[str, Any]) -> StripeEvent:
    """Store a verified event (once per Stripe id) and handle it unless that was done before.

    Raises EventFailed when the handler failed.
    """
    with transaction.atomic():
        # The owner's row is locked as account closure locks it: an event stored while the
        # account closes is either redacted by the closure or stored redacted here.
        payload = redact(event) if _owner_is_closed(event) else event
        row, _ = StripeEvent.objects.get_or_create(
            id=event["id"], defaults={"type": str(event.get("type", "")), "payload": payload}
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
        note = handler(row.payload["data"]["object"], row.pk)
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


# Handlers take the event's data.object and the event's id, and return None when they did their
# work, or a note saying why the event does not concern this installation (it is then stored as
# ignored).

NOT_OURS = "No purchase of this installation matches this event."


def _locked_purchase(query: Q) -> Purchase | None:
    return Purchase.objects.select_for_update().filter(query).first()


def _purchase_query(
    *,
    session_id: str = "",
    payment_intent_id: str = "",
    charge_id: str = "",
    invoice_id: str = "",
    metadata: Any = None,
) -> Q:
    """The purchase that any of these Stripe ids (the empty ones left out) belongs to."""
    query = Q(pk__in=[])
    if session_id:
        query |= Q(checkout_session_id=session_id)
    if payment_intent_id:
        query |= Q(payment_intent_id=payment_intent_id)
    if charge_id:
        query |= Q(charge_id=charge_id)
    if invoice_id:
        query |= Q(invoice_id=invoice_id)
    if (public_id := _purchase_id(metadata)) is not None:
        query |= Q(public_id=public_id)
    return query


def _owner_is_closed(event: dict[str, Any]) -> bool:
    """Whether the event is about a purchase of a closed account; locks its person's row until
    the caller's transaction ends."""
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return False
    # The object is a session, a PaymentIntent, a charge, a refund, a dispute or an invoice: its
    # own id is one of those, and it names the others it belongs to.
    own_id = str(obj.get("id") or "")
    query = _purchase_query(
        session_id=own_id,
        payment_intent_id=stripe_client.id_of(obj.get("payment_intent")),
        charge_id=stripe_client.id_of(obj.get("charge")),
        invoice_id=stripe_client.id_of(obj.get("invoice")),
        metadata=obj.get("metadata"),
    ) | _purchase_query(payment_intent_id=own_id, charge_id=own_id, invoice_id=own_id)
    # An organisation is not closed here; a personal account is closed with its person.
    user_id = (
        Purchase.objects.filter(query).values_list("owner__personal_owner_id", flat=True).first()
    )
    if user_id is None:
        return False
    closed_at = (
        User.objects.select_for_update()
        .filter(pk=user_id)
        .values_list("closed_at", flat=True)
        .first()
    )
    return closed_at is not None


def redact_events_of(user: User, accounts: Iterable[Account] = ()) -> int:
    """Take what names a person out of the stored events of ``user``'s purchases, and of every
    purchase of ``accounts`` (the accounts closing with them). Returns how many events were
    redacted."""
    about = events_about(
        Purchase.objects.filter(
            Q(user=user) | Q(owner__personal_owner=user) | Q(owner__in=list(accounts))
        ).values_list("checkout_session_id", "payment_intent_id", "charge_id", "public_id")
    )
    if about is None:
        return 0
    redacted = 0
    for event in StripeEvent.objects.filter(about).only("id", "payload"):
        clean = redact(event.payload)
        if clean != event.payload:
            StripeEvent.objects.filter(pk=event.pk).update(payload=clean)
            redacted += 1
    return redacted


def _owner_ids(purchase: Purchase, metadata: Any) -> set[str]:
    """How a Checkout Session of ``purchase`` may name whose it is: its account's id; or, for a
    session started before accounts owned purchases (its metadata names no account), its
    buyer's user id."""
    names = {str(purchase.owner_id)}
    legacy = isinstance(metadata, dict) and "account_id" not in metadata
    if legacy and purchase.user_id is not None:
        names.add(str(purchase.user_id))
    return names


def _names_owner(metadata: dict[str, Any], purchase: Purchase) -> bool:
    if "account_id" in metadata:
        return str(metadata["account_id"]) == str(purchase.owner_id)
    return purchase.user_id is not None and metadata.get("user_id") == str(purchase.user_id)


def _purchase_id(metadata: Any) -> uuid.UUID | None:
    if not isinstance(metadata, dict):
        return None
    try:
        return uuid.UUID(str(metadata.get("purchase_id", "")))
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
    if str(session.get("client_reference_id") or "") not in _owner_ids(
        purchase, session.get("metadata")
    ):
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
    if session.invoice_id and not purchase.invoice_id:
        purchase.invoice_id = session.invoice_id
    if purchase.credited_at is None:
        _credit_paid(
            purchase,
            description=f"Card payment of {format_money(purchase.amount_cents, purchase.currency)}",
            idempotency_key=f"stripe:{session.id}:credit",
        )
    purchase.save()


def _credit_paid(purchase: Purchase, *, description: str, idempotency_key: str) -> None:
    """With the purchase locked: add its credits (once per ``idempotency_key``, the ledger's
    guard) and mark it paid. The caller saves the purchase."""
    services.grant(
        purchase.owner,
        purchase.credits,
        kind=services.Kind.TOP_UP,
        description=description,
        idempotency_key=idempotency_key,
        reference=f"purchase:{purchase.public_id}",
    )
    purchase.credited_at = timezone.now()
    purchase.status = Status.PAID
    purchase.failure_reason = ""


def _fill_receipt(purchase: Purchase) -> None:
    """Stripe's receipt link for the purchase's charge (and the card it saved, if the customer
    asked), and its invoice's links, for the billing page: best effort, once the credit is
    committed. A failed lookup leaves the purchase credited and the rest to the periodic task
    (``payments.fill_missing_receipts``, ``invoices.fill_missing_invoices``) or a later event."""
    try:
        payments.fill_receipt(purchase)
    except (stripe_client.StripeUnavailable, stripe_client.PaymentsNotConfigured) as exc:
        logger.warning(
            "purchase %s is credited; its receipt is fetched later: %s", purchase.public_id, exc
        )
    try:
        invoices.fill_invoice(purchase)
    except (stripe_client.StripeUnavailable, stripe_client.PaymentsNotConfigured) as exc:
        logger.warning(
            "purchase %s is credited; its invoice is fetched later: %s", purchase.public_id, exc
        )


def checkout_session_completed(values: dict[str, Any], event_id: str) -> str | None:
    """The customer finished Checkout: paid now (cards), or later (bank debits and the like)."""
    session = stripe_client.session_from(values)
    with transaction.atomic():
        purchase = _session_purchase(values)
        if purchase is None:
            return NOT_OURS
        if session.payment_status != "paid":
            # An asynchronous payment method: async_payment_succeeded or _failed follows.
            purchase.payment_intent_id = session.payment_intent_id
            purchase.invoice_id = purchase.invoice_id or session.invoice_id
            purchase.save(update_fields=["payment_intent_id", "invoice_id", "updated_at"])
            return None
        _credit(purchase, session)
    _fill_receipt(purchase)
    return None


def checkout_session_async_payment_succeeded(values: dict[str, Any], event_id: str) -> str | None:
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


def checkout_session_async_payment_failed(values: dict[str, Any], event_id: str) -> str | None:
    return _mark_unpaid(values, Status.FAILED, "The payment did not go through.")


def checkout_session_expired(values: dict[str, Any], event_id: str) -> str | None:
    return _mark_unpaid(values, Status.EXPIRED, "The payment page expired before payment.")


def _refunded_cents(purchase: Purchase) -> int:
    """What has gone back to the customer, from what Stripe has reported so far.

    Two reports, each of which can only fall short of the truth (until Stripe reports more):
    the refunds known by id that have not failed, and the most the charge has shown refunded
    (``amount_refunded``) less the refunds known to have failed since. The larger is the figure.
    The second is exact if Stripe's running total keeps a failed refund in it, the first if
    Stripe takes it out (then a refund made after a failed one is known from its own refund.*
    event), so the figure is right either way and never counts a refund twice or a failed one.
    """
    live_cents, gone_cents = 0, 0
    for amount_cents, status in purchase.refunds.values_list("amount_cents", "status"):
        if status in StripeRefund.GONE:
            gone_cents += amount_cents
        else:
            live_cents += amount_cents
    reported_cents = purchase.charge_refunded_cents - gone_cents
    return min(purchase.amount_cents, max(live_cents, reported_cents, 0))


def _status(purchase: Purchase) -> str:
    if purchase.disputed_cents:
        return Status.DISPUTED
    if purchase.refunded_cents >= purchase.amount_cents:
        return Status.REFUNDED
    if purchase.refunded_cents:
        return Status.PARTIALLY_REFUNDED
    return Status.PAID


def _rebalance(purchase: Purchase, event_id: str, *, taken: str, given: str) -> None:
    """With the purchase locked, after recording what an event reported: take back, or give back,
    the credits that make those taken back so far match what has been refunded and disputed.
    Proportional, rounded down; all of them when all the money went back. ``taken`` and
    ``given`` say why, for the ledger line. The caller saves the purchase."""
    purchase.refunded_cents = _refunded_cents(purchase)
    returned_cents = min(purchase.amount_cents, purchase.refunded_cents + purchase.disputed_cents)
    target = purchase.credits * returned_cents // purchase.amount_cents
    delta = target - purchase.reversed_credits
    price = format_money(purchase.amount_cents, purchase.currency)
    reference = f"purchase:{purchase.public_id}"
    if delta > 0:
        services.take_back(
            purchase.owner_id,
            delta,
            reference=reference,
            idempotency_key=f"stripe:{event_id}:reversal",
            description=f"{taken} of {price}",
        )
    elif delta < 0:
        services.give_back(
            purchase.owner,
            -delta,
            reference=reference,
            idempotency_key=f"stripe:{event_id}:reinstated",
            description=f"Payment of {price} reinstated ({given}): {-delta} credits given back",
        )
    purchase.reversed_credits = target
    purchase.status = _status(purchase)


def _credited_purchase(query: Q) -> Purchase | None:
    purchase = _locked_purchase(query)
    if purchase is not None and purchase.credited_at is None:
        # The refund or dispute overtook the payment's own event: fail, so that Stripe delivers
        # this again after the payment has been credited.
        raise ValueError(f"Purchase {purchase.public_id} has not been credited yet")
    return purchase


def _record_refund(purchase: Purchase, refund: stripe_client.Refund) -> None:
    """Inside the caller's transaction, with the purchase locked: a refund as Stripe shows it now.
    A failed or canceled refund stays so: both are final at Stripe, so an event that shows it
    otherwise was sent before."""
    amount_cents = min(max(refund.amount, 0), purchase.amount_cents)
    row = StripeRefund.objects.filter(pk=refund.id).first()
    if row is None:
        StripeRefund.objects.create(
            id=refund.id, purchase=purchase, amount_cents=amount_cents, status=refund.status
        )
        return
    if row.purchase_id != purchase.pk:
        raise ValueError(f"Refund {refund.id} belongs to another purchase")
    if not row.gone and (row.status, row.amount_cents) != (refund.status, amount_cents):
        row.status = refund.status
        row.amount_cents = amount_cents
        row.save(update_fields=["status", "amount_cents", "updated_at"])


def charge_refunded(charge: dict[str, Any], event_id: str) -> str | None:
    """A full or partial refund. ``amount_refunded`` is the charge's running total, so an event
    that arrives late or twice asks for nothing new; refunds the charge lists are recorded."""
    query = _purchase_query(
        charge_id=charge["id"],
        payment_intent_id=stripe_client.id_of(charge.get("payment_intent")),
        metadata=charge.get("metadata"),
    )
    with transaction.atomic():
        purchase = _credited_purchase(query)
        if purchase is None:
            return NOT_OURS
        purchase.charge_id = charge["id"]
        purchase.receipt_url = charge.get("receipt_url") or purchase.receipt_url
        reported = min(int(charge.get("amount_refunded") or 0), purchase.amount_cents)
        purchase.charge_refunded_cents = max(purchase.charge_refunded_cents, reported)
        # Older API versions list the charge's refunds in the event (newer ones leave it out).
        listed = charge.get("refunds")
        items = listed.get("data") if isinstance(listed, dict) else None
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and item.get("id"):
                _record_refund(purchase, stripe_client.refund_from(item))
        _rebalance(purchase, event_id, taken="Refund", given="a refund failed")
        purchase.save()
    return None


def refund_changed(values: dict[str, Any], event_id: str) -> str | None:
    """A refund was made, or changed status (refund.created, refund.updated, refund.failed and
    the older charge.refund.updated). A refund that failed or was canceled gives back the credits
    its recording took, once: it is recorded as gone for good, and the credits follow the record.
    """
    refund = stripe_client.refund_from(values)
    query = _purchase_query(charge_id=refund.charge_id, payment_intent_id=refund.payment_intent_id)
    with transaction.atomic():
        purchase = _credited_purchase(query)
        if purchase is None:
            return NOT_OURS
        purchase.charge_id = purchase.charge_id or refund.charge_id
        _record_refund(purchase, refund)
        _rebalance(purchase, event_id, taken="Refund", given="a refund failed")
        purchase.save()
    return None


def _dispute_query(dispute: dict[str, Any]) -> Q:
    return _purchase_query(
        charge_id=stripe_client.id_of(dispute.get("charge")),
        payment_intent_id=stripe_client.id_of(dispute.get("payment_intent")),
    )


def charge_dispute_created(dispute: dict[str, Any], event_id: str) -> str | None:
    """A chargeback: the disputed money has left our account, so its credits go too."""
    with transaction.atomic():
        purchase = _credited_purchase(_dispute_query(dispute))
        if purchase is None:
            return NOT_OURS
        # Stripe allows one dispute per charge. A dispute seen already (its closure may have
        # come first, when it was won) takes nothing more.
        if purchase.dispute_id or purchase.disputed_cents:
            return None
        disputable = max(purchase.amount_cents - purchase.refunded_cents, 0)
        purchase.dispute_id = dispute["id"]
        purchase.disputed_cents = min(int(dispute.get("amount") or 0), disputable)
        purchase.charge_id = stripe_client.id_of(dispute.get("charge")) or purchase.charge_id
        _rebalance(purchase, event_id, taken="Dispute", given="a refund failed")
        purchase.save()
    return None


def charge_dispute_closed(dispute: dict[str, Any], event_id: str) -> str | None:
    """A dispute decided. Won: the money comes back to us, and so do the credits its creation
    took back. Lost (or any other outcome): they stay taken back.

    This is the one event that gives a dispute's credits back. charge.dispute.funds_reinstated
    also comes with a won dispute, and is not handled (stored and acknowledged like any event
    of a type we do not handle), so the credits can never come back twice.
    """
    with transaction.atomic():
        purchase = _credited_purchase(_dispute_query(dispute))
        if purchase is None:
            return NOT_OURS
        if dispute.get("status") != "won":
            return None
        if purchase.dispute_id not in ("", dispute["id"]):
            return f"Dispute {dispute['id']} is not the one this purchase's credits went for."
        if not purchase.dispute_id and not purchase.disputed_cents:
            # Won before its charge.dispute.created was handled: remembered, so that event
            # takes nothing when it comes.
            purchase.dispute_id = dispute["id"]
            purchase.save(update_fields=["dispute_id", "updated_at"])
            return None
        purchase.dispute_id = dispute["id"]
        purchase.disputed_cents = 0
        _rebalance(purchase, event_id, taken="Dispute", given="the dispute was won")
        purchase.save()
    return None


def _intent_purchase(
    intent: stripe_client.PaymentIntent, values: dict[str, Any]
) -> Purchase | None:
    """The purchase a PaymentIntent pays for, locked; None if it is not one of ours.

    An automatic top-up's PaymentIntent is its invoice's: Stripe copies none of the invoice's
    metadata onto it, so it is known by the id kept on the purchase when the invoice was paid
    (or by the invoice it names, in API versions that name it)."""
    purchase = _locked_purchase(
        _purchase_query(
            payment_intent_id=intent.id,
            invoice_id=stripe_client.id_of(values.get("invoice")),
            metadata=intent.metadata,
        )
    )
    if purchase is None:
        return None
    invoiced = purchase.kind == PurchaseKind.AUTO and bool(purchase.invoice_id)
    if not (invoiced and not intent.metadata) and not _names_owner(intent.metadata, purchase):
        raise ValueError(f"PaymentIntent {intent.id} is not for the purchase's customer")
    if purchase.payment_intent_id not in ("", intent.id):
        raise ValueError(f"PaymentIntent {intent.id} is not the one of its purchase")
    return purchase


def _credit_auto(purchase: Purchase, *, amount: int, currency: str, paid_by: str) -> None:
    """With the purchase locked: credit an automatic top-up Stripe says is paid, once, whatever
    its status said meanwhile (money taken is always credited). The ledger key is the
    invoice's (the PaymentIntent's for one charged before invoices), so ``invoice.paid`` and
    ``payment_intent.succeeded``, whichever comes first, credit it and the other finds it done.
    The caller saves the purchase."""
    if (amount, currency) != (purchase.amount_cents, purchase.currency):
        raise ValueError(
            f"{paid_by} took {amount} {currency}, "
            f"the purchase is {purchase.amount_cents} {purchase.currency}"
        )
    if purchase.credited_at is not None:
        return
    price = format_money(purchase.amount_cents, purchase.currency)
    _credit_paid(
        purchase,
        description=f"Automatic top-up of {price}",
        idempotency_key=f"stripe:{purchase.invoice_id or purchase.payment_intent_id}:credit",
    )


def payment_intent_succeeded(values: dict[str, Any], event_id: str) -> str | None:
    """A PaymentIntent paid. An automatic top-up (its invoice's PaymentIntent) is credited here
    or by ``invoice.paid``, once. For a Checkout payment (credited by its session's event) it
    brings the card the customer saved for automatic top-ups, if they asked."""
    intent = stripe_client.intent_from(values)
    with transaction.atomic():
        purchase = _intent_purchase(intent, values)
        if purchase is None:
            return NOT_OURS
        if purchase.kind == PurchaseKind.AUTO:
            purchase.payment_intent_id = intent.id
            _credit_auto(
                purchase,
                amount=intent.amount,
                currency=intent.currency,
                paid_by=f"PaymentIntent {intent.id}",
            )
            purchase.save()
    if purchase.kind == PurchaseKind.AUTO:
        _fill_receipt(purchase)
    else:
        auto_top_up.remember_card(purchase, intent)
    return None


def payment_intent_payment_failed(values: dict[str, Any], event_id: str) -> str | None:
    """A payment attempt failed. For an automatic top-up this is the bank's decline (as the
    API's answer said, or will say): the purchase fails and automatic top-up stops, once. A
    Checkout payment's failed attempt changes nothing (the customer may try another card on the
    page; the session's own events tell how it ends)."""
    intent = stripe_client.intent_from(values)
    with transaction.atomic():
        purchase = _intent_purchase(intent, values)
        if purchase is None:
            return NOT_OURS
        if purchase.kind != PurchaseKind.AUTO:
            return None
        if purchase.credited_at is not None:
            return f"Purchase {purchase.public_id} was paid already."
        auto_top_up.declined_by_event(intent, purchase)
    return None


def _invoice_purchase(invoice: stripe_client.Invoice) -> tuple[Purchase | None, str]:
    """The purchase an invoice is for, locked (None if it is not one of ours), or a note saying
    why the event does nothing."""
    purchase = _locked_purchase(_purchase_query(invoice_id=invoice.id, metadata=invoice.metadata))
    if purchase is None:
        return None, NOT_OURS
    if not _names_owner(invoice.metadata, purchase):
        raise ValueError(f"Invoice {invoice.id} is not for the purchase's customer")
    if purchase.invoice_id not in ("", invoice.id):
        return None, f"Invoice {invoice.id} is not the one of purchase {purchase.public_id}."
    return purchase, ""


def invoice_changed(values: dict[str, Any], event_id: str) -> str | None:
    """A payment's invoice was finalized or paid: keep its number and links (its id, if the
    session's own event has not come yet). Any order, any number of times. An automatic
    top-up's invoice paid is its payment: credited here or by ``payment_intent.succeeded``,
    whichever comes first."""
    invoice = stripe_client.invoice_from(values)
    with transaction.atomic():
        purchase, note = _invoice_purchase(invoice)
        if purchase is None:
            return note
        if purchase.kind == PurchaseKind.AUTO and invoice.status == "paid":
            purchase.invoice_id = invoice.id
            purchase.payment_intent_id = purchase.payment_intent_id or invoice.payment_intent_id
            _credit_auto(
                purchase,
                amount=invoice.amount_paid,
                currency=invoice.currency,
                paid_by=f"Invoice {invoice.id}",
            )
            purchase.save()
        invoices.record(purchase, invoice)
    if purchase.kind == PurchaseKind.AUTO and invoice.status == "paid":
        _fill_receipt(purchase)
    return None


def invoice_payment_failed(values: dict[str, Any], event_id: str) -> str | None:
    """An automatic top-up's invoice could not be charged: the bank's decline (as the API's
    answer said, or will say), so the purchase fails and automatic top-up stops, once. The
    invoice says not which card or why (its PaymentIntent's own event does): the card saved
    when the top-up began is the one it was charged to."""
    invoice = stripe_client.invoice_from(values)
    with transaction.atomic():
        purchase, note = _invoice_purchase(invoice)
        if purchase is None:
            return note
        if purchase.kind != PurchaseKind.AUTO:
            return None
        if purchase.credited_at is not None:
            return f"Purchase {purchase.public_id} was paid already."
        auto_top_up.declined_by_invoice(purchase, payment_intent_id=invoice.payment_intent_id)
    return None


Handler = Callable[[dict[str, Any], str], "str | None"]

HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": checkout_session_completed,
    "checkout.session.async_payment_succeeded": checkout_session_async_payment_succeeded,
    "checkout.session.async_payment_failed": checkout_session_async_payment_failed,
    "checkout.session.expired": checkout_session_expired,
    "charge.refunded": charge_refunded,
    "refund.created": refund_changed,
    "refund.updated": refund_changed,
    "refund.failed": refund_changed,
    "charge.refund.updated": refund_changed,
    "charge.dispute.created": charge_dispute_created,
    "charge.dispute.closed": charge_dispute_closed,
    "payment_intent.succeeded": payment_intent_succeeded,
    "payment_intent.payment_failed": payment_intent_payment_failed,
    "invoice.finalized": invoice_changed,
    "invoice.paid": invoice_changed,
    "invoice.payment_failed": invoice_payment_failed,
}
