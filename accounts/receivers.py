"""Every new user gets their personal account, in the transaction that makes them."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import User
from .services import personal_account


@receiver(post_save, sender=User, dispatch_uid="accounts.personal_account")
def _make_personal_account(
    sender: type[User], instance: User, created: bool, **kwargs: Any
) -> None:
    if created and not kwargs.get("raw"):
        personal_account(instance)
