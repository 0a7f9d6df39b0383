"""The money moves as data (billing/moves.py): each kind's sign, and what a move writes."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from billing import moves
from billing.models import LEDGER_KIND_SIGNS, CreditAccount, LedgerEntry, LedgerKind
from billing.pricing import Delivered, Quote, charged_credits


def test_every_ledger_kind_has_a_sign():
    assert set(LEDGER_KIND_SIGNS) == set(LedgerKind.values)
    assert {LedgerKind.sign_of(kind) for kind in LedgerKind.values} <= {-1, 0, 1}


@pytest.mark.django_db
@pytest.mark.parametrize("kind", [k for k in LedgerKind.values if LedgerKind.sign_of(k)])
def test_the_database_refuses_a_line_whose_sign_is_against_its_kind(owner, kind):
    account = CreditAccount.objects.get(owner__personal_owner=owner)
    wrong = -LedgerKind.sign_of(kind) * 5

    with pytest.raises(IntegrityError, match="billing_ledger_kind_sign"), transaction.atomic():
        LedgerEntry(
            account=account,
            kind=kind,
            amount_credits=wrong,
            balance_after_credits=10,
            idempotency_key=f"wrong:{kind}",
        ).save()


@pytest.mark.django_db
def test_an_adjustment_may_go_either_way(owner):
    account = CreditAccount.objects.get(owner__personal_owner=owner)
    for amount in (-5, 5):
        LedgerEntry(
            account=account,
            kind=LedgerKind.ADJUSTMENT,
            amount_credits=amount,
            balance_after_credits=10,
            idempotency_key=f"adj:{amount}",
        ).save()


def test_every_move_line_takes_its_sign_from_its_kind():
    for move in (moves.HOLD, moves.SETTLE, moves.DEBT_PAYMENT, moves.REVERSAL,
                 *moves.CREDIT.values()):  # fmt: skip
        for line in move.lines:
            assert line.amount({line.quantity: 7}) == LedgerKind.sign_of(line.kind) * 7


def test_a_settlement_releases_the_hold_then_charges_with_running_balances():
    delivered = [Delivered(call=i, pixels=1024 * 1024) for i in range(3)]
    quantities = Quote.flat(per_image_credits=40, images=4).settlement(delivered=delivered)
    texts = {"reference": "gen:9", "description": "3 of 4", "charged_as": "; priced 3 x 40"}

    written = moves.entries(moves.SETTLE, quantities, texts, balance_after=1000)

    assert [(e.kind, e.amount_credits, e.balance_after_credits) for e in written] == [
        ("release", 160, 1120),
        ("charge", -120, 1000),
    ]
    assert [e.idempotency_key for e in written] == ["gen:9:release", "gen:9:charge"]
    assert written[0].description == "Released hold: 3 of 4"
    assert written[1].description == "3 of 4; priced 3 x 40"
    assert moves.SETTLE.delta(quantities) == 40
    assert charged_credits(quantities) == 120


def test_a_settlement_for_nothing_delivered_writes_no_charge_line():
    quantities = Quote.flat(per_image_credits=40, images=2).settlement(delivered=[])
    texts = {"reference": "r", "description": "d", "charged_as": ""}

    written = moves.entries(moves.SETTLE, quantities, texts, 80)

    assert [(e.kind, e.amount_credits, e.balance_after_credits) for e in written] == [
        ("release", 80, 80)
    ]


def test_texts_are_inserted_as_they_are():
    assert moves.render(
        "{reference}:x {description}", {"reference": "r", "description": "{key}"}
    ) == ("r:x {key}")


def test_a_move_refuses_missing_or_negative_quantities():
    with pytest.raises(ValueError, match="charged_credits"):
        moves.SETTLE.check({"held_credits": 40})
    with pytest.raises(ValueError, match="must not be negative"):
        moves.SETTLE.check({"held_credits": 40, "charged_credits": -1})
    moves.ADJUSTMENT.check({"credits": -40})  # either way


def test_a_quote_is_rebuilt_from_its_hold_or_refused():
    flat = Quote.flat(40, 3)
    legacy = Quote.of_hold(record={}, per_image_credits=40, images=3, held_credits=120)
    assert legacy == flat
    assert Quote.of_hold(record=flat.record(), held_credits=120) == flat
    with pytest.raises(ValueError):
        Quote.of_hold(record={}, per_image_credits=40, images=3, held_credits=80)
    with pytest.raises(ValueError):
        Quote.of_hold(record=flat.record(), held_credits=80)
    with pytest.raises(ValueError):
        flat.settlement(delivered=[Delivered(call=i, pixels=1) for i in range(4)])
    with pytest.raises(ValueError):  # two images from a call that makes one
        flat.settlement(delivered=[Delivered(call=0, pixels=1), Delivered(call=0, pixels=1)])
