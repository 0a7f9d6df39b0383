"""The Seedream upstream simulator, over real HTTP against a ``python -m simulator`` process."""

from __future__ import annotations

import base64
import io
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from PIL import Image, UnidentifiedImageError

from simulator.process import running_simulator
from tests.support.simulator import SIM_TEST_KEY, unique

pytestmark = pytest.mark.integration

KEY = SIM_TEST_KEY
V40 = "seedream-4-0-250828"
V45 = "seedream-4-5-251128"
V30 = "seedream-3-0-t2i-250415"


def generate(
    client: httpx.Client, base_url: str, *, key: str | None = KEY, **fields: Any
) -> httpx.Response:
    body: dict[str, Any] = {"model": V40, "prompt": unique("a red fox in snow"), "watermark": False}
    body.update(fields)
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    return client.post(f"{base_url}/images/generations", json=body, headers=headers)


def assert_upstream_error(
    response: httpx.Response, status: int, code: str, error_type: str, param: str = ""
) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    request_id = response.headers["x-request-id"]
    assert error == {
        "code": code,
        "message": error["message"],
        "param": param,
        "type": error_type,
    }
    assert error["message"].endswith(f" Request id: {request_id}")


def fetch_image(client: httpx.Client, url: str) -> tuple[httpx.Response, Image.Image]:
    response = client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return response, image


def tamper(url: str, **query: str) -> str:
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query))
    params.update(query)
    return urlunsplit(parts._replace(query=urlencode(params)))


# --- Authentication and models ------------------------------------------------------------------


def test_it_rejects_a_request_without_an_api_key(client: httpx.Client, base_url: str) -> None:
    response = generate(client, base_url, key=None)

    assert_upstream_error(response, 401, "AuthenticationError", "Unauthorized")
    assert response.json()["error"]["message"].startswith(
        "The API key in the request is missing or invalid."
    )


def test_it_rejects_a_wrong_api_key(client: httpx.Client, base_url: str) -> None:
    response = generate(client, base_url, key="not-the-key")

    assert_upstream_error(response, 401, "AuthenticationError", "Unauthorized")


def test_it_answers_404_for_an_unknown_model(client: httpx.Client, base_url: str) -> None:
    response = generate(client, base_url, model="seedream-9-9-999999")

    assert_upstream_error(response, 404, "InvalidEndpointOrModel.NotFound", "NotFound")


def test_it_accepts_volcengine_model_ids_and_echoes_the_id_sent(
    client: httpx.Client, base_url: str
) -> None:
    response = generate(client, base_url, model=f"doubao-{V30}", size="1024x1024")

    assert response.status_code == 200, response.text
    assert response.json()["model"] == f"doubao-{V30}"


def test_it_requires_a_prompt(client: httpx.Client, base_url: str) -> None:
    response = generate(client, base_url, prompt="   ")

    assert_upstream_error(response, 400, "MissingParameter", "BadRequest", param="prompt")


# --- Size rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "size", "rendered"),
    [
        (V40, "2304x1728", "2304x1728"),
        (V40, "1600x700", "1600x700"),
        (V40, "2K", "2048x2048"),
        (V45, "2560x1440", "2560x1440"),
        (V30, "512x512", "512x512"),
    ],
)
def test_it_accepts_sizes_within_the_model_rules(
    client: httpx.Client, base_url: str, model: str, size: str, rendered: str
) -> None:
    response = generate(client, base_url, model=model, size=size)

    assert response.status_code == 200, response.text
    assert response.json()["data"][0]["size"] == rendered


@pytest.mark.parametrize(
    ("model", "size"),
    [(V40, "800x800"), (V40, "1280x720"), (V40, "256x256"), (V30, "256x256"), (V45, "2048x1024")],
)
def test_it_rejects_a_size_below_the_model_minimum(
    client: httpx.Client, base_url: str, model: str, size: str
) -> None:
    response = generate(client, base_url, model=model, size=size)

    assert_upstream_error(response, 400, "InvalidParameter", "BadRequest", param="size")


@pytest.mark.parametrize(("model", "size"), [(V40, "4352x256"), (V30, "2176x128")])
def test_it_rejects_an_aspect_ratio_beyond_16_to_1(
    client: httpx.Client, base_url: str, model: str, size: str
) -> None:
    response = generate(client, base_url, model=model, size=size)

    assert_upstream_error(response, 400, "InvalidParameter", "BadRequest", param="size")


@pytest.mark.parametrize(("model", "size"), [(V30, "2K"), (V45, "1K"), (V40, "8K"), (V40, "big")])
def test_it_rejects_a_size_keyword_the_model_does_not_know(
    client: httpx.Client, base_url: str, model: str, size: str
) -> None:
    response = generate(client, base_url, model=model, size=size)

    assert_upstream_error(response, 400, "InvalidParameter", "BadRequest", param="size")


@pytest.mark.parametrize(("model", "default"), [(V40, "2048x2048"), (V30, "1024x1024")])
def test_it_uses_the_model_default_size_when_none_is_given(
    client: httpx.Client, base_url: str, model: str, default: str
) -> None:
    response = generate(client, base_url, model=model)

    assert response.status_code == 200, response.text
    assert response.json()["data"][0]["size"] == default


# --- Other parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("seed", 2_147_483_648, "seed"),
        ("seed", -2, "seed"),
        ("seed", "7", "seed"),
        ("response_format", "png", "response_format"),
        ("watermark", "yes", "watermark"),
        ("sequential_image_generation", "always", "sequential_image_generation"),
        (
            "sequential_image_generation_options",
            {"max_images": 16},
            "sequential_image_generation_options.max_images",
        ),
    ],
)
def test_it_rejects_invalid_parameters(
    client: httpx.Client, base_url: str, field: str, value: Any, param: str
) -> None:
    response = generate(client, base_url, **{field: value})

    assert_upstream_error(response, 400, "InvalidParameter", "BadRequest", param=param)


@pytest.mark.parametrize("value", [0.5, 11, "3"])
def test_it_rejects_a_guidance_scale_outside_1_to_10(
    client: httpx.Client, base_url: str, value: Any
) -> None:
    response = generate(client, base_url, model=V30, guidance_scale=value)

    assert_upstream_error(response, 400, "InvalidParameter", "BadRequest", param="guidance_scale")


def test_it_refuses_streaming(client: httpx.Client, base_url: str) -> None:
    response = generate(client, base_url, stream=True)

    assert_upstream_error(response, 400, "InvalidParameter", "BadRequest", param="stream")
    assert "streaming is not simulated" in response.json()["error"]["message"]


# --- Success ------------------------------------------------------------------------------------


def test_it_answers_the_upstream_success_shape(client: httpx.Client, base_url: str) -> None:
    before = int(time.time())

    response = generate(client, base_url, size="1600x700", seed=7)

    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"]
    body = response.json()
    assert set(body) == {"model", "created", "data", "usage"}
    assert body["model"] == V40
    assert before <= body["created"] <= int(time.time())
    [entry] = body["data"]
    assert set(entry) == {"url", "size"}
    assert entry["size"] == "1600x700"
    assert body["usage"] == {"generated_images": 1, "output_tokens": 4375, "total_tokens": 4375}
    query = dict(parse_qsl(urlsplit(entry["url"]).query))
    assert query["X-Tos-Expires"] == "86400"
    assert set(query) == {"X-Tos-Expires", "X-Tos-Date", "X-Tos-Signature"}


def test_the_linked_image_is_a_baseline_jpeg_of_exactly_the_requested_size(
    client: httpx.Client, base_url: str
) -> None:
    url = generate(client, base_url, size="2496x1664").json()["data"][0]["url"]

    response, image = fetch_image(client, url)

    assert image.format == "JPEG"
    assert image.size == (2496, 1664)
    assert "progressive" not in image.info
    assert response.headers["x-request-id"]


def test_a_photo_marker_gives_a_jpeg_as_large_as_a_photographs(
    client: httpx.Client, base_url: str
) -> None:
    prompt = unique("a street at night")
    plain = generate(client, base_url, size="2K", prompt=prompt).json()["data"][0]["url"]
    photo = generate(client, base_url, size="2K", prompt=f"[sim:photo] {prompt}")
    photo_url = photo.json()["data"][0]["url"]

    plain_response, _ = fetch_image(client, plain)
    photo_response, image = fetch_image(client, photo_url)

    assert image.format == "JPEG" and image.size == (2048, 2048)
    # A real 2K photograph is most of a megabyte as JPEG; the plain picture a fraction of that.
    assert len(photo_response.content) > 3 * len(plain_response.content)
    assert len(photo_response.content) > 500_000


