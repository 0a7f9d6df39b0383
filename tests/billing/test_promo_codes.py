"""Promotion codes: operators make them, customers redeem them once each, within their uses."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import services
from billing.models import LedgerEntry, PromoCode, PromoRedemption
from billing.services import PromoCodeRefused
from tests.support.money import assert_ledger_balanced

pytestmark = pytest.mark.smoke


def redeem(client, code):
    return client.post("/dashboard/billing/redeem/", {"code": code})


def test_a_customer_redeems_a_code_on_the_billing_page(client, owner):
    PromoCode.objects.create(code="WELCOME", credits=2500)
    client.force_login(owner)

    response = redeem(client, "  welcome ")

    assert response.status_code == 302
    entry = LedgerEntry.objects.get(kind="promo")
    assert (entry.amount_credits, entry.balance_after_credits) == (2500, 3500)
    assert entry.description == "Promotion code WELCOME"
    assert assert_ledger_balanced(owner) == 3500
    page = client.get("/dashboard/billing/").content.decode()
    assert "Promotion code redeemed: 2,500 credits added." in page
    assert "Promotion code WELCOME" in page


def test_the_same_account_cannot_redeem_a_code_twice(client, owner):
    PromoCode.objects.create(code="WELCOME", credits=2500, max_redemptions=100)
    client.force_login(owner)
    redeem(client, "WELCOME")

    response = redeem(client, "Welcome")

    assert response.status_code == 400
    assert "That code can&#x27;t be redeemed." in response.content.decode()
    assert PromoCode.objects.get().times_redeemed == 1
    assert assert_ledger_balanced(owner) == 3500


def test_a_code_is_never_redeemed_beyond_its_uses(client, user_factory):
    PromoCode.objects.create(code="TWO", credits=10, max_redemptions=2)
    first, second, third = user_factory(), user_factory(), user_factory()
    services.redeem_promo_code(first.personal_account, "two")
    services.redeem_promo_code(second.personal_account, "two")

    with pytest.raises(PromoCodeRefused) as refused:
        services.redeem_promo_code(third.personal_account, "two")

    assert refused.value.reason == "used_up"
    assert PromoCode.objects.get().times_redeemed == 2
    assert assert_ledger_balanced(third) == 0


def test_an_expired_code_is_refused(client, owner):
    PromoCode.objects.create(
        code="OLD", credits=10, expires_at=timezone.now() - timedelta(seconds=1)
    )
    client.force_login(owner)

    response = redeem(client, "OLD")

    assert response.status_code == 400
    assert "That code can&#x27;t be redeemed." in response.content.decode()
    assert not PromoRedemption.objects.exists()
    assert assert_ledger_balanced(owner) == 1000


@pytest.mark.parametrize("code", ["NOPE", "", "   "])
def test_an_unknown_or_inactive_code_is_refused(client, owner, code):
    PromoCode.objects.create(code="PAUSED", credits=10, active=False)
    client.force_login(owner)

    for typed in (code, "paused"):
        response = redeem(client, typed)
        assert response.status_code == 400
    assert assert_ledger_balanced(owner) == 1000


def test_every_refusal_reads_the_same_so_codes_cannot_be_told_from_made_up_ones(
    client, owner, user_factory
):
    PromoCode.objects.create(code="REAL", credits=10, max_redemptions=1)
    PromoCode.objects.create(code="OLD", credits=10, expires_at=timezone.now())
    PromoCode.objects.create(code="PAUSED", credits=10, active=False)
    services.redeem_promo_code(user_factory().personal_account, "REAL")  # its one use, taken
    client.force_login(owner)

    pages = {code: redeem(client, code) for code in ("MADEUP", "OLD", "PAUSED", "REAL")}

    assert {response.status_code for response in pages.values()} == {400}
    errors = {code: error_list(response) for code, response in pages.items()}
    assert len(set(errors.values())) == 1, errors
    assert errors["MADEUP"] == "That code can&#x27;t be redeemed. Check it and try again."


def error_list(response):
    page = response.content.decode()
    start = page.index('<p class="error" role="alert">')
    return page[page.index(">", start) + 1 : page.index("</p>", start)].strip()


def test_attempts_are_limited_per_account(client, owner, settings):
    settings.PROMO_CODE_ATTEMPTS_PER_HOUR = 3
    PromoCode.objects.create(code="REAL", credits=10)
    client.force_login(owner)
    for guess in ("A1", "A2", "A3"):
        assert redeem(client, guess).status_code == 400

    response = redeem(client, "REAL")  # right, but one attempt too many

    assert response.status_code == 429
    assert "Too many codes tried" in response.content.decode()
    assert not PromoRedemption.objects.exists()
    assert assert_ledger_balanced(owner) == 1000


def test_attempts_are_limited_per_address_across_accounts(client, user_factory, settings):
    settings.PROMO_CODE_ATTEMPTS_PER_HOUR = 3
    for n in range(3):
        client.force_login(user_factory())
        assert redeem(client, f"GUESS{n}").status_code == 400

    client.force_login(user_factory())  # a fresh account, the same address

    assert redeem(client, "GUESS9").status_code == 429


def test_the_database_refuses_a_second_redemption_and_a_use_beyond_the_maximum(owner):
    code = PromoCode.objects.create(code="DB", credits=10, max_redemptions=1)
    services.redeem_promo_code(owner.personal_account, "DB")

    with pytest.raises(IntegrityError), transaction.atomic():
        PromoRedemption.objects.create(
            promo_code=code, account=owner.personal_account.credit_account, credits=10
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        PromoCode.objects.filter(pk=code.pk).update(times_redeemed=2)
    with pytest.raises(IntegrityError), transaction.atomic():
        PromoCode.objects.create(code="db", credits=1)


def test_codes_ignore_case_and_spaces_when_saved(db):
    assert PromoCode.objects.create(code=" spring sale ", credits=1).code == "SPRINGSALE"


def test_the_redeem_form_needs_a_login(client):
    response = redeem(client, "WELCOME")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
