"""System checks: `manage.py check --deploy` warns about a production that is not one."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def upstream_is_real(app_configs: Any, **kwargs: Any) -> list[Warning]:
    if settings.USE_SIMULATOR:
        return [
            Warning(
                "No UPSTREAM_API_KEY: images come from the bundled simulator, and customers "
                "would pay for synthetic pictures.",
                hint="Set UPSTREAM_API_KEY (and UPSTREAM_BASE_URL for other regions).",
                id="api.W001",
            )
        ]
    return []
