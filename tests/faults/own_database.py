"""A database on a PostgreSQL cluster of the test's own (tests/support/postgres_cluster.py):
migrated, and the books helpers (tests/faults/books.py) run on it in a child process, since the
test process stays connected to the session's test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.support.postgres_cluster import PostgresCluster
from tests.support.simulator import PROJECT_ROOT

from .books import Customer


def database_on(cluster: PostgresCluster, env: dict[str, str], name: str) -> dict[str, str]:
    """Create database ``name`` on ``cluster`` and migrate it (the seeded prices with it);
    returns ``env`` pointed at it."""
    env = {**env, "DATABASE_URL": cluster.create_database(name)}
    _manage(env, sys.executable, "manage.py", "migrate", "--noinput", "-v0")
    return env


def books_in(env: dict[str, str], *args: str) -> Any:
    """``python -m tests.faults ARGS`` on ``env``'s database: its JSON answer (the last line it
    prints)."""
    output = _manage(env, sys.executable, "-m", "tests.faults", *args)
    return json.loads(output.strip().splitlines()[-1])


def customers_in(env: dict[str, str], count: int, credits: int) -> list[Customer]:
    """``count`` customers with ``credits`` each in ``env``'s database (see Customers)."""
    return [
        Customer.from_dict(data) for data in books_in(env, "customers", str(count), str(credits))
    ]


def assert_books_balance_in(env: dict[str, str], redis_url: str = "") -> None:
    """``assert_books_balance_and_nothing_held`` on ``env``'s database."""
    found = books_in(env, "check", *([redis_url] if redis_url else []))
    assert not found, "the books do not balance:\n" + "\n".join(found)


def _manage(env: dict[str, str], *command: str) -> str:
    result = subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout
