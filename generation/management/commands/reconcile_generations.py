from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from generation import services


class Command(BaseCommand):
    help = "Release the reservations of generations stuck past their deadline (Celery runs it too)."

    def handle(self, *args: Any, **options: Any) -> None:
        count = services.reconcile_stuck_generations()
        self.stdout.write(f"Reconciled {count} generations.")
