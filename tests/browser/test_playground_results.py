"""The playground's results in a real Chromium with a real Celery worker: placeholders, elapsed
time and the balance while a generation runs; the newest result large, its lightbox (keys,
focus), download and copy URL; and the state bugs of issue 18, each shown fixed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.support import (
    PHONE,
    axe_violations,
    give_credits,
    load,
    settle,
    sign_in_as,
    verified_customer,
)

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("default_prices")]


def open_playground(page: Page, base_url: str, console_errors: list[str], email: str) -> None:
    user = verified_customer(email)
    give_credits(user, 1000)
    sign_in_as(page, base_url, user)
    load(page, f"{base_url}/dashboard/playground/", console_errors)


def test_a_run_shows_its_progress_then_its_images_large_in_a_lightbox(
    live_server: Any,
    worker: None,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
) -> None:
    open_playground(page, live_server.url, console_errors, "viewer@example.com")
    page.get_by_label("Prompt").fill("a harbour at dawn [sim:latency=3]")
    page.get_by_label("Size", exact=True).select_option("2560x1440")
    page.get_by_label("Number of images").select_option("2")
    expect(page.locator("#quote")).to_contain_text("80 credits")
    page.get_by_role("button", name="Generate").click()

    # While it runs: the hold is off the balance at once, a placeholder per image at 16:9,
    # the time it has taken and what the model usually takes.
    card = page.locator("article.generation").first
    expect(page.locator("#balance")).to_have_text("920")
    expect(card.locator("svg.placeholder")).to_have_count(2)
    box = card.locator("svg.placeholder").first.bounding_box()
    assert box is not None
    # Within its 1 px border: 16:9, the size asked for.
    assert abs((box["width"] - 2) / (box["height"] - 2) - 2560 / 1440) < 0.02, box
    expect(card.locator(".progress")).to_contain_text("so far")
    expect(card.locator(".progress")).to_contain_text("Seedream 4.0 usually takes 2\u201360 s")
    expect(card.locator(".badge")).to_have_text("running", timeout=10_000)
    screenshot(page, "playground-running")

    expect(card.locator(".badge")).to_have_text("succeeded", timeout=30_000)
    expect(card.locator(".results img")).to_have_count(2)
    expect(page.locator("#balance")).to_have_text("920")  # settled: 80 charged, nothing back
    # The newest result is large: wider than the old 160 px thumbnails by far.
    first = card.locator(".results img").first
    expect(first).to_be_visible()
    width = first.bounding_box()["width"]  # type: ignore[index]
    assert width > 250, f"the newest image is {width}px wide"
    details = card.locator("[data-lightbox]").first.get_attribute("href") or ""
    expect(card.get_by_role("link", name="Download image 1")).to_have_attribute(
        "href", f"{details}download/"
    )
    settle(page, console_errors)
    screenshot(page, "playground-done")
    assert axe_violations(page, "playground, done") == []

    # Copy URL: the image's full address.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    copy = card.locator("[data-copy-url]").first
    expect(copy).to_have_accessible_name("Copy URL of image 1")
    copy.click()
    expect(copy).to_contain_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith(f"{live_server.url}/img/") and copied.endswith((".jpeg", ".jpg"))

    # The lightbox: opened from the image, keys step through the images, focus stays inside,
    # Escape closes it and focus goes back to the image.
    opener = card.locator("[data-lightbox]").first
    opener.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_have_text("Image 1 of 2 (1 of 2 on this page)")
    expect(dialog.get_by_role("button", name="Close the image")).to_be_focused()
    image = dialog.locator("#lightbox-image")
    expect(image).to_have_js_property("complete", True)
    screenshot(page, "playground-lightbox")
    assert axe_violations(page, "playground, lightbox") == []
    page.keyboard.press("ArrowRight")
    expect(dialog.get_by_role("heading")).to_have_text("Image 2 of 2 (2 of 2 on this page)")
    page.keyboard.press("ArrowRight")  # round to the first again
    expect(dialog.get_by_role("heading")).to_have_text("Image 1 of 2 (1 of 2 on this page)")
    page.keyboard.press("ArrowLeft")
    expect(dialog.get_by_role("heading")).to_have_text("Image 2 of 2 (2 of 2 on this page)")
    for _ in range(12):  # more than its controls: Tab wraps round inside the dialog
        page.keyboard.press("Tab")
        assert page.evaluate("document.getElementById('lightbox').contains(document.activeElement)")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()

    # A second generation on the same page: no console error (htmx:oobErrorNoTarget was one).
    page.get_by_label("Prompt").fill("a second harbour [sim:latency=1]")
    page.get_by_label("Number of images").select_option("1")
    page.get_by_role("button", name="Generate").click()
    second = page.locator("article.generation").first
    expect(second).to_contain_text("a second harbour")
    expect(second.locator(".badge")).to_have_text("succeeded", timeout=30_000)
    expect(page.locator("#balance")).to_have_text("880")
    expect(page.locator("article.generation")).to_have_count(2)
    settle(page, console_errors)  # asserts no console errors
    expect(page.locator("#no-generations")).to_be_hidden()

    page.set_viewport_size(PHONE)
    load(page, f"{live_server.url}/dashboard/playground/", console_errors, phone=True)
    screenshot(page, "playground-done-phone")
    page.locator("article.generation").first.locator("[data-lightbox]").first.click()
    expect(page.get_by_role("dialog")).to_be_visible()
    expect(page.locator("#lightbox-image")).to_have_js_property("complete", True)
    screenshot(page, "playground-lightbox-phone")
    page.keyboard.press("Escape")


def test_a_failed_card_keeps_its_explanation_after_a_reload(
    live_server: Any,
    worker: None,
    page: Page,
    console_errors: list[str],
) -> None:
    open_playground(page, live_server.url, console_errors, "blocked@example.com")
    page.get_by_label("Prompt").fill("nope [sim:block-prompt]")
    page.get_by_role("button", name="Generate").click()
    card = page.locator("article.generation").first
    expect(card.locator(".badge")).to_have_text("failed", timeout=30_000)
    explanation = "The content filter blocked this prompt"
    expect(card).to_contain_text(explanation)
    expect(page.locator("#balance")).to_have_text("1,000")  # the hold came back

    load(page, f"{live_server.url}/dashboard/playground/", console_errors)
    expect(page.locator("article.generation").first).to_contain_text(explanation)


def test_the_form_keeps_a_typed_size_across_models_and_refuses_a_bad_one_once(
    live_server: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
) -> None:
    open_playground(page, live_server.url, console_errors, "sizes@example.com")
    size = page.get_by_label("Size", exact=True)
    custom = page.get_by_label("Custom size")

    custom.fill("2560x1440")  # typing a size chooses "Custom size…"
    expect(size).to_have_value("custom")
    for model in ["seedream-4-5", "seedream-3-0", "seedream-4-0"]:
        with page.expect_response(lambda response: "/dashboard/playground/?" in response.url):
            page.get_by_label("Model").select_option(model)
        page.wait_for_load_state("networkidle")  # the new form is in
        expect(page.get_by_label("Model")).to_have_value(model)
        expect(page.get_by_label("Custom size")).to_have_value("2560x1440")
        expect(page.get_by_label("Size", exact=True)).to_have_value("custom")

    page.get_by_label("Prompt").fill("a tiny fox")
    page.get_by_label("Custom size").fill("9x9")
    page.get_by_label("Custom size").press("Tab")  # a change: the price follows
    expect(page.locator("#quote")).to_contain_text("9\u00d79 is too small for Seedream 4.0")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#id_custom_size")).to_have_attribute("aria-invalid", "true")
    form = page.locator("#playground-form")
    expect(form.get_by_text("is too small for", exact=False)).to_have_count(1)
    expect(form).not_to_contain_text("Invalid value")
    settle(page, console_errors)
    screenshot(page, "playground-size-refused")
