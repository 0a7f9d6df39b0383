"""A set and a layer split in a real Chromium: made through the API, each one tile in the gallery,
the set's strip and the split's stack (the boxes drawn over the base) on their pages, the layers
downloaded as a zip; on a desktop and on a phone."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from keys import services as keys
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
from tests.support.pictures import BLUE, picture

pytestmark = pytest.mark.usefixtures("default_prices")


def _post(live_api: str, raw_key: str, path: str, body: dict[str, Any]) -> None:
    response = httpx.post(
        f"{live_api}{path}", headers={"Authorization": f"Bearer {raw_key}"}, json=body, timeout=60
    )
    assert response.status_code == 200, response.text


def test_a_set_and_a_split_in_the_gallery_on_desktop_and_phone(
    live_server: Any,
    live_api: str,
    live_server_env: dict[str, str],
    settings: Any,
    page: Page,
    console_errors: list[str],
    screenshot: Callable[[Page, str], Path],
    tmp_path: Path,
) -> None:
    # The API's server stores the images under its DATA_DIR: the pages' server must find them.
    settings.MEDIA_ROOT = str(Path(live_server_env["DATA_DIR"]) / "media")
    user = verified_customer("layers@example.com")
    give_credits(user, 2000)
    raw_key = keys.create_key(user.personal_account, "studio").raw_key
    _post(live_api, raw_key, "/v1/images/generations", {
        "model": "seedream-4-0", "prompt": "a comic strip of a fox [sim:set-count=3]",
        "size": "1K", "sequential_image_generation": "auto",
        "sequential_image_generation_options": {"max_images": 4},
    })  # fmt: skip
    source = base64.b64encode(picture(BLUE, (1024, 768), "JPEG")).decode()
    _post(live_api, raw_key, "/v1/images/edits", {
        "model": "seedream-5-0-pro", "layer_decomposition": True, "size": "1K",
        "prompt": "the poster's parts [sim:layers=3]",
        "images": [{"image_url": f"data:image/jpeg;base64,{source}"}],
    })  # fmt: skip
    sign_in_as(page, live_server.url, user)

    load(page, f"{live_server.url}/dashboard/gallery/", console_errors)
    tiles = page.locator(".gallery-grid li")
    expect(tiles).to_have_count(2)
    expect(tiles.nth(0).locator(".tile-badge")).to_have_text("3 layers")
    expect(tiles.nth(1).locator(".tile-badge")).to_have_text("set of 3")
    screenshot(page, "gallery-groups")

    tiles.nth(1).locator("a").click()
    settle(page, console_errors)
    expect(page.get_by_role("heading", level=1)).to_have_text("Image 1 of a set of 3")
    expect(page.locator(".sibling-thumbs li")).to_have_count(3)
    page.locator(".sibling-thumbs a").nth(2).click()
    settle(page, console_errors)
    expect(page.get_by_role("heading", level=1)).to_have_text("Image 3 of a set of 3")
    assert axe_violations(page, "set image") == []
    screenshot(page, "gallery-set-image")

    load(page, f"{live_server.url}/dashboard/gallery/", console_errors)
    page.locator(".gallery-grid li").first.locator("a").click()
    settle(page, console_errors)
    expect(page.get_by_role("heading", level=1)).to_have_text("Base of a layer split")
    expect(page.locator("svg.layer-boxes rect.line")).to_have_count(3)
    expect(page.locator(".layer-list li")).to_have_count(4)
    assert axe_violations(page, "split base") == []
    screenshot(page, "gallery-split")
    split_url = page.url

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download layers (.zip)").click()
    download = download_info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert download.suggested_filename.endswith("-layers.zip")
    with zipfile.ZipFile(io.BytesIO(saved.read_bytes())) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert len(archive.namelist()) == 1 + 1 + len(manifest["layers"]) == 5
    # Chromium reports a navigation that turns into a download as an aborted request.
    console_errors[:] = [e for e in console_errors if not e.endswith("layers.zip")]

    page.locator(".layer-row").nth(2).click()
    settle(page, console_errors)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Layer 2: ")
    expect(page.locator("svg.layer-boxes .layer-box.current")).to_have_count(1)
    assert axe_violations(page, "split layer") == []
    screenshot(page, "gallery-layer")
    layer_url = page.url

    page.set_viewport_size(PHONE)
    for url, name in [
        (f"{live_server.url}/dashboard/gallery/", "gallery-groups-phone"),
        (split_url, "gallery-split-phone"),
        (layer_url, "gallery-layer-phone"),
    ]:
        load(page, url, console_errors, phone=True)
        screenshot(page, name)
    page.set_viewport_size(DESKTOP)
