"""Every bad input gets its documented status and OpenAI-shaped error, and costs nothing."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from generation.models import Generation
from keys import services as keys

pytestmark = pytest.mark.smoke

GOOD = {"model": "seedream-4-0", "prompt": "a red fox in snow", "size": "1024x1024"}


def post(client, key, body, *, content_type="application/json", raw=None, **headers):
    data = raw if raw is not None else json.dumps(body)
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return client.post("/v1/images/generations", data, content_type=content_type, headers=headers)


def assert_error(response, status, *, code=None, param=None, type_="invalid_request_error"):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response["x-request-id"].startswith("req_")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["message"]
    assert error["type"] == type_
    if code is not None:
        assert error["code"] == code
    assert error["param"] == param
    return error


@pytest.mark.parametrize(
    ("change", "param", "code"),
    [
        ({"prompt": None}, "prompt", "invalid_value"),
        ({"prompt": ""}, "prompt", "invalid_value"),
        ({"prompt": "   \n\t"}, "prompt", "invalid_value"),
        ({"prompt": 42}, "prompt", "invalid_value"),
        ({"prompt": ["a", "b"]}, "prompt", "invalid_value"),
        ({"prompt": "x" * 4001}, "prompt", "string_above_max_length"),
        ({"n": 0}, "n", "invalid_value"),
        ({"n": 11}, "n", "invalid_value"),
        ({"n": "2"}, "n", "invalid_value"),
        ({"n": 2.0}, "n", "invalid_value"),
        ({"n": True}, "n", "invalid_value"),
        ({"n": -1}, "n", "invalid_value"),
        ({"size": "1024"}, "size", "invalid_value"),
        ({"size": "1024x"}, "size", "invalid_value"),
        ({"size": "x1024"}, "size", "invalid_value"),
        ({"size": "1024*1024"}, "size", "invalid_value"),
        ({"size": "-1024x1024"}, "size", "invalid_value"),
        ({"size": "1024x1024 "}, "size", "invalid_value"),
        ({"size": 1024}, "size", "invalid_value"),
        ({"size": "256x256"}, "size", "invalid_value"),
        ({"size": "800x800"}, "size", "invalid_value"),
        ({"size": "8192x8192"}, "size", "invalid_value"),
        ({"size": "4096x240"}, "size", "invalid_value"),
        ({"size": "512x512"}, "size", "invalid_value"),
        ({"model": "seedream-3-0", "size": "2K"}, "size", "invalid_value"),
        ({"model": "seedream-3-0", "size": "4096x4096"}, "size", "invalid_value"),
        ({"response_format": "png"}, "response_format", "invalid_value"),
        ({"response_format": None, "stream": "yes"}, "stream", "invalid_value"),
        ({"seed": "7"}, "seed", "invalid_value"),
        ({"seed": 2**31}, "seed", "invalid_value"),
        ({"seed": -2}, "seed", "invalid_value"),
        ({"watermark": "false"}, "watermark", "invalid_value"),
        ({"guidance_scale": 5}, "guidance_scale", "unsupported_parameter"),
        ({"model": "seedream-3-0", "guidance_scale": 0.5}, "guidance_scale", "invalid_value"),
        ({"model": "seedream-3-0", "guidance_scale": 11}, "guidance_scale", "invalid_value"),
        ({"model": "seedream-3-0", "guidance_scale": "5"}, "guidance_scale", "invalid_value"),
        ({"model": 4}, "model", "invalid_value"),
        ({"user": "u" * 300}, "user", "invalid_value"),
    ],
)
def test_it_rejects_a_bad_parameter_naming_it(client, owner_key, untouched, change, param, code):
    assert_error(post(client, owner_key, {**GOOD, **change}), 400, param=param, code=code)


def test_it_names_a_missing_prompt(client, owner_key, untouched):
    error = assert_error(
        post(client, owner_key, {"model": "seedream-4-0"}),
        400,
        param="prompt",
        code="missing_required_parameter",
    )
    assert "prompt" in error["message"]


def test_it_names_a_missing_model(client, owner_key, untouched):
    assert_error(
        post(client, owner_key, {"prompt": "a fox"}),
        400,
        param="model",
        code="missing_required_parameter",
    )


def test_it_answers_404_model_not_found_for_an_unknown_model(client, owner_key, untouched):
    error = assert_error(
        post(client, owner_key, {**GOOD, "model": "dall-e-3"}),
        404,
        code="model_not_found",
        param="model",
    )
    assert "dall-e-3" in error["message"]


def test_it_explains_the_size_rule_that_was_broken(client, owner_key, untouched):
    error = assert_error(post(client, owner_key, {**GOOD, "size": "800x800"}), 400, param="size")
    assert "640,000 pixels" in error["message"]
    assert "1,048,576 to 16,777,216 pixels" in error["message"]
    assert "the nearest size it makes is 1024x1024" in error["message"]


@pytest.mark.parametrize(
    "raw", [b"{not json", b"[1, 2]", b'"a string"', b"null", b"\xff\xfe", b"{}{}"]
)
def test_it_rejects_a_body_that_is_not_a_json_object(client, owner_key, untouched, raw):
    assert_error(post(client, owner_key, None, raw=raw), 400, code="invalid_json")


def test_it_rejects_an_empty_json_body(client, owner_key, untouched):
    response = client.generic(
        "POST",
        "/v1/images/generations",
        b"",
        # Django's test client drops the content type of an empty body; real clients send it.
        CONTENT_TYPE="application/json",
        headers={"Authorization": f"Bearer {owner_key}"},
    )
    assert_error(response, 400, code="invalid_json")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_it_answers_415_for_a_body_that_is_not_json(client, owner_key, untouched, content_type):
    assert_error(
        post(client, owner_key, None, raw=json.dumps(GOOD), content_type=content_type),
        415,
        code="unsupported_media_type",
    )


def test_it_accepts_json_with_a_charset(client, owner_key):
    response = post(client, owner_key, GOOD, content_type="application/json; charset=utf-8")
    assert response.status_code == 200, response.content


def test_it_answers_413_for_an_oversized_body(client, owner_key, untouched, settings):
    settings.API_MAX_IMAGE_BODY_BYTES = 1000  # the generations path's (it may carry images)
    body = {**GOOD, "prompt": "a" * 2000}
    assert_error(post(client, owner_key, body), 413, code="request_too_large")


def test_it_accepts_and_ignores_openai_fields_that_do_not_apply(client, owner, owner_key):
    body = {
        **GOOD,
        "quality": "hd",
        "style": "vivid",
        "background": "opaque",
        "moderation": "low",
        "output_compression": 50,
        "output_format": "png",
        "partial_images": 0,
        "user": "end-user-7",
        "something_new": {"nested": True},
    }
    response = post(client, owner_key, body)
    assert response.status_code == 200, response.content
    assert Generation.objects.get().params["user"] == "end-user-7"


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer sk-seedream-nothex",
        "Bearer sk-other-0123456789abcdef_" + "a" * 43,
        "Bearer sk-seedream-0123456789abcdef_" + "a" * 43,
    ],
)
def test_it_answers_401_invalid_api_key_for_a_missing_malformed_or_unknown_key(
    client, untouched, authorization
):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.post(
        "/v1/images/generations", json.dumps(GOOD), content_type="application/json", headers=headers
    )
    assert_error(response, 401, code="invalid_api_key")


def test_a_401_gives_the_full_address_of_the_keys_page(
    client, owner, owner_key, api_key_factory, untouched, settings
):
    settings.SITE_URL = "https://images.example.com"
    keys_page = "https://images.example.com/dashboard/keys/"
    missing = client.post(
        "/v1/images/generations", json.dumps(GOOD), content_type="application/json"
    )
    wrong = post(client, owner_key[:-1] + ("b" if owner_key[-1] == "a" else "a"), GOOD)
    issued = api_key_factory(owner)
    keys.revoke_key(issued.api_key)
    revoked = post(client, issued.raw_key, GOOD)

    assert assert_error(missing, 401, code="invalid_api_key")["message"].endswith(
        f"Create one at {keys_page}"
    )
    assert assert_error(wrong, 401, code="invalid_api_key")["message"].endswith(
        f"Find your keys at {keys_page}"
    )
    assert assert_error(revoked, 401, code="invalid_api_key")["message"] == (
        f"This API key is revoked. Create a new one at {keys_page}"
    )


def test_it_never_echoes_a_wrong_key_in_full(client, owner_key, untouched):
    wrong = owner_key[:-1] + ("b" if owner_key[-1] == "a" else "a")
    error = assert_error(post(client, wrong, GOOD), 401, code="invalid_api_key")
    assert wrong not in error["message"]
    assert wrong[20:40] not in error["message"]


def test_it_answers_401_for_a_revoked_key_on_the_very_next_request(
    client, owner, api_key_factory, untouched
):
    issued = api_key_factory(owner)
    keys.revoke_key(issued.api_key)
    error = assert_error(post(client, issued.raw_key, GOOD), 401, code="invalid_api_key")
    assert "revoked" in error["message"]


def test_it_answers_401_for_an_expired_key(client, owner, api_key_factory, untouched):
    issued = api_key_factory(owner, expires_at=timezone.now() + timedelta(hours=1))
    type(issued.api_key).objects.filter(pk=issued.api_key.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    error = assert_error(post(client, issued.raw_key, GOOD), 401, code="invalid_api_key")
    assert "expired" in error["message"]


def test_it_answers_401_for_a_deactivated_account(client, owner, owner_key, untouched):
    owner.is_active = False
    owner.save()
    assert_error(post(client, owner_key, GOOD), 401, code="invalid_api_key")


def test_a_bad_key_wins_over_a_bad_body(client, untouched):
    response = post(client, "sk-seedream-bogus", {"model": "nope"}, content_type="text/plain")
    assert_error(response, 401, code="invalid_api_key")


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_it_answers_405_for_other_methods(client, owner_key, method):
    # GET lists the account's generations (api/jobs.py).
    response = getattr(client, method)(
        "/v1/images/generations", headers={"Authorization": f"Bearer {owner_key}"}
    )
    assert_error(response, 405, code="method_not_allowed")
    assert response["Allow"] == "GET, POST"


def test_it_answers_404_in_openai_shape_for_an_unknown_route(client, owner_key):
    response = client.get(
        "/v1/images/variations/nope", headers={"Authorization": f"Bearer {owner_key}"}
    )
    assert_error(response, 404, code="unknown_url")


def test_it_rejects_a_malformed_idempotency_key(client, owner_key, untouched):
    response = post(client, owner_key, GOOD, **{"Idempotency-Key": "x" * 300})
    assert_error(response, 400, param="Idempotency-Key")
