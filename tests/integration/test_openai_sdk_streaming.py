"""``stream=True`` through the official `openai` package, unchanged, against our real server:
images.generate and images.edit iterate to the SDK's own completed-event types (its
ImageGenStreamEvent and ImageEditStreamEvent unions) with the images in them, a generation that
fails upstream raises APIError from the iterator, a body refused before the stream raises as it
would unstreamed, and the money is the quote."""

from __future__ import annotations

import base64
import io
import uuid

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types import ImageEditCompletedEvent, ImageGenCompletedEvent
from PIL import Image as PILImage

from simulator.images import reference_colours
from tests.support.money import assert_ledger_balanced
from tests.support.pictures import RED, data_url, picture

pytestmark = [pytest.mark.integration, pytest.mark.smoke]


@pytest.fixture
def sdk(live_api, default_prices, user_factory, api_key_factory):
    def make(credits=1000):
        user = user_factory(credits=credits)
        key = api_key_factory(user).raw_key
        return user, OpenAI(base_url=f"{live_api}/v1", api_key=key, max_retries=0)

    return make


def quote(client, body):
    return client.post("/images/quote", body=body, cast_to=httpx.Response).json()["credits"]


def decoded(b64_json):
    with PILImage.open(io.BytesIO(base64.b64decode(b64_json))) as image:
        image.load()
        return image


def test_images_generate_streams_a_completed_event_per_image(sdk):
    user, client = sdk()
    body = {"model": "seedream-4-0", "prompt": f"a fox {uuid.uuid4()}", "size": "1536x1024", "n": 2}
    cost = quote(client, {**body, "stream": True})

    events = list(client.images.generate(**body, stream=True))

    assert [type(event) for event in events] == [ImageGenCompletedEvent, ImageGenCompletedEvent]
    for event in events:
        assert event.type == "image_generation.completed"
        image = decoded(event.b64_json)
        assert (image.format, image.size) == ("JPEG", (1536, 1024))
        assert event.size == "1536x1024" and event.output_format == "jpeg"
        assert event.usage.output_tokens == 2 * 1536 * 1024 // 256
        # Our extras ride along: the hosted copy of the same image, and what the request cost.
        assert httpx.get(event.model_extra["url"]).content == base64.b64decode(event.b64_json)
        assert event.model_extra["credits_charged"] == cost
    assert [event.model_extra["index"] for event in events] == [0, 1]
    assert events[0].model_extra["url"] != events[1].model_extra["url"]  # two stored images
    assert assert_ledger_balanced(user) == 1000 - cost


def test_images_edit_streams_image_edit_completed_events(sdk):
    user, client = sdk()
    red = picture(RED)
    prompt = f"a watercolour {uuid.uuid4()}"
    cost = quote(client, {"model": "seedream-4-0", "prompt": prompt, "size": "1K",
                          "images": [{"image_url": data_url(red)}]})  # fmt: skip

    stream = client.images.edit(
        model="seedream-4-0", image=("red.png", red, "image/png"), prompt=prompt, size="1K",
        stream=True,
    )  # fmt: skip
    (event,) = list(stream)

    assert isinstance(event, ImageEditCompletedEvent)
    (colour,) = reference_colours(decoded(event.b64_json).convert("RGB"), 1)
    assert all(abs(got - wanted) <= 24 for got, wanted in zip(colour, RED, strict=True))
    assert event.usage.model_extra["input_images"] == 1
    assert assert_ledger_balanced(user) == 1000 - cost


def test_an_upstream_failure_raises_api_error_from_the_iterator_and_charges_nothing(sdk):
    user, client = sdk()

    stream = client.images.generate(
        model="seedream-4-0", prompt=f"{uuid.uuid4()} [sim:block-prompt]", stream=True
    )
    with pytest.raises(openai.APIError) as raised:
        list(stream)

    assert raised.value.code == "content_policy_violation"
    assert raised.value.type == "invalid_request_error"
    assert assert_ledger_balanced(user) == 1000


def test_a_body_refused_before_the_stream_raises_as_it_would_unstreamed(sdk):
    user, client = sdk()

    with pytest.raises(openai.BadRequestError) as raised:
        client.images.generate(model="seedream-4-0", prompt="a fox", n=11, stream=True)

    assert raised.value.param == "n"
    assert assert_ledger_balanced(user) == 1000
