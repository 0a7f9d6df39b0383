"""billing.services: reserve, settle, grant, what credits are worth and what an image costs."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError

from billing import services
from billing.models import CreditAccount, LedgerEntry
from billing.services import InsufficientCredits, Settlement
from tests.support.money import assert_ledger_balanced, ledger_rows

pytestmark = pytest.mark.django_db

# Four standard seedream-4-0 images at the seeded 40 credits each.
FOUR_IMAGES = 4 * 40


def reserve(user, credits, reference="gen:1"):
    """The hold's ledger line."""
    return services.hold(
        user.personal_account.pk,
        {"held_credits": credits},
        reference=reference,
        description="4 images",
    ).entry


def settle(user, charged, reserved=FOUR_IMAGES, reference="gen:1"):
    return services.settle(
        user.personal_account.pk,
        {"held_credits": reserved, "charged_credits": charged},
        reference=reference,
        description="4 images",
    )


# --- reserve ------------------------------------------------------------------------------------


def test_a_reservation_takes_the_credits_from_the_balance(owner):
    entry = reserve(owner, FOUR_IMAGES)

    entry.refresh_from_db()
    assert entry.kind == LedgerEntry.Kind.RESERVE
    assert entry.amount_credits == -160
    assert entry.balance_after_credits == 840
    assert entry.reference == "gen:1"
    assert entry.idempotency_key == "gen:1:reserve"
    assert entry.description == "4 images"
    assert entry.account.owner.personal_owner == owner
    assert services.balance_credits(owner.personal_account) == 840
    assert assert_ledger_balanced(owner) == 840


def test_it_refuses_a_reservation_beyond_the_balance(owner):
    entries_before = LedgerEntry.objects.count()

    with pytest.raises(InsufficientCredits) as excinfo:
        reserve(owner, 1001)

    assert excinfo.value.needed_credits == 1001
    assert excinfo.value.balance_credits == 1000
    assert "1001" in str(excinfo.value)
    assert LedgerEntry.objects.count() == entries_before
    assert not LedgerEntry.objects.filter(reference="gen:1").exists()
    assert services.balance_credits(owner.personal_account) == 1000
    assert assert_ledger_balanced(owner) == 1000


def test_a_reservation_of_exactly_the_balance_succeeds_and_leaves_nothing(owner):
    entry = reserve(owner, 1000)

    assert entry.balance_after_credits == 0
    assert services.balance_credits(owner.personal_account) == 0
    assert assert_ledger_balanced(owner) == 0

    with pytest.raises(InsufficientCredits) as excinfo:
        reserve(owner, 1, reference="gen:2")
    assert (excinfo.value.needed_credits, excinfo.value.balance_credits) == (1, 0)
    assert assert_ledger_balanced(owner) == 0


def test_it_refuses_a_reservation_from_a_user_who_never_had_credits(user_factory):
    newcomer = user_factory()

    with pytest.raises(InsufficientCredits) as excinfo:
        reserve(newcomer, 40)

    assert (excinfo.value.needed_credits, excinfo.value.balance_credits) == (40, 0)
    assert not LedgerEntry.objects.filter(account__owner__personal_owner=newcomer).exists()
    assert services.balance_credits(newcomer.personal_account) == 0


@pytest.mark.parametrize("credits", [0, -40])
def test_it_refuses_to_reserve_nothing_or_less(owner, credits):
    with pytest.raises(ValueError):
        reserve(owner, credits)

    assert ledger_rows(owner, "gen:1") == []
    assert assert_ledger_balanced(owner) == 1000


def test_a_reference_is_reserved_only_once(owner):
    reserve(owner, FOUR_IMAGES)

    with pytest.raises(IntegrityError):
        reserve(owner, FOUR_IMAGES)

    # The failed second reservation's balance change rolled back with its ledger row.
    assert ledger_rows(owner, "gen:1") == [("reserve", -160, 840)]
    assert assert_ledger_balanced(owner) == 840


def test_a_reservation_leaves_other_customers_alone(owner, outsider):
    reserve(owner, FOUR_IMAGES)

    assert assert_ledger_balanced(owner) == 840
    assert assert_ledger_balanced(outsider) == 1000
    assert ledger_rows(outsider, "gen:1") == []


# --- settle -------------------------------------------------------------------------------------


