"""A web process's memory for images (generation/memory.py) and the b64_json answer streamed from
storage (api/views.py), through POST /v1/images/generations."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from django.core.files.storage import default_storage

from api import answers
from generation import memory
from generation.models import ConcurrencySlot, Generation, Image
from tests.support.money import assert_ledger_balanced, ledger_kinds
from tests.support.responses import json_of, pieces_of

pytestmark = pytest.mark.smoke

MiB = 1024 * 1024


def generate(client, key, **body):
    body = {"model": "seedream-4-0", "prompt": "a red fox in snow", "size": "1024x1024", **body}
    return client.post(
        "/v1/images/generations",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}", **body.pop("headers", {})},
    )


@pytest.fixture
def full_process(settings):
    """This process's image memory all taken (by a generation in flight, say)."""
    settings.WEB_MAX_IMAGE_BYTES_IN_FLIGHT = 16 * MiB
    held = memory.budget().try_reserve(16 * MiB)
    assert held is not None
    yield held
    held.release()


def test_a_full_process_refuses_with_503_and_retry_after_and_charges_nothing(
    client, owner, owner_key, full_process
):
    response = generate(client, owner_key, n=2, response_format="b64_json")

    assert response.status_code == 503
    assert response["Retry-After"] == str(memory.RETRY_AFTER_SECONDS)
    assert response.json() == {
        "error": {
            "message": "This server is busy with other large requests; retry shortly.",
            "type": "server_error",
            "code": "server_busy",
            "param": None,
        }
    }
    # Refused before anything was recorded, held, counted or sent upstream.
    assert not Generation.objects.exists()
    assert not ConcurrencySlot.objects.exists()
    assert ledger_kinds(owner) == [("grant", 1000)]
    assert assert_ledger_balanced(owner) == 1000
    assert memory.budget().in_use == 16 * MiB


def test_once_the_memory_is_back_the_same_request_is_served(client, owner, owner_key, full_process):
    assert generate(client, owner_key).status_code == 503
    full_process.release()

    response = generate(client, owner_key)

    assert response.status_code == 200
    assert assert_ledger_balanced(owner) == 960
    assert memory.budget().in_use == 0


def test_a_generation_gives_its_memory_back_once_its_images_are_stored(
    client, owner, owner_key, settings
):
    # Smaller than the request's estimate: an idle process takes it all the same, and counts
    # what it reads past the estimate rather than refusing it.
    settings.WEB_MAX_IMAGE_BYTES_IN_FLIGHT = 1
    for response_format in ("url", "b64_json"):
        response = generate(client, owner_key, n=2, response_format=response_format)
        assert response.status_code == 200
        assert memory.budget().in_use == 0
    assert assert_ledger_balanced(owner) == 1000 - 2 * 80


@pytest.mark.parametrize(
    ("prompt", "credits", "status"),
    [
        ("a fox [sim:error-500]", 1000, 502),  # the upstream failed
        ("a fox", 10, 402),  # refused for credits before the upstream
    ],
)
def test_a_generation_that_fails_gives_its_memory_back(
    client, user_factory, api_key_factory, settings, prompt, credits, status
):
    settings.UPSTREAM_MAX_RETRIES = 0
    user = user_factory(credits=credits)
    response = generate(client, api_key_factory(user).raw_key, prompt=prompt)
    assert response.status_code == status
    assert memory.budget().in_use == 0
    assert assert_ledger_balanced(user) == credits


def test_an_idempotent_replay_gives_its_memory_back(client, owner, owner_key):
    headers = {"Idempotency-Key": "memory-1"}
    first = generate(client, owner_key, headers=headers)
    second = generate(client, owner_key, headers=headers)

    assert second["Idempotent-Replayed"] == "true"
    assert json_of(second)["id"] == json_of(first)["id"]
    assert memory.budget().in_use == 0


def test_b64_json_is_streamed_from_storage_in_pieces_with_its_exact_length(
    client, owner, owner_key
):
    # [sim:photo] 2048x2048 JPEGs are several pieces each, so the pieces' joins are covered.
    response = generate(
        client, owner_key, prompt="[sim:photo] kites", size="2048x2048", n=3,
        response_format="b64_json",
    )  # fmt: skip

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/json"
    pieces = pieces_of(response)
    body = b"".join(pieces)
    assert int(response["Content-Length"]) == len(body)
    # No piece holds more than one read of one image, in base64.
    assert max(len(piece) for piece in pieces) <= answers.B64_READ_BYTES * 4 // 3
    answer = json.loads(body)
    generation = Generation.objects.get()
    assert answer["id"] == generation.public_id
    assert (answer["images_requested"], answer["images_delivered"]) == (3, 3)
    assert answer["credits_charged"] == 120
    images = list(generation.images.order_by("index"))
    assert len(images) == 3
    for item, image in zip(answer["data"], images, strict=True):
        assert set(item) == {"b64_json", "revised_prompt"}
        with default_storage.open(image.file.name, "rb") as stored:
            assert base64.b64decode(item["b64_json"]) == stored.read()
        assert image.bytes > answers.B64_READ_BYTES
    assert assert_ledger_balanced(owner) == 880


@pytest.mark.parametrize("fault", ["deleted", "truncated"])
def test_an_image_storage_cannot_give_back_mid_answer_cuts_it_and_the_money_stays_settled(
    client, owner, owner_key, caplog, fault
):
    response = generate(client, owner_key, n=2, response_format="b64_json")
    assert response.status_code == 200
    second = Image.objects.get(index=1)
    if fault == "deleted":
        default_storage.delete(second.file.name)
    else:
        with open(default_storage.path(second.file.name), "r+b") as handle:
            handle.truncate(second.bytes // 2)

    with caplog.at_level(logging.ERROR, logger="api.views"), pytest.raises(OSError):
        pieces_of(response)

    # The client sees a cut connection, never a wrong body; the charge is for the images that
    # were stored when it was made, and a replay or the gallery gives the first one again.
    generation = Generation.objects.get()
    assert f"generation {generation.public_id}: image {second.token} could not be read" in (
        caplog.text
    )
    assert generation.status == Generation.Status.SUCCEEDED
    assert generation.charged_credits == 80
    assert ledger_kinds(owner)[-1] == ("charge", -80)
    assert assert_ledger_balanced(owner) == 920
