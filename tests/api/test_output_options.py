"""Through POST /v1/images/generations: OpenAI's quality, output_format, output_compression and
background, as a customer sends them. Seedream 4.0 (the simulator) makes JPEG only, so a PNG or
WebP from it is re-encoded by us, then marked with its provenance; 5.5's transparent PNG comes
from a stand-in upstream that answers as the reference says 5.5 does."""

from __future__ import annotations

import base64
import io
import json
import uuid

import pytest
from aiohttp import web
from PIL import Image as PILImage

from billing.models import PriceTier
from generation.models import Generation, Image
from tests.support.aiohttp_server import serving
from tests.support.money import ledger_kinds
from tests.support.provenance import TRAINED_ALGORITHMIC_MEDIA, iptc_properties
from tests.support.responses import json_of

pytestmark = pytest.mark.smoke


@pytest.fixture(autouse=True)
def _no_signer(settings):
    settings.C2PA_SIGNING_KEY = settings.C2PA_CERTIFICATE = ""
    settings.C2PA_DEVELOPMENT_SIGNER = False


def generate(client, key, **body):
    body = {"model": "seedream-4-0", "prompt": f"a lighthouse {uuid.uuid4().hex}", **body}
    return client.post(
        "/v1/images/generations",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


def fetch(client, url):
    response = client.get(url.removeprefix("http://testserver"))
    assert response.status_code == 200
    return response, b"".join(response.streaming_content)


def opened(data: bytes) -> PILImage.Image:
    image = PILImage.open(io.BytesIO(data))
    image.load()
    return image


# --- Bad values: 400 in the documented shape, nothing charged -----------------------------------


@pytest.mark.parametrize(
    ("change", "param", "code"),
    [
        ({"quality": "ultra"}, "quality", "invalid_value"),
        ({"quality": 3}, "quality", "invalid_value"),
        ({"output_format": "gif"}, "output_format", "invalid_value"),
        ({"output_format": "PNG"}, "output_format", "invalid_value"),
        ({"output_format": True}, "output_format", "invalid_value"),
        ({"output_compression": -1}, "output_compression", "invalid_value"),
        ({"output_compression": 101}, "output_compression", "invalid_value"),
        ({"output_compression": "50"}, "output_compression", "invalid_value"),
        ({"output_compression": 50.5}, "output_compression", "invalid_value"),
        ({"background": "clear"}, "background", "invalid_value"),
        ({"background": 0}, "background", "invalid_value"),
        ({"background": "transparent"}, "background", "unsupported_parameter"),
        ({"model": "seedream-5-0-pro", "background": "transparent"}, "background",
         "unsupported_parameter"),
        ({"model": "seedream-5-5", "background": "transparent", "output_format": "jpeg"},
         "background", "invalid_value"),
    ],
)  # fmt: skip
def test_a_bad_delivery_option_is_a_400_naming_it(
    client, owner_key, untouched, change, param, code
):
    response = generate(client, owner_key, **change)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    assert error["message"]


def test_transparency_where_the_model_cannot_names_the_models_that_can(client, owner_key):
    error = generate(client, owner_key, background="transparent").json()["error"]
    assert "seedream-4-0" in error["message"]
    assert "seedream-5-5" in error["message"]


# --- Formats re-encoded by us (Seedream 4.0 makes JPEG) -----------------------------------------


def test_the_answer_says_the_format_and_size_delivered(client, owner_key):
    body = generate(client, owner_key, size="1024x1024").json()

    assert (body["output_format"], body["size"]) == ("jpeg", "1024x1024")
    assert "background" not in body


def test_a_png_asked_of_a_jpeg_model_is_hosted_as_a_marked_png(client, owner, owner_key):
    response = generate(client, owner_key, size="1024x1024", output_format="png")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["output_format"], body["size"]) == ("png", "1024x1024")
    url = body["data"][0]["url"]
    assert url.endswith(".png")
    hosted, data = fetch(client, url)
    assert hosted["Content-Type"] == "image/png"
    assert (opened(data).format, opened(data).size) == ("PNG", (1024, 1024))
    # Re-encoded first, then marked: the provenance is in the file we host.
    assert iptc_properties(data)["DigitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    image = Image.objects.get()
    assert (image.content_type, image.bytes) == ("image/png", len(data))
    assert ledger_kinds(owner)[-1] == ("charge", -40)


def test_a_webp_as_b64_json_is_a_marked_webp(client, owner_key):
    response = generate(
        client, owner_key, size="1024x1024", output_format="webp", response_format="b64_json"
    )

    assert response.status_code == 200
    body = json_of(response)
    assert body["output_format"] == "webp"
    data = base64.b64decode(body["data"][0]["b64_json"])
    assert opened(data).format == "WEBP"
    assert iptc_properties(data)["DigitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    with Image.objects.get().file.open("rb") as stored:
        assert stored.read() == data


def test_output_compression_compresses_a_jpeg(client, owner_key):
    prompt = f"[sim:photo] a harbour {uuid.uuid4().hex}"
    sizes = []
    for compression in (None, 10):
        options = {} if compression is None else {"output_compression": compression}
        body = generate(client, owner_key, prompt=prompt, size="1024x1024", **options).json()
        _, data = fetch(client, body["data"][0]["url"])
        assert (body["output_format"], opened(data).format) == ("jpeg", "JPEG")
        sizes.append(len(data))

    assert sizes[1] < sizes[0] / 2


# --- quality ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "delivered", "credits"),
    [
        ({"quality": "low"}, "1024x1024", 40),
        ({"quality": "hd"}, "4096x4096", 60),
        ({"quality": "high", "size": "1536x1024"}, "1536x1024", 40),
    ],
)
def test_quality_picks_the_size_and_its_price_unless_a_size_is_given(
    client, owner, owner_key, options, delivered, credits
):
    body = generate(client, owner_key, **options).json()

    assert body["size"] == delivered
    assert body["credits_charged"] == credits
    assert ledger_kinds(owner)[-1] == ("charge", -credits)


# --- seed + i -----------------------------------------------------------------------------------


def test_a_seeded_batch_is_not_n_copies_of_one_picture(client, owner_key):
    body = generate(client, owner_key, model="seedream-3-0", seed=42, n=2).json()

    pictures = [opened(fetch(client, item["url"])[1]).tobytes() for item in body["data"]]
    assert len(pictures) == 2
    assert pictures[0] != pictures[1]
    generation = Generation.objects.get()
    assert generation.params["seed"] == 42  # as asked; image i was sent seed + i


# --- Transparency (Seedream 5.5, from a stand-in upstream) --------------------------------------


def transparent_png(size=(64, 48)) -> bytes:
    image = PILImage.new("RGBA", size, (200, 30, 30, 255))
    image.paste((0, 0, 0, 0), (0, 0, size[0] // 2, size[1]))  # the left half fully transparent
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def seedream_5_5(settings, db):
    """Seedream 5.5 (on sale by its seeded price rule) behind a stand-in upstream answering with
    a transparent PNG; yields the bodies it was sent."""
    bodies: list[dict] = []
    image = base64.b64encode(transparent_png()).decode()

    async def upstream(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.json_response({"data": [{"b64_json": image, "size": "64x48"}]})

    settings.UPSTREAM_RESPONSE_FORMAT = "b64_json"
    with serving(upstream) as base_url:
        settings.UPSTREAM_BASE_URL = base_url
        yield bodies


@pytest.mark.parametrize(("asked", "delivered"), [(None, "png"), ("png", "png"), ("webp", "webp")])
def test_a_transparent_background_comes_back_with_a_real_alpha_channel(
    client, owner, owner_key, seedream_5_5, asked, delivered
):
    options = {} if asked is None else {"output_format": asked}
    response = generate(
        client, owner_key, model="seedream-5-5", background="transparent", **options
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["output_format"], body["background"], body["size"]) == (
        delivered,
        "transparent",
        "64x48",
    )
    (sent,) = seedream_5_5
    assert (sent["background"], sent["output_format"]) == ("transparent", "png")
    assert "sequential_image_generation" not in sent and "stream" not in sent
    hosted, data = fetch(client, body["data"][0]["url"])
    assert hosted["Content-Type"] == f"image/{delivered}"
    image = opened(data)
    assert (image.format, image.mode) == (delivered.upper(), "RGBA")
    assert image.getpixel((5, 5))[3] == 0
    assert image.getpixel((60, 5))[3] == 255
    assert iptc_properties(data)["DigitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    # A 64x48 image is in 5.5's lower pixel tier: charged at that tier's price.
    low_tier = (
        PriceTier.objects.filter(rule__model="seedream-5-5", max_pixels__isnull=False)
        .order_by("max_pixels")
        .first()
    )
    assert ledger_kinds(owner)[-1] == ("charge", -low_tier.credits_per_image)


def test_an_opaque_background_is_forwarded_where_taken_and_said_in_the_answer(
    client, owner_key, seedream_5_5
):
    body = generate(client, owner_key, model="seedream-5-5", background="opaque").json()

    assert body["background"] == "opaque"
    (sent,) = seedream_5_5
    assert sent["background"] == "opaque"
    assert "output_format" not in sent
