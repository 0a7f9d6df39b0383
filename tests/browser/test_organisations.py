"""Organisations in Chromium, on a desktop and on a phone: a customer makes an organisation and
invites a second address; that person opens the link from the email, signs in, joins and finds
the organisation in the account switcher; an outsider cannot reach it. axe finds nothing and
nothing scrolls sideways.

Screenshots: test-artifacts/screenshots/organisations-<page>-<desktop|phone>.png.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.core.mail import EmailMessage
from playwright.sync_api import Page, ViewportSize, expect

from accounts import organisations as orgs
from accounts.models import Account, Membership
from tests.browser.support import (
    DESKTOP,
    PHONE,
    axe_violations,
    fill_sign_in,
    load,
    settle,
    verified_customer,
)
from tests.browser.test_layout import OVERFLOWS

VIEWPORTS = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]
# The email's link names SITE_URL; the test's server is elsewhere, so only the path is used.
INVITATION_PATH = re.compile(r"https?://[^/\s]+(/dashboard/organisations/invitations/[^\s/]+/)")


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    # allauth counts logins per IP in the cache, which outlives a test.
    cache.clear()


def fits(page: Page, name: str, *, phone: bool) -> None:
    overflowing = page.evaluate(OVERFLOWS)
    if phone:  # a table may scroll in its own box on a phone, the page never
        overflowing = [line for line in overflowing if line.startswith("the page:")]
    assert overflowing == [], f"{name}: {overflowing}"


def sign_in(page: Page, base_url: str, email: str, errors: list[str], *, phone: bool) -> None:
    page.context.clear_cookies()  # whoever was signed in before is gone
    load(page, f"{base_url}/accounts/login/", errors, phone=phone)
    fill_sign_in(page, email)
    settle(page, errors, phone=phone)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_an_owner_invites_a_teammate_who_joins_and_an_outsider_sees_nothing(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
    mailoutbox: list[EmailMessage],
    viewport: ViewportSize,
) -> None:
    phone = viewport is PHONE
    device = "phone" if phone else "desktop"
    owner = verified_customer(f"owner-{device}@example.com")
    teammate = verified_customer(f"teammate-{device}@example.com")
    outsider = verified_customer(f"outsider-{device}@example.com")
    page.set_viewport_size(viewport)
    found: list[str] = []

    # The owner finds Organisations in the switcher and makes one.
    sign_in(page, live_server.url, owner.email, console_errors, phone=phone)
    switcher = page.locator("details.account-switcher")
    expect(switcher.locator("summary")).to_contain_text("Personal")
    expect(switcher.locator("summary")).to_contain_text("Owner")
    switcher.locator("summary").click()
    switcher.get_by_role("link", name="Organisations").click()
    settle(page, console_errors, phone=phone)
    expect(page.get_by_role("heading", level=1)).to_have_text("Organisations")

    # A blank name comes back on its field, and nothing is made.
    page.get_by_role("button", name="Create organisation").click()
    settle(page, console_errors, phone=phone)
    expect(page.get_by_role("alert")).to_have_text("This field is required.")
    assert not Account.objects.filter(kind="organisation").exists()

    page.get_by_label("Organisation name").fill("Acme Studio")
    page.get_by_role("button", name="Create organisation").click()
    settle(page, console_errors, phone=phone)
    expect(page.get_by_role("heading", level=1)).to_have_text("Members of Acme Studio")
    expect(page.get_by_role("status").first).to_contain_text("“Acme Studio” is made")
    acme = Account.objects.get(name="Acme Studio")

    # The invitation: a bad address first, then the teammate's.
    invite = page.get_by_role("region", name="Invite someone")
    invite.get_by_label("Email address").fill("not an address")
    invite.get_by_role("button", name="Send invitation").click()
    settle(page, console_errors, phone=phone)
    expect(page.get_by_role("alert")).to_have_text("Enter a valid email address.")
    assert mailoutbox == []
    invite = page.get_by_role("region", name="Invite someone")
    invite.get_by_label("Email address").fill(teammate.email)
    invite.get_by_label("Role").select_option("developer")
    invite.get_by_role("button", name="Send invitation").click()
    settle(page, console_errors, phone=phone)
    expect(page.get_by_role("status").first).to_contain_text(
        f"An invitation to join as developer is on its way to {teammate.email}."
    )
    pending = page.get_by_role("region", name="Table of pending invitations")
    expect(pending).to_contain_text(teammate.email)
    found += axe_violations(page, "members")
    fits(page, "members", phone=phone)
    screenshot(page, f"organisations-members-{device}")

    # The switcher now says where the owner works, and offers the personal account.
    switcher.locator("summary").click()
    expect(switcher.locator("summary")).to_contain_text("Acme Studio")
    expect(switcher.get_by_role("button", name="Switch to Personal")).to_be_visible()
    found += axe_violations(page, "switcher open")
    screenshot(page, f"organisations-switcher-{device}")

    load(page, f"{live_server.url}/dashboard/organisations/", console_errors, phone=phone)
    found += axe_violations(page, "organisations")
    fits(page, "organisations", phone=phone)
    screenshot(page, f"organisations-list-{device}")

    # The teammate opens the emailed link, is asked to sign in, and comes back to it.
    [message] = mailoutbox
    assert message.to == [teammate.email]
    link = INVITATION_PATH.search(str(message.body))
    assert link is not None, message.body
    page.context.clear_cookies()
    load(page, live_server.url + link.group(1), console_errors, phone=phone)
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))
    fill_sign_in(page, teammate.email)
    settle(page, console_errors, phone=phone)
    expect(page.get_by_role("heading", level=1)).to_have_text("Join Acme Studio")
    expect(page.locator("main")).to_contain_text(f"{owner.email} invites you to join")
    found += axe_violations(page, "accept")
    fits(page, "accept", phone=phone)
    screenshot(page, f"organisations-accept-{device}")

    page.get_by_role("button", name="Join Acme Studio as developer").click()
    settle(page, console_errors, phone=phone)
    expect(page).to_have_url(f"{live_server.url}/dashboard/")
    expect(switcher.locator("summary")).to_contain_text("Acme Studio")
    expect(switcher.locator("summary")).to_contain_text("Developer")
    assert Membership.objects.get(account=acme, user=teammate).role == "developer"
    # A developer sees who is in it, and may change nothing.
    page.get_by_role("navigation", name="Dashboard").get_by_role("link", name="Members").click()
    settle(page, console_errors, phone=phone)
    expect(page.get_by_role("table")).to_contain_text(owner.email)
    expect(page.get_by_role("button", name="Send invitation")).to_have_count(0)
    found += axe_violations(page, "members, as a developer")
    screenshot(page, f"organisations-members-developer-{device}")
    switcher.locator("summary").click()
    expect(switcher.get_by_role("button", name="Switch to Personal")).to_be_visible()
    screenshot(page, f"organisations-switcher-joined-{device}")

    # An outsider: no way to the organisation's members, even by a crafted switch.
    sign_in(page, live_server.url, outsider.email, console_errors, phone=phone)
    load(page, f"{live_server.url}/dashboard/organisations/members/", console_errors, phone=phone)
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Your personal account has no members"
    )
    expect(page.locator("main")).not_to_contain_text("Acme Studio")
    token = page.locator("input[name=csrfmiddlewaretoken]").first.input_value()
    crafted = page.request.post(
        f"{live_server.url}/dashboard/organisations/switch/",
        form={"account": str(acme.pk), "csrfmiddlewaretoken": token},
        headers={"Referer": f"{live_server.url}/dashboard/"},
        max_redirects=0,
    )
    assert crafted.status == 404
    load(page, f"{live_server.url}/dashboard/organisations/members/", console_errors, phone=phone)
    expect(page.locator("main")).not_to_contain_text("Acme Studio")
    expect(page.locator("details.account-switcher")).not_to_contain_text("Acme Studio")

    # An invitation for someone else: the outsider is told whose it is and how to go on.
    other = orgs.invite(acme, owner, f"someone-{device}@example.com", "reader")
    other_link = INVITATION_PATH.search(str(mailoutbox[-1].body))
    assert other_link is not None and other.email in mailoutbox[-1].to
    response = page.goto(live_server.url + other_link.group(1))
    assert response is not None and response.status == 403
    page.wait_for_load_state("networkidle")
    expect(page.get_by_role("alert")).to_contain_text(
        f"This invitation is for {other.email}, and you are signed in as {outsider.email}."
    )
    expect(
        page.get_by_role("button", name="Sign out, then come back to this invitation")
    ).to_be_visible()
    found += axe_violations(page, "accept, someone else's")
    fits(page, "accept, someone else's", phone=phone)
    screenshot(page, f"organisations-accept-refused-{device}")
    # The refusal is a 403, which the browser reports; it is the only error.
    assert console_errors and all(
        "403" in error and other_link.group(1) in error for error in console_errors
    ), console_errors
    assert not Membership.objects.filter(account=acme, user=outsider).exists()

    assert found == [], "\n".join(found)
