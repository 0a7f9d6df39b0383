"""The one module that talks to Stripe (and the only one that imports ``stripe``).

Everything else gets plain values from here: dataclasses and dicts, never stripe objects, and
our own exceptions. STRIPE_API_BASE points the SDK at Stripe, stripe-mock or the tests' fake.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import stripe
from django.conf import settings


class PaymentsNotConfigured(Exception):
    """No STRIPE_SECRET_KEY or STRIPE_WEBHOOK_SECRET on this installation."""


class StripeUnavailable(Exception):
    """Stripe refused or could not be reached; the message is safe to log, not to show."""


class InvalidSignature(Exception):
    """A webhook whose Stripe-Signature is missing, wrong or too old."""


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str
    status: str  # open, complete, expired
    payment_status: str  # paid, unpaid, no_payment_required
    payment_intent_id: str
    amount_total: int
    currency: str


@dataclass(frozen=True)
class Charge:
    id: str
    receipt_url: str


@dataclass(frozen=True)
class Refund:
    id: str
    amount: int
    status: str  # pending, requires_action, succeeded, failed, canceled
    charge_id: str
    payment_intent_id: str


# The prefixes of Stripe's secret and restricted keys, by mode.
LIVE_KEY_PREFIXES = ("sk_live_", "rk_live_")
TEST_KEY_PREFIXES = ("sk_test_", "rk_test_")


def is_configured() -> bool:
    """Card payments need both keys: one to open Checkout, one to trust the webhooks."""
    return bool(settings.STRIPE_SECRET_KEY and settings.STRIPE_WEBHOOK_SECRET)


@lru_cache(maxsize=4)
def _client(secret_key: str, api_base: str) -> stripe.StripeClient:
    # max_network_retries: the SDK retries connection failures and 5xx with the same
    # Idempotency-Key, so a retried create never opens a second session.
    return stripe.StripeClient(secret_key, base_addresses={"api": api_base}, max_network_retries=2)


def _stripe() -> stripe.StripeClient:
    if not settings.STRIPE_SECRET_KEY:
        raise PaymentsNotConfigured("STRIPE_SECRET_KEY is not set")
    return _client(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE)


def key_livemode() -> bool | None:
    """True for a live-mode STRIPE_SECRET_KEY, False for a test-mode one, None when its prefix
    says neither (then no event's mode can be trusted)."""
    key = settings.STRIPE_SECRET_KEY
    if key.startswith(LIVE_KEY_PREFIXES):
        return True
    if key.startswith(TEST_KEY_PREFIXES):
        return False
    return None


def _in_mode(livemode: object) -> str:
    if livemode is True:
        return "in live mode"
    if livemode is False:
        return "in test mode"
    return "in no mode (its livemode is missing)"


def mode_mismatch(event: dict[str, Any]) -> str:
    """Why ``event`` must move no money here because its mode is not the secret key's ("" when
    it is). The event's ``livemode`` and its object's (where the object has one) must both be
    the key's; a missing or non-boolean one does not match. Names the modes, never the key."""
    key_live = key_livemode()
    if key_live is None:
        return (
            "STRIPE_SECRET_KEY starts with none of sk_live_, sk_test_, rk_live_, rk_test_, so "
            "the event's mode cannot be checked: nothing done"
        )
    key_mode = "a live-mode" if key_live else "a test-mode"
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    modes = [("event", event.get("livemode"))]
    if isinstance(obj, dict) and "livemode" in obj:
        modes.append(("event's object", obj["livemode"]))
    for what, livemode in modes:
        if livemode is not key_live:
            return (
                f"The {what} is {_in_mode(livemode)} and STRIPE_SECRET_KEY is {key_mode} key: "
                "nothing done"
            )
    return ""


def id_of(value: Any) -> str:
    """An object's id whether Stripe sent the id or the expanded object."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def session_from(values: dict[str, Any]) -> CheckoutSession:
    """A Checkout Session from Stripe's JSON (an API answer or a webhook's data.object)."""
    return CheckoutSession(
        id=values["id"],
        url=values.get("url") or "",
        status=values.get("status") or "",
        payment_status=values.get("payment_status") or "",
        payment_intent_id=id_of(values.get("payment_intent")),
        amount_total=int(values.get("amount_total") or 0),
        currency=(values.get("currency") or "").lower(),
    )


def refund_from(values: dict[str, Any]) -> Refund:
    """A Refund from Stripe's JSON (a webhook's data.object, or an item of a charge's refunds)."""
    return Refund(
        id=values["id"],
        amount=int(values.get("amount") or 0),
        status=str(values.get("status") or ""),
        charge_id=id_of(values.get("charge")),
        payment_intent_id=id_of(values.get("payment_intent")),
    )


def create_checkout_session(
    *,
    amount_cents: int,
    currency: str,
    product_name: str,
    client_reference_id: str,
    customer_email: str,
    metadata: dict[str, str],
    success_url: str,
    cancel_url: str,
    idempotency_key: str,
) -> CheckoutSession:
    """A hosted Checkout page (mode ``payment``) for one line of ``amount_cents``."""
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": currency,
                    "unit_amount": amount_cents,
                    "product_data": {"name": product_name},
                },
            }
        ],
        "client_reference_id": client_reference_id,
        "customer_email": customer_email,
        "metadata": metadata,
        # On the PaymentIntent too, so its charge (refunds, disputes) leads back to the purchase.
        "payment_intent_data": {"metadata": metadata},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    try:
        session = _stripe().v1.checkout.sessions.create(
            params,  # type: ignore[arg-type]
            options={"idempotency_key": idempotency_key},
        )
    except stripe.StripeError as exc:
        raise StripeUnavailable(f"creating a Checkout Session: {exc}") from exc
    return session_from(session.to_dict())


def retrieve_checkout_session(session_id: str) -> CheckoutSession:
    try:
        session = _stripe().v1.checkout.sessions.retrieve(session_id)
    except stripe.StripeError as exc:
        raise StripeUnavailable(f"retrieving Checkout Session {session_id}: {exc}") from exc
    return session_from(session.to_dict())


def latest_charge(payment_intent_id: str) -> Charge | None:
    """The charge that paid a PaymentIntent (its id and Stripe's receipt page), if any yet."""
    try:
        intent = _stripe().v1.payment_intents.retrieve(
            payment_intent_id, {"expand": ["latest_charge"]}
        )
    except stripe.StripeError as exc:
        raise StripeUnavailable(f"retrieving PaymentIntent {payment_intent_id}: {exc}") from exc
    charge = intent.to_dict().get("latest_charge")
    if not isinstance(charge, dict):
        return None
    return Charge(id=charge["id"], receipt_url=charge.get("receipt_url") or "")


def verify_webhook(payload: bytes, signature_header: str | None) -> dict[str, Any]:
    """The event in a webhook body, once its signature has been checked against
    STRIPE_WEBHOOK_SECRET (HMAC-SHA256, at most 300 s old). Raises InvalidSignature."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise PaymentsNotConfigured("STRIPE_WEBHOOK_SECRET is not set")
    try:
        stripe.WebhookSignature.verify_header(
            payload, signature_header, secret, tolerance=stripe.Webhook.DEFAULT_TOLERANCE
        )
        event = json.loads(payload)
    except stripe.SignatureVerificationError as exc:
        raise InvalidSignature(str(exc)) from None
    except (UnicodeDecodeError, ValueError):
        raise InvalidSignature("The body is not JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        raise InvalidSignature("The body is not a Stripe event")
    return event
