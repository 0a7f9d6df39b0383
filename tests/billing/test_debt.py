"""Credits taken back after a refund or dispute: what the balance cannot cover is owed, blocks
new work, and is paid first by the next credits."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from billing import services
from billing.models import CreditAccount, DebtEntry
from tests.support.money import assert_ledger_balanced, ledger_kinds

pytestmark = pytest.mark.smoke


def owed(user):
    return CreditAccount.objects.get(owner__personal_owner=user).owed_credits


def take_back(user, credits, key="stripe:ch_1:refunded:500"):
    return services.take_back(
        user.personal_account.pk,
        credits,
        reference="purchase:x",
        idempotency_key=key,
        description="Refund",
    )


def test_a_reversal_the_balance_covers_owes_nothing(owner):
    reversal = take_back(owner, 400)

    assert reversal == services.Reversal(taken_credits=400, owed_credits=0, balance_credits=600)
    assert owed(owner) == 0
    assert not DebtEntry.objects.exists()
    assert assert_ledger_balanced(owner) == 600


def test_a_reversal_beyond_the_balance_takes_it_all_and_owes_the_rest(owner):
    reversal = take_back(owner, 1500)

    assert reversal == services.Reversal(taken_credits=1000, owed_credits=500, balance_credits=0)
    assert services.debt_credits(owner.personal_account.pk) == 500
    assert ledger_kinds(owner) == [("grant", 1000), ("reversal", -1000)]
    assert assert_ledger_balanced(owner) == 0


def test_a_reversal_of_an_empty_balance_still_leaves_a_line(user_factory):
    broke = user_factory()

    take_back(broke, 300)

    assert ledger_kinds(broke) == [("reversal", 0)]
    assert services.debt_credits(broke.personal_account.pk) == 300


def test_a_reversal_happens_once_per_key(owner):
    take_back(owner, 1500)

    assert take_back(owner, 1500) is None
    assert owed(owner) == 500
    assert assert_ledger_balanced(owner) == 0


def test_an_account_that_owes_cannot_reserve(owner):
    take_back(owner, 1200)
    services.grant(
        owner.personal_account, 100, description="gift", idempotency_key="gift"
    )  # pays 100 of 200

    with pytest.raises(services.CreditsOwed) as caught:
        services.hold(
            owner.personal_account.pk,
            {"held_credits": 40},
            reference="gen:1",
            description="1 image",
        )

    assert caught.value.owed_credits == 100
    assert isinstance(caught.value, services.InsufficientCredits)
    assert assert_ledger_balanced(owner) == 0


def test_credits_that_arrive_pay_the_debt_first(owner):
    take_back(owner, 1500)

    services.grant(owner.personal_account, 200, description="gift", idempotency_key="gift:1")
    assert (owed(owner), services.balance_credits(owner.personal_account)) == (300, 0)
    services.grant(
        owner.personal_account, 1000, description="top-up", idempotency_key="gift:2", kind="top_up"
    )

    assert (owed(owner), services.balance_credits(owner.personal_account)) == (0, 700)
    assert ledger_kinds(owner)[-4:] == [
        ("grant", 200),
        ("debt_payment", -200),
        ("top_up", 1000),
        ("debt_payment", -300),
    ]
    assert list(
        DebtEntry.objects.order_by("id").values_list("amount_credits", "owed_after_credits")
    ) == [
        (500, 500),
        (-200, 300),
        (-300, 0),
    ]
    assert assert_ledger_balanced(owner) == 700
    # Once paid, work can start again.
    services.hold(
        owner.personal_account.pk, {"held_credits": 40}, reference="gen:1", description="1 image"
    )


def test_a_repeated_grant_does_not_pay_twice(owner):
    take_back(owner, 1500)
    services.grant(owner.personal_account, 200, description="gift", idempotency_key="gift:1")
    services.grant(owner.personal_account, 200, description="gift", idempotency_key="gift:1")

    assert owed(owner) == 300


def test_an_operators_positive_adjustment_pays_the_debt_too(owner):
    take_back(owner, 1500)

    services.adjust(owner.personal_account, 800, reason="goodwill", operator="ops@example.com")

    assert (owed(owner), services.balance_credits(owner.personal_account)) == (0, 300)
    assert assert_ledger_balanced(owner) == 300


def test_the_debt_trail_is_append_only(owner):
    take_back(owner, 1500)
    debt = DebtEntry.objects.get()

    with pytest.raises(ValueError, match="append-only"):
        debt.save()
    with pytest.raises(ValueError, match="append-only"):
        debt.delete()
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditAccount.objects.filter(owner__personal_owner=owner).update(owed_credits=-1)


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE billing_debtentry SET amount_credits = 0, owed_after_credits = 0 WHERE id = %s",
        "DELETE FROM billing_debtentry WHERE id = %s",
    ],
)
def test_the_database_refuses_to_change_or_remove_a_debt_row(owner, sql):
    take_back(owner, 1500)
    debt = DebtEntry.objects.get()

    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, [debt.pk])

    debt.refresh_from_db()
    assert debt.amount_credits == 500
