"""allauth's hooks for this installation: every email it sends names the site as the operator
configured it (SITE_NAME, SITE_DOMAIN), never the host a request happened to come in on.

django.contrib.sites is not installed, so allauth would otherwise fall back to a RequestSite
whose name is the request's host ("Hello from 127.0.0.1:8877!"). Settings rather than a Site
row: the name changes with the environment at the next restart, and no migration has to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings


@dataclass(frozen=True)
class ConfiguredSite:
    """What allauth's templates read of a Site: its name and its domain."""

    name: str
    domain: str

    def __str__(self) -> str:
        return self.domain


def configured_site() -> ConfiguredSite:
    return ConfiguredSite(name=settings.SITE_NAME, domain=settings.SITE_DOMAIN)


class AccountAdapter(DefaultAccountAdapter):
    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        # allauth puts its own current_site in first and lets ours replace it; site_url lets
        # the HTML emails link home.
        super().send_mail(
            template_prefix,
            email,
            {
                **context,
                "current_site": configured_site(),
                "site_url": settings.SITE_URL,
                "support_email": settings.SUPPORT_EMAIL,
            },
        )
