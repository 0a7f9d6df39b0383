"""Re-encrypt every endpoint's signing secret under the first key of WEBHOOK_SECRET_KEYS, so an
older key can then be dropped from the setting (README, "Webhooks")."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from webhooks import crypto
from webhooks.models import Endpoint


class Command(BaseCommand):
    help = "Re-encrypt webhook signing secrets under the first key of WEBHOOK_SECRET_KEYS."

    def handle(self, *args: Any, **options: Any) -> None:
        count = 0
        for pk in Endpoint.objects.values_list("pk", flat=True).iterator():
            with transaction.atomic():
                endpoint = Endpoint.objects.select_for_update().get(pk=pk)
                endpoint.secret_encrypted = crypto.reencrypt(endpoint.secret_encrypted)
                if endpoint.previous_secret_encrypted:
                    endpoint.previous_secret_encrypted = crypto.reencrypt(
                        endpoint.previous_secret_encrypted
                    )
                endpoint.save(update_fields=["secret_encrypted", "previous_secret_encrypted"])
            count += 1
        self.stdout.write(f"Re-encrypted the secrets of {count} webhook endpoints.")
