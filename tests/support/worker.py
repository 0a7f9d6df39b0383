"""Start a real Celery worker (``celery -A config worker``) as a subprocess for a test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .simulator import PROJECT_ROOT, stop

START_TIMEOUT_SECONDS = 30.0


@dataclass
class Worker:
    process: subprocess.Popen[str]
    output: object

    def log(self) -> str:
        self.output.seek(0)  # type: ignore[attr-defined]
        return str(self.output.read())  # type: ignore[attr-defined]

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once, mid-task: no clean shutdown."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@contextmanager
def running_worker(env: dict[str, str], *, beat_schedule: Path | None = None) -> Iterator[Worker]:
    """A worker with one pool process, ready to take tasks, in its own process group. With
    ``beat_schedule`` (a file path) it also runs the periodic tasks of CELERY_BEAT_SCHEDULE, as
    ``celery beat`` does in production (the reconciler every RECONCILE_EVERY_SECONDS)."""
    command = [
        sys.executable, "-m", "celery", "-A", "config", "worker",
        "--concurrency", "1", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
        "--without-heartbeat",
    ]  # fmt: skip
    if beat_schedule is not None:
        command += ["--beat", "--schedule", str(beat_schedule)]
    with tempfile.TemporaryFile(mode="w+") as output:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        worker = Worker(process, output)
        try:
            _wait_until_ready(worker)
            yield worker
        finally:
            if process.poll() is None:
                stop(process, timeout=15)


def _wait_until_ready(worker: Worker) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            break
        if " ready." in worker.log():
            return
        time.sleep(0.2)
    raise RuntimeError(f"the worker did not start:\n{worker.log()}")


REDIS_URL = "redis://127.0.0.1:6379/0"


@contextmanager
def redis_broker(env: dict[str, str], url: str = REDIS_URL) -> Iterator[dict[str, str]]:
    """Point this process's Celery app at the Redis at ``url`` (the local shared one unless a
    test has its own), on a queue of its own (a shared Redis is never empty), and yield ``env``
    for workers that must use the same."""
    from config.celery import app

    queue = f"test-{uuid.uuid4().hex[:12]}"
    saved = (app.conf.broker_url, app.conf.task_default_queue, app.conf.broker_transport_options)
    app.conf.broker_url = url
    app.conf.task_default_queue = queue
    app.conf.broker_transport_options = {}
    _reset_connections(app)
    try:
        yield {**env, "CELERY_BROKER_URL": url, "CELERY_QUEUE": queue}
    finally:
        app.conf.broker_url, app.conf.task_default_queue, app.conf.broker_transport_options = saved
        _reset_connections(app)


def _reset_connections(app: Any) -> None:
    # Celery caches its connection and producer pools: drop them (unclosed: kombu's global
    # pools may still hold them) so the next send uses the broker configured now.
    app._pool = None
    app.amqp._producer_pool = None
