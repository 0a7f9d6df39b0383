"""Organisations: making one, inviting people by email, accepting, roles, leaving.

Every write here locks the organisation's Account row first, so that changes to its members are
made one at a time: two owners demoting each other at once cannot leave it with no owner, and
one address cannot be invited twice by two clicks.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from .adapter import configured_site
from .models import Account, Invitation, Membership, Role, User
from .signals import membership_ending

logger = logging.getLogger(__name__)

INVITATION_LIFETIME = timedelta(days=7)


class Refused(Exception):
    """A change to an organisation's members that is not allowed; the message says why, in words
    fit to show the person who asked."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _locked(account: Account) -> Account:
    if account.kind != Account.Kind.ORGANISATION:
        raise Refused("A personal account has no other members.")
    return Account.objects.select_for_update().get(pk=account.pk)


def _still(membership: Membership) -> Membership:
    """The membership as it is now, under the account's lock (another owner may have just
    removed it or changed its role)."""
    found = Membership.objects.select_related("user").filter(pk=membership.pk).first()
    if found is None:
        raise Refused("That person is no longer a member.")
    return found


def _is_last_owner(membership: Membership) -> bool:
    return (
        membership.role == Role.OWNER
        and not Membership.objects.filter(account_id=membership.account_id, role=Role.OWNER)
        .exclude(pk=membership.pk)
        .exists()
    )


# The organisations one person may belong to: enough for any team, and a bound on what one
# sign-up can make (each organisation is an account of its own).
MAX_ORGANISATIONS_PER_PERSON = 20


def create_organisation(user: User, name: str) -> Account:
    """A new organisation named ``name``, with ``user`` as its owner."""
    belongs = Membership.objects.filter(user=user, account__kind=Account.Kind.ORGANISATION)
    if belongs.count() >= MAX_ORGANISATIONS_PER_PERSON:
        raise Refused(
            f"You belong to {MAX_ORGANISATIONS_PER_PERSON} organisations, the most one person "
            "may: leave one to make another."
        )
    with transaction.atomic():
        account = Account.objects.create(kind=Account.Kind.ORGANISATION, name=name)
        Membership.objects.create(account=account, user=user, role=Role.OWNER)
    return account


def change_role(membership: Membership, role: str) -> Membership:
    with transaction.atomic():
        _locked(membership.account)
        membership = _still(membership)
        if role != Role.OWNER and _is_last_owner(membership):
            raise Refused(
                f"{membership.user.email} is the only owner: make someone else an owner first."
            )
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def remove_member(membership: Membership) -> None:
    """Take ``membership`` away. Its user's access ends at their next request (accounts.current
    checks membership on each); the keys they made belong to the organisation and keep working."""
    _remove(membership, "{email} is the only owner: make someone else an owner first.")


def leave(membership: Membership) -> None:
    """The member leaves, as remove_member."""
    _remove(membership, "You are the only owner: make someone else an owner before you leave.")


def _remove(membership: Membership, last_owner: str) -> None:
    with transaction.atomic():
        _locked(membership.account)
        membership = _still(membership)
        if _is_last_owner(membership):
            raise Refused(last_owner.format(email=membership.user.email))
        membership_ending.send(sender=Membership, account=membership.account, user=membership.user)
        membership.delete()


# An organisation's invitations waiting at once, at most.
MAX_PENDING_INVITATIONS = 50


def _pending(account: Account) -> QuerySet[Invitation]:
    return Invitation.objects.filter(
        account=account,
        accepted_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=timezone.now(),
    )


def pending_invitations(account: Account) -> list[Invitation]:
    return list(_pending(account).select_related("invited_by").order_by("-created_at"))


