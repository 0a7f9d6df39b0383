"""A new customer's first steps and the polish around them, in a real Chromium on a desktop and
on a phone: the overview's checklist, a key made once whatever reload, back and double-click do,
the 404 and 500 pages, allauth's pages in sentence case, the branded email and the admin.

Every page here is screenshotted (test-artifacts/screenshots/) and checked by axe.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from allauth.mfa.models import Authenticator
from django.core.cache import cache
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.test import Client
from playwright.sync_api import Browser, Page, ViewportSize, expect

from accounts.models import User
from keys import services as keys
from keys.models import ApiKey
from tests.browser.support import (
    DESKTOP,
    PASSWORD,
    PHONE,
    axe_violations,
    give_credits,
    load,
    settle,
    sign_in_as,
    verified_customer,
)
from tests.browser.test_accessibility import usage_history

pytestmark = pytest.mark.usefixtures("default_prices")

VIEWPORTS = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]
Shot = Callable[[Page, str], Path]
KEY_RE = re.compile(r"sk-seedream-[0-9a-f]{16}_[A-Za-z0-9]{43}")


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()


def suffix(viewport: ViewportSize) -> str:
    return "phone" if viewport is PHONE else "desktop"


def assert_axe_clean(page: Page, name: str) -> None:
    found = axe_violations(page, name)
    assert not found, "\n".join(found)


# - The first-run checklist ----------------------------------------------------------------------


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_checklist_ticks_each_step_and_goes_when_all_are_done(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Shot,
    settings: Any,
    viewport: ViewportSize,
) -> None:
    settings.SUPPORT_EMAIL = "credits@operator.example"
    customer = verified_customer(f"first-steps-{suffix(viewport)}@example.com")
    sign_in_as(page, live_server.url, customer)
    page.set_viewport_size(viewport)
    phone = viewport is PHONE

    load(page, f"{live_server.url}/dashboard/", console_errors, phone=phone)
    checklist = page.get_by_role("region", name="Get started")
    expect(checklist).to_contain_text("0 of 3 done")
    expect(checklist.get_by_role("link", name="credits@operator.example")).to_have_attribute(
        "href", "mailto:credits@operator.example?subject=Credits"
    )
    expect(checklist.get_by_role("link", name="Buy credits")).to_have_count(0)
    assert_axe_clean(page, "overview with the checklist")
    screenshot(page, f"overview-checklist-new-{suffix(viewport)}")

    give_credits(customer)
    keys.create_key(customer.personal_account, "laptop")
    page.reload()
    settle(page, console_errors, phone=phone)
    expect(checklist).to_contain_text("2 of 3 done")
    expect(checklist.locator("li.done")).to_have_count(2)
    expect(checklist.get_by_role("link", name="Open the playground")).to_be_visible()
    screenshot(page, f"overview-checklist-two-done-{suffix(viewport)}")

    usage_history(customer, ApiKey.objects.get(user=customer))
    page.reload()
    settle(page, console_errors, phone=phone)
    expect(page.get_by_role("region", name="Get started")).to_have_count(0)
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    screenshot(page, f"overview-checklist-done-{suffix(viewport)}")


# - Keys: one per intended creation, the secret shown once ---------------------------------------


def key_count(user: User) -> int:
    return ApiKey.objects.filter(user=user).count()


def open_dialog_secret(page: Page) -> str:
    dialog = page.locator("dialog#new-key")
    expect(dialog).to_be_visible()
    expect(page.locator("dialog")).to_have_count(1)
    return page.locator("#new-key-value").input_value()


def test_reload_back_and_double_click_never_make_a_second_key(
    live_server: Any, page: Page, console_errors: list[str], screenshot: Shot
) -> None:
    customer = verified_customer("careful@example.com")
    sign_in_as(page, live_server.url, customer)
    page.set_viewport_size(DESKTOP)
    load(page, f"{live_server.url}/dashboard/keys/", console_errors)
    create = page.get_by_role("region", name="Create a key")

    create.get_by_label("Name").fill("laptop")
    with page.expect_navigation(url=f"{live_server.url}/dashboard/keys/"):
        create.get_by_role("button", name="Create key").click()
    settle(page, console_errors)
    secret = open_dialog_secret(page)
    assert keys.authenticate(secret).name == "laptop"
    assert key_count(customer) == 1
    screenshot(page, "keys-new-key-dialog-desktop")

    # Reload: the page is a GET now; no second key, and the secret is gone for good.
    page.reload()
    settle(page, console_errors)
    expect(page.locator("dialog#new-key")).to_have_count(0)
    assert secret not in page.content()
    assert not KEY_RE.search(page.content())
    assert key_count(customer) == 1
    screenshot(page, "keys-after-reload-desktop")

    # Back to the form and forward again: nothing is sent again, nothing shown again.
    page.go_back()
    settle(page, console_errors)
    expect(page.locator("dialog#new-key")).to_have_count(0)
    page.go_forward()
    settle(page, console_errors)
    expect(page.locator("dialog#new-key")).to_have_count(0)
    assert key_count(customer) == 1

    # A double click on "Create key": one key, one dialog, its secret the one that works.
    create.get_by_label("Name").fill("ci runner")
    with page.expect_navigation(url=f"{live_server.url}/dashboard/keys/"):
        create.get_by_role("button", name="Create key").dblclick()
    settle(page, console_errors)
    second = open_dialog_secret(page)
    expect(page.get_by_role("heading", level=2, name="Your new key “ci runner”")).to_be_visible()
    assert keys.authenticate(second).name == "ci runner"
    assert key_count(customer) == 2
    screenshot(page, "keys-after-double-click-desktop")

    page.get_by_role("button", name="I have stored it").click()
    expect(page.locator("dialog#new-key")).to_be_hidden()
    screenshot(page, "keys-list-desktop")


def test_without_javascript_a_double_click_still_makes_one_key(
    live_server: Any, browser: Browser, screenshot: Shot
) -> None:
    """The server's guard alone: no script stops the second request, so both reach it."""
    customer = verified_customer("no-script@example.com")
    context = browser.new_context(java_script_enabled=False, viewport=PHONE)
    try:
        page = context.new_page()
        sign_in_as(page, live_server.url, customer)
        page.goto(f"{live_server.url}/dashboard/keys/")
        create = page.get_by_role("region", name="Create a key")
        create.get_by_label("Name").fill("twice")
        create.get_by_role("button", name="Create key").dblclick()
        page.wait_for_load_state("load")
        expect(page.locator("dialog#new-key")).to_be_visible()
        secret = page.locator("#new-key-value").input_value()
        assert keys.authenticate(secret).name == "twice"
        assert key_count(customer) == 1
        screenshot(page, "keys-new-key-dialog-no-script-phone")
        page.reload()
        expect(page.locator("dialog#new-key")).to_have_count(0)
        assert key_count(customer) == 1
    finally:
        context.close()


