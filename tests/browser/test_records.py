"""The records in a real Chromium: real API calls become one line each in the billing history
(the hold and release folded under it), each linked to its request page, which the usage page
links to as well; desktop and phone screenshots, and axe on each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from keys import services as keys
from tests.browser.support import (
    PHONE,
    axe_violations,
    generate,
    give_credits,
    load,
    settle,
    sign_in_as,
    verified_customer,
)

pytestmark = pytest.mark.usefixtures("default_prices")


def test_billing_history_usage_and_the_request_page(
    live_server: Any,
    live_api: str,
    live_server_env: dict[str, str],
    settings: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
) -> None:
    # The API's server stores the images under its DATA_DIR: this page's server reads them there.
    settings.MEDIA_ROOT = str(Path(live_server_env["DATA_DIR"]) / "media")
    user = verified_customer("records@example.com")
    give_credits(user, 2100)
    raw_key = keys.create_key(user.personal_account, "laptop").raw_key
    for _ in range(2):
        assert generate(live_api, raw_key).status_code == 200  # 40 credits each
    sign_in_as(page, live_server.url, user)

    load(page, f"{live_server.url}/dashboard/billing/", console_errors)
    expect(page.locator("main .lead")).to_contain_text("2,020 credits ($2.02)")
    lines = page.locator("tr.statement-line")
    expect(lines).to_have_count(3)  # two generations and the grant, not seven ledger rows
    newest = lines.first
    expect(newest.locator(".badge")).to_have_text("Generation")
    expect(newest.locator("td.num").first).to_have_text("-40")
    steps = newest.locator("details")
    expect(steps.locator(".statement-parts")).to_be_hidden()
    steps.locator("summary").click()
    expect(steps.locator(".statement-parts li")).to_have_count(3)
    expect(steps).to_contain_text("Reserve")
    expect(steps).to_contain_text("Release")
    settle(page, console_errors)
    screenshot(page, "billing-history")
    assert axe_violations(page, "billing history") == []

    newest.get_by_role("link").first.click()
    settle(page, console_errors)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Request gen_")
    main = page.locator("main")
    expect(main).to_contain_text("a red fox in snow")
    expect(main).to_contain_text("charged 40 credits ($0.04)")
    expect(main.locator(".request-images img")).to_have_count(1)
    expect(main.locator("tfoot")).to_contain_text("-40")
    screenshot(page, "request-page")
    assert axe_violations(page, "request page") == []
    request_url = page.url

    load(page, f"{live_server.url}/dashboard/usage/", console_errors)
    # The requests' table (the chart's figures are a table too).
    rows = page.get_by_role("region", name="Table of requests").locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first.get_by_role("link").first).to_have_attribute(
        "href", request_url.removeprefix(live_server.url)
    )
    screenshot(page, "usage")

    page.set_viewport_size(PHONE)
    load(page, f"{live_server.url}/dashboard/billing/", console_errors, phone=True)
    page.locator("tr.statement-line").first.locator("summary").click()
    screenshot(page, "billing-history-phone")
    load(page, request_url, console_errors, phone=True)
    screenshot(page, "request-page-phone")
    assert axe_violations(page, "request page, phone") == []
    load(page, f"{live_server.url}/dashboard/usage/", console_errors, phone=True)
    screenshot(page, "usage-phone")
