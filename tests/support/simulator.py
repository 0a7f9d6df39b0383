"""The project root and ``stop``, still imported from here by the other process helpers; the
key and prompts of the simulator's own tests (tests/simulator/conftest.py starts it).

Starting a simulator for a test is ``simulator.process.running_simulator``.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from simulator.process import stop

__all__ = ["PROJECT_ROOT", "SIM_TEST_KEY", "stop", "unique"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The key tests/simulator's simulators take.
SIM_TEST_KEY = "sim-test-key"


def unique(prompt: str) -> str:
    """A prompt no other test sends, so per-prompt call counters start at zero."""
    return f"{prompt} {uuid.uuid4().hex}"
