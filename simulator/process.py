"""Start a simulator in a child process and wait until it listens: for the tests and the bench."""

from __future__ import annotations

import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from . import DEFAULT_API_KEY, READY_PREFIX
from .protocol import API_PREFIX

# The folder holding this package: ``python -m simulator`` run there finds it.
PACKAGE_PARENT = Path(__file__).resolve().parents[1]
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
def running(command: Sequence[str], *, cwd: Path = PACKAGE_PARENT) -> Iterator[str]:
    """Run ``command``, a simulator, for the block; yields the ``http://host:port`` it announces.

    For another way of starting one (``manage.py run_simulator``); ``running_simulator`` is the
    usual way.
    """
    with tempfile.TemporaryFile(mode="w+") as stderr:
        # No shell, and the command comes from our own tests and benchmarks.
        process = subprocess.Popen(  # noqa: S603
            command, cwd=cwd, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        try:
            yield _wait_until_listening(process, stderr)
        finally:
            stop(process)


@contextmanager
def running_simulator(*, latency: float = 0.0, api_key: str = DEFAULT_API_KEY) -> Iterator[str]:
    """A simulator on a free port for the duration of the block; yields its ``.../api/v3`` base."""
    command = [
        sys.executable,
        "-m",
        "simulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--api-key",
        api_key,
        "--latency",
        repr(latency),
    ]
    with running(command) as url:
        yield f"{url}{API_PREFIX}"
