"""The public docs page in a real browser, on a desktop and on a phone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, FloatRect, Locator, Page, ViewportSize, expect

from tests.browser.support import DESKTOP, PHONE, axe_violations, load
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


LAPTOP: ViewportSize = {"width": 1366, "height": 768}


def box(locator: Locator) -> FloatRect:
    found = locator.bounding_box()
    assert found is not None, f"{locator} is not displayed"
    return found


def test_on_a_desktop_the_contents_stay_beside_the_sections(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
) -> None:
    page.set_viewport_size(LAPTOP)
    load(page, f"{live_server.url}/docs/", console_errors)
    toc = page.get_by_role("navigation", name="On this page")
    first = page.locator("#authentication")
    # Two columns: the contents to the left of the sections, top-aligned with them.
    assert box(toc)["x"] + box(toc)["width"] <= box(first)["x"]
    full_page = screenshot(page, "docs-1366")

    toc.get_by_role("link", name="Webhooks").click()
    expect(page.locator("#webhooks h2")).to_be_in_viewport()
    # Far down the page, the contents are still in view, and say which section is read.
    expect(toc.get_by_role("link", name="Idempotency")).to_be_in_viewport()
    expect(toc.get_by_role("link", name="Webhooks")).to_have_attribute("aria-current", "true")
    expect(toc.locator("[aria-current]")).to_have_count(1)
    # What the window shows there (the full-page screenshot cannot show a sticky element).
    page.screenshot(path=str(full_page.with_name("docs-1366-scrolled.png")))


def test_every_code_block_has_a_copy_button_that_copies_it(
    live_server: Any, page: Page, console_errors: list[str]
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.set_viewport_size(DESKTOP)
    load(page, f"{live_server.url}/docs/", console_errors)

    blocks = page.locator("main pre")
    assert blocks.count() >= 20
    expect(page.locator("main .code-block > .copy-code")).to_have_count(blocks.count())

    example = page.locator("#credits")
    example.get_by_role("button", name="Copy: Example balance").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == example.locator("pre code").inner_text()
    assert '"object": "credit_balance"' in copied
    expect(example.get_by_role("button", name="Copy: Example balance")).to_have_text("Copied")


def test_the_language_tabs_work_with_the_keyboard_and_remember_the_choice(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
) -> None:
    page.set_viewport_size(DESKTOP)
    load(page, f"{live_server.url}/docs/", console_errors)
    quickstart = page.locator("#quickstart")
    tabs = quickstart.get_by_role("tab")
    expect(tabs).to_have_text(["cURL", "Python", "JavaScript"])
    expect(tabs.nth(0)).to_have_attribute("aria-selected", "true")
    curl = quickstart.get_by_role("tabpanel", name="cURL")
    expect(curl).to_be_visible()
    expect(curl).to_contain_text("$SEEDREAM_API_KEY")
    expect(quickstart.get_by_role("tabpanel")).to_have_count(1)  # the others are hidden

    tabs.nth(0).focus()
    page.keyboard.press("ArrowRight")
    expect(tabs.nth(1)).to_be_focused()
    expect(tabs.nth(1)).to_have_attribute("aria-selected", "true")
    python = quickstart.get_by_role("tabpanel", name="Python")
    expect(python).to_contain_text('api_key=os.environ["SEEDREAM_API_KEY"]')
    page.keyboard.press("End")
    expect(tabs.nth(2)).to_be_focused()
    page.keyboard.press("ArrowRight")  # round to the first
    expect(tabs.nth(0)).to_be_focused()
    page.keyboard.press("ArrowLeft")
    expect(tabs.nth(2)).to_have_attribute("aria-selected", "true")
    # Only the chosen tab is in the Tab order.
    expect(tabs.nth(0)).to_have_attribute("tabindex", "-1")

    # The choice holds on every tab list of the page: the edit, streaming, b64_json examples.
    for section, text in [
        ("#edits", "fs.createReadStream"),
        ("#generations", "for await (const event of stream)"),
        ("#response", 'response_format: "b64_json"'),
    ]:
        expect(page.locator(section).get_by_role("tabpanel").filter(has_text=text)).to_be_visible()
    screenshot(page, "docs-tabs")

    # And it is remembered on the next page.
    load(page, f"{live_server.url}/", console_errors)
    expect(page.locator("#quickstart").get_by_role("tab", name="JavaScript")).to_have_attribute(
        "aria-selected", "true"
    )
    assert axe_violations(page, "home with tabs") == []
    load(page, f"{live_server.url}/docs/", console_errors)
    assert axe_violations(page, "docs with tabs") == []


def test_without_a_script_every_language_shows_under_its_heading(
    live_server: Any, browser: Browser, screenshot: Callable[[Page, str], Path]
) -> None:
    context = browser.new_context(java_script_enabled=False, viewport=DESKTOP)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/docs/")
        quickstart = page.locator("#quickstart")
        expect(quickstart.get_by_role("tab")).to_have_count(0)
        for language in ["cURL", "Python", "JavaScript"]:
            expect(quickstart.get_by_role("heading", name=language, exact=True)).to_be_visible()
        expect(quickstart.locator("pre")).to_have_count(4)  # the key's export, then the three
        for block in quickstart.locator("pre").all():
            expect(block).to_be_visible()
        expect(page.locator(".copy-code")).to_have_count(0)  # it could not copy
        screenshot(page, "docs-without-script")
    finally:
        context.close()
