"""What every page may need to say about getting credits here: whether cards are taken, how
many credits a new account starts with, and whom to write to.

A context processor, not each view's context: the storefront, the overview, the limits and
billing pages and the error pages all offer credits, and each must say the same thing.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from billing import payments


def credits_offer(request: HttpRequest) -> dict[str, Any]:
    return {
        "card_payments": payments.card_payments_enabled(),
        "signup_credits": settings.SIGNUP_CREDITS,
        "support_email": settings.SUPPORT_EMAIL,
    }
