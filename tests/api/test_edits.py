"""Reference images through /v1: POST /v1/images/edits as multipart (as the official SDKs send
it) and as JSON, and Seedream's ``image`` in a generation's body. Each is checked before
anything is held, kept with the generation in order, priced by the model's rule (free and paid
references) and charged its quote; every bad input is refused in OpenAI's error shape with the
ledger untouched."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import threading
import uuid

import httpx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from generation.models import Generation, InputImage
from simulator.images import reference_colours
from tests.support.money import assert_ledger_balanced
from tests.support.pictures import BLUE, GREEN, RED, data_url, picture
from tests.support.responses import json_of

pytestmark = pytest.mark.smoke


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def upload(name, data, content_type="image/png"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def edit(client, key, files, **fields):
    """A multipart edit: ``files`` maps each part name to a file or a list of files."""
    form = {"model": "seedream-4-0", "prompt": "make it a watercolour", "size": "1K", **fields}
    form.update(files)
    return client.post("/v1/images/edits", form, headers=auth(key))


def post_json(client, key, path, body):
    return client.post(path, json.dumps(body), content_type="application/json", headers=auth(key))


def kept_inputs(generation):
    return [
        (i.index, i.content_type, i.width, i.height, i.file.read())
        for i in InputImage.objects.filter(generation=generation).order_by("index")
    ]


def test_a_multipart_edit_with_one_file_is_kept_charged_its_quote_and_answered(
    client, owner, owner_key
):
    red = picture(RED)
    quoted = client.post(
        "/v1/images/quote",
        {"model": "seedream-4-0", "prompt": "x", "size": "1K", "image": upload("a.png", red)},
        headers=auth(owner_key),
    ).json()

    response = edit(client, owner_key, {"image": upload("a.png", red)})

    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["data"]) == 1 and body["usage"]["input_images"] == 1
    generation = Generation.objects.get()
    assert generation.params["references"] == 1
    assert kept_inputs(generation) == [(0, "image/png", 64, 48, red)]
    assert 1000 - assert_ledger_balanced(owner) == quoted["credits"] == body["credits_charged"]
    assert quoted["inputs"] == [{"credits": 0}]


def test_a_list_of_three_files_is_kept_in_the_order_sent(client, owner_key):
    colours = [picture(RED), picture(GREEN, image_format="JPEG"), picture(BLUE, (40, 40), "WEBP")]
    files = [upload(f"{i}.img", data) for i, data in enumerate(colours)]

    response = edit(client, owner_key, {"image[]": files})

    assert response.status_code == 200, response.content
    kept = kept_inputs(Generation.objects.get())
    assert [(index, kind) for index, kind, *_ in kept] == [
        (0, "image/png"), (1, "image/jpeg"), (2, "image/webp"),
    ]  # fmt: skip
    assert [data for *_, data in kept] == colours


def test_indexed_part_names_are_put_in_their_order(client, owner_key):
    red, green = picture(RED), picture(GREEN)

    response = edit(client, owner_key, {"image[1]": upload("g.png", green),
                                        "image[0]": upload("r.png", red)})  # fmt: skip

    assert response.status_code == 200, response.content
    assert [data for *_, data in kept_inputs(Generation.objects.get())] == [red, green]


def test_a_json_edit_takes_data_urls(client, owner_key):
    red, blue = picture(RED), picture(BLUE)
    body = {
        "model": "seedream-4-0",
        "prompt": "swap the colours",
        "size": "1K",
        "images": [{"image_url": data_url(red)}, {"image_url": {"url": data_url(blue)}}],
    }

    response = post_json(client, owner_key, "/v1/images/edits", body)

    assert response.status_code == 200, response.content
    assert [data for *_, data in kept_inputs(Generation.objects.get())] == [red, blue]


def test_a_generation_takes_seedreams_image_field(client, owner_key):
    green = picture(GREEN)
    body = {"model": "seedream-4-0", "prompt": "the same, at night", "size": "1K",
            "image": [data_url(green)]}  # fmt: skip

    response = post_json(client, owner_key, "/v1/images/generations", body)

    assert response.status_code == 200, response.content
    assert [data for *_, data in kept_inputs(Generation.objects.get())] == [green]


def test_paid_references_are_quoted_held_and_charged_past_the_free_one(client, owner, owner_key):
    """5.0 Pro: the first reference free, each one after it 4 credits per image."""
    images = [{"image_url": data_url(picture(c))} for c in (RED, GREEN, BLUE)]
    body = {"model": "seedream-5-0-pro", "prompt": "a collage", "size": "1K", "images": images}

    quoted = post_json(client, owner_key, "/v1/images/quote", body).json()
    response = post_json(client, owner_key, "/v1/images/edits", body)

    assert response.status_code == 200, response.content
    assert quoted["inputs"] == [{"credits": 0}, {"credits": 4}, {"credits": 4}]
    assert quoted["credits"] == quoted["images"][0]["credits"] + 8
    assert 1000 - assert_ledger_balanced(owner) == quoted["credits"]
    assert response.json()["credits_charged"] == quoted["credits"]


# --- every bad input: a clear error, nothing held, charged or kept -------------------------------


def assert_refused(response, status, code, param=None):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error
    return error


@pytest.fixture
def nothing_kept(untouched):
    yield
    assert not InputImage.objects.exists()


def test_too_many_images_are_refused(client, owner_key, nothing_kept):
    files = [upload(f"{i}.png", picture(RED)) for i in range(15)]  # 4.0 takes 14

    error = assert_refused(edit(client, owner_key, {"image[]": files}), 400, "too_many_images")
    assert "at most 14" in error["message"]


def test_a_text_file_called_png_is_refused(client, owner_key, nothing_kept):
    response = edit(client, owner_key, {"image": upload("notes.png", b"just some text\n")})

    error = assert_refused(response, 400, "invalid_image_format", "image")
    assert "not an image" in error["message"]


def test_a_truncated_image_is_refused(client, owner_key, nothing_kept):
    whole = picture(RED, (400, 300), "JPEG")

    response = edit(client, owner_key, {"image": upload("cut.jpg", whole[: len(whole) // 2])})

    assert_refused(response, 400, "invalid_image_format", "image")


def test_a_60_megapixel_image_is_refused_before_it_is_decoded(client, owner_key, nothing_kept):
    huge = picture(RED, (10_000, 6_000), "PNG")  # compresses to little: the pixels are the test

    response = edit(client, owner_key, {"image": upload("huge.png", huge)})

    error = assert_refused(response, 400, "image_too_large", "image")
    assert "60,000,000 pixels" in error["message"] and "36,000,000" in error["message"]


def test_an_image_too_thin_or_too_small_is_refused(client, owner_key, nothing_kept):
    thin = edit(client, owner_key, {"image": upload("t.png", picture(RED, (14, 200)))})
    narrow = edit(client, owner_key, {"image": upload("n.png", picture(RED, (2000, 100)))})

    assert_refused(thin, 400, "image_too_small", "image")
    assert_refused(narrow, 400, "invalid_image_aspect", "image")


def test_a_format_the_model_does_not_take_is_refused(client, owner_key, nothing_kept):
    """SeedEdit 3.0 takes JPEG and PNG only."""
    webp = upload("a.webp", picture(RED, image_format="WEBP"))

    response = edit(client, owner_key, {"image": webp}, model="seededit-3-0", size="adaptive")

    error = assert_refused(response, 400, "invalid_image_format", "image")
    assert "jpeg, png" in error["message"]


def test_a_mask_is_refused_as_unsupported(client, owner_key, nothing_kept):
    response = edit(client, owner_key, {"image": upload("a.png", picture(RED)),
                                        "mask": upload("m.png", picture(BLUE))})  # fmt: skip

    error = assert_refused(response, 400, "unsupported_parameter", "mask")
    assert "edits by description" in error["message"]


def test_a_model_that_takes_no_references_refuses_them(client, owner_key, nothing_kept):
    body = {"model": "seedream-3-0", "prompt": "x", "image": data_url(picture(RED))}

    error = assert_refused(
        post_json(client, owner_key, "/v1/images/generations", body), 400, "unsupported_parameter"
    )
    assert "seedream-4-0" in error["message"]  # names the models that edit


def test_images_under_two_names_are_refused(client, owner_key, nothing_kept):
    files = {"image": upload("a.png", picture(RED)), "image[]": [upload("b.png", picture(BLUE))]}

    assert_refused(edit(client, owner_key, files), 400, "invalid_value", "image")


def test_an_edit_without_images_is_refused(client, owner_key, nothing_kept):
    multipart = client.post("/v1/images/edits", {"model": "seedream-4-0", "prompt": "x"},
                            headers=auth(owner_key))  # fmt: skip
    as_json = post_json(client, owner_key, "/v1/images/edits",
                        {"model": "seedream-4-0", "prompt": "x"})  # fmt: skip

    assert_refused(multipart, 400, "missing_required_parameter", "image")
    assert_refused(as_json, 400, "missing_required_parameter", "images")


@pytest.mark.parametrize(
    ("image", "code", "param"),
    [
        ({"file_id": "file-abc"}, "unsupported_parameter", "images[0].file_id"),
        ({"image_url": "data:image/png;base64,@@@"}, "invalid_value", "images[0].image_url"),
        ({"image_url": "ftp://example.com/a.png"}, "invalid_image_url", "images[0].image_url"),
        ({"image_url": "http://127.0.0.1/a.png"}, "invalid_image_url", "images[0].image_url"),
        ({"image_url": "https://169.254.169.254/latest"}, "invalid_image_url",
         "images[0].image_url"),
        ({"image_url": "https://10.0.0.7/a.png"}, "invalid_image_url", "images[0].image_url"),
        ({"image_url": 7}, "invalid_value", "images[0].image_url"),
    ],
)  # fmt: skip
def test_a_bad_json_image_is_refused(client, owner_key, nothing_kept, image, code, param):
    body = {"model": "seedream-4-0", "prompt": "x", "images": [image]}

    assert_refused(post_json(client, owner_key, "/v1/images/edits", body), 400, code, param)


def test_a_form_value_of_the_wrong_type_is_named(client, owner_key, nothing_kept):
    response = edit(client, owner_key, {"image": upload("a.png", picture(RED))}, n="two")

    assert_refused(response, 400, "invalid_value", "n")


def test_the_quote_refuses_a_bad_edit_as_the_edit_does(client, owner_key, nothing_kept):
    body = {"model": "seedream-4-0", "prompt": "x", "images": [{"image_url": "ftp://x/a.png"}]}

    quoted = post_json(client, owner_key, "/v1/images/quote", body)
    edited = post_json(client, owner_key, "/v1/images/edits", body)

    assert (quoted.status_code, quoted.json()) == (edited.status_code, edited.json())


def test_the_upstream_is_sent_the_references_in_order_and_draws_them(
    client, owner_key, simulator_url
):
    """The simulator paints each reference's mean colour along the top of its picture, in the
    order received, and reports what it was sent: both show the customer's order."""
    colours = [RED, GREEN, BLUE]
    datas = [picture(c) for c in colours]
    prompt = f"order check {uuid.uuid4()}"
    files = [upload(f"{i}.png", d) for i, d in enumerate(datas)]

    response = edit(
        client, owner_key, {"image[]": files}, prompt=prompt, response_format="b64_json"
    )

    assert response.status_code == 200, response.content
    base = simulator_url.removesuffix("/api/v3")
    sent = httpx.get(f"{base}/_sim/calls", params={"prompt": prompt}).json()["references"]
    assert sent == [[hashlib.sha256(d).hexdigest() for d in datas]]
    answer = json_of(response)  # a b64_json answer is streamed
    delivered = base64.b64decode(answer["data"][0]["b64_json"])
    with PILImage.open(io.BytesIO(delivered)) as image:
        drawn = reference_colours(image.convert("RGB"), 3)
    for got, wanted in zip(drawn, colours, strict=True):
        assert all(abs(g - w) <= 24 for g, w in zip(got, wanted, strict=True)), (drawn, colours)


