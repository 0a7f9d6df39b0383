"""System checks for card payments."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

from . import stripe_client


@register()
def stripe_key_has_a_mode(app_configs: Any, **kwargs: Any) -> list[Error]:
    # Webhook events act only when their livemode is the key's (billing/webhooks.py): with a key
    # of no known mode, no payment would ever be credited.
    if settings.STRIPE_SECRET_KEY and stripe_client.key_livemode() is None:
        return [
            Error(
                "STRIPE_SECRET_KEY starts with none of sk_live_, sk_test_, rk_live_, rk_test_: "
                "its mode is unknown, so no Stripe event would be acted on.",
                hint="Copy the secret (or restricted) key from Stripe's dashboard as it is.",
                id="billing.E001",
            )
        ]
    return []
