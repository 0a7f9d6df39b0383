"""A customer's first visit in a real browser: sign up, verify, make a key, use it, revoke it.

The pages come from ``live_server`` (a thread of this process, so the locmem outbox it writes to
is this test's ``mailoutbox``); the key is used against ``live_api``, the product under uvicorn in
its own process on the same test database, exactly as a customer's program would call it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.core.mail import EmailMessage
from playwright.sync_api import Locator, Page, expect

from accounts.models import User
from tests.browser.support import (
    DESKTOP,
    PASSWORD,
    PHONE,
    fill_sign_in,
    generate,
    give_credits,
    load,
    settle,
    verified_customer,
)

CONFIRM_PATH = re.compile(r"https?://[^/\s]+(/accounts/confirm-email/[^\s/]+/)")

# live_server flushes the tables after each test, the seeded prices too: seed them again.
pytestmark = pytest.mark.usefixtures("default_prices")


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    # allauth counts sign-ups and logins per IP in the cache, which outlives a test.
    cache.clear()


def create_key(page: Page, name: str) -> str:
    """Create a key on the API keys page; the raw key, read from the dialog that shows it once."""
    create = page.get_by_role("region", name="Create a key")
    create.get_by_label("Name").fill(name)
    create.get_by_role("button", name="Create key").click()
    dialog = page.locator("dialog#new-key")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading", level=2)).to_have_text(f"Your new key “{name}”")
    raw_key = page.locator("#new-key-value").input_value()
    assert raw_key.startswith("sk-seedream-")
    return raw_key


def key_row(page: Page, name: str) -> Locator:
    return page.locator("table tbody tr").filter(
        has=page.get_by_role("cell", name=name, exact=True)
    )


def test_a_customer_signs_up_verifies_makes_a_key_uses_it_and_revokes_it(
    live_server: Any,
    live_api: str,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
    mailoutbox: list[EmailMessage],
) -> None:
    email = "first.customer@example.com"
    page.set_viewport_size(DESKTOP)

    # Sign in page → sign up.
    load(page, f"{live_server.url}/accounts/login/", console_errors)
    expect(page).to_have_title("Sign in · Seedream API")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    main = page.locator("main")
    expect(main.get_by_role("link", name="Forgot your password?")).to_be_visible()
    screenshot(page, "login")
    # The first Tab shows the skip link; a focused field has a visible ring.
    page.keyboard.press("Tab")
    skip_link = page.get_by_role("link", name="Skip to content")
    expect(skip_link).to_be_focused()
    box = skip_link.bounding_box()
    assert box is not None and box["y"] >= 0, "the focused skip link is off screen"
    main.get_by_label("Email").focus()
    outline = main.get_by_label("Email").evaluate("e => getComputedStyle(e).outlineStyle")
    assert outline == "solid"
    screenshot(page, "login-focus")
    main.get_by_role("link", name="sign up").click()
    settle(page, console_errors)
    expect(page).to_have_url(f"{live_server.url}/accounts/signup/")
    expect(main.get_by_role("link", name="sign in")).to_be_visible()
    screenshot(page, "signup")

    main.get_by_label("Email").fill(email)
    main.get_by_label("Password", exact=True).fill(PASSWORD)
    main.get_by_label("Password (again)").fill(PASSWORD)
    main.get_by_role("button", name="Sign up").click()
    settle(page, console_errors)

    # Verification sent: nothing is reachable until the address is confirmed.
    expect(page).to_have_url(f"{live_server.url}/accounts/confirm-email/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Verify your email address")
    expect(page.get_by_role("status")).to_contain_text(f"Confirmation email sent to {email}")
    screenshot(page, "verification-sent")
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [email]
    match = CONFIRM_PATH.search(str(mailoutbox[0].body))
    assert match, mailoutbox[0].body

    load(page, live_server.url + match.group(1), console_errors)
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm email address")
    main.get_by_role("button", name="Confirm").click()
    settle(page, console_errors)

    # Signed in, on the dashboard.
    expect(page).to_have_url(f"{live_server.url}/dashboard/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    expect(main).to_contain_text(f"Signed in as {email}")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    screenshot(page, "dashboard-overview")

    side_nav = page.get_by_role("navigation", name="Dashboard")
    side_nav.get_by_role("link", name="API keys").click()
    settle(page, console_errors)
    expect(page).to_have_url(f"{live_server.url}/dashboard/keys/")
    expect(side_nav.get_by_role("link", name="API keys")).to_have_attribute("aria-current", "page")
    expect(main.get_by_text("You have no keys yet.")).to_be_visible()

    raw_key = create_key(page, "laptop")
    settle(page, console_errors)
    screenshot(page, "api-keys-new-key-dialog")

    user = User.objects.get(email=email)
    give_credits(user)
    first = generate(live_api, raw_key)
    assert first.status_code == 200, first.text
    assert len(first.json()["data"]) == 1

    page.get_by_role("button", name="I have stored it").click()
    expect(page.locator("dialog#new-key")).to_be_hidden()
    row = key_row(page, "laptop")
    expect(row.locator(".badge")).to_have_text("active")

    # Revoke, from the row's actions menu, through the confirmation page.
    row.get_by_text("Actions", exact=True).click()
    row.get_by_role("link", name="Revoke").click()
    settle(page, console_errors)
    expect(page.get_by_role("heading", level=1)).to_have_text("Revoke “laptop”?")
    screenshot(page, "revoke-confirmation")
    page.get_by_role("button", name="Revoke key").click()
    settle(page, console_errors)

    expect(page).to_have_url(f"{live_server.url}/dashboard/keys/")
    expect(page.get_by_role("status")).to_contain_text("The key “laptop” is revoked.")
    expect(key_row(page, "laptop").locator(".badge")).to_have_text("revoked")
    expect(key_row(page, "laptop").get_by_role("link")).to_have_count(0)

    refused = generate(live_api, raw_key)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"]


def test_rotating_a_key_shows_a_new_one_and_the_old_one_stops_working_on_a_phone(
    live_server: Any,
    live_api: str,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
) -> None:
    email = "rotator@example.com"
    user = verified_customer(email)
    give_credits(user)
    page.set_viewport_size(PHONE)

    load(page, f"{live_server.url}/dashboard/keys/", console_errors, phone=True)
    # Sent to sign in first, and back to the keys afterwards.
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/dashboard/keys/")
    fill_sign_in(page, email)
    settle(page, console_errors, phone=True)
    expect(page).to_have_url(f"{live_server.url}/dashboard/keys/")

    old_key = create_key(page, "ci runner")
    settle(page, console_errors, phone=True)
    screenshot(page, "api-keys-phone-new-key-dialog")
    page.get_by_role("button", name="I have stored it").click()
    assert generate(live_api, old_key).status_code == 200
    load(page, f"{live_server.url}/dashboard/keys/", console_errors, phone=True)
    screenshot(page, "api-keys-phone")

    key_row(page, "ci runner").get_by_text("Actions", exact=True).click()
    key_row(page, "ci runner").get_by_role("link", name="Rotate").click()
    settle(page, console_errors, phone=True)
    expect(page.get_by_role("heading", level=1)).to_have_text("Rotate “ci runner”?")
    page.get_by_role("button", name="Rotate key").click()
    settle(page, console_errors, phone=True)

    dialog = page.locator("dialog#new-key")
    expect(dialog).to_be_visible()
    new_key = page.locator("#new-key-value").input_value()
    assert new_key.startswith("sk-seedream-")
    assert new_key != old_key
    screenshot(page, "rotate-new-key-phone")

    assert generate(live_api, old_key).status_code == 401
    renewed = generate(live_api, new_key)
    assert renewed.status_code == 200, renewed.text


def test_the_account_pages_are_ours_on_a_desktop_and_on_a_phone(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
) -> None:
    email = "settings@example.com"
    verified_customer(email)
    page.set_viewport_size(DESKTOP)
    load(page, f"{live_server.url}/accounts/login/", console_errors)
    fill_sign_in(page, email)
    settle(page, console_errors)

    pages = {
        "account-email": ("/accounts/email/", "Email addresses"),
        "account-password": ("/accounts/password/change/", "Change password"),
        "account-2fa": ("/accounts/2fa/", "Two-factor authentication"),
    }
    for viewport, suffix in ((DESKTOP, ""), (PHONE, "-phone")):
        page.set_viewport_size(viewport)
        for name, (path, heading) in pages.items():
            load(page, live_server.url + path, console_errors, phone=viewport is PHONE)
            expect(page.get_by_role("heading", level=1)).to_have_text(heading)
            nav = page.get_by_role("navigation", name="Dashboard")
            expect(nav.locator('[aria-current="page"]')).to_have_attribute("href", path)
            screenshot(page, name + suffix)

    # Activating the authenticator app asks for the password again, then shows the QR code.
    page.set_viewport_size(DESKTOP)
    load(page, f"{live_server.url}/accounts/2fa/", console_errors)
    page.get_by_role("link", name="Activate").click()
    settle(page, console_errors)
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm access")
    screenshot(page, "account-reauthenticate")
    main = page.locator("main")
    main.get_by_label("Password").fill(PASSWORD)
    main.get_by_role("button", name="Confirm").click()
    settle(page, console_errors)
    expect(page.get_by_role("heading", level=1)).to_have_text("Activate authenticator app")
    expect(main.locator("img.qr")).to_be_visible()
    expect(main.get_by_label("Authenticator secret")).to_be_disabled()
    main.get_by_label("Authenticator code").fill("000000")
    main.get_by_role("button", name="Activate").click()
    settle(page, console_errors)
    expect(main.locator(".field.has-error .error")).to_have_text("Incorrect code.")
    screenshot(page, "account-totp-activate")
