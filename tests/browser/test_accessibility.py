"""Every page a visitor or a customer can reach, checked by axe-core in Chromium on a desktop and
on a phone, and the keyboard paths that axe cannot judge (the skip link, the new-key dialog).

A failure lists every violation of impact moderate or worse on every page of the walk, one line
each: the page, axe's rule id, the impact and the CSS selectors of the elements at fault.
"""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from allauth.account.forms import default_token_generator
from allauth.account.models import EmailAddress, EmailConfirmationHMAC
from allauth.account.utils import user_pk_to_url_str
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image as PILImage
from playwright.sync_api import Page, ViewportSize, expect

from accounts.models import User
from generation.models import Generation, Image, new_image_token
from keys import services as keys
from tests.browser.support import (
    DESKTOP,
    PASSWORD,
    PHONE,
    axe_violations,
    fill_sign_in,
    give_credits,
    load,
    settle,
    sign_in_as,
    verified_customer,
)

pytestmark = pytest.mark.usefixtures("default_prices")

VIEWPORTS = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    # allauth counts logins and password resets per IP in the cache, which outlives a test.
    cache.clear()


class Walk:
    """Visits pages one after another and collects axe's findings on each."""

    def __init__(self, page: Page, base_url: str, console_errors: list[str], viewport: Any):
        self.page = page
        self.base_url = base_url
        self.console_errors = console_errors
        self.phone = viewport is PHONE
        self.found: list[str] = []
        self.checked: list[str] = []
        page.set_viewport_size(viewport)

    def visit(self, name: str, path: str) -> None:
        self.console_errors.clear()
        load(self.page, self.base_url + path, self.console_errors)
        self.check(name)

    def check(self, name: str) -> None:
        """Check the page as it is now (after a click, a form, a dialog opening)."""
        settle(self.page, self.console_errors)
        self.checked.append(name)
        self.found.extend(axe_violations(self.page, name))
        if self.phone:
            # Reported with axe's findings rather than stopping the walk at the first page.
            width = self.page.evaluate("document.documentElement.scrollWidth")
            if width > PHONE["width"]:
                self.found.append(
                    f"{name} ({self.page.url}): the page is {width}px wide at "
                    f"{PHONE['width']}px and scrolls sideways"
                )

    def assert_clean(self) -> None:
        report = "\n".join(f"  - {line}" for line in self.found)
        assert not self.found, (
            f"axe found {len(self.found)} violation(s) on {len(self.checked)} pages:\n{report}"
        )


def unverified_customer(email: str) -> User:
    user = User.objects.create_user(email, PASSWORD)
    EmailAddress.objects.create(user=user, email=email, primary=True, verified=False)
    return user


def usage_history(user: User, api_key: Any) -> None:
    """A delivered request (one image of two) and a blocked one, as the usage page shows them."""
    now = timezone.now()
    common = {
        "account": user.personal_account, "user": user, "api_key": api_key,
        "model": "seedream-4-0",
        "upstream_model": "seedream-4-0-250828", "prompt": "a red fox in snow",
        "size": "2048x2048", "price_per_image_credits": 40, "created_at": now,
        "deadline_at": now, "finished_at": now,
    }  # fmt: skip
    Generation.objects.create(
        **common, n=2, status="succeeded", reserved_credits=80, charged_credits=40,
        images_delivered=1, http_status=200, latency_ms=5300, error_code="timeout",
        error_message="1 of 2 images were not delivered: The upstream timed out.",
    )  # fmt: skip
    Generation.objects.create(
        **common, n=1, status="failed", reserved_credits=40, charged_credits=0,
        images_delivered=0, http_status=400, latency_ms=800, error_code="content_policy_violation",
        error_message="Your prompt was rejected by the content safety system. Not charged.",
    )  # fmt: skip


def gallery_image(user: User) -> Image:
    """A finished playground generation with one stored image, for the playground and gallery."""
    now = timezone.now()
    generation = Generation.objects.create(account=user.personal_account, user=user,
        source="playground", model="seedream-4-0", upstream_model="u",
        prompt="a lighthouse at dusk", size="1K", n=2, status="succeeded",
        price_per_image_credits=40, reserved_credits=80, charged_credits=40,
        images_delivered=1, created_at=now, deadline_at=now, finished_at=now,
        error_message="1 of 2 images were not delivered.",
    )  # fmt: skip
    picture = io.BytesIO()
    PILImage.new("RGB", (64, 64), "teal").save(picture, "JPEG")
    token = new_image_token()
    name = default_storage.save(f"images/{token[:2]}/{token}.jpg", ContentFile(picture.getvalue()))
    return Image.objects.create(
        generation=generation, account=user.personal_account, token=token, index=0, file=name,
        width=64, height=64, bytes=len(picture.getvalue()), created_at=now,
    )  # fmt: skip