@pytest.fixture
def image_host(settings):
    """An image host on loopback, allowed as an operator's own private host would be."""
    served = {"/blue.png": picture(BLUE)}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = served.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.INPUT_FETCH_PRIVATE_HOSTS = ["127.0.0.1"]
    yield f"http://127.0.0.1:{server.server_port}", served
    server.shutdown()


def test_a_url_reference_is_fetched_kept_and_sent_as_its_bytes(
    client, owner_key, image_host, simulator_url
):
    base, served = image_host
    prompt = f"fetched {uuid.uuid4()}"
    body = {"model": "seedream-4-0", "prompt": prompt, "size": "1K",
            "images": [{"image_url": f"{base}/blue.png"}]}  # fmt: skip

    response = post_json(client, owner_key, "/v1/images/edits", body)

    assert response.status_code == 200, response.content
    assert [data for *_, data in kept_inputs(Generation.objects.get())] == [served["/blue.png"]]
    sim = simulator_url.removesuffix("/api/v3")
    sent = httpx.get(f"{sim}/_sim/calls", params={"prompt": prompt}).json()["references"]
    assert sent == [[hashlib.sha256(served["/blue.png"]).hexdigest()]]


def test_a_url_that_cannot_be_fetched_is_refused_uncharged(
    client, owner_key, image_host, nothing_kept
):
    base, _ = image_host
    body = {"model": "seedream-4-0", "prompt": "x", "images": [{"image_url": f"{base}/gone.png"}]}

    error = assert_refused(
        post_json(client, owner_key, "/v1/images/edits", body),
        400,
        "invalid_image_url",
        "images[0].image_url",
    )
    assert "404" in error["message"]
