"""The customer's billing page: balance and the whole ledger, newest first."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render

from accounts.http import AuthenticatedRequest

from . import services
from .models import LedgerEntry

PAGE_SIZE = 50


@login_required
def ledger(request: AuthenticatedRequest) -> HttpResponse:
    balance = services.balance_credits(request.user)
    entries = LedgerEntry.objects.filter(account__user=request.user).order_by("-id")
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "billing/ledger.html",
        {
            "balance_credits": balance,
            "balance_usd": services.format_usd(balance),
            "credits_per_usd": settings.CREDITS_PER_USD,
            "page": page,
        },
    )
