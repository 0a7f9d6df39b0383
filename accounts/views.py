"""The account settings hub and closing an account. Email, password and two-factor pages are
allauth's own (in our look, see templates/allauth/); this page links to them."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.socialaccount.models import SocialAccount
from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from . import services
from .forms import CloseAccountForm
from .http import AuthenticatedRequest


@login_required
def settings_page(request: AuthenticatedRequest) -> HttpResponse:
    user = request.user
    return render(
        request,
        "accounts/settings.html",
        {
            "emails": EmailAddress.objects.filter(user=user).order_by("-primary", "email"),
            "has_password": user.has_usable_password(),
            "mfa_types": sorted(
                Authenticator.objects.filter(user=user).values_list("type", flat=True)
            ),
            "social_enabled": bool(settings.SOCIALACCOUNT_PROVIDERS),
            "social_accounts": SocialAccount.objects.filter(user=user),
        },
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def close_account(request: AuthenticatedRequest) -> HttpResponse:
    user = request.user
    form = CloseAccountForm(user, request.POST or None)
    if user.is_superuser:
        return render(request, "accounts/close.html", {"form": None}, status=403)
    if request.method == "POST" and form.is_valid():
        try:
            services.close_account(user)
        except services.AccountNotClosable as refused:
            form.add_error(None, str(refused))
            return render(request, "accounts/close.html", {"form": form}, status=409)
        logout(request)
        return redirect("accounts:closed")
    return render(request, "accounts/close.html", {"form": form})


def closed(request: HttpRequest) -> HttpResponse:
    """Where a closed account lands, signed out."""
    return render(request, "accounts/closed.html")
