"""Sign-up, email verification, sign-in and the account pages, through the Django test client.

allauth draws every page through our layouts and elements (templates/allauth/), so besides the
flows these tests check that each page is ours: our header, one h1, a visible label on every field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.core.cache import cache
from django.core.mail import EmailMessage
from django.test import Client
from django.urls import reverse

from accounts.models import User

PASSWORD = "correct horse battery 42"
BRAND = '<a class="brand" href="/">Seedream API</a>'
CONFIRM_LINK = re.compile(r"https?://[^/\s]+(/accounts/confirm-email/[^\s/]+/)")
RESET_LINK = re.compile(r"https?://[^/\s]+(/accounts/password/reset/key/[^\s]+/)")


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    # allauth counts sign-ups, failed logins and resets per IP in the cache, which outlives a test.
    cache.clear()


@pytest.fixture
def verified_user(db: None) -> Callable[..., User]:
    """A customer who signed up and verified their address, with PASSWORD as password."""

    def make(email: str = "verified@example.com", **extra: Any) -> User:
        user = User.objects.create_user(email, PASSWORD, **extra)
        EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
        return user

    return make


@pytest.fixture
def signed_in(client: Client, verified_user: Callable[..., User]) -> Client:
    """A client signed in through the login form, so allauth counts it as freshly authenticated
    (activating two-factor authentication asks for that)."""
    user = verified_user()
    response = client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD})
    assert response.status_code == 302
    return client


def sign_up(client: Client, email: str) -> Any:
    return client.post(
        reverse("account_signup"), {"email": email, "password1": PASSWORD, "password2": PASSWORD}
    )


def link_in(message: EmailMessage, pattern: re.Pattern[str]) -> str:
    match = pattern.search(str(message.body))
    assert match, f"no link in the email:\n{message.body}"
    return match.group(1)


def is_signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


class _PageParser(HTMLParser):
    """The bits of a page these tests look at: h1s, labels, form controls and links."""

    def __init__(self) -> None:
        super().__init__()
        self.h1_count = 0
        self.label_for: set[str] = set()
        self.controls: list[dict[str, str | None]] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "h1":
            self.h1_count += 1
        elif tag == "label" and attributes.get("for"):
            self.label_for.add(str(attributes["for"]))
        elif tag in ("input", "select", "textarea"):
            self.controls.append(attributes)
        elif tag == "a" and attributes.get("href"):
            self.hrefs.append(str(attributes["href"]))


def parse(html: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(html)
    return parser


def assert_is_our_page(html: str) -> None:
    """Our base layout around allauth's content, one h1, and a label for every field."""
    assert BRAND in html, "our site header is missing"
    assert '<main id="content">' in html
    assert "/static/css/app.css" in html
    assert "Menu:" not in html, "allauth's own layout leaked through"
    page = parse(html)
    assert page.h1_count == 1
    for control in page.controls:
        if control.get("type") in ("hidden", "submit", "button"):
            continue
        assert control.get("id") in page.label_for, f"no visible label for {control}"


# --- Sign up and verify -----------------------------------------------------------------------


def test_signing_up_sends_a_link_that_verifies_the_address_and_signs_the_customer_in(
    client: Client, db: None, mailoutbox: list[EmailMessage]
) -> None:
    response = sign_up(client, "new@example.com")

    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    assert not is_signed_in(client)
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == ["new@example.com"]
    assert message.subject.startswith("[Seedream API] ")
    link = link_in(message, CONFIRM_LINK)

    # Opening the link only asks; following a link (a mail scanner) must not verify anything.
    page = client.get(link)
    assert page.status_code == 200
    html = page.content.decode()
    assert_is_our_page(html)
    # (On failure, the page's main part: a confirmation refused says why there.)
    assert f'action="{link}"' in html, html[html.find("<main") :][:3000]
    assert re.search(r'<button class="button primary" type="submit">\s*Confirm\s*</button>', html)
    address = EmailAddress.objects.get(email="new@example.com")
    assert not address.verified

    confirmed = client.post(link)

    assert confirmed.status_code == 302
    assert confirmed["Location"] == reverse("dashboard:overview")
    address.refresh_from_db()
    assert address.verified
    assert is_signed_in(client)
    dashboard = client.get(reverse("dashboard:overview"))
    assert dashboard.status_code == 200
    assert "Signed in as new@example.com" in dashboard.content.decode()