def test_rotating_twice_from_one_confirmation_rotates_once_on_a_phone(
    live_server: Any, page: Page, console_errors: list[str], screenshot: Shot
) -> None:
    customer = verified_customer("rotate-once@example.com")
    issued = keys.create_key(customer.personal_account, "server")
    sign_in_as(page, live_server.url, customer)
    page.set_viewport_size(PHONE)
    load(page, f"{live_server.url}/dashboard/keys/{issued.api_key.pk}/rotate", console_errors)

    page.get_by_role("button", name="Rotate key").dblclick()
    page.wait_for_url(f"{live_server.url}/dashboard/keys/")
    settle(page, console_errors, phone=True)
    secret = open_dialog_secret(page)
    assert keys.authenticate(secret).pk == issued.api_key.pk
    screenshot(page, "keys-rotated-dialog-phone")
    # Back to the confirmation and sent again: the shown secret keeps working.
    page.go_back()
    settle(page, console_errors, phone=True)
    assert keys.authenticate(secret).pk == issued.api_key.pk


# - Error pages ----------------------------------------------------------------------------------


def without_the_status(console_errors: list[str], status: int, url: str) -> list[str]:
    """The page's own status is what the test asked for (reported as a failed response and as a
    console line naming the page); anything else, a stylesheet or script included, still counts."""
    return [
        e
        for e in console_errors
        if e != f"HTTP {status}: {url}"
        and not (e.startswith("console: Failed to load resource") and e.endswith(f"({url})"))
    ]


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_404_and_500_pages_are_in_the_sites_layout(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Shot,
    settings: Any,
    viewport: ViewportSize,
) -> None:
    settings.SUPPORT_EMAIL = "help@operator.example"
    page.set_viewport_size(viewport)

    missing = f"{live_server.url}/dashboard/no-such-page/"
    response = page.goto(missing)
    assert response is not None and response.status == 404
    page.wait_for_load_state("networkidle")
    assert without_the_status(console_errors, 404, missing) == []
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    expect(page.locator(".site-header .brand")).to_be_visible()
    expect(page.get_by_role("link", name="Go to the home page")).to_be_visible()
    assert_axe_clean(page, "404 page")
    screenshot(page, f"error-404-{suffix(viewport)}")

    settings.ROOT_URLCONF = "tests.support.failing_urls"
    console_errors.clear()
    failing = f"{live_server.url}/dashboard/explode/"
    response = page.goto(failing)
    assert response is not None and response.status == 500
    page.wait_for_load_state("networkidle")
    assert without_the_status(console_errors, 500, failing) == []
    expect(page.get_by_role("heading", level=1)).to_have_text("Something went wrong on our side")
    expect(page.get_by_role("link", name="help@operator.example", exact=True)).to_be_visible()
    assert_axe_clean(page, "500 page")
    screenshot(page, f"error-500-{suffix(viewport)}")

    api = page.request.get(f"{live_server.url}/v1/explode")
    assert api.status == 500 and api.json()["error"]["type"] == "server_error"


