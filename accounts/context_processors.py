"""What every page's navigation says about accounts: which one the request acts for, the user's
role in it, and the others they may switch to.

Everything is lazy: a page that shows no switcher (the storefront, an error page) runs no query
for it; one that does runs one, for the memberships (the current membership is the one the view
itself already looked up, kept on the request by accounts.current).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from .current import current_membership
from .models import Membership, User
from .permissions import Action, role_may


def _user(request: HttpRequest) -> User | None:
    user = getattr(request, "user", None)  # /v1 paths skip the authentication middleware
    return user if isinstance(user, User) and user.is_active else None


def current_account(request: HttpRequest) -> dict[str, Any]:
    def membership() -> Membership | None:
        return current_membership(request) if _user(request) else None

    def memberships() -> list[Membership]:
        user = _user(request)
        if user is None:
            return []
        # The personal account first, then the organisations by name.
        return sorted(
            Membership.objects.filter(user=user).select_related("account"),
            key=lambda m: (m.account.kind != "personal", m.account.name.lower(), m.account_id),
        )

    def account() -> Any:
        found = membership()
        return found.account if found else None

    def role() -> str:
        found = membership()
        return found.role if found else ""

    def may() -> dict[str, bool]:
        # What the current role may do, by action name: the nav shows only what it may open.
        return {action.value: role_may(role(), action) for action in Action}

    return {
        "current_may": SimpleLazyObject(may),
        "current_membership": SimpleLazyObject(membership),
        "current_account": SimpleLazyObject(account),
        "current_role": SimpleLazyObject(role),
        "account_memberships": SimpleLazyObject(memberships),
    }
