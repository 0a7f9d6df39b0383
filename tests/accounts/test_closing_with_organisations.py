"""Closing a person's account and their organisations: their access ends everywhere at once; an
organisation with other members keeps its keys and credits; one they were alone in closes with
them; and the last owner of an organisation others still use must hand it over first."""

from __future__ import annotations

import pytest

from accounts import services
from accounts.models import Account, Membership, Role
from billing import services as billing
from keys import services as keys
from keys.models import ApiKey
from tests.support.money import balance

pytestmark = pytest.mark.smoke


def organisation(name: str, **members: tuple) -> Account:
    org = Account.objects.create(kind=Account.Kind.ORGANISATION, name=name)
    for role, users in members.items():
        for user in users:
            Membership.objects.create(account=org, user=user, role=role)
    return org


def test_the_last_owner_of_an_organisation_others_use_must_hand_it_over_first(user_factory, client):
    olga, dev = user_factory("olga@example.com"), user_factory("dev@example.com")
    acme = organisation("Acme", owner=(olga,), developer=(dev,))
    key = keys.create_key(acme, "ci", made_by=olga)

    with pytest.raises(services.AccountNotClosable, match="only owner of Acme"):
        services.close_account(olga)

    olga.refresh_from_db()
    assert olga.closed_at is None and olga.is_active
    assert Membership.objects.filter(account=acme).count() == 2
    assert ApiKey.objects.get(pk=key.api_key.pk).revoked_at is None

    # Through the page: the reason, and nothing closed.
    client.force_login(olga)
    page = client.post("/dashboard/account/close/", {"confirmation": "pw"})
    assert page.status_code == 409
    assert "make another member an owner first" in page.content.decode()
    olga.refresh_from_db()
    assert olga.closed_at is None


def test_a_member_who_closes_their_account_leaves_and_the_organisation_keeps_its_keys(
    user_factory,
):
    olga, dev = user_factory("olga@example.com"), user_factory("dev@example.com")
    acme = organisation("Acme", owner=(olga,), developer=(dev,))
    billing.grant(acme, 500, description="top-up", idempotency_key="acme")
    made_by_dev = keys.create_key(acme, "ci", made_by=dev)

    services.close_account(dev)

    assert not Membership.objects.filter(user=dev, account=acme).exists()
    assert ApiKey.objects.get(pk=made_by_dev.api_key.pk).revoked_at is None
    assert balance(acme) == 500


def test_an_organisation_its_only_member_closes_with_them(user_factory):
    solo = user_factory("solo@example.com")
    workshop = organisation("Solo's workshop", owner=(solo,))
    key = keys.create_key(workshop, "ci", made_by=solo)

    services.close_account(solo)

    assert ApiKey.objects.get(pk=key.api_key.pk).revoked_at is not None
    # Its books stay (they are financial records); no one is a member any more.
    assert Account.objects.filter(pk=workshop.pk).exists()
    assert not Membership.objects.filter(account=workshop).exists()


def test_another_owner_lets_an_owner_close_their_account(user_factory):
    olga, oscar = user_factory("olga@example.com"), user_factory("oscar@example.com")
    acme = organisation("Acme", owner=(olga, oscar))

    services.close_account(olga)

    assert list(Membership.objects.filter(account=acme).values_list("user", "role")) == [
        (oscar.pk, Role.OWNER)
    ]
