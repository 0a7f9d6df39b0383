from __future__ import annotations

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "Image API"

    def ready(self) -> None:
        from . import checks, receivers  # noqa: F401  (system checks, account-closing receiver)
