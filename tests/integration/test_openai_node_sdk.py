"""The official openai Node SDK (tests/node, pinned by its package-lock.json) against the real
server: every model of the catalog generates at its default size, sizes outside a model's window
are refused naming it, a seeded batch is a batch, a transparent PNG has a real alpha channel, and
a quote is exactly the balance change of the same request."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image as PILImage

from billing import services as billing
from generation import catalog
from keys import services as keys
from tests.support.money import assert_ledger_balanced
from tests.support.pictures import BLUE, GREEN, RED, data_url, picture

pytestmark = [pytest.mark.integration, pytest.mark.smoke]

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    ready = (NODE_DIR / "node_modules" / "openai").is_dir()
    if not (found and ready):
        reason = "Node.js or tests/node/node_modules is missing (make node installs them)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.fixture
def customer(user_factory: Any, transactional_db: None, default_prices: None) -> Any:
    user = user_factory("node@example.com", credits=100_000)
    return user, keys.create_key(user.personal_account, "node").raw_key


def node_sdk(node: str, live_api: str, key: str, *calls: dict[str, Any]) -> list[dict[str, Any]]:
    plan = {"baseURL": f"{live_api}/v1", "apiKey": key, "calls": list(calls)}
    run = subprocess.run(
        [node, str(NODE_DIR / "sdk.mjs"), json.dumps(plan)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def text_to_image_ids() -> list[str]:
    return [m.id for m in catalog.text_to_image_models()]


def test_every_model_generates_at_its_default_size(node, live_api, customer):
    user, key = customer
    calls = [
        {"op": "generate", "params": {"model": model_id, "prompt": f"a lighthouse by {model_id}"}}
        for model_id in text_to_image_ids()
    ]

    results = node_sdk(node, live_api, key, *calls)

    charged = 0
    for model_id, outcome in zip(text_to_image_ids(), results, strict=True):
        assert outcome["ok"], (model_id, outcome)
        answer = outcome["result"]
        (item,) = answer["data"]
        picture = httpx.get(item["url"])
        assert picture.status_code == 200, model_id
        with PILImage.open(io.BytesIO(picture.content)) as image:
            width, height = image.size
        model = catalog.get_model(model_id)
        default = catalog.resolve_size(model, None)
        assert width * height == default.pixels or model.keyword_sizes, (model_id, image.size)
        charged += answer["credits_charged"]
    assert assert_ledger_balanced(user) == 100_000 - charged
    assert billing.balance_credits(user.personal_account) == 100_000 - charged


def test_a_size_outside_the_window_is_a_400_naming_it(node, live_api, customer):
    user, key = customer

    (outcome,) = node_sdk(
        node, live_api, key,
        {"op": "generate", "params": {"model": "seedream-4-5", "prompt": "x", "size": "1024x1024"}},
    )  # fmt: skip

    assert not outcome["ok"]
    assert (outcome["name"], outcome["status"]) == ("BadRequestError", 400)
    assert outcome["param"] == "size"
    assert "3,686,400 to 16,777,216 pixels" in outcome["message"]
    assert assert_ledger_balanced(user) == 100_000


def test_a_seeded_batch_gives_different_pictures(node, live_api, customer):
    _, key = customer
    params = {"model": "seedream-5-0-pro", "prompt": "a kite", "n": 2, "seed": 7}

    (outcome,) = node_sdk(node, live_api, key, {"op": "generate", "params": params})

    assert outcome["ok"], outcome
    first, second = (httpx.get(item["url"]).content for item in outcome["result"]["data"])
    assert first != second


def test_a_transparent_background_is_a_png_with_real_alpha(node, live_api, customer):
    _, key = customer
    params = {
        "model": "seedream-5-5",
        "prompt": "a sticker of a fox",
        "background": "transparent",
        "response_format": "b64_json",
    }

    (outcome,) = node_sdk(node, live_api, key, {"op": "generate", "params": params})

    assert outcome["ok"], outcome
    data = base64.b64decode(outcome["result"]["data"][0]["b64_json"])
    with PILImage.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        alpha = image.convert("RGBA").getchannel("A").getextrema()
    assert alpha[0] < 255  # some pixels are see-through


@pytest.mark.parametrize("model_id", ["seedream-4-0", "seedream-5-0-pro", "seedream-5-5"])
def test_a_quote_is_exactly_the_balance_change_of_the_same_request(
    node, live_api, customer, model_id
):
    user, key = customer
    body = {"model": model_id, "prompt": "a harbour at dawn", "n": 2, "size": "2K"}

    quoted, generated = node_sdk(
        node, live_api, key,
        {"op": "post", "path": "/images/quote", "body": body},
        {"op": "generate", "params": body},
    )  # fmt: skip

    assert quoted["ok"] and generated["ok"], (quoted, generated)
    assert quoted["result"]["object"] == "image.quote"
    charged = generated["result"]["credits_charged"]
    # Every image was delivered at the size quoted, so the charge is the quote.
    assert charged == quoted["result"]["credits"] == generated["result"]["usage"]["credits"]
    assert assert_ledger_balanced(user) == 100_000 - charged


def test_edits_with_one_file_a_list_of_three_and_generate_with_image(
    node, live_api, customer, simulator_url
):
    """images.edit as the Node SDK uploads it (one file, then a list of three) and
    images.generate with Seedream's ``image``: the references reach the upstream in order."""
    user, key = customer
    colours = [picture(RED), picture(GREEN), picture(BLUE)]
    files = [
        {"name": f"{i}.png", "base64": base64.b64encode(d).decode(), "type": "image/png"}
        for i, d in enumerate(colours)
    ]
    prompts = [f"node edit one {uuid.uuid4()}", f"node edit three {uuid.uuid4()}",
               f"node generate {uuid.uuid4()}"]  # fmt: skip
    params = {"model": "seedream-4-0", "size": "1K"}

    results = node_sdk(
        node, live_api, key,
        {"op": "edit", "params": {**params, "prompt": prompts[0]}, "files": files[:1],
         "single": True},
        {"op": "edit", "params": {**params, "prompt": prompts[1]}, "files": files},
        {"op": "generate", "params": {**params, "prompt": prompts[2],
                                      "image": [data_url(colours[1]), data_url(colours[2])]}},
    )  # fmt: skip

    assert all(outcome["ok"] for outcome in results), results
    digests = [hashlib.sha256(d).hexdigest() for d in colours]
    base = simulator_url.removesuffix("/api/v3")
    sent = [
        httpx.get(f"{base}/_sim/calls", params={"prompt": p}).json()["references"] for p in prompts
    ]
    assert sent == [[digests[:1]], [digests], [digests[1:]]]
    charged = sum(outcome["result"]["credits_charged"] for outcome in results)
    assert assert_ledger_balanced(user) == 100_000 - charged


