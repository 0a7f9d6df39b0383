"""The PostgreSQL form of the money moves: parts of one SQL statement, built from ``moves``.

The generation hot path writes its own rows and a money move in one statement (a WITH query,
which PostgreSQL runs in one snapshot and commits whole or not at all). It composes these parts
with its own and never names a billing table: ``move_cte`` changes the balance (the CTE
``moved``, one row or none), ``lines_cte`` appends the move's ledger lines (the CTE
``written``), and ``settles`` is the condition under which a settling move may be made. Every
value is a named parameter (prefixed ``m_``), given by ``params``.

What the parts write is exactly what ``billing.services`` writes through the ORM for the same
move (tests/billing/test_statements.py and the generation parity tests compare them row by row):
both are derived from the same ``moves.Move``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any

from . import limits
from .limits import Limit
from .models import CreditAccount, LedgerEntry, SpendWindow
from .moves import DESCRIPTION_MAX_CHARS, Line, Move, render

_ACCOUNT = CreditAccount._meta.db_table
_LEDGER = LedgerEntry._meta.db_table
_WINDOW = SpendWindow._meta.db_table
_KIND = re.compile(r"^[a-z_]+$")
MOVED = "moved"
WRITTEN = "written"
COUNTED = "counted"
GIVEN_BACK = "given_back"


def _quantity(name: str) -> str:
    return f"%(m_{name})s::bigint"


def _amount(line: Line) -> str:
    return f"({line.sign} * {_quantity(line.quantity)})"


def _sum(lines: tuple[Line, ...] | list[Line]) -> str:
    return "(" + " + ".join([_amount(line) for line in lines] or ["0"]) + ")"


def _text(prefix: str, template: str, reference: str) -> str:
    """A key or description template as SQL: its texts are parameters, ``{reference}`` is the
    caller's SQL expression for the work's reference."""
    parts: list[str] = []
    for index in range(template.count("{reference}") + 1):
        if index:
            parts.append(f"({reference})")
        parts.append(f"%({prefix}_{index})s::text")
    return " || ".join(parts)


@cache
def _text_pieces(move: Move) -> tuple[tuple[str, str, bool], ...]:
    """Every text parameter of ``move``'s parts: its name, its template piece, and whether the
    piece has placeholders to fill (most are constant, such as ``:reserve``)."""
    named = [(f"m_{i}_key", line.key) for i, line in enumerate(move.lines)]
    named += [(f"m_{i}_description", line.description) for i, line in enumerate(move.lines)]
    if move.settles is not None:
        named += [(f"m_s{i}_key", line.key) for i, line in enumerate(move.settles.lines)]
    return tuple(
        (f"{prefix}_{index}", piece, "{" in piece)
        for prefix, template in named
        for index, piece in enumerate(template.split("{reference}"))
    )


def move_cte(move: Move, *, owner: str) -> str:
    """``moved``: the balance of ``owner`` (an SQL expression for an accounts.Account id) changed
    by the
    move, unless that would take it below zero (or, for ``unless_owing``, the account owes
    credits). Yields the account's id and new balance, or no row."""
    delta = _sum(move.lines)
    owing = " AND owed_credits = 0" if move.unless_owing else ""
    return f"""{MOVED} AS (
            UPDATE {_ACCOUNT}
            SET balance_credits = balance_credits + {delta}, updated_at = %(m_now)s::timestamptz
            WHERE owner_id = {owner} AND balance_credits + {delta} >= 0{owing}
            RETURNING id, balance_credits
        )"""  # noqa: S608 (names from the models, values are parameters)


def lines_cte(move: Move, *, reference: str, also_from: tuple[str, ...] = ()) -> str:
    """``written``: the move's ledger lines for the work ``reference`` (an SQL expression, which
    may read the CTEs named in ``also_from``), once ``moved`` has a row. Each line's balance is
    the balance after the move less what the lines after it moved, as ``moves.entries``."""
    sources = ", ".join((MOVED, *also_from))
    selects = []
    for index, line in enumerate(move.lines):
        assert _KIND.match(line.kind), line.kind
        later = _sum(move.lines[index + 1 :])
        key = _text(f"m_{index}_key", line.key, reference)
        description = _text(f"m_{index}_description", line.description, reference)
        when = f" WHERE {_quantity(line.quantity)} <> 0" if line.optional else ""
        select = (
            f"SELECT {MOVED}.id, '{line.kind}', {_amount(line)}, "
            f"{MOVED}.balance_credits - {later}, ({reference}), "
            f"left({description}, {DESCRIPTION_MAX_CHARS}), {key}, %(m_now)s::timestamptz "
        )
        selects.append(f"{select}FROM {sources}{when}")
    union = "\n            UNION ALL ".join(selects)
    return f"""{WRITTEN} AS (
            INSERT INTO {_LEDGER} (account_id, kind, amount_credits, balance_after_credits,
                                  reference, description, idempotency_key, created_at)
            {union}
            RETURNING id
        )"""


