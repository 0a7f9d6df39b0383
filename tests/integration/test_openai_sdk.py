"""The seed's quickstart, exactly: the official `openai` package against our real ASGI server."""

from __future__ import annotations

import base64
import io
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI
from PIL import Image as PILImage

from generation import catalog
from generation.models import Generation, Image
from tests.support.money import assert_ledger_balanced, ledger_kinds
from tests.support.provenance import TRAINED_ALGORITHMIC_MEDIA, iptc_properties
from tests.support.server import running_server

pytestmark = [pytest.mark.integration, pytest.mark.smoke]


@pytest.fixture
def sdk(live_api, default_prices, user_factory, api_key_factory):
    """An OpenAI client for a customer with 1000 credits, as the quickstart builds it."""

    def make(credits=1000, **options):
        user = user_factory(credits=credits)
        key = api_key_factory(user).raw_key
        return user, OpenAI(base_url=f"{live_api}/v1", api_key=key, **options)

    return make


def test_the_quickstart_generates_a_hosted_image_and_charges_for_it(sdk, live_api):
    user, client = sdk()

    result = client.images.generate(
        model="seedream-4-0", prompt="a red fox in snow", size="1536x1024"
    )

    url = result.data[0].url
    assert url.startswith(f"{live_api}/img/")
    image = httpx.get(url)
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/jpeg"
    with PILImage.open(io.BytesIO(image.content)) as picture:
        assert (picture.format, picture.size) == ("JPEG", (1536, 1024))
    assert assert_ledger_balanced(user) == 960
    assert ledger_kinds(user)[-1] == ("charge", -40)


def test_the_sdk_reads_usage_and_a_quote_is_the_balance_change(sdk):
    user, client = sdk()
    body = {"model": "seedream-4-0", "prompt": "a fox", "size": "4K"}
    quoted = client.post("/images/quote", body=body, cast_to=httpx.Response).json()

    raw = client.images.with_raw_response.generate(**body)
    result = raw.parse()

    assert quoted["credits"] == 60
    assert raw.headers["x-credits-charged"] == "60"
    assert result.usage is not None
    assert result.usage.output_tokens == result.usage.total_tokens == 4096 * 4096 // 256
    assert result.usage.input_tokens == 0
    assert result.usage.model_extra == {"generated_images": 1, "input_images": 0, "credits": 60}
    assert assert_ledger_balanced(user) == 1000 - quoted["credits"]


def test_b64_json_and_n_2(sdk):
    user, client = sdk()

    result = client.images.generate(
        model="seedream-4-0",
        prompt="two kites",
        size="1024x1024",
        n=2,
        response_format="b64_json",
    )

    assert len(result.data) == 2
    for item in result.data:
        with PILImage.open(io.BytesIO(base64.b64decode(item.b64_json))) as picture:
            assert picture.size == (1024, 1024)
    assert assert_ledger_balanced(user) == 920


def test_b64_json_images_are_the_stored_files_byte_for_byte(sdk, live_server_env):
    user, client = sdk()

    # Streamed from storage a piece at a time (api/views.py): photographs of several pieces each.
    raw = client.images.with_raw_response.generate(
        model="seedream-4-0",
        prompt=f"{uuid.uuid4()} [sim:photo] three kites",
        size="2048x2048",
        n=3,
        response_format="b64_json",
    )
    result = raw.parse()

    assert int(raw.headers["content-length"]) == len(raw.content)
    media = Path(live_server_env["DATA_DIR"]) / "media"
    images = list(Image.objects.filter(account=user.personal_account).order_by("index"))
    assert len(result.data) == len(images) == 3
    for item, image in zip(result.data, images, strict=True):
        assert item.b64_json is not None
        assert base64.b64decode(item.b64_json) == (media / image.file.name).read_bytes()
    assert assert_ledger_balanced(user) == 880


def test_a_process_whose_image_memory_is_taken_answers_503_with_retry_after_and_charges_nothing(
    live_server_env, default_prices, user_factory, api_key_factory
):
    users = [user_factory(credits=1000) for _ in range(3)]
    # One byte: an idle process takes one generation (generation/memory.py), and no other.
    with running_server({**live_server_env, "WEB_MAX_IMAGE_BYTES_IN_FLIGHT": "1"}) as base_url:
        slow, refused, patient = (
            OpenAI(
                base_url=f"{base_url}/v1",
                api_key=api_key_factory(user).raw_key,
                max_retries=retries,
            )
            for user, retries in zip(users, (0, 0, 8), strict=True)
        )
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(
                slow.images.generate,
                model="seedream-4-0",
                prompt=f"{uuid.uuid4()} [sim:latency=2]",
                size="1024x1024",
            )
            while not Generation.objects.filter(user=users[0]).exists():
                time.sleep(0.05)  # the first generation holds the process's image memory now
            later = pool.submit(
                patient.images.generate, model="seedream-4-0", prompt="a heron", size="1024x1024"
            )
            with pytest.raises(openai.InternalServerError) as caught:
                refused.images.generate(model="seedream-4-0", prompt="a heron", size="1024x1024")
            first.result()
            # The SDK retries a 503 after its Retry-After: served once the memory is back.
            later.result()

    assert caught.value.status_code == 503
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.code == "server_busy"
    assert caught.value.type == "server_error"
    assert caught.value.request_id.startswith("req_")
    assert not Generation.objects.filter(user=users[1]).exists()
    assert assert_ledger_balanced(users[1]) == 1000
    assert assert_ledger_balanced(users[0]) == 960
    # However many times it was refused, the patient customer paid for one image.
    assert Generation.objects.filter(user=users[2]).count() == 1
    assert assert_ledger_balanced(users[2]) == 960


