"""What the browser tests share: viewports, a customer who can sign in, page loading checks."""

from __future__ import annotations

import httpx
from allauth.account.models import EmailAddress
from axe_playwright_python.sync_playwright import Axe
from django.conf import settings
from django.test import Client
from playwright.sync_api import Page, ViewportSize

from accounts.models import User
from billing import services as billing

DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 375, "height": 812}
PASSWORD = "correct horse battery 42"
GENERATION = {"model": "seedream-4-0", "prompt": "a red fox in snow", "size": "2048x2048"}


def settle(page: Page, console_errors: list[str], *, phone: bool = False) -> None:
    """Wait for the page in front of us to finish loading: no errors, and on a phone no
    sideways scrolling."""
    page.wait_for_load_state("networkidle")
    assert console_errors == [], f"errors on {page.url}: {console_errors}"
    if phone:
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= PHONE["width"], (
            f"{page.url} is {scroll_width}px wide at {PHONE['width']}px: it scrolls sideways"
        )


def load(page: Page, url: str, console_errors: list[str], *, phone: bool = False) -> None:
    response = page.goto(url, wait_until="load")
    assert response is not None
    assert response.status == 200, f"{url} answered {response.status}"
    settle(page, console_errors, phone=phone)


def generate(live_api: str, raw_key: str) -> httpx.Response:
    return httpx.post(
        f"{live_api}/v1/images/generations",
        headers={"Authorization": f"Bearer {raw_key}"},
        json=GENERATION,
        timeout=60,
    )


def give_credits(user: User, credits: int = 1000) -> None:
    billing.grant(
        user.personal_account,
        credits,
        description="browser test",
        idempotency_key=f"browser:{user.pk}",
    )


def verified_customer(email: str) -> User:
    """A customer whose address is verified, so they can sign in straight away."""
    user = User.objects.create_user(email, PASSWORD)
    EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
    return user


def fill_sign_in(page: Page, email: str) -> None:
    """Fill in and send the sign-in form on the page in front of us."""
    main = page.locator("main")
    main.get_by_label("Email").fill(email)
    main.get_by_label("Password", exact=True).fill(PASSWORD)
    main.get_by_role("button", name="Sign in").click()


def sign_in_as(page: Page, base_url: str, user: User) -> None:
    """Give the page's browser a signed-in session for ``user``, without the sign-in form
    (the tests of the form itself use ``fill_sign_in``)."""
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": base_url}])


# The accessibility check: axe-core, over WCAG 2.x A and AA and axe's own best practices.
AXE_RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
AXE_FAILING_IMPACTS = ("critical", "serious", "moderate")


def axe_violations(page: Page, name: str) -> list[str]:
    """axe's violations on the page in front of us that are moderate or worse, one readable line
    each: the page, the rule, its impact and the elements (CSS selectors) at fault."""
    results = Axe().run(
        page,
        options={
            "resultTypes": ["violations"],
            "runOnly": {"type": "tag", "values": AXE_RULES},
        },
    )
    lines = []
    for violation in results.response["violations"]:
        if violation["impact"] not in AXE_FAILING_IMPACTS:
            continue
        targets = [" ".join(map(str, node["target"])) for node in violation["nodes"]]
        more = f" (+{len(targets) - 5} more)" if len(targets) > 5 else ""
        lines.append(
            f"{name} ({page.url}): {violation['id']} [{violation['impact']}] "
            f"{violation['help']}: {'; '.join(targets[:5])}{more}"
        )
    return lines
