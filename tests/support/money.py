"""Assertions about money that many tests share."""

from __future__ import annotations

from django.db.models import Sum

from accounts.models import User
from billing.models import CreditAccount, LedgerEntry


def balance(user: User) -> int:
    return CreditAccount.objects.get(user=user).balance_credits


def assert_ledger_balanced(user: User) -> int:
    """The balance equals the ledger's sum and every row's running balance; returns it."""
    account = CreditAccount.objects.get(user=user)
    entries = list(LedgerEntry.objects.filter(account=account).order_by("created_at", "id"))
    running = 0
    for entry in entries:
        running += entry.amount_credits
        assert entry.balance_after_credits == running, entry
    total = LedgerEntry.objects.filter(account=account).aggregate(s=Sum("amount_credits"))["s"]
    assert account.balance_credits == (total or 0) == running
    return account.balance_credits


def ledger_kinds(user: User) -> list[tuple[str, int]]:
    return [
        (e.kind, e.amount_credits)
        for e in LedgerEntry.objects.filter(account__user=user).order_by("created_at", "id")
    ]
