from __future__ import annotations

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    label = "dashboard"
    verbose_name = "Dashboard"

    def ready(self) -> None:
        # The deploy checks of the browser middleware (server/ is not an app, and the browser
        # side is this one's): they register themselves.
        # The billing history links each generation's line to its request page.
        from billing import history
        from server import checks  # noqa: F401

        from .views_requests import ledger_links

        history.link_references(ledger_links)
