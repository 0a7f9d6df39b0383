"""Sets (Seedream's sequential_image_generation "auto", on 4.0, 4.5 and 5.0 Lite): one upstream
call in which the model makes 1 to max_images related images. The hold is the most the set can
cost, the charge is per image delivered (a member blocked or failed inside the 200 is not
charged), and every refusal comes before anything is held."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from generation.models import Generation, Image
from tests.support.money import assert_ledger_balanced, ledger_kinds
from tests.support.pictures import RED, data_url, picture

pytestmark = pytest.mark.smoke


def post(client, key, path, **body):
    payload = {"model": "seedream-4-0", "prompt": "a comic strip", "size": "1K", **body}
    return client.post(
        path, json.dumps(payload), content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )  # fmt: skip


def a_set(max_images=None):
    options = {} if max_images is None else {"max_images": max_images}
    return {"sequential_image_generation": "auto", "sequential_image_generation_options": options}


def test_a_set_holds_its_most_and_charges_each_image_delivered(client, owner, owner_key):
    quoted = post(client, owner_key, "/v1/images/quote", **a_set(4)).json()

    response = post(client, owner_key, "/v1/images/generations", **a_set(4))

    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["data"]) == 4
    assert (body["images_requested"], body["images_delivered"]) == (4, 4)
    assert quoted["credits"] == 4 * 40 and len(quoted["images"]) == 4
    assert 1000 - assert_ledger_balanced(owner) == quoted["credits"] == body["credits_charged"]
    generation = Generation.objects.get()
    assert (generation.n, generation.calls, generation.reserved_credits) == (4, 1, 160)
    assert Image.objects.filter(generation=generation).count() == 4


def test_a_smaller_set_is_charged_for_what_it_has_and_the_rest_released(client, owner, owner_key):
    response = post(
        client, owner_key, "/v1/images/generations", prompt="three panels [sim:set-count=3]",
        **a_set(6),
    )  # fmt: skip

    assert response.status_code == 200, response.content
    assert len(response.json()["data"]) == 3
    assert response.json()["credits_charged"] == 3 * 40
    assert ledger_kinds(owner)[1:] == [("reserve", -240), ("release", 240), ("charge", -120)]


def test_a_member_blocked_inside_the_200_is_not_charged(client, owner, owner_key):
    response = post(
        client, owner_key, "/v1/images/generations", prompt="four panels [sim:set-block=1]",
        **a_set(4),
    )  # fmt: skip

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["images_requested"], body["images_delivered"]) == (4, 3)
    assert body["credits_charged"] == 3 * 40
    assert assert_ledger_balanced(owner) == 1000 - 120


def test_with_references_the_set_and_the_references_share_the_cap(client, owner_key):
    images = [data_url(picture(RED))] * 3

    fits = post(client, owner_key, "/v1/images/quote", image=images, **a_set(12))
    default = post(client, owner_key, "/v1/images/quote", image=images, **a_set())

    assert fits.status_code == 200, fits.content
    assert len(fits.json()["images"]) == 12
    assert len(default.json()["images"]) == 12  # 15 less the 3 references


@pytest.mark.parametrize(
    ("body", "code", "param", "words"),
    [
        ({"model": "seedream-5-0-pro", **a_set(2)}, "unsupported_parameter",
         "sequential_image_generation", "seedream-4-0, seedream-4-5, seedream-5-0-lite"),
        ({"n": 2, **a_set(2)}, "invalid_value", "n", "decides how many"),
        (a_set(16), "invalid_value", "sequential_image_generation_options.max_images", ""),
        (a_set(0), "invalid_value", "sequential_image_generation_options.max_images", ""),
        ({"image": [data_url(picture(RED))] * 3, **a_set(13)}, "invalid_value",
         "sequential_image_generation_options.max_images", "from 1 to 12"),
        ({"sequential_image_generation": "always"}, "invalid_value",
         "sequential_image_generation", "auto, disabled"),
        ({"sequential_image_generation_options": {"max_images": 3}}, "invalid_value",
         "sequential_image_generation_options.max_images", "applies to a set only"),
    ],
)  # fmt: skip
def test_a_bad_set_is_refused_before_anything_is_held(
    client, owner_key, untouched, body, code, param, words
):
    for path in ("/v1/images/quote", "/v1/images/generations"):
        response = post(client, owner_key, path, **body)

        assert response.status_code == 400, response.content
        error = response.json()["error"]
        assert (error["code"], error["param"]) == (code, param), error
        assert words in error["message"]


def test_a_multipart_edit_asks_for_a_set_with_a_nested_form_field(client, owner, owner_key):
    form = {
        "model": "seedream-4-0", "prompt": "the same cat, four poses", "size": "1K",
        "sequential_image_generation": "auto",
        "sequential_image_generation_options[max_images]": "3",
        "image": SimpleUploadedFile("cat.png", picture(RED), content_type="image/png"),
    }  # fmt: skip

    response = client.post(
        "/v1/images/edits", form, headers={"Authorization": f"Bearer {owner_key}"}
    )

    assert response.status_code == 200, response.content
    assert (response.json()["images_requested"], len(response.json()["data"])) == (3, 3)
    assert assert_ledger_balanced(owner) == 1000 - 3 * 40
