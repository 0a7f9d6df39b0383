"""The home page in a real browser: it loads, points at this server's API and shows live prices."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from billing import services as billing
from generation import catalog
from tests.browser.support import (
    DESKTOP,
    PHONE,
    axe_violations,
    load,
    settle,
    sign_in_as,
    verified_customer,
)
from tests.browser.test_accessibility import gallery_image
from tests.support.prices import set_tier_price

# Every test here needs the seeded price table, which live_server's flushes empty.
pytestmark = pytest.mark.usefixtures("default_prices")


def expected_price(model_id: str) -> str:
    """The price cell's text for ``model_id``, from its live rule: each tier, then the
    reference surcharge."""
    rule = billing.price_rules().get(model_id)
    if rule is None:
        return "not on sale"
    parts = []
    lower = None
    for tier in rule.tiers:
        if len(rule.tiers) == 1:
            bound = "any size"
        elif tier is not rule.tiers[-1]:
            bound = f"up to {tier.max_pixels:,} pixels"
        else:
            bound = f"above {lower:,} pixels"
        lower = tier.max_pixels
        name = f" ({tier.name})" if len(rule.tiers) > 1 else ""
        usd = billing.format_usd_for_people(tier.credits)
        parts.append(f"{tier.credits:,} credits ({usd}) {bound}{name}")
    if rule.reference_credits:
        free = f" after the first {rule.free_references}" if rule.free_references else ""
        usd = billing.format_usd_for_people(rule.reference_credits)
        parts.append(f"+ {rule.reference_credits:,} credits ({usd}) per reference image{free}")
    # The lines are separated by <br>, which a cell's text content does not show.
    return "".join(parts)


def test_home_page_shows_the_quickstart_and_the_live_price_table(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
) -> None:
    # Prices no migration seeds: the page can only show them if it reads the rules per request.
    set_tier_price("seedream-4-0", "up to 2K", 47)
    set_tier_price("seedream-4-0", "4K", 73)
    page.set_viewport_size(DESKTOP)

    load(page, live_server.url + "/", console_errors)

    expect(page).to_have_title("Seedream API")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Seedream image generation, OpenAI-compatible"
    )
    hero = page.locator(".hero")
    expect(hero.get_by_role("link", name="Create an account")).to_have_attribute(
        "href", "/accounts/signup/"
    )
    expect(hero.get_by_role("link", name="Read the docs")).to_be_visible()
    base_url = f"{live_server.url}/v1"
    quickstart = page.locator("#quickstart")
    expect(quickstart.get_by_role("heading", name="Quickstart")).to_be_visible()
    expect(quickstart.locator("pre code").first).to_contain_text(
        f"curl {base_url}/images/generations"
    )
    expect(quickstart.locator("pre code").nth(1)).to_contain_text(f'base_url="{base_url}"')

    rows = page.locator("#models tbody tr")
    models = catalog.all_models()
    assert models, "the catalog lists no models"
    expect(rows).to_have_count(len(models))
    for model in models:
        row = rows.filter(has=page.locator("code", has_text=model.id))
        expect(row).to_have_count(1)
        expect(row.get_by_role("rowheader")).to_contain_text(model.name)
        expect(row.locator("td").nth(0)).to_have_text(expected_price(model.id))
    seedream_4 = rows.filter(has_text="seedream-4-0").locator("td")
    expect(seedream_4.nth(0)).to_have_text(
        "47 credits ($0.047) up to 4,194,304 pixels (up to 2K)"
        "73 credits ($0.073) above 4,194,304 pixels (4K)"
    )

    credits = page.get_by_role("region", name="How credits work")
    expect(credits).to_contain_text("1,000 credits make one US dollar")
    expect(credits).to_contain_text("188 credits are held")
    # No card payments and no trial here: the operator is who gives credits.
    expect(credits.get_by_role("link", name="Sign up", exact=True)).to_be_visible()
    expect(credits).to_contain_text("Ask the operator of this installation for credits")

    screenshot(page, "home-desktop")


def test_a_signed_in_customer_is_offered_the_dashboard_and_buying_credits(
    live_server: Any,
    page: Page,
    console_errors: list[str],
) -> None:
    sign_in_as(page, live_server.url, verified_customer("shopper@example.com"))
    page.set_viewport_size(DESKTOP)

    load(page, live_server.url + "/", console_errors)

    page.locator(".hero").get_by_role("link", name="Go to dashboard").click()
    expect(page).to_have_url(f"{live_server.url}/dashboard/")
    page.go_back()
    page.locator(".cta").get_by_role("link", name="Get credits").click()
    expect(page).to_have_url(f"{live_server.url}/dashboard/billing/")


def test_home_page_fits_a_phone_without_horizontal_scroll(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
) -> None:
    page.set_viewport_size(PHONE)

    load(page, live_server.url + "/", console_errors, phone=True)

    expect(page.get_by_role("heading", level=1)).to_be_visible()
    screenshot(page, "home-phone")


def test_the_storefront_shows_the_showcase_batch_prices_and_the_legal_pages(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
    settings: Any,
) -> None:
    settings.SUPPORT_EMAIL = "help@seedream.example"
    operator = verified_customer("operator@example.com")
    prompts = ["a lighthouse at dusk", "a paper crane on a desk", "a red fox in snow"]
    shown = []
    for prompt in prompts:
        image = gallery_image(operator)
        image.generation.prompt = prompt
        image.generation.save(update_fields=["prompt"])
        image.showcase = True
        image.save(update_fields=["showcase"])
        shown.append(image)
    gallery_image(operator)  # not marked: not shown
    set_tier_price("seedream-4-0", "up to 2K", 47)

    large: ViewportSize = {"width": 1920, "height": 1080}
    views: list[tuple[ViewportSize, str]] = [
        (DESKTOP, "home-storefront"),
        (large, "home-storefront-1920"),
        (PHONE, "home-storefront-phone"),
    ]
    for viewport, name in views:
        page.set_viewport_size(viewport)
        load(page, live_server.url + "/", console_errors, phone=viewport is PHONE)
        showcase = page.get_by_role("region", name="Made with Seedream API")
        pictures = showcase.get_by_role("img")
        expect(pictures).to_have_count(3)
        for picture in pictures.all():
            # Each thumbnail loaded, from the public /img/ URLs.
            assert picture.evaluate("i => i.complete && i.naturalWidth > 0")
        expect(pictures.first).to_have_attribute("alt", prompts[-1])
        expect(showcase.get_by_role("link").first).to_have_attribute(
            "href", f"{live_server.url}/img/{shown[-1].token}.jpg"
        )
        pricing = page.get_by_role("region", name="What a batch of images costs")
        row = pricing.get_by_role("row").filter(has_text="seedream-4-0")
        batches = ["$4.704,700 credits", "$47.0047,000 credits"]
        # A phone drops the price of one image (the table above has it) to fit the batches.
        per_image = [] if viewport is PHONE else ["47 credits"]
        expect(row.get_by_role("cell")).to_have_text(per_image + batches)
        screenshot(page, name)

    page.set_viewport_size(DESKTOP)
    footer = page.get_by_role("contentinfo")
    expect(footer.get_by_role("link", name="Contact: help@seedream.example")).to_have_attribute(
        "href", "mailto:help@seedream.example"
    )
    for link, title, name in [
        ("Terms", "Terms of service", "terms"),
        ("Privacy", "Privacy policy", "privacy"),
        ("Acceptable use", "Acceptable use policy", "acceptable-use"),
    ]:
        page.get_by_role("contentinfo").get_by_role("link", name=link, exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(title)
        settle(page, console_errors)
        assert axe_violations(page, title) == []
        screenshot(page, f"legal-{name}")
        page.set_viewport_size(PHONE)
        settle(page, console_errors, phone=True)
        screenshot(page, f"legal-{name}-phone")
        page.set_viewport_size(DESKTOP)


def test_without_showcase_images_the_home_page_has_no_showcase(
    live_server: Any, page: Page, console_errors: list[str]
) -> None:
    gallery_image(verified_customer("private@example.com"))  # private: not marked

    load(page, live_server.url + "/", console_errors)

    expect(page.get_by_role("region", name="Made with Seedream API")).to_have_count(0)
    expect(page.locator("main img")).to_have_count(0)


def test_the_batch_prices_fit_a_phone(
    live_server: Any, page: Page, console_errors: list[str]
) -> None:
    page.set_viewport_size(PHONE)
    load(page, live_server.url + "/", console_errors, phone=True)
    box = page.get_by_role("region", name="Cost of a batch of images per model")
    assert box.evaluate("e => e.scrollWidth <= e.clientWidth"), "the batch table scrolls"
