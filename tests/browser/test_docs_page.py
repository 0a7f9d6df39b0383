"""The public docs page in a real browser, on a desktop and on a phone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.support import DESKTOP, PHONE, load
from tests.dashboard.test_docs_page import SECTIONS

pytestmark = pytest.mark.usefixtures("default_prices")


@pytest.mark.parametrize(("viewport", "name"), [(DESKTOP, "docs"), (PHONE, "docs-phone")])
def test_the_docs_read_well_everywhere(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
    viewport: Any,
    name: str,
) -> None:
    page.set_viewport_size(viewport)
    load(page, f"{live_server.url}/docs/", console_errors, phone=viewport is PHONE)
    expect(page.get_by_role("heading", level=1)).to_have_text("API documentation")
    expect(page.locator("main")).to_contain_text(f"{live_server.url}/v1")
    screenshot(page, name)


def test_the_table_of_contents_takes_you_to_each_section(
    live_server: Any, page: Page, console_errors: list[str]
) -> None:
    page.set_viewport_size(PHONE)
    load(page, f"{live_server.url}/docs/", console_errors, phone=True)
    toc = page.get_by_role("navigation", name="On this page")
    links = toc.get_by_role("link")
    expect(links).to_have_count(len(SECTIONS))
    for name, section_id in [("Idempotency", "idempotency"), ("GET /credits", "credits")]:
        toc.get_by_role("link", name=name, exact=True).click()
        expect(page).to_have_url(f"{live_server.url}/docs/#{section_id}")
        expect(page.locator(f"#{section_id} h2")).to_be_in_viewport()
