"""Every current Seedream model's rules, as the simulator speaks them, over real HTTP.

The rules come from ../shared/reference/seedream-2026.md (sections 2 to 5), written into
simulator/protocol.py independently of the product's catalog.
"""

from __future__ import annotations

import base64
import io
from dataclasses import replace
from typing import Any

import httpx
import pytest
from PIL import Image

from simulator.images import ImageSpec, render_image
from tests.support.pictures import heic as heic_file
from tests.support.simulator import SIM_TEST_KEY, unique

pytestmark = pytest.mark.integration

KEY = SIM_TEST_KEY
V30 = "seedream-3-0-t2i-250415"
EDIT = "seededit-3-0-i2i-250628"
V40 = "seedream-4-0-250828"
V45 = "seedream-4-5-251128"
LITE = "seedream-5-0-260128"
PRO = "seedream-5-0-pro-260628"
FLASH = "seedream-5-0-flash-260915"
V55 = "seedream-5-5-261028"
PHOTO_URL = "https://example.com/photo.png"  # never fetched: the simulator takes URLs as given

# Every upstream id and what it delivers with no size: (id, default size).
DEFAULTS = {
    V30: "1024x1024",
    EDIT: "1024x1024",
    V40: "2048x2048",
    V45: "2048x2048",
    LITE: "2048x2048",
    "seedream-5-0-lite-260128": "2048x2048",
    PRO: "1024x1024",
    "dola-seedream-5-0-pro-260628": "1024x1024",
    FLASH: "2048x2048",
    V55: "2048x2048",
    "dola-seedream-5-5-261028": "2048x2048",
}
ALL_IDS = {
    **DEFAULTS,
    **{f"doubao-{i}": size for i, size in DEFAULTS.items() if not i.startswith("dola-")},
}