def test_the_verification_sent_page_is_ours(
    client: Client, db: None, mailoutbox: list[EmailMessage]
) -> None:
    sign_up(client, "new@example.com")

    page = client.get(reverse("account_email_verification_sent"))

    assert page.status_code == 200
    html = page.content.decode()
    assert_is_our_page(html)
    assert "Verify your email address" in html


def test_signing_in_before_verifying_leads_to_the_verification_page_not_the_dashboard(
    client: Client, db: None, mailoutbox: list[EmailMessage]
) -> None:
    sign_up(client, "unverified@example.com")

    response = client.post(
        reverse("account_login"), {"login": "unverified@example.com", "password": PASSWORD}
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    assert not is_signed_in(client)
    dashboard = client.get(reverse("dashboard:overview"))
    assert dashboard.status_code == 302
    assert dashboard["Location"].startswith(reverse("account_login"))


def test_a_link_with_a_wrong_key_says_so_on_our_page(client: Client, db: None) -> None:
    page = client.get(reverse("account_confirm_email", args=["not-a-key"]))

    assert page.status_code == 200
    html = page.content.decode()
    assert_is_our_page(html)
    assert "expired or is invalid" in html


# --- Sign in ------------------------------------------------------------------------------------


def test_a_verified_customer_signs_in_and_lands_on_the_dashboard(
    client: Client, verified_user: Callable[..., User]
) -> None:
    verified_user("me@example.com")

    response = client.post(
        reverse("account_login"), {"login": "me@example.com", "password": PASSWORD}, follow=True
    )

    assert response.redirect_chain[-1][0] == reverse("dashboard:overview")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Signed in as me@example.com" in html
    # allauth's "Successfully signed in" message is shown by our dashboard.
    assert 'class="alert success"' in html


def test_a_wrong_password_is_refused_with_a_visible_error(
    client: Client, verified_user: Callable[..., User]
) -> None:
    verified_user("me@example.com")

    response = client.post(
        reverse("account_login"), {"login": "me@example.com", "password": "not my password"}
    )

    assert response.status_code == 200
    assert not is_signed_in(client)
    html = response.content.decode()
    assert_is_our_page(html)
    assert re.search(
        r'<div class="alert error" role="alert"><p>The email address and/or password you '
        r"specified are not correct.</p></div>",
        html,
    )
    # The address typed stays in the field; the password does not.
    assert 'value="me@example.com"' in html
    assert "not my password" not in html


def test_an_inactive_customer_cannot_sign_in(
    client: Client, verified_user: Callable[..., User]
) -> None:
    verified_user("gone@example.com", is_active=False)

    response = client.post(
        reverse("account_login"), {"login": "gone@example.com", "password": PASSWORD}
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("account_inactive")
    assert not is_signed_in(client)
    page = client.get(response["Location"])
    assert_is_our_page(page.content.decode())
    assert "This account is inactive." in page.content.decode()
    assert client.get(reverse("dashboard:overview")).status_code == 302


@pytest.mark.parametrize("path", ["/dashboard/", "/dashboard/keys/"])
def test_an_anonymous_visitor_is_sent_to_sign_in_and_back(
    client: Client, db: None, path: str
) -> None:
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_the_login_page_links_to_sign_up_and_password_reset_and_sign_up_links_back(
    client: Client, db: None
) -> None:
    login = parse(client.get(reverse("account_login")).content.decode())
    signup = parse(client.get(reverse("account_signup")).content.decode())

    assert reverse("account_signup") in login.hrefs
    assert reverse("account_reset_password") in login.hrefs
    assert reverse("account_login") in signup.hrefs


# --- Password reset -----------------------------------------------------------------------------


def test_a_password_reset_sends_a_link_that_sets_a_new_password(
    client: Client, verified_user: Callable[..., User], mailoutbox: list[EmailMessage]
) -> None:
    verified_user("me@example.com")

    response = client.post(reverse("account_reset_password"), {"email": "me@example.com"})

    assert response.status_code == 302
    assert response["Location"] == reverse("account_reset_password_done")
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["me@example.com"]
    link = link_in(mailoutbox[0], RESET_LINK)

    # allauth swaps the key in the link for a session-bound "set-password" page.
    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200
    set_password_url = form_page.redirect_chain[-1][0]
    assert set_password_url.endswith("-set-password/")
    assert_is_our_page(form_page.content.decode())
    new_password = "a brand new passphrase 9"
    done = client.post(set_password_url, {"password1": new_password, "password2": new_password})
    assert done.status_code == 302
    assert done["Location"] == reverse("account_reset_password_from_key_done")

    signed_in = client.post(
        reverse("account_login"), {"login": "me@example.com", "password": new_password}
    )
    assert signed_in.status_code == 302
    assert signed_in["Location"] == reverse("dashboard:overview")


def test_a_password_reset_for_an_unknown_address_reveals_nothing(
    client: Client, db: None, mailoutbox: list[EmailMessage]
) -> None:
    response = client.post(reverse("account_reset_password"), {"email": "nobody@example.com"})

    # Same answer as for a customer; allauth mails the address to say it has no account.
    assert response.status_code == 302
    assert response["Location"] == reverse("account_reset_password_done")
    assert all("password/reset/key" not in str(m.body) for m in mailoutbox)


# --- Two-factor authentication ------------------------------------------------------------------


def test_the_two_factor_page_renders_for_a_signed_in_customer(signed_in: Client) -> None:
    page = signed_in.get("/accounts/2fa/")

    assert page.status_code == 200
    html = page.content.decode()
    assert_is_our_page(html)
    assert "Authenticator app" in html
    assert "Recovery codes" in html
    assert re.search(r'href="/accounts/2fa/"\s+aria-current="page"', html)


def test_activating_the_authenticator_app_asks_for_the_password_again_then_shows_the_qr_code(
    signed_in: Client,
) -> None:
    activate = reverse("mfa_activate_totp")

    asked = signed_in.get(activate)

    assert asked.status_code == 302
    assert asked["Location"].startswith(reverse("account_reauthenticate"))
    reauthenticate_page = signed_in.get(asked["Location"])
    assert reauthenticate_page.status_code == 200
    assert_is_our_page(reauthenticate_page.content.decode())

    confirmed = signed_in.post(asked["Location"], {"password": PASSWORD})

    assert confirmed.status_code == 302
    assert confirmed["Location"] == activate
    page = signed_in.get(activate)
    assert page.status_code == 200
    html = page.content.decode()
    assert_is_our_page(html)
    assert 'class="qr"' in html
    assert '<label for="authenticator_secret">' in html
    assert '<label for="id_code">' in html
    assert re.search(r'<button class="button primary" type="submit">\s*Activate\s*</button>', html)


# --- Every allauth page is ours -----------------------------------------------------------------

ANONYMOUS_PAGES = [
    "account_login",
    "account_signup",
    "account_reset_password",
    "account_reset_password_done",
    "account_inactive",
]
SIGNED_IN_PAGES = [
    "account_email",
    "account_change_password",
    "account_logout",
    "account_reauthenticate",
    "mfa_index",
    "socialaccount_connections",
]


@pytest.mark.parametrize("name", ANONYMOUS_PAGES)
def test_allauth_pages_for_visitors_use_our_layout(client: Client, db: None, name: str) -> None:
    page = client.get(reverse(name))

    assert page.status_code == 200
    html = page.content.decode()
    assert_is_our_page(html)
    assert 'class="entrance-title"' in html
    assert re.search(r"<title>[^<]+ · Seedream API</title>", html)


@pytest.mark.parametrize("name", SIGNED_IN_PAGES)
def test_allauth_pages_for_customers_use_our_layout(signed_in: Client, name: str) -> None:
    page = signed_in.get(reverse(name))

    assert page.status_code == 200
    html = page.content.decode()
    assert_is_our_page(html)
    assert re.search(r"<title>[^<]+ · Seedream API</title>", html)
    # The header offers to sign out; no sign-in link for someone signed in.
    assert re.search(r">\s*Sign out\s*</button>", html)
    assert 'href="/accounts/login/"' not in html


@pytest.mark.parametrize("name", ["account_email", "account_change_password", "mfa_index"])
def test_account_pages_carry_the_dashboard_navigation(signed_in: Client, name: str) -> None:
    html = signed_in.get(reverse(name)).content.decode()

    assert '<nav class="side-nav" aria-label="Dashboard">' in html
    assert re.search(rf'href="{reverse(name)}"\s+aria-current="page"', html)
