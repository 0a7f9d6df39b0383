"""What the apps' migrations that moved their rows from ``user`` to ``account`` share."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def to_personal_accounts(table: str, *, user_column: str, account_column: str) -> migrations.RunSQL:
    """Point every row of ``table`` at the personal account of the user in ``user_column``
    (accounts 0004 made one for every user). Plain SQL, the same on PostgreSQL and SQLite, one
    statement per table however large."""
    return migrations.RunSQL(
        f"UPDATE {table} SET {account_column} = ("  # noqa: S608 (names from the migration)
        f"SELECT id FROM accounts_account WHERE personal_owner_id = {table}.{user_column})",
        # Going back, the column is dropped with the field: nothing to undo.
        reverse_sql=migrations.RunSQL.noop,
    )


def from_personal_accounts(
    table: str, *, user_column: str, account_column: str
) -> migrations.RunSQL:
    """The way back, run before a user column is required again: each row's user is its
    account's person. (A row of an organisation has none: going back stops there, as it must.)"""
    return migrations.RunSQL(
        migrations.RunSQL.noop,
        reverse_sql=(
            f"UPDATE {table} SET {user_column} = ("  # noqa: S608 (names from the migration)
            f"SELECT personal_owner_id FROM accounts_account WHERE id = {table}.{account_column})"
        ),
    )


def refuse_going_back_with_organisations() -> migrations.RunPython:
    """The last step of a move to accounts, so the first one undone: while any organisation
    exists, going back would hand its rows to whichever member made them (or fail half way), so
    it is refused instead."""

    def refuse(apps: Any, schema_editor: Any) -> None:
        account = apps.get_model("accounts", "Account")
        if account.objects.filter(kind="organisation").exists():
            raise RuntimeError(
                "Organisations own rows here: going back would give them to people. "
                "Only an installation without organisations can go back before accounts."
            )

    return migrations.RunPython(migrations.RunPython.noop, reverse_code=refuse)
