"""An organisation gets credits the ways a person does, from its billing page, by an owner: a card
payment (its own Customer at Stripe, its credits on the webhook) and a promotion code (once per
account, so a person may use a code for themselves and again for their organisation). Other
roles cannot buy."""

from __future__ import annotations

import pytest

from accounts import organisations
from accounts.models import Account, Membership, Role
from billing.models import CreditAccount, PromoCode, Purchase
from tests.billing.conftest import completed
from tests.support.accounts import working_in
from tests.support.money import assert_ledger_balanced, balance

pytestmark = pytest.mark.smoke


@pytest.fixture
def acme(user_factory):
    olga = user_factory("olga@example.com", credits=100)
    dev = user_factory("dev@example.com")
    org = Account.objects.create(kind=Account.Kind.ORGANISATION, name="Acme Ltd")
    Membership.objects.create(account=org, user=olga, role=Role.OWNER)
    Membership.objects.create(account=org, user=dev, role=Role.DEVELOPER)
    return org, olga, dev


def test_an_owners_card_payment_credits_the_organisation(client, acme, fake_stripe, deliver):
    org, olga, _ = acme
    working_in(client, olga, org)

    response = client.post("/dashboard/billing/buy/", {"pack": "500"})

    assert response.status_code == 303
    purchase = Purchase.objects.get()
    assert (purchase.owner, purchase.user) == (org, olga)
    [call] = fake_stripe.calls("POST", "/v1/checkout/sessions")
    assert call.form["client_reference_id"] == str(org.pk)
    assert call.form["metadata[account_id]"] == str(org.pk)
    # The organisation's own Customer, named after it, written to its owner.
    [customer] = fake_stripe.customers.values()
    assert (customer["name"], customer["email"]) == ("Acme Ltd", "olga@example.com")

    assert deliver(completed(fake_stripe, purchase)).status_code == 200

    assert assert_ledger_balanced(org) == 5000
    assert balance(olga) == 100  # the owner's own credits are untouched
    page = client.get(f"/dashboard/billing/purchases/{purchase.public_id}/").content.decode()
    assert "5,000" in page


def test_a_promotion_code_counts_once_per_account_and_once_per_person(client, acme, user_factory):
    org, olga, _ = acme
    PromoCode.objects.create(code="LAUNCH", credits=700, max_redemptions=10)
    client.force_login(olga)
    assert client.post("/dashboard/billing/redeem/", {"code": "LAUNCH"}).status_code == 302

    # Not again through an organisation she owns (nor through each one she could make) ...
    working_in(client, olga, org)
    again = client.post("/dashboard/billing/redeem/", {"code": "LAUNCH"})
    assert again.status_code == 400
    assert (balance(olga), assert_ledger_balanced(org)) == (800, 0)

    # ... but another owner who has not used it may, for the organisation, once.
    oscar = user_factory("oscar@example.com")
    Membership.objects.create(account=org, user=oscar, role=Role.OWNER)
    working_in(client, oscar, org)
    assert client.post("/dashboard/billing/redeem/", {"code": "LAUNCH"}).status_code == 302
    assert client.post("/dashboard/billing/redeem/", {"code": "LAUNCH"}).status_code == 400
    assert balance(org) == 700


def test_a_developer_cannot_buy_redeem_or_see_the_organisations_purchases(
    client, acme, fake_stripe
):
    org, olga, dev = acme
    PromoCode.objects.create(code="LAUNCH", credits=700)
    working_in(client, olga, org).post("/dashboard/billing/buy/", {"pack": "500"})
    purchase = Purchase.objects.get()
    working_in(client, dev, org)

    assert client.post("/dashboard/billing/buy/", {"pack": "500"}).status_code == 403
    assert client.post("/dashboard/billing/redeem/", {"code": "LAUNCH"}).status_code == 403
    assert client.get(f"/dashboard/billing/purchases/{purchase.public_id}/").status_code == 403
    assert Purchase.objects.count() == 1
    assert assert_ledger_balanced(org) == 0


def test_an_owner_sees_only_the_current_accounts_purchases(client, acme, fake_stripe):
    org, olga, _ = acme
    working_in(client, olga, org).post("/dashboard/billing/buy/", {"pack": "500"})
    purchase = Purchase.objects.get()
    client.post("/dashboard/organisations/switch/", {"account": olga.personal_account.pk})

    # From her personal account, the organisation's purchase is not hers to see.
    assert client.get(f"/dashboard/billing/purchases/{purchase.public_id}/").status_code == 404


def test_a_card_saved_by_a_member_who_leaves_is_never_charged_again(
    client, acme, fake_stripe, deliver, django_capture_on_commit_callbacks
):
    org, olga, dev = acme
    Membership.objects.filter(account=org, user=dev).update(role=Role.OWNER)
    working_in(client, olga, org)
    client.post("/dashboard/billing/auto-top-up/", {"threshold_credits": 5000, "amount": "20"})
    client.post("/dashboard/billing/buy/", {"pack": "500", "save_card": "on"})
    purchase = Purchase.objects.get()
    session = fake_stripe.pay(str(purchase.checkout_session_id), card="pm_card_visa")
    assert deliver(fake_stripe.event("checkout.session.completed", session)).status_code == 200
    credit = CreditAccount.objects.get(owner=org)
    assert credit.auto_top_up_enabled and credit.auto_top_up_card_saved_by == olga
    card = credit.auto_top_up_payment_method_id

    with django_capture_on_commit_callbacks(execute=True):
        organisations.remove_member(Membership.objects.get(account=org, user=olga))

    credit.refresh_from_db()
    assert not credit.auto_top_up_enabled
    assert credit.auto_top_up_payment_method_id == "" and credit.auto_top_up_card_saved_by is None
    assert fake_stripe.calls("POST", f"/v1/payment_methods/{card}/detach")


def test_a_card_saved_by_someone_else_stays_when_a_member_leaves(acme):
    org, olga, dev = acme
    CreditAccount.objects.of(org.pk)
    CreditAccount.objects.filter(owner=org).update(
        auto_top_up_enabled=True,
        auto_top_up_threshold_credits=5000,
        auto_top_up_amount_cents=2000,
        auto_top_up_payment_method_id="pm_olgas",
        auto_top_up_card_saved_by=olga,
    )

    organisations.leave(Membership.objects.get(account=org, user=dev))

    credit = CreditAccount.objects.get(owner=org)
    assert credit.auto_top_up_enabled and credit.auto_top_up_payment_method_id == "pm_olgas"
