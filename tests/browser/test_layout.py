"""The dashboard's layout with real data: every table fits its box on a laptop and a large desktop,
and on a phone the header is one line (its links in a menu) and the dashboard's tabs scroll,
showing that they do, with the current page's tab in view.

Screenshots of every dashboard page at 1366 px, 1920 px and on a phone are saved as
test-artifacts/screenshots/layout-<page>-<width>.png.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import FloatRect, Locator, Page, ViewportSize, expect

from accounts.models import User
from billing import services as billing
from generation.models import Generation
from keys import services as keys
from tests.browser.support import PHONE, give_credits, load, sign_in_as, verified_customer
from tests.browser.test_accessibility import gallery_image, usage_history
from tests.browser.test_webhooks import webhook_history

pytestmark = pytest.mark.usefixtures("default_prices")

LAPTOP: ViewportSize = {"width": 1366, "height": 768}
LARGE: ViewportSize = {"width": 1920, "height": 1080}
# A common phone today (PHONE, 375 px, is the narrowest the other tests check).
PHONE_390: ViewportSize = {"width": 390, "height": 844}

LONG_ERROR = (
    "3 of 4 images were not delivered: the upstream answered 500 Internal Server Error "
    "after our 3 retries; what was held for them was released and nothing was charged for them."
)


def box(locator: Locator) -> FloatRect:
    found = locator.bounding_box()
    assert found is not None, f"{locator} is not displayed"
    return found


def customer_with_history() -> tuple[User, dict[str, str]]:
    """A customer whose every dashboard page has rows, long ones included; and the paths of the
    pages with an object of their own."""
    user = verified_customer("layout@example.com")
    give_credits(user, 5000)
    laptop = keys.create_key(
        user.personal_account, "a key with a rather long name for the build server"
    ).api_key
    keys.create_key(user.personal_account, "ci")
    keys.revoke_key(keys.create_key(user.personal_account, "retired").api_key)
    usage_history(user, laptop)
    now = timezone.now()
    Generation.objects.create(account=user.personal_account, user=user,
        api_key=laptop, model="seedream-5-0-pro", upstream_model="u",
        prompt="a very long prompt " * 20, size="2048x2048", n=4, status="succeeded",
        price_per_image_credits=120, reserved_credits=480, charged_credits=120,
        images_delivered=1, http_status=200, latency_ms=123456, error_code="upstream_error",
        error_message=LONG_ERROR, created_at=now - timedelta(minutes=1), deadline_at=now,
        finished_at=now,
    )  # fmt: skip
    billing.grant(user.personal_account, 250, idempotency_key=f"layout:{user.pk}",
        description="A goodwill grant after the outage of 3 December, with our apologies for "
        "the images that were late",
    )  # fmt: skip
    image = gallery_image(user)
    endpoint = webhook_history(user)
    return user, {
        "image": f"/dashboard/gallery/{image.token}/",
        "endpoint": f"/dashboard/webhooks/{endpoint.pk}/",
    }


def dashboard_pages(objects: dict[str, str]) -> list[tuple[str, str]]:
    return [
        ("overview", "/dashboard/"),
        ("playground", "/dashboard/playground/"),
        ("gallery", "/dashboard/gallery/"),
        ("image", objects["image"]),
        ("usage", "/dashboard/usage/"),
        ("limits", "/dashboard/limits/"),
        ("keys", "/dashboard/keys/"),
        ("webhooks", "/dashboard/webhooks/"),
        ("webhook", objects["endpoint"]),
        ("billing", "/dashboard/billing/"),
        ("account", "/dashboard/account/"),
    ]


# Each table's box (.table-scroll) against its table, and the page against the window: what
# does not fit, as readable lines. A box that scrolls sideways hides columns; that is allowed on
# a phone, never on a desktop.
OVERFLOWS = """
() => {
  const found = [];
  document.querySelectorAll("main table").forEach((table, index) => {
    const box = table.closest(".table-scroll") || table.parentElement;
    const name = box.getAttribute("aria-label") || box.getAttribute("aria-labelledby")
      || `table ${index}`;
    const tableRight = table.getBoundingClientRect().right;
    const boxRight = box.getBoundingClientRect().right;
    if (box.scrollWidth > box.clientWidth + 1 || tableRight > boxRight + 1) {
      found.push(`${name}: ${table.scrollWidth}px of table in a ${box.clientWidth}px box`);
    }
  });
  const page = document.documentElement;
  if (page.scrollWidth > page.clientWidth + 1) {
    found.push(`the page: ${page.scrollWidth}px in a ${page.clientWidth}px window`);
  }
  return found;
}
"""


@pytest.mark.parametrize("viewport", [LAPTOP, LARGE], ids=["1366", "1920"])
def test_every_dashboard_table_fits_on_a_desktop(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
    viewport: ViewportSize,
) -> None:
    user, objects = customer_with_history()
    sign_in_as(page, live_server.url, user)
    page.set_viewport_size(viewport)
    overflowing: list[str] = []
    tables = 0

    for name, path in dashboard_pages(objects):
        console_errors.clear()
        load(page, live_server.url + path, console_errors)
        tables += page.locator("main table").count()
        overflowing += [f"{name} ({path}): {line}" for line in page.evaluate(OVERFLOWS)]
        screenshot(page, f"layout-{name}-{viewport['width']}")

    assert tables >= 10, "the walk saw too few tables to prove anything"
    assert not overflowing, "tables wider than their box:\n" + "\n".join(overflowing)


def test_the_dashboard_column_grows_with_the_window(
    live_server: Any, page: Page, console_errors: list[str]
) -> None:
    user, _ = customer_with_history()
    sign_in_as(page, live_server.url, user)

    widths = {}
    for viewport in (LAPTOP, LARGE):
        page.set_viewport_size(viewport)
        load(page, live_server.url + "/dashboard/usage/", console_errors)
        widths[viewport["width"]] = box(page.locator(".dashboard-main"))["width"]

    # Fluid up to about 1400 px of content, then centred: no longer a fixed ~926 px column.
    assert widths[1366] > 1000
    assert 1100 < widths[1920] <= 1400 - 12 * 16 + 16
    assert widths[1920] > widths[1366]


def test_a_long_cell_shows_its_start_and_all_of_it_on_demand(
    live_server: Any, page: Page, console_errors: list[str]
) -> None:
    user, _ = customer_with_history()
    sign_in_as(page, live_server.url, user)
    page.set_viewport_size(LAPTOP)
    load(page, live_server.url + "/dashboard/usage/", console_errors)

    row = page.locator("tbody tr").filter(has_text="seedream-5-0-pro")
    cell = row.locator(".cut-toggle")
    text = cell.locator(".cut")
    expect(text).to_have_attribute("title", LONG_ERROR)
    expect(text).to_have_text(LONG_ERROR)  # all of it, for assistive technology
    one_line = box(text)["height"]
    assert text.evaluate("e => e.scrollWidth > e.clientWidth"), "the error was not cut"

    cell.locator("summary").focus()
    page.keyboard.press("Enter")
    expect(cell).to_have_attribute("open", "")
    assert box(text)["height"] > 2 * one_line, "the opened error did not wrap"


def test_a_key_rows_actions_are_one_menu(
    live_server: Any, page: Page, console_errors: list[str]
) -> None:
    user, _ = customer_with_history()
    sign_in_as(page, live_server.url, user)
    page.set_viewport_size(LAPTOP)
    load(page, live_server.url + "/dashboard/keys/", console_errors)

    row = page.locator("tbody tr").filter(has_text="ci").filter(has_not_text="long name")
    revoke = row.get_by_role("link", name="Revoke")
    expect(revoke).to_be_hidden()
    row.get_by_text("Actions").click()
    expect(revoke).to_be_visible()
    expect(row.get_by_role("link", name="Rotate")).to_be_visible()
    # Escape closes it and gives focus back to its button.
    revoke.focus()
    page.keyboard.press("Escape")
    expect(revoke).to_be_hidden()
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"
    # The revoked key has no actions.
    expect(page.locator("tbody tr").filter(has_text="retired").locator("details")).to_have_count(0)


def test_on_a_phone_the_header_is_one_line_and_the_tabs_scroll(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
) -> None:
    user, objects = customer_with_history()
    sign_in_as(page, live_server.url, user)
    page.set_viewport_size(PHONE_390)

    for name, path in dashboard_pages(objects):
        console_errors.clear()
        load(page, live_server.url + path, console_errors)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE_390["width"], f"{name} is {width}px wide: it scrolls sideways"
        header = page.locator(".site-header")
        brand = box(header.locator(".brand"))
        menu = box(header.get_by_text("Menu", exact=True))
        # One line: the brand and the menu button side by side, the header no taller than one.
        assert abs(brand["y"] + brand["height"] / 2 - (menu["y"] + menu["height"] / 2)) < 4
        assert box(header)["height"] < 72, f"{name}: the header wraps"

        nav = page.get_by_role("navigation", name="Dashboard")
        assert nav.evaluate("e => e.scrollWidth > e.clientWidth"), f"{name}: the tabs fit?"
        # The edge that hides more tabs fades out, so the strip shows that it scrolls.
        assert nav.evaluate("e => getComputedStyle(e).maskImage") != "none", (
            f"{name}: the tab strip does not show that it scrolls"
        )
        current = nav.locator("[aria-current='page']")
        expect(current).to_be_in_viewport(ratio=1)
        strip, tab = box(nav), box(current)
        assert strip["x"] - 1 <= tab["x"]
        assert tab["x"] + tab["width"] <= strip["x"] + strip["width"] + 1
        screenshot(page, f"layout-{name}-phone")


def test_the_phone_menu_opens_and_takes_you_places(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
) -> None:
    page.set_viewport_size(PHONE)
    load(page, live_server.url + "/", console_errors, phone=True)
    header = page.locator(".site-header")
    docs = header.get_by_role("link", name="Docs")
    expect(docs).to_be_hidden()

    header.get_by_text("Menu", exact=True).click()
    expect(docs).to_be_visible()
    expect(header.get_by_role("link", name="Sign up")).to_be_visible()
    screenshot(page, "layout-menu-open-phone")
    page.keyboard.press("Escape")  # focus is on the menu's button after the click
    expect(docs).to_be_hidden()

    header.get_by_text("Menu", exact=True).click()
    docs.click()
    expect(page).to_have_url(f"{live_server.url}/docs/")


def test_on_a_desktop_the_header_shows_its_links_without_a_menu(
    live_server: Any, page: Page, console_errors: list[str]
) -> None:
    page.set_viewport_size(LAPTOP)
    load(page, live_server.url + "/", console_errors)
    header = page.locator(".site-header")
    expect(header.get_by_text("Menu", exact=True)).to_be_hidden()
    expect(header.get_by_role("link", name="Docs")).to_be_visible()
    # The links are there once for assistive technology, not twice.
    expect(page.get_by_role("navigation", name="Main")).to_have_count(1)
