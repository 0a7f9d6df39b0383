"""A generation's two database steps on PostgreSQL, each one SQL statement.

``services.begin_generation`` and ``services.complete_generation`` say what happens to the
money; on PostgreSQL they do it here, in one round trip each instead of a transaction of seven
to nine (BEGIN, inserts, savepoints, the account update, the ledger lines, COMMIT). Every
request and every playground run pays these two steps, and on a two-core machine the ORM's
query building and the round trips were most of what a request cost (bench/api_bench.py,
the profile in the issue 7 note).

A single statement is atomic on its own: PostgreSQL runs the data-modifying parts of a WITH
query in one snapshot and commits them together, or none of them. The statements write exactly
the rows the ORM path writes (tests/api/test_hotpath.py compares the two field by field), and
the same database constraints guard them: the balance cannot go negative, a ledger line's
idempotency key is unique, a charge stays within its reservation.

A refusal for credits and a request with an Idempotency-Key go through the ORM path, which
explains itself in detail; a row the reconciler settled first is found unclaimed here and
charged nothing.

Each step has a synchronous form, run on Django's connection (inside the caller's transaction,
if any), and an ``a``-prefixed one that a served web process runs on its event loop
(api/asyncdb.py). Both send the same statement with the same values and read its row the same
way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import CharField, Field, TextField

from accounts.models import User
from billing.models import CreditAccount, LedgerEntry
from keys.models import ApiKey

from . import asyncdb
from .models import AccountRateLimit, Generation, Image

Kind = LedgerEntry.Kind


def _execute(sql: str, params: Sequence[Any]) -> Any:
    """Run one of this module's statements, prepared: PostgreSQL parses and plans each once per
    connection rather than on every request (planning alone took longer than running them).

    Django's cursors send the values inside the SQL text, which cannot be prepared, so this uses
    a server-side binding cursor on Django's own connection: same transaction, same errors
    (wrapped as Django's), but the query is not in ``connection.queries`` when DEBUG is on.
    Every placeholder carries a cast, so a value's type never depends on how psycopg sends it.
    """
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=asyncdb.prepare())
        return cursor.fetchone()


def available() -> bool:
    return connection.vendor == "postgresql" and settings.GENERATION_SINGLE_STATEMENT_SQL


# - The key, its owner, their credit account and custom limits: one query ----------------------
# What the ORM's select_related("user", "user__credit_account", "user__rate_limit_override")
# loads, without building the query on every request (that alone cost about 1 ms of CPU).

_KEY_MODELS: tuple[type[Any], ...] = (ApiKey, User, CreditAccount, AccountRateLimit)


@cache
def _key_sql() -> str:
    quote = connection.ops.quote_name
    tables = [model._meta.db_table for model in _KEY_MODELS]
    columns = ", ".join(
        f"{quote(table)}.{quote(field.column)}"
        for model, table in zip(_KEY_MODELS, tables, strict=True)
        for field in model._meta.concrete_fields
    )
    key, user, account, override = (quote(t) for t in tables)
    return f"""
        SELECT {columns} FROM {key}
        JOIN {user} ON {user}.id = {key}.user_id
        LEFT JOIN {account} ON {account}.user_id = {user}.id
        LEFT JOIN {override} ON {override}.user_id = {user}.id
        WHERE {key}.lookup_id = %s::text
    """  # noqa: S608 (names from the models, the value is a parameter)


def find_key(lookup_id: str) -> ApiKey | None:
    """The key with ``lookup_id``, its user, and the user's credit account and custom limits
    (None where there is none) loaded as the ORM would have loaded them, or None."""
    return _key_from_row(_execute(_key_sql(), [lookup_id]))


async def afind_key(lookup_id: str) -> ApiKey | None:
    return _key_from_row(await asyncdb.fetchone(_key_sql(), [lookup_id]))


def _key_from_row(row: Any) -> ApiKey | None:
    if row is None:
        return None
    instances: list[Any] = []
    start = 0
    for model in _KEY_MODELS:
        width = len(model._meta.concrete_fields)
        values = row[start : start + width]
        start += width
        # A LEFT JOIN that found nothing: no row (its primary key is NULL).
        instances.append(
            None if values[0] is None else model.from_db(DEFAULT_DB_ALIAS, None, values)
        )
    api_key, user, account, override = instances
    ApiKey.user.field.set_cached_value(api_key, user)
    User.credit_account.related.set_cached_value(user, account)
    User.rate_limit_override.related.set_cached_value(user, override)
    return api_key


def _cast(field: Any) -> str:
    """The type a placeholder for ``field`` is cast to. Text for text columns: a cast to
    varchar(n) would cut a value too long for its column, where the ORM's INSERT fails."""
    if isinstance(field, CharField | TextField):
        return "text"
    return str(field.cast_db_type(connection))


@cache
def _generation_columns() -> list[Field[Any, Any]]:
    return [f for f in Generation._meta.concrete_fields if not f.primary_key]


@cache
def _open_sql() -> str:
    fields = _generation_columns()
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    # Typed placeholders: a SELECT list (unlike VALUES in an INSERT) does not take its types
    # from the target columns, and a value's type must never depend on how psycopg sends it.
    values = ", ".join(f"%s::{_cast(f)}" for f in fields)
    account = CreditAccount._meta.db_table
    ledger = LedgerEntry._meta.db_table
    generation = Generation._meta.db_table
    return f"""
        WITH moved AS (
            UPDATE {account}
            SET balance_credits = balance_credits - %s::bigint, updated_at = %s::timestamptz
            WHERE user_id = %s::bigint AND balance_credits >= %s::bigint AND owed_credits = 0
            RETURNING id, balance_credits
        ), created AS (
            INSERT INTO {generation} ({columns})
            SELECT {values} FROM moved
            RETURNING id
        ), reserved AS (
            INSERT INTO {ledger} (account_id, kind, amount_credits, balance_after_credits,
                                  reference, description, idempotency_key, created_at)
            SELECT moved.id, %s::text, -%s::bigint, moved.balance_credits,
                   'gen:' || created.id, %s::text, 'gen:' || created.id || ':reserve',
                   %s::timestamptz
            FROM moved, created
            RETURNING id
        )
        SELECT created.id FROM created, reserved
    """  # noqa: S608 (table and column names come from the models, values are parameters)


def open_generation(generation: Generation, description: str) -> bool:
    """Insert ``generation`` (unsaved, every field set) and reserve its ``reserved_credits``
    with a ``reserve`` ledger line, in one statement. False, with nothing written, when the
    balance is short or the account owes credits (the caller takes the ORM path to say why)."""
    return _opened(generation, _execute(_open_sql(), _open_params(generation, description)))


async def aopen_generation(generation: Generation, description: str) -> bool:
    row = await asyncdb.fetchone(_open_sql(), _open_params(generation, description))
    return _opened(generation, row)


def _open_params(generation: Generation, description: str) -> list[Any]:
    fields = _generation_columns()
    # The connection object itself, looked up once: through the ``connection`` proxy, each
    # value's preparation looked it up again (a context-local lookup each time).
    wrapper = connections[DEFAULT_DB_ALIAS]
    values = [f.get_db_prep_save(f.pre_save(generation, add=True), wrapper) for f in fields]
    reserved, now = generation.reserved_credits, generation.created_at
    params = [
        reserved,
        now,
        generation.user_id,
        reserved,
        *values,
        Kind.RESERVE,
        reserved,
        description[:255],
        now,
    ]
    return params


def _opened(generation: Generation, row: Any) -> bool:
    if row is None:
        return False
    generation.pk = int(row[0])
    generation._state.adding = False
    generation._state.db = DEFAULT_DB_ALIAS
    return True


_SETTLED_FIELDS = (
    "status",
    "images_delivered",
    "charged_credits",
    "http_status",
    "error_code",
    "error_param",
    "error_message",
    "finished_at",
    "latency_ms",
)


@cache
def _settled_fields() -> list[Any]:
    return [Generation._meta.get_field(name) for name in _SETTLED_FIELDS]


_IMAGE_COLUMNS = (
    "token",
    "index",
    "file",
    "content_type",
    "width",
    "height",
    "bytes",
    "created_at",
)
_IMAGE_TYPES = ("text", "integer", "text", "text", "integer", "integer", "integer", "timestamptz")


@cache
def _settle_sql(image_count: int) -> str:
    generation = Generation._meta.db_table
    image = Image._meta.db_table
    account = CreditAccount._meta.db_table
    ledger = LedgerEntry._meta.db_table
    assignments = ", ".join(f"{field.column} = %s::{_cast(field)}" for field in _settled_fields())
    images = ""
    if image_count:
        row = "(" + ", ".join(f"%s::{t}" for t in _IMAGE_TYPES) + ")"
        columns = ", ".join(connection.ops.quote_name(c) for c in _IMAGE_COLUMNS)
        images = f""", stored AS (
            INSERT INTO {image} (generation_id, user_id, {columns})
            SELECT claimed.id, claimed.user_id, v.* FROM claimed,
                (VALUES {", ".join([row] * image_count)}) AS v
            RETURNING id, "index"
        )"""  # noqa: S608 (names from the models, values are parameters)
    image_ids = (
        'ARRAY(SELECT id FROM stored ORDER BY "index")' if image_count else "ARRAY[]::integer[]"
    )
    # The claim is conditional on the row being unsettled and on the ledger holding the
    # reservation the caller names (as billing.settle checks): the release below gives back
    # exactly what was held, once.
    return f"""
        WITH claimed AS (
            UPDATE {generation} SET {assignments}
            WHERE id = %s::bigint AND status IN ('queued', 'running') AND EXISTS (
                SELECT 1 FROM {ledger}
                WHERE idempotency_key = %s::text AND amount_credits = -%s::bigint
            ) AND EXISTS (
                SELECT 1 FROM {account} WHERE {account}.user_id = {generation}.user_id
            )
            RETURNING id, user_id
        ){images}, moved AS (
            UPDATE {account}
            SET balance_credits = balance_credits + %s::bigint, updated_at = %s::timestamptz
            WHERE user_id = (SELECT user_id FROM claimed)
            RETURNING id, balance_credits
        ), written AS (
            INSERT INTO {ledger} (account_id, kind, amount_credits, balance_after_credits,
                                  reference, description, idempotency_key, created_at)
            SELECT moved.id, v.kind, v.amount, moved.balance_credits + v.after_offset,
                   %s::text, v.description, v.idempotency_key, %s::timestamptz
            FROM moved, (VALUES (%s::text, %s::bigint, %s::bigint, %s::text, %s::text),
                                (%s::text, %s::bigint, %s::bigint, %s::text, %s::text))
                 AS v(kind, amount, after_offset, description, idempotency_key)
            WHERE v.amount <> 0 OR v.kind = %s::text
            RETURNING id
        )
        SELECT (SELECT count(*) FROM claimed), (SELECT count(*) FROM moved),
               (SELECT count(*) FROM written), {image_ids}
    """  # noqa: S608 (table and column names come from the models, values are parameters)


def settle_generation(
    generation: Generation,
    outcome: dict[str, Any],
    images: list[Image],
    *,
    description: str,
    now: datetime,
) -> bool:
    """Claim ``generation`` with ``outcome``, insert ``images`` (unsaved; their ids are set),
    release its reservation and charge ``outcome["charged_credits"]``, in one statement, exactly
    as ``billing.settle`` writes it. False, with nothing written, if the row was already
    settled (the reconciler got there first). ValueError if it has no such reservation."""
    params = _settle_params(generation, outcome, images, description=description, now=now)
    row = _execute(_settle_sql(len(images)), params)
    if _settled(generation, outcome, images, row):
        return True
    _check_unclaimed(generation)
    return False


async def asettle_generation(
    generation: Generation,
    outcome: dict[str, Any],
    images: list[Image],
    *,
    description: str,
    now: datetime,
) -> bool:
    params = _settle_params(generation, outcome, images, description=description, now=now)
    row = await asyncdb.fetchone(_settle_sql(len(images)), params)
    if _settled(generation, outcome, images, row):
        return True
    # Rare (a row the reconciler settled first): the ORM explains why, on a thread.
    await asyncdb.on_a_thread(_check_unclaimed, generation)
    return False


def _settle_params(
    generation: Generation,
    outcome: dict[str, Any],
    images: list[Image],
    *,
    description: str,
    now: datetime,
) -> list[Any]:
    reference = generation.ledger_reference
    reserved, charged = generation.reserved_credits, outcome["charged_credits"]
    wrapper = connections[DEFAULT_DB_ALIAS]
    params: list[Any] = [
        field.get_db_prep_save(outcome[field.name], wrapper) for field in _settled_fields()
    ]
    params += [generation.pk, f"{reference}:reserve", reserved]
    for image in images:
        params += [getattr(image, column) for column in _IMAGE_COLUMNS[:2]]
        params += [image.file.name, image.content_type, image.width, image.height, image.bytes]
        params.append(image.created_at)
    params += [reserved - charged, now, reference, now]
    # The release (the balance before the charge), then the charge: billing.settle's two lines.
    params += [Kind.RELEASE, reserved, charged, f"Released hold: {description}"[:255]]
    params.append(f"{reference}:release")
    params += [Kind.CHARGE, -charged, 0, description[:255], f"{reference}:charge"]
    params.append(Kind.RELEASE)
    return params


def _check_unclaimed(generation: Generation) -> None:
    """Why a settlement claimed nothing: settled already (fine), or no such reservation."""
    unsettled = Generation.objects.filter(
        pk=generation.pk, status__in=[Generation.Status.QUEUED, Generation.Status.RUNNING]
    ).exists()
    if unsettled:
        raise ValueError(
            f"No reservation of {generation.reserved_credits} credits for "
            f"{generation.ledger_reference}"
        )


def _settled(
    generation: Generation, outcome: dict[str, Any], images: list[Image], row: Any
) -> bool:
    claimed, moved, written, image_ids = row
    charged = outcome["charged_credits"]
    if not claimed:
        return False
    if not moved or written != (2 if charged else 1):
        # Cannot happen: the claim required the account row, which is PROTECTed. Stop loudly.
        raise RuntimeError(f"settling {generation.public_id} wrote {moved} moves, {written} lines")
    for image, image_id in zip(images, image_ids, strict=True):
        image.pk = image_id
        image._state.adding = False
        image._state.db = DEFAULT_DB_ALIAS
    return True
