"""Start the Seedream upstream simulator (``manage.py run_simulator``) for a test."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

PROJECT_ROOT = Path(__file__).resolve().parents[2]
READY_PREFIX = "Seedream simulator listening on "
START_TIMEOUT_SECONDS = 20.0


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    # Keeps reading after the ready line too, so the child can never block on a full pipe.
    for line in stream:
        lines.put(line)
    lines.put(None)


def _wait_until_listening(process: subprocess.Popen[str], stderr: IO[str]) -> str:
    """The ``http://host:port`` the simulator announces; raises with its output if it does not."""
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    seen: list[str] = []
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            problem = f"did not start within {START_TIMEOUT_SECONDS:g} s"
            break
        if line is None:
            problem = "exited before listening"
            break
        if line.startswith(READY_PREFIX):
            return line[len(READY_PREFIX) :].strip()
        seen.append(line)
    stderr.seek(0)
    raise RuntimeError(f"the simulator {problem}:\n{''.join(seen)}{stderr.read()}")


def stop(process: subprocess.Popen[str], timeout: float = 10) -> None:
    """Terminate, and kill what does not exit in time."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running_simulator(*, latency: float = 0.0, api_key: str = "sim-local-key") -> Iterator[str]:
    """A simulator on a free port for the duration of the block; yields its ``.../api/v3`` base."""
    command = [
        sys.executable,
        "manage.py",
        "run_simulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--api-key",
        api_key,
        "--latency",
        repr(latency),
    ]
    with tempfile.TemporaryFile(mode="w+") as stderr:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            url = _wait_until_listening(process, stderr)
            yield f"{url}/api/v3"
        finally:
            stop(process)