def test_the_same_prompt_and_seed_give_identical_bytes(client: httpx.Client, base_url: str) -> None:
    fields: dict[str, Any] = {"prompt": unique("a lighthouse"), "seed": 42, "model": V30}

    first = generate(client, base_url, response_format="b64_json", **fields).json()
    second = generate(client, base_url, response_format="b64_json", **fields).json()
    linked = generate(client, base_url, response_format="url", **fields).json()
    other_prompt = generate(
        client, base_url, response_format="b64_json", **{**fields, "prompt": unique("a barn")}
    ).json()
    other_seed = generate(client, base_url, response_format="b64_json", **{**fields, "seed": 43})

    image = first["data"][0]["b64_json"]
    assert second["data"][0]["b64_json"] == image
    assert client.get(linked["data"][0]["url"]).content == base64.b64decode(image)
    assert other_prompt["data"][0]["b64_json"] != image
    assert other_seed.json()["data"][0]["b64_json"] != image


def test_it_returns_b64_json_when_asked(client: httpx.Client, base_url: str) -> None:
    response = generate(client, base_url, model=V30, size="1024x768", response_format="b64_json")

    assert response.status_code == 200, response.text
    [entry] = response.json()["data"]
    assert set(entry) == {"b64_json", "size"}
    image = Image.open(io.BytesIO(base64.b64decode(entry["b64_json"])))
    assert (image.format, image.size) == ("JPEG", (1024, 768))


def test_sequential_generation_returns_max_images(client: httpx.Client, base_url: str) -> None:
    response = generate(
        client,
        base_url,
        size="1024x1024",
        sequential_image_generation="auto",
        sequential_image_generation_options={"max_images": 3},
    )

    body = response.json()
    assert [entry["size"] for entry in body["data"]] == ["1024x1024"] * 3
    assert len({entry["url"] for entry in body["data"]}) == 3
    assert body["usage"] == {"generated_images": 3, "output_tokens": 12288, "total_tokens": 12288}


def test_it_stamps_an_ai_generated_mark_unless_told_not_to(
    client: httpx.Client, base_url: str
) -> None:
    fields: dict[str, Any] = {
        "prompt": unique("a kite"),
        "model": V30,
        "size": "512x512",
        "response_format": "b64_json",
    }

    marked = generate(client, base_url, watermark=True, **fields)
    unmarked = generate(client, base_url, watermark=False, **fields)
    default = client.post(
        f"{base_url}/images/generations", json=fields, headers={"Authorization": f"Bearer {KEY}"}
    )

    def image(response: httpx.Response) -> bytes:
        return base64.b64decode(response.json()["data"][0]["b64_json"])

    def corner(response: httpx.Response) -> bytes:
        picture = Image.open(io.BytesIO(image(response))).convert("L")
        return picture.crop((384, 480, 512, 512)).tobytes()

    # The mark sits in the bottom-right corner, and upstream stamps it unless told not to.
    assert corner(marked) != corner(unmarked)
    assert image(default) == image(marked)


# --- Signed links -------------------------------------------------------------------------------


def test_a_tampered_link_is_refused(client: httpx.Client, base_url: str) -> None:
    url = generate(client, base_url).json()["data"][0]["url"]
    signature = dict(parse_qsl(urlsplit(url).query))["X-Tos-Signature"]

    forged = tamper(
        url, **{"X-Tos-Signature": ("0" if signature[0] != "0" else "1") + signature[1:]}
    )
    extended = tamper(url, **{"X-Tos-Expires": "999999999"})

    assert client.get(forged).status_code == 403
    assert client.get(extended).status_code == 403


def test_an_expired_link_is_refused(client: httpx.Client, base_url: str) -> None:
    url = generate(client, base_url, prompt=unique("[sim:expires=0]")).json()["data"][0]["url"]

    response = client.get(url)

    assert response.status_code == 403
    assert response.json()["Code"] == "AccessDenied"


