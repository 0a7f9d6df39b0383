"""Organisation pages: the list of a person's accounts (and making an organisation), switching
account, the members of the current organisation, and accepting an invitation.

Members pages always work on the CURRENT account (accounts.current), never on an id from the
URL: someone who is not a member cannot make an organisation current, so they cannot reach its
members at all. Member and invitation ids in the URLs are looked up within the current account,
so another organisation's ids answer 404.
"""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django_ratelimit.core import is_ratelimited

from . import current
from . import organisations as services
from .forms import InviteForm, OrganisationForm, RoleForm
from .http import AuthenticatedRequest
from .models import Account, Invitation, Membership, Role
from .permissions import Action
from .services import personal_account

INVITATIONS_PER_HOUR = 20


@login_required
@require_http_methods(["GET", "POST"])
def organisation_list(request: AuthenticatedRequest) -> HttpResponse:
    form = OrganisationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            account = services.create_organisation(request.user, form.cleaned_data["name"])
        except services.Refused as refused:
            form.add_error("name", str(refused))
            return _list_page(request, form, status=400)
        current.switch_to(request, account.pk)
        messages.success(
            request,
            f"“{account.name}” is made and you are its owner. Invite the people you work with.",
        )
        return redirect("organisations:members")
    return _list_page(request, form)


def _list_page(
    request: AuthenticatedRequest, form: OrganisationForm, status: int = 200
) -> HttpResponse:
    return render(
        request,
        "accounts/organisations.html",
        {"form": form, "current_id": current.current_account(request).pk},
        status=status,
    )


@login_required
@require_POST
def switch(request: AuthenticatedRequest) -> HttpResponse:
    account = current.switch_to(request, request.POST.get("account", ""))
    label = account.name if account.kind == Account.Kind.ORGANISATION else "your personal account"
    messages.success(request, f"You are now working in {label}.")
    # Only a path on this site: a crafted form must not send a person elsewhere.
    target = request.POST.get("next", "")
    if not (target.startswith("/") and url_has_allowed_host_and_scheme(target, None)):
        target = reverse("dashboard:overview")
    return redirect(target)


def _organisation(request: AuthenticatedRequest) -> Account:
    """The current account, which must be an organisation: a personal account has no members
    to manage (404, like every other thing that is not there)."""
    account = current.current_account(request)
    if account.kind != Account.Kind.ORGANISATION:
        raise Http404("A personal account has no members")
    return account


@never_cache
@login_required
def members(request: AuthenticatedRequest) -> HttpResponse:
    return _members_page(request, InviteForm())


def _members_page(request: AuthenticatedRequest, invite_form: InviteForm) -> HttpResponse:
    membership = current.current_membership(request)
    account = membership.account
    if account.kind != Account.Kind.ORGANISATION:
        # Switching to the personal account from this page lands here: say so, kindly.
        return render(request, "accounts/members_personal.html")
    is_owner = membership.role == Role.OWNER
    people = list(
        Membership.objects.filter(account=account).select_related("user").order_by("user__email")
    )
    return render(
        request,
        "accounts/members.html",
        {
            "account": account,
            "me": membership,
            "is_owner": is_owner,
            "people": people,
            "owners": sum(1 for person in people if person.role == Role.OWNER),
            "roles": Role.choices,
            "invite_form": invite_form,
            "invitations": services.pending_invitations(account) if is_owner else [],
        },
    )


def _refused(request: AuthenticatedRequest, error: services.Refused) -> HttpResponse:
    messages.error(request, str(error))
    return redirect("organisations:members")


