"""PostgreSQL restarted under load (a cluster of the test's own): the same web process serves
again once the database is back, without a restart of its own, and nothing is charged twice.

The web process keeps pooled connections (Django's pool for the ORM, server/asyncdb.py's for the
hot SQL); a restart kills every one of them. With CONN_HEALTH_CHECKS (config/settings.py) each
pool checks a connection before lending it, so a dead one is replaced instead of failing the
next request or settlement. A settlement that loses its connection is tried once more
(generation/services/settle.py); one that fails twice (the database is still down) leaves its
row unsettled, and the reconciler, run by Celery beat in a worker as in production, fails and
releases it once past its deadline. The load runs through both restarts: ``pg_ctl restart -m
fast`` (sessions told to end, a clean shutdown) and ``-m immediate`` (a crash: recovery on start),
then a stop of several seconds, longer than the pools wait for a connection: a generation that
was with the upstream when the database went cannot settle, its customer is told so (500), and
the reconciler releases it once the database is back.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from generation.models import ConcurrencySlot, Generation
from tests.support.postgres_cluster import PostgresCluster
from tests.support.server import server_process
from tests.support.worker import running_worker

from .conftest import Processes
from .load import (
    MODEL,
    SIZE,
    Call,
    generate_concurrently,
    simulator_calls,
    unique,
    wait_until,
)
from .own_database import assert_books_balance_in, books_in, customers_in, database_on

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

PRICE = 40  # seedream-4-0 at 1024x1024
CREDITS = 100_000
CLIENTS = 4  # requests in flight at any time, each client sending one after another
DEADLINE = 5  # GENERATION_DEADLINE_SECONDS: the reconciler's cue
# How long the pools wait for a connection (DB_POOL_TIMEOUT), and how long the database stays
# stopped in the last variant: long enough that a settlement due meanwhile gives up.
POOL_TIMEOUT = 2
OUTAGE = 6
# A concurrency slot that could not be given back while the database was away (the limits are
# counted there: no Redis) lapses with its lease; longer than a generation may take (6 s).
LEASE = 10
SERVED_AFTER = 4  # successes, sent after a restart, that show the process serves again
WAIT = 60  # seconds after which a wait calls the test hung (never the thing tested)


@dataclass(frozen=True)
class Answer:
    """One request of the load: what was sent, when, and what came back."""

    key: str
    prompt: str
    sent: float  # time.monotonic()
    answered: float
    status: int | None  # None: no HTTP answer at all
    code: str  # the error's code, or the transport error's name

    @property
    def ok(self) -> bool:
        return self.status == 200


class Load:
    """CLIENTS clients, each sending generations one after another until ``stop()``; every
    other one waits half a second upstream, so some are mid-generation at any moment."""

    def __init__(self, base_url: str, keys: list[str]) -> None:
        self.base_url = base_url
        self.keys = keys
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(CLIENTS)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=WAIT)

    def _client(self, number: int) -> None:
        key = self.keys[number % len(self.keys)]
        with httpx.Client(base_url=self.base_url, timeout=30, trust_env=False) as client:
            sent_count = 0
            while not self._stopping.is_set():
                sent_count += 1
                marker = " [sim:latency=0.5]" if sent_count % 2 else ""
                prompt = unique(f"a tide clock{marker}")
                sent = time.monotonic()
                try:
                    response = client.post(
                        "/v1/images/generations",
                        json={"model": MODEL, "prompt": prompt, "size": SIZE},
                        headers={"Authorization": f"Bearer {key}"},
                    )
                except httpx.HTTPError as error:
                    status, code = None, type(error).__name__
                else:
                    status = response.status_code
                    code = "" if status == 200 else error_code(response)
                with self._lock:
                    self.answers.append(Answer(key, prompt, sent, time.monotonic(), status, code))

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def served_since(self, moment: float) -> list[Answer]:
        return [a for a in self.snapshot() if a.ok and a.sent >= moment]


def error_code(response: httpx.Response) -> str:
    """The OpenAI error's code ("None" for a null one), or what the body was instead."""
    try:
        error = response.json()["error"]
        assert error["type"] and error["message"]
        return str(error["code"])
    except (ValueError, KeyError, TypeError, AssertionError):
        return f"not OpenAI's shape: {response.text[:80]!r}"


