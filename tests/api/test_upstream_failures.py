"""Upstream faults, injected in the simulator by prompt markers, and what the customer pays."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
import pytest
from aiohttp import web

from generation.models import Generation
from tests.support.aiohttp_server import serving
from tests.support.money import assert_ledger_balanced, ledger_kinds
from tests.support.responses import json_of

pytestmark = pytest.mark.smoke


def generate(client, key, prompt, **body):
    body = {"model": "seedream-4-0", "prompt": prompt, "size": "1024x1024", **body}
    return client.post(
        "/v1/images/generations",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


def unique(marker: str) -> str:
    """A prompt of its own, so the simulator's per-prompt counters start at zero."""
    return f"a lighthouse {uuid.uuid4().hex} {marker}"


def upstream_calls(simulator_url: str, prompt: str) -> int:
    base = simulator_url.removesuffix("/api/v3")
    return httpx.get(f"{base}/_sim/calls", params={"prompt": prompt}).json()["calls"]


def assert_refunded(user, reserved):
    assert ledger_kinds(user)[-2:] == [("reserve", -reserved), ("release", reserved)]
    assert assert_ledger_balanced(user) == 1000


def test_a_blocked_prompt_is_a_400_content_policy_violation_and_free(client, owner, owner_key):
    response = generate(client, owner_key, unique("[sim:block-prompt]"))

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "content_policy_violation"
    assert error["param"] == "prompt"
    assert "prompt" in error["message"]
    assert response["x-should-retry"] == "false"
    assert_refunded(owner, 40)


def test_a_blocked_output_says_so_and_is_free(client, owner, owner_key):
    response = generate(client, owner_key, unique("[sim:block-output]"))

    error = response.json()["error"]
    assert response.status_code == 400
    assert error["code"] == "content_policy_violation"
    assert "generated image" in error["message"]
    assert_refunded(owner, 40)


