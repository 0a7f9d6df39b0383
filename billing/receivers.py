from __future__ import annotations

import functools
from typing import Any

from allauth.account.models import EmailAddress
from allauth.account.signals import email_confirmed, user_signed_up
from django.conf import settings
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest

from accounts.models import Account, User
from accounts.signals import account_closing, membership_ending

from . import auto_top_up, services, webhooks
from .models import BillingProfile


@receiver(account_closing)
def redact_stripe_events_of_closed_account(
    sender: type[User], user: User, accounts: list[Account], **kwargs: Any
) -> None:
    webhooks.redact_events_of(user, accounts)


@receiver(membership_ending)
def forget_the_card_of_a_member_who_goes(
    sender: Any, account: Account, user: User, **kwargs: Any
) -> None:
    # Their card is never charged for an account they are no longer in: automatic top-up stops
    # (an owner saves another card), and the card is taken off the Customer after the commit.
    if auto_top_up.saved_by(account, user):
        auto_top_up.turn_off(account)
        transaction.on_commit(functools.partial(auto_top_up.remove_card, account))


@receiver(account_closing)
def stop_auto_top_up_of_closed_account(
    sender: type[User], user: User, accounts: list[Account], **kwargs: Any
) -> None:
    # Off in the closing transaction; the card is forgotten and taken off the Customer at
    # Stripe once the closure has committed (a network call has no place inside it).
    for account in accounts:
        auto_top_up.turn_off(account)
        transaction.on_commit(functools.partial(auto_top_up.remove_card, account))


@receiver(account_closing)
def erase_billing_details_of_closed_account(
    sender: type[User], user: User, accounts: list[Account], **kwargs: Any
) -> None:
    # The invoices already issued are Stripe's records (kept under its policy); our copy of the
    # name, address and tax id goes, as the closure policy says. The Customer's id stays, so a
    # later refund or dispute event still finds the account.
    BillingProfile.objects.filter(account__owner__in=accounts).update(
        company_name="",
        address_line1="",
        address_line2="",
        city="",
        postal_code="",
        state="",
        country="",
        tax_id_type="",
        tax_id_value="",
        stripe_tax_id="",
        stripe_details={},
    )


# Sign-up credits go to an account whose address is verified. Both signals may fire for one
# account (and a confirmation link may be opened twice, or a second address confirmed later):
# the grant itself happens once per account (services.grant_signup_credits).


@receiver(email_confirmed)
def grant_signup_credits_on_confirmation(
    sender: Any, request: HttpRequest | None, email_address: EmailAddress, **kwargs: Any
) -> None:
    services.grant_signup_credits(email_address.user_id)


@receiver(user_signed_up)
def grant_signup_credits_on_verified_sign_up(
    sender: Any, request: HttpRequest | None, user: User, **kwargs: Any
) -> None:
    # Verified already (a GitHub or Google address the provider vouches for), or an installation
    # that verifies no addresses: nothing will be confirmed later, so the trial starts now.
    unverified_allowed = settings.ACCOUNT_EMAIL_VERIFICATION == "none"
    if unverified_allowed or EmailAddress.objects.filter(user=user, verified=True).exists():
        services.grant_signup_credits(user.pk)
