"""Image editing through the official `openai` package, unchanged, against our real server:
images.edit with one file and with a list of three (multipart, as the SDK sends it), and
images.generate with Seedream's ``image`` in extra_body. Each answer is what OpenAI's types
expect, the references arrive upstream in order, and the charge is the quote."""

from __future__ import annotations

import base64
import hashlib
import io
import uuid

import httpx
import openai
import pytest
from openai import OpenAI
from PIL import Image as PILImage

from simulator.images import reference_colours
from tests.support.money import assert_ledger_balanced
from tests.support.pictures import BLUE, GREEN, RED, data_url, heic, picture

pytestmark = [pytest.mark.integration, pytest.mark.smoke]


@pytest.fixture
def sdk(live_api, default_prices, user_factory, api_key_factory):
    def make(credits=1000):
        user = user_factory(credits=credits)
        key = api_key_factory(user).raw_key
        return user, OpenAI(base_url=f"{live_api}/v1", api_key=key)

    return make


def sent_upstream(simulator_url, prompt):
    base = simulator_url.removesuffix("/api/v3")
    return httpx.get(f"{base}/_sim/calls", params={"prompt": prompt}).json()["references"]


def band(b64_json, count):
    with PILImage.open(io.BytesIO(base64.b64decode(b64_json))) as image:
        return reference_colours(image.convert("RGB"), count)


def close(got, wanted):
    return all(abs(g - w) <= 24 for g, w in zip(got, wanted, strict=True))


def test_images_edit_with_one_file(sdk, simulator_url):
    user, client = sdk()
    red = picture(RED)
    prompt = f"one file {uuid.uuid4()}"

    result = client.images.edit(
        model="seedream-4-0", image=("red.png", red, "image/png"), prompt=prompt, size="1K",
        response_format="b64_json",
    )  # fmt: skip

    assert len(result.data) == 1
    assert close(band(result.data[0].b64_json, 1)[0], RED)
    assert sent_upstream(simulator_url, prompt) == [[hashlib.sha256(red).hexdigest()]]
    assert result.usage is not None and result.usage.model_extra["input_images"] == 1
    assert assert_ledger_balanced(user) == 1000 - result.model_extra["credits_charged"]


def test_images_edit_with_a_list_of_three_files_keeps_their_order(sdk, simulator_url):
    user, client = sdk()
    colours = [RED, GREEN, BLUE]
    files = [(f"{i}.png", picture(c), "image/png") for i, c in enumerate(colours)]
    prompt = f"three files {uuid.uuid4()}"
    quoted = client.post(
        "/images/quote",
        body={"model": "seedream-5-0-pro", "prompt": prompt, "size": "1K",
              "images": [{"image_url": data_url(data)} for _, data, _ in files]},
        cast_to=httpx.Response,
    ).json()  # fmt: skip

    result = client.images.edit(
        model="seedream-5-0-pro", image=files, prompt=prompt, size="1K", response_format="b64_json"
    )

    drawn = band(result.data[0].b64_json, 3)
    assert all(close(got, wanted) for got, wanted in zip(drawn, colours, strict=True)), drawn
    assert sent_upstream(simulator_url, prompt) == [
        [hashlib.sha256(data).hexdigest() for _, data, _ in files]
    ]
    assert quoted["inputs"] == [{"credits": 0}, {"credits": 4}, {"credits": 4}]
    assert assert_ledger_balanced(user) == 1000 - quoted["credits"]


def test_images_generate_with_seedreams_image_in_extra_body(sdk, simulator_url):
    user, client = sdk()
    green, blue = picture(GREEN), picture(BLUE)
    prompt = f"extra body {uuid.uuid4()}"

    result = client.images.generate(
        model="seedream-4-0", prompt=prompt, size="1K",
        extra_body={"image": [data_url(green), data_url(blue)]},
    )  # fmt: skip

    assert result.data[0].url
    assert sent_upstream(simulator_url, prompt) == [
        [hashlib.sha256(d).hexdigest() for d in (green, blue)]
    ]
    assert assert_ledger_balanced(user) < 1000


