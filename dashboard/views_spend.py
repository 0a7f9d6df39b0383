"""A key's spend controls (its cap, its allowed models and addresses) and the account's alerts.

The key's page lives here, not in keys: it lists the catalog's models and the current window of
the cap, which keys may not know (generation and billing are above and beside it). Every write
goes through the owning app's service: keys.services.set_spend_controls for the key,
billing.alerts for the account's thresholds. Both pages post, then redirect (a reload never
sends the form again).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts.current import require
from accounts.http import AuthenticatedRequest
from accounts.permissions import Action
from billing import alerts as billing_alerts
from billing.models import CreditAccount, SpendWindow
from generation import catalog
from generation.services import spend
from keys import controls
from keys import services as keys
from keys.models import ApiKey

from .forms import AlertsForm, KeySpendForm


@dataclass(frozen=True)
class WindowNow:
    """The current window of a key's cap, as its page shows it."""

    cap_credits: int
    spent_credits: int
    period: str
    resets_at: datetime | None  # None: a cap in total

    @property
    def remaining_credits(self) -> int:
        return max(0, self.cap_credits - self.spent_credits)

    @property
    def percent(self) -> int:
        return min(100, self.spent_credits * 100 // self.cap_credits) if self.cap_credits else 100


def window_now(api_key: ApiKey) -> WindowNow | None:
    """What the key has spent in its cap's current window (held credits of requests still
    running count until they finish), or None for a key without a cap."""
    limit = spend.key_limit(api_key, timezone.now())
    if limit is None:
        return None
    spent = (
        SpendWindow.objects.filter(name=limit.window)
        .values_list("spent_credits", flat=True)
        .first()
    ) or 0
    return WindowNow(limit.cap_credits, spent, limit.period, limit.resets_at)


def offered_models(api_key: ApiKey) -> list[catalog.ModelInfo]:
    """The models a key can be limited to: every one still answering, and any the key is
    limited to already (a retired one stays offered, so saving the page does not drop it
    unseen)."""
    catalog.refresh()
    return [
        m
        for m in catalog.all_models()
        if m.lifecycle() != catalog.RETIRED or m.id in api_key.allowed_models
    ]


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def key_spend(request: AuthenticatedRequest, key_id: int) -> HttpResponse:
    # Another account's key id is a 404, exactly like one that does not exist.
    api_key = get_object_or_404(ApiKey, pk=key_id, account=require(request, Action.MANAGE_KEYS))
    models = offered_models(api_key)
    initial = {
        "spend_cap_credits": api_key.spend_cap_credits,
        "spend_cap_period": api_key.spend_cap_period,
        "allowed_models": api_key.allowed_models,
        "allowed_networks": "\n".join(api_key.allowed_networks),
    }
    form = KeySpendForm(request.POST or None, initial=initial, models=models)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            keys.set_spend_controls(
                api_key,
                cap_credits=data["spend_cap_credits"],
                period=data["spend_cap_period"],
                allowed_models=data["allowed_models"],
                allowed_networks=data["allowed_networks"],
                known_models=[m.id for m in catalog.all_models()],
            )
        except controls.InvalidControl as error:  # the form checked each already: a race
            form.add_error(None, str(error))
        else:
            messages.success(request, f"The spend controls of “{api_key.name}” are saved.")
            address = request.META.get("REMOTE_ADDR")
            if not controls.address_allowed(api_key, address):
                messages.warning(
                    request,
                    f"Your address now ({address}) is not in the key's allowed addresses: "
                    "the key is refused from here.",
                )
            return redirect("keys:list")
    return render(
        request,
        "dashboard/key_spend.html",
        {
            "api_key": api_key,
            "form": form,
            "window": window_now(api_key),
            "your_address": request.META.get("REMOTE_ADDR") or "",
        },
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def alerts(request: AuthenticatedRequest) -> HttpResponse:
    owner = require(request, Action.MANAGE_BILLING)
    account = CreditAccount.objects.of(owner.pk)
    initial = {
        "low_balance_alert_credits": account.low_balance_alert_credits,
        "key_budget_alert_percents": ", ".join(
            str(p) for p in account.key_budget_alert_percents or []
        ),
    }
    form = AlertsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        with transaction.atomic():
            # A changed threshold is armed afresh (the next spend below it tells the account,
            # even if the balance is below it already); an unchanged one is left as it is, so
            # saving the other field does not tell a crossing twice.
            threshold = data["low_balance_alert_credits"]
            if threshold != account.low_balance_alert_credits:
                billing_alerts.set_low_balance_alert(account.pk, threshold)
            billing_alerts.set_key_budget_alerts(account.pk, data["key_budget_alert_percents"])
        messages.success(request, "Your alerts are saved.")
        return redirect("dashboard:alerts")
    capped = ApiKey.objects.filter(
        account=owner, revoked_at__isnull=True, spend_cap_credits__isnull=False
    ).order_by("name")
    return render(
        request,
        "dashboard/alerts.html",
        {
            "form": form,
            "account": account,
            "email": ", ".join(owner.contact_emails()),
            "capped_keys": capped,
        },
    )
