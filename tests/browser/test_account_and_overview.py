"""The overview's figures, the account settings and closing an account, in a real browser."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from keys import services as keys
from tests.browser.support import (
    PASSWORD,
    PHONE,
    generate,
    give_credits,
    load,
    settle,
    sign_in_as,
    verified_customer,
)

pytestmark = pytest.mark.usefixtures("default_prices")


def test_the_overview_charts_real_calls_on_desktop_and_phone(
    live_server: Any,
    live_api: str,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
) -> None:
    user = verified_customer("charts@example.com")
    give_credits(user, 1000)
    raw_key = keys.create_key(user.personal_account, "laptop").raw_key
    for _ in range(2):
        assert generate(live_api, raw_key).status_code == 200

    sign_in_as(page, live_server.url, user)
    load(page, f"{live_server.url}/dashboard/", console_errors)
    month = page.locator(".stat", has_text="Spent this month")
    expect(month).to_contain_text("80 credits")  # two 2048x2048 images at 40
    expect(page.locator("#spend-chart-caption")).to_contain_text("Credits spent per day")
    expect(page.locator("svg.chart-bars rect")).to_have_count(2)  # today, in each chart
    page.get_by_text("Show the figures as a table").click()
    today_row = page.locator(".chart-table tbody tr").first
    expect(today_row).to_contain_text("80")
    screenshot(page, "overview")

    page.set_viewport_size(PHONE)
    load(page, f"{live_server.url}/dashboard/", console_errors, phone=True)
    screenshot(page, "overview-phone")


def test_a_customer_closes_the_account_and_its_key_stops_working(
    live_server: Any,
    live_api: str,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
) -> None:
    user = verified_customer("leaving@example.com")
    give_credits(user, 1000)
    raw_key = keys.create_key(user.personal_account, "laptop").raw_key
    assert generate(live_api, raw_key).status_code == 200

    sign_in_as(page, live_server.url, user)
    load(page, f"{live_server.url}/dashboard/", console_errors)
    page.get_by_role("navigation", name="Dashboard").get_by_role("link", name="Account").click()
    settle(page, console_errors)
    expect(page.get_by_role("heading", level=1)).to_have_text("Account settings")
    screenshot(page, "account-settings")

    page.get_by_role("link", name="Close account…").click()
    settle(page, console_errors)
    screenshot(page, "account-close")
    page.get_by_label("Your password").fill("wrong password")
    page.get_by_role("button", name="Close account and delete data").click()
    settle(page, console_errors)
    expect(page.get_by_role("alert")).to_have_text("That is not your password.")
    assert generate(live_api, raw_key).status_code == 200

    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Close account and delete data").click()
    settle(page, console_errors)
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account is closed")
    screenshot(page, "account-closed")

    refused = generate(live_api, raw_key)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    page.goto(f"{live_server.url}/dashboard/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/dashboard/")


def test_the_limits_page_shows_the_tier_and_a_keys_own_limits(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
    settings: Any,
) -> None:
    settings.RATE_LIMIT_TIERS = [
        {"id": "free", "name": "Free", "requests_per_minute": 60, "images_per_minute": 20,
         "concurrent_generations": 3},
        {"id": "tier-1", "name": "Tier 1", "min_lifetime_credits": 5000,
         "requests_per_minute": 300, "images_per_minute": 100, "concurrent_generations": 10},
    ]  # fmt: skip
    user = verified_customer("limits@example.com")
    give_credits(user, 1000)
    key = keys.create_key(user.personal_account, "staging").api_key

    sign_in_as(page, live_server.url, user)
    load(page, f"{live_server.url}/dashboard/limits/", console_errors)
    expect(page.locator(".lead")).to_contain_text("Free")
    expect(page.get_by_text("after 4,000 more credits added")).to_be_visible()
    screenshot(page, "limits")

    page.get_by_role("link", name="Change the limits of staging").click()
    settle(page, console_errors)
    screenshot(page, "key-limits")
    page.get_by_label("Requests per minute").fill("5")
    page.get_by_role("button", name="Save limits").click()
    settle(page, console_errors)
    expect(page.get_by_role("status")).to_contain_text("limits of “staging” are saved")
    key.refresh_from_db()
    assert key.requests_per_minute == 5
    screenshot(page, "keys-with-limits")
