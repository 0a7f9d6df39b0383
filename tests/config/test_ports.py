"""`make run` says plainly when a port it needs is taken (bin/ports_free.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.support.simulator import PROJECT_ROOT

pytestmark = pytest.mark.smoke


def ports_free(*ports: int) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "bin/ports_free.py", "127.0.0.1", *map(str, ports)]
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30)


def test_a_taken_port_is_named_in_one_line_with_the_way_out():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = ports_free(port)

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert f"Port {port} on 127.0.0.1 is taken" in result.stderr
    assert f"PORT={port + 1000} make run" in result.stderr


def test_free_ports_pass_silently():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = ports_free(port)

    assert (result.returncode, result.stderr) == (0, "")


def test_the_simulator_port_follows_the_web_port():
    # As a shell would run it (`make test` may have set these for its own run).
    env = {k: v for k, v in os.environ.items() if k not in ("SIMULATOR_PORT", "UPSTREAM_API_KEY")}
    result = subprocess.run(
        ["make", "-s", "-n", "run", "PORT=9000"], cwd=PROJECT_ROOT, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert "ports_free.py 127.0.0.1 9000 9799" in result.stdout