# --- Fault markers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("marker", "status", "code", "error_type"),
    [
        ("block-prompt", 400, "InputTextSensitiveContentDetected", "BadRequest"),
        ("block-output", 400, "OutputImageSensitiveContentDetected", "BadRequest"),
        ("error-500", 500, "InternalServiceError", "InternalServerError"),
        ("error-429", 429, "ModelAccountIpmRateLimitExceeded", "TooManyRequests"),
        ("quota", 403, "AccountOverdueError", "Forbidden"),
    ],
)
def test_an_error_marker_gives_the_upstream_error(
    client: httpx.Client, base_url: str, marker: str, status: int, code: str, error_type: str
) -> None:
    response = generate(client, base_url, prompt=unique(f"a fox [sim:{marker}]"))

    assert_upstream_error(response, status, code, error_type)


def test_an_unknown_marker_is_rejected(client: httpx.Client, base_url: str) -> None:
    response = generate(client, base_url, prompt=unique("a fox [sim:eror-500]"))

    assert_upstream_error(response, 400, "InvalidParameter", "BadRequest", param="prompt")


def test_the_latency_marker_delays_the_answer(client: httpx.Client, base_url: str) -> None:
    started = time.monotonic()

    response = generate(client, base_url, prompt=unique("a fox [sim:latency=0.4]"))

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.4


def test_deliver_answers_only_the_first_k_calls_for_a_prompt(
    client: httpx.Client, base_url: str
) -> None:
    prompt = unique("a fox [sim:deliver=2]")

    statuses = [generate(client, base_url, prompt=prompt).status_code for _ in range(4)]

    assert statuses == [200, 200, 500, 500]
    assert generate(client, base_url, prompt=unique("a fox [sim:deliver=2]")).status_code == 200


def test_fail_first_fails_the_first_k_calls_for_a_prompt(
    client: httpx.Client, base_url: str
) -> None:
    prompt = unique("a fox [sim:fail-first=2]")

    responses = [generate(client, base_url, prompt=prompt) for _ in range(3)]

    assert [response.status_code for response in responses] == [500, 500, 200]
    assert_upstream_error(responses[0], 500, "InternalServiceError", "InternalServerError")


def test_batch_error_fails_the_image_inside_an_http_200(
    client: httpx.Client, base_url: str
) -> None:
    response = generate(client, base_url, prompt=unique("a fox [sim:batch-error]"))

    assert response.status_code == 200
    body = response.json()
    [entry] = body["data"]
    assert entry["error"]["code"] == "OutputImageSensitiveContentDetected"
    assert entry["error"]["message"]
    assert body["usage"]["generated_images"] == 0


def test_bad_image_links_to_bytes_that_are_not_an_image(
    client: httpx.Client, base_url: str
) -> None:
    url = generate(client, base_url, prompt=unique("a fox [sim:bad-image]")).json()["data"][0][
        "url"
    ]

    response = client.get(url)

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(response.content))


def test_offsite_url_links_to_a_foreign_host(client: httpx.Client, base_url: str) -> None:
    response = generate(client, base_url, prompt=unique("a fox [sim:offsite-url]"))

    assert response.status_code == 200
    assert response.json()["data"][0]["url"] == "http://203.0.113.9/evil.jpeg"


def test_huge_image_links_to_a_40_mib_body(client: httpx.Client, base_url: str) -> None:
    url = generate(client, base_url, prompt=unique("a fox [sim:huge-image]")).json()["data"][0][
        "url"
    ]

    with client.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/jpeg"
        assert int(response.headers["content-length"]) == 40 * 1024 * 1024
        received = sum(len(chunk) for chunk in response.iter_bytes())

    assert received == 40 * 1024 * 1024


# --- Test helpers and options -------------------------------------------------------------------


def test_it_counts_the_calls_received_per_prompt(client: httpx.Client, base_url: str) -> None:
    prompt = unique("a fox")
    calls_url = base_url.removesuffix("/api/v3") + "/_sim/calls"
    for _ in range(3):
        generate(client, base_url, prompt=prompt)

    # Each call's references are listed too (none here); test_references.py covers them.
    assert client.get(calls_url, params={"prompt": prompt}).json() == {
        "calls": 3,
        "references": [[], [], []],
    }
    assert client.get(calls_url, params={"prompt": unique("never sent")}).json() == {
        "calls": 0,
        "references": [],
    }


