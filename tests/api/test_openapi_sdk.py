"""The official `openai` SDK's requests, as it sends them, all match the OpenAPI document: a
client generated from the document, or a gateway that validates against it, takes what the
SDK sends. The requests are recorded with an httpx transport (no server: what is checked is
what leaves the SDK)."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from openai import OpenAI

from api.openapi import document
from tests.support.openapi import RequestChecker
from tests.support.pictures import picture

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]

IMAGE_ANSWER = {
    "created": 1,
    "data": [{"url": "https://example.com/img/x.jpg", "revised_prompt": None}],
    "id": "gen_0",
    "model": "seedream-4-0",
    "images_requested": 1,
    "images_delivered": 1,
    "credits_charged": 40,
    "usage": {
        "input_tokens": 0,
        "input_tokens_details": {"image_tokens": 0, "text_tokens": 0},
        "output_tokens": 4096,
        "total_tokens": 4096,
    },
}
MODEL = {"id": "seedream-4-0", "object": "model", "created": 1, "owned_by": "bytedance"}


def _answer(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path.endswith("/models"):
        return httpx.Response(200, json={"object": "list", "data": [MODEL]})
    if "/models/" in path:
        return httpx.Response(200, json=MODEL)
    return httpx.Response(200, json=IMAGE_ANSWER)


@pytest.fixture
def recorded():
    """An SDK client whose requests are kept, and the list they are kept in."""
    sent: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        request.read()
        sent.append(request)
        return _answer(request)

    client = OpenAI(
        base_url="https://api.example.com/v1",
        api_key="sk-seedream-test",
        http_client=httpx.Client(transport=httpx.MockTransport(handle)),
        max_retries=0,
    )
    return client, sent


@pytest.fixture
def checker():
    return RequestChecker(document("https://api.example.com"))


def _png(name: str) -> tuple[str, io.BytesIO, str]:
    return (name, io.BytesIO(picture()), "image/png")


def test_images_generate_matches_the_document(recorded, checker):
    client, sent = recorded

    client.images.generate(model="seedream-4-0", prompt="a red fox in snow")
    client.images.generate(
        model="seedream-4-0",
        prompt="two kites",
        n=2,
        size="1024x1024",
        response_format="b64_json",
        quality="high",
        output_format="png",
        output_compression=80,
        background="opaque",
        user="end-user-1",
        extra_body={"seed": 7, "watermark": False, "guidance_scale": 2.5, "async": True},
        extra_headers={"Idempotency-Key": "k-1", "Prefer": "respond-async"},
    )

    assert [checker.check(request) for request in sent] == ["createImage", "createImage"]
    assert json.loads(sent[1].content)["async"] is True


def test_images_edit_with_one_file_matches_the_document(recorded, checker):
    client, sent = recorded

    client.images.edit(
        model="seedream-4-0", image=_png("in.png"), prompt="make it night", n=2, size="2K"
    )

    assert checker.check(sent[0]) == "createImageEdit"
    assert sent[0].headers["Content-Type"].startswith("multipart/form-data")
    assert b'name="image"; filename="in.png"' in sent[0].content


def test_images_edit_with_a_list_of_files_matches_the_document(recorded, checker):
    client, sent = recorded

    client.images.edit(
        model="seedream-4-0",
        image=[_png("a.png"), _png("b.png")],
        prompt="put the cat from the first on the sofa of the second",
        response_format="b64_json",
        extra_body={"watermark": True, "seed": 3},
    )

    assert checker.check(sent[0]) == "createImageEdit"
    assert sent[0].content.count(b'name="image[]"') == 2


def test_models_list_and_retrieve_match_the_document(recorded, checker):
    client, sent = recorded

    client.models.list()
    client.models.retrieve("seedream-4-0")

    assert [checker.check(request) for request in sent] == ["listModels", "retrieveModel"]


def test_the_checker_refuses_what_the_document_does_not_allow(checker):
    """The check above has teeth: a wrong type, an unknown path, a missing key."""
    key = {"Authorization": "Bearer sk-x"}
    bad = [
        httpx.Request("POST", "https://api.example.com/v1/images/generations", headers=key,
                      json={"model": "seedream-4-0", "prompt": "x", "n": "2"}),
        httpx.Request("POST", "https://api.example.com/v1/images/generations", headers=key,
                      json={"model": "seedream-4-0", "prompt": "x", "async": "yes"}),
        httpx.Request("GET", "https://api.example.com/v1/images/generations?limit=0",
                      headers=key),
        httpx.Request("GET", "https://api.example.com/v1/models"),
        httpx.Request("GET", "https://api.example.com/v1/files", headers=key),
    ]  # fmt: skip
    for request in bad:
        with pytest.raises(AssertionError):
            checker.check(request)
