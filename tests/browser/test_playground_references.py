"""Reference images in a real Chromium, with a real Celery worker on Redis: chosen from disk and
dropped, previewed and removed, priced live, generated from, and shown on the card, the gallery
tile and the image page; then an image used as the reference of the next one."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import FilePayload, Page, expect

from dashboard.forms import TIMES
from tests.browser.support import (
    PHONE,
    axe_violations,
    give_credits,
    load,
    settle,
    sign_in_as,
    verified_customer,
)
from tests.support.pictures import BLUE, GREEN, RED, heic, picture

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("default_prices")]

# Builds a DataTransfer holding one PNG (from base64) as a file dropped from the desktop would.
DROPPED_FILE = """([name, b64]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type: "image/png" }));
  return transfer;
}"""
ALL_LOADED = """(selector) => [...document.querySelectorAll(selector)]
  .every((img) => img.complete && img.naturalWidth > 0)"""


def test_reference_images_from_disk_and_dropped_are_generated_from_and_shown(
    live_server: Any,
    worker: None,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
    tmp_path: Path,
) -> None:
    user = verified_customer("editor@example.com")
    give_credits(user, 1000)
    sign_in_as(page, live_server.url, user)
    red, blue = tmp_path / "red-barn.png", tmp_path / "blue-sky.jpg"
    red.write_bytes(picture(RED, (320, 240)))
    blue.write_bytes(picture(BLUE, (240, 320), "JPEG"))

    load(page, f"{live_server.url}/dashboard/playground/", console_errors)
    page.get_by_label("Model").select_option("seedream-5-0-pro")
    expect(page.locator("#reference-limits")).to_contain_text("Seedream 5.0 Pro takes up to 10")
    page.get_by_label("Size", exact=True).select_option("1K")
    page.get_by_label("Reference images (optional)").set_input_files([red, blue])

    chosen = page.locator("#reference-list li")
    expect(chosen).to_have_count(2)
    expect(chosen.first).to_contain_text("1. red-barn.png")
    expect(page.locator("#quote")).to_contain_text("and 2 reference images (1 free, 1 at")
    # A third, dropped on the input's area, then taken out again.
    dropped = page.evaluate_handle(
        DROPPED_FILE, ["green.png", base64.b64encode(picture(GREEN)).decode()]
    )
    page.dispatch_event("[data-dropzone]", "drop", {"dataTransfer": dropped})
    expect(chosen).to_have_count(3)
    expect(page.locator("#quote")).to_contain_text("and 3 reference images (1 free, 2 at")
    page.get_by_role("button", name="Remove green.png").click()
    expect(chosen).to_have_count(2)
    expect(page.locator("#quote")).to_contain_text("and 2 reference images")
    # Another model's form keeps the chosen files.
    page.get_by_label("Model").select_option("seedream-4-0")
    expect(page.locator("#reference-limits")).to_contain_text("Seedream 4.0 takes up to 14")
    expect(chosen).to_have_count(2)
    page.get_by_label("Model").select_option("seedream-5-0-pro")
    expect(page.locator("#reference-limits")).to_contain_text("Seedream 5.0 Pro")
    page.get_by_label("Size", exact=True).select_option("1K")
    expect(chosen).to_have_count(2)
    quote = page.locator("#quote strong").inner_text()
    # Taken after the form's last swap: a Playwright screenshot leaves an empty style attribute
    # on text fields (it hides the caret), which htmx would carry into a new form, and the
    # Content-Security-Policy refuse.
    settle(page, console_errors)
    assert axe_violations(page, "playground with references") == []
    screenshot(page, "playground-references")

    page.get_by_label("Prompt").fill("the barn under the sky, as a watercolour")
    page.get_by_role("button", name="Generate").click()
    card = page.locator("article.generation").first
    expect(card.locator(".input-thumbs img")).to_have_count(2)
    expect(card.locator(".badge")).to_have_text("succeeded", timeout=30_000)
    expect(card).to_contain_text(f"Charged {quote}")
    settle(page, console_errors)
    assert page.evaluate(ALL_LOADED, "article.generation .input-thumbs img")
    screenshot(page, "playground-references-done")

    load(page, f"{live_server.url}/dashboard/gallery/", console_errors)
    tile = page.locator(".gallery-grid li").first
    expect(tile.locator(".tile-inputs img")).to_have_count(2)
    expect(tile).to_contain_text("made from 2 references")
    assert page.evaluate(ALL_LOADED, ".tile-inputs img")
    screenshot(page, "gallery-references")

    tile.locator("a").click()
    settle(page, console_errors)
    inputs = page.get_by_role("list", name="Reference images it was made from")
    expect(inputs.get_by_role("img")).to_have_count(2)
    expect(inputs.get_by_role("img").first).to_have_attribute(
        "alt", f"Reference image 1 (320 {TIMES} 240)"
    )
    assert page.evaluate(ALL_LOADED, ".made-from .input-thumbs img")
    assert axe_violations(page, "image page with its references") == []
    screenshot(page, "gallery-image-references")
    page.set_viewport_size(PHONE)
    settle(page, console_errors, phone=True)
    screenshot(page, "gallery-image-references-phone")

    # The image becomes the reference of the next request, with a file added to it.
    page.get_by_role("link", name="Use as reference").click()
    settle(page, console_errors, phone=True)
    expect(page.locator(".gallery-picks input:checked")).to_have_count(1)
    page.get_by_label("Reference images (optional)").set_input_files([red])
    expect(chosen).to_have_count(1)
    expect(chosen.first).to_contain_text("2. red-barn.png")  # after the gallery pick
    expect(page.locator("#quote")).to_contain_text("and 2 reference images")
    settle(page, console_errors, phone=True)
    assert axe_violations(page, "playground with a gallery pick") == []
    screenshot(page, "playground-references-phone")


def test_an_iphones_heic_photograph_is_a_reference_on_pro_and_shows_as_a_thumbnail(
    live_server: Any,
    worker: None,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
) -> None:
    """Chromium cannot draw a HEIC: its preview is its extension, but the card, the gallery and
    the image page show the WebP thumbnail made from it."""
    user = verified_customer("iphone@example.com")
    give_credits(user, 1000)
    sign_in_as(page, live_server.url, user)
    # As Chromium on a Mac names an iPhone's photograph's type.
    photo: FilePayload = {
        "name": "IMG_0001.HEIC",
        "mimeType": "image/heic",
        "buffer": heic(BLUE, (320, 240)),
    }

    load(page, f"{live_server.url}/dashboard/playground/", console_errors)
    page.get_by_label("Model").select_option("seedream-5-0-pro")
    expect(page.locator("#reference-limits")).to_contain_text("GIF, HEIC or HEIF")
    page.get_by_label("Size", exact=True).select_option("1K")
    page.get_by_label("Reference images (optional)").set_input_files([photo])
    chosen = page.locator("#reference-list li")
    expect(chosen).to_have_count(1)
    expect(chosen.first).to_contain_text("1. IMG_0001.HEIC")
    expect(chosen.first).not_to_contain_text("Not a format")
    page.get_by_label("Prompt").fill("the sky at dusk, as a watercolour")
    settle(page, console_errors)
    screenshot(page, "playground-heic")

    page.get_by_role("button", name="Generate").click()
    card = page.locator("article.generation").first
    expect(card.locator(".input-thumbs img")).to_have_count(1)
    expect(card.locator(".badge")).to_have_text("succeeded", timeout=30_000)
    settle(page, console_errors)
    # Every picture on the card, its own too: leaving while one loads would cut it off.
    page.wait_for_function(ALL_LOADED, arg="article.generation img")
    screenshot(page, "playground-heic-done")

    load(page, f"{live_server.url}/dashboard/gallery/", console_errors)
    page.locator(".gallery-grid li a").first.click()
    settle(page, console_errors)
    inputs = page.get_by_role("list", name="Reference images it was made from")
    expect(inputs.get_by_role("img")).to_have_attribute(
        "alt", f"Reference image 1 (320 {TIMES} 240)"
    )
    assert page.evaluate(ALL_LOADED, ".made-from .input-thumbs img")
    screenshot(page, "gallery-image-heic")
    page.set_viewport_size(PHONE)
    settle(page, console_errors, phone=True)
    screenshot(page, "gallery-image-heic-phone")
