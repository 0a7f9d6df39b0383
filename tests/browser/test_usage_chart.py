"""The usage page's chart and summary CSV in a real browser: real API calls today and a month of
history, drawn per day (per hour for one day), readable on a phone, exported as CSV.

Screenshots: test-artifacts/screenshots/usage-chart-{desktop,hourly,phone}.png.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from generation.models import Generation
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


def month_of_history(user: Any, api_key: Any) -> None:
    """Settled requests on most of the last 30 days, a few more each week."""
    now = timezone.now()
    for days_ago in range(1, 30):
        if days_ago % 4 == 3:
            continue
        when = now - timedelta(days=days_ago)
        images = 1 + (29 - days_ago) // 7
        Generation.objects.create(account=user.personal_account, user=user,
            api_key=api_key, model="seedream-4-0", upstream_model="u",
            prompt="history", size="2048x2048", n=images, status="succeeded",
            price_per_image_credits=40, reserved_credits=40 * images,
            charged_credits=40 * images, images_delivered=images, http_status=200,
            created_at=when, deadline_at=when, finished_at=when,
        )  # fmt: skip


def test_the_usage_chart_shows_a_month_and_a_day_and_exports_a_summary(
    live_server: Any,
    live_api: str,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
) -> None:
    user = verified_customer("chart@example.com")
    give_credits(user, 1000)
    issued = keys.create_key(user.personal_account, "build server")
    month_of_history(user, issued.api_key)
    assert generate(live_api, issued.raw_key).status_code == 200
    assert generate(live_api, issued.raw_key).status_code == 200
    sign_in_as(page, live_server.url, user)

    load(page, f"{live_server.url}/dashboard/usage/", console_errors)
    summary = page.locator("section", has=page.locator("#summary-title"))
    expect(summary.get_by_role("heading", level=2)).to_contain_text("Day by day")
    credits_chart = summary.get_by_role("img", name="Credits charged")
    expect(credits_chart).to_be_visible()
    # 22 days of history and today's two calls: a bar for each day with use.
    expect(credits_chart.locator("rect")).to_have_count(23)
    expect(summary.get_by_role("img", name="Images delivered").locator("rect")).to_have_count(23)
    summary.get_by_text("Show the figures as a table").click()
    expect(summary.locator("tbody tr")).to_have_count(30)
    assert axe_violations(page, "usage chart") == []
    screenshot(page, "usage-chart-desktop")

    today = timezone.now().date().isoformat()
    load(page, f"{live_server.url}/dashboard/usage/?since={today}&until={today}", console_errors)
    expect(summary.get_by_role("heading", level=2)).to_contain_text("Hour by hour")
    expect(summary.locator("dd").nth(2)).to_contain_text("80")
    screenshot(page, "usage-chart-hourly")

    load(page, f"{live_server.url}/dashboard/usage/", console_errors)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export summary CSV").click()
    exported = Path(download_info.value.path()).read_text()
    # A link that turns into a download ends its navigation as "aborted": not an error.
    console_errors[:] = [e for e in console_errors if "/dashboard/usage-summary.csv" not in e]
    lines = list(csv.DictReader(io.StringIO(exported)))
    assert len({line["bucket_start"] for line in lines}) == 30
    charged = Generation.objects.filter(user=user).values_list("charged_credits", flat=True)
    assert sum(int(line["credits"]) for line in lines) == sum(charged)

    page.set_viewport_size(PHONE)
    load(page, f"{live_server.url}/dashboard/usage/", console_errors, phone=True)
    expect(credits_chart).to_be_visible()
    settle(page, console_errors, phone=True)
    screenshot(page, "usage-chart-phone")


def test_the_docs_explain_the_usage_api_on_a_desktop_and_a_phone(
    live_server: Any, page: Page, console_errors: list[str], pytestconfig: pytest.Config
) -> None:
    """Screenshots of the section alone: test-artifacts/screenshots/usage-docs-*.png."""
    folder = pytestconfig.rootpath / "test-artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    load(page, f"{live_server.url}/docs/", console_errors)
    usage = page.locator("#usage")
    expect(usage.get_by_role("heading", level=2)).to_have_text("GET /usage/images")
    page.get_by_role("link", name="GET /usage/images").click()
    expect(usage).to_be_in_viewport()
    usage.screenshot(path=str(folder / "usage-docs-desktop.png"))
    assert axe_violations(page, "docs") == []

    page.set_viewport_size(PHONE)
    load(page, f"{live_server.url}/docs/", console_errors, phone=True)
    usage.screenshot(path=str(folder / "usage-docs-phone.png"))
