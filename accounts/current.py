"""The account a browser request acts for: the person's personal account, or an organisation they
chose in the dashboard's switcher.

The choice is only an account id in the session. It is checked against ``Membership`` on every
request (once per request: the answer is kept on the request object), so a member who is removed
loses the organisation at their very next request, whatever their session says.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

from .models import Account, Membership, Role, User
from .permissions import DESCRIBED, Action, role_may
from .services import personal_account

SESSION_KEY = "accounts.current_account_id"
# Where current_membership keeps its answer for the rest of the request.
_CACHE_ATTRIBUTE = "_accounts_current_membership"


def _user(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User) or not user.is_active:
        # Only views behind login_required ask: anything else is a bug, not a visitor.
        raise PermissionDenied("No signed-in user")
    return user


def _membership(user: User, account_id: object) -> Membership | None:
    try:
        pk = int(str(account_id))
    except ValueError:
        return None
    if not 0 < pk < 2**63:  # past a BigAutoField, which SQLite refuses to even look up
        return None
    return Membership.objects.select_related("account").filter(user=user, account_id=pk).first()


def current_membership(request: HttpRequest) -> Membership:
    """The signed-in user's membership of the account this request acts for.

    The session's choice if they are still a member of it; otherwise (nothing chosen, or a choice
    they may no longer make) their personal account, and a stale choice is forgotten.
    """
    cached: Membership | None = getattr(request, _CACHE_ATTRIBUTE, None)
    if cached is not None:
        return cached
    user = _user(request)
    chosen = request.session.get(SESSION_KEY)
    membership = _membership(user, chosen) if chosen is not None else None
    if membership is None:
        if chosen is not None:
            del request.session[SESSION_KEY]
        membership = (
            Membership.objects.select_related("account")
            .filter(user=user, account__personal_owner=user)
            .first()
        )
        if membership is None:  # made before personal accounts, or taken away in the admin
            membership, _ = Membership.objects.select_related("account").get_or_create(
                user=user, account=personal_account(user), defaults={"role": Role.OWNER}
            )
    setattr(request, _CACHE_ATTRIBUTE, membership)
    return membership


def current_account(request: HttpRequest) -> Account:
    return current_membership(request).account


def current_role(request: HttpRequest) -> str:
    return current_membership(request).role


def switch_to(request: HttpRequest, account_id: object) -> Account:
    """Make ``account_id`` the account this session acts for. Not a member (or no such account,
    or not even a number): 404, so that a non-member learns nothing about it."""
    membership = _membership(_user(request), account_id)
    if membership is None:
        raise Http404("No such account")
    request.session[SESSION_KEY] = membership.account_id
    setattr(request, _CACHE_ATTRIBUTE, membership)
    return membership.account


def require(request: HttpRequest, action: Action) -> Account:
    """The current account, if the user's role in it may do ``action``; otherwise 403 (they are a
    member, so the account's existence is no secret to them)."""
    membership = current_membership(request)
    if not role_may(membership.role, action):
        raise PermissionDenied(f"A {membership.role} may not {DESCRIBED[action]}.")
    return membership.account