def test_a_streamed_generation_iterates_to_completed_events_and_a_failure_throws(
    node, live_api, customer
):
    user, key = customer
    body = {"model": "seedream-4-0", "prompt": f"a heron {uuid.uuid4()}", "size": "1K", "n": 2}
    quoted = httpx.post(
        f"{live_api}/v1/images/quote", json=body, headers={"Authorization": f"Bearer {key}"}
    ).json()["credits"]

    streamed, failed = node_sdk(
        node, live_api, key,
        {"op": "generate_stream", "params": body},
        {"op": "generate_stream",
         "params": {"model": "seedream-4-0", "prompt": f"{uuid.uuid4()} [sim:block-prompt]"}},
    )  # fmt: skip

    assert streamed["ok"], streamed
    events = streamed["result"]
    assert [event["type"] for event in events] == ["image_generation.completed"] * 2
    for event in events:
        with PILImage.open(io.BytesIO(base64.b64decode(event["b64_json"]))) as picture:
            assert (picture.format, f"{picture.width}x{picture.height}") == ("JPEG", event["size"])
        assert event["credits_charged"] == quoted
    assert not failed["ok"]
    assert (failed["name"], failed["code"]) == ("APIError", "content_policy_violation")
    assert assert_ledger_balanced(user) == 100_000 - quoted


def test_a_set_a_layer_split_and_a_streamed_edit(node, live_api, customer):
    user, key = customer
    source = picture(RED, (768, 512), "JPEG")
    photo = [{"name": "photo.jpg", "base64": base64.b64encode(source).decode(),
              "type": "image/jpeg"}]  # fmt: skip
    a_set = {"model": "seedream-4-0", "prompt": f"four seasons {uuid.uuid4()}", "size": "1K",
             "sequential_image_generation": "auto",
             "sequential_image_generation_options": {"max_images": 4}}  # fmt: skip
    split = {"model": "seedream-5-0-pro", "prompt": "the parts", "size": "1K",
             "layer_decomposition": True, "max_layers": 3}  # fmt: skip
    edit = {"model": "seedream-4-0", "prompt": f"at night {uuid.uuid4()}", "size": "1K"}

    made_set, made_split, streamed = node_sdk(
        node, live_api, key,
        {"op": "generate", "params": a_set},
        {"op": "edit", "params": split, "files": photo, "single": True},
        {"op": "edit_stream", "params": edit, "files": photo, "single": True},
    )  # fmt: skip

    assert all(outcome["ok"] for outcome in (made_set, made_split, streamed))
    assert len(made_set["result"]["data"]) == 4
    layers = made_split["result"]["data"]
    assert [layer["z_index"] for layer in layers] == [0, 1, 2, 3]
    assert all(layer["name"] and layer["bounding_box"] for layer in layers[1:])
    events = streamed["result"]
    assert [event["type"] for event in events] == ["image_edit.completed"]
    charged = (made_set["result"]["credits_charged"] + made_split["result"]["credits_charged"]
               + events[0]["credits_charged"])  # fmt: skip
    assert assert_ledger_balanced(user) == 100_000 - charged


def test_usage_and_a_keys_spend_controls_through_the_node_sdk(node, live_api, customer):
    import time

    from keys.models import ApiKey

    user, key = customer
    ApiKey.objects.filter(user=user).update(spend_cap_credits=80, allowed_models=["seedream-4-0"])
    started = int(time.time()) - 5
    one = {"model": "seedream-4-0", "prompt": "a fox", "size": "1024x1024"}  # 40 credits

    results = node_sdk(
        node, live_api, key,
        {"op": "generate", "params": one},
        {"op": "generate", "params": one},
        {"op": "generate", "params": one},
        {"op": "generate", "params": {**one, "model": "seedream-3-0"}},
        {
            "op": "get", "path": "/usage/images",
            "query": {"start_time": started, "bucket_width": "1h", "group_by": ["model"]},
        },
    )  # fmt: skip

    assert [r["ok"] for r in results] == [True, True, False, False, True]
    assert (results[2]["status"], results[2]["code"]) == (402, "key_budget_exceeded")
    assert (results[3]["name"], results[3]["code"]) == (
        "PermissionDeniedError",
        "model_not_allowed",
    )
    usage = results[4]["result"]
    found = [result for bucket in usage["data"] for result in bucket["results"]]
    assert [(r["model"], r["num_model_requests"], r["images"], r["credits"]) for r in found] == [
        ("seedream-4-0", 2, 2, 80)
    ]
    assert assert_ledger_balanced(user) == 100_000 - 80
