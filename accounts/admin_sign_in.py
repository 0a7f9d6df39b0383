"""The admin's front door: sign-in through allauth, and a second factor for staff.

Staff can adjust credits and prices, so the admin takes no password of its own: its login page
hands over to allauth's (with its rate limits, its lockout and its second-factor step), and a
staff member without a second factor is sent to set one up before the admin opens.
"""

from __future__ import annotations

from typing import Any

from allauth.account.decorators import secure_admin_login
from allauth.mfa.utils import is_mfa_enabled
from django.contrib import messages
from django.contrib.admin import AdminSite
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

SECOND_FACTOR_NEEDED = (
    "The admin needs two-factor authentication on your account: set it up here, then open the "
    "admin again."
)


def needs_second_factor(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_authenticated and user.is_staff and not is_mfa_enabled(user))


def secure(site: AdminSite) -> None:
    """Route ``site``'s sign-in through allauth and let only staff with a second factor in."""
    allauth_login = secure_admin_login(site.login)
    allows = site.has_permission

    def login(request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if needs_second_factor(request):
            messages.warning(request, SECOND_FACTOR_NEEDED)
            next_url = reverse("admin:index")
            return redirect(f"{reverse('mfa_index')}?{urlencode({'next': next_url})}")
        response: HttpResponse = allauth_login(request, extra_context)
        return response

    def has_permission(request: HttpRequest) -> bool:
        return bool(allows(request)) and not needs_second_factor(request)

    site.login = login  # type: ignore[method-assign]
    site.has_permission = has_permission  # type: ignore[method-assign]