def invite(account: Account, invited_by: User, email: str, role: str) -> Invitation:
    """Invite ``email`` to ``account`` as ``role`` and email them the link.

    The email is sent inside the transaction: if it cannot be sent, no invitation is left
    behind and the owner is told to try again (the lock it holds meanwhile only holds up other
    changes to this organisation's members).
    """
    email = email.strip()
    with transaction.atomic():
        _locked(account)
        members = Membership.objects.filter(account=account)
        if members.filter(
            Q(user__email__iexact=email)
            | Q(user__emailaddress__email__iexact=email, user__emailaddress__verified=True)
        ).exists():
            raise Refused(f"{email} is already a member of {account.name}.")
        if _pending(account).count() >= MAX_PENDING_INVITATIONS:
            raise Refused(
                f"{account.name} has {MAX_PENDING_INVITATIONS} invitations waiting: revoke some, "
                "or wait for them to be accepted, before sending more."
            )
        if _pending(account).filter(email__iexact=email).exists():
            raise Refused(
                f"{email} has been invited already. Revoke that invitation to send a new one."
            )
        token = secrets.token_urlsafe(32)
        invitation = Invitation.objects.create(
            account=account,
            email=email,
            role=role,
            token_hash=token_hash(token),
            invited_by=invited_by,
            expires_at=timezone.now() + INVITATION_LIFETIME,
        )
        url = settings.SITE_URL + reverse("organisations:accept", args=[token])
        try:
            _email_invitation(invitation, url)
        except Exception as error:
            logger.exception("could not email invitation %s", invitation.pk)
            raise Refused(
                f"The invitation could not be emailed to {email}, so none was made. Try again."
            ) from error
    return invitation


def _email_invitation(invitation: Invitation, url: str) -> None:
    inviter = invitation.invited_by
    context = {
        "current_site": configured_site(),
        "site_url": settings.SITE_URL,
        "support_email": settings.SUPPORT_EMAIL,
        "organisation": invitation.account.name,
        "inviter": inviter.email if inviter else "An owner",
        "role": invitation.get_role_display().lower(),
        "email": invitation.email,
        "expires_at": invitation.expires_at,
        "accept_url": url,
    }
    prefix = "accounts/email/invitation"
    subject = render_to_string(f"{prefix}_subject.txt", context).strip()
    message = EmailMultiAlternatives(
        subject=f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{subject}",
        body=render_to_string(f"{prefix}_message.txt", context),
        to=[invitation.email],
    )
    message.attach_alternative(render_to_string(f"{prefix}_message.html", context), "text/html")
    message.send()


def revoke(invitation: Invitation) -> None:
    """The link stops working. An accepted invitation is history and is left as it is."""
    Invitation.objects.filter(
        pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())


def find_invitation(token: str) -> Invitation | None:
    return (
        Invitation.objects.select_related("account", "invited_by")
        .filter(token_hash=token_hash(token))
        .first()
    )


def why_not(invitation: Invitation, user: User) -> str | None:
    """Why ``user`` may not accept ``invitation`` (a sentence for them), or None if they may."""
    status = invitation.status
    if status == "accepted":
        return "This invitation has been used already."
    if status == "revoked":
        return "This invitation was withdrawn. Ask an owner of the organisation for a new one."
    if status == "expired":
        return "This invitation has expired. Ask an owner of the organisation for a new one."
    addresses = EmailAddress.objects.filter(user=user, email__iexact=invitation.email)
    if not addresses.exists():
        return (
            f"This invitation is for {invitation.email}, and you are signed in as {user.email}. "
            f"Sign out, then sign in (or sign up) as {invitation.email}."
        )
    if not addresses.filter(verified=True).exists():
        return (
            f"Confirm your address {invitation.email} first (we emailed you a link), "
            "then open this invitation again."
        )
    return None


def accept(invitation: Invitation, user: User) -> Membership:
    """Make ``user`` a member with the invited role. Someone already a member keeps the role they
    have (an invitation never demotes anyone). Raises Refused with why_not's reason."""
    with transaction.atomic():
        _locked(invitation.account)
        invitation = Invitation.objects.select_related("account").get(pk=invitation.pk)
        reason = why_not(invitation, user)
        if reason is not None:
            raise Refused(reason)
        membership, _ = Membership.objects.select_related("account").get_or_create(
            account=invitation.account, user=user, defaults={"role": invitation.role}
        )
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
    return membership
