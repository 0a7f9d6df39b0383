"""Buying credits with a card: packs, amounts, and starting a Stripe Checkout.

A purchase is credited only by the webhook (billing.webhooks), never by the customer's return to
the success page: the page only shows what the webhook has done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from accounts.models import Account, User

from . import auto_top_up, customers, stripe_client
from .models import Purchase
from .money import format_money
from .services import credits_for_cents

logger = logging.getLogger(__name__)


class PurchaseNotStarted(Exception):
    """Stripe could not open a Checkout Session; nothing was charged."""


@dataclass(frozen=True)
class Pack:
    amount_cents: int
    credits: int

    @property
    def price(self) -> str:
        return format_money(self.amount_cents, settings.STRIPE_CURRENCY)

    @property
    def credits_label(self) -> str:
        return f"{self.credits:,}"


def card_payments_enabled() -> bool:
    return stripe_client.is_configured()


def packs() -> list[Pack]:
    return [Pack(cents, credits_for_cents(cents)) for cents in settings.STRIPE_PACKS_CENTS]


def start_purchase(
    owner: Account, buyer: User, amount_cents: int, *, site_url: str, save_card: bool = False
) -> Purchase:
    """Record a pending purchase of credits for ``owner``, started by its member ``buyer``, and
    open a Stripe Checkout Session for it, paid as the
    account's Customer (billing.customers: created, or brought up to date, first), with an
    invoice made out to the account's billing details. ``save_card`` keeps the card for
    automatic top-ups (billing.auto_top_up).

    ``site_url`` is where Stripe sends the customer back (scheme and host, no path). Raises
    stripe_client.PaymentsNotConfigured, or PurchaseNotStarted if Stripe refused; then nothing
    was charged (and the purchase, if it was recorded, is marked failed).
    """
    if not settings.STRIPE_MIN_CENTS <= amount_cents <= settings.STRIPE_MAX_CENTS:
        raise ValueError(f"{amount_cents} cents is outside the allowed amounts")
    if not card_payments_enabled():
        raise stripe_client.PaymentsNotConfigured("Card payments are not set up")
    try:
        customer_id = customers.ensure_customer(owner)
    except stripe_client.StripeUnavailable as exc:
        logger.error("purchase for account %s: the Customer: %s", owner.pk, exc)
        raise PurchaseNotStarted(str(exc)) from exc
    currency = settings.STRIPE_CURRENCY
    # Committed before Stripe is called (no transaction is held across the network), so a
    # webhook that beats our own save of the session id still finds it by its metadata.
    purchase = Purchase.objects.create(
        owner=owner,
        user=buyer,
        amount_cents=amount_cents,
        currency=currency,
        credits=credits_for_cents(amount_cents),
        save_card=save_card,
    )
    page = site_url.rstrip("/") + reverse("billing:purchase", args=[purchase.public_id])
    cancel = site_url.rstrip("/") + reverse("billing:purchase_cancelled", args=[purchase.public_id])
    product = f"{purchase.credits:,} {settings.SITE_NAME} credits"
    try:
        session = stripe_client.create_checkout_session(
            amount_cents=amount_cents,
            currency=currency,
            product_name=product,
            client_reference_id=str(owner.pk),
            customer_id=customer_id,
            metadata={
                "purchase_id": str(purchase.public_id),
                "account_id": str(owner.pk),
                "user_id": str(buyer.pk),
                "credits": str(purchase.credits),
            },
            invoice_description=f"Prepaid credits: {product}",
            invoice_footer=(
                f"{settings.SITE_NAME} ({settings.SITE_URL}). Purchase {purchase.public_id}."
            ),
            save_card=save_card,
            # Stripe fills in {CHECKOUT_SESSION_ID} itself.
            success_url=f"{page}?session_id={{CHECKOUT_SESSION_ID}}",
            cancel_url=cancel,
            idempotency_key=f"purchase-{purchase.public_id}",
        )
    except stripe_client.StripeUnavailable as exc:
        logger.error("purchase %s: %s", purchase.public_id, exc)
        Purchase.objects.filter(pk=purchase.pk).update(
            status=Purchase.Status.FAILED,
            failure_reason="The payment page could not be opened.",
        )
        raise PurchaseNotStarted(str(exc)) from exc
    purchase.checkout_session_id = session.id
    purchase.checkout_url = session.url
    purchase.save(update_fields=["checkout_session_id", "checkout_url", "updated_at"])
    return purchase


@dataclass(frozen=True)
class Progress:
    """What the success page says while the webhook has not credited a purchase yet."""

    state: str  # "crediting", "processing", "open", "expired", "unknown"


def purchase_progress(purchase: Purchase) -> Progress:
    """Ask Stripe how a pending purchase's Checkout is going. Changes nothing here."""
    if not purchase.checkout_session_id or not card_payments_enabled():
        return Progress("unknown")
    try:
        session = stripe_client.retrieve_checkout_session(purchase.checkout_session_id)
    except stripe_client.StripeUnavailable as exc:
        logger.warning("purchase %s: %s", purchase.public_id, exc)
        return Progress("unknown")
    if session.payment_status == "paid":
        return Progress("crediting")
    if session.status == "complete":
        return Progress("processing")  # an asynchronous payment method that has not cleared
    if session.status == "expired":
        return Progress("expired")
    return Progress("open")