def settles(move: Move, *, reference: str, owner: str) -> str:
    """The condition for making ``move``, which settles an earlier one, for the work
    ``reference``: the earlier move's lines are in the ledger with the quantities this move
    names (no more and no less is released than was held), and ``owner`` has a credit account."""
    assert move.settles is not None
    checks = [
        f"""EXISTS (
                SELECT 1 FROM {_LEDGER}
                WHERE idempotency_key = {_text(f"m_s{index}_key", line.key, reference)}
                AND amount_credits = {_amount(line)}
            )"""  # noqa: S608 (names from the models, values are parameters)
        for index, line in enumerate(move.settles.lines)
        if not line.optional
    ]
    checks.append(f"EXISTS (SELECT 1 FROM {_ACCOUNT} WHERE {_ACCOUNT}.owner_id = {owner})")  # noqa: S608
    return " AND ".join(checks)


def params(
    move: Move, quantities: Mapping[str, int], texts: Mapping[str, str], *, now: datetime
) -> dict[str, Any]:
    """The named values of ``move``'s parts: its quantities, its lines' texts, the time."""
    move.check(quantities)
    values: dict[str, Any] = {"m_now": now}
    values.update({f"m_{name}": quantities[name] for name in move.quantities})
    for name, piece, to_fill in _text_pieces(move):
        values[name] = render(piece, texts) if to_fill else piece
    return values


def lines_written(move: Move, quantities: Mapping[str, int]) -> int:
    """How many rows ``written`` yields when the move is made."""
    return sum(line.written(quantities) for line in move.lines)


ACCOUNT_ALIAS = "credit_account"


def account_join(owner: str) -> str:
    """A LEFT JOIN of the credit account of ``owner`` (an SQL expression for an account's id),
    named ``credit_account``: for a read that loads the account with its owner (its columns are
    ``CreditAccount``'s concrete fields)."""
    return f"LEFT JOIN {_ACCOUNT} AS {ACCOUNT_ALIAS} ON {ACCOUNT_ALIAS}.owner_id = {owner}"


def window_cte() -> str:
    """``counted``: a hold counted in its spender's window (``limits.COUNT_SQL``), once
    ``moved`` has a row. Yields the window's spend after it and its alerted threshold. A sum
    past the cap violates the window's check constraint, which aborts the whole statement:
    nothing is held, nothing recorded (the caller tells the refusal by
    ``limits.is_cap_refusal``)."""
    values = "%(w_name)s::text, %(w_cap)s::bigint, %(w_held)s::bigint, 0, %(w_now)s::timestamptz"
    rows = f"SELECT {values} FROM {MOVED}"  # noqa: S608 (a CTE's name; values are parameters)
    counted = limits.COUNT_SQL.format(table=_WINDOW, rows=rows)
    return f"{COUNTED} AS ({counted})"


def window_params(limit: Limit, held_credits: int, now: datetime) -> dict[str, Any]:
    return limits.count_params(limit, held_credits, now)


def give_back_cte(move: Move, *, settled: str) -> str:
    """``given_back``: what the settling ``move`` gives back to the balance (its hold less its
    charge) given back to the window ``%(w_name)s`` too, once ``settled`` (the caller's CTE of
    the claimed work) has a row. Yields the window's spend after it."""
    give = _sum(move.lines)
    return f"""{GIVEN_BACK} AS (
            UPDATE {_WINDOW}
            SET spent_credits = GREATEST(spent_credits - {give}, 0),
                updated_at = %(m_now)s::timestamptz
            WHERE name = %(w_name)s::text AND EXISTS (SELECT 1 FROM {settled})
            RETURNING spent_credits
        )"""  # noqa: S608 (names from the models, values are parameters)
