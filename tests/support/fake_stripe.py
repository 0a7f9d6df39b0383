"""A small fake of Stripe's HTTP API, owned by the tests, and webhooks signed the real way.

stripe-python is pointed at it through STRIPE_API_BASE, so the product's real client code runs:
form-encoded POSTs, the Idempotency-Key header, the Authorization header. It answers only what
the product calls, as Stripe's API reference describes it:

- ``POST /v1/checkout/sessions`` (with an existing ``customer``, never with ``customer_email``
  too; ``invoice_creation``; ``payment_intent_data[setup_future_usage]``) and
  ``GET /v1/checkout/sessions/{id}``
- ``GET /v1/payment_intents/{id}`` (``expand[]=latest_charge`` gives the charge and its receipt)
  and ``POST /v1/payment_intents`` (a saved card charged with ``confirm`` and ``off_session``:
  402 ``card_error`` with the failed PaymentIntent when the bank declines)
- ``POST /v1/customers``, ``POST``/``GET /v1/customers/{id}``, ``POST /v1/customers/{id}/tax_ids``
  and ``DELETE /v1/customers/{id}/tax_ids/{id}`` (a tax id Stripe's format check refuses gets
  400 ``tax_id_invalid``)
- ``GET /v1/invoices/{id}`` (``expand[]=payments`` lists its PaymentIntent, the only place
  API versions since 2025-03-31 name it), ``POST /v1/invoices`` (a draft, charged
  automatically, made out with the Customer's name, address and tax ids, frozen again at
  finalization; ``pending_invoice_items_behavior``), ``POST /v1/invoiceitems`` (``invoice``
  attaches it to a draft), ``POST /v1/invoices/{id}/finalize`` (its number, links and a
  PaymentIntent without the invoice's metadata) and ``POST /v1/invoices/{id}/pay``
  (``payment_method``, ``off_session``: the card charged as ``POST /v1/payment_intents`` does,
  402 ``card_error`` with the failed PaymentIntent when the bank declines; the invoice stays
  open), ``POST /v1/invoices/{id}/void`` (an open invoice only)
- ``POST /v1/payment_methods/{id}/detach``

Every POST with an Idempotency-Key is answered once: a repeat gets the first answer again
(``Idempotent-Replayed: true``), its 402 included, and a repeat with other parameters gets 400
``idempotency_error``; requests with one key are handled one at a time. An answer made by
``fail_next`` (Stripe unreachable, or failing before it began) is not kept, as Stripe keeps none.

It serves a stand-in for the hosted Checkout page (``GET /checkout/{id}``, whose "Pay" button
completes the session and sends the browser to the success URL), a receipt page, and invoices
(a hosted page and a PDF). Tests move sessions along with ``pay`` (choosing the test card:
``pm_card_visa`` by default), ``expire``, ``refund`` (then ``fail_refund``) and ``dispute``
(then ``close_dispute``), make a saved card start failing with ``decline_later``, build the
matching events with ``event`` (objects from ``payment_intent`` and ``invoice``), and sign them
with ``sign`` (``t=<unix>,v1=<HMAC-SHA256(secret, "t.payload")>``). Objects and events are in
test mode, as a ``sk_test_`` key sees them, unless a test says otherwise.

Test cards, by Stripe's test PaymentMethod ids (a card saved at Checkout keeps its card's
behaviour): ``pm_card_visa`` and ``pm_card_mastercard`` always pay;
``pm_card_authenticationRequired`` pays at Checkout (its owner authenticates there) and is
declined off-session with ``authentication_required``; ``pm_card_chargeDeclined``,
``pm_card_chargeDeclinedInsufficientFunds`` and ``pm_card_chargeDeclinedExpiredCard`` are
declined (``card_declined``/``generic_decline``, ``card_declined``/``insufficient_funds``,
``expired_card``).

Whether Stripe takes a failed refund out of its charge's ``amount_refunded`` is not something
its reference says; ``failed_refunds_stay_in_amount_refunded`` picks either behaviour (default:
taken out), and the product must be right with both.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API_VERSION = "2026-10-28.endive"


def sign(payload: bytes | str, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe would send with ``payload``."""
    text = payload.decode() if isinstance(payload, bytes) else payload
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.{text}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def _id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    query: dict[str, str]


@dataclass
class _Failure:
    method: str
    path_prefix: str
    status: int
    message: str
    error_type: str = "api_error"
    code: str | None = None
    param: str | None = None


@dataclass(frozen=True)
class TestCard:
    brand: str
    last4: str
    # What an off-session charge gets: None (paid), or (code, decline_code, message).
    off_session_decline: tuple[str, str, str] | None = None
    # Whether a payment with the card's owner present (Checkout) is paid.
    pays_at_checkout: bool = True


DECLINED = ("card_declined", "generic_decline", "Your card was declined.")
TEST_CARDS: dict[str, TestCard] = {
    "pm_card_visa": TestCard("visa", "4242"),
    "pm_card_mastercard": TestCard("mastercard", "4444"),
    "pm_card_authenticationRequired": TestCard(
        "visa",
        "3184",
        (
            "authentication_required",
            "authentication_required",
            "Your card was declined. This transaction requires authentication.",
        ),
    ),
    "pm_card_chargeDeclined": TestCard("visa", "0002", DECLINED, pays_at_checkout=False),
    "pm_card_chargeDeclinedInsufficientFunds": TestCard(
        "visa",
        "9995",
        ("card_declined", "insufficient_funds", "Your card has insufficient funds."),
        pays_at_checkout=False,
    ),
    "pm_card_chargeDeclinedExpiredCard": TestCard(
        "visa",
        "0069",
        ("expired_card", "expired_card", "Your card has expired."),
        pays_at_checkout=False,
    ),
}

