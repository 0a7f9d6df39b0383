"""Assertions about money that many tests share."""

from __future__ import annotations

from django.db.models import Sum

from accounts.models import Account, User
from billing.models import CreditAccount, LedgerEntry, LedgerKind

# Each helper takes whose money to look at: an account (an organisation's, say), or a user,
# meaning their personal account.
Whose = User | Account


def _owner(whose: Whose) -> dict[str, Whose]:
    return {"owner": whose} if isinstance(whose, Account) else {"owner__personal_owner": whose}


def balance(user: Whose) -> int:
    return CreditAccount.objects.get(**_owner(user)).balance_credits


def assert_ledger_balanced(user: Whose) -> int:
    """The cached balance equals the sum of the ledger, every row's balance_after_credits is the
    running sum in the order the rows were written, no running sum dips below zero and every
    row's sign matches its kind. Returns the balance (0 for a user who has no account yet)."""
    account = CreditAccount.objects.filter(**_owner(user)).first()
    if account is None:
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


def ledger_rows(user: Whose, reference: str | None = None) -> list[tuple[str, int, int]]:
    """(kind, amount_credits, balance_after_credits) for the user's rows, oldest first."""
    entries = LedgerEntry.objects.filter(account__in=CreditAccount.objects.filter(**_owner(user)))
    if reference is not None:
        entries = entries.filter(reference=reference)
    return [(e.kind, e.amount_credits, e.balance_after_credits) for e in entries.order_by("id")]


def ledger_kinds(user: Whose) -> list[tuple[str, int]]:
    """(kind, amount_credits) for the user's rows, oldest first."""
    return [(kind, amount) for kind, amount, _ in ledger_rows(user)]
