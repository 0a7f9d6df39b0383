"""Sets and layer splits in a real Chromium, with a real Celery worker on Redis: "What to make"
where the model has it, the count of the way chosen (and only it) shown, the live price of the
set or split, a set of three made and shown on its card, and a split of one picture."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from dashboard.forms import TIMES
from tests.browser.support import (
    DESKTOP,
    PHONE,
    axe_violations,
    give_credits,
    load,
    settle,
    sign_in_as,
    verified_customer,
)
from tests.support.pictures import RED, picture

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("default_prices")]


def shot_both(
    page: Page, console_errors: list[str], screenshot: Callable[[Page, str], Path], name: str
) -> None:
    """The page as it is, on a desktop and on a phone (no sideways scrolling), then back.
    Taken after the form's last swap: a Playwright screenshot leaves an empty style attribute
    on text fields (it hides the caret), which htmx would carry into a new form, and the
    Content-Security-Policy refuse."""
    settle(page, console_errors)
    assert axe_violations(page, name) == []
    screenshot(page, name)
    page.set_viewport_size(PHONE)
    settle(page, console_errors, phone=True)
    screenshot(page, f"{name}-phone")
    page.set_viewport_size(DESKTOP)


def test_a_set_of_three_and_a_split_from_the_form(
    live_server: Any,
    worker: None,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
    tmp_path: Path,
) -> None:
    user = verified_customer("sets@example.com")
    give_credits(user, 1000)
    sign_in_as(page, live_server.url, user)
    playground = f"{live_server.url}/dashboard/playground/"
    load(page, playground, console_errors)

    # Seedream 4.0 makes sets, not splits: images are chosen, and only their count is shown.
    what = page.get_by_role("group", name="What to make")
    expect(what.get_by_role("radio")).to_have_count(2)
    expect(what.get_by_role("radio", name="Images", exact=True)).to_be_checked()
    expect(page.get_by_label("Number of images")).to_be_visible()
    expect(page.get_by_label("Images in the set, at most")).to_be_hidden()

    what.get_by_role("radio", name="A set of up to 15 related images").check()
    in_the_set = page.get_by_label("Images in the set, at most")
    expect(in_the_set).to_be_visible()
    expect(in_the_set).to_have_value("4")
    expect(page.get_by_label("Number of images")).to_be_hidden()
    page.get_by_label("Size", exact=True).select_option("1K")
    expect(page.locator("#quote")).to_contain_text("160 credits")
    in_the_set.fill("3")
    in_the_set.dispatch_event("change")
    expect(page.locator("#quote")).to_contain_text("120 credits")
    expect(page.locator("#quote")).to_contain_text("for a set of up to 3 images at 40 each")
    page.get_by_label("Prompt").fill("a fox in three panels, as a comic strip")
    shot_both(page, console_errors, screenshot, "playground-set")

    page.get_by_role("button", name="Generate").click()
    card = page.locator("article.generation").first
    expect(card.locator(".badge")).to_have_text("succeeded", timeout=30_000)
    expect(card.locator(".results img")).to_have_count(3)
    expect(card).to_contain_text("Charged 120 credits")
    expect(page.locator("#balance")).to_have_text("880")
    settle(page, console_errors)
    screenshot(page, "playground-set-done")

    # 5.0 Pro splits a picture into layers: the split's sizes, an optional prompt, one picture.
    load(page, playground, console_errors)
    page.get_by_label("Model").select_option("seedream-5-0-pro")
    what = page.get_by_role("group", name="What to make")
    expect(what.get_by_role("radio", name="A set of up to 15 related images")).to_have_count(0)
    what.get_by_role("radio", name="Split the reference image into layers (up to 16)").check()
    expect(page.get_by_label("Prompt (optional in a split)")).to_be_visible()
    size = page.get_by_label("Size", exact=True)
    expect(size.locator("option")).to_have_text(
        [re.compile(r"^1K"), re.compile(r"^1\.5K"), re.compile(r"^2K"), re.compile(r"^auto")]
    )
    expect(size).to_have_value("auto")
    expect(page.get_by_label("Custom size")).to_have_count(0)  # a split takes no WxH
    expect(page.locator("#quote")).to_contain_text("A layer split takes exactly one image")
    source = tmp_path / "still-life.png"
    source.write_bytes(picture(RED, (768, 512)))
    picture_to_split = f"Reference image (the picture to split, at least 512 {TIMES} 512)"
    page.get_by_label(picture_to_split).set_input_files([source])
    layers = page.get_by_label("Layers, at most")
    expect(layers).to_have_value("8")
    size.select_option("1K")
    layers.fill("4")
    layers.dispatch_event("change")
    expect(page.locator("#quote")).to_contain_text("for the base and up to 4 layers (5 images)")
    expect(page.locator("#quote")).to_contain_text("300 credits")  # 5 at 60, the picture free
    shot_both(page, console_errors, screenshot, "playground-split")

    page.get_by_role("button", name="Generate").click()
    card = page.locator("article.generation").first
    expect(card.locator(".badge")).to_have_text("succeeded", timeout=30_000)
    expect(card.locator(".results img")).to_have_count(4)  # the base and the simulator's 3
    expect(card.locator(".input-thumbs img")).to_have_count(1)
    settle(page, console_errors)
    screenshot(page, "playground-split-done")
