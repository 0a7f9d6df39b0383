"""The usage and billing pages in a real browser: real API calls show up, the CSV downloads."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from keys import services as keys
from tests.browser.support import (
    PHONE,
    fill_sign_in,
    generate,
    give_credits,
    load,
    settle,
    verified_customer,
)

pytestmark = pytest.mark.usefixtures("default_prices")


def sign_in(page: Page, base_url: str, email: str, console_errors: list[str]) -> None:
    load(page, f"{base_url}/accounts/login/", console_errors)
    fill_sign_in(page, email)
    settle(page, console_errors)


def test_usage_shows_real_calls_filters_them_and_exports_csv(
    live_server: Any,
    live_api: str,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
) -> None:
    email = "usage@example.com"
    user = verified_customer(email)
    give_credits(user, 100)
    laptop = keys.create_key(user.personal_account, "laptop").raw_key
    server = keys.create_key(user.personal_account, "server").raw_key
    assert generate(live_api, laptop).status_code == 200
    assert generate(live_api, server).status_code == 200
    assert generate(live_api, server).status_code == 402  # 20 credits left, 40 needed

    sign_in(page, live_server.url, email, console_errors)
    load(page, f"{live_server.url}/dashboard/usage/", console_errors)
    # The requests' table (the chart's figures are a table too).
    rows = page.get_by_role("region", name="Table of requests").locator("tbody tr")
    expect(rows).to_have_count(3)
    screenshot(page, "usage")

    page.get_by_label("Key").select_option(label="server")
    page.get_by_role("button", name="Filter").click()
    settle(page, console_errors)
    expect(rows).to_have_count(2)
    # The refused call's row says why in words (with where to add credits), not as a code.
    expect(rows.filter(has_text="Insufficient credits: this request costs 40")).to_have_count(1)
    expect(rows.filter(has_text="insufficient_quota")).to_have_count(0)
    expect(rows.locator(".badge.failed")).to_have_count(1)

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    exported = Path(download_info.value.path()).read_text()
    # A link that turns into a download ends its navigation as "aborted": not an error.
    console_errors[:] = [e for e in console_errors if "/dashboard/usage.csv" not in e]
    lines = list(csv.DictReader(io.StringIO(exported)))
    assert [line["key"] for line in lines] == ["server", "server"]
    assert sorted(line["credits_charged"] for line in lines) == ["0", "40"]

    page.set_viewport_size(PHONE)
    load(page, f"{live_server.url}/dashboard/billing/", console_errors, phone=True)
    expect(page.locator("main")).to_contain_text("20 credits")
    screenshot(page, "billing-phone")