def test_seedream_extras_go_through_extra_body(sdk):
    user, client = sdk()
    client.images.generate(
        model="seedream-3-0",
        prompt="a bonsai",
        extra_body={"seed": 42, "guidance_scale": 7.5, "watermark": True},
    )
    generation = Generation.objects.get(user=user)
    assert generation.params == {"seed": 42, "guidance_scale": 7.5, "watermark": True}


def test_models_list_and_retrieve(sdk):
    _, client = sdk()
    assert [model.id for model in client.models.list()] == [m.id for m in catalog.all_models()]
    assert client.models.retrieve("seedream-3-0").owned_by == "bytedance"


def test_invalid_input_raises_bad_request_error_naming_the_param(sdk):
    user, client = sdk()
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="seedream-4-0", prompt="x", n=11)
    assert caught.value.param == "n"
    assert caught.value.request_id.startswith("req_")
    assert assert_ledger_balanced(user) == 1000


def test_a_wrong_key_raises_authentication_error(live_api, transactional_db):
    client = OpenAI(base_url=f"{live_api}/v1", api_key="sk-seedream-wrong")
    with pytest.raises(openai.AuthenticationError) as caught:
        client.models.list()
    assert caught.value.code == "invalid_api_key"


def test_an_unknown_model_raises_not_found_error(sdk):
    _, client = sdk()
    with pytest.raises(openai.NotFoundError) as caught:
        client.images.generate(model="dall-e-3", prompt="x")
    assert caught.value.code == "model_not_found"


def test_running_out_of_credits_is_a_402_the_sdk_does_not_retry(sdk):
    user, client = sdk(credits=30)
    with pytest.raises(openai.APIStatusError) as caught:
        client.images.generate(model="seedream-4-0", prompt="x", size="1024x1024")
    assert caught.value.status_code == 402
    assert caught.value.code == "insufficient_quota"
    assert "40 credits" in caught.value.message
    # One attempt only: the SDK does not retry 402.
    assert Generation.objects.filter(user=user).count() == 1
    assert assert_ledger_balanced(user) == 30


def test_a_blocked_prompt_raises_bad_request_content_policy_and_costs_nothing(sdk):
    user, client = sdk()
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(
            model="seedream-4-0", prompt=f"{uuid.uuid4()} [sim:block-prompt]", size="1024x1024"
        )
    assert caught.value.code == "content_policy_violation"
    assert assert_ledger_balanced(user) == 1000


def test_an_upstream_outage_is_retried_by_the_sdk_and_each_attempt_refunded(sdk):
    user, client = sdk(max_retries=1)
    with pytest.raises(openai.InternalServerError) as caught:
        client.images.generate(
            model="seedream-4-0", prompt=f"{uuid.uuid4()} [sim:error-500]", size="1024x1024"
        )
    assert caught.value.status_code == 502
    assert Generation.objects.filter(user=user, http_status=502).count() == 2
    assert assert_ledger_balanced(user) == 1000


@pytest.mark.postgres
def test_a_served_process_runs_the_generation_sql_on_its_event_loop(sdk):
    from django.db import connection

    from server.asyncdb import APPLICATION_NAME

    user, client = sdk()
    client.images.generate(model="seedream-4-0", prompt="a heron", size="1024x1024")

    # The key lookup, the reservation and the settlement went through the process's own pool
    # (server/asyncdb.py): its connection's last statement was the settlement.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT query FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            [APPLICATION_NAME],
        )
        last_statements = [row[0] for row in cursor.fetchall()]
    assert any("WITH claimed AS" in statement for statement in last_statements)
    assert assert_ledger_balanced(user) == 960


def test_the_hosted_file_and_the_b64_json_carry_the_provenance_marking(sdk):
    _, client = sdk()
    prompt = f"a lighthouse, my private note zq{uuid.uuid4().hex}"
    marking = {
        "DigitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
        "AISystemUsed": "Seedream 4.0",
        "AISystemVersionUsed": "seedream-4-0-250828",
    }

    hosted = client.images.generate(model="seedream-4-0", prompt=prompt, size="1024x1024")
    answered = client.images.generate(
        model="seedream-4-0", prompt=prompt, size="1024x1024", response_format="b64_json"
    )

    for data in (
        httpx.get(hosted.data[0].url).content,
        base64.b64decode(answered.data[0].b64_json),
    ):
        assert iptc_properties(data) == marking
        assert prompt.split()[-1].encode() not in data


def test_the_sdk_tells_a_keys_spend_controls_apart_and_does_not_retry_them(sdk):
    from keys.models import ApiKey

    user, client = sdk()
    key = ApiKey.objects.get(user=user)
    ApiKey.objects.filter(pk=key.pk).update(spend_cap_credits=40, allowed_models=["seedream-4-0"])
    raw = client.images.with_raw_response.generate(
        model="seedream-4-0", prompt="a fox", size="1024x1024"
    )
    assert (raw.headers["x-key-budget-limit"], raw.headers["x-key-budget-remaining"]) == (
        "40",
        "0",
    )

    with pytest.raises(openai.APIStatusError) as capped:
        client.images.generate(model="seedream-4-0", prompt="a fox", size="1024x1024")
    with pytest.raises(openai.PermissionDeniedError) as not_allowed:
        client.images.generate(model="seedream-3-0", prompt="a fox", size="1024x1024")

    assert (capped.value.status_code, capped.value.code) == (402, "key_budget_exceeded")
    assert not_allowed.value.code == "model_not_allowed"
    # One attempt each (x-should-retry: false): two refusals recorded, nothing more held.
    assert Generation.objects.filter(user=user, error_code="key_budget_exceeded").count() == 1
    assert assert_ledger_balanced(user) == 960
