"""Automatic top-up: when a spend takes the balance below the customer's threshold, their saved
card is charged the amount they chose, while they are away (off-session).

The card is saved in a Checkout payment the customer makes with "save this card for automatic
top-ups" ticked (``setup_future_usage=off_session``: ``remember_card``). After every hold the
caller asks ``due``; when it says so, the ``billing.tasks.auto_top_up`` task runs ``start``
(records one pending purchase of kind ``auto``: the database allows one in flight per account)
and ``submit``: an invoice to the account's Customer (so it carries the company name, address
and tax id the customer entered, like a Checkout payment's), its one line, then finalized and
paid off-session with the saved card. Each call's idempotency key is made from the purchase,
and the invoice's id is kept as soon as it exists, so asking again never makes a second invoice
or charges twice. Credits are added only by the webhook (``invoice.paid`` or its PaymentIntent's
``payment_intent.succeeded``, whichever comes first), exactly like a Checkout payment, once.

A decline (the bank said no, the card expired, or the bank wants the cardholder to authenticate,
which they cannot do while away) fails the purchase, stops automatic top-up, forgets the card,
and emails the customer what happened and where to fix it. It never retries into that card: only
the customer turns it on again, by saving a card in a later payment (or turning it on with a
card saved since). Whichever of the API's answer, ``invoice.payment_failed`` and
``payment_intent.payment_failed`` comes first does this; the others find it done.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.adapter import configured_site
from accounts.models import Account, User

from . import invoices, stripe_client
from .models import BillingProfile, CreditAccount, LedgerEntry, Purchase, PurchaseKind
from .money import format_credits, format_money
from .services import credits_for_cents

logger = logging.getLogger(__name__)

Status = Purchase.Status

# The highest threshold the settings form takes (credits).
MAX_THRESHOLD_CREDITS = 10_000_000

# What the customer reads (on the billing page and in the email) for Stripe's decline codes;
# any other code gets Stripe's own message, which Stripe writes for the cardholder.
DECLINE_REASONS = {
    "authentication_required": (
        "Your bank wants you to confirm each payment, which it cannot ask for while you are away."
    ),
    "expired_card": "Your card has expired.",
    "insufficient_funds": "Your card has insufficient funds.",
    "lost_card": "Your bank declined the card (reported lost).",
    "stolen_card": "Your bank declined the card (reported stolen).",
    "card_declined": "Your bank declined the payment.",
    "card_unusable": "The saved card can no longer be charged (it was removed at Stripe).",
    "generic_decline": "Your bank declined the payment.",
    "do_not_honor": "Your bank declined the payment.",
}


def decline_reason(code: str, message: str = "") -> str:
    reason = DECLINE_REASONS.get(code) or message or "Your bank declined the payment."
    return reason[:255]


# --- The check after a hold ----------------------------------------------------------------------


def due(account: CreditAccount, *, before_credits: int, after_credits: int) -> bool:
    """Whether the spend that took ``account``'s balance from ``before_credits`` to
    ``after_credits`` should start an automatic top-up: it is on (armed, with card payments
    set up) and the spend crossed the threshold downward (before >= threshold > after), and no
    automatic top-up of the account is in flight.

    Writes nothing. Reads the account's fields as given, and the database only when the spend
    crossed the threshold (rarely), to look for a top-up in flight (one indexed lookup).
    """
    if not crossed(account, before_credits=before_credits, after_credits=after_credits):
        return False
    return not _in_flight(account.owner_id)


def crossed(account: CreditAccount, *, before_credits: int, after_credits: int) -> bool:
    """``due`` without its look for a top-up in flight: no query, so the generation hot path
    asks it on its event loop after every hold. The task finds one in flight itself (``start``:
    the database allows one pending automatic top-up per account) and then does nothing."""
    threshold = account.auto_top_up_threshold_credits
    if not account.auto_top_up_enabled or threshold is None:
        return False
    if not before_credits >= threshold > after_credits:
        return False
    return stripe_client.is_configured()


def _in_flight(owner_id: int) -> bool:
    return Purchase.objects.filter(
        owner_id=owner_id, kind=PurchaseKind.AUTO, status=Status.PENDING
    ).exists()


# --- The customer's settings --------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    """What the billing page says about automatic top-up."""

    enabled: bool
    threshold_credits: int | None
    amount_cents: int | None
    card: str  # "Visa ending 4242", "a saved card", or "" when no card is saved
    stopped_at: datetime | None
    stop_reason: str

    @property
    def amount(self) -> str:
        return format_money(self.amount_cents or 0, settings.STRIPE_CURRENCY)

    @property
    def amount_credits(self) -> int:
        return credits_for_cents(self.amount_cents or 0)


def state_of(owner: Account) -> State:
    account = CreditAccount.objects.filter(owner=owner).first()
    if account is None:
        return State(False, None, None, "", None, "")
    card = ""
    if account.auto_top_up_payment_method_id:
        card = account.auto_top_up_card or "a saved card"
    return State(
        enabled=account.auto_top_up_enabled,
        threshold_credits=account.auto_top_up_threshold_credits,
        amount_cents=account.auto_top_up_amount_cents,
        card=card,
        stopped_at=account.auto_top_up_stopped_at,
        stop_reason=account.auto_top_up_stop_reason,
    )


def _account(owner: Account) -> CreditAccount:
    return CreditAccount.objects.of(owner.pk)


def configure(owner: Account, *, threshold_credits: int, amount_cents: int) -> State:
    """Set the threshold and the amount, and turn automatic top-up on when a card is saved (the
    customer's own action, so a stop after a decline is cleared). Without a card they wait for
    one: the next payment made with "save this card" ticked turns it on."""
    if not 0 < threshold_credits <= MAX_THRESHOLD_CREDITS:
        raise ValueError(f"{threshold_credits} credits is outside the allowed thresholds")
    if not settings.STRIPE_MIN_CENTS <= amount_cents <= settings.STRIPE_MAX_CENTS:
        raise ValueError(f"{amount_cents} cents is outside the allowed amounts")
    account = _account(owner)
    with transaction.atomic():
        locked = CreditAccount.objects.select_for_update().get(pk=account.pk)
        locked.auto_top_up_threshold_credits = threshold_credits
        locked.auto_top_up_amount_cents = amount_cents
        if locked.auto_top_up_payment_method_id:
            locked.auto_top_up_enabled = True
            locked.auto_top_up_stopped_at = None
            locked.auto_top_up_stop_reason = ""
        locked.save(
            update_fields=[
                "auto_top_up_threshold_credits",
                "auto_top_up_amount_cents",
                "auto_top_up_enabled",
                "auto_top_up_stopped_at",
                "auto_top_up_stop_reason",
                "updated_at",
            ]
        )
    return state_of(owner)


def turn_off(owner: Account) -> None:
    """Stop automatic top-up, keeping the card (turning it on again takes it). A card saved by
    a payment started before now is not taken (a late event must not turn it back on)."""
    CreditAccount.objects.filter(owner=owner).update(
        auto_top_up_enabled=False, auto_top_up_card_since=timezone.now(), updated_at=timezone.now()
    )


def remove_card(owner: Account) -> None:
    """Forget the saved card (and take it off the Customer at Stripe, best effort): automatic
    top-up stops until the customer saves a card again."""
    account = CreditAccount.objects.filter(owner=owner).first()
    if account is None or not account.auto_top_up_payment_method_id:
        return
    payment_method_id = account.auto_top_up_payment_method_id
    _forget_card(account.pk, payment_method_id)
    try:
        stripe_client.detach_payment_method(payment_method_id)
    except (stripe_client.StripeUnavailable, stripe_client.PaymentsNotConfigured) as exc:
        # Forgotten here, which is what keeps it from being charged.
        logger.warning("card of account %s forgotten, not detached at Stripe: %s", account.pk, exc)


def _forget_card(account_id: int, payment_method_id: str, **stop: object) -> int:
    """Forget this card if it is still the saved one, and turn automatic top-up off; ``stop``
    records why (a decline). Returns 1 when it was the saved card, else 0."""
    now = timezone.now()
    return CreditAccount.objects.filter(
        pk=account_id, auto_top_up_payment_method_id=payment_method_id
    ).update(
        auto_top_up_enabled=False,
        auto_top_up_payment_method_id="",
        auto_top_up_card="",
        auto_top_up_card_saved_by=None,
        auto_top_up_card_since=now,
        updated_at=now,
        **stop,
    )


def saved_by(owner: Account, user: User) -> bool:
    """Whether ``owner``'s automatic top-up card is one ``user`` saved with their payment."""
    return CreditAccount.objects.filter(
        owner=owner, auto_top_up_card_saved_by=user, auto_top_up_payment_method_id__gt=""
    ).exists()


def remember_card(purchase: Purchase, intent: stripe_client.PaymentIntent, card: str = "") -> bool:
    """Keep the card a Checkout payment saved for automatic top-ups (the customer ticked the
    box, so ``setup_future_usage`` is off_session), and turn automatic top-up on if its
    threshold and amount are set. From ``payment_intent.succeeded`` or from looking the payment
    up after it was credited: whichever comes first, the other only adds the card's name.

    A payment started before the card was last forgotten or turned off is not taken: a late or
    repeated event of an old payment never brings back a card that was declined. True when the
    card was taken."""
    if purchase.kind != PurchaseKind.CHECKOUT or not purchase.save_card:
        return False
    if intent.status != "succeeded" or intent.setup_future_usage != "off_session":
        return False
    if not intent.payment_method_id:
        return False
    customer_id = (
        BillingProfile.objects.filter(account__owner_id=purchase.owner_id)
        .values_list("stripe_customer_id", flat=True)
        .first()
    )
    if not customer_id or intent.customer_id != customer_id:
        logger.warning("purchase %s: its card is not on the account's Customer", purchase.public_id)
        return False
    with transaction.atomic():
        account = CreditAccount.objects.select_for_update().get(owner_id=purchase.owner_id)
        if account.auto_top_up_payment_method_id == intent.payment_method_id:
            if card and not account.auto_top_up_card:
                account.auto_top_up_card = card
                account.save(update_fields=["auto_top_up_card", "updated_at"])
            return False
        since = account.auto_top_up_card_since
        if since is not None and purchase.created_at <= since:
            return False
        account.auto_top_up_payment_method_id = intent.payment_method_id
        account.auto_top_up_card = card
        account.auto_top_up_card_saved_by_id = purchase.user_id
        account.auto_top_up_card_since = purchase.created_at
        account.auto_top_up_stopped_at = None
        account.auto_top_up_stop_reason = ""
        account.auto_top_up_enabled = bool(
            account.auto_top_up_threshold_credits and account.auto_top_up_amount_cents
        )
        account.save()
    return True


# --- Charging ------------------------------------------------------------------------------------


def _charged_this_crossing(account: CreditAccount) -> bool:
    """Whether an automatic top-up was started since the balance was last at or above the
    threshold: then this crossing has had its top-up (the task ran again), and another one
    waits for the balance to come back up and cross again.

    From the ledger, the truth: its latest line leaving the balance at or above the threshold.
    A release line is left out, as a settlement's charge line always follows it in the same
    transaction (its balance is no balance anyone saw)."""
    threshold = account.auto_top_up_threshold_credits or 0
    last_above = (
        LedgerEntry.objects.filter(account_id=account.pk, balance_after_credits__gte=threshold)
        .exclude(kind=LedgerEntry.Kind.RELEASE)
        .order_by("-created_at", "-id")
        .values_list("created_at", flat=True)
        .first()
    )
    started = Purchase.objects.filter(owner_id=account.owner_id, kind=PurchaseKind.AUTO)
    if last_above is not None:
        started = started.filter(created_at__gte=last_above)
    return started.exists()


def start(account_id: int) -> Purchase | None:
    """Record the pending purchase of an automatic top-up, if one is due now: it is on, the
    balance is still below the threshold, none is in flight, and none was started since the
    balance last crossed. None otherwise (a concurrent or repeated task: the account row lock
    and the one-pending-per-account constraint make one of them the one)."""
    if not stripe_client.is_configured():
        return None
    with transaction.atomic():
        account = (
            # Only the credit account's row is locked (the person of a personal account is read
            # along, through a join PostgreSQL cannot lock on its nullable side).
            CreditAccount.objects.select_for_update(of=("self",))
            .select_related("owner__personal_owner")
            .filter(pk=account_id)
            .first()
        )
        if account is None or not account.auto_top_up_enabled:
            return None
        threshold = account.auto_top_up_threshold_credits or 0
        amount_cents = account.auto_top_up_amount_cents or 0
        if account.owner.closed or account.balance_credits >= threshold:
            return None
        if _in_flight(account.owner_id) or _charged_this_crossing(account):
            return None
        try:
            with transaction.atomic():
                return Purchase.objects.create(
                    owner_id=account.owner_id,
                    kind=PurchaseKind.AUTO,
                    amount_cents=amount_cents,
                    currency=settings.STRIPE_CURRENCY,
                    credits=credits_for_cents(amount_cents),
                )
        except IntegrityError:
            return None  # another task's purchase is in flight


def submit(purchase_id: int) -> str:
    """Charge the saved card for a pending automatic top-up, through its invoice; says what
    happened ("charged", "declined", "nothing": not pending, or charged already). Credits
    nothing: the webhook does.

    Raises stripe_client.StripeUnavailable when Stripe could not be reached: the outcome is
    unknown, the purchase stays pending, and submitting it again (the task retries, the sweep)
    continues with the invoice kept, asking Stripe with the same idempotency keys, so there is
    one invoice and the card is charged at most once."""
    purchase = Purchase.objects.get(pk=purchase_id)
    if purchase.kind != PurchaseKind.AUTO or purchase.status != Status.PENDING:
        return "nothing"
    if purchase.payment_intent_id:
        return "nothing"
    account = CreditAccount.objects.get(owner_id=purchase.owner_id)
    customer_id = (
        BillingProfile.objects.filter(account=account)
        .values_list("stripe_customer_id", flat=True)
        .first()
    )
    payment_method_id = account.auto_top_up_payment_method_id
    if not account.auto_top_up_enabled or not payment_method_id or not customer_id:
        # Turned off, or the card removed, since the purchase was recorded.
        _fail(purchase, "Automatic top-up was turned off before the card was charged.")
        return "nothing"
    price = format_money(purchase.amount_cents, purchase.currency)
    description = f"Automatic top-up: {format_credits(purchase.credits)} credits ({price})"
    metadata = {
        "purchase_id": str(purchase.public_id),
        "account_id": str(purchase.owner_id),
        "credits": str(purchase.credits),
        "kind": PurchaseKind.AUTO,
    }
    # One key per purchase; each call adds its own suffix (stripe_client).
    public_id = purchase.public_id
    key = f"auto-top-up-{public_id}"
    try:
        invoice_id = purchase.invoice_id
        if not invoice_id:
            invoice_id = stripe_client.create_invoice(
                currency=purchase.currency,
                customer_id=customer_id,
                description=description,
                footer=f"{settings.SITE_NAME} ({settings.SITE_URL}). Purchase {public_id}.",
                metadata=metadata,
                idempotency_key=key,
            ).id
            # Kept at once: a resend continues with this invoice (its keys would find it anyway).
            Purchase.objects.filter(pk=purchase.pk, invoice_id="").update(
                invoice_id=invoice_id, updated_at=timezone.now()
            )
        stripe_client.add_invoice_line(
            invoice_id,
            amount_cents=purchase.amount_cents,
            currency=purchase.currency,
            customer_id=customer_id,
            description=description,
            metadata=metadata,
            idempotency_key=key,
        )
        invoice = stripe_client.pay_invoice(
            invoice_id, payment_method_id=payment_method_id, idempotency_key=key
        )
    except stripe_client.CardDeclined as exc:
        logger.info("automatic top-up %s declined: %s", purchase.public_id, exc.code)
        declined(
            purchase,
            payment_method_id=payment_method_id,
            reason=decline_reason(exc.decline_code or exc.code, exc.message),
            payment_intent_id=exc.payment_intent_id,
        )
        _void(purchase, key)
        return "declined"
    purchase.refresh_from_db()
    if invoice.payment_intent_id:
        Purchase.objects.filter(pk=purchase.pk, payment_intent_id="").update(
            payment_intent_id=invoice.payment_intent_id, updated_at=timezone.now()
        )
    # Its number and links, for the billing page's "Download invoice".
    invoices.record(purchase, invoice)
    if invoice.status == "paid":
        return "charged"
    # Not paid and no error: the bank wants the cardholder (requires_action), which an
    # off-session payment cannot give it. A decline like any other.
    declined(
        purchase,
        payment_method_id=payment_method_id,
        reason=decline_reason("authentication_required"),
        payment_intent_id=invoice.payment_intent_id,
    )
    _void(purchase, key)
    return "declined"


def _void(purchase: Purchase, idempotency_key: str) -> None:
    """Void the invoice of a declined top-up (best effort): it is never retried, so it must not
    stand at Stripe as an amount the customer owes. A draft (declined before it was finalized)
    is left as it is; Stripe never sends or charges a draft."""
    invoice_id = Purchase.objects.values_list("invoice_id", flat=True).get(pk=purchase.pk)
    if not invoice_id:
        return
    try:
        stripe_client.void_invoice(invoice_id, idempotency_key=idempotency_key)
    except stripe_client.StripeUnavailable as exc:
        logger.warning("automatic top-up %s: invoice not voided: %s", purchase.public_id, exc)


def _fail(purchase: Purchase, reason: str) -> int:
    return Purchase.objects.filter(pk=purchase.pk, status=Status.PENDING).update(
        status=Status.FAILED, failure_reason=reason[:255], updated_at=timezone.now()
    )


# A pending automatic top-up not yet charged this long after it was recorded was lost
# (its worker died, its retry was lost with the broker): the sweep sends it again, with its
# idempotency key. Past the give-up age (beyond the task's own retries) it fails.
STALLED_SECONDS = 300
GIVE_UP_SECONDS = 3600
# Accounts the sweep looks at per run (it runs every few minutes).
SWEEP_BATCH = 100


def sweep(now: datetime | None = None) -> int:
    """What the tasks may have missed, every few minutes (``billing.tasks.sweep_auto_top_ups``):
    pending top-ups that never reached Stripe are sent again (or failed once too old), and an
    account that is armed and below its threshold with no top-up this crossing (the broker was
    down when the hold crossed it, or it was turned on below the line) gets one. Every charge
    keeps its purchase's idempotency key, and ``start`` allows one per crossing. Returns how
    many purchases it sent to Stripe."""
    now = now or timezone.now()
    sent = 0
    stalled = Purchase.objects.filter(
        kind=PurchaseKind.AUTO,
        status=Status.PENDING,
        payment_intent_id="",
        created_at__lt=now - timedelta(seconds=STALLED_SECONDS),
    ).values_list("pk", "created_at")[:SWEEP_BATCH]
    for purchase_id, created_at in stalled:
        if created_at < now - timedelta(seconds=GIVE_UP_SECONDS):
            give_up(purchase_id)
        else:
            sent += _submit_quietly(purchase_id)
    below = CreditAccount.objects.filter(
        auto_top_up_enabled=True,
        auto_top_up_threshold_credits__isnull=False,
        balance_credits__lt=F("auto_top_up_threshold_credits"),
    ).values_list("pk", flat=True)[:SWEEP_BATCH]
    for account_id in below:
        purchase = start(account_id)
        if purchase is not None:
            sent += _submit_quietly(purchase.pk)
    return sent


def _submit_quietly(purchase_id: int) -> int:
    try:
        submit(purchase_id)
    except stripe_client.StripeUnavailable as exc:
        # Still pending: the next sweep asks again, with the same idempotency key.
        logger.warning("automatic top-up %s: Stripe unavailable: %s", purchase_id, exc)
    return 1


def give_up(purchase_id: int) -> None:
    """Stripe could not be reached for a pending automatic top-up, however often it was asked:
    it fails (no card was declined, so automatic top-up stays on). If Stripe did charge the card
    after all, ``payment_intent.succeeded`` still credits it."""
    purchase = Purchase.objects.get(pk=purchase_id)
    if purchase.kind == PurchaseKind.AUTO:
        _fail(purchase, "Stripe could not be reached, so the card was not charged.")


def declined(
    purchase: Purchase, *, payment_method_id: str, reason: str, payment_intent_id: str = ""
) -> bool:
    """The bank declined an automatic top-up: the purchase fails, automatic top-up stops and
    forgets the card, and (once) the customer is emailed. True when this call stopped it."""
    now = timezone.now()
    with transaction.atomic():
        if payment_intent_id:
            Purchase.objects.filter(pk=purchase.pk, payment_intent_id="").update(
                payment_intent_id=payment_intent_id
            )
        _fail(purchase, reason)
        account_id, card = CreditAccount.objects.values_list("pk", "auto_top_up_card").get(
            owner_id=purchase.owner_id
        )
        stopped = _forget_card(
            account_id,
            payment_method_id,
            auto_top_up_stopped_at=now,
            auto_top_up_stop_reason=reason,
        )
        if stopped:
            transaction.on_commit(lambda: _email_stopped(purchase, reason=reason, card=card))
    return bool(stopped)


def billing_page_url() -> str:
    return f"{settings.SITE_URL}{reverse('billing:ledger')}#auto-top-up"


def _email_stopped(purchase: Purchase, *, reason: str, card: str) -> None:
    """Tell the customer their automatic top-up stopped, why, and where to turn it on again."""
    owner = Account.objects.get(pk=purchase.owner_id)
    threshold = (
        CreditAccount.objects.filter(owner=owner)
        .values_list("auto_top_up_threshold_credits", flat=True)
        .first()
    )
    context = {
        "current_site": configured_site(),
        "site_url": settings.SITE_URL,
        "support_email": settings.SUPPORT_EMAIL,
        "price": format_money(purchase.amount_cents, purchase.currency),
        "credits": format_credits(purchase.credits),
        "threshold": format_credits(threshold or 0),
        "card": card or "your saved card",
        "reason": reason,
        "billing_url": billing_page_url(),
    }
    prefix = "billing/email/auto_top_up_stopped"
    subject = render_to_string(f"{prefix}_subject.txt", context).strip()
    message = EmailMultiAlternatives(
        subject=f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{subject}",
        body=render_to_string(f"{prefix}_message.txt", context),
        to=owner.contact_emails(),
    )
    message.attach_alternative(render_to_string(f"{prefix}_message.html", context), "text/html")
    try:
        message.send()
    except Exception:
        logger.exception("could not email account %s that automatic top-up stopped", owner.pk)


def declined_by_event(intent: stripe_client.PaymentIntent, purchase: Purchase) -> bool:
    """``payment_intent.payment_failed`` for an automatic top-up: as a decline answered by the
    API (whichever comes first does it). The card is the one the attempt used."""
    payment_method_id = intent.error_payment_method_id or intent.payment_method_id
    return declined(
        purchase,
        payment_method_id=payment_method_id,
        reason=decline_reason(intent.error_code, intent.error_message),
        payment_intent_id=intent.id,
    )


def declined_by_invoice(purchase: Purchase, *, payment_intent_id: str) -> bool:
    """``invoice.payment_failed`` for an automatic top-up: as a decline answered by the API
    (whichever comes first does it). The invoice names no card: the one saved before the
    top-up began is the one it was charged to (a card saved since is left alone)."""
    account = CreditAccount.objects.get(owner_id=purchase.owner_id)
    since = account.auto_top_up_card_since
    if not account.auto_top_up_payment_method_id or (
        since is not None and since > purchase.created_at
    ):
        _fail(purchase, decline_reason("card_declined"))
        return False
    return declined(
        purchase,
        payment_method_id=account.auto_top_up_payment_method_id,
        reason=decline_reason("card_declined"),
        payment_intent_id=payment_intent_id,
    )
