from __future__ import annotations

from django.apps import AppConfig


class GenerationConfig(AppConfig):
    """The generation domain: requests for images, their money's holds and settlements through
    billing, the upstream client, storage, rate limits and the Celery tasks."""

    name = "generation"
    verbose_name = "Generations"

    def ready(self) -> None:
        # System checks, the account-closing receiver, and what a served process does at its
        # start and end.
        from . import checks, lifespan, receivers  # noqa: F401