def test_images_edit_with_an_iphones_heic_photograph_on_pro(sdk, simulator_url):
    user, client = sdk()
    photo = heic(GREEN)
    prompt = f"heic {uuid.uuid4()}"

    result = client.images.edit(
        model="seedream-5-0-pro", image=("IMG_0001.HEIC", photo, "image/heic"), prompt=prompt,
        size="1K", response_format="b64_json",
    )  # fmt: skip

    assert close(band(result.data[0].b64_json, 1)[0], GREEN)
    assert sent_upstream(simulator_url, prompt) == [[hashlib.sha256(photo).hexdigest()]]
    assert assert_ledger_balanced(user) == 1000 - result.model_extra["credits_charged"]

    with pytest.raises(openai.BadRequestError) as raised:  # 4.0 takes no HEIC
        client.images.edit(model="seedream-4-0", image=("IMG_0001.HEIC", photo), prompt="x")
    assert (raised.value.code, raised.value.param) == ("invalid_image_format", "image")
    assert assert_ledger_balanced(user) == 1000 - result.model_extra["credits_charged"]


def test_an_own_gallery_images_url_is_a_reference_without_uploading_it(sdk, simulator_url):
    """The server is on 127.0.0.1, an address the fetcher refuses: the URL it answered is read
    from its storage instead, for the account it belongs to and no other."""
    user, client = sdk()
    made = client.images.generate(model="seedream-4-0", prompt="a lantern", size="1K")
    url = made.data[0].url
    assert url is not None and "/img/" in url
    original = httpx.get(url).content
    prompt = f"from my gallery {uuid.uuid4()}"

    result = client.images.generate(
        model="seedream-4-0", prompt=prompt, size="1K", extra_body={"image": url}
    )

    assert result.data[0].url
    assert sent_upstream(simulator_url, prompt) == [[hashlib.sha256(original).hexdigest()]]
    charged = made.model_extra["credits_charged"] + result.model_extra["credits_charged"]
    assert assert_ledger_balanced(user) == 1000 - charged
    other, outsider = sdk()
    with pytest.raises(openai.BadRequestError) as raised:
        outsider.images.generate(
            model="seedream-4-0", prompt="theirs", size="1K", extra_body={"image": url}
        )
    assert (raised.value.code, raised.value.param) == ("invalid_image_url", "image")
    assert assert_ledger_balanced(other) == 1000


def test_a_bad_reference_raises_the_sdks_bad_request_error_and_charges_nothing(sdk):
    user, client = sdk()

    with pytest.raises(openai.BadRequestError) as raised:
        client.images.edit(
            model="seedream-4-0", image=("notes.png", b"not a picture", "image/png"), prompt="x"
        )

    assert raised.value.code == "invalid_image_format"
    assert raised.value.param == "image"
    assert assert_ledger_balanced(user) == 1000


def test_a_set_of_up_to_four_through_extra_body(sdk):
    user, client = sdk()
    options = {
        "sequential_image_generation": "auto",
        "sequential_image_generation_options": {"max_images": 4},
    }
    quoted = client.post(
        "/images/quote",
        body={"model": "seedream-4-0", "prompt": "four seasons", "size": "1K", **options},
        cast_to=httpx.Response,
    ).json()

    result = client.images.generate(
        model="seedream-4-0", prompt="four seasons", size="1K", extra_body=options
    )

    assert len(result.data) == 4 and all(item.url for item in result.data)
    assert assert_ledger_balanced(user) == 1000 - quoted["credits"]


def test_a_layer_split_through_images_edit(sdk):
    user, client = sdk()
    source = picture(RED, (768, 512), "JPEG")

    result = client.images.edit(
        model="seedream-5-0-pro", image=("photo.jpg", source, "image/jpeg"), prompt="the parts",
        size="1K", extra_body={"layer_decomposition": True, "max_layers": 3},
    )  # fmt: skip

    layers = [item.model_extra for item in result.data]
    assert [layer["z_index"] for layer in layers] == [0, 1, 2, 3]
    assert all(layer["name"] and layer["bounding_box"] for layer in layers[1:])
    assert assert_ledger_balanced(user) == 1000 - 4 * 60
