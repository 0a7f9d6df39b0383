"""Reference images (``image``) show on the simulator's pictures, in order, and in /_sim/calls.

The band layout is documented in ``simulator.images.draw_reference_band``; these tests read it
back from the delivered pixels with ``reference_colours``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from PIL import Image

from simulator.images import ImageSpec, band_rows, reference_colours, render_image
from tests.support.pictures import heic
from tests.support.simulator import SIM_TEST_KEY, unique

pytestmark = pytest.mark.integration

KEY = SIM_TEST_KEY
V40 = "seedream-4-0-250828"
PRO = "seedream-5-0-pro-260628"
PHOTO_URL = "https://example.com/photo.png"  # never fetched: its column is grey
GREY = (128, 128, 128)
RED = (220, 30, 30)
GREEN = (30, 180, 60)
BLUE = (40, 60, 200)
JPEG_TOLERANCE = 24  # per channel: JPEG shifts a flat colour a little
JPEG_MCU_ROWS = 16  # 4:2:0 subsampling codes the picture in blocks of 16 rows


def png(*colours: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> bytes:
    """A PNG of vertical stripes of ``colours``, left to right, each as wide as the others."""
    image = Image.new("RGB", size)
    for i, colour in enumerate(colours):
        left, right = i * size[0] // len(colours), (i + 1) * size[0] // len(colours)
        image.paste(colour, (left, 0, right, size[1]))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def data_uri(data: bytes) -> str:
    return f"data:image/png;base64,{base64.b64encode(data).decode()}"


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> str:
    return data_uri(png(colour, size=size))


def generate(client: httpx.Client, base_url: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": V40,
        "prompt": unique("a red fox"),
        "size": "1K",
        "seed": 7,
        "watermark": False,
        "response_format": "b64_json",
        **fields,
    }
    response = client.post(
        f"{base_url}/images/generations", json=body, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def pictures(body: dict[str, Any]) -> list[Image.Image]:
    images: list[Image.Image] = []
    for entry in body["data"]:
        image = Image.open(io.BytesIO(base64.b64decode(entry["b64_json"])))
        image.load()
        images.append(image)
    return images


def assert_band(image: Image.Image, expected: Sequence[tuple[int, int, int]]) -> None:
    read = reference_colours(image, len(expected))
    for got, wanted in zip(read, expected, strict=True):
        assert all(abs(g - w) <= JPEG_TOLERANCE for g, w in zip(got, wanted, strict=True)), (
            read,
            expected,
        )


# --- The band -----------------------------------------------------------------------------------


def test_three_references_read_back_in_order_and_swapping_them_swaps_the_colours(
    client: httpx.Client, base_url: str
) -> None:
    prompt = unique("a red fox")

    [ordered] = pictures(
        generate(client, base_url, prompt=prompt, image=[solid(RED), solid(GREEN), solid(BLUE)])
    )
    [swapped] = pictures(
        generate(client, base_url, prompt=prompt, image=[solid(BLUE), solid(RED), solid(GREEN)])
    )

    assert_band(ordered, [RED, GREEN, BLUE])
    assert_band(swapped, [BLUE, RED, GREEN])


def test_one_reference_fills_the_whole_width_with_its_mean_colour(
    client: httpx.Client, base_url: str
) -> None:
    # Half red, half blue: the column is their mean, not either half.
    reference = data_uri(png((200, 0, 0), (0, 0, 200)))

    [image] = pictures(generate(client, base_url, image=reference))

    purple = (100, 0, 100)
    assert_band(image, [purple])
    middle = band_rows(image.height) // 2
    rgb = image.convert("RGB")
    for x in (2, image.width // 2, image.width - 3):  # both ends: one column, all the way across
        pixel = rgb.getpixel((x, middle))
        assert isinstance(pixel, tuple)
        assert all(abs(g - w) <= JPEG_TOLERANCE for g, w in zip(pixel, purple, strict=True))


def test_a_url_reference_is_never_fetched_and_gives_a_grey_column(
    client: httpx.Client, base_url: str
) -> None:
    [image] = pictures(generate(client, base_url, image=[PHOTO_URL, solid(RED)]))

    assert_band(image, [GREY, RED])


def test_a_heic_reference_is_read_on_pro_and_gives_its_colour(
    client: httpx.Client, base_url: str
) -> None:
    heic_uri = f"data:image/heic;base64,{base64.b64encode(heic(BLUE)).decode()}"

    [image] = pictures(generate(client, base_url, model=PRO, image=[heic_uri, solid(RED)]))

    assert_band(image, [BLUE, RED])


def test_a_linked_picture_carries_the_band_too(client: httpx.Client, base_url: str) -> None:
    body = generate(client, base_url, image=[solid(GREEN), solid(RED)], response_format="url")

    response = client.get(body["data"][0]["url"])

    assert response.status_code == 200, response.text
    assert_band(Image.open(io.BytesIO(response.content)), [GREEN, RED])


def test_every_image_of_a_set_carries_the_band(client: httpx.Client, base_url: str) -> None:
    body = generate(
        client,
        base_url,
        image=[solid(BLUE), solid(GREEN)],
        sequential_image_generation="auto",
        sequential_image_generation_options={"max_images": 3},
    )

    images = pictures(body)
    assert len(images) == 3
    for image in images:
        assert_band(image, [BLUE, GREEN])


def test_the_base_and_every_layer_carry_an_opaque_band(client: httpx.Client, base_url: str) -> None:
    body = generate(
        client,
        base_url,
        model=PRO,
        prompt="",
        size="1K",
        layer_decomposition=True,
        image=solid(GREEN, size=(1024, 768)),
    )

    base, *layers = pictures(body)
    assert len(layers) == 3
    assert_band(base, [GREEN])
    for layer in layers:
        assert layer.mode == "RGBA"
        assert_band(layer, [GREEN])
        band = layer.getchannel("A").crop((0, 0, layer.width, band_rows(layer.height)))
        assert band.getextrema() == (255, 255)
        assert layer.getchannel("A").getextrema()[0] == 0  # still transparent elsewhere


# --- Pictures without references, and the cache ------------------------------------------------


def test_references_change_only_the_band_and_never_share_a_cached_picture(
    client: httpx.Client, base_url: str
) -> None:
    fields: dict[str, Any] = {"prompt": unique("a lighthouse")}

    [plain_bytes] = generate(client, base_url, **fields)["data"]
    red = generate(client, base_url, image=solid(RED), **fields)["data"][0]
    blue = generate(client, base_url, image=solid(BLUE), **fields)["data"][0]
    [plain_again] = generate(client, base_url, **fields)["data"]

    assert plain_again["b64_json"] == plain_bytes["b64_json"]
    assert len({plain_bytes["b64_json"], red["b64_json"], blue["b64_json"]}) == 3
    [plain, with_red] = pictures({"data": [plain_bytes, red]})
    assert_band(with_red, [RED])
    # JPEG codes each block of 16 rows on its own, so blocks wholly below the band are coded
    # alike; one more block is skipped because the decoder's chroma upsampling blends the first
    # row of a block with the row above it.
    below = (-(-band_rows(plain.height) // JPEG_MCU_ROWS) + 1) * JPEG_MCU_ROWS
    box = (0, below, plain.width, plain.height)
    assert plain.crop(box).tobytes() == with_red.crop(box).tobytes()


def test_the_band_is_all_that_references_change_in_a_picture() -> None:
    fields: dict[str, Any] = {
        "seed": 3,
        "size": (640, 480),
        "watermark": True,
        "index": 1,
        "kind": "jpeg",
        "fmt": "png",
    }
    spec = ImageSpec.for_prompt("a fox", **fields)
    with_band = ImageSpec.for_prompt("a fox", **fields, references=(RED, GREEN))

    plain = Image.open(io.BytesIO(render_image(spec)))
    banded = Image.open(io.BytesIO(render_image(with_band)))

    # Lossless PNG: exactly the two colours in the band, exactly the plain picture below it.
    rows = band_rows(480)
    assert rows == 48
    assert banded.crop((0, 0, 320, rows)).getcolors() == [(320 * rows, RED)]
    assert banded.crop((320, 0, 640, rows)).getcolors() == [(320 * rows, GREEN)]
    assert banded.crop((0, rows, 640, 480)).tobytes() == plain.crop((0, rows, 640, 480)).tobytes()
    # A link carries the colours; one without references has no field for them.
    assert ImageSpec.from_token(with_band.token()) == with_band
    token = spec.token()
    assert "r" not in json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


# --- /_sim/calls --------------------------------------------------------------------------------


def test_calls_lists_each_call_s_references_in_order(client: httpx.Client, base_url: str) -> None:
    prompt = unique("a fox")
    red, blue = png(RED), png(BLUE)
    calls_url = base_url.removesuffix("/api/v3") + "/_sim/calls"

    generate(client, base_url, prompt=prompt, image=[data_uri(blue), PHOTO_URL, data_uri(red)])
    generate(client, base_url, prompt=prompt)
    refused = client.post(
        f"{base_url}/images/generations",
        json={"model": V40, "prompt": prompt, "image": [data_uri(red), "data:image/png;base64,!"]},
        headers={"Authorization": f"Bearer {KEY}"},
    )

    assert refused.status_code == 400
    assert client.get(calls_url, params={"prompt": prompt}).json() == {
        "calls": 3,
        "references": [
            [hashlib.sha256(blue).hexdigest(), PHOTO_URL, hashlib.sha256(red).hexdigest()],
            [],
            # A refused call is listed too; an item neither URL nor data URI is null.
            [hashlib.sha256(red).hexdigest(), None],
        ],
    }
