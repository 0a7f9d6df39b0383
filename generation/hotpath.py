"""A generation's two database steps on PostgreSQL, each one SQL statement, and the key lookup.

The pipeline (generation/services/) says what happens; on PostgreSQL the reservation and the
settlement are done here, in one round trip each instead of a transaction of seven to nine
(BEGIN, inserts, savepoints, the account update, the ledger lines, COMMIT). Every request and
every playground run pays these two steps, and on a two-core machine the ORM's query building
and the round trips were most of what a request cost (bench/README.md). With
GENERATION_SINGLE_STATEMENT_SQL off, or on SQLite, the ORM path writes the same rows.

A single statement is atomic on its own: PostgreSQL runs the data-modifying parts of a WITH
query in one snapshot and commits them together, or none of them. The statements write exactly
the rows the ORM path writes (tests/generation/test_hotpath.py compares the two field by field),
and the same database constraints guard them: the balance cannot go negative, a ledger line's
idempotency key is unique, a charge stays within its reservation.

The money part of each statement is billing's (``billing.statements``, built from the same
``billing.moves`` definitions as the ORM path); this module writes only the generation's own
rows around it, with named parameters and columns read from the models.

A refusal for credits goes through the ORM path, which explains itself in detail; a row the
reconciler settled first is found unclaimed here and charged nothing. Each statement runs
through the caller's ``Steps`` (server/steps.py): on the event loop of a served process, or on
Django's connection elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import CharField, Field, Model, TextField
from django.dispatch import receiver

from accounts.models import Account, User
from billing import limits as billing_limits
from billing import moves, statements
from billing.models import CreditAccount
from keys.models import ApiKey
from server.steps import Steps
from webhooks.models import Endpoint

from .models import LEDGER_REFERENCE_PREFIX, AccountRateLimit, Generation, Image


@cache
def available() -> bool:
    """Whether a generation's steps take the single statements: on PostgreSQL, unless
    GENERATION_SINGLE_STATEMENT_SQL is off. Read once (every request asks, several times);
    forgotten when a test changes either setting."""
    return connection.vendor == "postgresql" and settings.GENERATION_SINGLE_STATEMENT_SQL


@receiver(setting_changed)
def _forget_availability(setting: str, **kwargs: Any) -> None:
    if setting in ("DATABASES", "GENERATION_SINGLE_STATEMENT_SQL"):
        available.cache_clear()


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _cast(field: Any) -> str:
    """The type a placeholder for ``field`` is cast to. Text for text columns: a cast to
    varchar(n) would cut a value too long for its column, where the ORM's INSERT fails."""
    if isinstance(field, CharField | TextField):
        return "text"
    return str(field.cast_db_type(connection))


def _placeholder(prefix: str, field: Any) -> str:
    return f"%({prefix}{field.attname})s::{_cast(field)}"


@cache
def _named(prefix: str, model: type[Model]) -> tuple[tuple[str, Any], ...]:
    """Each column ``_columns(model)`` inserts, with the name of its placeholder."""
    return tuple((f"{prefix}{f.attname}", f) for f in _columns(model))


def _prepared(prefix: str, instance: Model) -> dict[str, Any]:
    """``instance``'s values for its inserted columns as the ORM would save them, named for
    ``_placeholder``."""
    # The connection object itself, looked up once: through the ``connection`` proxy, each
    # value's preparation looked it up again (a context-local lookup each time).
    wrapper = connections[DEFAULT_DB_ALIAS]
    return {
        name: f.get_db_prep_save(f.pre_save(instance, add=True), wrapper)
        for name, f in _named(prefix, type(instance))
    }


# - The key, its account (and a personal account's person), the account's credit account and
# custom limits: one query. What the ORM's select_related("account__personal_owner",
# "account__credit_account", "account__rate_limit_override") loads, without building the query
# on every request (that alone cost about 1 ms of CPU).

_KEY_MODELS: tuple[type[Any], ...] = (ApiKey, Account, User, CreditAccount, AccountRateLimit)


