"""``manage.py run_simulator``: ``python -m simulator`` with the port and key from the settings.

``make run`` starts it this way, so the simulator listens where ``UPSTREAM_BASE_URL`` points.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from simulator.cli import add_arguments
from simulator.server import run


class Command(BaseCommand):
    help = "Serve a simulator of the Seedream upstream (POST /api/v3/images/generations)."
    # No system checks and no database: the simulator must start fast and stand alone.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(parser, port=settings.SIMULATOR_PORT, api_key=settings.SIMULATOR_API_KEY)

    def handle(self, *args: Any, **options: Any) -> None:
        run(
            host=options["host"],
            port=options["port"],
            api_key=options["api_key"],
            latency=options["latency"],
            public_url=options["public_url"],
        )
