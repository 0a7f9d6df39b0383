"""The admin's front door (accounts/admin_sign_in.py): sign-in goes through allauth, with its
rate limits and lockout, and staff need a second factor before the admin opens."""

from __future__ import annotations

from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.core.cache import cache
from django.test import Client

from accounts.admin_sign_in import SECOND_FACTOR_NEEDED

PASSWORD = "correct horse battery 42"

pytestmark = pytest.mark.smoke


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()  # allauth counts failed sign-ins in the cache, which outlives a test


@pytest.fixture
def operator(user_factory: Any) -> Any:
    """A staff member with a verified address, a password and a second factor."""
    user = user_factory("ops@example.com", is_staff=True, is_superuser=True)
    user.set_password(PASSWORD)
    user.save()
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    return user


def test_the_admins_login_page_hands_over_to_allauths(client: Client, db: None) -> None:
    response = client.get("/admin/login/?next=/admin/billing/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_a_password_posted_to_the_admins_login_page_signs_nobody_in(
    client: Client, operator: Any
) -> None:
    response = client.post(
        "/admin/login/", {"username": operator.email, "password": PASSWORD, "next": "/admin/"}
    )

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302


def test_wrong_passwords_lock_the_account_out_of_the_admin_too(
    client: Client, operator: Any, settings: Any
) -> None:
    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "3/300s/ip,3/300s/key"}
    for _ in range(3):
        client.post("/accounts/login/", {"login": operator.email, "password": "wrong"})

    response = client.post(
        "/accounts/login/?next=/admin/", {"login": operator.email, "password": PASSWORD}
    )

    # The right password is refused too: no second-factor step, no session.
    assert response.status_code == 200
    assert "Too many failed login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302


def test_signing_in_with_a_second_factor_asks_for_it_before_the_admin_opens(
    client: Client, operator: Any
) -> None:
    response = client.post(
        "/accounts/login/?next=/admin/", {"login": operator.email, "password": PASSWORD}
    )

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/2fa/authenticate/")
    assert "_auth_user_id" not in client.session


def test_staff_without_a_second_factor_are_sent_to_set_one_up(
    client: Client, user_factory: Any
) -> None:
    staff = user_factory("new-ops@example.com", is_staff=True, second_factor=False)
    client.force_login(staff)

    response = client.get("/admin/", follow=True)

    assert response.redirect_chain[-1][0].startswith("/accounts/2fa/")
    assert SECOND_FACTOR_NEEDED in response.content.decode()


def test_staff_with_a_second_factor_open_the_admin(client: Client, operator: Any) -> None:
    client.force_login(operator)

    assert client.get("/admin/").status_code == 200


def test_a_customer_signed_in_is_refused_the_admin(client: Client, owner: Any) -> None:
    client.force_login(owner)

    assert client.get("/admin/login/").status_code == 403
