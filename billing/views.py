"""The customer's billing page (balance, buying credits, promotion codes, history) and Stripe's
webhook endpoint."""

from __future__ import annotations

import logging
import uuid
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe
from django_ratelimit.core import is_ratelimited

from accounts.http import AuthenticatedRequest

from . import history, payments, services, stripe_client, webhooks
from .forms import AmountForm, PackForm, PromoCodeForm
from .models import Purchase

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
PURCHASES_SHOWN = 20
# The success page looks again every REFRESH_SECONDS, at most REFRESH_TIMES times.
REFRESH_SECONDS = 2
REFRESH_TIMES = 60
CHECKOUT_SESSIONS_EXCEEDED = (
    "You have opened many payment pages this hour: finish one of them, or try again later."
)
PROMO_ATTEMPTS_EXCEEDED = "Too many codes tried from this account or address: try again in an hour."


def _billing_page(
    request: AuthenticatedRequest,
    *,
    pack_form: PackForm | None = None,
    amount_form: AmountForm | None = None,
    promo_form: PromoCodeForm | None = None,
    status: int = 200,
) -> HttpResponse:
    balance = services.balance_credits(request.user)
    # One line per generation (its hold and release folded under its net), one per other move.
    page, lines = history.page(request.user, request.GET.get("page"), PAGE_SIZE)
    purchases = Purchase.objects.filter(
        user=request.user, checkout_session_id__isnull=False
    ).order_by("-created_at", "-id")[:PURCHASES_SHOWN]
    context: dict[str, Any] = {
        "balance_credits": balance,
        "owed_credits": services.debt_credits(request.user.pk),
        "credits_per_usd": settings.CREDITS_PER_USD,
        "page": page,
        "lines": lines,
        "card_payments": payments.card_payments_enabled(),
        "packs": payments.packs(),
        "pack_form": pack_form or PackForm(),
        "amount_form": amount_form or AmountForm(),
        "promo_form": promo_form or PromoCodeForm(),
        "purchases": list(purchases),
    }
    return render(request, "billing/ledger.html", context, status=status)


@login_required
@require_safe
def ledger(request: AuthenticatedRequest) -> HttpResponse:
    return _billing_page(request)


def _checkout_sessions(group: str, request: HttpRequest) -> str:
    return f"{settings.CHECKOUT_SESSIONS_PER_HOUR}/h"


@login_required
@require_POST
def buy(request: AuthenticatedRequest) -> HttpResponse:
    """Start a purchase of a pack (``pack``) or of a typed amount (``amount``): off to Stripe."""
    if not payments.card_payments_enabled():
        messages.error(request, "Card payments are not set up on this installation.")
        return _billing_page(request, status=503)
    pack_form, amount_form = None, None
    form: PackForm | AmountForm
    if "amount" in request.POST:
        form = amount_form = AmountForm(request.POST)
    else:
        form = pack_form = PackForm(request.POST)
    if not form.is_valid():
        return _billing_page(request, pack_form=pack_form, amount_form=amount_form, status=400)
    if is_ratelimited(
        request, group="checkout", key="user", rate=_checkout_sessions, increment=True
    ):
        # Each one is a session at Stripe: an account opening them without end is refused.
        messages.error(request, CHECKOUT_SESSIONS_EXCEEDED)
        return _billing_page(request, status=429)
    try:
        purchase = payments.start_purchase(
            request.user,
            form.amount_cents,
            site_url=request.build_absolute_uri("/"),
        )
    except payments.PurchaseNotStarted:
        messages.error(
            request,
            "Stripe's payment page could not be opened just now, and nothing was charged. "
            "Please try again in a minute.",
        )
        return _billing_page(request, status=502)
    # 303: the browser follows with a GET to Stripe's hosted page.
    return redirect_303(purchase.checkout_url)


def redirect_303(url: str) -> HttpResponse:
    response = HttpResponse(status=303)
    response["Location"] = url
    return response


