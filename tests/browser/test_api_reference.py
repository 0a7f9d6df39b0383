"""The API reference page (/docs/api/): Swagger UI renders the OpenAPI document of /v1, under
the site's Content-Security-Policy, on a desktop and on a phone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.support import DESKTOP, PHONE, load

pytestmark = pytest.mark.usefixtures("default_prices")


@pytest.mark.parametrize(
    ("viewport", "name"), [(DESKTOP, "api-reference"), (PHONE, "api-reference-phone")]
)
def test_the_reference_renders_every_operation(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
    viewport: Any,
    name: str,
) -> None:
    page.set_viewport_size(viewport)
    load(page, f"{live_server.url}/docs/api/", console_errors, phone=viewport is PHONE)

    operations = page.locator(".opblock-summary-path")
    expect(operations.first).to_be_visible()
    expect(operations).to_have_count(11)
    expect(page.locator("#swagger-ui")).to_contain_text("/images/generations/{generation_id}")
    expect(page.locator("#swagger-ui")).to_contain_text("Seedream API")
    assert console_errors == [], console_errors
    screenshot(page, name)


def test_an_operation_opens_with_its_parameters_and_errors(
    live_server: Any, page: Page, console_errors: list[str], screenshot: Callable[[Page, str], Path]
) -> None:
    page.set_viewport_size(DESKTOP)
    load(page, f"{live_server.url}/docs/api/", console_errors)

    page.locator(".opblock-summary-path", has_text="/images/generations").first.click()
    block = page.locator(".opblock.is-open")
    expect(block).to_contain_text("Idempotency-Key")
    expect(block).to_contain_text("402")
    expect(block).to_contain_text("text/event-stream")
    assert console_errors == [], console_errors
    screenshot(page, "api-reference-operation")


def test_the_docs_page_links_to_the_reference_and_the_document(
    live_server: Any, page: Page, console_errors: list[str]
) -> None:
    load(page, f"{live_server.url}/docs/", console_errors)

    section = page.locator("#authentication")
    expect(section.get_by_role("link", name="/v1/openapi.json")).to_have_attribute(
        "href", "/v1/openapi.json"
    )
    section.get_by_role("link", name="API reference").click()
    expect(page).to_have_url(f"{live_server.url}/docs/api/")
    expect(page.get_by_role("heading", level=1)).to_have_text("API reference")
