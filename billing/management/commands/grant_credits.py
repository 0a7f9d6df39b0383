from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from billing import services


class Command(BaseCommand):
    help = "Grant credits to a user (a ledger line of kind 'grant')."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("credits", type=int)
        parser.add_argument("--reason", default="Granted by an operator")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["credits"] <= 0:
            raise CommandError("CREDITS must be a positive whole number")
        try:
            user = User.objects.get(email__iexact=options["email"])
        except User.DoesNotExist:
            raise CommandError(f"No user with the email {options['email']}") from None
        entry = services.grant(
            user,
            options["credits"],
            description=options["reason"],
            idempotency_key=f"grant:cli:{uuid.uuid4()}",
        )
        self.stdout.write(
            f"Granted {entry.amount_credits} credits to {user.email}; "
            f"balance {entry.balance_after_credits} credits "
            f"(${services.format_usd(entry.balance_after_credits)})."
        )
