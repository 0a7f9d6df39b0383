from __future__ import annotations

from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The /v1 OpenAI-compatible surface. It has no models of its own: its migrations are the
    history of the generation tables, which moved to the ``generation`` app (same tables)."""

    name = "api"
    verbose_name = "Image API"