def generate(client: httpx.Client, base_url: str, model: str, **fields: Any) -> httpx.Response:
    body: dict[str, Any] = {"model": model, "prompt": unique("a red fox"), "watermark": False}
    if model.endswith(EDIT) and "image" not in fields:
        body["image"] = PHOTO_URL
    body.update(fields)
    return client.post(
        f"{base_url}/images/generations", json=body, headers={"Authorization": f"Bearer {KEY}"}
    )


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def refused(response: httpx.Response, param: str, code: str = "InvalidParameter") -> str:
    """Assert the upstream's 400 error body; returns its message."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"], error["type"]) == (code, param, "BadRequest")
    assert error["message"].endswith(f" Request id: {response.headers['x-request-id']}")
    return str(error["message"])


def data_uri(size: tuple[int, int], image_format: str = "png") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buffer, "PNG" if image_format == "png" else "JPEG")
    return f"data:image/{image_format};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def picture(entry: dict[str, Any]) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(entry["b64_json"])))
    image.load()
    return image


# --- Ids --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "default"), ALL_IDS.items())
def test_every_model_answers_by_each_of_its_ids_at_its_default_size(
    client: httpx.Client, base_url: str, model: str, default: str
) -> None:
    body = ok(generate(client, base_url, model))

    assert body["model"] == model
    assert [entry["size"] for entry in body["data"]] == [default]


@pytest.mark.parametrize(
    "model",
    [
        "seedream-4-5",
        "seedream-5-0-pro",
        "seedream-5-5",
        "seedream-5-0-flash",
        "doubao-seedream-5-5",
        "dola-seedream-5-0-flash-260915",
        "doubao-dola-seedream-5-5-261028",
    ],
)
def test_a_bare_or_misspelt_id_is_404_not_found(
    client: httpx.Client, base_url: str, model: str
) -> None:
    response = generate(client, base_url, model)

    assert response.status_code == 404
    request_id = response.headers["x-request-id"]
    assert response.json() == {
        "error": {
            "code": "InvalidEndpointOrModel.NotFound",
            "message": f"The model or endpoint {model} does not exist or you do not have access "
            f"to it. Request id: {request_id}",
            "param": "",
            "type": "NotFound",
        }
    }


# --- Sizes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "size", "delivered"),
    [
        (V40, "1k", "1024x1024"),
        (V40, "4K", "4096x4096"),
        (V45, "2k", "2048x2048"),
        (V45, "4k", "4096x4096"),
        (LITE, "3k", "3072x3072"),
        (PRO, "1k", "1024x1024"),
        (PRO, "2K", "2048x2048"),
        (FLASH, "1.5k", "1536x1536"),
        (V55, "1K", "1024x1024"),
        (V55, "1.5K", "1536x1536"),
        (EDIT, "ADAPTIVE", "1024x1024"),
    ],
)
def test_size_keywords_are_case_insensitive_and_deliver_their_tier(
    client: httpx.Client, base_url: str, model: str, size: str, delivered: str
) -> None:
    body = ok(generate(client, base_url, model, size=size))

    assert body["data"][0]["size"] == delivered


@pytest.mark.parametrize(
    ("model", "size"),
    [
        (V30, "1K"),
        (EDIT, "2K"),
        (EDIT, "1024x1024"),
        (V45, "1K"),
        (LITE, "4K"),
        (PRO, "1.5K"),
        (PRO, "4K"),
        (PRO, "auto"),
        (FLASH, "3K"),
        (V55, "3K"),
    ],
)
def test_a_keyword_the_model_does_not_have_is_refused(
    client: httpx.Client, base_url: str, model: str, size: str
) -> None:
    refused(generate(client, base_url, model, size=size), "size")


@pytest.mark.parametrize(
    ("model", "inside", "outside", "window"),
    [
        (V30, "2048x2048", "2049x2048", "[262144, 4194304]"),
        (V40, "1024x1024", "1280x720", "[1048576, 16777216]"),
        (V45, "2560x1440", "1024x1024", "[3686400, 16777216]"),
        (LITE, "3225x3226", "4096x4096", "[3686400, 10404496]"),
        (PRO, "2048x2048", "1280x720", "[1048576, 4194304]"),
        (PRO, "1024x1024", "2560x1920", "[1048576, 4194304]"),
        (FLASH, "1280x720", "2160x2160", "[921600, 4624220]"),
        (V55, "2150x2150", "1200x720", "[921600, 4624220]"),
    ],
)
def test_the_pixel_window_is_enforced_and_named(
    client: httpx.Client, base_url: str, model: str, inside: str, outside: str, window: str
) -> None:
    accepted = ok(generate(client, base_url, model, size=inside))
    message = refused(generate(client, base_url, model, size=outside), "size")

    assert accepted["data"][0]["size"] == inside
    assert window in message


@pytest.mark.parametrize("model", [PRO, FLASH, V55, V40])
def test_an_aspect_ratio_beyond_16_is_refused(
    client: httpx.Client, base_url: str, model: str
) -> None:
    assert ok(generate(client, base_url, model, size="4096x256"))["data"][0]["size"] == "4096x256"
    refused(generate(client, base_url, model, size="4352x256"), "size")


@pytest.mark.parametrize("model", [PRO, FLASH])
def test_deliver_size_picks_another_size_within_the_window(
    client: httpx.Client, base_url: str, model: str
) -> None:
    prompt = unique("a fox [sim:deliver-size=1536x1536]")

    body = ok(
        generate(client, base_url, model, size="2K", prompt=prompt, response_format="b64_json")
    )
    plain = ok(generate(client, base_url, model, size="2K"))

    [entry] = body["data"]
    assert entry["size"] == "1536x1536"
    assert picture(entry).size == (1536, 1536)
    assert body["usage"]["output_tokens"] == 1536 * 1536 // 256
    # Without the marker the same keyword always delivers its nominal square.
    assert plain["data"][0]["size"] == "2048x2048"


def test_deliver_size_outside_the_window_is_refused(client: httpx.Client, base_url: str) -> None:
    prompt = unique("a fox [sim:deliver-size=4096x4096]")

    refused(generate(client, base_url, PRO, size="2K", prompt=prompt), "prompt")


# --- Sets and stream ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [PRO, FLASH, V55, "dola-seedream-5-0-pro-260628"])
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sequential_image_generation", "disabled"),
        ("sequential_image_generation", "auto"),
        ("sequential_image_generation_options", {"max_images": 1}),
        ("stream", False),
    ],
)
def test_sets_and_stream_are_refused_on_pro_flash_and_5_5_whatever_their_value(
    client: httpx.Client, base_url: str, model: str, field: str, value: Any
) -> None:
    message = refused(generate(client, base_url, model, **{field: value}), field)

    assert "not supported" in message


@pytest.mark.parametrize("model", [V40, V45, LITE])
def test_a_set_gives_max_images_or_the_count_the_model_picks(
    client: httpx.Client, base_url: str, model: str
) -> None:
    set_fields: dict[str, Any] = {
        "sequential_image_generation": "auto",
        "sequential_image_generation_options": {"max_images": 4},
        "size": "2K",
    }

    full = ok(generate(client, base_url, model, **set_fields))
    picked = ok(generate(client, base_url, model, prompt=unique("[sim:set-count=2]"), **set_fields))
    capped = ok(generate(client, base_url, model, prompt=unique("[sim:set-count=9]"), **set_fields))

    assert len(full["data"]) == 4 and full["usage"]["generated_images"] == 4
    assert len({entry["url"] for entry in full["data"]}) == 4
    assert full["usage"]["output_tokens"] == 4 * 2048 * 2048 // 256
    assert len(picked["data"]) == 2 and picked["usage"]["generated_images"] == 2
    assert len(capped["data"]) == 4


def test_a_set_member_blocked_by_moderation_fails_alone(
    client: httpx.Client, base_url: str
) -> None:
    prompt = unique("a fox [sim:set-block=1] [sim:block-reason=DeepFake]")

    body = ok(
        generate(
            client,
            base_url,
            V45,
            prompt=prompt,
            sequential_image_generation="auto",
            sequential_image_generation_options={"max_images": 3},
        )
    )

    assert ["url" in entry for entry in body["data"]] == [True, False, True]
    assert body["data"][1]["error"]["code"] == "OutputImageSensitiveContentDetected.DeepFake"
    assert body["usage"] == {
        "generated_images": 2,
        "output_tokens": 2 * 2048 * 2048 // 256,
        "total_tokens": 2 * 2048 * 2048 // 256,
    }


def test_an_internal_error_in_a_set_stops_the_rest(client: httpx.Client, base_url: str) -> None:
    body = ok(
        generate(
            client,
            base_url,
            LITE,
            prompt=unique("a fox [sim:set-error-500=1]"),
            sequential_image_generation="auto",
            sequential_image_generation_options={"max_images": 5},
        )
    )

    assert len(body["data"]) == 2
    assert "url" in body["data"][0]
    assert body["data"][1]["error"]["code"] == "InternalServiceError"
    assert body["usage"]["generated_images"] == 1


def test_references_plus_max_images_may_not_pass_15(client: httpx.Client, base_url: str) -> None:
    fields: dict[str, Any] = {
        "sequential_image_generation": "auto",
        "image": [PHOTO_URL] * 3,
        "size": "1K",
    }

    within = generate(
        client, base_url, V40, sequential_image_generation_options={"max_images": 12}, **fields
    )
    beyond = generate(
        client, base_url, V40, sequential_image_generation_options={"max_images": 13}, **fields
    )

    assert len(ok(within)["data"]) == 12
    refused(beyond, "sequential_image_generation_options.max_images")


@pytest.mark.parametrize("model", [V30, EDIT])
def test_3_0_and_seededit_ignore_a_set_and_a_false_stream(
    client: httpx.Client, base_url: str, model: str
) -> None:
    body = ok(generate(client, base_url, model, sequential_image_generation="auto", stream=False))

    assert len(body["data"]) == 1


# --- Output format and background ---------------------------------------------------------------


@pytest.mark.parametrize("model", [LITE, PRO, FLASH, V55])
def test_output_format_png_gives_a_png_and_says_so(
    client: httpx.Client, base_url: str, model: str
) -> None:
    png = ok(generate(client, base_url, model, output_format="png", response_format="b64_json"))
    jpeg = ok(generate(client, base_url, model, response_format="b64_json"))

    assert png["data"][0]["output_format"] == "png"
    assert picture(png["data"][0]).format == "PNG"
    assert jpeg["data"][0]["output_format"] == "jpeg"
    assert picture(jpeg["data"][0]).format == "JPEG"


@pytest.mark.parametrize("model", [V30, EDIT, V40, V45])
@pytest.mark.parametrize("value", ["png", "jpeg"])
def test_output_format_is_refused_by_the_jpeg_only_models(
    client: httpx.Client, base_url: str, model: str, value: str
) -> None:
    refused(generate(client, base_url, model, output_format=value), "output_format")


def test_jpeg_only_models_do_not_report_an_output_format(
    client: httpx.Client, base_url: str
) -> None:
    assert set(ok(generate(client, base_url, V40))["data"][0]) == {"url", "size"}


def test_a_transparent_background_on_5_5_is_a_png_with_real_alpha(
    client: httpx.Client, base_url: str
) -> None:
    body = ok(generate(client, base_url, V55, background="transparent", size="1K"))
    [entry] = body["data"]

    response = client.get(entry["url"])
    image = Image.open(io.BytesIO(response.content))

    assert entry["output_format"] == "png"
    assert response.headers["content-type"] == "image/png"
    assert image.format == "PNG" and image.mode == "RGBA" and image.size == (1024, 1024)
    low, high = image.getchannel("A").getextrema()
    assert (low, high) == (0, 255)  # transparent around the subject, opaque on it


@pytest.mark.parametrize("value", ["auto", "opaque"])
def test_an_auto_or_opaque_background_on_5_5_stays_jpeg(
    client: httpx.Client, base_url: str, value: str
) -> None:
    body = ok(generate(client, base_url, V55, background=value, response_format="b64_json"))

    assert picture(body["data"][0]).format == "JPEG"


def test_background_is_refused_where_the_model_has_none_or_with_jpeg(
    client: httpx.Client, base_url: str
) -> None:
    for model in (PRO, FLASH, LITE, V40):
        refused(generate(client, base_url, model, background="transparent"), "background")
    refused(generate(client, base_url, V55, background="sepia"), "background")
    refused(
        generate(client, base_url, V55, background="transparent", output_format="jpeg"),
        "background",
    )


# --- Layer decomposition ------------------------------------------------------------------------


@pytest.mark.parametrize("model", [PRO, FLASH, V55])
def test_layers_give_a_base_and_png_layers_with_boxes(
    client: httpx.Client, base_url: str, model: str
) -> None:
    body = ok(
        generate(
            client,
            base_url,
            model,
            prompt="",
            layer_decomposition=True,
            image=data_uri((1600, 900)),
            output_format="jpeg",
            response_format="b64_json",
        )
    )

    base, *layers = body["data"]
    # auto keeps an input between 1280x720 and about 2048 squared as it is.
    assert (base["z_index"], base["size"], base["output_format"]) == (0, "1600x900", "jpeg")
    assert picture(base).format == "JPEG"
    assert [layer["z_index"] for layer in layers] == [1, 2, 3]
    for layer in layers:
        assert layer["output_format"] == "png"
        image = picture(layer)
        assert image.mode == "RGBA" and f"{image.width}x{image.height}" == layer["size"]
        left, top, right, bottom = layer["bounding_box"]["absolute"]
        assert 0 <= left < right <= 1600 and 0 <= top < bottom <= 900
        assert all(0 <= value <= 1000 for value in layer["bounding_box"]["normalized"])
        assert layer["name"] and layer["description"]
    tokens = sum(
        int(entry["size"].split("x")[0]) * int(entry["size"].split("x")[1]) // 256
        for entry in body["data"]
    )
    assert body["usage"]["generated_images"] == 4
    assert body["usage"]["output_tokens"] == tokens


def test_a_layer_keyword_keeps_the_input_ratio_at_its_tier(
    client: httpx.Client, base_url: str
) -> None:
    body = ok(
        generate(
            client, base_url, V55, layer_decomposition=True, image=data_uri((1600, 900)), size="2k"
        )
    )

    assert body["data"][0]["size"] == "2736x1536"


@pytest.mark.parametrize(("model", "most"), [(PRO, 16), (FLASH, 16), (V55, 99)])
def test_the_layers_marker_chooses_the_count_up_to_the_model_cap(
    client: httpx.Client, base_url: str, model: str, most: int
) -> None:
    fields: dict[str, Any] = {"layer_decomposition": True, "image": PHOTO_URL, "size": "1K"}

    one = ok(generate(client, base_url, model, prompt=unique("[sim:layers=1]"), **fields))
    many = generate(client, base_url, model, prompt=unique("[sim:layers=17]"), **fields)
    too_many = generate(
        client, base_url, model, prompt=unique(f"[sim:layers={most + 1}]"), **fields
    )

    assert [entry["z_index"] for entry in one["data"]] == [0, 1]
    if most == 16:
        refused(many, "prompt")
    else:
        assert len(ok(many)["data"]) == 18
    refused(too_many, "prompt")


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({}, "image", "InvalidParameter.UnsupportedImageCount"),
        ({"image": [PHOTO_URL, PHOTO_URL]}, "image", "InvalidParameter.UnsupportedImageCount"),
        ({"image": PHOTO_URL, "size": "2048x2048"}, "size", "InvalidParameter"),
        ({"image": PHOTO_URL, "background": "transparent"}, "background", "InvalidParameter"),
        ({"image": PHOTO_URL, "tools": [{"type": "web_search"}]}, "tools", "InvalidParameter"),
        ({"image": data_uri((256, 256))}, "image", "InvalidParameter.OversizedImage"),
    ],
)
def test_layer_mode_refuses_what_upstream_refuses(
    client: httpx.Client, base_url: str, fields: dict[str, Any], param: str, code: str
) -> None:
    refused(generate(client, base_url, V55, layer_decomposition=True, **fields), param, code)


@pytest.mark.parametrize("model", [V40, V45, LITE, V30])
def test_layer_decomposition_is_refused_by_models_without_layers(
    client: httpx.Client, base_url: str, model: str
) -> None:
    response = generate(client, base_url, model, layer_decomposition=True, image=PHOTO_URL)

    refused(response, "layer_decomposition")


@pytest.mark.parametrize(
    ("marker", "status", "code"),
    [
        ("[sim:batch-error]", 400, "OutputImageSensitiveContentDetected"),
        ("[sim:set-block=2]", 400, "OutputImageSensitiveContentDetected"),
        ("[sim:set-error-500=2]", 500, "InternalServiceError"),
    ],
)
def test_layers_are_all_or_nothing(
    client: httpx.Client, base_url: str, marker: str, status: int, code: str
) -> None:
    response = generate(
        client, base_url, PRO, layer_decomposition=True, image=PHOTO_URL, prompt=unique(marker)
    )

    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert response.json()["error"]["code"] == code


# --- Seed and guidance_scale --------------------------------------------------------------------


@pytest.mark.parametrize("model", [V30, EDIT, V40, V45, LITE, PRO, FLASH])
def test_seed_is_accepted_where_the_reference_lists_it(
    client: httpx.Client, base_url: str, model: str
) -> None:
    ok(generate(client, base_url, model, seed=7))


def test_seed_is_refused_on_5_5(client: httpx.Client, base_url: str) -> None:
    refused(generate(client, base_url, V55, seed=7), "seed")


@pytest.mark.parametrize("model", [V40, V45, LITE, PRO, FLASH, V55])
def test_guidance_scale_is_refused_beyond_3_0_and_seededit(
    client: httpx.Client, base_url: str, model: str
) -> None:
    refused(generate(client, base_url, model, guidance_scale=5.5), "guidance_scale")


@pytest.mark.parametrize("model", [V30, EDIT])
def test_guidance_scale_is_accepted_on_3_0_and_seededit(
    client: httpx.Client, base_url: str, model: str
) -> None:
    ok(generate(client, base_url, model, guidance_scale=5.5))


# --- Reference images ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "most"), [(V40, 14), (V45, 14), (LITE, 14), (PRO, 10), (FLASH, 10), (V55, 10)]
)
def test_the_reference_count_is_capped_per_model(
    client: httpx.Client, base_url: str, model: str, most: int
) -> None:
    ok(generate(client, base_url, model, image=[PHOTO_URL] * most))
    response = generate(client, base_url, model, image=[PHOTO_URL] * (most + 1))

    refused(response, "image", "InvalidParameter.UnsupportedImageCount")


@pytest.mark.parametrize(("model", "images"), [(V30, [PHOTO_URL]), (EDIT, [PHOTO_URL] * 2)])
def test_3_0_takes_no_reference_and_seededit_exactly_one(
    client: httpx.Client, base_url: str, model: str, images: list[str]
) -> None:
    refused(
        generate(client, base_url, model, image=images),
        "image",
        "InvalidParameter.UnsupportedImageCount",
    )


def test_a_data_uri_needs_a_lowercase_format_the_model_reads(
    client: httpx.Client, base_url: str
) -> None:
    upper = data_uri((64, 64)).replace("image/png", "image/PNG")
    heic = "data:image/heic;base64," + base64.b64encode(heic_file(size=(64, 64))).decode()
    not_heic = "data:image/heic;base64," + base64.b64encode(b"not decoded").decode()

    refused(
        generate(client, base_url, V40, image=upper),
        "image",
        "InvalidParameter.UnsupportedImageFormat",
    )
    refused(
        generate(client, base_url, FLASH, image=heic),
        "image",
        "InvalidParameter.UnsupportedImageFormat",
    )
    ok(generate(client, base_url, PRO, image=heic))
    refused(generate(client, base_url, PRO, image=not_heic), "image")
    ok(generate(client, base_url, V40, image=data_uri((64, 64), "jpeg")))


def test_layer_mode_takes_no_heic_even_on_pro(client: httpx.Client, base_url: str) -> None:
    heic = "data:image/heic;base64," + base64.b64encode(heic_file(size=(600, 600))).decode()

    refused(
        generate(client, base_url, PRO, prompt="", layer_decomposition=True, image=heic),
        "image",
        "InvalidParameter.UnsupportedImageFormat",
    )


def test_seededit_picks_its_output_size_from_the_input_ratio(
    client: httpx.Client, base_url: str
) -> None:
    wide = ok(generate(client, base_url, EDIT, image=data_uri((1200, 400))))
    tall = ok(generate(client, base_url, EDIT, image=data_uri((720, 1280))))

    assert wide["data"][0]["size"] == "1536x512"
    assert tall["data"][0]["size"] == "720x1280"
    refused(generate(client, base_url, EDIT, image=data_uri((1600, 400))), "image")


@pytest.mark.parametrize(
    ("model", "reported"), [(PRO, True), (V55, True), (FLASH, False), (V40, False)]
)
def test_usage_counts_input_images_where_the_model_reports_them(
    client: httpx.Client, base_url: str, model: str, reported: bool
) -> None:
    usage = ok(generate(client, base_url, model, image=[PHOTO_URL] * 3))["usage"]

    assert usage.get("input_images") == (3 if reported else None)


# --- Moderation by stage ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("marker", "family"),
    [
        ("block-input", "SensitiveContentDetected"),
        ("block-prompt", "InputTextSensitiveContentDetected"),
        ("block-input-image", "InputImageSensitiveContentDetected"),
        ("block-output", "OutputImageSensitiveContentDetected"),
    ],
)
@pytest.mark.parametrize("reason", ["", "DeepFake"])
def test_moderation_codes_by_stage_as_400_and_inside_a_200(
    client: httpx.Client, base_url: str, marker: str, family: str, reason: str
) -> None:
    markers = f"[sim:{marker}]" + (f" [sim:block-reason={reason}]" if reason else "")
    code = f"{family}.{reason}" if reason else family

    blocked = generate(client, base_url, V55, prompt=unique(f"a fox {markers}"))
    inside = generate(client, base_url, V55, prompt=unique(f"a fox {markers} [sim:in-200]"))

    refused(blocked, "", code)
    body = ok(inside)
    assert body["data"] == [
        {"error": {"code": code, "message": body["data"][0]["error"]["message"]}}
    ]
    assert body["usage"]["generated_images"] == 0


def test_a_malformed_block_reason_is_refused(client: httpx.Client, base_url: str) -> None:
    response = generate(client, base_url, V40, prompt=unique("[sim:block-reason=Deep.Fake]"))

    refused(response, "prompt")


# --- Pictures ------------------------------------------------------------------------------------


def test_pictures_vary_with_the_seed_the_index_and_the_model(
    client: httpx.Client, base_url: str
) -> None:
    prompt = unique("a lighthouse")
    fields: dict[str, Any] = {"prompt": prompt, "size": "1K", "response_format": "b64_json"}

    def image(model: str, **more: Any) -> list[bytes]:
        body = ok(generate(client, base_url, model, **fields, **more))
        return [base64.b64decode(entry["b64_json"]) for entry in body["data"]]

    [seed_1] = image(PRO, seed=1)
    [seed_2] = image(PRO, seed=2)
    [again] = image(PRO, seed=1)
    [other_model] = image(f"dola-{PRO}", seed=1)
    first, second = image(
        V40,
        seed=1,
        sequential_image_generation="auto",
        sequential_image_generation_options={"max_images": 2},
    )

    assert seed_1 == again
    assert len({seed_1, seed_2, other_model}) == 3  # the model's id is printed on it
    assert first != second


def test_a_picture_prints_its_model_size_seed_index_and_layer() -> None:
    spec = ImageSpec.for_prompt(
        "a fox",
        seed=42,
        size=(1024, 768),
        watermark=False,
        index=1,
        kind="jpeg",
        model="Seedream 5.5 (seedream-5-5-261028)",
        label="layer 1 of 3",
    )

    assert spec.caption == (
        "Seedream 5.5 (seedream-5-5-261028)",
        "1024x768 · seed 42 · #1 · layer 1 of 3",
    )
    assert render_image(spec) != render_image(replace(spec, index=2))