@cache
def _key_sql() -> str:
    key, account, user, override = (
        _quote(m._meta.db_table) for m in (ApiKey, Account, User, AccountRateLimit)
    )
    aliases = (key, account, user, statements.ACCOUNT_ALIAS, override)
    columns = ", ".join(
        f"{alias}.{_quote(field.column)}"
        for model, alias in zip(_KEY_MODELS, aliases, strict=True)
        for field in model._meta.concrete_fields
    )
    return f"""
        SELECT {columns} FROM {key}
        JOIN {account} ON {account}.id = {key}.account_id
        LEFT JOIN {user} ON {user}.id = {account}.personal_owner_id
        {statements.account_join(f"{account}.id")}
        LEFT JOIN {override} ON {override}.account_id = {account}.id
        WHERE {key}.lookup_id = %(lookup_id)s::text
    """  # noqa: S608 (names from the models, the value is a parameter)


async def find_key(steps: Steps, lookup_id: str) -> ApiKey | None:
    """The key with ``lookup_id``, its account (with a personal account's person), and the
    account's credit account and custom limits (None where there is none) loaded as the ORM
    would have loaded them, or None."""
    return _key_from_row(await steps.sql(_key_sql(), {"lookup_id": lookup_id}))


def _key_from_row(row: Any) -> ApiKey | None:
    if row is None:
        return None
    instances: list[Any] = []
    start = 0
    for model in _KEY_MODELS:
        width = len(model._meta.concrete_fields)
        values = _converted(model, row[start : start + width])
        start += width
        # A LEFT JOIN that found nothing: no row (its primary key is NULL).
        instances.append(
            None if values[0] is None else model.from_db(DEFAULT_DB_ALIAS, None, values)
        )
    api_key, account, person, credit_account, override = instances
    ApiKey.account.field.set_cached_value(api_key, account)
    Account.personal_owner.field.set_cached_value(account, person)
    Account.credit_account.related.set_cached_value(account, credit_account)
    Account.rate_limit_override.related.set_cached_value(account, override)
    return api_key


@cache
def _converters(model: type[Model]) -> tuple[tuple[int, Field[Any, Any]], ...]:
    """The columns of ``model`` whose raw value the ORM converts on reading (a JSON column
    arrives as text), by position among its concrete fields."""
    return tuple(
        (index, field)
        for index, field in enumerate(model._meta.concrete_fields)
        if hasattr(field, "from_db_value")
    )


def _converted(model: type[Model], values: Any) -> Any:
    converters = _converters(model)
    if not converters:
        return values
    values = list(values)
    for index, field in converters:
        values[index] = field.from_db_value(values[index], None, connection)  # type: ignore[attr-defined]
    return values


def _reference(generation_id: str) -> str:
    """The ledger reference of the generation whose id is the SQL ``generation_id``."""
    return f"'{LEDGER_REFERENCE_PREFIX}' || {generation_id}"


def _unsettled() -> str:
    return ", ".join(f"'{status}'" for status in Generation.UNSETTLED)


# - Open: the generation recorded and its credits held ----------------------------------------


@cache
def _columns(model: type[Model]) -> tuple[Field[Any, Any], ...]:
    """The columns a row of ``model`` is inserted with: all but its id and, for an image, the
    generation and account (which come from the claimed row)."""
    skipped = ("generation", "account") if model is Image else ()
    return tuple(
        f for f in model._meta.concrete_fields if not f.primary_key and f.name not in skipped
    )


@cache
def _open_sql(capped: bool) -> str:
    """The opening statement; ``capped``: the key has a spend cap, whose window counts the
    hold in the same statement (``statements.window_cte``)."""
    fields = _columns(Generation)
    columns = ", ".join(_quote(f.column) for f in fields)
    # Typed placeholders: a SELECT list (unlike VALUES in an INSERT) does not take its types
    # from the target columns, and a value's type must never depend on how psycopg sends it.
    values = ", ".join(_placeholder("g_", f) for f in fields)
    generation = _quote(Generation._meta.db_table)
    owner = _placeholder("g_", Generation._meta.get_field("account"))
    counted = f"{statements.window_cte()}, " if capped else ""
    window = (
        f"(SELECT spent_credits FROM {statements.COUNTED}), "  # noqa: S608 (CTE names)
        f"(SELECT alerted_percent FROM {statements.COUNTED})"
        if capped
        else "NULL, NULL"
    )
    return f"""
        WITH {statements.move_cte(moves.HOLD, owner=owner)}, {counted}created AS (
            INSERT INTO {generation} ({columns})
            SELECT {values} FROM {statements.MOVED}
            RETURNING id
        ), {statements.lines_cte(moves.HOLD, reference=_reference("created.id"), also_from=("created",))}
        SELECT created.id, (SELECT count(*) FROM {statements.WRITTEN}),
               (SELECT balance_credits FROM {statements.MOVED}), {window}
        FROM created
    """  # noqa: S608, E501 (names from the models, values are parameters)