# - allauth's pages in sentence case, the email, the admin ----------------------------------------


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_sign_in_and_sign_up_pages_are_in_sentence_case(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Shot,
    viewport: ViewportSize,
) -> None:
    page.set_viewport_size(viewport)
    phone = viewport is PHONE
    for name, path, heading, button in [
        ("login", "/accounts/login/", "Sign in", "Sign in"),
        ("signup", "/accounts/signup/", "Sign up", "Sign up"),
        ("password-reset", "/accounts/password/reset/", "Password reset", "Reset my password"),
    ]:
        load(page, live_server.url + path, console_errors, phone=phone)
        expect(page).to_have_title(f"{heading} · Seedream API")
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        main = page.locator("main")
        expect(main.get_by_role("button", name=button, exact=True)).to_be_visible()
        assert_axe_clean(page, name)
        screenshot(page, f"sentence-case-{name}-{suffix(viewport)}")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_confirmation_email_looks_like_the_site(
    live_server: Any,
    page: Page,
    screenshot: Shot,
    mailoutbox: list[EmailMessage],
    settings: Any,
    viewport: ViewportSize,
) -> None:
    settings.SUPPORT_EMAIL = "help@operator.example"
    Client().post(
        "/accounts/signup/",
        {"email": "mail-look@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    (message,) = mailoutbox
    assert isinstance(message, EmailMultiAlternatives)
    html = str(message.alternatives[0][0])

    page.set_viewport_size(viewport)
    page.set_content(html)
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your email address")
    expect(page.get_by_role("link", name="Confirm my address")).to_be_visible()
    screenshot(page, f"email-confirmation-{suffix(viewport)}")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_admin_index_reads_well(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Shot,
    viewport: ViewportSize,
) -> None:
    operator = User.objects.create_user(
        "ops@example.com", PASSWORD, is_staff=True, is_superuser=True
    )
    Authenticator.objects.create(
        user=operator, type=Authenticator.Type.TOTP, data={"secret": "test-not-used"}
    )
    sign_in_as(page, live_server.url, operator)
    page.set_viewport_size(viewport)

    page.goto(f"{live_server.url}/admin/")
    page.wait_for_load_state("networkidle")
    # Django's admin names no icon, so Chromium asks for /favicon.ico: not ours to judge.
    assert [e for e in console_errors if "/favicon.ico" not in e] == []
    expect(page).to_have_title("Administration | Seedream API admin")
    expect(page.locator("#site-name")).to_have_text("Seedream API administration")
    captions = page.locator("caption a.section").all_inner_texts()
    assert len(captions) == len(set(captions)), captions
    assert "ACCOUNTS" not in [c.upper() for c in captions if c.upper() != "SOCIAL ACCOUNTS"]
    screenshot(page, f"admin-index-{suffix(viewport)}")