# Stripe's format check of the tax ids the product offers (its documented examples' shapes).
TAX_ID_FORMATS = {
    "eu_vat": r"[A-Z]{2}[0-9A-Z]{8,12}",
    "gb_vat": r"GB\d{9}(\d{3})?",
    "ch_vat": r"CHE-?\d{3}\.?\d{3}\.?\d{3}( ?(MWST|TVA|IVA))?",
    "no_vat": r"\d{9}MVA",
    "us_ein": r"\d{2}-?\d{7}",
    "ca_bn": r"\d{9}",
    "au_abn": r"\d{11}",
    "nz_gst": r"\d{8,9}",
    "in_gst": r"\d{2}[A-Z]{5}\d{4}[A-Z][0-9A-Z]Z[0-9A-Z]",
}


class _Refusal(Exception):
    """An API error answer: Stripe refused the request."""

    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.status = status
        self.error = error


def _invalid(message: str, *, code: str | None = None, param: str | None = None) -> _Refusal:
    return _Refusal(
        400, {"type": "invalid_request_error", "message": message, "code": code, "param": param}
    )


def _nested(form: dict[str, str], prefix: str) -> dict[str, str]:
    """``prefix[key]=value`` pairs of a form-encoded body, as {key: value} (one level)."""
    found = {}
    for key, value in form.items():
        if key.startswith(prefix + "[") and key.endswith("]") and "][" not in key[len(prefix) :]:
            found[key[len(prefix) + 1 : -1]] = value
    return found


