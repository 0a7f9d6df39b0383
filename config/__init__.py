"""Project wiring. Importing it binds Celery's shared tasks to the project's app."""

from __future__ import annotations

from .celery import app as celery_app

__all__ = ["celery_app"]
