"""Signing a test client in and choosing the account the dashboard acts for."""

from __future__ import annotations

from typing import Any

from django.test import Client

SWITCH = "/dashboard/organisations/switch/"


def working_in(client: Client, user: Any, account: Any = None) -> Client:
    """``client`` signed in as ``user`` and, given ``account``, switched to it as the account
    switcher does (the switch must succeed)."""
    client.force_login(user)
    if account is not None:
        assert client.post(SWITCH, {"account": account.pk}).status_code == 302
    return client
