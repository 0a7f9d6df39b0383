"""Operators see balances and adjust credits in the admin, through the billing services."""

from __future__ import annotations

import pytest

from accounts.models import Account
from billing.models import LedgerEntry
from tests.support.money import assert_ledger_balanced


@pytest.fixture
def operator(user_factory):
    return user_factory("ops@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client


def adjust_url(whose):
    """The adjustment page of an account, or of a user's personal account."""
    account = whose if isinstance(whose, Account) else whose.personal_account
    return f"/admin/billing/creditaccount/adjust/{account.pk}/"


def test_the_users_list_shows_each_balance(operator_client, owner):
    page = operator_client.get("/admin/accounts/user/").content.decode()
    assert "owner@example.com" in page
    assert "1000" in page


@pytest.mark.parametrize("credits", [250, -250])
def test_an_adjustment_is_an_audited_ledger_line(operator_client, owner, credits):
    response = operator_client.post(
        adjust_url(owner), {"credits": credits, "reason": "goodwill  for outage"}
    )
    assert response.status_code == 302
    entry = LedgerEntry.objects.get(kind="adjustment")
    assert entry.amount_credits == credits
    assert entry.description == "goodwill for outage (by ops@example.com)"
    assert assert_ledger_balanced(owner) == 1000 + credits


def test_an_adjustment_cannot_take_the_balance_below_zero(operator_client, owner):
    response = operator_client.post(adjust_url(owner), {"credits": -1001, "reason": "oops"})
    assert response.status_code == 200
    assert "The balance is only 1000 credits." in response.content.decode()
    assert assert_ledger_balanced(owner) == 1000


@pytest.mark.parametrize("data", [{"credits": 0, "reason": "x"}, {"credits": 5, "reason": ""}])
def test_a_bad_adjustment_form_changes_nothing(operator_client, owner, data):
    assert operator_client.post(adjust_url(owner), data).status_code == 200
    assert not LedgerEntry.objects.filter(kind="adjustment").exists()


def test_an_adjustment_opens_the_account_of_a_customer_who_never_had_credits(
    operator_client, user_factory
):
    newcomer = user_factory()
    operator_client.post(adjust_url(newcomer), {"credits": 100, "reason": "welcome"})
    assert assert_ledger_balanced(newcomer) == 100


def test_an_organisations_credits_are_adjusted_from_its_row_in_the_accounts_list(
    operator_client, user_factory
):
    # Ids of accounts and users differ: the page must name the account, not a person.
    user_factory("someone@example.com")
    acme = Account.objects.create(kind=Account.Kind.ORGANISATION, name="Acme")

    listing = operator_client.get("/admin/accounts/account/?q=Acme").content.decode()
    assert adjust_url(acme) in listing
    page = operator_client.get(adjust_url(acme)).content.decode()
    assert "Adjust the credits of Acme" in page
    response = operator_client.post(adjust_url(acme), {"credits": 300, "reason": "contract"})

    assert response.status_code == 302
    assert assert_ledger_balanced(acme) == 300
    assert LedgerEntry.objects.get().description == "contract (by ops@example.com)"


def test_an_adjustment_of_no_such_account_is_a_404(operator_client):
    response = operator_client.post(adjust_url_for_id(999_999), {"credits": 5, "reason": "x"})
    assert response.status_code == 404
    assert not LedgerEntry.objects.exists()


def adjust_url_for_id(account_id: int) -> str:
    return f"/admin/billing/creditaccount/adjust/{account_id}/"


def test_staff_without_the_money_permission_cannot_adjust(client, user_factory, owner):
    viewer = user_factory("viewer@example.com", is_staff=True)
    client.force_login(viewer)
    response = client.post(adjust_url(owner), {"credits": 100, "reason": "x"})
    assert response.status_code == 403
    assert assert_ledger_balanced(owner) == 1000


def test_operators_see_each_capped_keys_windows_and_cannot_change_them(operator_client):
    from billing.models import SpendWindow

    window = SpendWindow.objects.create(
        name="key:7:day:2026-12-06", cap_credits=400, spent_credits=120
    )

    page = operator_client.get("/admin/billing/spendwindow/").content.decode()
    change = operator_client.post(
        f"/admin/billing/spendwindow/{window.pk}/change/", {"spent_credits": 0}
    )

    assert "key:7:day:2026-12-06" in page and "120" in page
    assert change.status_code == 403
    window.refresh_from_db()
    assert window.spent_credits == 120