@dataclass(frozen=True)
class Opened:
    """A generation opened: the balance after its hold, and for a capped key its window's spend
    after the hold and the window's alerted threshold."""

    balance_after_credits: int
    window_spent_credits: int | None
    window_alerted_percent: int | None


async def open_generation(
    steps: Steps,
    generation: Generation,
    hold: Mapping[str, int],
    description: str,
    limit: billing_limits.Limit | None = None,
) -> Opened | None:
    """Insert ``generation`` (unsaved, every field set) and make ``moves.HOLD`` with ``hold``'s
    quantities, counted in ``limit``'s window if the key has a cap, in one statement. None,
    with nothing written, when the balance is short or the account owes credits (the caller
    takes the ORM path to say why); IntegrityError when its Idempotency-Key is taken (by a
    concurrent request with the same key) or the cap refuses it (``limits.is_cap_refusal``)."""
    params = _open_params(generation, hold, description)
    if limit is not None:
        params.update(statements.window_params(limit, hold["held_credits"], generation.created_at))
    row = await steps.sql(_open_sql(limit is not None), params)
    return _opened(generation, hold, row)


def _open_params(
    generation: Generation, hold: Mapping[str, int], description: str
) -> dict[str, Any]:
    params = _prepared("g_", generation)
    texts = {"description": description}
    params.update(statements.params(moves.HOLD, hold, texts, now=generation.created_at))
    return params


def _opened(generation: Generation, hold: Mapping[str, int], row: Any) -> Opened | None:
    if row is None:
        return None
    generation_id, written, balance_after, spent_after, alerted = row
    if written != statements.lines_written(moves.HOLD, hold):
        # Cannot happen: the lines are written whenever the balance moved. Stop loudly.
        raise RuntimeError(f"opening {generation.public_id} wrote {written} ledger lines")
    generation.pk = int(generation_id)
    generation._state.adding = False
    generation._state.db = DEFAULT_DB_ALIAS
    return Opened(int(balance_after), spent_after, alerted)


# - Settle: the outcome recorded, the images stored, the hold released and the charge made -----


@cache
def _generation_field(name: str) -> Field[Any, Any]:
    field = Generation._meta.get_field(name)
    assert isinstance(field, Field)
    return field


@cache
def _outcome_field(name: str) -> tuple[str, Field[Any, Any]]:
    """A settled field of the generation, with the name of its placeholder."""
    field = _generation_field(name)
    return f"o_{field.attname}", field


@cache
def _settle_sql(settled: tuple[str, ...], image_count: int, capped: bool) -> str:
    generation = _quote(Generation._meta.db_table)
    image = _quote(Image._meta.db_table)
    assignments = ", ".join(
        f"{_quote(field.column)} = {_placeholder('o_', field)}"
        for field in map(_generation_field, settled)
    )
    images = ""
    if image_count:
        fields = _columns(Image)
        rows = ", ".join(
            "(" + ", ".join(_placeholder(f"i{index}_", f) for f in fields) + ")"
            for index in range(image_count)
        )
        columns = ", ".join(_quote(f.column) for f in fields)
        images = f""", stored AS (
            INSERT INTO {image} (generation_id, account_id, {columns})
            SELECT claimed.id, claimed.account_id, v.* FROM claimed, (VALUES {rows}) AS v
            RETURNING id, "index"
        )"""  # noqa: S608 (names from the models, values are parameters)
    image_ids = (
        'ARRAY(SELECT id FROM stored ORDER BY "index")' if image_count else "ARRAY[]::integer[]"
    )
    reference = "%(g_reference)s::text"
    # The claim is conditional on the row being unsettled and on billing's condition for the
    # settlement (the hold it releases is the one the ledger has): exactly once, exactly that.
    settles = statements.settles(
        moves.SETTLE, reference=reference, owner=f"{generation}.account_id"
    )
    endpoint = _quote(Endpoint._meta.db_table)
    # Whether the owner has a webhook endpoint to announce the generation to, asked here so
    # that a settlement whose owner has none (most) costs no further query.
    owner = _quote(Endpoint._meta.get_field("account").column)
    disabled = _quote(Endpoint._meta.get_field("disabled_at").column)
    has_webhooks = f"""EXISTS (
        SELECT 1 FROM {endpoint}
        WHERE {owner} = (SELECT account_id FROM claimed) AND {disabled} IS NULL
    )"""  # noqa: S608 (names from the models)
    # A capped key's window gets back what the hold took and the charge did not.
    given_back = (
        f",\n        {statements.give_back_cte(moves.SETTLE, settled='claimed')}" if capped else ""
    )
    return f"""
        WITH claimed AS (
            UPDATE {generation} SET {assignments}
            WHERE id = %(g_id)s::bigint AND status IN ({_unsettled()}) AND {settles}
            RETURNING id, account_id
        ){images}, {statements.move_cte(moves.SETTLE, owner="(SELECT account_id FROM claimed)")},
        {statements.lines_cte(moves.SETTLE, reference=reference)}{given_back}
        SELECT (SELECT count(*) FROM claimed), (SELECT count(*) FROM {statements.MOVED}),
               (SELECT count(*) FROM {statements.WRITTEN}), {image_ids}, {has_webhooks}
    """  # noqa: S608 (table and column names come from the models, values are parameters)