@dataclass(frozen=True)
class Restart:
    what: str
    began: float
    ended: float
    failed: list[Answer]
    first_served: float  # seconds after the database was back until the first 200 sent after


def restart_under_load(cluster: PostgresCluster, load: Load, what: str) -> Restart:
    """``pg_ctl restart -m fast`` or ``-m immediate`` under the load; or, for ``"stopped"``,
    the database stopped for OUTAGE seconds before it starts again."""
    began = time.monotonic()
    if what == "stopped":
        cluster.stop("fast")
        time.sleep(OUTAGE)
        cluster.start()
    else:
        cluster.restart(what)
    ended = time.monotonic()
    wait_until(
        lambda: len(load.served_since(ended)) >= SERVED_AFTER,
        f"the web process serves again after the database was {what}",
        timeout=WAIT,
    )
    served = load.served_since(ended)
    failed = [a for a in load.snapshot() if not a.ok and a.answered >= began]
    return Restart(what, began, ended, failed, min(a.answered for a in served) - ended)


def rows(env: dict[str, str], sql: str) -> list[tuple[object, ...]]:
    """A query on the test's own cluster (the test process's Django is not connected to it)."""
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as connection:
        return connection.execute(sql).fetchall()


def unsettled(env: dict[str, str]) -> int:
    table = Generation._meta.db_table
    [(count,)] = rows(env, f"SELECT count(*) FROM {table} WHERE status IN ('queued', 'running')")  # noqa: S608
    return int(count)  # type: ignore[call-overload]


def live_slots(env: dict[str, str]) -> int:
    table = ConcurrencySlot._meta.db_table
    [(count,)] = rows(env, f"SELECT count(*) FROM {table} WHERE expires_at > now()")  # noqa: S608
    return int(count)  # type: ignore[call-overload]


