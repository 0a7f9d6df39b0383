"""The ledger's invariants: the balance is the ledger's sum, and the database itself enforces the
money rules (CHECK on balances, UNIQUE idempotency keys, append-only rows)."""

from __future__ import annotations

import random

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from billing import services
from billing.models import CreditAccount, LedgerEntry
from billing.services import InsufficientCredits
from tests.support.money import assert_ledger_balanced, ledger_rows

pytestmark = pytest.mark.django_db


def test_the_balance_is_the_ledger_sum_after_every_step_of_a_customer_history(owner, outsider):
    """A seeded random mix of grants, reserves (some refused) and settles, checked after each
    step against an independent tally."""
    rng = random.Random(20250101)
    expected = {owner.pk: 1000, outsider.pk: 1000}
    open_reservations: list[tuple[object, str, int]] = []
    refused = settled = 0

    for step in range(120):
        user = rng.choice([owner, outsider])
        action = rng.choice(["grant", "reserve", "reserve", "settle", "settle"])
        if action == "grant":
            credits = rng.randint(1, 300)
            services.grant(
                user.personal_account, credits, description="step", idempotency_key=f"g:{step}"
            )
            expected[user.pk] += credits
        elif action == "reserve":
            credits = rng.randint(1, 8) * 40
            reference = f"gen:{step}"
            if credits > expected[user.pk]:
                with pytest.raises(InsufficientCredits):
                    services.hold(
                        user.personal_account.pk,
                        {"held_credits": credits},
                        reference=reference,
                        description="step",
                    )
                refused += 1
            else:
                services.hold(
                    user.personal_account.pk,
                    {"held_credits": credits},
                    reference=reference,
                    description="step",
                )
                expected[user.pk] -= credits
                open_reservations.append((user, reference, credits))
        elif open_reservations:
            user, reference, reserved = open_reservations.pop(rng.randrange(len(open_reservations)))
            charged = rng.randint(0, reserved // 40) * 40
            result = services.settle(
                user.personal_account.pk,
                {"held_credits": reserved, "charged_credits": charged},
                reference=reference,
                description="step",
            )
            assert result is not None
            expected[user.pk] += reserved - charged
            assert result.balance_credits == expected[user.pk]
            settled += 1
            # Replaying the settlement changes nothing.
            assert (
                services.settle(
                    user.personal_account.pk,
                    {"held_credits": reserved, "charged_credits": 0},
                    reference=reference,
                    description="replay",
                )
                is None
            )

        assert assert_ledger_balanced(owner) == expected[owner.pk]
        assert assert_ledger_balanced(outsider) == expected[outsider.pk]

    # The history really did exercise every path.
    assert refused and settled and open_reservations


def test_the_consistency_check_notices_a_balance_that_drifts_from_its_ledger(owner):
    """The helper the other tests lean on must be able to fail."""
    CreditAccount.objects.filter(owner__personal_owner=owner).update(balance_credits=999)

    with pytest.raises(AssertionError):
        assert_ledger_balanced(owner)


# --- what the database refuses ------------------------------------------------------------------


def test_the_database_refuses_a_negative_balance_even_from_a_raw_update(owner):
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditAccount.objects.update(balance_credits=-1)

    assert CreditAccount.objects.get(owner__personal_owner=owner).balance_credits == 1000
    assert assert_ledger_balanced(owner) == 1000


def test_the_database_refuses_a_ledger_row_with_a_negative_running_balance(owner):
    account = CreditAccount.objects.get(owner__personal_owner=owner)

    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            account=account,
            kind=LedgerEntry.Kind.ADJUSTMENT,
            amount_credits=-1001,
            balance_after_credits=-1,
            idempotency_key="adjust:1",
        )

    assert assert_ledger_balanced(owner) == 1000


def test_the_database_refuses_a_duplicate_idempotency_key(owner, outsider):
    entry = services.grant(owner.personal_account, 10, description="once", idempotency_key="once:1")

    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            account=CreditAccount.objects.get(owner__personal_owner=outsider),
            kind=LedgerEntry.Kind.GRANT,
            amount_credits=10,
            balance_after_credits=1010,
            idempotency_key=entry.idempotency_key,
        )

    assert LedgerEntry.objects.filter(idempotency_key="once:1").count() == 1
    assert assert_ledger_balanced(outsider) == 1000


def test_a_ledger_row_cannot_be_saved_again(owner):
    entry = LedgerEntry.objects.get(account__owner__personal_owner=owner)
    entry.amount_credits = 1_000_000
    entry.balance_after_credits = 1_000_000

    with pytest.raises(ValueError, match="append-only"):
        entry.save()
    with pytest.raises(ValueError, match="append-only"):
        entry.save(update_fields=["amount_credits"])

    entry.refresh_from_db()
    assert (entry.amount_credits, entry.balance_after_credits) == (1000, 1000)
    assert assert_ledger_balanced(owner) == 1000


def test_a_ledger_row_cannot_be_overwritten_by_a_new_instance_with_its_id(owner):
    entry = LedgerEntry.objects.get(account__owner__personal_owner=owner)
    forged = LedgerEntry(
        pk=entry.pk,
        account=entry.account,
        kind=LedgerEntry.Kind.GRANT,
        amount_credits=1_000_000,
        balance_after_credits=1_000_000,
        idempotency_key=entry.idempotency_key,
    )

    # Refused by the model (ValueError) or as a duplicate primary key (IntegrityError).
    with pytest.raises((ValueError, IntegrityError)), transaction.atomic():
        forged.save()

    entry.refresh_from_db()
    assert (entry.amount_credits, entry.balance_after_credits) == (1000, 1000)
    assert assert_ledger_balanced(owner) == 1000


def test_a_ledger_row_cannot_be_deleted_through_the_model(owner):
    entry = LedgerEntry.objects.get(account__owner__personal_owner=owner)

    with pytest.raises(ValueError, match="append-only"):
        entry.delete()

    assert LedgerEntry.objects.filter(pk=entry.pk).exists()
    assert assert_ledger_balanced(owner) == 1000


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE billing_ledgerentry SET amount_credits = 5000, balance_after_credits = 5000"
        " WHERE id = %s",
        "DELETE FROM billing_ledgerentry WHERE id = %s",
    ],
    ids=["update", "delete"],
)
def test_postgres_refuses_to_change_or_remove_a_ledger_row_even_in_raw_sql(owner, sql):
    entry = LedgerEntry.objects.get(account__owner__personal_owner=owner)

    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, [entry.pk])

    entry.refresh_from_db()
    assert (entry.amount_credits, entry.balance_after_credits) == (1000, 1000)
    assert assert_ledger_balanced(owner) == 1000


@pytest.mark.postgres
def test_postgres_refuses_queryset_updates_and_deletes_that_skip_the_model(owner):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        LedgerEntry.objects.filter(account__owner__personal_owner=owner).update(
            description="rewritten"
        )
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        LedgerEntry.objects.filter(account__owner__personal_owner=owner).delete()

    assert ledger_rows(owner) == [("grant", 1000, 1000)]
    assert (
        LedgerEntry.objects.get(account__owner__personal_owner=owner).description == "test credits"
    )
