"""``manage.py run_simulator``: serve the Seedream upstream simulator (see ``api.simulator``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from api.simulator import serve


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when installed: the benchmarks measure the product, not this process."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


class Command(BaseCommand):
    help = "Serve a simulator of the Seedream upstream (POST /api/v3/images/generations)."
    # No system checks and no database: the simulator must start fast and stand alone.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to bind.")
        parser.add_argument(
            "--port",
            type=int,
            default=None,
            help="Port to bind (default settings.SIMULATOR_PORT; 0 picks a free port).",
        )
        parser.add_argument(
            "--api-key",
            default=None,
            help="Bearer key clients must send (default settings.SIMULATOR_API_KEY).",
        )
        parser.add_argument(
            "--latency",
            type=float,
            default=0.0,
            help="Seconds added before every generation answer.",
        )
        parser.add_argument(
            "--public-url",
            default=None,
            help="Base URL of the image links it returns (default http://HOST:PORT).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        port: int = settings.SIMULATOR_PORT if options["port"] is None else options["port"]
        api_key: str = options["api_key"] or settings.SIMULATOR_API_KEY
        latency: float = options["latency"]
        if not 0 <= port <= 65535:
            raise CommandError(f"--port must be within 0 to 65535, not {port}")
        if latency < 0:
            raise CommandError("--latency must not be negative")

        def announce(url: str) -> None:
            # Exactly one line, flushed: tests and `make run` wait for it on a pipe.
            self.stdout.write(f"Seedream simulator listening on {url}")
            self.stdout.flush()

        server = serve(
            host=options["host"],
            port=port,
            api_key=api_key,
            latency=latency,
            public_url=options["public_url"],
            on_ready=announce,
        )
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(server)