def test_settling_a_full_delivery_charges_everything_reserved(owner):
    reserve(owner, FOUR_IMAGES)

    result = settle(owner, charged=FOUR_IMAGES)

    assert result == Settlement(charged_credits=160, released_credits=0, balance_credits=840)
    assert ledger_rows(owner, "gen:1") == [
        ("reserve", -160, 840),
        ("release", 160, 1000),
        ("charge", -160, 840),
    ]
    assert assert_ledger_balanced(owner) == 840


def test_settling_a_partial_delivery_charges_only_the_images_delivered(owner):
    reserve(owner, FOUR_IMAGES)

    result = settle(owner, charged=2 * 40)

    assert result == Settlement(charged_credits=80, released_credits=80, balance_credits=920)
    assert ledger_rows(owner, "gen:1") == [
        ("reserve", -160, 840),
        ("release", 160, 1000),
        ("charge", -80, 920),
    ]
    assert assert_ledger_balanced(owner) == 920


def test_settling_when_nothing_was_delivered_charges_nothing(owner):
    reserve(owner, FOUR_IMAGES)

    result = settle(owner, charged=0)

    assert result == Settlement(charged_credits=0, released_credits=160, balance_credits=1000)
    assert ledger_rows(owner, "gen:1") == [("reserve", -160, 840), ("release", 160, 1000)]
    assert not LedgerEntry.objects.filter(kind="charge", reference="gen:1").exists()
    assert assert_ledger_balanced(owner) == 1000


def test_settlement_rows_explain_themselves_to_the_customer(owner):
    reserve(owner, FOUR_IMAGES)
    settle(owner, charged=80)

    release = LedgerEntry.objects.get(reference="gen:1", kind="release")
    charge = LedgerEntry.objects.get(reference="gen:1", kind="charge")
    assert release.idempotency_key == "gen:1:release"
    assert release.description == "Released hold: 4 images"
    assert charge.idempotency_key == "gen:1:charge"
    assert charge.description == "4 images"


@pytest.mark.parametrize("first_charge", [0, 80, 160])
@pytest.mark.parametrize("second_charge", [0, 160])
def test_a_second_settlement_of_the_same_reference_does_nothing(owner, first_charge, second_charge):
    reserve(owner, FOUR_IMAGES)
    first = settle(owner, charged=first_charge)
    assert first is not None
    rows = ledger_rows(owner)
    balance = assert_ledger_balanced(owner)
    assert balance == 1000 - first_charge

    assert settle(owner, charged=second_charge) is None

    assert ledger_rows(owner) == rows
    assert assert_ledger_balanced(owner) == balance


def test_settling_one_reference_does_not_settle_another(owner):
    reserve(owner, FOUR_IMAGES, reference="gen:1")
    reserve(owner, FOUR_IMAGES, reference="gen:2")
    settle(owner, charged=160, reference="gen:1")

    result = settle(owner, charged=40, reference="gen:2")

    assert result == Settlement(charged_credits=40, released_credits=120, balance_credits=800)
    assert assert_ledger_balanced(owner) == 800


@pytest.mark.parametrize(
    ("reserved", "charged"),
    [(160, 161), (160, -1), (0, 40), (160, -160)],
    ids=["charge-above-reservation", "negative-charge", "charge-without-reservation", "refund"],
)
def test_it_refuses_a_charge_outside_the_reservation(owner, reserved, charged):
    reserve(owner, FOUR_IMAGES)

    with pytest.raises(ValueError):
        settle(owner, charged=charged, reserved=reserved)

    assert ledger_rows(owner, "gen:1") == [("reserve", -160, 840)]
    assert assert_ledger_balanced(owner) == 840
    # The refused settlement did not use up the reference: a correct one still goes through.
    assert settle(owner, charged=80) is not None
    assert assert_ledger_balanced(owner) == 920


# --- grant --------------------------------------------------------------------------------------


def test_a_grant_adds_credits_and_opens_the_account_on_first_use(user_factory):
    newcomer = user_factory()
    assert not CreditAccount.objects.filter(owner__personal_owner=newcomer).exists()

    entry = services.grant(
        newcomer.personal_account, 500, description="Welcome", idempotency_key="welcome:1"
    )

    entry.refresh_from_db()
    assert entry.kind == LedgerEntry.Kind.GRANT
    assert (entry.amount_credits, entry.balance_after_credits) == (500, 500)
    assert entry.description == "Welcome"
    assert entry.account == CreditAccount.objects.get(owner__personal_owner=newcomer)
    assert services.balance_credits(newcomer.personal_account) == 500
    assert assert_ledger_balanced(newcomer) == 500


