"""The current account of a browser request (placeholder until the organisation pages land:
always the user's personal account)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from .models import Account, Membership
from .permissions import Action, role_may
from .services import personal_account


def current_membership(request: HttpRequest) -> Membership:
    cached = getattr(request, "_current_membership", None)
    if cached is not None:
        return cached
    account = personal_account(request.user)  # type: ignore[arg-type]
    membership = Membership.objects.select_related("account").get(
        account=account, user=request.user
    )
    request._current_membership = membership  # type: ignore[attr-defined]
    return membership


def current_account(request: HttpRequest) -> Account:
    return current_membership(request).account


def current_role(request: HttpRequest) -> str:
    return current_membership(request).role


def require(request: HttpRequest, action: Action) -> Account:
    membership = current_membership(request)
    if not role_may(membership.role, action):
        raise PermissionDenied
    return membership.account
