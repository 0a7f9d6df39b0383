"""The Content-Security-Policy in a real Chromium: it is enforced (an injected inline script does
not run, and the harness sees the violation), and the main pages break none of it on a desktop
and on a phone. Every browser test checks for violations the same way (``console_errors``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from allauth.mfa.models import Authenticator
from playwright.sync_api import Page, ViewportSize

from accounts.models import User
from generation.models import ModelOverride
from tests.browser.support import (
    DESKTOP,
    PHONE,
    give_credits,
    load,
    settle,
    sign_in_as,
    verified_customer,
)
from tests.browser.test_accessibility import gallery_image
from tests.browser.test_webhooks import webhook_history

pytestmark = pytest.mark.usefixtures("default_prices")


def test_an_injected_inline_script_is_refused_and_reported(
    live_server: Any, page: Page, console_errors: list[str]
) -> None:
    load(page, f"{live_server.url}/", console_errors)

    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.injected = true";
          document.body.append(script);
        }"""
    )

    refused = "CSP: script-src-elem refused inline"
    for _ in range(50):  # the report crosses from the page to the test on its own time
        if any(error.startswith(refused) for error in console_errors):
            break
        page.wait_for_timeout(100)
    assert any(error.startswith(refused) for error in console_errors), console_errors
    assert page.evaluate("window.injected") is None


def walk(
    page: Page,
    base_url: str,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
    viewport: ViewportSize,
    pages: list[tuple[str, str]],
) -> None:
    phone = viewport is PHONE
    page.set_viewport_size(viewport)
    for name, path in pages:
        console_errors.clear()
        response = page.goto(base_url + path, wait_until="load")
        assert response is not None and response.status == 200, f"{path}: {response}"
        assert "default-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_load_state("networkidle")
        # Django's admin names no icon, so Chromium asks for /favicon.ico: not ours to judge.
        console_errors[:] = [e for e in console_errors if not e.endswith("/favicon.ico)")]
        settle(page, console_errors, phone=phone)
        screenshot(page, f"csp-{name}-{'phone' if phone else 'desktop'}")


@pytest.mark.parametrize(
    "viewport", [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]
)
def test_the_main_pages_break_no_rule_of_the_policy(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
    viewport: ViewportSize,
) -> None:
    walk(page, live_server.url, console_errors, screenshot, viewport, [
        ("home", "/"),
        ("docs", "/docs/"),
        ("api-reference", "/docs/api/"),
        ("sign-in", "/accounts/login/"),
    ])  # fmt: skip

    customer = verified_customer("policy@example.com")
    give_credits(customer)
    image = gallery_image(customer)
    endpoint = webhook_history(customer)
    sign_in_as(page, live_server.url, customer)
    walk(page, live_server.url, console_errors, screenshot, viewport, [
        ("overview", "/dashboard/"),
        ("keys", "/dashboard/keys/"),
        ("webhooks", "/dashboard/webhooks/"),
        ("webhook-endpoint", f"/dashboard/webhooks/{endpoint.pk}/"),
        ("webhook-rotate", f"/dashboard/webhooks/{endpoint.pk}/rotate"),
        ("playground", "/dashboard/playground/"),
        ("gallery", "/dashboard/gallery/"),
        ("image", f"/dashboard/gallery/{image.token}/"),
        ("billing", "/dashboard/billing/"),
        ("limits", "/dashboard/limits/"),
        ("account", "/dashboard/account/"),
    ])  # fmt: skip

    # The admin wants staff with a second factor.
    operator = User.objects.create_user("ops@example.com", "pw", is_staff=True, is_superuser=True)
    Authenticator.objects.create(
        user=operator, type=Authenticator.Type.TOTP, data={"secret": "test-not-used"}
    )
    sign_in_as(page, live_server.url, operator)
    override = ModelOverride.objects.create(
        model="seedream-4-5", status="deprecated", sunset=date(2099, 1, 1),
        replacement="seedream-5-5", note="moving customers to 5.5",
    )  # fmt: skip
    walk(page, live_server.url, console_errors, screenshot, viewport, [
        ("admin", "/admin/"),
        ("admin-accounts", "/admin/billing/creditaccount/"),
        ("admin-catalog-overrides", "/admin/generation/modeloverride/"),
        ("admin-catalog-override", f"/admin/generation/modeloverride/{override.pk}/change/"),
    ])  # fmt: skip
