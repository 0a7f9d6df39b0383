"""An organisation at work, in Chromium on a desktop and on a phone: a developer switches to
it, makes a key on its API keys page and spends the organisation's credits with it (their own
stay untouched); a reader of it finds no way to make a key and is refused with a reason when
they try the address; an outsider who tries the key's page gets 404.

Screenshots: test-artifacts/screenshots/organisation-work-<page>-<desktop|phone>.png.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from playwright.sync_api import Page, ViewportSize, expect

from accounts.models import Account, Membership, Role
from billing import services as billing
from generation.models import Generation
from keys.models import ApiKey
from tests.browser.support import (
    DESKTOP,
    PHONE,
    axe_violations,
    generate,
    give_credits,
    load,
    settle,
    sign_in_as,
    verified_customer,
)
from tests.browser.test_signup_and_keys import create_key
from tests.support.money import assert_ledger_balanced

pytestmark = pytest.mark.usefixtures("default_prices")

VIEWPORTS = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()


def switch_to(page: Page, name: str, errors: list[str], *, phone: bool) -> None:
    """Choose ``name`` in the account switcher, as a person would."""
    switcher = page.locator("details.account-switcher")
    switcher.locator("summary").click()
    switcher.get_by_role("button", name=f"Switch to {name}").click()
    settle(page, errors, phone=phone)
    expect(switcher.locator("summary")).to_contain_text(name)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_developer_spends_the_organisations_credits_a_reader_cannot_make_keys(
    live_server: Any,
    live_api: str,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
    viewport: ViewportSize,
) -> None:
    phone = viewport is PHONE
    device = "phone" if phone else "desktop"
    olga = verified_customer(f"olga-{device}@example.com")
    dev = verified_customer(f"dev-{device}@example.com")
    rita = verified_customer(f"rita-{device}@example.com")
    outsider = verified_customer(f"outsider-{device}@example.com")
    acme = Account.objects.create(kind=Account.Kind.ORGANISATION, name="Acme Studio")
    for person, role in ((olga, Role.OWNER), (dev, Role.DEVELOPER), (rita, Role.READER)):
        Membership.objects.create(account=acme, user=person, role=role)
    billing.grant(acme, 1000, description="Acme's credits", idempotency_key=f"acme:{device}")
    give_credits(dev, 500)
    page.set_viewport_size(viewport)
    found: list[str] = []

    # The developer works in Acme Studio: a key made there is the organisation's.
    sign_in_as(page, live_server.url, dev)
    load(page, f"{live_server.url}/dashboard/", console_errors, phone=phone)
    switch_to(page, "Acme Studio", console_errors, phone=phone)
    page.get_by_role("navigation", name="Dashboard").get_by_role("link", name="API keys").click()
    settle(page, console_errors, phone=phone)
    raw_key = create_key(page, "acme-ci")
    assert ApiKey.objects.get(name="acme-ci").account == acme
    page.keyboard.press("Escape")
    made_by = page.get_by_role("table").locator("tbody tr").filter(has_text="acme-ci")
    expect(made_by).to_contain_text(dev.email)
    found += axe_violations(page, "keys, in the organisation")
    screenshot(page, f"organisation-work-keys-{device}")

    # It spends Acme's credits, and the developer's own are untouched.
    assert generate(live_api, raw_key).status_code == 200
    assert Generation.objects.get().account == acme
    assert assert_ledger_balanced(acme) == 1000 - 40
    assert assert_ledger_balanced(dev) == 500
    load(page, f"{live_server.url}/dashboard/", console_errors, phone=phone)
    main = page.locator("main")
    expect(main).to_contain_text("working in Acme Studio as developer")
    expect(page.locator(".stats")).to_contain_text("960")
    found += axe_violations(page, "overview, in the organisation")
    screenshot(page, f"organisation-work-overview-{device}")

    # A reader of Acme Studio: usage yes, no way to make a key, and a reason at its address.
    page.context.clear_cookies()
    sign_in_as(page, live_server.url, rita)
    load(page, f"{live_server.url}/dashboard/", console_errors, phone=phone)
    switch_to(page, "Acme Studio", console_errors, phone=phone)
    nav = page.get_by_role("navigation", name="Dashboard")
    expect(nav.get_by_role("link", name="Usage")).to_be_visible()
    for hidden in ("API keys", "Playground", "Billing", "Webhooks"):
        expect(nav.get_by_role("link", name=hidden)).to_have_count(0)
    expect(page.locator("main")).to_contain_text("working in Acme Studio as reader")
    screenshot(page, f"organisation-work-reader-overview-{device}")
    response = page.goto(f"{live_server.url}/dashboard/keys/")
    assert response is not None and response.status == 403
    page.wait_for_load_state("networkidle")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your role does not allow this")
    expect(page.locator("main")).to_contain_text("A reader may not manage API keys.")
    found += axe_violations(page, "403, a reader")
    screenshot(page, f"organisation-work-reader-refused-{device}")
    assert ApiKey.objects.filter(account=acme).count() == 1
    # The browser reports the 403 itself; nothing else went wrong.
    assert [e for e in console_errors if "403" not in e] == []
    console_errors.clear()

    # An outsider trying the key's page: as if there were none.
    page.context.clear_cookies()
    sign_in_as(page, live_server.url, outsider)
    key = ApiKey.objects.get(name="acme-ci")
    response = page.goto(f"{live_server.url}/dashboard/keys/{key.pk}/spend/")
    assert response is not None and response.status == 404
    page.wait_for_load_state("networkidle")
    expect(page.locator("main")).not_to_contain_text("acme-ci")
    screenshot(page, f"organisation-work-outsider-{device}")
    assert [e for e in console_errors if "404" not in e] == []

    assert found == []
