"""What the OpenAPI fuzzing (tests/integration/test_openapi_fuzz.py) found, kept as regular
tests: each request that once answered wrongly, with the answer it must get."""

from __future__ import annotations

import io
import json

import pytest

from tests.api.test_validation import assert_error
from tests.support.pictures import picture

pytestmark = pytest.mark.smoke


def _get(client, key, path):
    return client.get(path, headers={"Authorization": f"Bearer {key}"})


@pytest.mark.parametrize("job_id", ["gen_\x00", "\u00b4\u00f6d\x00", "a b", "x" * 65])
def test_a_job_id_that_cannot_be_one_is_a_404_not_a_500(client, owner_key, untouched, job_id):
    """Found: a NUL byte in the id reached PostgreSQL, which refuses one in text (500)."""
    response = _get(client, owner_key, f"/v1/images/generations/{job_id}")
    assert_error(response, 404, code="not_found", param="id")

    cancel = client.post(
        f"/v1/images/generations/{job_id}/cancel", headers={"Authorization": f"Bearer {owner_key}"}
    )
    assert_error(cancel, 404, code="not_found", param="id")


def test_an_after_cursor_with_a_nul_byte_is_a_400_not_a_500(client, owner_key, untouched):
    """Found: ``GET /v1/images/generations?after=%C2%B4%C3%B6%C3%8Bd%00`` was a 500."""
    response = _get(
        client, owner_key, "/v1/images/generations?after=%C2%B4%C3%B6%C3%8Bd%00&limit=8"
    )
    assert_error(response, 400, code="invalid_value", param="after")


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"prompt": "a\x00b"}, "prompt"),
        ({"user": "end-user\x00"}, "user"),
        ({"size": "1024x1024\x00"}, "size"),
        ({"image": ["https://example.com/a.png", "x\x00"]}, "image[1]"),
        ({"style": {"x": "\x00"}}, "style.x"),
    ],
)
def test_a_nul_character_in_the_body_is_a_400_naming_it(
    client, owner_key, untouched, change, param
):
    """Found: a NUL character in ``prompt`` (stored as text) or ``user`` (in JSON) was a 500 on
    PostgreSQL, after the request had been counted."""
    body = {"model": "seedream-4-0", "prompt": "a fox", "size": "1024x1024", **change}
    for path in ("/v1/images/generations", "/v1/images/quote"):
        response = client.post(
            path,
            json.dumps(body),
            content_type="application/json",
            headers={"Authorization": f"Bearer {owner_key}"},
        )
        assert_error(response, 400, code="invalid_value", param=param)


def test_a_nul_character_in_a_multipart_edit_is_a_400(client, owner_key, untouched):
    response = client.post(
        "/v1/images/edits",
        {"model": "seedream-4-0", "prompt": "night\x00", "image": io.BytesIO(picture())},
        headers={"Authorization": f"Bearer {owner_key}"},
    )
    assert_error(response, 400, code="invalid_value", param="prompt")


def test_a_streamed_answer_is_described_event_by_event():
    """Found: the stream's schema described the whole body as a string, while a client (and
    schemathesis) reads it an event at a time: ``{"event": ..., "data": "<json>"}``."""
    from api.openapi import document

    answer = document()["paths"]["/images/generations"]["post"]["responses"]["200"]
    schema = answer["content"]["text/event-stream"]["schema"]
    done, image_or_error = schema["anyOf"]
    assert done["properties"]["data"] == {"const": "[DONE]"}
    assert image_or_error["properties"]["event"]["enum"] == ["image_generation.completed", "error"]
