"""The home page in a real browser: it loads, points at this server's API and shows live prices."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from api import catalog
from billing import services as billing
from billing.models import Price

DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 375, "height": 812}

# Every test here needs the seeded price table, which live_server's flushes empty.
pytestmark = pytest.mark.usefixtures("default_prices")


def load(page: Page, url: str, console_errors: list[str]) -> None:
    """Open ``url``: it answers 200 and the page logs no errors while loading."""
    console_errors.clear()
    response = page.goto(url, wait_until="load")
    assert response is not None
    assert response.status == 200, f"{url} answered {response.status}"
    page.wait_for_load_state("networkidle")
    assert console_errors == [], f"errors while loading {url}: {console_errors}"


def expected_price(model_id: str) -> str:
    price = Price.objects.filter(model=model_id, size_tier="").first()
    if price is None:
        return "not on sale"
    credits = price.credits_per_image
    return f"{credits} credits (${billing.format_usd(credits)})"


def test_home_page_shows_the_quickstart_and_the_live_price_table(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
) -> None:
    # A price no migration seeds: the page can only show it if it reads the table per request.
    changed = Price.objects.filter(model="seedream-4-0", size_tier="").update(credits_per_image=47)
    assert changed == 1
    page.set_viewport_size(DESKTOP)

    load(page, live_server.url + "/", console_errors)

    expect(page).to_have_title("Seedream API")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Seedream image generation, OpenAI-compatible"
    )
    base_url = f"{live_server.url}/v1"
    quickstart = page.locator("#quickstart")
    expect(quickstart.get_by_role("heading", name="Quickstart")).to_be_visible()
    expect(quickstart.locator("pre code").first).to_contain_text(
        f"curl {base_url}/images/generations"
    )
    expect(quickstart.locator("pre code").nth(1)).to_contain_text(f'base_url="{base_url}"')

    rows = page.locator("#models tbody tr")
    models = catalog.all_models()
    assert models, "the catalog lists no models"
    expect(rows).to_have_count(len(models))
    for model in models:
        row = rows.filter(has=page.locator("code", has_text=model.id))
        expect(row).to_have_count(1)
        expect(row.locator("td").nth(0)).to_contain_text(model.id)
        expect(row.locator("td").nth(2)).to_have_text(expected_price(model.id))
    expect(rows.filter(has_text="seedream-4-0").locator("td").nth(2)).to_have_text(
        "47 credits ($0.0470)"
    )

    screenshot(page, "home-desktop")


def test_home_page_fits_a_phone_without_horizontal_scroll(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
) -> None:
    page.set_viewport_size(PHONE)

    load(page, live_server.url + "/", console_errors)

    expect(page.get_by_role("heading", level=1)).to_be_visible()
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    screenshot(page, "home-phone")
    assert scroll_width <= PHONE["width"], (
        f"the page is {scroll_width}px wide at a {PHONE['width']}px viewport: it scrolls sideways"
    )
