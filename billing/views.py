"""The customer's billing page (balance, buying credits, automatic top-up, billing details for
invoices, promotion codes, card payments with their invoices, history) and Stripe's webhook
endpoint."""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe
from django_ratelimit.core import is_ratelimited

from accounts.current import require
from accounts.http import AuthenticatedRequest
from accounts.permissions import Action

from . import (
    auto_top_up,
    customers,
    history,
    invoices,
    payments,
    services,
    stripe_client,
    webhooks,
)
from .forms import AmountForm, AutoTopUpForm, BillingDetailsForm, PackForm, PromoCodeForm
from .models import Purchase, PurchaseKind

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
# Each save of the billing details may update the Customer at Stripe: an account saving them
# without end is refused.
DETAILS_SAVES_PER_HOUR = 30
DETAILS_SAVES_EXCEEDED = (
    "You have saved your billing details many times this hour: try again later."
)


def _billing_page(
    request: AuthenticatedRequest,
    *,
    pack_form: PackForm | None = None,
    amount_form: AmountForm | None = None,
    promo_form: PromoCodeForm | None = None,
    details_form: BillingDetailsForm | None = None,
    auto_form: AutoTopUpForm | None = None,
    status: int = 200,
) -> HttpResponse:
    owner = require(request, Action.MANAGE_BILLING)
    balance = services.balance_credits(owner)
    # One line per generation (its hold and release folded under its net), one per other move.
    page, lines = history.page(owner, request.GET.get("page"), PAGE_SIZE)
    # Checkout payments that reached Stripe, and automatic top-ups.
    purchases = Purchase.objects.filter(
        Q(checkout_session_id__isnull=False) | Q(kind=PurchaseKind.AUTO), owner=owner
    ).order_by("-created_at", "-id")[:PURCHASES_SHOWN]
    profile = customers.profile_of(owner)
    top_up = auto_top_up.state_of(owner)
    if details_form is None:
        initial = asdict(customers.details_of(profile)) if profile else {}
        details_form = BillingDetailsForm(initial=initial)
    if auto_form is None:
        auto_form = AutoTopUpForm(
            initial={
                "threshold_credits": top_up.threshold_credits,
                "amount": f"{top_up.amount_cents / 100:.2f}" if top_up.amount_cents else "",
            }
        )
    # The details are shown in a disclosure once they are filled in, open when being edited.
    editing_details = details_form.is_bound or not (profile and profile.has_details)
    context: dict[str, Any] = {
        "balance_credits": balance,
        "owed_credits": services.debt_credits(owner.pk),
        "credits_per_usd": settings.CREDITS_PER_USD,
        "page": page,
        "lines": lines,
        "card_payments": payments.card_payments_enabled(),
        "packs": payments.packs(),
        "pack_form": pack_form or PackForm(),
        "amount_form": amount_form or AmountForm(),
        # The buy form's one tick box, as the customer left it when the form comes back.
        "save_card": (amount_form or pack_form or PackForm())["save_card"],
        "promo_form": promo_form or PromoCodeForm(),
        "details_form": details_form,
        "editing_details": editing_details,
        "profile": profile if profile and profile.has_details else None,
        "country_name": customers.country_name(profile.country) if profile else "",
        "auto_form": auto_form,
        "top_up": top_up,
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
    owner = require(request, Action.MANAGE_BILLING)
    if not payments.card_payments_enabled():
        messages.error(request, "Card payments are not set up on this installation.")
        return _billing_page(request, status=503)
    pack_form, amount_form = None, None
    form: PackForm | AmountForm
    # One form holds the packs' buttons and the typed amount: a pack button says which pack.
    if "pack" in request.POST:
        form = pack_form = PackForm(request.POST)
    else:
        form = amount_form = AmountForm(request.POST)
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
            owner,
            request.user,
            form.amount_cents,
            site_url=request.build_absolute_uri("/"),
            save_card=form.cleaned_data["save_card"],
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
    owner = require(request, Action.MANAGE_BILLING)
    bought = get_object_or_404(Purchase, public_id=public_id, owner=owner)
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
    balance = services.balance_credits(owner)
    return render(
        request,
        "billing/purchase.html",
        {
            "purchase": bought,
            "progress": progress,
            "refresh_url": refresh_url,
            "refresh_seconds": REFRESH_SECONDS,
            "balance_credits": balance,
            "owed_credits": services.debt_credits(owner.pk),
        },
    )


@login_required
@require_safe
def invoice(request: AuthenticatedRequest, public_id: uuid.UUID) -> HttpResponse:
    """The purchase's invoice PDF: off to Stripe's current link for it (only ever for the
    purchase's owner; anyone else gets 404, as for a purchase that has no invoice)."""
    owner = require(request, Action.MANAGE_BILLING)
    bought = get_object_or_404(
        Purchase.objects.exclude(invoice_id="").exclude(status=Purchase.Status.FAILED),
        public_id=public_id,
        owner=owner,
    )
    url = invoices.pdf_url(bought)
    if not url:
        messages.info(
            request,
            "Stripe is still preparing this invoice: try again in a minute. Its receipt is "
            "in the list meanwhile.",
        )
        return redirect("billing:ledger")
    return redirect(url)


@login_required
@require_POST
def billing_details(request: AuthenticatedRequest) -> HttpResponse:
    """Save who the invoices are made out to, and give it to Stripe's Customer."""
    owner = require(request, Action.MANAGE_BILLING)
    form = BillingDetailsForm(request.POST)
    if not form.is_valid():
        return _billing_page(request, details_form=form, status=400)
    rate = f"{DETAILS_SAVES_PER_HOUR}/h"
    if is_ratelimited(request, group="billing-details", key="user", rate=rate, increment=True):
        form.add_error(None, DETAILS_SAVES_EXCEEDED)
        return _billing_page(request, details_form=form, status=429)
    try:
        synced = customers.save_details(owner, form.details)
    except customers.DetailsRefused as exc:
        form.add_error(None if exc.field == "__all__" else exc.field, exc.message)
        return _billing_page(request, details_form=form, status=400)
    if synced or not payments.card_payments_enabled():
        messages.success(request, "Billing details saved: your next invoices show them.")
    else:
        messages.warning(
            request,
            "Billing details saved. Stripe could not be reached just now: they are sent to it "
            "before your next payment.",
        )
    return redirect(reverse("billing:ledger") + "#billing-details")


@login_required
@require_POST
def auto_top_up_settings(request: AuthenticatedRequest) -> HttpResponse:
    """Automatic top-up: save the threshold and amount (turning it on when a card is saved),
    turn it off, or remove the saved card (named buttons)."""
    owner = require(request, Action.MANAGE_BILLING)
    if not payments.card_payments_enabled():
        messages.error(request, "Card payments are not set up on this installation.")
        return _billing_page(request, status=503)
    back = reverse("billing:ledger") + "#auto-top-up"
    if "turn_off" in request.POST:
        auto_top_up.turn_off(owner)
        messages.success(request, "Automatic top-up is off. Your card stays saved.")
        return redirect(back)
    if "remove_card" in request.POST:
        auto_top_up.remove_card(owner)
        messages.success(request, "Card removed: automatic top-up is off.")
        return redirect(back)
    form = AutoTopUpForm(request.POST)
    if not form.is_valid():
        return _billing_page(request, auto_form=form, status=400)
    state = auto_top_up.configure(
        owner,
        threshold_credits=form.cleaned_data["threshold_credits"],
        amount_cents=form.cleaned_data["amount"],
    )
    if state.enabled:
        messages.success(
            request,
            f"Automatic top-up is on: below {state.threshold_credits:,} credits we charge "
            f"{state.amount} to {state.card}.",
        )
    else:
        messages.info(
            request,
            "Settings saved. To turn automatic top-up on, buy credits with "
            "\u201cSave the card I pay with for automatic top-ups\u201d ticked.",
        )
    return redirect(back)


@login_required
@require_safe
def purchase_cancelled(request: AuthenticatedRequest, public_id: uuid.UUID) -> HttpResponse:
    """Stripe's "back" link. The session stays open until Stripe expires it (the webhook then
    marks the purchase expired), so there is nothing to change here."""
    owner = require(request, Action.MANAGE_BILLING)
    get_object_or_404(Purchase, public_id=public_id, owner=owner)
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
    owner = require(request, Action.MANAGE_BILLING)
    form = PromoCodeForm(request.POST)
    if _too_many_promo_attempts(request):
        form.is_valid()
        form.errors.pop("code", None)
        form.add_error("code", PROMO_ATTEMPTS_EXCEEDED)
        return _billing_page(request, promo_form=form, status=429)
    if not form.is_valid():
        return _billing_page(request, promo_form=form, status=400)
    try:
        entry = services.redeem_promo_code(owner, form.cleaned_data["code"], by=request.user)
    except services.PromoCodeRefused as exc:
        logger.info("promotion code refused for account %s: %s", owner.pk, exc.reason)
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