@login_required
@require_POST
def invite(request: AuthenticatedRequest) -> HttpResponse:
    account = current.require(request, Action.MANAGE_MEMBERS)
    if account.kind != Account.Kind.ORGANISATION:
        raise Http404("A personal account has no members")
    form = InviteForm(request.POST)
    if not form.is_valid():
        return _members_page(request, form)
    # Each invitation is an email from us to an address of the owner's choosing, under a name
    # of their choosing: never without end (from one person, or into one organisation).
    rate = f"{INVITATIONS_PER_HOUR}/h"
    limited = [
        is_ratelimited(request, group="invitations", key=key, rate=rate, increment=True)
        for key in ("user", lambda group, request: str(account.pk))
    ]
    if any(limited):
        messages.error(request, "You have sent many invitations this hour: try again later.")
        return redirect("organisations:members")
    try:
        invitation = services.invite(
            account, request.user, form.cleaned_data["email"], form.cleaned_data["role"]
        )
    except services.Refused as error:
        return _refused(request, error)
    messages.success(
        request,
        f"An invitation to join as {invitation.get_role_display().lower()} "
        f"is on its way to {invitation.email}. It works for 7 days.",
    )
    return redirect("organisations:members")


@login_required
@require_POST
def revoke(request: AuthenticatedRequest, invitation_id: int) -> HttpResponse:
    account = current.require(request, Action.MANAGE_MEMBERS)
    invitation = get_object_or_404(Invitation, pk=invitation_id, account=account)
    services.revoke(invitation)
    messages.success(request, f"The invitation to {invitation.email} is withdrawn.")
    return redirect("organisations:members")


@login_required
@require_POST
def change_role(request: AuthenticatedRequest, membership_id: int) -> HttpResponse:
    account = current.require(request, Action.MANAGE_MEMBERS)
    membership = get_object_or_404(
        Membership.objects.select_related("user"), pk=membership_id, account=account
    )
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose owner, developer or reader.")
        return redirect("organisations:members")
    try:
        membership = services.change_role(membership, form.cleaned_data["role"])
    except services.Refused as error:
        return _refused(request, error)
    messages.success(
        request, f"{membership.user.email} is now {membership.get_role_display().lower()}."
    )
    return redirect("organisations:members")


@login_required
@require_POST
def remove(request: AuthenticatedRequest, membership_id: int) -> HttpResponse:
    account = current.require(request, Action.MANAGE_MEMBERS)
    membership = get_object_or_404(
        Membership.objects.select_related("user"), pk=membership_id, account=account
    )
    if membership.user_id == request.user.pk:
        return leave(request)
    try:
        services.remove_member(membership)
    except services.Refused as error:
        return _refused(request, error)
    messages.success(
        request,
        f"{membership.user.email} is no longer a member. The keys they made keep working.",
    )
    return redirect("organisations:members")


@login_required
@require_POST
def leave(request: AuthenticatedRequest) -> HttpResponse:
    account = _organisation(request)
    try:
        services.leave(current.current_membership(request))
    except services.Refused as error:
        return _refused(request, error)
    messages.success(request, f"You have left {account.name}.")
    # The organisation is gone from this session too: back to the personal account.
    current.switch_to(request, personal_account(request.user).pk)
    return redirect("organisations:list")


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def accept(request: AuthenticatedRequest, token: str) -> HttpResponse:
    """The link in the invitation email. login_required sends someone signed out through
    allauth's sign-in (or sign-up, from there) and back here."""
    invitation = services.find_invitation(token)
    if invitation is None:
        raise Http404("No such invitation")
    user = request.user
    joined = (
        invitation.accepted_by_id == user.pk
        and Membership.objects.filter(account=invitation.account, user=user).exists()
    )
    reason = None if joined else services.why_not(invitation, user)
    if request.method == "POST" and reason is None and not joined:
        try:
            services.accept(invitation, user)
        except services.Refused as error:
            reason = str(error)
        else:
            current.switch_to(request, invitation.account_id)
            messages.success(
                request,
                f"Welcome to {invitation.account.name}. You are working in it now; "
                "the switcher takes you back to your personal account.",
            )
            return redirect("dashboard:overview")
    # Signed in as someone else: the way on is to sign in as the invited address.
    other_person = (
        reason is not None
        and invitation.status == "pending"
        and not EmailAddress.objects.filter(user=user, email__iexact=invitation.email).exists()
    )
    return render(
        request,
        "accounts/accept.html",
        {
            "invitation": invitation,
            "reason": reason,
            "joined": joined,
            "other_person": other_person,
        },
        status=200 if reason is None else 403,
    )