def test_postgres_restarted_mid_load_the_same_web_process_serves_again_and_charges_once(
    fault_env: dict[str, str],
    own_postgres: PostgresCluster,
    processes: Processes,
    simulator_url: str,
    tmp_path: Path,
):
    env = database_on(
        own_postgres,
        {
            **fault_env,
            # This test's own folder: the filesystem broker between web process and worker.
            "DATA_DIR": str(tmp_path / "data"),
            "GENERATION_DEADLINE_SECONDS": str(DEADLINE),
            "RECONCILE_EVERY_SECONDS": "1",
            "DB_POOL_TIMEOUT": str(POOL_TIMEOUT),
            "RATE_LIMIT_SLOT_LEASE_SECONDS": str(LEASE),
        },
        "faults_restart",
    )
    customers = customers_in(env, 2, CREDITS)
    web, _ = processes.all_at_once(
        lambda: server_process(env),
        lambda: running_worker(env, beat_schedule=tmp_path / "beat-schedule"),
    )
    load = Load(web.url, [c.key for c in customers])
    load.start()
    restarts: list[Restart] = []
    stranded: list[Any] = []
    stranded_call = Call(customers[0].key, unique("a stranded tide clock [sim:latency=1]"))
    try:
        wait_until(lambda: len(load.served_since(0)) >= SERVED_AFTER, "the load is served")
        for mode in ("fast", "immediate"):
            restarts.append(restart_under_load(own_postgres, load, mode))
        # One more generation with the upstream when the database stops for a while: it comes
        # back with the image during the outage, OUTAGE - 1 seconds before the database does.
        sending = threading.Thread(
            target=lambda: stranded.extend(generate_concurrently(web.url, [stranded_call]))
        )
        sending.start()
        wait_until(
            lambda: simulator_calls(simulator_url, stranded_call.prompt) == 1,
            "the stranded generation is with the upstream",
        )
        restarts.append(restart_under_load(own_postgres, load, "stopped"))
        sending.join(timeout=WAIT)
    finally:
        load.stop()
    answers = load.snapshot()

    # Whatever a restart cut off is settled or released: by its own request, or by the
    # reconciler once past its deadline.
    released = wait_until(
        lambda: unsettled(env) == 0, "every generation is settled", timeout=DEADLINE + WAIT
    )
    lapsed = wait_until(lambda: live_slots(env) == 0, "every slot is free", timeout=LEASE + WAIT)
    log = web.log()
    for restart in restarts:
        codes = Counter(f"{a.status} {a.code}" for a in restart.failed)
        print(
            f"\n{restart.what}: the database was away "
            f"{restart.ended - restart.began:.1f} s; {len(restart.failed)} requests failed "
            f"meanwhile ({dict(codes)}); the first request sent after it was served "
            f"{restart.first_served:.2f} s after the restart ended"
        )
    table = Generation._meta.db_table
    generations = {
        str(prompt): (str(status), int(charged), str(code))  # type: ignore[call-overload]
        for prompt, status, charged, code in rows(
            env,
            f"SELECT prompt, status, charged_credits, error_code FROM {table}",  # noqa: S608
        )
    }
    expired = sum(1 for _, _, code in generations.values() if code == "expired")
    print(
        f"{len(answers)} requests in all, {sum(a.ok for a in answers)} served; "
        f"{log.count('trying once more')} settlements retried on a new connection; "
        f"{log.count('could not be given back')} slots left to lapse with their lease "
        f"(all free {lapsed:.1f} s after every generation was settled); "
        f"{expired} generations released by the reconciler (all settled {released:.1f} s after "
        f"the load stopped)"
    )

    # The stranded generation could not settle: its customer was told, and the reconciler
    # released its hold (and its concurrency slot) once past its deadline.
    [told] = stranded
    assert isinstance(told, httpx.Response) and told.status_code == 500, told
    assert generations[stranded_call.prompt] == ("failed", 0, "expired")
    assert simulator_calls(simulator_url, stranded_call.prompt) == 1

    # Served again by the same process, without a restart of its own (restart_under_load
    # waited for that) ...
    assert web.process.poll() is None
    # ... and after a restart every request sent once the database was back (and answered
    # before the next fault) was served: no pooled connection that died with the database was
    # lent to one (CONN_HEALTH_CHECKS). After the long stop the pools first wait out their
    # back-off between connection attempts (up to seconds), which a request may not outlast.
    nexts = [r.began for r in restarts[1:]] + [float("inf")]
    for restart, next_began in zip(restarts, nexts, strict=True):
        if restart.what != "stopped":
            after = [a for a in answers if restart.ended <= a.sent and a.answered < next_began]
            assert after and all(a.ok for a in after), (restart.what, after)
    # Each request answered 200 made one generation, succeeded and charged once; each one
    # answered otherwise was charged nothing; none was sent upstream twice.
    for answer in answers:
        generation = generations.get(answer.prompt)
        if answer.ok:
            assert generation == ("succeeded", PRICE, ""), (answer, generation)
        else:
            assert generation is None or generation[:2] == ("failed", 0), (answer, generation)
        if generation is not None:
            assert simulator_calls(simulator_url, answer.prompt) == 1, answer
    # A failure is the database's absence, answered in OpenAI's shape (a 500 server_error
    # today), never a connection dropped without an answer.
    for answer in answers:
        if not answer.ok:
            assert answer.status == 500 and answer.code == "None", answer
    for customer in customers:
        served = sum(1 for a in answers if a.ok and a.key == customer.key)
        assert books_in(env, "balance", str(customer.user_id)) == CREDITS - served * PRICE
    assert_books_balance_in(env)
