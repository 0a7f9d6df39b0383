from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from accounts.models import User
from accounts.signals import account_closing

from . import webhooks


@receiver(account_closing)
def redact_stripe_events_of_closed_account(sender: type[User], user: User, **kwargs: Any) -> None:
    webhooks.redact_events_of(user)
