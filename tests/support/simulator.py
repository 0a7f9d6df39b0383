"""The project root and ``stop``, still imported from here by the other process helpers.

Starting a simulator for a test is ``simulator.process.running_simulator``.
"""

from __future__ import annotations

from pathlib import Path

from simulator.process import stop

__all__ = ["PROJECT_ROOT", "stop"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
