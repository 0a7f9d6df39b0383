from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from accounts.models import Account, User
from accounts.signals import account_closing

from . import services


@receiver(account_closing)
def disable_endpoints_of_closed_account(
    sender: type[User], user: User, accounts: list[Account], **kwargs: Any
) -> None:
    for account in accounts:
        services.disable_all_endpoints(account)
