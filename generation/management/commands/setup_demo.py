from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.models import User
from billing import services as billing
from keys import services as keys

DEMO_EMAIL = "demo@localhost"


class Command(BaseCommand):
    help = (
        "On a fresh database, create a local demo account with credits and print its API key "
        "once, with a first call to paste. Does nothing but remind on later runs."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        base_url = f"{settings.SITE_URL}/v1"
        if settings.USE_SIMULATOR:
            self.stdout.write(
                f"Upstream: the bundled Seedream simulator at {settings.UPSTREAM_BASE_URL} "
                "(set UPSTREAM_API_KEY to use the real Seedream)."
            )
        else:
            self.stdout.write(f"Upstream: {settings.UPSTREAM_BASE_URL}")
        if settings.EMAIL_HOST:
            self.stdout.write(f"Mail: sent through {settings.EMAIL_HOST}.")
        else:
            self.stdout.write(
                "Mail (sign-up confirmations, password resets) is printed on the web process's "
                "console: set EMAIL_HOST to send it."
            )
        if User.objects.exists():
            self.stdout.write(
                f"API at {base_url}. To issue a key: "
                f".venv/bin/python manage.py create_api_key {DEMO_EMAIL}"
            )
            return
        user = User.objects.create_user(DEMO_EMAIL, password=None, name="Local demo")
        billing.grant(
            user.personal_account,
            settings.DEMO_CREDITS,
            description="Local demo credits",
            idempotency_key=f"grant:demo:{user.pk}",
        )
        issued = keys.create_key(user.personal_account, "Local demo key")
        line = "=" * 78
        self.stdout.write(
            f"\n{line}\n"
            f"A local demo account ({DEMO_EMAIL}) has {settings.DEMO_CREDITS} credits.\n"
            f"Its API key, shown this once:\n\n    {issued.raw_key}\n\n"
            f"Try it (in another terminal, once the server is up):\n\n"
            f"    curl {base_url}/images/generations \\\n"
            f'      -H "Authorization: Bearer {issued.raw_key}" \\\n'
            f'      -H "Content-Type: application/json" \\\n'
            f'      -d \'{{"model": "seedream-4-0", "prompt": "a red fox in snow", '
            f'"size": "1024x1024"}}\'\n'
            f"{line}\n"
        )
