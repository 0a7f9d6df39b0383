"""Assertions about money that many tests share."""

from __future__ import annotations

from django.db.models import Sum

from accounts.models import User
from billing.models import CreditAccount, LedgerEntry, LedgerKind


def balance(user: User) -> int:
    return CreditAccount.objects.get(user=user).balance_credits


def assert_ledger_balanced(user: User) -> int:
    """The cached balance equals the sum of the ledger, every row's balance_after_credits is the
    running sum in the order the rows were written, no running sum dips below zero and every
    row's sign matches its kind. Returns the balance (0 for a user who has no account yet)."""
    account = CreditAccount.objects.filter(user=user).first()
    if account is None:
        assert not LedgerEntry.objects.filter(account__user=user).exists()
        return 0
    # Ids come from a sequence drawn while the account row is locked, so they give write order.
    entries = list(LedgerEntry.objects.filter(account=account).order_by("id"))
    running = 0
    for entry in entries:
        # Each kind's sign, as billing defines it (adjustments go either way; a reversal may
        # find nothing to take).
        sign = LedgerKind.sign_of(entry.kind)
        if sign > 0:
            assert entry.amount_credits > 0, f"{entry} should add credits"
        elif sign < 0 and entry.kind != LedgerKind.REVERSAL:
            assert entry.amount_credits < 0, f"{entry} should take credits"
        elif sign < 0:
            assert entry.amount_credits <= 0, f"{entry} should take credits or none"
        running += entry.amount_credits
        assert entry.balance_after_credits == running, (
            f"{entry}: balance_after_credits {entry.balance_after_credits}, running sum {running}"
        )
        assert running >= 0, f"{entry} took the balance below zero"
    total = LedgerEntry.objects.filter(account=account).aggregate(s=Sum("amount_credits"))["s"]
    assert account.balance_credits == (total or 0) == running, (
        f"balance {account.balance_credits}, ledger sum {total}, running sum {running}"
    )
    return account.balance_credits


def ledger_rows(user: User, reference: str | None = None) -> list[tuple[str, int, int]]:
    """(kind, amount_credits, balance_after_credits) for the user's rows, oldest first."""
    entries = LedgerEntry.objects.filter(account__user=user)
    if reference is not None:
        entries = entries.filter(reference=reference)
    return [(e.kind, e.amount_credits, e.balance_after_credits) for e in entries.order_by("id")]


def ledger_kinds(user: User) -> list[tuple[str, int]]:
    """(kind, amount_credits) for the user's rows, oldest first."""
    return [(kind, amount) for kind, amount, _ in ledger_rows(user)]
