"""Sign-up credits (SIGNUP_CREDITS): a trial for each new account, once, when its address is
verified, as a ledger line of its own.

Through the sign-up and confirmation pages (the test client), through the service, and as a race
of real threads on PostgreSQL (each thread its own connection, so the test commits for real).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from allauth.account.signals import email_confirmed
from django.core.cache import cache
from django.core.mail import EmailMessage
from django.test import Client
from django.urls import reverse

from accounts.models import User
from billing import services
from billing.models import LedgerEntry
from tests.support.concurrency import run_at_once
from tests.support.money import assert_ledger_balanced, balance
from tests.support.simulator import PROJECT_ROOT

PASSWORD = "correct horse battery 42"
CONFIRM_LINK = re.compile(r"https?://[^/\s]+(/accounts/confirm-email/[^\s/]+/)")


@pytest.fixture(autouse=True)
def _trial(settings: Any) -> None:
    settings.SIGNUP_CREDITS = 500
    # allauth counts sign-ups per address in the cache, which outlives a test.
    cache.clear()


def signup_lines(user: User) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(account__owner__personal_owner=user, reference="signup"))


def sign_up(client: Client, email: str) -> User:
    response = client.post(
        reverse("account_signup"), {"email": email, "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302, response.content
    return User.objects.get(email=email)


def confirmation_path(message: EmailMessage) -> str:
    match = CONFIRM_LINK.search(str(message.body))
    assert match, message.body
    return match.group(1)


@pytest.mark.django_db
def test_a_new_account_gets_its_credits_when_it_confirms_its_address_not_before(
    client: Client, mailoutbox: list[EmailMessage]
) -> None:
    user = sign_up(client, "trial@example.com")
    assert signup_lines(user) == []

    path = confirmation_path(mailoutbox[0])
    assert client.post(path).status_code == 302

    (line,) = signup_lines(user)
    assert (line.kind, line.amount_credits, line.balance_after_credits) == ("grant", 500, 500)
    assert line.description == "Sign-up credits"
    assert line.idempotency_key == f"signup:{user.pk}"
    assert balance(user) == 500
    assert assert_ledger_balanced(user) == 500


@pytest.mark.django_db
def test_opening_the_link_again_or_confirming_another_address_grants_nothing_more(
    client: Client, mailoutbox: list[EmailMessage]
) -> None:
    user = sign_up(client, "twice@example.com")
    path = confirmation_path(mailoutbox[0])
    client.post(path)
    client.post(path)

    # A second address, added on the email page and confirmed through its own link.
    added = client.post(reverse("account_email"), {"email": "other@example.com", "action_add": ""})
    assert added.status_code == 302
    assert client.post(confirmation_path(mailoutbox[-1])).status_code == 302
    assert EmailAddress.objects.get(email="other@example.com").verified
    # And the first address verified once more (allauth's signal, as a re-verification sends it).
    email_confirmed.send(
        sender=EmailAddress, request=None, email_address=EmailAddress.objects.get(email=user.email)
    )

    assert len(signup_lines(user)) == 1
    assert balance(user) == 500


@pytest.mark.django_db
def test_the_line_is_separate_from_other_credits_and_pays_a_debt_like_any_other(
    user_factory: Any,
) -> None:
    user = user_factory(credits=100)
    entry = services.grant_signup_credits(user.pk)
    assert entry is not None
    assert entry.balance_after_credits == 600
    assert [
        e.reference for e in LedgerEntry.objects.filter(account__owner__personal_owner=user)
    ] == ["signup", ""]


@pytest.mark.django_db
def test_a_repeat_returns_the_line_already_written(user_factory: Any) -> None:
    user = user_factory()
    first = services.grant_signup_credits(user.pk)
    again = services.grant_signup_credits(user.pk, credits=900)
    assert first is not None and again is not None
    assert again.pk == first.pk
    assert balance(user) == 500


@pytest.mark.django_db
def test_no_trial_configured_means_no_line(settings: Any, client: Client, mailoutbox: Any) -> None:
    settings.SIGNUP_CREDITS = 0
    user = sign_up(client, "nothing@example.com")
    client.post(confirmation_path(mailoutbox[0]))
    assert services.grant_signup_credits(user.pk) is None
    assert not LedgerEntry.objects.filter(account__owner__personal_owner=user).exists()


@pytest.mark.django_db
def test_without_verification_the_credits_come_at_sign_up(settings: Any, client: Client) -> None:
    settings.ACCOUNT_EMAIL_VERIFICATION = "none"
    user = sign_up(client, "unverified@example.com")
    assert [line.amount_credits for line in signup_lines(user)] == [500]


@pytest.mark.django_db
def test_with_optional_verification_they_wait_for_the_confirmation(
    settings: Any, client: Client, mailoutbox: list[EmailMessage]
) -> None:
    settings.ACCOUNT_EMAIL_VERIFICATION = "optional"
    user = sign_up(client, "optional@example.com")
    assert signup_lines(user) == []
    client.post(confirmation_path(mailoutbox[0]))
    assert len(signup_lines(user)) == 1


def test_the_setting_refuses_a_negative_trial(tmp_path: Any) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DATA_DIR": str(tmp_path), "SIGNUP_CREDITS": "-5"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "SIGNUP_CREDITS must not be negative" in result.stderr


@pytest.mark.postgres
@pytest.mark.usefixtures("transactional_db")
def test_confirmations_racing_on_real_connections_grant_once(user_factory: Any) -> None:
    user = user_factory()
    address = EmailAddress.objects.create(user=user, email=user.email, verified=False)

    def confirm(i: int) -> Any:
        # Half through the confirmation (its signal), half through the service itself.
        if i % 2:
            return email_confirmed.send(sender=EmailAddress, request=None, email_address=address)
        return services.grant_signup_credits(user.pk)

    results = run_at_once(8, confirm)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert len(signup_lines(user)) == 1
    assert balance(user) == 500
    assert assert_ledger_balanced(user) == 500
    granted = {r.pk for r in results if isinstance(r, LedgerEntry)}
    assert len(granted) == 1
