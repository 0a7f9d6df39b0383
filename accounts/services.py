"""Identity services: closing an account."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.socialaccount.models import SocialAccount
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import Account, Invitation, Membership, Role, User
from .signals import account_closing, membership_ending


class AccountNotClosable(Exception):
    pass


def closed_email(user: User) -> str:
    # .invalid is reserved (RFC 2606): no mail can ever reach it, and the real address is free
    # for a new sign-up at once.
    return f"closed-{user.pk}@closed.invalid"


def close_account(user: User) -> None:
    """Close ``user``'s account for good, following the policy on the delete-account page.

    At once: every API key is revoked (keys), prompts, hosted images and request parameters are
    deleted (api), email addresses, two-factor devices and social logins are deleted, the password
    is made unusable (which ends every session: Django checks the password hash on each request)
    and the account is deactivated. Kept, without the email address: the ledger and the
    per-request amounts, because they are financial records.
    """
    if user.is_superuser:
        raise AccountNotClosable("A superuser account is closed by another operator in the admin.")
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        if locked.closed_at is not None:
            return
        closing = [personal_account(locked), *_organisations_closing_with(locked)]
        account_closing.send(sender=User, user=locked, accounts=closing)
        # Their access to every organisation ends; an organisation with other members keeps
        # its keys, credits and images (and no card of theirs: membership_ending).
        leaving = Membership.objects.filter(user=locked).exclude(account=closing[0])
        for membership in leaving.select_related("account"):
            membership_ending.send(sender=Membership, account=membership.account, user=locked)
        leaving.delete()
        # No one can join an organisation that closed with them.
        Invitation.objects.filter(
            account__in=closing[1:], accepted_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
        EmailAddress.objects.filter(user=locked).delete()
        Authenticator.objects.filter(user=locked).delete()
        SocialAccount.objects.filter(user=locked).delete()
        locked.email = closed_email(locked)
        locked.name = ""
        locked.is_active = False
        locked.is_staff = False
        locked.closed_at = timezone.now()
        locked.set_unusable_password()
        locked.save()


def _organisations_closing_with(user: User) -> list[Account]:
    """The organisations ``user`` is the only member of: they close with them. AccountNotClosable
    if they are the last owner of one that has other members (who would be left without an
    owner): they make another member an owner first."""
    alone, stranded = [], []
    organisations = Account.objects.filter(
        kind=Account.Kind.ORGANISATION, memberships__user=user
    ).select_for_update()
    for organisation in organisations.order_by("pk"):
        others = organisation.memberships.exclude(user=user)
        if not others.exists():
            alone.append(organisation)
        elif (
            role_in(user, organisation) == Role.OWNER
            and not others.filter(role=Role.OWNER).exists()
        ):
            stranded.append(organisation.name)
    if stranded:
        raise AccountNotClosable(
            f"You are the only owner of {', '.join(stranded)}: make another member an owner "
            "first (on its Members page), then close your account."
        )
    return alone


def personal_account(user: User) -> Account:
    """The user's personal account, made (with them as its owner) if they have none yet: every
    user has one from sign-up on (accounts.receivers); a user made before that, lazily."""
    existing = Account.objects.filter(personal_owner=user).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            account = Account.objects.create(kind=Account.Kind.PERSONAL, personal_owner=user)
            Membership.objects.create(account=account, user=user, role=Role.OWNER)
            return account
    except IntegrityError:  # made by a concurrent call
        return Account.objects.get(personal_owner=user)


def role_in(user: User, account: Account) -> str | None:
    """The user's role in ``account``, or None if they are not a member (an inactive user is
    a member of nothing)."""
    if not user.is_active:
        return None
    return (
        Membership.objects.filter(account=account, user=user).values_list("role", flat=True).first()
    )
