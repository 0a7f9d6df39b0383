from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from accounts.models import Account, User
from accounts.signals import account_closing

from . import services


@receiver(account_closing)
def erase_content_of_closed_account(
    sender: type[User], user: User, accounts: list[Account], **kwargs: Any
) -> None:
    # Its work first: nothing of a closed account is sent upstream or charged afterwards.
    for account in accounts:
        services.release_work_of_closing_account(account.pk)
        services.erase_customer_content(account)
