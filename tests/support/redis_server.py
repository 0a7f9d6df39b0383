"""A Redis server of a test's own: ``redis-server`` on a free loopback port, in a temporary folder.

The shared Redis (6379) serves every engineer's tests at once, so a test that stops Redis must
stop one of its own. This one keeps nothing on disk (``--save ""``, no append-only file), and can
be stopped and started again on the same port mid-test, as a Redis that restarts does: clients
keep their address, and find it empty.

Without ``redis-server`` the tests that need it skip and say how to install it, except under CI
(``CI`` set), where its absence is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest
import redis

from .server import free_port
from .simulator import stop

START_TIMEOUT_SECONDS = 15.0
INSTALL_HINT = "apt-get install -y redis-server"


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


def require_redis_server() -> str:
    """The binary's path; else skip (or, under CI, fail) saying how to install it."""
    binary = redis_server_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but redis-server is not installed: {INSTALL_HINT}")
        pytest.skip(f"redis-server is not installed: {INSTALL_HINT}; in CI this fails instead")
    return binary


class RedisServer:
    """One ``redis-server`` process on ``port``; ``stop()`` and ``start()`` it at will."""

    def __init__(self, binary: str, folder: Path, port: int) -> None:
        self.binary = binary
        self.folder = folder
        self.port = port
        self.process: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis.from_url(self.url(db), socket_timeout=2, socket_connect_timeout=2)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start it (again) on the same port, empty, and wait until it answers PING."""
        assert not self.running, "already running"
        self._log = open(self.folder / "redis.log", "a")  # noqa: SIM115 (closed in stop())
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.folder),
            "--protected-mode", "yes", "--daemonize", "no",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, text=True, cwd=self.folder
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if self.client().ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{self.log()}")

    def stop(self, *, kill: bool = False) -> None:
        """Stop it: SIGTERM (a clean shutdown), or SIGKILL with ``kill`` (a crash)."""
        if self.process is not None and self.process.poll() is None:
            if kill:
                self.process.kill()
                self.process.wait(timeout=10)
            else:
                stop(self.process, timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        path = self.folder / "redis.log"
        return path.read_text() if path.exists() else ""


@contextmanager
def running_redis_server() -> Iterator[RedisServer]:
    """A Redis server of this test's own on a free port, stopped and removed on exit."""
    binary = require_redis_server()
    with tempfile.TemporaryDirectory(prefix="seedream-redis-") as folder:
        server = RedisServer(binary, Path(folder), free_port())
        server.start()
        try:
            yield server
        finally:
            server.stop()
