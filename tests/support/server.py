"""Start the real ASGI server (uvicorn running config.asgi) as a subprocess for a test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from .simulator import PROJECT_ROOT, stop

START_TIMEOUT_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(
    env: dict[str, str], *, workers: int = 1, graceful_seconds: int | None = None
) -> Iterator[str]:
    """uvicorn serving the product on a free port, with ``env`` added to this environment.
    Yields the base URL (``http://127.0.0.1:PORT``). With ``graceful_seconds`` the server
    drains for that long when stopped, as in production."""
    with server_process(env, workers=workers, graceful_seconds=graceful_seconds) as server:
        yield server.url


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    output: Any

    def log(self) -> str:
        self.output.seek(0)
        return str(self.output.read())


@contextmanager
def server_process(
    env: dict[str, str], *, workers: int = 1, graceful_seconds: int | None = None
) -> Iterator[Server]:
    """Like running_server, with the process itself (to stop it mid-request) and its log."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "config.asgi:application",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--no-access-log", "--http", "server.http_protocol:HeaderTimeoutProtocol",
    ]  # fmt: skip
    # The lifespan protocol as in production: on startup the process runs the API's hot SQL on
    # its event loop (server/asyncdb.py).
    command += ["--lifespan", "on"]
    if graceful_seconds is not None:
        command += ["--timeout-graceful-shutdown", str(graceful_seconds)]
    with tempfile.TemporaryFile(mode="w+") as output:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            # A process group of its own, so a test can SIGKILL the server with its workers.
            start_new_session=True,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_serving(process, base_url, output)
            yield Server(base_url, process, output)
        finally:
            if process.poll() is None:
                stop(process, timeout=15)


def _wait_until_serving(process: subprocess.Popen[str], base_url: str, output: object) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            httpx.get(f"{base_url}/v1/models", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    output.seek(0)  # type: ignore[attr-defined]
    raise RuntimeError(f"the server did not start:\n{output.read()}")  # type: ignore[attr-defined]
