"""The account settings hub: what the customer's sign-in looks like, and where to change it."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator

URL = "/dashboard/account/"


def test_it_shows_the_owners_addresses_and_security_only(client, owner, outsider):
    EmailAddress.objects.create(user=owner, email=owner.email, verified=True, primary=True)
    EmailAddress.objects.create(user=owner, email="second@example.com", verified=False)
    EmailAddress.objects.create(user=outsider, email=outsider.email, verified=True, primary=True)
    client.force_login(owner)

    page = client.get(URL).content.decode()

    assert "owner@example.com" in page and "second@example.com" in page
    assert "not verified" in page
    assert outsider.email not in page
    assert "Change password" in page
    assert '<span class="badge warning">off</span>' in page
    assert 'href="/dashboard/account/close/"' in page


def test_two_factor_shows_as_on_once_an_authenticator_app_is_added(client, owner):
    Authenticator.objects.create(user=owner, type=Authenticator.Type.TOTP, data={})
    client.force_login(owner)

    page = client.get(URL).content.decode()

    assert '<span class="badge succeeded">on</span>' in page


def test_an_account_without_a_password_is_offered_to_set_one(client, user_factory):
    user = user_factory("social@example.com")
    user.set_unusable_password()
    user.save()
    client.force_login(user)

    page = client.get(URL).content.decode()

    assert "Set a password" in page
    assert "/accounts/password/set/" in page
