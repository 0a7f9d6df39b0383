"""A deploy check: a public site that would deliver webhooks to private addresses."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning


@register(Tags.security, deploy=True)
def private_webhook_addresses(**kwargs: Any) -> list[CheckMessage]:
    if settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES and settings.SITE_URL.startswith("https://"):
        return [
            CheckWarning(
                "WEBHOOK_ALLOW_PRIVATE_ADDRESSES is true on a public site: customers' webhook "
                "endpoints may make it reach loopback and private addresses.",
                hint="Leave WEBHOOK_ALLOW_PRIVATE_ADDRESSES unset (false when SITE_URL is not "
                "on loopback and DEBUG is off).",
                id="webhooks.W001",
            )
        ]
    return []
