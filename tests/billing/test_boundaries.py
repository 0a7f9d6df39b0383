"""billing is the only writer of its tables: no file outside it names one or writes its rows.

Scanned: every Python file git knows in this checkout (tracked, or new and not ignored), except
billing/ and tests/billing/. billing's own tests stay out on purpose: they arrange ledger rows and
run raw SQL against billing's tables to prove the database's guards refuse it.

- Table names apply everywhere else, tests and other apps' migrations included. Other code
  reaches money through billing's services and reads it through the ORM, which names no table;
  the hot path gets its SQL money parts from billing.statements. ``Model._meta.db_table`` on a
  billing model counts as naming the table, and so does a comment.
- Writes apply to production code only. Tests elsewhere may arrange fixtures through the ORM (a
  price changed for one test, a promo code created): that is a test's setup, not a second writer.

The write check reads the syntax tree, so a query chain split over several lines is still seen.
It cannot follow a model instance into a variable (``entry.save()``): it is a tripwire for the
obvious forms, not a proof.
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest
from django.apps import apps
from django.db import models

REPO = Path(__file__).resolve().parents[2]
OWNERS = ("billing/", "tests/billing/")
WRITES = frozenset({
    "create", "bulk_create", "get_or_create", "update_or_create", "update", "bulk_update",
    "delete", "save", "add", "set", "remove", "clear",
})  # fmt: skip

Finding = tuple[int, str]


@cache
def billing_models() -> tuple[type[models.Model], ...]:
    return tuple(apps.get_app_config("billing").get_models(include_auto_created=True))


@cache
def table_pattern() -> re.Pattern[str]:
    tables = sorted(model._meta.db_table for model in billing_models())
    return re.compile(r"\b(" + "|".join(map(re.escape, tables)) + r")\b", re.IGNORECASE)


@cache
def billing_names() -> frozenset[str]:
    """The billing models' class names and their relations' accessors on other models
    (``user.credit_account``, ``account.entries``): what a write to billing's rows goes through."""
    names = {model.__name__ for model in billing_models()}
    for model in billing_models():
        for field in model._meta.get_fields():
            if isinstance(field, models.ForeignKey) and not field.remote_field.hidden:
                names.add(str(field.remote_field.get_accessor_name()))
    return frozenset(names)


def _chain(node: ast.expr) -> list[str]:
    """The names along a call chain's receiver: ``a.b(x).c`` gives ["c", "b", "a"]."""
    names = []
    while True:
        if isinstance(node, ast.Attribute):
            names.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Name):
            names.append(node.id)
            return names
        else:
            return names


def _aliases(tree: ast.AST) -> set[str]:
    """Names billing models are imported under (``from billing.models import X as Y``)."""
    models = {model.__name__ for model in billing_models()}
    return {
        alias.asname
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("billing")
        for alias in node.names
        if alias.name in models and alias.asname
    }


def table_mentions(source: str) -> list[Finding]:
    """Lines naming a billing table, literally or as a billing model's ``_meta.db_table``."""
    found = [
        (number, line.strip())
        for number, line in enumerate(source.splitlines(), 1)
        if table_pattern().search(line)
    ]
    tree = ast.parse(source)
    names = billing_names() | _aliases(tree)
    found += [
        (node.lineno, ast.unparse(node))
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "db_table"
        and _chain(node)[1:2] == ["_meta"]
        and names & set(_chain(node)[2:])
    ]
    return sorted(set(found))


