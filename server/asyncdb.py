"""The hot SQL of a served web process, run on its event loop instead of on a thread.

Under ASGI, Django runs every synchronous step (its ORM included) on a thread, and a thread hop
is not cheap on a two-core machine: the event loop and the request threads take turns at the
GIL through the kernel (about a millisecond of system time per generation, most of it futex
calls). A generation's three statements (the key lookup, the reservation and the settlement,
generation/hotpath.py) are plain SQL, so a served process runs them here, on an
``AsyncConnectionPool`` of its own; with Redis as the rate limiter, a generation crosses no
thread. The ORM's rare share (a refusal for credits explained, a key's use recorded once a
minute, a settlement that came too late undone, the rate limits without Redis) runs through
``on_a_thread``. ``server.steps.Steps`` chooses between these for each step.

Only a process served by ``config.asgi`` does this: its lifespan startup calls ``serve()`` on
the server's loop, and ``close()`` at shutdown. Everywhere else (Django's test client, Celery,
management commands, SQLite) the same statements run through ``execute`` on Django's
connection, inside the caller's transaction (tests/generation/test_hotpath.py writes through
both and compares the rows). The pool takes its connection settings from Django's, so both
reach the same database with the same time zone, role and type adaptation.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

import django.db
import psycopg
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, transaction
from psycopg_pool import AsyncConnectionPool, PoolTimeout

_P = ParamSpec("_P")
_R = TypeVar("_R")

APPLICATION_NAME = "seedream-api-hotpath"

_loop: asyncio.AbstractEventLoop | None = None
_pool: AsyncConnectionPool | None = None


async def serve() -> None:
    """Run the hot SQL on this (the server's) event loop from now on, if the database can.

    Called once, before the process serves its first request. The pool connects in the
    background: a database that is down at startup delays the first requests, not the start.
    """
    global _loop, _pool
    if connection.vendor != "postgresql" or not settings.GENERATION_SINGLE_STATEMENT_SQL:
        return
    params = connection.get_connection_params()
    # Django's own cursor class is synchronous; this module names its cursors itself.
    params.pop("cursor_factory", None)
    params["autocommit"] = True  # each statement is a transaction of its own
    # Named, so that an operator (and tests/integration) can tell these connections apart.
    params.setdefault("application_name", APPLICATION_NAME)
    options = connection.settings_dict["OPTIONS"].get("pool") or {}
    health_checks = connection.settings_dict["CONN_HEALTH_CHECKS"]
    _pool = AsyncConnectionPool(
        kwargs=params,
        configure=_configure,
        # As Django's pool: with CONN_HEALTH_CHECKS, a connection is checked before it is lent
        # (one that died with a database restart is replaced, not handed to a settlement).
        check=AsyncConnectionPool.check_connection if health_checks else None,
        min_size=1,
        max_size=settings.DB_ASYNC_POOL_MAX_SIZE,
        timeout=options.get("timeout", 30),
        open=False,
        name="hotpath",
    )
    await _pool.open(wait=False)
    _loop = asyncio.get_running_loop()


def enabled() -> bool:
    """Whether the caller, on the server's loop, should run the hot SQL here."""
    if _loop is None:
        return False
    try:
        return asyncio.get_running_loop() is _loop
    except RuntimeError:  # not on a loop at all (a thread)
        return False


async def close() -> None:
    global _loop, _pool
    pool, _pool, _loop = _pool, None, None
    if pool is not None:
        await pool.close()


def prepare() -> bool | None:
    # As Django's connections do (config/settings.py, DB_PREPARED_STATEMENTS): prepared on the
    # server once per connection, unless a transaction-mode pooler in between forbids it.
    return None if connection.settings_dict["OPTIONS"].get("prepare_threshold") is None else True


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    """What Django's ``_configure_connection`` does to each new connection of its pool."""
    timezone_name = connection.timezone_name
    if timezone_name and conn.info.parameter_status("TimeZone") != timezone_name:
        await conn.execute(connection.ops.set_time_zone_sql(), [timezone_name])
    if role := connection.settings_dict["OPTIONS"].get("assume_role"):
        await conn.execute(psycopg.sql.SQL("SET ROLE {}").format(psycopg.sql.Identifier(role)))


def execute(sql: str, params: Sequence[Any] | Mapping[str, Any]) -> Any:
    """One statement on Django's own connection (inside its transaction, if any), prepared:
    PostgreSQL parses and plans it once per connection rather than on every request (planning
    alone took longer than running the hot path's statements). Its first row, or None.

    Django's cursors send the values inside the SQL text, which cannot be prepared, so this uses
    a server-side binding cursor on Django's connection: same transaction, same errors (wrapped
    as Django's), but the query is not in ``connection.queries`` when DEBUG is on. Every
    placeholder carries a cast, so a value's type never depends on how psycopg sends it.
    """
    connection.ensure_connection()
    # Inside the caller's transaction, a savepoint: a statement that fails (a unique key taken)
    # must not leave that transaction aborted. Outside one, the statement is its own.
    guard = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
    with guard, connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=prepare())
        return cursor.fetchone()