async def settle_generation(
    steps: Steps,
    generation: Generation,
    outcome: dict[str, Any],
    images: list[Image],
    settlement: Mapping[str, int],
    *,
    description: str,
    charged_as: str = "",
    now: datetime,
) -> Claimed | None:
    """Claim ``generation`` with ``outcome`` (its settled fields), insert ``images`` (unsaved;
    their ids are set) and make ``moves.SETTLE`` with ``settlement``'s quantities (and
    ``charged_as``, how the charge was priced), in one statement, exactly as ``billing.settle``
    writes it. None, with nothing written, if the row was already settled (the reconciler got
    there first). ValueError if it has no such hold."""
    sql = _settle_sql(tuple(outcome), len(images), bool(generation.spend_window))
    texts = {"description": description, "charged_as": charged_as}
    params = _settle_params(generation, outcome, images, settlement, texts, now)
    row = await steps.sql(sql, params)
    if _settled(generation, images, settlement, row):
        return Claimed(has_webhooks=bool(row[4]))
    # Rare (a row the reconciler settled first): the ORM explains why.
    await steps.run(_check_unclaimed, generation)
    return None


@dataclass(frozen=True)
class Claimed:
    """A settlement's claim, made. ``has_webhooks``: its owner has an enabled webhook endpoint
    (generation/services/announce.py tells it the generation finished)."""

    has_webhooks: bool


def _settle_params(
    generation: Generation,
    outcome: dict[str, Any],
    images: list[Image],
    settlement: Mapping[str, int],
    texts: Mapping[str, str],
    now: datetime,
) -> dict[str, Any]:
    wrapper = connections[DEFAULT_DB_ALIAS]
    params: dict[str, Any] = {"g_id": generation.pk, "g_reference": generation.ledger_reference}
    for name, value in outcome.items():
        placeholder, field = _outcome_field(name)
        params[placeholder] = field.get_db_prep_save(value, wrapper)
    for index, image in enumerate(images):
        params.update(_prepared(f"i{index}_", image))
    params.update(statements.params(moves.SETTLE, settlement, texts, now=now))
    if generation.spend_window:
        params["w_name"] = generation.spend_window
    return params


def _check_unclaimed(generation: Generation) -> None:
    """Why a settlement claimed nothing: settled already (fine), or no such hold."""
    unsettled = Generation.objects.filter(
        pk=generation.pk, status__in=Generation.UNSETTLED
    ).exists()
    if unsettled:
        raise ValueError(
            f"No reservation of {generation.reserved_credits} credits for "
            f"{generation.ledger_reference}"
        )


def _settled(
    generation: Generation, images: list[Image], settlement: Mapping[str, int], row: Any
) -> bool:
    claimed, moved, written, image_ids, _ = row
    if not claimed:
        return False
    if not moved or written != statements.lines_written(moves.SETTLE, settlement):
        # Cannot happen: the claim required the account row, which is PROTECTed. Stop loudly.
        raise RuntimeError(f"settling {generation.public_id} wrote {moved} moves, {written} lines")
    for image, image_id in zip(images, image_ids, strict=True):
        image.pk = image_id
        image._state.adding = False
        image._state.db = DEFAULT_DB_ALIAS
    return True