def test_a_grant_happens_once_per_idempotency_key(owner):
    first = services.grant(
        owner.personal_account, 500, description="Promo", idempotency_key="promo:spring"
    )

    again = services.grant(
        owner.personal_account, 500, description="Promo", idempotency_key="promo:spring"
    )
    # A repeat with other numbers is still the same grant, not a second one.
    different = services.grant(
        owner.personal_account, 900, description="Other", idempotency_key="promo:spring"
    )

    assert again.pk == first.pk
    assert different.pk == first.pk
    assert LedgerEntry.objects.filter(idempotency_key="promo:spring").count() == 1
    assert assert_ledger_balanced(owner) == 1500


def test_grants_with_different_keys_both_count(owner):
    services.grant(owner.personal_account, 100, description="a", idempotency_key="grant:a")
    services.grant(owner.personal_account, 200, description="b", idempotency_key="grant:b")

    assert assert_ledger_balanced(owner) == 1300


def test_a_grant_can_record_a_top_up_with_its_reference(owner):
    entry = services.grant(
        owner.personal_account,
        5000,
        description="Top-up",
        idempotency_key="stripe:cs_123",
        kind=LedgerEntry.Kind.TOP_UP,
        reference="stripe:cs_123",
    )

    assert ledger_rows(owner, "stripe:cs_123") == [("top_up", 5000, 6000)]
    assert entry.kind == "top_up"
    assert assert_ledger_balanced(owner) == 6000


@pytest.mark.parametrize("credits", [0, -1, -1000])
def test_it_refuses_a_grant_of_nothing_or_less(owner, credits):
    with pytest.raises(ValueError):
        services.grant(owner.personal_account, credits, description="bad", idempotency_key="bad:1")

    assert not LedgerEntry.objects.filter(idempotency_key="bad:1").exists()
    assert assert_ledger_balanced(owner) == 1000


def test_the_balance_of_a_user_without_an_account_is_zero(user_factory):
    assert services.balance_credits(user_factory()) == 0


# --- what credits are worth ---------------------------------------------------------------------


def test_credits_are_worth_an_exact_decimal_number_of_dollars():
    assert services.credits_to_usd(40) == Decimal("0.04")
    assert isinstance(services.credits_to_usd(40), Decimal)
    assert services.credits_to_usd(1) == Decimal("0.001")
    assert services.credits_to_usd(0) == Decimal("0")
    assert services.credits_to_usd(1000) == Decimal("1")
    # No float ever creeps in: a third of a cent, a thousand times over, is exactly $3.33.
    assert sum(services.credits_to_usd(3) for _ in range(1110)) == Decimal("3.33")


def test_the_dollar_value_follows_the_credits_per_usd_setting(settings):
    settings.CREDITS_PER_USD = 100

    assert services.credits_to_usd(40) == Decimal("0.4")
    assert services.format_usd(40) == "0.4000"

    settings.CREDITS_PER_USD = 1000
    assert services.credits_to_usd(40) == Decimal("0.04")


@pytest.mark.parametrize(
    ("credits", "shown"),
    [(0, "0.0000"), (1, "0.0010"), (40, "0.0400"), (1000, "1.0000"), (1_234_567, "1234.5670")],
)
def test_dollars_are_shown_to_four_places(credits, shown):
    assert services.format_usd(credits) == shown


def test_it_refuses_to_settle_what_was_never_reserved(owner):
    with pytest.raises(ValueError, match="No reservation"):
        settle(owner, 0, reserved=40, reference="gen:never")
    assert assert_ledger_balanced(owner) == 1000


def test_it_refuses_to_release_more_than_was_held(owner):
    reserve(owner, 40)
    with pytest.raises(ValueError, match="No reservation"):
        settle(owner, 0, reserved=400)
    assert assert_ledger_balanced(owner) == 960


def test_a_grant_key_used_by_another_account_is_refused(owner, outsider):
    services.grant(owner.personal_account, 5, description="promo", idempotency_key="promo:1")
    with pytest.raises(ValueError, match="another account"):
        services.grant(outsider.personal_account, 5, description="promo", idempotency_key="promo:1")
    assert assert_ledger_balanced(outsider) == 1000
