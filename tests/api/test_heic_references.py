"""HEIC reference images (an iPhone's photographs) through /v1: taken where the catalog says the
model takes them (5.0 Pro, not in a layer split), checked like any other (decoded, within the
pixel bounds), kept as they came, shown as a thumbnail, and sent upstream as
``data:image/heic;base64,...``; refused in OpenAI's error shape, with nothing charged or kept,
everywhere else."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import uuid

import httpx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from generation import catalog, thumbnails
from generation.models import Generation, InputImage
from generation.references import check_reference
from simulator.images import reference_colours
from tests.support.money import assert_ledger_balanced
from tests.support.pictures import BLUE, GREEN, RED, data_url, heic, picture
from tests.support.responses import json_of

pytestmark = pytest.mark.smoke

PRO = "seedream-5-0-pro"


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def heic_upload(name="photo.heic", data=None):
    return SimpleUploadedFile(name, data or heic(BLUE), content_type="image/heic")


def edit(client, key, files, **fields):
    form = {"model": PRO, "prompt": "make it a watercolour", "size": "1K", **fields}
    form.update(files)
    return client.post("/v1/images/edits", form, headers=auth(key))


def post_json(client, key, path, body):
    return client.post(path, json.dumps(body), content_type="application/json", headers=auth(key))


def sent_upstream(simulator_url, prompt):
    base = simulator_url.removesuffix("/api/v3")
    return httpx.get(f"{base}/_sim/calls", params={"prompt": prompt}).json()["references"]


def close(got, wanted):
    return all(abs(g - w) <= 24 for g, w in zip(got, wanted, strict=True))


def test_a_heic_file_on_pro_is_kept_as_it_came_sent_upstream_and_charged_its_quote(
    client, owner, owner_key, simulator_url
):
    photo, red = heic(BLUE), picture(RED)
    prompt = f"heic {uuid.uuid4()}"
    files = {"image[]": [heic_upload(data=photo), SimpleUploadedFile("r.png", red, "image/png")]}
    quoted = client.post(
        "/v1/images/quote", {"model": PRO, "prompt": prompt, "size": "1K", **files},
        headers=auth(owner_key),
    ).json()  # fmt: skip
    files = {"image[]": [heic_upload(data=photo), SimpleUploadedFile("r.png", red, "image/png")]}

    response = edit(client, owner_key, files, prompt=prompt, response_format="b64_json")

    assert response.status_code == 200, response.content
    kept = list(InputImage.objects.filter(generation=Generation.objects.get()).order_by("index"))
    assert [(i.content_type, i.width, i.height) for i in kept] == [
        ("image/heic", 64, 48), ("image/png", 64, 48),
    ]  # fmt: skip
    assert kept[0].file.name.endswith(".heic") and kept[0].file.read() == photo
    # The upstream got the HEIC's own bytes (not a conversion), and read its colour.
    assert sent_upstream(simulator_url, prompt) == [
        [hashlib.sha256(photo).hexdigest(), hashlib.sha256(red).hexdigest()]
    ]
    answer = json_of(response)
    with PILImage.open(io.BytesIO(base64.b64decode(answer["data"][0]["b64_json"]))) as image:
        drawn = reference_colours(image.convert("RGB"), 2)
    assert close(drawn[0], BLUE) and close(drawn[1], RED), drawn
    assert quoted["inputs"] == [{"credits": 0}, {"credits": 4}]
    assert 1000 - assert_ledger_balanced(owner) == quoted["credits"] == answer["credits_charged"]


def test_a_heic_data_url_is_taken_in_a_json_edit_and_in_a_generations_image(
    client, owner_key, simulator_url
):
    photo = heic(GREEN)
    edit_prompt, generate_prompt = f"json edit {uuid.uuid4()}", f"generate {uuid.uuid4()}"
    as_edit = {"model": PRO, "prompt": edit_prompt, "size": "1K",
               "images": [{"image_url": data_url(photo, "heic")}]}  # fmt: skip
    as_generation = {"model": PRO, "prompt": generate_prompt, "size": "1K",
                     "image": data_url(photo, "heif")}  # fmt: skip

    edited = post_json(client, owner_key, "/v1/images/edits", as_edit)
    generated = post_json(client, owner_key, "/v1/images/generations", as_generation)

    assert edited.status_code == 200, edited.content
    assert generated.status_code == 200, generated.content
    # The declared type is a hint: the bytes say HEIC, and HEIC is what is kept and sent.
    assert set(InputImage.objects.values_list("content_type", flat=True)) == {"image/heic"}
    for prompt in (edit_prompt, generate_prompt):
        assert sent_upstream(simulator_url, prompt) == [[hashlib.sha256(photo).hexdigest()]]


def test_a_heic_reference_is_sent_upstream_as_a_heic_data_url():
    photo = heic(RED)

    reference = check_reference(photo, catalog.get_model(PRO), param="image")

    assert reference.data_url() == f"data:image/heic;base64,{base64.b64encode(photo).decode()}"


def test_a_heic_inputs_thumbnail_is_a_webp_of_its_picture(client, owner_key):
    response = edit(client, owner_key, {"image": heic_upload(data=heic(RED, (400, 300)))})
    assert response.status_code == 200, response.content
    kept = InputImage.objects.get()

    name = thumbnails.ensure_thumbnail(kept.token, kept.file.name)

    with kept.file.storage.open(name, "rb") as handle, PILImage.open(handle) as thumbnail:
        assert thumbnail.format == "WEBP" and thumbnail.size == (384, 288)
        assert close(thumbnail.convert("RGB").getpixel((100, 100)), RED)


def test_the_owner_sees_a_heic_inputs_thumbnail_in_the_gallery(client, owner, owner_key):
    response = edit(client, owner_key, {"image": heic_upload()})
    assert response.status_code == 200, response.content
    kept = InputImage.objects.get()
    client.force_login(owner)

    thumbnail = client.get(f"/dashboard/inputs/{kept.token}/thumbnail/")
    original = client.get(f"/dashboard/inputs/{kept.token}/")
    image_page = client.get(f"/dashboard/gallery/{Generation.objects.get().images.get().token}/")

    assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/webp"
    with PILImage.open(io.BytesIO(b"".join(thumbnail.streaming_content))) as picture_:
        assert close(picture_.convert("RGB").getpixel((10, 10)), BLUE)
    assert original["Content-Type"] == "image/heic"
    assert f"/dashboard/inputs/{kept.token}/thumbnail/" in image_page.content.decode()


# --- refused: nothing held, charged or kept ------------------------------------------------------


@pytest.fixture
def nothing_kept(untouched):
    yield
    assert not InputImage.objects.exists()


def assert_refused(response, code, param):
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    return error["message"]


@pytest.mark.parametrize("model", ["seedream-4-0", "seedream-5-0-flash", "seedream-5-5"])
def test_a_model_that_takes_no_heic_refuses_it_by_name(client, owner_key, nothing_kept, model):
    response = edit(client, owner_key, {"image": heic_upload()}, model=model, size="2K")

    message = assert_refused(response, "invalid_image_format", "image")
    assert message.startswith("'image' is a HEIF image;") and "heic" not in message


def test_a_json_heic_is_refused_where_the_model_takes_none(client, owner_key, nothing_kept):
    body = {"model": "seedream-4-0", "prompt": "x",
            "images": [{"image_url": data_url(heic(), "heic")}]}  # fmt: skip

    assert_refused(
        post_json(client, owner_key, "/v1/images/edits", body),
        "invalid_image_format",
        "images[0].image_url",
    )


def test_a_layer_split_of_a_heic_is_refused_even_on_pro(client, owner_key, nothing_kept):
    body = {"model": PRO, "layer_decomposition": True,
            "image": data_url(heic(RED, (600, 600)), "heic")}  # fmt: skip

    quoted = post_json(client, owner_key, "/v1/images/quote", body)
    split = post_json(client, owner_key, "/v1/images/generations", body)

    message = assert_refused(split, "invalid_image_format", "image")
    assert "layer split is a HEIC image" in message and "heic" not in message.split(";")[1]
    assert (quoted.status_code, quoted.json()) == (split.status_code, split.json())


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (heic()[:200], "invalid_image_format"),  # cut short: it does not decode
        (b"\x00\x00\x00\x1cftypheic" + b"\x00" * 64, "invalid_image_format"),  # a header only
        (heic(size=(14, 100)), "image_too_small"),
        (heic(size=(1700, 100)), "invalid_image_aspect"),
    ],
)
def test_a_bad_heic_is_refused_as_any_bad_image_is(client, owner_key, nothing_kept, data, code):
    assert_refused(edit(client, owner_key, {"image": heic_upload(data=data)}), code, "image")