# A receipt that could not be fetched when its purchase was credited is looked up again for this
# long (then the operator finds it in Stripe's dashboard), at most RECEIPTS_PER_RUN a run.
RECEIPT_LOOKUP_DAYS = 7
RECEIPTS_PER_RUN = 50


def fill_receipt(purchase: Purchase) -> bool:
    """Store the charge id and Stripe's receipt link of a credited purchase, if Stripe has a
    charge for it yet (True then); keep the card it saved for automatic top-ups, if the
    customer asked (billing.auto_top_up.remember_card). Raises stripe_client.StripeUnavailable."""
    if purchase.receipt_url or not purchase.payment_intent_id:
        return False
    payment = stripe_client.retrieve_payment(purchase.payment_intent_id)
    charge = payment.charge
    auto_top_up.remember_card(purchase, payment.intent, charge.card if charge else "")
    if charge is None:
        return False
    Purchase.objects.filter(pk=purchase.pk).update(
        charge_id=charge.id, receipt_url=charge.receipt_url
    )
    return True


def fill_missing_receipts(*, limit: int = RECEIPTS_PER_RUN) -> int:
    """Fetch the receipts that could not be fetched when their purchases were credited (Stripe's
    API failed then), oldest first. Stops at the first failure, with one warning: Stripe is
    still unreachable, and the next run tries again. Returns how many were filled."""
    if not card_payments_enabled():
        return 0
    since = timezone.now() - timedelta(days=RECEIPT_LOOKUP_DAYS)
    # A purchase whose charge is known was looked up (or refunded) already: its charge has no
    # receipt to fetch.
    waiting = Purchase.objects.filter(credited_at__gte=since, receipt_url="", charge_id="").exclude(
        payment_intent_id=""
    )
    return fill_oldest_first(waiting, fill_receipt, what="receipts", limit=limit)


def fill_oldest_first(
    waiting: QuerySet[Purchase], fill: Callable[[Purchase], bool], *, what: str, limit: int
) -> int:
    """``fill`` each of ``waiting`` (at most ``limit``), the longest credited first; stop at
    the first time Stripe cannot be reached, with one warning (the next run tries again).
    Returns how many were filled."""
    filled = 0
    for purchase in waiting.order_by("credited_at")[:limit]:
        try:
            filled += fill(purchase)
        except stripe_client.StripeUnavailable as exc:
            logger.warning("%s: %s filled, then Stripe failed: %s", what, filled, exc)
            break
    return filled
