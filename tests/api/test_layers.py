"""Layer splits (Seedream's layer_decomposition, on 5.0 Pro, Flash and 5.5): one picture in, its
base and layers out, each a hosted image with its name, stacking order and bounding box. The
hold is the base and the most layers asked (max_layers, the model's most by default), each
image delivered is charged as an output image, and a split beyond the cap is cut to it."""

from __future__ import annotations

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from generation.models import Generation, Image
from tests.support.money import assert_ledger_balanced
from tests.support.pictures import RED, data_url, picture

pytestmark = pytest.mark.smoke

SOURCE = picture(RED, (768, 512), "JPEG")  # a split's picture has at least 512x512 pixels


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def split(client, key, path="/v1/images/edits", **fields):
    body = {"model": "seedream-5-0-pro", "layer_decomposition": True, "size": "1K",
            "images": [{"image_url": data_url(SOURCE, "jpeg")}], **fields}  # fmt: skip
    return client.post(path, json.dumps(body), content_type="application/json",
                       headers=auth(key))  # fmt: skip


def test_a_split_answers_the_base_and_each_layer_and_charges_each_as_an_image(
    client, owner, owner_key
):
    quoted = split(client, owner_key, "/v1/images/quote", max_layers=4).json()

    response = split(client, owner_key, max_layers=4, prompt="the red block")

    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert [item["z_index"] for item in data] == [0, 1, 2, 3]  # the simulator's 3 layers
    assert all(item["name"] and item["bounding_box"]["absolute"] for item in data[1:])
    assert "name" not in data[0]
    assert len(quoted["images"]) == 5  # held: the base and 4 layers
    charged = response.json()["credits_charged"]
    assert charged == 4 * 60  # the base and 3 layers, each at 1K's tier
    assert 1000 - assert_ledger_balanced(owner) == charged
    layers = Image.objects.filter(generation=Generation.objects.get()).order_by("index")
    assert [image.layer["z_index"] for image in layers] == [0, 1, 2, 3]
    for item in data[1:]:  # each layer a hosted PNG with its own transparency
        hosted = client.get(item["url"].removeprefix("http://testserver"))
        with PILImage.open(io.BytesIO(b"".join(hosted.streaming_content))) as opened:
            assert (opened.format, opened.mode) == ("PNG", "RGBA")


def test_a_split_without_a_prompt_and_as_multipart(client, owner_key):
    """5.5 splits into up to 99 layers: held at 100 images by default (more than this balance),
    so the customer caps it."""
    form = {"model": "seedream-5-5", "layer_decomposition": "true", "size": "2K", "max_layers": "4",
            "image": SimpleUploadedFile("p.jpg", SOURCE, content_type="image/jpeg")}  # fmt: skip

    response = client.post("/v1/images/edits", form, headers=auth(owner_key))

    assert response.status_code == 200, response.content
    assert len(response.json()["data"]) == 4


def test_layers_past_the_cap_are_dropped_and_not_charged(client, owner, owner_key):
    response = split(client, owner_key, max_layers=2, prompt="many parts [sim:layers=5]")

    assert response.status_code == 200, response.content
    assert [item["z_index"] for item in response.json()["data"]] == [0, 1, 2]
    assert response.json()["credits_charged"] == 3 * 60
    assert assert_ledger_balanced(owner) == 1000 - 180


@pytest.mark.parametrize(
    ("fields", "code", "param"),
    [
        ({"model": "seedream-4-0"}, "unsupported_parameter", "layer_decomposition"),
        ({"images": [{"image_url": data_url(SOURCE, "jpeg")}] * 2}, "invalid_value", "image"),
        ({"size": "1024x1024"}, "invalid_value", "size"),
        ({"background": "transparent"}, "unsupported_parameter", "background"),
        ({"max_layers": 17}, "invalid_value", "max_layers"),
        ({"n": 2}, "invalid_value", "n"),
        ({"images": [{"image_url": data_url(picture(RED, (400, 300)))}]}, "image_too_small",
         "image"),
    ],
)  # fmt: skip
def test_a_bad_split_is_refused_before_anything_is_held(
    client, owner_key, untouched, fields, code, param
):
    response = split(client, owner_key, **fields)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (code, param), error


def test_max_layers_without_a_split_is_refused(client, owner_key, untouched):
    body = {"model": "seedream-5-0-pro", "prompt": "x", "max_layers": 3}

    response = client.post("/v1/images/generations", json.dumps(body),
                           content_type="application/json", headers=auth(owner_key))  # fmt: skip

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "max_layers"
