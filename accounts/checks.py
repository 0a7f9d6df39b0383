"""System checks for identity: `manage.py check --deploy` fails a production that cannot mail."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security, deploy=True)
def mail_goes_out(app_configs: Any, **kwargs: Any) -> list[Error]:
    """Sign-up confirmations and password resets are links sent by mail: a production whose mail
    only reaches its own logs locks its customers out, silently."""
    if settings.EMAIL_BACKEND.endswith(("console.EmailBackend", "locmem.EmailBackend")):
        return [
            Error(
                "No EMAIL_HOST: confirmation and password-reset links would be printed in the "
                "web process's log instead of sent, and no customer could confirm an address.",
                hint="Set EMAIL_HOST (and EMAIL_HOST_USER, EMAIL_HOST_PASSWORD, "
                "DEFAULT_FROM_EMAIL).",
                id="accounts.E001",
            )
        ]
    return []
