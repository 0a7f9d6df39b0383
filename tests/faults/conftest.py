"""Fault tests: real processes (uvicorn web processes, Celery workers, the upstream simulator, a
Redis and a PostgreSQL of the test's own) and real parts broken under them. Each test ends with
``assert_books_balance_and_nothing_held()`` (tests/faults/books.py): every balance equals its
ledger, every generation is settled exactly once, no credits are held, no concurrency slot is
left.

What is here:

- ``fault_env``: the environment of a web process or worker on this test's database (the
  session's test database, emptied after each test), with timeouts short enough for a test;
- ``processes``: start web processes and workers for the test (``processes.web(env)``,
  ``processes.worker(env, beat=True)``), all stopped when it ends;
- ``static_root``: collected static files, for a web process that renders pages
  (``STATIC_ROOT``);
- ``customers``: customers with credits and API keys, made through billing's and keys' own
  services (``customers.open(credits)``);
- ``own_redis``: a ``redis-server`` of the test's own (tests/support/redis_server.py), to stop
  and start again mid-test; ``own_postgres``: a PostgreSQL cluster of the test's own
  (tests/support/postgres_cluster.py), to restart mid-test; tests/faults/own_database.py
  migrates a database there and runs the books helpers on it;
- the load helpers are in tests/faults/load.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.support.postgres_cluster import PostgresCluster, running_postgres_cluster
from tests.support.redis_server import RedisServer, running_redis_server
from tests.support.server import Server, server_process
from tests.support.simulator import PROJECT_ROOT
from tests.support.worker import Worker, running_worker

from .books import Customer, open_customer

# Short enough for a test, long enough for a generation on a busy two-core machine.
FAULT_ENV = {
    "UPSTREAM_TIMEOUT_SECONDS": "3",
    "UPSTREAM_IMAGE_TIMEOUT_SECONDS": "3",
    "GENERATION_TIMEOUT_SECONDS": "6",
}


@pytest.fixture
def fault_env(live_server_env: dict[str, str]) -> dict[str, str]:
    """A web process's or worker's environment on this test's database."""
    return {**live_server_env, **FAULT_ENV}


@pytest.fixture(scope="session")
def static_root(live_server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """A STATIC_ROOT with collectstatic's manifest, for web processes that render pages (the
    production static storage refuses to render a page without one)."""
    folder = tmp_path_factory.mktemp("static")
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **live_server_env, "STATIC_ROOT": str(folder)},
        check=True,
        timeout=120,
    )
    return str(folder)


class Processes:
    """Web processes and workers started for one test, stopped when it ends."""

    def __init__(self, stack: ExitStack, folder: Path) -> None:
        self._stack = stack
        self._folder = folder
        self._beats = 0

    def web(self, env: dict[str, str], **options: Any) -> Server:
        """A uvicorn web process (tests/support/server.py's ``server_process`` options)."""
        return self._stack.enter_context(server_process(env, **options))

    def worker(self, env: dict[str, str], *, beat: bool = False) -> Worker:
        """A Celery worker on ``env``'s broker; with ``beat`` it runs the periodic tasks too
        (the reconciler every RECONCILE_EVERY_SECONDS), as ``celery beat`` does."""
        self._beats += beat
        schedule = self._folder / f"beat-{self._beats}" if beat else None
        return self._stack.enter_context(running_worker(env, beat_schedule=schedule))

    def all_at_once(self, *starting: Callable[[], AbstractContextManager[Any]]) -> list[Any]:
        """Start several processes at the same time (each waits until it is ready, so one after
        another would add up); e.g. ``all_at_once(lambda: server_process(env), ...)``."""
        managers = [start() for start in starting]
        with ThreadPoolExecutor(len(managers)) as pool:
            futures = [pool.submit(manager.__enter__) for manager in managers]
        for manager, future in zip(managers, futures, strict=True):
            if future.exception() is None:
                self._stack.push(manager)
        return [future.result() for future in futures]


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with ExitStack() as stack:
        yield Processes(stack, tmp_path)


class Customers:
    def open(self, credits: int = 1000, *, concurrent_generations: int | None = None) -> Customer:
        return open_customer(credits, concurrent_generations=concurrent_generations)


@pytest.fixture
def customers(transactional_db: None, default_prices: None) -> Customers:
    """Customers in this test's database, which the web processes and workers share (hence a
    transactional database: their rows must be committed for other processes to see)."""
    return Customers()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis server of this test's own on a free port; ``stop()`` and ``start()`` it."""
    with running_redis_server() as server:
        yield server


@pytest.fixture
def own_postgres() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster of this test's own; ``restart("fast" | "immediate")`` it."""
    with running_postgres_cluster() as cluster:
        yield cluster
