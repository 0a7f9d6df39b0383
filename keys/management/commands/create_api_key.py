from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from accounts.services import personal_account
from keys import services


class Command(BaseCommand):
    help = "Issue an API key for a user. The raw key is printed alone on the last line, once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--name", default="CLI key")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = User.objects.get(email__iexact=options["email"])
        except User.DoesNotExist:
            raise CommandError(f"No user with the email {options['email']}") from None
        try:
            issued = services.create_key(personal_account(user), options["name"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(
            f"Created key '{issued.api_key.name}' for {user.email}. It is shown once: store it now."
        )
        self.stdout.write(issued.raw_key)
