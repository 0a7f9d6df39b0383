"""A small fake of Stripe's HTTP API, owned by the tests, and webhooks signed the real way.

stripe-python is pointed at it through STRIPE_API_BASE, so the product's real client code runs:
form-encoded POSTs, the Idempotency-Key header, the Authorization header. It answers only what
the product calls:

- ``POST /v1/checkout/sessions`` and ``GET /v1/checkout/sessions/{id}``
- ``GET /v1/payment_intents/{id}`` (``expand[]=latest_charge`` gives the charge and its receipt)

and serves a stand-in for the hosted Checkout page (``GET /checkout/{id}``, whose "Pay" button
completes the session and sends the browser to the success URL) and a receipt page. Tests move
sessions along with ``pay``, ``expire``, ``refund`` (then ``fail_refund``) and ``dispute`` (then
``close_dispute``), build the matching events with ``event``, and sign them with ``sign``
(``t=<unix>,v1=<HMAC-SHA256(secret, "t.payload")>``). Objects and events are in test mode, as
a ``sk_test_`` key sees them, unless a test says otherwise.

Whether Stripe takes a failed refund out of its charge's ``amount_refunded`` is not something
its reference says; ``failed_refunds_stay_in_amount_refunded`` picks either behaviour (default:
taken out), and the product must be right with both.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
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


@dataclass
class FakeStripe:
    base_url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    disputes: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed_refunds_stay_in_amount_refunded: bool = False
    _by_idempotency_key: dict[str, str] = field(default_factory=dict)
    _failures: list[_Failure] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.sessions.clear()
            self.payment_intents.clear()
            self.charges.clear()
            self.refunds.clear()
            self.disputes.clear()
            self.failed_refunds_stay_in_amount_refunded = False
            self._by_idempotency_key.clear()
            self._failures.clear()

    # --- What tests call --------------------------------------------------------------------

    def calls(self, method: str, path_prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def fail_next(
        self, method: str, path_prefix: str, status: int = 500, message: str = ""
    ) -> None:
        """The next matching API call answers ``status`` with a Stripe error body."""
        self._failures.append(_Failure(method, path_prefix, status, message or "fake failure"))

    def only_session(self) -> dict[str, Any]:
        """The one Checkout Session made so far, as the API shows it."""
        assert len(self.sessions) == 1, list(self.sessions)
        return self._public(next(iter(self.sessions.values())))

    def session(self, session_id: str) -> dict[str, Any]:
        return self._public(self.sessions[session_id])

    def pay(self, session_id: str, *, asynchronous: bool = False) -> dict[str, Any]:
        """The customer pays: the session completes, paid at once (a card) or later
        (``asynchronous``, a bank debit: then call ``settle``)."""
        with self._lock:
            session = self.sessions[session_id]
            intent_id, charge_id = _id("pi"), _id("ch")
            self.charges[charge_id] = {
                "id": charge_id,
                "object": "charge",
                "amount": session["amount_total"],
                "amount_refunded": 0,
                "currency": session["currency"],
                "payment_intent": intent_id,
                "metadata": dict(session["payment_intent_data_metadata"]),
                "paid": not asynchronous,
                "refunded": False,
                "disputed": False,
                "receipt_url": f"{self.base_url}/receipts/{charge_id}",
                "status": "pending" if asynchronous else "succeeded",
                "livemode": False,
                # What Stripe keeps of the payer (what account closure must not leave stored).
                "billing_details": {
                    "email": session["customer_email"],
                    "name": "Ada Lovelace",
                    "phone": None,
                    "address": {"line1": "12 St James's Square", "city": "London"},
                },
                "receipt_email": session["customer_email"],
            }
            self.payment_intents[intent_id] = {
                "id": intent_id,
                "object": "payment_intent",
                "amount": session["amount_total"],
                "currency": session["currency"],
                "latest_charge": charge_id,
                "metadata": dict(session["payment_intent_data_metadata"]),
                "status": "processing" if asynchronous else "succeeded",
                "livemode": False,
            }
            session.update(
                status="complete",
                payment_status="unpaid" if asynchronous else "paid",
                payment_intent=intent_id,
                customer_details={
                    "email": session["customer_email"],
                    "name": "Ada Lovelace",
                    "address": {"line1": "12 St James's Square", "city": "London"},
                },
            )
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
            return self._public(session)

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

    def _public(self, session: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in session.items() if k != "payment_intent_data_metadata"}

    def _create_session(self, form: dict[str, str], idempotency_key: str) -> dict[str, Any]:
        with self._lock:
            if idempotency_key and idempotency_key in self._by_idempotency_key:
                return self._public(self.sessions[self._by_idempotency_key[idempotency_key]])
            session_id = _id("cs")
            unit = int(form["line_items[0][price_data][unit_amount]"])
            quantity = int(form.get("line_items[0][quantity]", "1"))
            metadata = {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")}
            pi_prefix = "payment_intent_data[metadata]["
            pi_metadata = {
                k[len(pi_prefix) : -1]: v for k, v in form.items() if k.startswith(pi_prefix)
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
                "customer_email": form.get("customer_email"),
                "metadata": metadata,
                "payment_intent": None,
                "success_url": form.get("success_url"),
                "cancel_url": form.get("cancel_url"),
                "livemode": False,
                "url": f"{self.base_url}/checkout/{session_id}",
                "created": int(time.time()),
                "expires_at": int(time.time()) + 86400,
                "payment_intent_data_metadata": pi_metadata,
            }
            self.sessions[session_id] = session
            if idempotency_key:
                self._by_idempotency_key[idempotency_key] = session_id
            return self._public(session)

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
                error = {"type": "api_error", "message": failure.message}
                # No retries by the SDK: the test decides what happens next.
                _send(request, failure.status, {"error": error}, {"Stripe-Should-Retry": "false"})
                return
        parts = path.strip("/").split("/")
        try:
            if method == "POST" and path == "/v1/checkout/sessions":
                if not request.headers.get("Authorization", "").startswith("Bearer sk_"):
                    _send(
                        request,
                        401,
                        {"error": {"type": "invalid_request_error", "message": "No key"}},
                    )
                    return
                key = request.headers.get("Idempotency-Key", "")
                _send(request, 200, self._create_session(form, key))
            elif (
                method == "GET" and parts[:3] == ["v1", "checkout", "sessions"] and len(parts) == 4
            ):
                _send(request, 200, self._public(self.sessions[parts[3]]))
            elif method == "GET" and parts[:2] == ["v1", "payment_intents"] and len(parts) == 3:
                intent = dict(self.payment_intents[parts[2]])
                if "latest_charge" in query.values():
                    intent["latest_charge"] = dict(self.charges[intent["latest_charge"]])
                _send(request, 200, intent)
            elif method == "GET" and parts[0] == "checkout" and len(parts) == 2:
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