@dataclass
class FakeStripe:
    base_url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    disputes: dict[str, dict[str, Any]] = field(default_factory=dict)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    tax_ids: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoice_items: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed_refunds_stay_in_amount_refunded: bool = False
    # Idempotency-Key -> (method, path, form, status, body) of the first answer.
    _answers: dict[str, tuple[str, str, dict[str, str], int, Any]] = field(default_factory=dict)
    _failures: list[_Failure] = field(default_factory=list)
    # Off-session behaviour of each PaymentMethod made from a test card (by the card's id).
    _cards: dict[str, TestCard] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _idempotency_lock: threading.RLock = field(default_factory=threading.RLock)
    _invoice_numbers: int = 0

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.sessions.clear()
            self.payment_intents.clear()
            self.charges.clear()
            self.refunds.clear()
            self.disputes.clear()
            self.customers.clear()
            self.tax_ids.clear()
            self.payment_methods.clear()
            self.invoices.clear()
            self.invoice_items.clear()
            self.failed_refunds_stay_in_amount_refunded = False
            self._answers.clear()
            self._failures.clear()
            self._cards.clear()
            self._invoice_numbers = 0

    # --- What tests call --------------------------------------------------------------------

    def calls(self, method: str, path_prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def fail_next(
        self,
        method: str,
        path_prefix: str,
        status: int = 500,
        message: str = "",
        *,
        error_type: str = "api_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        """The next matching API call answers ``status`` with a Stripe error body."""
        self._failures.append(
            _Failure(
                method, path_prefix, status, message or "fake failure", error_type, code, param
            )
        )

    def only_session(self) -> dict[str, Any]:
        """The one Checkout Session made so far, as the API shows it."""
        assert len(self.sessions) == 1, list(self.sessions)
        return self._public(next(iter(self.sessions.values())))

    def session(self, session_id: str) -> dict[str, Any]:
        return self._public(self.sessions[session_id])

    def pay(
        self, session_id: str, *, asynchronous: bool = False, card: str = "pm_card_visa"
    ) -> dict[str, Any]:
        """The customer pays with the test ``card``: the session completes, paid at once (a
        card) or later (``asynchronous``, a bank debit: then call ``settle``). A session that
        asked to save the card (``setup_future_usage``) attaches it to its Customer; one with
        ``invoice_creation`` gets its invoice, finalized and paid, once the payment is."""
        test_card = TEST_CARDS[card]
        assert test_card.pays_at_checkout, f"{card} is declined at Checkout: the session stays open"
        with self._lock:
            session = self.sessions[session_id]
            email = self._session_email(session)
            intent_id, charge_id = _id("pi"), _id("ch")
            method = self._new_payment_method(card)
            if session["setup_future_usage"]:
                method["customer"] = session["customer"]
            self.charges[charge_id] = {
                "id": charge_id,
                "object": "charge",
                "amount": session["amount_total"],
                "amount_refunded": 0,
                "currency": session["currency"],
                "customer": session["customer"],
                "payment_intent": intent_id,
                "payment_method": method["id"],
                "payment_method_details": {
                    "type": "card",
                    "card": {"brand": test_card.brand, "last4": test_card.last4},
                },
                "metadata": dict(session["payment_intent_data_metadata"]),
                "paid": not asynchronous,
                "refunded": False,
                "disputed": False,
                "receipt_url": f"{self.base_url}/receipts/{charge_id}",
                "status": "pending" if asynchronous else "succeeded",
                "livemode": False,
                # What Stripe keeps of the payer (what account closure must not leave stored).
                "billing_details": {
                    "email": email,
                    "name": "Ada Lovelace",
                    "phone": None,
                    "address": {"line1": "12 St James's Square", "city": "London"},
                },
                "receipt_email": email,
            }
            self.payment_intents[intent_id] = {
                "id": intent_id,
                "object": "payment_intent",
                "amount": session["amount_total"],
                "amount_received": 0 if asynchronous else session["amount_total"],
                "currency": session["currency"],
                "customer": session["customer"],
                "payment_method": method["id"],
                "setup_future_usage": session["setup_future_usage"],
                "latest_charge": charge_id,
                "last_payment_error": None,
                "metadata": dict(session["payment_intent_data_metadata"]),
                "status": "processing" if asynchronous else "succeeded",
                "livemode": False,
            }
            session.update(
                status="complete",
                payment_status="unpaid" if asynchronous else "paid",
                payment_intent=intent_id,
                customer_details={
                    "email": email,
                    "name": "Ada Lovelace",
                    "address": {"line1": "12 St James's Square", "city": "London"},
                },
            )
            if not asynchronous:
                self._invoice_for(session)
            return self._public(session)

    def settle(self, session_id: str, *, succeeded: bool = True) -> dict[str, Any]:
        """An asynchronous payment clears (or fails)."""
        with self._lock:
            session = self.sessions[session_id]
            intent = self.payment_intents[session["payment_intent"]]
            charge = self.charges[intent["latest_charge"]]
            charge.update(paid=succeeded, status="succeeded" if succeeded else "failed")
            intent["status"] = "succeeded" if succeeded else "requires_payment_method"
            session["payment_status"] = "paid" if succeeded else "unpaid"
            if succeeded:
                intent["amount_received"] = intent["amount"]
                self._invoice_for(session)
            return self._public(session)

    def payment_intent(self, intent_id: str) -> dict[str, Any]:
        """A PaymentIntent as the API shows it (and as ``payment_intent.*`` events carry it)."""
        return json.loads(json.dumps(self.payment_intents[intent_id]))

    def only_payment_intent(self, **match: Any) -> dict[str, Any]:
        """The one PaymentIntent whose fields are ``match``."""
        found = [
            i for i in self.payment_intents.values() if all(i.get(k) == v for k, v in match.items())
        ]
        assert len(found) == 1, found
        return self.payment_intent(found[0]["id"])

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        """An Invoice as the API shows it (and as ``invoice.*`` events carry it)."""
        return self._invoice_view(self.invoices[invoice_id], expand_payments=False)

    def invoice_for(self, session_id: str) -> dict[str, Any]:
        return self.invoice(self.sessions[session_id]["invoice"])

    def customer(self, customer_id: str) -> dict[str, Any]:
        """A Customer as the API shows it, with its tax ids."""
        with self._lock:
            return self._customer_view(self.customers[customer_id], expand_tax_ids=True)

    def saved_card(self, customer_id: str) -> dict[str, Any]:
        """The one PaymentMethod attached to the Customer."""
        [method] = [m for m in self.payment_methods.values() if m["customer"] == customer_id]
        return dict(method)

    def decline_later(
        self,
        payment_method_id: str,
        code: str = "card_declined",
        decline_code: str = "insufficient_funds",
        message: str = "Your card has insufficient funds.",
    ) -> None:
        """The bank starts declining a saved card (it ran out of funds, was cancelled...)."""
        with self._lock:
            card = self._cards[payment_method_id]
            self._cards[payment_method_id] = TestCard(
                card.brand, card.last4, (code, decline_code, message)
            )

    def expire(self, session_id: str) -> dict[str, Any]:
        with self._lock:
            session = self.sessions[session_id]
            session.update(status="expired", url=None)
            return self._public(session)

    def charge_for(self, session_id: str) -> dict[str, Any]:
        intent = self.payment_intents[self.sessions[session_id]["payment_intent"]]
        return dict(self.charges[intent["latest_charge"]])

    def refund(self, session_id: str, amount_cents: int) -> dict[str, Any]:
        """Refund ``amount_cents`` more; the charge (as in ``charge.refunded``) carries the
        running total in ``amount_refunded``. The refund itself: ``latest_refund``."""
        with self._lock:
            intent = self.payment_intents[self.sessions[session_id]["payment_intent"]]
            charge = self.charges[intent["latest_charge"]]
            amount_cents = min(amount_cents, charge["amount"] - charge["amount_refunded"])
            refund_id = _id("re")
            self.refunds[refund_id] = {
                "id": refund_id,
                "object": "refund",
                "amount": amount_cents,
                "currency": charge["currency"],
                "charge": charge["id"],
                "payment_intent": intent["id"],
                "metadata": {},
                "reason": "requested_by_customer",
                "status": "succeeded",
                "failure_reason": None,
                "created": int(time.time()),
            }
            charge["amount_refunded"] += amount_cents
            charge["refunded"] = charge["amount_refunded"] == charge["amount"]
            return dict(charge)

    def latest_refund(self, session_id: str) -> dict[str, Any]:
        """The last refund made of the session's charge (as in ``refund.created``)."""
        charge_id = self.payment_intents[self.sessions[session_id]["payment_intent"]][
            "latest_charge"
        ]
        return dict([r for r in self.refunds.values() if r["charge"] == charge_id][-1])

    def fail_refund(self, refund_id: str, status: str = "failed") -> dict[str, Any]:
        """The refund fails (the card was closed) or is canceled: the money comes back to the
        Stripe balance. Returns the refund (as in ``refund.failed`` and ``refund.updated``)."""
        with self._lock:
            refund = self.refunds[refund_id]
            refund.update(status=status, failure_reason="expired_or_canceled_card")
            charge = self.charges[refund["charge"]]
            if not self.failed_refunds_stay_in_amount_refunded:
                charge["amount_refunded"] -= refund["amount"]
                charge["refunded"] = False
            return dict(refund)

    def dispute(self, session_id: str, amount_cents: int | None = None) -> dict[str, Any]:
        with self._lock:
            intent = self.payment_intents[self.sessions[session_id]["payment_intent"]]
            charge = self.charges[intent["latest_charge"]]
            charge["disputed"] = True
            dispute = {
                "id": _id("dp"),
                "object": "dispute",
                "amount": charge["amount"] if amount_cents is None else amount_cents,
                "currency": charge["currency"],
                "charge": charge["id"],
                "payment_intent": intent["id"],
                "reason": "fraudulent",
                "status": "needs_response",
                "livemode": False,
                "metadata": {},
                "evidence": {
                    "customer_email_address": charge["receipt_email"],
                    "customer_name": "Ada Lovelace",
                    "billing_address": "12 St James's Square, London",
                },
            }
            self.disputes[dispute["id"]] = dispute
            return dict(dispute)

    def close_dispute(self, dispute_id: str, status: str) -> dict[str, Any]:
        """The card network decides: ``won``, ``lost`` (or ``warning_closed`` for an inquiry).
        Returns the dispute (as in ``charge.dispute.closed``)."""
        with self._lock:
            dispute = self.disputes[dispute_id]
            dispute["status"] = status
            return dict(dispute)

    def event(
        self, event_type: str, obj: dict[str, Any], *, livemode: bool = False
    ) -> dict[str, Any]:
        """A v1 snapshot event, as Stripe posts it to a webhook endpoint."""
        return {
            "id": _id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "type": event_type,
            "livemode": livemode,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "data": {"object": obj},
        }

    # --- The HTTP side ----------------------------------------------------------------------

    # What the API never shows of a session (the fake's own notes).
    _PRIVATE = ("payment_intent_data_metadata", "setup_future_usage")

    def _public(self, session: dict[str, Any]) -> dict[str, Any]:
        return json.loads(json.dumps({k: v for k, v in session.items() if k not in self._PRIVATE}))

    def _session_email(self, session: dict[str, Any]) -> str | None:
        if session["customer"]:
            return self.customers[session["customer"]]["email"]
        return session["customer_email"]

    def _new_payment_method(self, card: str) -> dict[str, Any]:
        test_card = TEST_CARDS[card]
        method: dict[str, Any] = {
            "id": _id("pm"),
            "object": "payment_method",
            "type": "card",
            "card": {"brand": test_card.brand, "last4": test_card.last4, "exp_year": 2034},
            "customer": None,
            "livemode": False,
        }
        self.payment_methods[method["id"]] = method
        self._cards[method["id"]] = test_card
        return method

    def _invoice_for(self, session: dict[str, Any]) -> None:
        """Checkout's invoice of a paid session (invoice_creation): finalized and paid, made out
        to the session's Customer as it is now."""
        creation = session["invoice_creation"]
        if not creation["enabled"] or session["invoice"]:
            return
        customer = self.customers[session["customer"]]
        data = creation["invoice_data"]
        self._invoice_numbers += 1
        invoice_id = _id("in")
        self.invoices[invoice_id] = {
            "id": invoice_id,
            "object": "invoice",
            "number": f"FAKE-{self._invoice_numbers:04d}",
            "status": "paid",
            "customer": customer["id"],
            "customer_name": customer["name"],
            "customer_email": customer["email"],
            "customer_address": customer["address"],
            "customer_tax_ids": [
                {"type": t["type"], "value": t["value"]}
                for t in self.tax_ids.values()
                if t["customer"] == customer["id"]
            ],
            "description": data.get("description"),
            "footer": data.get("footer"),
            "metadata": dict(data.get("metadata") or {}),
            "amount_paid": session["amount_total"],
            "currency": session["currency"],
            "hosted_invoice_url": f"{self.base_url}/invoices/{invoice_id}",
            "invoice_pdf": f"{self.base_url}/invoices/{invoice_id}/pdf",
            "livemode": False,
        }
        session["invoice"] = invoice_id

    def _create_session(self, form: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            if form.get("customer") and form.get("customer_email"):
                raise _invalid(
                    "You may only specify one of these parameters: customer, customer_email.",
                    param="customer_email",
                )
            if form.get("customer") and form["customer"] not in self.customers:
                raise _invalid(
                    f"No such customer: '{form['customer']}'",
                    code="resource_missing",
                    param="customer",
                )
            session_id = _id("cs")
            unit = int(form["line_items[0][price_data][unit_amount]"])
            quantity = int(form.get("line_items[0][quantity]", "1"))
            metadata = _nested(form, "metadata")
            pi_metadata = _nested(form, "payment_intent_data[metadata]")
            invoice_data = {
                "description": form.get("invoice_creation[invoice_data][description]"),
                "footer": form.get("invoice_creation[invoice_data][footer]"),
                "metadata": _nested(form, "invoice_creation[invoice_data][metadata]"),
            }
            session = {
                "id": session_id,
                "object": "checkout.session",
                "mode": form.get("mode"),
                "status": "open",
                "payment_status": "unpaid",
                "amount_total": unit * quantity,
                "currency": form["line_items[0][price_data][currency]"],
                "client_reference_id": form.get("client_reference_id"),
                "customer": form.get("customer"),
                "customer_email": form.get("customer_email"),
                "metadata": metadata,
                "payment_intent": None,
                "invoice": None,
                "invoice_creation": {
                    "enabled": form.get("invoice_creation[enabled]") == "true",
                    "invoice_data": invoice_data,
                },
                "success_url": form.get("success_url"),
                "cancel_url": form.get("cancel_url"),
                "livemode": False,
                "url": f"{self.base_url}/checkout/{session_id}",
                "created": int(time.time()),
                "expires_at": int(time.time()) + 86400,
                "payment_intent_data_metadata": pi_metadata,
                "setup_future_usage": form.get("payment_intent_data[setup_future_usage]"),
            }
            self.sessions[session_id] = session
            return self._public(session)

    def _customer_view(self, customer: dict[str, Any], *, expand_tax_ids: bool) -> dict[str, Any]:
        view = json.loads(json.dumps(customer))
        if expand_tax_ids:
            items = [dict(t) for t in self.tax_ids.values() if t["customer"] == customer["id"]]
            view["tax_ids"] = {"object": "list", "data": items, "has_more": False}
        return view

    def _check_tax_id(self, tax_type: str, value: str, param: str) -> None:
        pattern = TAX_ID_FORMATS.get(tax_type)
        if pattern is None:
            raise _invalid(f"Invalid tax id type: {tax_type}", param=param.replace("value", "type"))
        if not re.fullmatch(pattern, value):
            raise _invalid(f"Invalid value for {tax_type}.", code="tax_id_invalid", param=param)

    def _new_tax_id(self, customer_id: str, tax_type: str, value: str) -> dict[str, Any]:
        tax_id: dict[str, Any] = {
            "id": _id("txi"),
            "object": "tax_id",
            "customer": customer_id,
            "type": tax_type,
            "value": value,
            "verification": {"status": "pending"},
            "livemode": False,
        }
        self.tax_ids[tax_id["id"]] = tax_id
        return tax_id

    @staticmethod
    def _address_from(form: dict[str, str], current: Any) -> Any:
        if form.get("address") == "":
            return None  # "" unsets it
        fields = _nested(form, "address")
        if not fields:
            return current
        keys = ("line1", "line2", "city", "postal_code", "state", "country")
        return {key: fields.get(key) or None for key in keys}

    def _create_customer(self, form: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            tax_type = form.get("tax_id_data[0][type]")
            if tax_type:
                self._check_tax_id(tax_type, form["tax_id_data[0][value]"], "tax_id_data[0][value]")
            customer = {
                "id": _id("cus"),
                "object": "customer",
                "email": form.get("email"),
                "name": form.get("name") or None,
                "address": self._address_from(form, None),
                "metadata": _nested(form, "metadata"),
                "livemode": False,
            }
            self.customers[customer["id"]] = customer
            if tax_type:
                self._new_tax_id(customer["id"], tax_type, form["tax_id_data[0][value]"])
            return self._customer_view(customer, expand_tax_ids="tax_ids" in form.values())

    def _update_customer(self, customer_id: str, form: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            customer = self.customers[customer_id]
            if "email" in form:
                customer["email"] = form["email"] or None
            if "name" in form:
                customer["name"] = form["name"] or None
            customer["address"] = self._address_from(form, customer["address"])
            return self._customer_view(customer, expand_tax_ids=False)

    def _create_tax_id(self, customer_id: str, form: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            if customer_id not in self.customers:
                raise KeyError(customer_id)
            self._check_tax_id(form.get("type", ""), form.get("value", ""), "value")
            return dict(self._new_tax_id(customer_id, form["type"], form["value"]))

    def _delete_tax_id(self, customer_id: str, tax_id: str) -> dict[str, Any]:
        with self._lock:
            if self.tax_ids.get(tax_id, {}).get("customer") != customer_id:
                raise KeyError(tax_id)
            del self.tax_ids[tax_id]
            return {"id": tax_id, "object": "tax_id", "deleted": True}

    def _detach(self, method_id: str) -> dict[str, Any]:
        with self._lock:
            method = self.payment_methods[method_id]
            if method["customer"] is None:
                raise _invalid(
                    "The payment method you provided is not attached to a customer so "
                    "detachment is impossible.",
                    code="payment_method_unexpected_state",
                )
            method["customer"] = None
            return dict(method)

    def _create_payment_intent(self, form: dict[str, str]) -> dict[str, Any]:
        """A PaymentIntent; with ``confirm``, charged at once (the only way the product
        makes one: off-session, to a saved card)."""
        with self._lock:
            customer_id = form.get("customer")
            method_id = form.get("payment_method", "")
            if customer_id and customer_id not in self.customers:
                raise _invalid(
                    f"No such customer: '{customer_id}'", code="resource_missing", param="customer"
                )
            method = self._payment_method_of(customer_id, method_id)
            intent_id = _id("pi")
            amount = int(form["amount"])
            intent: dict[str, Any] = {
                "id": intent_id,
                "object": "payment_intent",
                "amount": amount,
                "amount_received": 0,
                "currency": form["currency"],
                "customer": customer_id,
                "description": form.get("description"),
                "payment_method": method["id"],
                "setup_future_usage": None,
                "latest_charge": None,
                "last_payment_error": None,
                "metadata": _nested(form, "metadata"),
                "status": "requires_confirmation",
                "livemode": False,
            }
            self.payment_intents[intent_id] = intent
            if form.get("confirm") != "true":
                return self.payment_intent(intent_id)
            self._confirm(intent, method, off_session=form.get("off_session") == "true")
            return self.payment_intent(intent_id)

    def _payment_method_of(self, customer_id: str | None, method_id: str) -> dict[str, Any]:
        """The PaymentMethod a payment of ``customer_id`` asks for (a test card's id makes a
        fresh one, attached to the Customer); 400 when it is not the Customer's."""
        if method_id in TEST_CARDS:
            # Stripe's test PaymentMethod ids each make a fresh PaymentMethod of the card.
            method = self._new_payment_method(method_id)
            method["customer"] = customer_id
            return method
        if method_id in self.payment_methods:
            method = self.payment_methods[method_id]
            if method["customer"] != customer_id:
                raise _invalid(
                    f"The provided PaymentMethod {method_id} was previously used with a "
                    "PaymentIntent without Customer attachment, shared with a connected "
                    "account without Customer attachment, or was detached from a Customer.",
                    code="payment_method_unexpected_state",
                    param="payment_method",
                )
            return method
        raise _invalid(
            f"No such PaymentMethod: '{method_id}'", code="resource_missing", param="payment_method"
        )

    def _confirm(
        self, intent: dict[str, Any], method: dict[str, Any], *, off_session: bool
    ) -> None:
        """Charge a PaymentIntent to the card (with the lock held): succeeded, or a 402
        ``card_error`` carrying the failed PaymentIntent when the bank declines."""
        intent_id = intent["id"]
        amount = intent["amount"]
        customer_id = intent["customer"]
        intent["payment_method"] = method["id"]
        card = self._cards[method["id"]]
        decline = card.off_session_decline if off_session else None
        charge_id = _id("ch")
        charge = {
            "id": charge_id,
            "object": "charge",
            "amount": amount,
            "amount_refunded": 0,
            "currency": intent["currency"],
            "customer": customer_id,
            "payment_intent": intent_id,
            "payment_method": method["id"],
            "payment_method_details": {
                "type": "card",
                "card": {"brand": card.brand, "last4": card.last4},
            },
            "metadata": dict(intent["metadata"]),
            "paid": decline is None,
            "refunded": False,
            "disputed": False,
            "receipt_url": f"{self.base_url}/receipts/{charge_id}",
            "status": "succeeded" if decline is None else "failed",
            "livemode": False,
        }
        if decline is None:
            self.charges[charge_id] = charge
            intent.update(status="succeeded", amount_received=amount, latest_charge=charge_id)
            return
        code, decline_code, message = decline
        error: dict[str, Any] = {
            "type": "card_error",
            "code": code,
            "decline_code": decline_code,
            "message": message,
            "payment_method": dict(method),
        }
        if code != "authentication_required":
            # The bank was asked and said no: a failed charge. (Authentication is asked for
            # before any charge is made.)
            self.charges[charge_id] = charge
            intent["latest_charge"] = charge_id
            error["charge"] = charge_id
        intent.update(status="requires_payment_method", last_payment_error=dict(error))
        raise _Refusal(402, {**error, "payment_intent": self.payment_intent(intent_id)})

    # --- Invoices charged to a saved card -----------------------------------------------------

    # What the API never shows of an invoice (the fake's own notes).
    _INVOICE_PRIVATE = ("_payment_intent",)

    def _invoice_view(self, invoice: dict[str, Any], *, expand_payments: bool) -> dict[str, Any]:
        view = {k: v for k, v in invoice.items() if k not in self._INVOICE_PRIVATE}
        intent_id = invoice.get("_payment_intent")
        if expand_payments:
            # Since API version 2025-03-31 an invoice names its PaymentIntent only in its
            # payments (an includable list), never in a payment_intent field.
            payments = []
            if intent_id:
                payments.append(
                    {
                        "id": f"inpay_{intent_id}",
                        "object": "invoice_payment",
                        "invoice": invoice["id"],
                        "is_default": True,
                        "status": "paid" if invoice["status"] == "paid" else "open",
                        "payment": {"type": "payment_intent", "payment_intent": intent_id},
                    }
                )
            view["payments"] = {"object": "list", "data": payments, "has_more": False}
        return json.loads(json.dumps(view))

    def _snapshot_customer(self, invoice: dict[str, Any]) -> None:
        """The Customer's details, copied onto the invoice (Stripe freezes them at finalization)."""
        customer = self.customers[invoice["customer"]]
        invoice.update(
            customer_name=customer["name"],
            customer_email=customer["email"],
            customer_address=customer["address"],
            customer_tax_ids=[
                {"type": t["type"], "value": t["value"]}
                for t in self.tax_ids.values()
                if t["customer"] == customer["id"]
            ],
        )

    def _create_invoice(self, form: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            customer_id = form.get("customer", "")
            if customer_id not in self.customers:
                raise _invalid(
                    f"No such customer: '{customer_id}'", code="resource_missing", param="customer"
                )
            if form.get("collection_method", "charge_automatically") != "charge_automatically":
                raise _invalid("The fake charges invoices automatically only.")
            invoice_id = _id("in")
            invoice: dict[str, Any] = {
                "id": invoice_id,
                "object": "invoice",
                "number": None,
                "status": "draft",
                "customer": customer_id,
                "collection_method": "charge_automatically",
                "auto_advance": form.get("auto_advance") == "true",
                "description": form.get("description"),
                "footer": form.get("footer"),
                "metadata": _nested(form, "metadata"),
                "currency": form.get("currency") or "usd",
                "lines": {"object": "list", "data": []},
                "amount_due": 0,
                "amount_paid": 0,
                "amount_remaining": 0,
                "total": 0,
                "hosted_invoice_url": None,
                "invoice_pdf": None,
                "livemode": False,
                "_payment_intent": None,
            }
            self._snapshot_customer(invoice)
            self.invoices[invoice_id] = invoice
            # Stripe's default (``include``) takes the Customer's pending invoice items.
            if form.get("pending_invoice_items_behavior", "include") == "include":
                for item in self.invoice_items.values():
                    if item["customer"] == customer_id and item["invoice"] is None:
                        self._add_line(invoice, item)
            return self._invoice_view(invoice, expand_payments=False)

    def _add_line(self, invoice: dict[str, Any], item: dict[str, Any]) -> None:
        item["invoice"] = invoice["id"]
        invoice["lines"]["data"].append(
            {
                "id": _id("il"),
                "object": "line_item",
                "amount": item["amount"],
                "currency": item["currency"],
                "description": item["description"],
                "metadata": dict(item["metadata"]),
            }
        )
        total = sum(line["amount"] for line in invoice["lines"]["data"])
        invoice.update(total=total, amount_due=total, amount_remaining=total)

    def _create_invoice_item(self, form: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            customer_id = form.get("customer", "")
            if customer_id not in self.customers:
                raise _invalid(
                    f"No such customer: '{customer_id}'", code="resource_missing", param="customer"
                )
            item: dict[str, Any] = {
                "id": _id("ii"),
                "object": "invoiceitem",
                "customer": customer_id,
                "amount": int(form["amount"]),
                "currency": form["currency"],
                "description": form.get("description"),
                "metadata": _nested(form, "metadata"),
                "invoice": None,
                "livemode": False,
            }
            invoice_id = form.get("invoice")
            if invoice_id:
                invoice = self.invoices.get(invoice_id)
                if invoice is None or invoice["customer"] != customer_id:
                    raise _invalid(
                        f"No such invoice: '{invoice_id}'", code="resource_missing", param="invoice"
                    )
                if invoice["status"] != "draft":
                    raise _invalid(
                        "You can only add invoice items to draft invoices.",
                        code="invoice_not_editable",
                        param="invoice",
                    )
                if invoice["currency"] != item["currency"]:
                    raise _invalid("The currency is not the invoice's.", param="currency")
                self._add_line(invoice, item)
            self.invoice_items[item["id"]] = item
            return dict(item)

    def _finalize(self, invoice: dict[str, Any]) -> None:
        """A draft gets its number, links and PaymentIntent, and the Customer's details."""
        if invoice["status"] != "draft":
            raise _invalid(
                "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
                code="invoice_unexpected_state",
            )
        self._invoice_numbers += 1
        invoice_id = invoice["id"]
        self._snapshot_customer(invoice)
        invoice.update(
            number=f"FAKE-{self._invoice_numbers:04d}",
            status="open",
            hosted_invoice_url=f"{self.base_url}/invoices/{invoice_id}",
            invoice_pdf=f"{self.base_url}/invoices/{invoice_id}/pdf",
        )
        if invoice["amount_due"] == 0:
            invoice["status"] = "paid"
            return
        intent_id = _id("pi")
        self.payment_intents[intent_id] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": invoice["amount_due"],
            "amount_received": 0,
            "currency": invoice["currency"],
            "customer": invoice["customer"],
            "description": f"Payment for Invoice {invoice['number']}",
            "payment_method": None,
            "setup_future_usage": None,
            "latest_charge": None,
            "last_payment_error": None,
            # Stripe copies none of the invoice's metadata onto its PaymentIntent.
            "metadata": {},
            "status": "requires_payment_method",
            "livemode": False,
        }
        invoice["_payment_intent"] = intent_id

    def _finalize_invoice(self, invoice_id: str, form: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            invoice = self.invoices[invoice_id]
            self._finalize(invoice)
            return self._invoice_view(invoice, expand_payments="payments" in form.values())

    def _pay_invoice(self, invoice_id: str, form: dict[str, str]) -> dict[str, Any]:
        """Charge an invoice (finalizing a draft first), to ``payment_method``; ``off_session``
        as a saved card is charged while its owner is away."""
        with self._lock:
            invoice = self.invoices[invoice_id]
            if invoice["status"] == "draft":
                self._finalize(invoice)
            if invoice["status"] == "paid":
                raise _invalid("Invoice is already paid.", code="invoice_unexpected_state")
            if invoice["status"] != "open":
                raise _invalid(f"You cannot pay an invoice that is {invoice['status']}.")
            method = self._payment_method_of(invoice["customer"], form.get("payment_method", ""))
            intent = self.payment_intents[invoice["_payment_intent"]]
            self._confirm(intent, method, off_session=form.get("off_session") == "true")
            invoice.update(
                status="paid",
                amount_paid=invoice["amount_due"],
                amount_remaining=0,
            )
            return self._invoice_view(invoice, expand_payments="payments" in form.values())

    def _void_invoice(self, invoice_id: str) -> dict[str, Any]:
        """Only an open (or uncollectible) invoice can be voided."""
        with self._lock:
            invoice = self.invoices[invoice_id]
            if invoice["status"] not in ("open", "uncollectible"):
                raise _invalid(
                    f"You can only void invoices that are open or uncollectible; this one is "
                    f"{invoice['status']}.",
                    code="invoice_not_editable",
                )
            invoice.update(status="void", amount_remaining=0)
            return self._invoice_view(invoice, expand_payments=False)

    def only_invoice(self, **match: Any) -> dict[str, Any]:
        """The one Invoice whose fields are ``match``."""
        found = [i for i in self.invoices.values() if all(i.get(k) == v for k, v in match.items())]
        assert len(found) == 1, found
        return self.invoice(found[0]["id"])

    def invoice_payment_intent(self, invoice_id: str) -> dict[str, Any]:
        """The PaymentIntent of an invoice charged to a saved card."""
        return self.payment_intent(self.invoices[invoice_id]["_payment_intent"])

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length).decode() if length else ""
        form = dict(parse_qsl(body, keep_blank_values=True))
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        path = split.path
        if path.startswith("/v1/"):
            headers = {k.lower(): v for k, v in request.headers.items()}
            with self._lock:
                self.requests.append(Recorded(method, path, headers, form, query))
                failure = next(
                    (
                        f
                        for f in self._failures
                        if f.method == method and path.startswith(f.path_prefix)
                    ),
                    None,
                )
                if failure is not None:
                    self._failures.remove(failure)
            if failure is not None:
                error = {
                    "type": failure.error_type,
                    "message": failure.message,
                    "code": failure.code,
                    "param": failure.param,
                }
                # No retries by the SDK: the test decides what happens next.
                _send(request, failure.status, {"error": error}, {"Stripe-Should-Retry": "false"})
                return
            if not request.headers.get("Authorization", "").startswith("Bearer sk_"):
                _send(
                    request, 401, {"error": {"type": "invalid_request_error", "message": "No key"}}
                )
                return
            key = request.headers.get("Idempotency-Key", "")
            if method == "POST" and key:
                with self._idempotency_lock:
                    self._answer_once(request, key, method, path, form)
                return
            status, answer = self._api(method, path, form, query)
            _send(request, status, answer)
            return
        self._pages(request, method, path)

    def _answer_once(
        self,
        request: BaseHTTPRequestHandler,
        key: str,
        method: str,
        path: str,
        form: dict[str, str],
    ) -> None:
        """Stripe's idempotency: the first answer to a key, kept and given again."""
        kept = self._answers.get(key)
        if kept is not None:
            if (kept[0], kept[1], kept[2]) != (method, path, form):
                error = {
                    "type": "idempotency_error",
                    "message": "Keys for idempotent requests can only be used with the same "
                    "parameters they were first used with.",
                }
                _send(request, 400, {"error": error})
                return
            _send(request, kept[3], kept[4], {"Idempotent-Replayed": "true"})
            return
        status, answer = self._api(method, path, form, {})
        self._answers[key] = (method, path, form, status, answer)
        _send(request, status, answer)

    def _api(
        self, method: str, path: str, form: dict[str, str], query: dict[str, str]
    ) -> tuple[int, Any]:
        parts = path.strip("/").split("/")[1:]
        try:
            return 200, self._route(method, parts, form, query)
        except _Refusal as refusal:
            return refusal.status, {"error": refusal.error}
        except KeyError as exc:
            error = {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "message": f"No such object: {exc}",
            }
            return 404, {"error": error}

    def _route(
        self, method: str, parts: list[str], form: dict[str, str], query: dict[str, str]
    ) -> Any:
        if method == "POST" and parts == ["checkout", "sessions"]:
            return self._create_session(form)
        if method == "GET" and parts[:2] == ["checkout", "sessions"] and len(parts) == 3:
            return self._public(self.sessions[parts[2]])
        if method == "GET" and parts[0] == "payment_intents" and len(parts) == 2:
            intent = self.payment_intent(parts[1])
            if "latest_charge" in query.values() and intent["latest_charge"]:
                intent["latest_charge"] = dict(self.charges[intent["latest_charge"]])
            return intent
        if method == "POST" and parts == ["payment_intents"]:
            return self._create_payment_intent(form)
        if method == "POST" and parts == ["customers"]:
            return self._create_customer(form)
        if parts[0] == "customers" and len(parts) == 2:
            if method == "POST":
                return self._update_customer(parts[1], form)
            if method == "GET":
                return self.customer(parts[1])
        if method == "POST" and parts[0] == "customers" and parts[2:] == ["tax_ids"]:
            return self._create_tax_id(parts[1], form)
        if method == "DELETE" and parts[0] == "customers" and parts[2:3] == ["tax_ids"]:
            return self._delete_tax_id(parts[1], parts[3])
        if method == "GET" and parts[0] == "invoices" and len(parts) == 2:
            invoice = self.invoices[parts[1]]
            return self._invoice_view(invoice, expand_payments="payments" in query.values())
        if method == "POST" and parts == ["invoices"]:
            return self._create_invoice(form)
        if method == "POST" and parts[0] == "invoices" and parts[2:] == ["finalize"]:
            return self._finalize_invoice(parts[1], form)
        if method == "POST" and parts[0] == "invoices" and parts[2:] == ["pay"]:
            return self._pay_invoice(parts[1], form)
        if method == "POST" and parts[0] == "invoices" and parts[2:] == ["void"]:
            return self._void_invoice(parts[1])
        if method == "POST" and parts == ["invoiceitems"]:
            return self._create_invoice_item(form)
        if method == "POST" and parts[0] == "payment_methods" and parts[2:] == ["detach"]:
            return self._detach(parts[1])
        raise _Refusal(404, {"type": "invalid_request_error", "message": "/".join(parts)})

    def _pages(self, request: BaseHTTPRequestHandler, method: str, path: str) -> None:
        """What a browser sees: Checkout's page, receipts and invoices."""
        parts = path.strip("/").split("/")
        try:
            if method == "GET" and parts[0] == "checkout" and len(parts) == 2:
                _send_html(request, 200, self._checkout_page(self.sessions[parts[1]]))
            elif method == "POST" and parts[0] == "checkout" and parts[2:] == ["pay"]:
                session = self.pay(parts[1])
                success = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
                request.send_response(303)
                request.send_header("Location", success)
                request.send_header("Content-Length", "0")
                request.end_headers()
            elif method == "GET" and parts[0] == "receipts":
                _send_html(request, 200, f"<h1>Receipt</h1><p>Charge {html.escape(parts[1])}</p>")
            elif method == "GET" and parts[0] == "invoices" and len(parts) == 2:
                invoice = self.invoices[parts[1]]
                _send_html(request, 200, f"<h1>Invoice {html.escape(invoice['number'])}</h1>")
            elif method == "GET" and parts[0] == "invoices" and parts[2:] == ["pdf"]:
                invoice = self.invoices[parts[1]]
                _send_pdf(request, f"Invoice {invoice['number']} to {invoice['customer_name']}")
            elif path == "/favicon.ico":
                request.send_response(204)
                request.send_header("Content-Length", "0")
                request.end_headers()
            else:
                _send(request, 404, {"error": {"type": "invalid_request_error", "message": path}})
        except KeyError as exc:
            error = {"type": "invalid_request_error", "message": f"No such object: {exc}"}
            _send(request, 404, {"error": error})

    def _checkout_page(self, session: dict[str, Any]) -> str:
        amount = f"{session['amount_total'] / 100:.2f} {session['currency'].upper()}"
        esc = html.escape
        return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Fake Stripe Checkout</title>
<link rel="icon" href="data:,"></head>
<body style="font-family: system-ui, sans-serif; max-width: 28rem; margin: 3rem auto">
<h1>Fake Stripe Checkout</h1>
<p>Pay <strong>{esc(amount)}</strong> to Seedream API ({esc(session["id"])}).</p>
<form method="post" action="/checkout/{esc(session["id"])}/pay">
<button type="submit">Pay</button></form>
<p><a href="{esc(session["cancel_url"] or "")}">Back</a></p>
</body></html>"""


def _send(
    request: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str] | None = None
) -> None:
    data = json.dumps(body).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(data)))
    request.send_header("Request-Id", _id("req"))
    for name, value in (headers or {}).items():
        request.send_header(name, value)
    request.end_headers()
    request.wfile.write(data)


def _send_pdf(request: BaseHTTPRequestHandler, text: str) -> None:
    """A one-page PDF saying ``text`` (ASCII), enough for a browser to show it."""
    words = text.encode("ascii", "replace").replace(b"(", b"[").replace(b")", b"]")
    stream = b"BT /F1 18 Tf 72 720 Td (" + words + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    data = b"%PDF-1.4\n"
    offsets = []
    for number, obj in enumerate(objects, 1):
        offsets.append(len(data))
        data += f"{number} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(data)
    data += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    data += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    data += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    data += f"startxref\n{xref}\n%%EOF\n".encode()
    request.send_response(200)
    request.send_header("Content-Type", "application/pdf")
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)


def _send_html(request: BaseHTTPRequestHandler, status: int, text: str) -> None:
    data = text.encode()
    request.send_response(status)
    request.send_header("Content-Type", "text/html; charset=utf-8")
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)


@contextmanager
def running_fake_stripe() -> Iterator[FakeStripe]:
    """The fake on a free loopback port, served from a thread, for the ``with`` block."""
    fake = FakeStripe()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.handle(self, "GET")

        def do_POST(self) -> None:
            fake.handle(self, "POST")

        def do_DELETE(self) -> None:
            fake.handle(self, "DELETE")

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
