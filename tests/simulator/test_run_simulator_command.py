"""``manage.py run_simulator``, the way ``make run`` starts the simulator."""

from __future__ import annotations

import sys

import httpx
import pytest
from django.conf import settings

from simulator.process import running
from tests.support.simulator import PROJECT_ROOT

pytestmark = pytest.mark.integration


def test_the_management_command_serves_the_simulator_with_the_settings_key() -> None:
    command = [sys.executable, "manage.py", "run_simulator", "--port", "0", "--latency", "0"]
    with running(command, cwd=PROJECT_ROOT) as url:
        generate = f"{url}/api/v3/images/generations"
        body = {"model": "seedream-4-0-250828", "prompt": "a fox", "size": "1K"}
        with httpx.Client(timeout=30.0, trust_env=False) as client:
            accepted = client.post(
                generate,
                json=body,
                headers={"Authorization": f"Bearer {settings.SIMULATOR_API_KEY}"},
            )
            refused = client.post(generate, json=body, headers={"Authorization": "Bearer other"})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["data"][0]["size"] == "1024x1024"
    assert refused.status_code == 401
