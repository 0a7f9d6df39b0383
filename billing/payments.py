"""Buying credits with a card: packs, amounts, and starting a Stripe Checkout.

A purchase is credited only by the webhook (billing.webhooks), never by the customer's return to
the success page: the page only shows what the webhook has done.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.urls import reverse

from accounts.models import User

from . import stripe_client
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


def start_purchase(user: User, amount_cents: int, *, site_url: str) -> Purchase:
    """Record a pending purchase and open a Stripe Checkout Session for it.

    ``site_url`` is where Stripe sends the customer back (scheme and host, no path). Raises
    stripe_client.PaymentsNotConfigured, or PurchaseNotStarted if Stripe refused; then the
    purchase is marked failed and nothing was charged.
    """
    if not settings.STRIPE_MIN_CENTS <= amount_cents <= settings.STRIPE_MAX_CENTS:
        raise ValueError(f"{amount_cents} cents is outside the allowed amounts")
    if not card_payments_enabled():
        raise stripe_client.PaymentsNotConfigured("Card payments are not set up")
    currency = settings.STRIPE_CURRENCY
    # Committed before Stripe is called (no transaction is held across the network), so a
    # webhook that beats our own save of the session id still finds it by its metadata.
    purchase = Purchase.objects.create(
        user=user,
        amount_cents=amount_cents,
        currency=currency,
        credits=credits_for_cents(amount_cents),
    )
    page = site_url.rstrip("/") + reverse("billing:purchase", args=[purchase.public_id])
    cancel = site_url.rstrip("/") + reverse("billing:purchase_cancelled", args=[purchase.public_id])
    try:
        session = stripe_client.create_checkout_session(
            amount_cents=amount_cents,
            currency=currency,
            product_name=f"{purchase.credits:,} Seedream API credits",
            client_reference_id=str(user.pk),
            customer_email=user.email,
            metadata={
                "purchase_id": str(purchase.public_id),
                "user_id": str(user.pk),
                "credits": str(purchase.credits),
            },
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