async def fetchone(sql: str, params: Sequence[Any] | Mapping[str, Any]) -> Any:
    """One statement, in a transaction of its own; its first row (or None)."""
    assert _pool is not None, "asyncdb.serve() was not called on this loop"
    try:
        async with _pool.connection() as conn:
            cursor = await conn.execute(sql, params, prepare=prepare())
            return await cursor.fetchone()
    except psycopg.Error as exc:
        # As Django's connection wraps them, so a caller catches one kind whichever way it ran.
        raise _as_django_error(exc) from exc


# Most specific first, as django.db.utils.DatabaseErrorWrapper tries them.
_DJANGO_ERRORS: tuple[type[django.db.Error], ...] = (
    django.db.DataError,
    django.db.OperationalError,
    django.db.IntegrityError,
    django.db.InternalError,
    django.db.ProgrammingError,
    django.db.NotSupportedError,
    django.db.DatabaseError,
    django.db.InterfaceError,
    django.db.Error,
)


def _as_django_error(exc: psycopg.Error) -> django.db.Error:
    for django_error in _DJANGO_ERRORS:
        if isinstance(exc, getattr(psycopg, django_error.__name__)):
            return django_error(*exc.args)
    return django.db.Error(*exc.args)


def is_connection_lost(error: BaseException) -> bool:
    """Whether ``error`` (a Django database error, from the ORM or from ``fetchone``) is a lost
    or refused connection, worth one more try on a fresh one: not a pool that had no
    connection to lend for its whole timeout (a second wait as long helps nobody)."""
    if not isinstance(error, django.db.OperationalError | django.db.InterfaceError):
        return False
    return not isinstance(error.__cause__, PoolTimeout)


def closing_connection(step: Callable[_P, _R]) -> Callable[_P, _R]:
    """A synchronous database step of a request that then waits (on the upstream, or on the
    client), or that runs after its request is over.

    The thread's connection goes back to the pool when the step ends rather than when the
    request does: a request holds a connection only while it runs SQL, so a process serves as
    many slow generations at once as it likes with a pool sized for the SQL it runs (without
    this, the pool's size capped the generations in flight). Inside a transaction (a test's)
    nothing is closed; a persistent connection (DB_POOL=false) is closed only if it is broken or
    past its CONN_MAX_AGE, as at the end of a request.
    """

    @functools.wraps(step)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return step(*args, **kwargs)
        finally:
            if connection.in_atomic_block:
                pass
            elif connection.settings_dict["CONN_MAX_AGE"]:
                connection.close_if_unusable_or_obsolete()
            else:
                connection.close()

    return run


async def on_a_thread(step: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """Run a synchronous step (the ORM's share of a generation served on the loop: a refusal
    explained, a key's use recorded, a late settlement undone) on a worker thread, its
    connection given back when it ends.

    Not on the request's own thread: this may run after the request is over (its client hung
    up and the generation goes on), when that thread is no longer the request's to use.
    """
    return await sync_to_async(closing_connection(step), thread_sensitive=False)(*args, **kwargs)
