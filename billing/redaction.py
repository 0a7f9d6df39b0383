"""What of a stored Stripe event can name a person, and taking it out (when an account closes).

A redacted payload keeps what the books and the webhook handlers need: every id (the event's,
the session's, the PaymentIntent's, the charge's, the refund's, the dispute's), amounts,
currency, statuses, modes, dates, our own metadata (purchase and user ids, credits) and the
receipt link kept on the purchase. It loses the values under the keys below, wherever they are
in the payload (a customer's email, name, phone, postal addresses, tax ids, card details, what
they typed into Checkout, dispute evidence), and any text anywhere that looks like an email
address. No models here, so a migration can use this module too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.db.models import Q

REDACTED = "[redacted]"

# Keys whose values describe a person in Stripe's objects: Checkout Sessions (customer_email,
# customer_details, collected_information, custom_fields, shipping_details), charges and
# PaymentIntents (billing_details, receipt_email, shipping, payment_method_details, and a failed
# attempt's PaymentMethod with its card), refunds (destination_details, instructions_email),
# disputes (evidence), invoices (customer_address, customer_tax_ids, ...) and customers.
PERSONAL_KEYS = frozenset(
    {
        "address",
        "billing_address",
        "billing_details",
        "business_name",
        "card",
        "collected_information",
        "custom_fields",
        "customer_address",
        "customer_details",
        "customer_email",
        "customer_email_address",
        "customer_name",
        "customer_phone",
        "customer_purchase_ip",
        "customer_shipping",
        "customer_tax_ids",
        "destination_details",
        "email",
        "evidence",
        "individual_name",
        "instructions_email",
        "ip_address",
        "name",
        "payment_method_details",
        "phone",
        "receipt_email",
        "shipping",
        "shipping_address",
        "shipping_details",
        "tax_id",
        "tax_ids",
    }
)

# Anything that looks like an address, in any text: a description or a field Stripe adds later.
_EMAIL = re.compile(r"[^\s@\"'<>(),;:]+@[^\s@\"'<>(),;:]+\.[^\s@\"'<>(),;:]+")


def redact(value: Any) -> Any:
    """A copy of ``value`` (a Stripe event or any part of one) without what names a person."""
    if isinstance(value, dict):
        return {
            key: REDACTED if key in PERSONAL_KEYS and _filled(item) else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return _EMAIL.sub(REDACTED, value)
    return value


def _filled(value: Any) -> bool:
    # An empty value names nobody; keeping it as it was keeps the object's shape readable.
    return value not in (None, "", [], {})


def events_about(purchases: Iterable[tuple[Any, Any, Any, Any]]) -> Q | None:
    """The stored Stripe events (a filter on StripeEvent) whose object is, or belongs to, one of
    ``purchases``: (checkout_session_id, payment_intent_id, charge_id, public_id) each. None for
    no purchases."""
    ids: set[str] = set()
    intents: set[str] = set()
    charges: set[str] = set()
    public_ids: set[str] = set()
    for session_id, intent_id, charge_id, public_id in purchases:
        ids.update(str(i) for i in (session_id, intent_id, charge_id) if i)
        intents.update(str(i) for i in (intent_id,) if i)
        charges.update(str(i) for i in (charge_id,) if i)
        public_ids.add(str(public_id))
    if not public_ids:
        return None
    # The object's own id (a session, PaymentIntent or charge), the ids it names (a refund's or
    # dispute's charge and PaymentIntent), or our metadata on it (sessions, charges).
    return (
        Q(payload__data__object__id__in=ids)
        | Q(payload__data__object__payment_intent__in=intents)
        | Q(payload__data__object__charge__in=charges)
        | Q(payload__data__object__metadata__purchase_id__in=public_ids)
    )
