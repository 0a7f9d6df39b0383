"""A key's spend controls and the account's alerts in Chromium, on a desktop and on a phone: a
customer signs in, caps a key and limits its models and addresses from its Spend page, sees them
on the key list, sets their alerts; a bad value comes back on its field; axe finds nothing and
nothing scrolls sideways.

Screenshots: test-artifacts/screenshots/spend-<page>-<desktop|phone>.png.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from billing.limits import limit_for
from billing.models import SpendWindow
from keys import services as keys
from keys.models import ApiKey
from tests.browser.support import (
    DESKTOP,
    PHONE,
    axe_violations,
    fill_sign_in,
    give_credits,
    load,
    settle,
    verified_customer,
)
from tests.browser.test_layout import OVERFLOWS

VIEWPORTS = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]


def spent_so_far(api_key: ApiKey, credits: int) -> None:
    """The key's current window as requests through /v1 would have left it."""
    key = ApiKey.objects.get(pk=api_key.pk)
    assert key.spend_cap_credits is not None
    limit = limit_for(
        f"key:{key.pk}", key.spend_cap_period, key.spend_cap_credits, datetime.now(UTC)
    )
    SpendWindow.objects.update_or_create(
        name=limit.window,
        defaults={"cap_credits": limit.cap_credits, "spent_credits": credits},
    )


def fits(page: Page, name: str, *, phone: bool) -> None:
    """Nothing wider than its box (test_layout's check); on a phone a table may scroll in its
    own box, the page never."""
    overflowing = page.evaluate(OVERFLOWS)
    if phone:
        overflowing = [line for line in overflowing if line.startswith("the page:")]
    assert overflowing == [], f"{name}: {overflowing}"


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_customer_caps_a_key_limits_it_and_sets_alerts(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
    viewport: ViewportSize,
) -> None:
    phone = viewport is PHONE
    device = "phone" if phone else "desktop"
    customer = verified_customer(f"spend-{device}@example.com")
    give_credits(customer, 20_000)
    key = keys.create_key(customer.personal_account, "production server").api_key
    keys.create_key(customer.personal_account, "laptop")
    page.set_viewport_size(viewport)
    found: list[str] = []

    load(page, f"{live_server.url}/accounts/login/", console_errors, phone=phone)
    fill_sign_in(page, customer.email)
    settle(page, console_errors, phone=phone)

    # From the key list, through the row's actions, to the key's Spend page.
    load(page, f"{live_server.url}/dashboard/keys/", console_errors, phone=phone)
    row = page.locator("tbody tr").filter(has_text="production server")
    row.get_by_text("Actions", exact=True).click()
    row.get_by_role("link", name="Spend").click()
    settle(page, console_errors, phone=phone)
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Spend controls of “production server”"
    )
    expect(page.get_by_text("No cap: this key may spend your whole balance.")).to_be_visible()
    expect(page.locator(".your-address")).to_have_text("127.0.0.1")

    # A bad address comes back on its field, and nothing is saved.
    page.get_by_label("Spend cap in credits (optional)").fill("5,000")
    page.get_by_label("Allowed addresses (optional)").fill("127.0.0.1\n10.0.0.1/8")
    page.get_by_role("button", name="Save spend controls").click()
    settle(page, console_errors, phone=phone)
    expect(page.get_by_role("alert")).to_contain_text("did you mean 10.0.0.0/8?")
    found += axe_violations(page, "spend, sent with an error")
    screenshot(page, f"spend-key-errors-{device}")
    assert ApiKey.objects.get(pk=key.pk).spend_cap_credits is None

    # Fixed and saved: back on the key list, which says what the key is held to.
    page.get_by_label("Allowed addresses (optional)").fill("127.0.0.1\n203.0.113.0/24")
    page.get_by_label("Counted").select_option("day")
    page.get_by_label("Seedream 4.0").check()
    page.get_by_role("button", name="Save spend controls").click()
    settle(page, console_errors, phone=phone)
    expect(page).to_have_url(f"{live_server.url}/dashboard/keys/")
    expect(page.get_by_role("status").first).to_contain_text(
        "The spend controls of “production server” are saved."
    )
    summary = (
        page.locator("tbody tr").filter(has_text="production server").locator(".spend-summary")
    )
    expect(summary).to_have_text(
        "cap 5,000 credits per day (UTC) · seedream-4-0 only · from 127.0.0.1/32, 203.0.113.0/24"
    )
    found += axe_violations(page, "keys with a capped key")
    fits(page, "keys", phone=phone)
    screenshot(page, f"spend-keys-list-{device}")
    saved = ApiKey.objects.get(pk=key.pk)
    assert (saved.spend_cap_credits, saved.spend_cap_period, saved.allowed_models) == (
        5000,
        "day",
        ["seedream-4-0"],
    )

    # The Spend page shows the window: some of the cap spent.
    spent_so_far(key, 1240)
    load(page, f"{live_server.url}/dashboard/keys/{key.pk}/spend/", console_errors, phone=phone)
    now = page.get_by_role("region", name="This key's spend now")
    expect(now).to_contain_text("1,240")
    expect(now).to_contain_text("3,760 credits")
    expect(now).to_contain_text("UTC")
    expect(page.get_by_label("Seedream 4.0")).to_be_checked()
    found += axe_violations(page, "spend")
    fits(page, "spend", phone=phone)
    screenshot(page, f"spend-key-{device}")

    # Alerts, from the navigation.
    page.get_by_role("navigation", name="Dashboard").get_by_role("link", name="Alerts").click()
    settle(page, console_errors, phone=phone)
    expect(page.get_by_role("heading", level=1)).to_have_text("Alerts")
    expect(page.get_by_label("Tell me when a key has spent this share of its cap")).to_have_value(
        "50, 80, 100"
    )
    page.get_by_label("Tell me when my balance falls below").fill("2,000")
    page.get_by_label("Tell me when a key has spent this share of its cap").fill("90, 50")
    page.get_by_role("button", name="Save alerts").click()
    settle(page, console_errors, phone=phone)
    expect(page.get_by_role("status").first).to_contain_text("Your alerts are saved.")
    expect(page.get_by_label("Tell me when a key has spent this share of its cap")).to_have_value(
        "50, 90"
    )
    expect(page.get_by_text("You are told when it falls below 2,000 credits")).to_be_visible()
    found += axe_violations(page, "alerts")
    fits(page, "alerts", phone=phone)
    screenshot(page, f"spend-alerts-{device}")

    assert not found, "\n".join(found)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_docs_spend_controls_section_reads_on_a_desktop_and_a_phone(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    viewport: ViewportSize,
    pytestconfig: pytest.Config,
) -> None:
    phone = viewport is PHONE
    page.set_viewport_size(viewport)

    load(page, f"{live_server.url}/docs/#spend-controls", console_errors, phone=phone)

    spend = page.locator("#spend-controls")
    expect(spend.get_by_role("heading", level=2)).to_have_text("Spend controls")
    expect(spend.get_by_role("region", name="Example: the cap reached")).to_contain_text(
        "key_budget_exceeded"
    )
    assert axe_violations(page, "docs") == []
    folder = pytestconfig.rootpath / "test-artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    spend.screenshot(path=str(folder / f"spend-docs-{'phone' if phone else 'desktop'}.png"))