@login_required
@require_safe
def purchase(request: AuthenticatedRequest, public_id: uuid.UUID) -> HttpResponse:
    """Where Stripe sends the customer after paying. Credits nothing: it shows what the webhook
    has done, and looks again every few seconds until it has."""
    bought = get_object_or_404(Purchase, public_id=public_id, user=request.user)
    progress = None
    refresh_url = ""
    if bought.status == Purchase.Status.PENDING:
        progress = payments.purchase_progress(bought).state
        try:
            tries = int(request.GET.get("wait", "0"))
        except ValueError:
            tries = 0
        if progress in ("crediting", "unknown") and tries < REFRESH_TIMES:
            query = {"session_id": request.GET.get("session_id", ""), "wait": tries + 1}
            refresh_url = f"?{urlencode(query)}"
    balance = services.balance_credits(request.user)
    return render(
        request,
        "billing/purchase.html",
        {
            "purchase": bought,
            "progress": progress,
            "refresh_url": refresh_url,
            "refresh_seconds": REFRESH_SECONDS,
            "balance_credits": balance,
            "owed_credits": services.debt_credits(request.user.pk),
        },
    )


@login_required
@require_safe
def purchase_cancelled(request: AuthenticatedRequest, public_id: uuid.UUID) -> HttpResponse:
    """Stripe's "back" link. The session stays open until Stripe expires it (the webhook then
    marks the purchase expired), so there is nothing to change here."""
    get_object_or_404(Purchase, public_id=public_id, user=request.user)
    messages.info(request, "Checkout cancelled: nothing was charged.")
    return redirect("billing:ledger")


def _promo_attempts(group: str, request: HttpRequest) -> str:
    return f"{settings.PROMO_CODE_ATTEMPTS_PER_HOUR}/h"


def _too_many_promo_attempts(request: HttpRequest) -> bool:
    """Count this attempt against the account and against the address it comes from (codes
    must not be guessable by trying many, from one account or from many)."""
    limited = [
        is_ratelimited(request, group="promo-code", key=key, rate=_promo_attempts, increment=True)
        for key in ("user", "ip")
    ]
    return any(limited)


@login_required
@require_POST
def redeem(request: AuthenticatedRequest) -> HttpResponse:
    form = PromoCodeForm(request.POST)
    if _too_many_promo_attempts(request):
        form.is_valid()
        form.errors.pop("code", None)
        form.add_error("code", PROMO_ATTEMPTS_EXCEEDED)
        return _billing_page(request, promo_form=form, status=429)
    if not form.is_valid():
        return _billing_page(request, promo_form=form, status=400)
    try:
        entry = services.redeem_promo_code(request.user, form.cleaned_data["code"])
    except services.PromoCodeRefused as exc:
        logger.info("promotion code refused for user %s: %s", request.user.pk, exc.reason)
        form.add_error("code", str(exc))
        return _billing_page(request, promo_form=form, status=400)
    messages.success(request, f"Promotion code redeemed: {entry.amount_credits:,} credits added.")
    return redirect("billing:ledger")


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Stripe's events. Signed with STRIPE_WEBHOOK_SECRET; anything else is refused with 400
    and changes nothing. 500 asks Stripe to deliver the event again."""
    if not stripe_client.is_configured():
        return JsonResponse(
            {"error": "Card payments are not set up on this installation (no Stripe keys)."},
            status=503,
        )
    try:
        event = stripe_client.verify_webhook(request.body, request.headers.get("Stripe-Signature"))
    except stripe_client.InvalidSignature as exc:
        logger.warning("Stripe webhook refused: %s", exc)
        return JsonResponse({"error": f"Invalid signature: {exc}"}, status=400)
    try:
        row = webhooks.receive(event)
    except webhooks.EventFailed:
        return JsonResponse({"error": "The event could not be handled; it is stored."}, status=500)
    return JsonResponse({"received": True, "status": row.status})
