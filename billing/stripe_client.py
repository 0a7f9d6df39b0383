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


class InvalidRequest(StripeUnavailable):
    """Stripe refused a request's parameters (400): ``code`` and ``param`` say which (e.g.
    ``tax_id_invalid``), ``message`` is Stripe's own words (about the parameters, never a key)."""

    def __init__(self, message: str, *, code: str, param: str) -> None:
        super().__init__(message)
        self.code = code
        self.param = param


class CardDeclined(Exception):
    """The card was charged and the bank said no (HTTP 402 ``card_error``): ``code`` is Stripe's
    (``card_declined``, ``expired_card``, ``authentication_required``, ...), ``decline_code``
    the bank's reason when there is one, ``message`` Stripe's words, which are written for the
    cardholder. ``payment_intent_id`` is the PaymentIntent the attempt made, if any."""

    def __init__(
        self, message: str, *, code: str, decline_code: str, payment_intent_id: str
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.decline_code = decline_code
        self.payment_intent_id = payment_intent_id


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str
    status: str  # open, complete, expired
    payment_status: str  # paid, unpaid, no_payment_required
    payment_intent_id: str
    amount_total: int
    currency: str
    # The invoice Checkout made for the payment (invoice_creation), once it has one.
    invoice_id: str = ""


@dataclass(frozen=True)
class Charge:
    id: str
    receipt_url: str
    # How to name the card to its owner ("Visa ending 4242"), when it was a card.
    card: str = ""


@dataclass(frozen=True)
class PaymentIntent:
    id: str
    status: str  # succeeded, processing, requires_payment_method, requires_action, canceled...
    amount: int
    currency: str
    customer_id: str
    payment_method_id: str
    setup_future_usage: str  # off_session, on_session or ""
    metadata: dict[str, str]
    # The failed attempt's PaymentMethod and Stripe's code for it (last_payment_error).
    error_code: str = ""
    error_message: str = ""
    error_payment_method_id: str = ""


@dataclass(frozen=True)
class Payment:
    """A PaymentIntent with its latest charge (None before there is one)."""

    intent: PaymentIntent
    charge: Charge | None


@dataclass(frozen=True)
class Customer:
    id: str
    # The id of its one tax id object (txi_...), when it has one.
    tax_id: str


@dataclass(frozen=True)
class Invoice:
    id: str
    number: str
    status: str  # draft, open, paid, uncollectible, void
    invoice_pdf: str  # empty until the invoice is finalized
    hosted_invoice_url: str
    metadata: dict[str, str]
    # The PaymentIntent that paid it (or tried to), once it is finalized; what it took.
    payment_intent_id: str = ""
    amount_paid: int = 0
    currency: str = ""


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
        invoice_id=id_of(values.get("invoice")),
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


def _metadata(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def intent_from(values: dict[str, Any]) -> PaymentIntent:
    """A PaymentIntent from Stripe's JSON (an API answer, an error's or a webhook's object)."""
    error = values.get("last_payment_error")
    error = error if isinstance(error, dict) else {}
    return PaymentIntent(
        id=values["id"],
        status=str(values.get("status") or ""),
        amount=int(values.get("amount") or 0),
        currency=str(values.get("currency") or "").lower(),
        customer_id=id_of(values.get("customer")),
        payment_method_id=id_of(values.get("payment_method")),
        setup_future_usage=str(values.get("setup_future_usage") or ""),
        metadata=_metadata(values.get("metadata")),
        error_code=str(error.get("decline_code") or error.get("code") or ""),
        error_message=str(error.get("message") or ""),
        error_payment_method_id=id_of(error.get("payment_method")),
    )


def _invoice_payment_intent(values: dict[str, Any]) -> str:
    """The PaymentIntent of an invoice: since API version 2025-03-31 it is in the invoice's
    ``payments`` (given when expanded); older versions named it in ``payment_intent``."""
    legacy = id_of(values.get("payment_intent"))
    if legacy:
        return legacy
    payments = values.get("payments")
    items = payments.get("data") if isinstance(payments, dict) else None
    for item in items if isinstance(items, list) else []:
        payment = item.get("payment") if isinstance(item, dict) else None
        if isinstance(payment, dict) and payment.get("payment_intent"):
            return id_of(payment["payment_intent"])
    return ""


def invoice_from(values: dict[str, Any]) -> Invoice:
    """An Invoice from Stripe's JSON (an API answer or a webhook's data.object)."""
    return Invoice(
        id=values["id"],
        number=str(values.get("number") or ""),
        status=str(values.get("status") or ""),
        invoice_pdf=str(values.get("invoice_pdf") or ""),
        hosted_invoice_url=str(values.get("hosted_invoice_url") or ""),
        metadata=_metadata(values.get("metadata")),
        payment_intent_id=_invoice_payment_intent(values),
        amount_paid=int(values.get("amount_paid") or 0),
        currency=str(values.get("currency") or "").lower(),
    )


def card_label(charge: dict[str, Any]) -> str:
    """ "Visa ending 4242" from a charge's payment_method_details, "" when it was no card."""
    details = charge.get("payment_method_details")
    card = details.get("card") if isinstance(details, dict) else None
    if not isinstance(card, dict) or not card.get("last4"):
        return ""
    brand = str(card.get("brand") or "card")
    names = {"amex": "American Express", "diners": "Diners Club", "unionpay": "UnionPay"}
    return f"{names.get(brand, brand.title())} ending {card['last4']}"[:64]


def create_checkout_session(
    *,
    amount_cents: int,
    currency: str,
    product_name: str,
    client_reference_id: str,
    customer_id: str,
    metadata: dict[str, str],
    invoice_description: str,
    invoice_footer: str,
    save_card: bool,
    success_url: str,
    cancel_url: str,
    idempotency_key: str,
) -> CheckoutSession:
    """A hosted Checkout page (mode ``payment``) for one line of ``amount_cents``, paid as
    ``customer_id`` (our Customer of the account: its name, address and tax id go on the
    invoice Stripe makes for the payment). ``save_card`` keeps the card for charges made
    while the customer is away (automatic top-ups); Checkout tells the customer it does."""
    intent_data: dict[str, Any] = {
        # On the PaymentIntent too, so its charge (refunds, disputes) leads back to the purchase.
        "metadata": metadata,
    }
    if save_card:
        intent_data["setup_future_usage"] = "off_session"
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
        # An existing Customer, not customer_email (Stripe takes one or the other). Checkout
        # changes nothing on it (customer_update is left at "never"): our billing details form
        # is the one source of the name, address and tax id the invoice shows.
        "customer": customer_id,
        "metadata": metadata,
        "payment_intent_data": intent_data,
        # Every payment gets an invoice (a paid one, for the customer's books), naming the
        # purchase in its description and metadata.
        "invoice_creation": {
            "enabled": True,
            "invoice_data": {
                "description": invoice_description,
                "footer": invoice_footer,
                "metadata": metadata,
            },
        },
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


def retrieve_payment(payment_intent_id: str) -> Payment:
    """A PaymentIntent and the charge that paid it (its id, Stripe's receipt page, the card)."""
    try:
        intent = _stripe().v1.payment_intents.retrieve(
            payment_intent_id, {"expand": ["latest_charge"]}
        )
    except stripe.StripeError as exc:
        raise StripeUnavailable(f"retrieving PaymentIntent {payment_intent_id}: {exc}") from exc
    values = intent.to_dict()
    charge = values.get("latest_charge")
    if not isinstance(charge, dict):
        return Payment(intent=intent_from(values), charge=None)
    return Payment(
        intent=intent_from(values),
        charge=Charge(
            id=charge["id"], receipt_url=charge.get("receipt_url") or "", card=card_label(charge)
        ),
    )


def latest_charge(payment_intent_id: str) -> Charge | None:
    """The charge that paid a PaymentIntent (its id and Stripe's receipt page), if any yet."""
    return retrieve_payment(payment_intent_id).charge


def _refused(exc: stripe.StripeError, doing: str) -> StripeUnavailable:
    """Our exception for a failed call: InvalidRequest when Stripe refused the parameters."""
    if isinstance(exc, stripe.InvalidRequestError) and exc.http_status == 400:
        return InvalidRequest(
            f"{doing}: {exc.user_message}", code=str(exc.code or ""), param=str(exc.param or "")
        )
    return StripeUnavailable(f"{doing}: {exc}")


def _address(address: dict[str, str]) -> dict[str, str]:
    # Every line is sent, empty ones as "" (which Stripe takes as "remove"), so an update
    # clears what the customer cleared.
    keys = ("line1", "line2", "city", "postal_code", "state", "country")
    return {key: address.get(key, "") for key in keys}


def create_customer(
    *,
    email: str,
    name: str,
    address: dict[str, str] | None,
    tax_id: tuple[str, str] | None,
    metadata: dict[str, str],
    idempotency_key: str,
) -> Customer:
    """A Customer with these details; ``tax_id`` is (Stripe's type, value). Raises
    InvalidRequest when Stripe refuses a detail (``tax_id_invalid`` for the tax id)."""
    params: dict[str, Any] = {"email": email, "metadata": metadata, "expand": ["tax_ids"]}
    if name:
        params["name"] = name
    if address:
        params["address"] = _address(address)
    if tax_id:
        params["tax_id_data"] = [{"type": tax_id[0], "value": tax_id[1]}]
    try:
        customer = _stripe().v1.customers.create(
            params,  # type: ignore[arg-type]
            options={"idempotency_key": idempotency_key},
        )
    except stripe.StripeError as exc:
        raise _refused(exc, "creating a Customer") from exc
    values = customer.to_dict()
    tax_ids = values.get("tax_ids")
    items = tax_ids.get("data") if isinstance(tax_ids, dict) else None
    first = items[0] if isinstance(items, list) and items else {}
    return Customer(id=values["id"], tax_id=id_of(first))


def update_customer(
    customer_id: str, *, email: str, name: str, address: dict[str, str] | None
) -> None:
    """Give the Customer these details (an empty name or no address clears them)."""
    params: dict[str, Any] = {"email": email, "name": name}
    params["address"] = _address(address) if address else ""
    try:
        _stripe().v1.customers.update(customer_id, params)  # type: ignore[arg-type]
    except stripe.StripeError as exc:
        raise _refused(exc, f"updating Customer {customer_id}") from exc


def add_tax_id(customer_id: str, tax_type: str, value: str, *, idempotency_key: str) -> str:
    """Add a tax id to the Customer; returns its id (txi_...). Raises InvalidRequest
    (``tax_id_invalid``) when Stripe refuses the value for the type."""
    try:
        tax_id = _stripe().v1.customers.tax_ids.create(
            customer_id,
            {"type": tax_type, "value": value},
            options={"idempotency_key": idempotency_key},
        )
    except stripe.StripeError as exc:
        raise _refused(exc, f"adding a tax id to Customer {customer_id}") from exc
    return str(tax_id.to_dict()["id"])


def delete_tax_id(customer_id: str, tax_id: str) -> None:
    try:
        _stripe().v1.customers.tax_ids.delete(customer_id, tax_id)
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            return  # gone already
        raise _refused(exc, f"deleting tax id {tax_id}") from exc
    except stripe.StripeError as exc:
        raise StripeUnavailable(f"deleting tax id {tax_id}: {exc}") from exc


def retrieve_invoice(invoice_id: str) -> Invoice:
    try:
        invoice = _stripe().v1.invoices.retrieve(invoice_id)
    except stripe.StripeError as exc:
        raise StripeUnavailable(f"retrieving Invoice {invoice_id}: {exc}") from exc
    return invoice_from(invoice.to_dict())


def _card_declined(exc: stripe.CardError) -> CardDeclined:
    error = exc.error
    failed = getattr(error, "payment_intent", None) if error is not None else None
    return CardDeclined(
        str(exc.user_message or "The card was declined."),
        code=str(exc.code or "card_declined"),
        decline_code=str(getattr(error, "decline_code", None) or ""),
        payment_intent_id=id_of(failed.to_dict() if failed is not None else None),
    )


def _charging_failed(exc: stripe.StripeError, doing: str) -> Exception:
    """Our exception for a failed call charging a saved card: CardDeclined when the bank said
    no, or when Stripe refused the request itself (4xx: the card was detached or no longer
    belongs to the customer; asking again cannot help, so it ends like a decline);
    StripeUnavailable otherwise (then the same idempotency key asks again safely)."""
    if isinstance(exc, stripe.CardError):
        return _card_declined(exc)
    status = exc.http_status if isinstance(exc, stripe.InvalidRequestError) else None
    if status is not None and 400 <= status < 500:
        return CardDeclined(
            "The saved card can no longer be charged.",
            code="card_unusable",
            decline_code="",
            payment_intent_id="",
        )
    return StripeUnavailable(f"{doing}: {exc}")


def create_invoice(
    *,
    currency: str,
    customer_id: str,
    description: str,
    footer: str,
    metadata: dict[str, str],
    idempotency_key: str,
) -> Invoice:
    """A draft Invoice to the Customer (made out with its name, address and tax ids, as the
    Checkout invoices are), to be given its one line (``add_invoice_line``) and charged to a
    saved card (``pay_invoice``). Each call's key is made from ``idempotency_key``, so asking
    again after a failure makes no second invoice, line or charge.

    Raises CardDeclined (``card_unusable``) when Stripe refuses the request (a 4xx: the
    Customer is gone), StripeUnavailable when it could not be reached."""
    invoice_params: dict[str, Any] = {
        "customer": customer_id,
        "currency": currency,
        "collection_method": "charge_automatically",
        # Finalized and paid by us, now: never by Stripe an hour later.
        "auto_advance": False,
        # Only the line made below, never another invoice item left pending on the Customer.
        "pending_invoice_items_behavior": "exclude",
        "description": description,
        "footer": footer,
        "metadata": metadata,
    }
    try:
        invoice = _stripe().v1.invoices.create(
            invoice_params,  # type: ignore[arg-type]
            options={"idempotency_key": f"{idempotency_key}-invoice"},
        )
    except stripe.StripeError as exc:
        raise _charging_failed(exc, "creating an invoice") from exc
    return invoice_from(invoice.to_dict())


def add_invoice_line(
    invoice_id: str,
    *,
    amount_cents: int,
    currency: str,
    customer_id: str,
    description: str,
    metadata: dict[str, str],
    idempotency_key: str,
) -> None:
    """The invoice's one line (an invoice item attached to it). Asked again with the same
    key, the line made already is answered again, not made twice."""
    try:
        _stripe().v1.invoice_items.create(
            {
                "customer": customer_id,
                "invoice": invoice_id,
                "amount": amount_cents,
                "currency": currency,
                "description": description,
                "metadata": metadata,
            },
            options={"idempotency_key": f"{idempotency_key}-item"},
        )
    except stripe.StripeError as exc:
        raise _charging_failed(exc, f"adding the line of Invoice {invoice_id}") from exc


def pay_invoice(invoice_id: str, *, payment_method_id: str, idempotency_key: str) -> Invoice:
    """Finalize a draft invoice and charge it to a saved card while its owner is away
    (off-session: the bank cannot ask the cardholder to authenticate). Returns the invoice as
    paid (with its number, links and PaymentIntent).

    Raises CardDeclined when the bank declines, or the card needs its owner to authenticate
    (``authentication_required``) or has expired, or Stripe refuses the request (4xx,
    ``card_unusable``); StripeUnavailable when Stripe could not be reached (then the same
    ``idempotency_key`` asks again without charging twice)."""
    try:
        _stripe().v1.invoices.finalize_invoice(
            invoice_id,
            {"auto_advance": False},
            options={"idempotency_key": f"{idempotency_key}-finalize"},
        )
        invoice = _stripe().v1.invoices.pay(
            invoice_id,
            {"off_session": True, "payment_method": payment_method_id, "expand": ["payments"]},
            options={"idempotency_key": f"{idempotency_key}-pay"},
        )
    except stripe.StripeError as exc:
        raise _charging_failed(exc, f"paying Invoice {invoice_id}") from exc
    return invoice_from(invoice.to_dict())


def void_invoice(invoice_id: str, *, idempotency_key: str) -> None:
    """Void an open invoice whose charge was declined: it is never paid, so it must not stand
    at Stripe as an amount the customer owes. Raises StripeUnavailable (and InvalidRequest
    when it is not open: a draft, or paid after all)."""
    try:
        _stripe().v1.invoices.void_invoice(
            invoice_id, options={"idempotency_key": f"{idempotency_key}-void"}
        )
    except stripe.StripeError as exc:
        raise _refused(exc, f"voiding Invoice {invoice_id}") from exc


def detach_payment_method(payment_method_id: str) -> None:
    """Take a saved card off its Customer: it can never be charged again."""
    try:
        _stripe().v1.payment_methods.detach(payment_method_id)
    except stripe.InvalidRequestError as exc:
        if exc.http_status in (400, 404):
            return  # not attached (any more), or gone
        raise StripeUnavailable(f"detaching {payment_method_id}: {exc}") from exc
    except stripe.StripeError as exc:
        raise StripeUnavailable(f"detaching {payment_method_id}: {exc}") from exc


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
