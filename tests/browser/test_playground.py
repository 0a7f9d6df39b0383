"""The playground and the gallery in a real Chromium, with a real Celery worker on Redis."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.support import PHONE, give_credits, load, settle, sign_in_as, verified_customer

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("default_prices")]


def test_generate_watch_open_download_and_delete(
    live_server: Any,
    worker: None,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
    tmp_path: Path,
) -> None:
    user = verified_customer("painter@example.com")
    give_credits(user, 1000)
    sign_in_as(page, live_server.url, user)
    load(page, f"{live_server.url}/dashboard/playground/", console_errors)
    expect(page.locator("#quote")).to_contain_text("credits")
    screenshot(page, "playground")

    page.get_by_label("Prompt").fill("a lighthouse in a storm [sim:latency=2]")
    page.get_by_label("Size", exact=True).select_option("1K")
    page.get_by_label("Number of images").select_option("2")
    expect(page.locator("#quote")).to_contain_text("80 credits")  # the price follows the form
    page.evaluate("window.stillTheSamePage = true")
    page.get_by_role("button", name="Generate").click()

    card = page.locator("article.generation").first
    expect(card.locator(".badge")).to_have_text(["queued"], timeout=5000)  # or already running
    expect(card.locator(".badge")).to_have_text("running", timeout=10_000)
    screenshot(page, "playground-running")
    expect(card.locator(".badge")).to_have_text("succeeded", timeout=30_000)
    assert page.evaluate("window.stillTheSamePage") is True  # no reload happened
    expect(card.locator(".results img")).to_have_count(2)
    expect(card).to_contain_text("Charged 80 credits")
    expect(page.locator("#balance")).to_have_text("920")
    settle(page, console_errors)
    screenshot(page, "playground-done")

    card.locator(".results a").first.click()  # the lightbox, and from it the image's page
    page.get_by_role("dialog").get_by_role("link", name="Image page").click()
    settle(page, console_errors)
    expect(page.get_by_role("heading", level=1)).to_have_text("Image 1 of 2")
    screenshot(page, "gallery-image")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download original").click()
    download = download_info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert download.suggested_filename.endswith("-1.jpg")
    assert saved.read_bytes()[:2] == b"\xff\xd8"  # a JPEG
    # Chromium reports a navigation that turns into a download as an aborted request.
    console_errors.remove(f"failed: {page.url}download/")

    load(page, f"{live_server.url}/dashboard/gallery/", console_errors)
    tiles = page.locator(".gallery-grid li")
    expect(tiles).to_have_count(2)
    screenshot(page, "gallery")
    tiles.first.locator("a").click()  # the newest: image 2
    settle(page, console_errors)
    page.get_by_role("link", name="Delete…").click()
    settle(page, console_errors)
    screenshot(page, "gallery-delete")
    page.get_by_role("button", name="Delete image").click()
    settle(page, console_errors)
    expect(page.locator(".gallery-grid li")).to_have_count(1)
    expect(page.get_by_role("status")).to_contain_text("The image was deleted")

    page.set_viewport_size(PHONE)
    load(page, f"{live_server.url}/dashboard/playground/", console_errors, phone=True)
    screenshot(page, "playground-phone")