def current_totp(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_public_pages_pass_axe(
    live_server: Any, page: Page, console_errors: list[str], viewport: ViewportSize
) -> None:
    walk = Walk(page, live_server.url, console_errors, viewport)
    forgetful = verified_customer("forgetful@example.com")
    newcomer = unverified_customer("newcomer@example.com")
    reset_key = default_token_generator.make_token(forgetful)
    confirmation = EmailConfirmationHMAC(EmailAddress.objects.get(user=newcomer))

    walk.visit("home", "/")
    walk.visit("docs", "/docs/")
    walk.visit("sign in", "/accounts/login/")
    walk.visit("sign up", "/accounts/signup/")
    walk.visit("password reset", "/accounts/password/reset/")
    walk.visit("password reset sent", "/accounts/password/reset/done/")
    walk.visit(
        "new password from the reset link",
        f"/accounts/password/reset/key/{user_pk_to_url_str(forgetful)}-{reset_key}/",
    )
    walk.visit("a used or broken reset link", "/accounts/password/reset/key/1-broken/")
    walk.visit("verification sent", "/accounts/confirm-email/")
    walk.visit("confirm email", f"/accounts/confirm-email/{confirmation.key}/")

    # A form sent back with errors: the messages and invalid fields are checked too.
    page.goto(live_server.url + "/accounts/login/")
    page.locator("main").get_by_role("button", name="Sign in").click()
    walk.check("sign in, sent empty")
    page.goto(live_server.url + "/accounts/signup/")
    main = page.locator("main")
    main.get_by_label("Email").fill("not-an-email@example")
    main.get_by_label("Password", exact=True).fill("short")
    main.get_by_label("Password (again)").fill("other")
    main.get_by_role("button", name="Sign up").click()
    walk.check("sign up, with errors")

    walk.assert_clean()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_dashboard_pages_pass_axe(
    live_server: Any, page: Page, console_errors: list[str], viewport: ViewportSize
) -> None:
    customer = verified_customer("dashboard@example.com")
    give_credits(customer)
    issued = keys.create_key(customer.personal_account, "laptop")
    keys.create_key(customer.personal_account, "old ci")
    keys.revoke_key(keys.create_key(customer.personal_account, "retired").api_key)
    usage_history(customer, issued.api_key)
    sign_in_as(page, live_server.url, customer)
    walk = Walk(page, live_server.url, console_errors, viewport)

    walk.visit("API keys", "/dashboard/keys/")
    create = page.get_by_role("region", name="Create a key")
    create.get_by_label("Name").fill("new laptop")
    create.get_by_role("button", name="Create key").click()
    expect(page.locator("dialog#new-key")).to_be_visible()
    walk.check("API keys, the new key's dialog open")
    walk.visit("rotate a key", f"/dashboard/keys/{issued.api_key.pk}/rotate")
    walk.visit("revoke a key", f"/dashboard/keys/{issued.api_key.pk}/revoke")
    walk.visit("usage", "/dashboard/usage/")
    walk.visit("usage, nothing matches", "/dashboard/usage/?status=queued")
    walk.visit("home, signed in", "/")

    walk.assert_clean()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_other_dashboard_pages_pass_axe(
    live_server: Any, page: Page, console_errors: list[str], viewport: ViewportSize
) -> None:
    customer = verified_customer("overview@example.com")
    give_credits(customer)
    usage_history(customer, keys.create_key(customer.personal_account, "laptop").api_key)
    sign_in_as(page, live_server.url, customer)
    walk = Walk(page, live_server.url, console_errors, viewport)

    image = gallery_image(customer)
    walk.visit("overview", "/dashboard/")
    walk.visit("billing", "/dashboard/billing/")
    walk.visit("account settings", "/dashboard/account/")
    walk.visit("close account", "/dashboard/account/close/")
    walk.visit("playground", "/dashboard/playground/")
    walk.visit("playground, a model with extras", "/dashboard/playground/?model=seedream-3-0")
    walk.visit("gallery", "/dashboard/gallery/")
    walk.visit("gallery image", f"/dashboard/gallery/{image.token}/")
    walk.visit("delete image", f"/dashboard/gallery/{image.token}/delete/")
    walk.visit("request page", f"/dashboard/requests/{image.generation.public_id}/")
    failed = Generation.objects.get(user=customer, status="failed")
    walk.visit("request page, failed", f"/dashboard/requests/{failed.public_id}/")
    walk.visit("limits", "/dashboard/limits/")
    key = keys.create_key(customer.personal_account, "ci").api_key
    walk.visit("key limits", f"/dashboard/keys/{key.pk}/limits")

    walk.assert_clean()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_account_pages_pass_axe(
    live_server: Any, page: Page, console_errors: list[str], viewport: ViewportSize
) -> None:
    customer = verified_customer("careful@example.com")
    walk = Walk(page, live_server.url, console_errors, viewport)
    # Signed in through the form: allauth's two-factor pages want a recent sign-in.
    page.goto(live_server.url + "/accounts/login/")
    fill_sign_in(page, customer.email)
    settle(page, console_errors, phone=walk.phone)

    walk.visit("email addresses", "/accounts/email/")
    walk.visit("change password", "/accounts/password/change/")
    walk.visit("two-factor, off", "/accounts/2fa/")
    walk.visit("two-factor, set up an app", "/accounts/2fa/totp/activate/")
    walk.visit("connected accounts", "/accounts/3rdparty/")
    walk.visit("confirm it is you", "/accounts/reauthenticate/")

    secret = generate_totp_secret()
    TOTP.activate(customer, secret)
    RecoveryCodes.activate(customer)
    walk.visit("two-factor, on", "/accounts/2fa/")
    walk.visit("recovery codes", "/accounts/2fa/recovery-codes/")
    walk.visit("new recovery codes", "/accounts/2fa/recovery-codes/generate/")
    walk.visit("turn two-factor off", "/accounts/2fa/totp/deactivate/")
    walk.visit("sign out", "/accounts/logout/")

    # Signing in again now asks for the app's code.
    page.locator("main").get_by_role("button", name="Sign out").click()
    settle(page, console_errors, phone=walk.phone)
    page.goto(live_server.url + "/accounts/login/")
    fill_sign_in(page, customer.email)
    expect(page).to_have_url(f"{live_server.url}/accounts/2fa/authenticate/")
    walk.check("two-factor code at sign-in")
    page.locator("main").get_by_label("Code").fill(current_totp(secret))
    page.locator("main").get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{live_server.url}/dashboard/")

    walk.assert_clean()


# The keyboard: what axe cannot see.


@pytest.mark.parametrize("path", ["/", "/docs/", "/accounts/login/"])
def test_the_first_tab_shows_the_skip_link_and_it_moves_focus_to_the_content(
    live_server: Any, page: Page, console_errors: list[str], path: str
) -> None:
    load(page, live_server.url + path, console_errors)

    page.keyboard.press("Tab")
    skip_link = page.get_by_role("link", name="Skip to content")
    expect(skip_link).to_be_focused()
    box = skip_link.bounding_box()
    assert box is not None and box["y"] >= 0, "the focused skip link is off screen"
    assert skip_link.evaluate("e => getComputedStyle(e).outlineStyle") == "solid"

    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live_server.url}{path}#content")
    # The next Tab goes into the content, past the header's links.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('main#content') !== null"), (
        "Tab after the skip link did not land in the content"
    )


def test_the_new_key_dialog_keeps_focus_inside_and_closes_with_escape(
    live_server: Any, page: Page, console_errors: list[str]
) -> None:
    customer = verified_customer("keyboard@example.com")
    sign_in_as(page, live_server.url, customer)
    load(page, live_server.url + "/dashboard/keys/", console_errors)
    create = page.get_by_role("region", name="Create a key")
    create.get_by_label("Name").fill("by keyboard")
    create.get_by_label("Name").press("Enter")

    dialog = page.locator("dialog#new-key")
    expect(dialog).to_be_visible()
    inside = "() => document.getElementById('new-key').contains(document.activeElement)"
    assert page.evaluate(inside), "focus did not move into the dialog"
    for _ in range(6):
        page.keyboard.press("Tab")
        assert page.evaluate(inside), "Tab left the open dialog"
    for _ in range(6):
        page.keyboard.press("Shift+Tab")
        assert page.evaluate(inside), "Shift+Tab left the open dialog"

    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("cell", name="by keyboard", exact=True)).to_be_visible()
