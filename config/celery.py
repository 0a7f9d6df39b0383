"""The Celery app. Settings live in config/settings.py under the CELERY_ namespace."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Request ids on tasks, task outcome counts and the workers' log format (its receivers connect
# on import).
from server import celery_signals  # noqa: E402, F401
