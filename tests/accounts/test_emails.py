"""allauth's emails: our site's name (SITE_NAME, SITE_DOMAIN), never the request's host; a branded
HTML body beside the plain text; sentence-case subjects."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.cache import cache
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.test import Client
from django.urls import reverse

from accounts.models import User

PASSWORD = "correct horse battery 42"
RESET_LINK = re.compile(r"https?://[^/\s]+(/accounts/password/reset/key/[^\s]+/)")
CONFIRM_LINK = re.compile(r"https?://[^/\s]+/accounts/confirm-email/[^\s/]+/")


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()


def sign_up(client: Client, email: str) -> None:
    response = client.post(
        reverse("account_signup"), {"email": email, "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302


def parts(message: EmailMessage) -> tuple[str, str]:
    """The plain-text body and the HTML alternative."""
    assert isinstance(message, EmailMultiAlternatives)
    (html, mimetype), *rest = message.alternatives
    assert (mimetype, rest) == ("text/html", [])
    return str(message.body), str(html)


@pytest.mark.django_db
def test_the_confirmation_names_our_site_in_text_and_in_html(
    client: Client, mailoutbox: list[EmailMessage], settings: Any
) -> None:
    settings.SUPPORT_EMAIL = "help@operator.example"
    sign_up(client, "new@example.com")

    (message,) = mailoutbox
    assert message.subject == "[Seedream API] Confirm your email address"
    text, html = parts(message)
    for body in (text, html):
        # The configured domain, not the host the request came in on (the links keep it).
        assert "testserver" not in body.replace("http://testserver/accounts/", "")
        assert f"at {settings.SITE_DOMAIN}." in body
        assert "help@operator.example" in body
    assert text.startswith("Hello from Seedream API,")
    link = CONFIRM_LINK.search(text)
    assert link
    # The HTML: our brand, the same link as a button, the address escaped like any text.
    assert ">Seedream API</a>" in html
    assert f'<a href="{link.group(0)}"' in html
    assert ">Confirm my address</a>" in html
    assert "<strong>new@example.com</strong>" in html
    assert "{%" not in html and "{{" not in html


@pytest.mark.django_db
def test_an_operators_site_name_and_domain_are_in_every_part(
    client: Client, mailoutbox: list[EmailMessage], settings: Any
) -> None:
    settings.SITE_NAME = "Pixel Forge"
    settings.SITE_DOMAIN = "pixels.example"
    settings.SITE_URL = "https://pixels.example"
    settings.ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Pixel Forge] "
    sign_up(client, "operator-brand@example.com")

    (message,) = mailoutbox
    assert message.subject == "[Pixel Forge] Confirm your email address"
    text, html = parts(message)
    assert text.startswith("Hello from Pixel Forge,")
    assert "sign up for Pixel Forge at pixels.example" in text
    assert "https://pixels.example" in text
    assert "Seedream API" not in text and "Seedream API" not in html
    assert '<a href="https://pixels.example"' in html


@pytest.mark.django_db
def test_the_password_reset_email_has_both_parts_and_a_working_link(
    client: Client, mailoutbox: list[EmailMessage]
) -> None:
    User.objects.create_user("forgetful@example.com", PASSWORD)
    response = client.post(reverse("account_reset_password"), {"email": "forgetful@example.com"})
    assert response.status_code == 302

    (message,) = mailoutbox
    assert message.subject == "[Seedream API] Reset your password"
    text, html = parts(message)
    path = RESET_LINK.search(text)
    assert path
    assert path.group(1) in html
    assert ">Choose a new password</a>" in html
    assert client.get(path.group(1)).status_code in (200, 302)


@pytest.mark.django_db
def test_a_reset_for_an_unknown_address_says_so_in_both_parts(
    client: Client, mailoutbox: list[EmailMessage]
) -> None:
    client.post(reverse("account_reset_password"), {"email": "nobody@example.com"})

    (message,) = mailoutbox
    assert message.subject == "[Seedream API] No account with this address"
    text, html = parts(message)
    assert "there is no Seedream API account with it" in text
    assert ">Sign up</a>" in html