def test_it_answers_its_health_check(client: httpx.Client, base_url: str) -> None:
    response = client.get(base_url.removesuffix("/api/v3") + "/_sim/health")

    assert response.json() == {"ok": True}
    assert response.headers["x-request-id"]


def test_the_latency_option_delays_every_answer() -> None:
    with running_simulator(latency=0.5, api_key="other-key") as url, httpx.Client() as client:
        started = time.monotonic()
        response = generate(client, url, key="other-key", model=V30, size="512x512")
        elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert elapsed >= 0.5


# --- Delivery faults: how an answer or an image reaches the client -----------------------------


def raw_body(client: httpx.Client, method: str, url: str, **kwargs: Any) -> tuple[int, int, int]:
    """Read a response piece by piece until it ends or breaks: (Content-Length promised, bytes
    received, pieces received)."""
    received = pieces = 0
    with client.stream(method, url, **kwargs) as response:
        promised = int(response.headers["content-length"])
        try:
            for chunk in response.iter_raw():
                received += len(chunk)
                pieces += 1
        except httpx.RemoteProtocolError:
            pass  # closed before the promised length: what a truncated body does
    return promised, received, pieces


def generation_call(base_url: str, prompt: str) -> dict[str, Any]:
    return {
        "url": f"{base_url}/images/generations",
        "json": {"model": V40, "prompt": prompt, "watermark": False, "size": "1024x1024"},
        "headers": {"Authorization": f"Bearer {KEY}"},
    }


def test_close_drops_the_connection_without_an_answer(client: httpx.Client, base_url: str) -> None:
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        generate(client, base_url, prompt=unique("a fox [sim:close]"))


def test_garbage_answers_200_with_a_body_that_is_not_json(
    client: httpx.Client, base_url: str
) -> None:
    response = generate(client, base_url, prompt=unique("a fox [sim:garbage]"))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError):
        response.json()


def test_truncate_sends_half_of_the_body_its_content_length_promises(
    client: httpx.Client, base_url: str
) -> None:
    promised, received, _ = raw_body(
        client, "POST", **generation_call(base_url, unique("a fox [sim:truncate]"))
    )

    assert received == promised // 2
    # The answer's whole body, as it would have been: a generation answer.
    assert promised > 200


def test_truncate_applies_to_an_error_answer_too(client: httpx.Client, base_url: str) -> None:
    with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
        generate(client, base_url, prompt=unique("a fox [sim:error-500] [sim:truncate]"))


def test_truncate_image_cuts_the_linked_jpeg_short(client: httpx.Client, base_url: str) -> None:
    answer = generate(client, base_url, prompt=unique("a fox [sim:truncate-image]"))
    url = answer.json()["data"][0]["url"]

    promised, received, _ = raw_body(client, "GET", url)

    assert answer.status_code == 200
    assert received == promised // 2
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(url)


def test_slow_body_sends_the_headers_then_trickles_the_whole_body(
    client: httpx.Client, base_url: str
) -> None:
    started = time.monotonic()

    promised, received, pieces = raw_body(
        client, "POST", **generation_call(base_url, unique("a fox [sim:slow-body=0.5]"))
    )

    assert received == promised
    assert pieces > 1
    assert time.monotonic() - started >= 0.5


def test_slow_image_trickles_the_whole_linked_jpeg(client: httpx.Client, base_url: str) -> None:
    answer = generate(client, base_url, prompt=unique("a fox [sim:slow-image=0.5]"))
    url = answer.json()["data"][0]["url"]
    started = time.monotonic()

    promised, received, pieces = raw_body(client, "GET", url)

    assert (received, pieces > 1) == (promised, True)
    assert time.monotonic() - started >= 0.5
    # The same picture as without the fault: only its delivery differs.
    _, image = fetch_image(client, url)
    assert image.size == (2048, 2048)


@pytest.mark.parametrize(
    "marker", ["[sim:slow-body=soon]", "[sim:slow-image=-1]", "[sim:close=1]", "[sim:garbage=]"]
)
def test_a_malformed_delivery_marker_is_rejected(
    client: httpx.Client, base_url: str, marker: str
) -> None:
    response = generate(client, base_url, prompt=unique(f"a fox {marker}"))

    assert_upstream_error(response, 400, "InvalidParameter", "BadRequest", param="prompt")