def billing_writes(source: str) -> list[Finding]:
    """Calls that write billing rows: a billing model built, or a write method called on a
    billing model's manager, queryset, instance or relation."""
    tree = ast.parse(source)
    names = billing_names() | _aliases(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        chain = _chain(node.func)
        built = chain[0] in names and chain[0][:1].isupper()
        written = chain[0] in WRITES and names & set(chain[1:])
        if built or written:
            found.append((node.lineno, ast.unparse(node).splitlines()[0][:100]))
    return sorted(found)


@cache
def scanned_files() -> tuple[str, ...]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "*.py"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return tuple(
        sorted(
            path
            for path in set(listed.split("\0"))
            if path and not path.startswith(OWNERS) and (REPO / path).is_file()
        )
    )


def scan(paths: tuple[str, ...], check: Callable[[str], list[Finding]]) -> list[str]:
    return [
        f"{path}:{number}: {text}"
        for path in paths
        for number, text in check((REPO / path).read_text(encoding="utf-8"))
    ]


def test_the_scan_sees_the_code_that_sits_next_to_money() -> None:
    assert {"generation/hotpath.py", "api/views.py", "tests/conftest.py"} <= set(scanned_files())
    assert not [path for path in scanned_files() if path.startswith(OWNERS)]
    assert {"billing_creditaccount", "billing_ledgerentry", "billing_debtentry"} <= {
        model._meta.db_table for model in billing_models()
    }


def test_no_file_outside_billing_names_a_billing_table() -> None:
    assert scan(scanned_files(), table_mentions) == []


def test_no_production_code_outside_billing_writes_billing_rows() -> None:
    production = tuple(path for path in scanned_files() if not path.startswith("tests/"))
    assert scan(production, billing_writes) == []


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ('cursor.execute("SELECT 1")\ncursor.execute("UPDATE billing_ledgerentry SET x = 1")', 2),
        ("sql = 'DELETE FROM \"BILLING_CREDITACCOUNT\"'", 1),
        ("# then INSERT INTO billing_debtentry by hand", 1),
        ("from billing.models import CreditAccount\n\ntable = CreditAccount._meta.db_table", 3),
        ("from billing.models import PriceRule as P\nP._meta.db_table", 2),
    ],
)
def test_the_table_check_finds_a_billing_table_named(source: str, line: int) -> None:
    assert [number for number, _ in table_mentions(source)] == [line]


def test_the_table_check_leaves_other_tables_and_reads_alone() -> None:
    source = (
        "from billing.models import LedgerEntry\n"
        'cursor.execute("UPDATE api_generation SET status = %s")\n'
        "LedgerEntry.objects.filter(account__owner__personal_owner=user).count()\n"
        "Generation._meta.db_table, billing_ledgerentry_archive\n"
    )
    assert table_mentions(source) == []


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("LedgerEntry(account=account, amount_credits=5)", 1),
        ("x = 1\nDebtEntry.objects.create(account=account, amount_credits=5)", 2),
        ("CreditAccount.objects.filter(\n    user=user,\n).update(balance_credits=0)", 1),
        ("Purchase.objects.bulk_create(rows)", 1),
        ("PromoCode.objects.get(code=code).delete()", 1),
        ("PromoRedemption.objects.filter(account=a).delete()", 1),
        ("PriceRule.objects.update_or_create(model=m, defaults={})", 1),
        ("import billing.models\nbilling.models.LedgerEntry.objects.create()", 2),
        ("from billing.models import DebtEntry as Debt\nDebt.objects.bulk_create([])", 2),
        ("user.credit_account.save(update_fields=['balance_credits'])", 1),
        ("account.entries.create(amount_credits=5)", 1),
    ],
)
def test_the_write_check_finds_a_billing_row_written(source: str, line: int) -> None:
    assert [number for number, _ in billing_writes(source)] == [line]


def test_the_write_check_leaves_reads_and_other_apps_rows_alone() -> None:
    source = (
        "from billing.models import CreditAccount\n"
        "CreditAccount.objects.select_for_update().get(user=user)\n"
        "LedgerEntry.objects.filter(account__owner__personal_owner=user)"
        ".values_list('kind', flat=True)\n"
        "user.credit_account.balance_credits\n"
        "Generation.objects.filter(pk=pk).update(status='failed')\n"
        "params.update(billing.params(hold))\n"
        "billing.grant(user.personal_account, 100, description='welcome', idempotency_key='k')\n"
    )
    assert billing_writes(source) == []
