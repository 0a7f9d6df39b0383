"""The simulator under test: one process per test module, and an HTTP client for it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from simulator.process import running_simulator
from tests.support.simulator import SIM_TEST_KEY


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with running_simulator(api_key=SIM_TEST_KEY) as url:
        yield url


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60.0, trust_env=False) as client:
        yield client