def test_a_failed_image_inside_a_200_is_not_charged(client, owner, owner_key):
    response = generate(client, owner_key, unique("[sim:batch-error]"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "content_policy_violation"
    assert_refunded(owner, 40)


def test_upstream_500s_are_retried_then_answered_502_and_refunded(
    client, owner, owner_key, simulator_url, settings
):
    settings.UPSTREAM_MAX_RETRIES = 2
    prompt = unique("[sim:error-500]")

    response = generate(client, owner_key, prompt)

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_error"
    assert response.json()["error"]["type"] == "server_error"
    assert upstream_calls(simulator_url, prompt) == 3
    assert_refunded(owner, 40)


def test_a_transient_upstream_failure_is_retried_and_charged_once(
    client, owner, owner_key, simulator_url
):
    prompt = unique("[sim:fail-first=1]")

    response = generate(client, owner_key, prompt)

    assert response.status_code == 200, response.content
    assert upstream_calls(simulator_url, prompt) == 2
    assert ledger_kinds(owner)[-3:] == [("reserve", -40), ("release", 40), ("charge", -40)]
    assert assert_ledger_balanced(owner) == 960


def test_a_partial_batch_charges_only_what_was_delivered(client, owner, owner_key, settings):
    settings.UPSTREAM_MAX_RETRIES = 0
    response = generate(client, owner_key, unique("[sim:deliver=2]"), n=4)

    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["data"]) == 2
    assert (body["images_requested"], body["images_delivered"], body["credits_charged"]) == (
        4,
        2,
        80,
    )
    assert ledger_kinds(owner)[-3:] == [("reserve", -160), ("release", 160), ("charge", -80)]
    assert assert_ledger_balanced(owner) == 920
    generation = Generation.objects.get()
    assert "2 of 4 images were not delivered" in generation.error_message


def test_our_upstream_credentials_failing_is_a_503_never_a_401(
    client, owner, owner_key, settings, caplog
):
    settings.UPSTREAM_API_KEY = "a-wrong-upstream-key"

    response = generate(client, owner_key, unique(""))

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert response["x-should-retry"] == "false"
    assert "a-wrong-upstream-key" not in response.content.decode()
    assert any(record.levelname == "ERROR" for record in caplog.records)
    assert_refunded(owner, 40)


def test_our_upstream_account_in_arrears_is_a_503(client, owner, owner_key):
    response = generate(client, owner_key, unique("[sim:quota]"))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert_refunded(owner, 40)


def test_an_upstream_rate_limit_is_a_503_with_retry_after(client, owner, owner_key, settings):
    settings.UPSTREAM_MAX_RETRIES = 0
    response = generate(client, owner_key, unique("[sim:error-429]"))
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert_refunded(owner, 40)


def test_an_upstream_timeout_is_a_503_and_refunded(client, owner, owner_key, settings):
    settings.UPSTREAM_TIMEOUT_SECONDS = 1
    settings.UPSTREAM_MAX_RETRIES = 0
    response = generate(client, owner_key, unique("[sim:latency=3]"))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert_refunded(owner, 40)


def test_an_unreachable_upstream_is_a_502_and_refunded(client, owner, owner_key, settings):
    settings.UPSTREAM_BASE_URL = "http://127.0.0.1:9/api/v3"
    settings.UPSTREAM_MAX_RETRIES = 0
    response = generate(client, owner_key, unique(""))
    assert response.status_code == 502
    assert_refunded(owner, 40)


@pytest.mark.parametrize(
    ("response_format", "marker", "logged"),
    [
        ("b64_json", "[sim:bad-image]", "unreadable image"),
        ("b64_json", "[sim:huge-image]", "over the size cap"),
        ("url", "[sim:bad-image]", "unreadable image"),
        ("url", "[sim:offsite-url]", "on a host we do not fetch from"),
        ("url", "[sim:huge-image]", "over the size cap"),
    ],
)
def test_an_image_we_cannot_safely_take_is_not_delivered_or_charged(
    client, owner, owner_key, settings, caplog, response_format, marker, logged
):
    settings.UPSTREAM_RESPONSE_FORMAT = response_format
    settings.UPSTREAM_IMAGE_MAX_BYTES = 8 * 1024 * 1024
    prompt = unique(marker)
    response = generate(client, owner_key, prompt)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_error"
    assert logged in caplog.text
    assert not Generation.objects.get().images.exists()
    assert_refunded(owner, 40)
    # The upstream made (and billed) the image: asking again would only pay twice.
    assert upstream_calls(settings.UPSTREAM_BASE_URL, prompt) == 1


@pytest.mark.parametrize("response_format", ["b64_json", "url"])
def test_either_hand_over_delivers_the_same_image(
    client, owner, owner_key, settings, response_format
):
    settings.UPSTREAM_RESPONSE_FORMAT = response_format
    response = generate(client, owner_key, "a lighthouse", seed=7, response_format="b64_json")
    assert response.status_code == 200
    image = Generation.objects.get().images.get()
    assert (image.content_type, image.width, image.height) == ("image/jpeg", 1024, 1024)
    delivered = base64.b64decode(json_of(response)["data"][0]["b64_json"])
    assert delivered[:3] == b"\xff\xd8\xff"
    with image.file.open("rb") as stored:
        assert stored.read() == delivered


def test_malformed_base64_from_the_upstream_is_not_delivered_or_retried(
    client, owner, owner_key, settings, caplog
):
    settings.UPSTREAM_RESPONSE_FORMAT = "b64_json"
    answers = []

    async def upstream(request: web.Request) -> web.Response:
        answers.append(await request.json())
        return web.json_response({"data": [{"b64_json": "not*base64", "size": "1024x1024"}]})

    with serving(upstream) as base_url:
        settings.UPSTREAM_BASE_URL = base_url
        response = generate(client, owner_key, "a lighthouse")
    assert response.status_code == 502
    assert "malformed base64" in caplog.text
    assert [answer["response_format"] for answer in answers] == ["b64_json"]
    assert_refunded(owner, 40)


def test_images_are_fetched_only_over_https_from_allowed_hosts(settings):
    from generation.upstream import image_host_allowed

    settings.UPSTREAM_BASE_URL = "https://ark.ap-southeast.bytepluses.com/api/v3"
    settings.UPSTREAM_IMAGE_HOSTS = ["*.volces.com", "ark.ap-southeast.bytepluses.com"]
    assert image_host_allowed("https://bucket.tos-ap-southeast-1.volces.com/a.jpeg?sig=1")
    assert image_host_allowed("https://ark.ap-southeast.bytepluses.com/x.jpeg")
    assert not image_host_allowed("http://bucket.tos-ap-southeast-1.volces.com/a.jpeg")
    assert not image_host_allowed("https://volces.com.evil.example/a.jpeg")
    assert not image_host_allowed("https://evilvolces.com/a.jpeg")
    assert not image_host_allowed("https://169.254.169.254/latest/meta-data")
    assert not image_host_allowed("file:///etc/passwd")


def test_an_unexpected_client_error_is_a_502_and_refunded_not_a_stuck_reservation(
    client, owner, owner_key, settings
):
    # An invalid port: httpx raises InvalidURL, which is not one of its transport errors.
    settings.UPSTREAM_BASE_URL = "http://127.0.0.1:99999/api/v3"
    response = generate(client, owner_key, unique(""), n=2)
    assert response.status_code == 502
    assert Generation.objects.get().status == Generation.Status.FAILED
    assert_refunded(owner, 80)


def test_a_generation_never_outlasts_its_time_budget(client, owner, owner_key, settings):
    settings.GENERATION_TIMEOUT_SECONDS = 1
    settings.UPSTREAM_TIMEOUT_SECONDS = 30
    response = generate(client, owner_key, unique("[sim:latency=3]"))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert_refunded(owner, 40)


def test_an_upstream_error_param_is_kept_as_short_text():
    from generation.upstream import classify_error

    odd = classify_error(400, {"error": {"code": "InvalidParameter", "param": ["size", "x" * 99]}})
    assert isinstance(odd.param, str) and len(odd.param) == 64
    assert classify_error(400, {"error": {"code": "InvalidParameter"}}).param is None
