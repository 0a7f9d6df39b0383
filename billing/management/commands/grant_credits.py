from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Account, User
from accounts.services import personal_account
from billing import services


class Command(BaseCommand):
    help = (
        "Grant credits (a ledger line of kind 'grant') to a person's account, named by their "
        "email, or to an organisation, named by its name or as org:<id>."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("account", help="an email address, an organisation's name, or org:<id>")
        parser.add_argument("credits", type=int)
        parser.add_argument("--reason", default="Granted by an operator")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["credits"] <= 0:
            raise CommandError("CREDITS must be a positive whole number")
        account = _account_named(options["account"].strip())
        entry = services.grant(
            account,
            options["credits"],
            description=options["reason"],
            idempotency_key=f"grant:cli:{uuid.uuid4()}",
        )
        self.stdout.write(
            f"Granted {entry.amount_credits} credits to {_named(account)}; "
            f"balance {entry.balance_after_credits} credits "
            f"(${services.format_usd(entry.balance_after_credits)})."
        )


def _named(account: Account) -> str:
    if account.personal_owner is not None:
        return account.personal_owner.email
    return f"the organisation {account.name} (org:{account.pk})"


def _account_named(name: str) -> Account:
    if "@" in name:
        user = User.objects.filter(email__iexact=name).first()
        if user is not None:
            return personal_account(user)
        if not Account.objects.filter(kind=Account.Kind.ORGANISATION, name__iexact=name).exists():
            raise CommandError(f"No user with the email {name}")
    organisations = Account.objects.filter(kind=Account.Kind.ORGANISATION)
    if name.startswith("org:"):
        found = organisations.filter(pk=int(name[4:])).first() if name[4:].isdigit() else None
        if found is None:
            raise CommandError(f"No organisation {name}")
        return found
    matches = list(organisations.filter(name__iexact=name)[:5])
    if not matches:
        raise CommandError(f"No user or organisation named {name}")
    if len(matches) > 1:
        ids = ", ".join(f"org:{match.pk}" for match in matches)
        raise CommandError(f"More than one organisation is named {name}: name one of {ids}")
    return matches[0]
