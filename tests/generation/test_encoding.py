"""Re-encoding to the format a customer asked for (generation/encoding.py): PNG lossless with its
alpha channel, JPEG and WebP at OpenAI's output_compression, and an image already right left as
the upstream made it."""

from __future__ import annotations

import io

import pytest
from PIL import Image as PILImage

from generation.encoding import Delivery
from generation.upstream import DeliveredImage

pytestmark = pytest.mark.smoke


def picture(mode: str = "RGB", image_format: str = "JPEG", size=(256, 192)) -> bytes:
    """A picture with detail (a gradient and noise), so compression shows."""
    image = PILImage.effect_noise(size, 60).convert("RGB")
    gradient = PILImage.linear_gradient("L").resize(size)
    image = PILImage.merge("RGB", (image.getchannel(0), gradient, image.getchannel(0)))
    if mode == "RGBA":
        alpha = PILImage.new("L", size, 255)
        alpha.paste(0, (0, 0, size[0] // 2, size[1]))  # the left half fully transparent
        image.putalpha(alpha)
    out = io.BytesIO()
    image.save(out, image_format, **({"quality": 90} if image_format == "JPEG" else {}))
    return out.getvalue()


def delivered(data: bytes) -> DeliveredImage:
    with PILImage.open(io.BytesIO(data)) as image:
        image_format, (width, height) = image.format, image.size
    content_type, extension = {
        "JPEG": ("image/jpeg", "jpg"),
        "PNG": ("image/png", "png"),
        "WEBP": ("image/webp", "webp"),
    }[str(image_format)]
    return DeliveredImage(data, content_type, extension, width, height)


def opened(image: DeliveredImage) -> PILImage.Image:
    result = PILImage.open(io.BytesIO(image.data))
    result.load()
    return result


def test_a_jpeg_asked_for_as_png_is_a_lossless_png_of_its_pixels():
    jpeg = delivered(picture())

    png = Delivery("png").apply(jpeg)

    assert (png.content_type, png.extension) == ("image/png", "png")
    assert (png.width, png.height) == (256, 192)
    assert opened(png).format == "PNG"
    assert opened(png).tobytes() == opened(jpeg).convert("RGB").tobytes()


def test_a_transparent_png_asked_for_as_webp_keeps_its_alpha_channel():
    png = delivered(picture("RGBA", "PNG"))

    webp = Delivery("webp", 90).apply(png)

    image = opened(webp)
    assert (webp.content_type, webp.extension, image.format) == ("image/webp", "webp", "WEBP")
    assert image.mode == "RGBA"
    assert image.getpixel((10, 10))[3] == 0  # the transparent half
    assert image.getpixel((250, 10))[3] == 255  # the opaque half


def test_a_transparent_png_stays_as_it_was_when_png_is_asked_for():
    png = delivered(picture("RGBA", "PNG"))
    assert Delivery("png").apply(png) is png
    # PNG is lossless: a compression does not apply to it.
    assert Delivery("png", 10).apply(png) is png


def test_jpeg_and_webp_are_encoded_at_output_compression():
    jpeg = delivered(picture())

    sizes = {
        (target, compression): len(Delivery(target, compression).apply(jpeg).data)
        for target in ("jpeg", "webp")
        for compression in (10, 90)
    }

    assert sizes[("jpeg", 10)] < sizes[("jpeg", 90)]
    assert sizes[("webp", 10)] < sizes[("webp", 90)]
    assert opened(Delivery("jpeg", 10).apply(jpeg)).format == "JPEG"


def test_an_image_already_in_the_format_is_left_as_made_unless_compressed_further():
    jpeg = delivered(picture())
    assert Delivery().apply(jpeg) is jpeg
    assert Delivery("jpeg").apply(jpeg) is jpeg
    assert Delivery("jpeg", 100).apply(jpeg) is jpeg
    # No format asked for, a compression: the upstream's own format, compressed.
    compressed = Delivery(None, 20).apply(jpeg)
    assert compressed.content_type == "image/jpeg"
    assert len(compressed.data) < len(jpeg.data)


def test_jpeg_has_no_alpha_channel():
    png = delivered(picture("RGBA", "PNG"))
    jpeg = Delivery("jpeg").apply(png)
    assert (opened(jpeg).format, opened(jpeg).mode) == ("JPEG", "RGB")


@pytest.mark.parametrize(
    ("params", "may_reencode"),
    [
        ({}, False),
        ({"output_compression": 100}, False),
        ({"output_format": "png"}, True),
        ({"output_compression": 50}, True),
    ],
)
def test_only_a_delivery_that_may_reencode_leaves_the_event_loop(params, may_reencode):
    assert Delivery.of(params).may_reencode is may_reencode
