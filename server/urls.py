"""The process's own endpoints: liveness, readiness and the metrics scrape."""

from __future__ import annotations

from django.urls import path

from . import health

app_name = "server"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
]
