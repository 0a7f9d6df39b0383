"""The Limits page: the account's tier, each limit with its current use, what unlocks the next
tier, and the keys' own limits."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from accounts.current import require
from accounts.http import AuthenticatedRequest
from accounts.models import Account
from accounts.permissions import Action
from billing import services as billing
from generation import ratelimits
from keys.models import ApiKey


@never_cache
@login_required
def limits(request: AuthenticatedRequest) -> HttpResponse:
    current = require(request, Action.VIEW_USAGE)
    # Fresh from the database: the relations limits_for reads, as the API loads them.
    loaded = Account.objects.select_related("credit_account", "rate_limit_override").get(
        pk=current.pk
    )
    limits_now = ratelimits.limits_for(loaded)
    usage = ratelimits.current_usage(loaded)
    # The account row loaded above holds both figures the tier follows.
    account = getattr(loaded, "credit_account", None)
    lifetime = account.lifetime_credits if account else 0
    balance = account.balance_credits if account else 0
    upcoming = ratelimits.next_tier(limits_now.tier)
    rows = [
        ("Requests", limits_now.requests, usage.requests, "per minute"),
        ("Images", limits_now.images, usage.images, "per minute"),
        ("Generations at a time", limits_now.concurrent, usage.concurrent, "in flight"),
    ]
    return render(
        request,
        "dashboard/limits.html",
        {
            "limits": limits_now,
            "rows": [
                {"name": n, "limit": lim, "used": used, "per": per, "percent": _percent(used, lim)}
                for n, lim, used, per in rows
            ],
            "reset": ratelimits.duration(usage.reset_seconds),
            "tiers": ratelimits.tiers(),
            "next_tier": upcoming,
            "lifetime_credits": lifetime,
            "lifetime_usd": billing.format_usd(lifetime),
            "balance_credits": balance,
            "to_next_lifetime": max(upcoming.min_lifetime_credits - lifetime, 0) if upcoming else 0,
            "to_next_balance": max(upcoming.min_balance_credits - balance, 0) if upcoming else 0,
            "keys": ApiKey.objects.filter(account=loaded, revoked_at__isnull=True).order_by("name"),
            "support_email": settings.SUPPORT_EMAIL,
            "window_seconds": settings.RATE_LIMIT_WINDOW_SECONDS,
        },
    )


def _percent(used: int, limit: int) -> int:
    return min(100, used * 100 // limit) if limit else 100
