"""manage.py grant_credits: an operator's grant, written to the ledger like any other."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from billing.models import LedgerEntry
from tests.support.money import assert_ledger_balanced, ledger_rows

pytestmark = pytest.mark.django_db


def grant_credits(*args: str) -> str:
    out = StringIO()
    call_command("grant_credits", *args, stdout=out)
    return out.getvalue()


def test_it_grants_credits_and_prints_the_new_balance(owner):
    output = grant_credits("owner@example.com", "500")

    assert output.strip() == (
        "Granted 500 credits to owner@example.com; balance 1500 credits ($1.5000)."
    )
    assert ledger_rows(owner)[-1] == ("grant", 500, 1500)
    entry = LedgerEntry.objects.filter(account__owner__personal_owner=owner).order_by("id").last()
    assert entry.description == "Granted by an operator"
    assert entry.idempotency_key.startswith("grant:cli:")
    assert assert_ledger_balanced(owner) == 1500


def test_it_opens_an_account_for_a_user_with_no_credits_yet(user_factory):
    newcomer = user_factory("new@example.com")

    output = grant_credits("new@example.com", "40", "--reason", "Goodwill for ticket 12")

    assert "balance 40 credits ($0.0400)" in output
    assert ledger_rows(newcomer) == [("grant", 40, 40)]
    assert (
        LedgerEntry.objects.get(account__owner__personal_owner=newcomer).description
        == "Goodwill for ticket 12"
    )
    assert assert_ledger_balanced(newcomer) == 40


def test_each_run_is_a_separate_grant(owner):
    grant_credits("owner@example.com", "100")
    grant_credits("owner@example.com", "100")

    assert ledger_rows(owner) == [("grant", 1000, 1000), ("grant", 100, 1100), ("grant", 100, 1200)]
    assert assert_ledger_balanced(owner) == 1200


def test_it_finds_the_user_whatever_the_case_of_the_email(owner):
    grant_credits("OWNER@Example.COM", "10")

    assert assert_ledger_balanced(owner) == 1010


def test_it_refuses_an_unknown_email(owner):
    rows_before = LedgerEntry.objects.count()

    with pytest.raises(CommandError, match=re.escape("nobody@example.com")):
        grant_credits("nobody@example.com", "500")

    assert LedgerEntry.objects.count() == rows_before
    assert assert_ledger_balanced(owner) == 1000


@pytest.mark.parametrize("credits", ["0", "-5", "ten", "1.5"])
def test_it_refuses_anything_but_a_positive_whole_number_of_credits(owner, credits):
    with pytest.raises(CommandError):
        grant_credits("owner@example.com", credits)

    assert ledger_rows(owner) == [("grant", 1000, 1000)]
    assert assert_ledger_balanced(owner) == 1000
