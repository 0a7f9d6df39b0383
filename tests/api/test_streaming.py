"""``stream: true`` on POST /v1/images/generations and /v1/images/edits: Server-Sent Events in
OpenAI's shapes (api/streaming.py). Keep-alive comments while the work runs, one completed event
per delivered image in order, then ``data: [DONE]``; a whole failure is one ``event: error``
frame; what can be refused before the answer starts is plain JSON with its status. The money is
the unstreamed request's: the quote, only what was delivered (to a client that hung up mid-stream
too), nothing for a failure. ``stream`` never goes upstream: the simulator answers 400 to
``stream: true``, so a forwarded one would fail every stream here.

Streamed requests go through Django's async test client, their bodies read on the loop that
served them (where their work runs), as a server would; the work leaves the request's thread
when the answer starts, so these tests commit (transaction=True)."""

from __future__ import annotations

import base64
import io
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import AsyncClient
from PIL import Image as PILImage

from api import streaming
from generation import services
from generation.models import Generation
from simulator.images import reference_colours
from tests.support.asgi import serve
from tests.support.money import assert_ledger_balanced, ledger_kinds
from tests.support.pictures import RED, data_url, picture

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _prices(default_prices: None) -> None:
    """Committed tests flush the seeded price rules: seed them again."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    frames: list[Frame] = field(default_factory=list)

    def events(self) -> list[Frame]:
        """The frames but the keep-alive comments."""
        return [frame for frame in self.frames if not frame.comments]

    def completed(self) -> list[dict[str, Any]]:
        """The data of the completed events."""
        events = self.events()
        return [json.loads(f.data) for f in events if (f.event or "").endswith(".completed")]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Frame:
    event: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)


def frames_of(body: bytes) -> list[Frame]:
    """The body's frames as the SSE format reads them: blank-line separated, ``field: value``
    lines, ``:`` starting a comment."""
    assert body.endswith(b"\n\n"), body[-200:]
    frames = []
    for text in body.decode().split("\n\n")[:-1]:
        frame = Frame()
        for line in text.split("\n"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                frame.comments.append(value)
            elif name == "event":
                frame.event = value
            elif name == "data":
                frame.data = f"{frame.data}\n{value}" if frame.data else value
            else:
                raise AssertionError(f"unexpected line {line!r}")
        frames.append(frame)
    return frames


def send(
    key: str,
    path: str = "/v1/images/generations",
    *,
    body: Any = None,
    form: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request through Django's async client (JSON ``body`` or multipart ``form``), its
    streamed body read on the same event loop."""

    async def run() -> Answer:
        client = AsyncClient()
        sent = {"Authorization": f"Bearer {key}", **(headers or {})}
        if form is not None:
            response = await client.post(path, form, headers=sent)
        else:
            response = await client.post(
                path, json.dumps(body), content_type="application/json", headers=sent
            )
        if response.streaming:
            pieces = response.streaming_content  # type: ignore[attr-defined]
            content = b"".join([piece async for piece in pieces])
        else:
            content = response.content
        return Answer(response.status_code, dict(response.headers), content)

    answer = async_to_sync(run)()
    if answer.headers.get("Content-Type") == "text/event-stream":
        answer.frames = frames_of(answer.body)
    return answer


def quoted(key: str, body: dict[str, Any]) -> int:
    answer = send(key, "/v1/images/quote", body=body)
    assert answer.status == 200, answer.body
    return int(answer.json()["credits"])


def a_prompt(marker: str = "") -> str:
    """A prompt of its own, so the simulator's per-prompt counters start at zero."""
    return f"a lighthouse {uuid.uuid4().hex} {marker}".strip()


def generation_body(**extra: Any) -> dict[str, Any]:
    return {"model": "seedream-4-0", "prompt": a_prompt(), "size": "1024x1024", "stream": True,
            **extra}  # fmt: skip


def test_a_streamed_generation_sends_each_image_as_a_completed_event_then_done(owner, owner_key):
    body = generation_body(n=2)
    cost = quoted(owner_key, body)  # the quote takes a streamed body too

    answer = send(owner_key, body=body)

    assert answer.status == 200, answer.body
    assert answer.headers["Content-Type"] == "text/event-stream"
    assert answer.headers["Cache-Control"] == "no-cache"
    assert "x-credits-charged" not in {name.lower() for name in answer.headers}
    events = answer.events()
    assert [frame.event for frame in events] == [
        "image_generation.completed",
        "image_generation.completed",
        None,
    ]
    assert events[-1].data == "[DONE]"
    generation = Generation.objects.get()
    images = list(generation.images.all())
    completed = answer.completed()
    for index, (event, image) in enumerate(zip(completed, images, strict=True)):
        assert event["type"] == "image_generation.completed"
        assert base64.b64decode(event["b64_json"]) == image.file.read()
        assert event["size"] == f"{image.width}x{image.height}"
        assert event["output_format"] == "jpeg"
        assert (event["background"], event["quality"]) == ("auto", "auto")
        assert isinstance(event["created_at"], int)
        assert event["url"] == services.image_url(image, "http://testserver")
        assert (event["index"], event["id"], event["model"]) == (
            index, generation.public_id, "seedream-4-0"
        )  # fmt: skip
        # Each event carries the whole request's usage and charge.
        assert event["usage"]["generated_images"] == 2
        assert event["usage"]["output_tokens"] == sum(i.width * i.height // 256 for i in images)
        assert event["usage"]["input_tokens_details"] == {"image_tokens": 0, "text_tokens": 0}
        assert event["credits_charged"] == event["usage"]["credits"] == cost
    assert assert_ledger_balanced(owner) == 1000 - cost


@pytest.mark.parametrize("form", ["multipart", "json"])
def test_a_streamed_edit_sends_image_edit_completed_events(owner, owner_key, form):
    red = picture(RED)
    fields = {"model": "seedream-4-0", "prompt": a_prompt("make it a watercolour"), "size": "1K"}
    cost = quoted(owner_key, {**fields, "images": [{"image_url": data_url(red)}]})
    if form == "multipart":
        # Form values are text: the SDKs send the boolean as "true".
        upload = SimpleUploadedFile("red.png", red, "image/png")
        sent = {**fields, "stream": "true", "image": upload}
        answer = send(owner_key, "/v1/images/edits", form=sent)
    else:
        sent = {**fields, "stream": True, "images": [{"image_url": data_url(red)}]}
        answer = send(owner_key, "/v1/images/edits", body=sent)

    assert answer.status == 200, answer.body
    assert [frame.event for frame in answer.events()] == ["image_edit.completed", None]
    (event,) = answer.completed()
    assert event["type"] == "image_edit.completed"
    assert event["usage"]["input_images"] == 1
    with PILImage.open(io.BytesIO(base64.b64decode(event["b64_json"]))) as drawn:
        (colour,) = reference_colours(drawn.convert("RGB"), 1)
    assert all(abs(got - wanted) <= 24 for got, wanted in zip(colour, RED, strict=True))
    assert assert_ledger_balanced(owner) == 1000 - cost == 1000 - event["credits_charged"]


def test_keep_alive_comments_are_sent_while_the_work_outlasts_the_interval(owner_key, monkeypatch):
    monkeypatch.setattr(streaming, "KEEPALIVE_SECONDS", 0.05)

    answer = send(owner_key, body=generation_body(prompt=a_prompt("[sim:latency=1]")))

    assert answer.status == 200, answer.body
    first_event = next(i for i, frame in enumerate(answer.frames) if not frame.comments)
    assert first_event > 0
    assert all(frame.comments == ["keep-alive"] for frame in answer.frames[:first_event])
    assert [frame.event for frame in answer.events()] == ["image_generation.completed", None]


def test_no_keep_alive_is_sent_when_the_work_ends_within_the_interval(owner_key, monkeypatch):
    monkeypatch.setattr(streaming, "KEEPALIVE_SECONDS", 600)

    answer = send(owner_key, body=generation_body())

    assert answer.status == 200, answer.body
    assert answer.frames == answer.events()


def test_a_bad_body_is_refused_as_json_before_the_stream_and_charges_nothing(owner_key, untouched):
    answer = send(owner_key, body=generation_body(n=11))

    assert answer.status == 400
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["error"]["param"] == "n"


@pytest.mark.parametrize("value", ["yes", 1])
def test_stream_must_be_a_boolean(owner_key, untouched, value):
    answer = send(owner_key, body=generation_body(stream=value))

    assert answer.status == 400
    assert answer.json()["error"]["param"] == "stream"


def test_too_few_credits_is_a_402_as_json_before_the_stream(user_factory, api_key_factory):
    poor = user_factory(credits=10)

    answer = send(api_key_factory(poor).raw_key, body=generation_body())

    assert answer.status == 402
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["error"]["code"] == "insufficient_quota"
    refused = Generation.objects.get()  # kept as a refused request, as without stream
    assert (refused.status, refused.reserved_credits) == (Generation.Status.FAILED, 0)
    assert assert_ledger_balanced(poor) == 10


def test_a_generation_that_fails_as_a_whole_ends_with_an_error_event_and_charges_nothing(
    owner, owner_key
):
    answer = send(owner_key, body=generation_body(prompt=a_prompt("[sim:block-prompt]")))

    assert answer.status == 200  # the stream had started: its end says what happened
    (frame,) = answer.events()
    assert frame.event == "error"
    error = json.loads(frame.data)["error"]
    assert error["code"] == "content_policy_violation"
    assert error["type"] == "invalid_request_error" and error["message"]
    assert Generation.objects.get().status == Generation.Status.FAILED
    assert ledger_kinds(owner)[-2:] == [("reserve", -40), ("release", 40)]
    assert assert_ledger_balanced(owner) == 1000


def test_a_partial_delivery_streams_what_was_delivered_and_charges_only_that(
    owner, owner_key, settings
):
    settings.UPSTREAM_MAX_RETRIES = 0
    body = generation_body(prompt=a_prompt("[sim:deliver=1]"), n=2)
    one_image = quoted(owner_key, {**body, "n": 1})

    answer = send(owner_key, body=body)

    assert answer.status == 200, answer.body
    assert [frame.event for frame in answer.events()] == ["image_generation.completed", None]
    (event,) = answer.completed()
    assert (event["images_requested"], event["images_delivered"]) == (2, 1)
    assert event["usage"]["generated_images"] == 1
    assert event["credits_charged"] == event["usage"]["credits"] == one_image
    assert assert_ledger_balanced(owner) == 1000 - one_image


def test_a_repeated_idempotency_key_replays_the_stream_and_charges_once(owner, owner_key):
    body = generation_body()
    cost = quoted(owner_key, body)

    first = send(owner_key, body=body, headers={"Idempotency-Key": "streamed-1"})
    second = send(owner_key, body=body, headers={"Idempotency-Key": "streamed-1"})

    assert first.status == second.status == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Content-Type"] == "text/event-stream"
    assert [e["b64_json"] for e in second.completed()] == [e["b64_json"] for e in first.completed()]
    assert second.events()[-1].data == "[DONE]"
    assert Generation.objects.count() == 1
    assert assert_ledger_balanced(owner) == 1000 - cost


def test_a_replayed_failure_is_its_json_error(owner, owner_key):
    body = generation_body(prompt=a_prompt("[sim:block-prompt]"))
    send(owner_key, body=body, headers={"Idempotency-Key": "streamed-2"})

    again = send(owner_key, body=body, headers={"Idempotency-Key": "streamed-2"})

    assert again.status == 400
    assert again.json()["error"]["code"] == "content_policy_violation"
    assert assert_ledger_balanced(owner) == 1000


@pytest.mark.postgres
@pytest.mark.parametrize("hot_sql_on_loop", [True, False], ids=["event loop", "thread"])
def test_a_client_that_hangs_up_mid_stream_is_charged_for_what_was_delivered(
    owner, owner_key, hot_sql_on_loop
):
    body = generation_body(prompt=a_prompt("[sim:latency=2]"))
    cost = quoted(owner_key, body)

    status, content = serve(
        "POST",
        "/v1/images/generations",
        {"Authorization": f"Bearer {owner_key}", "Content-Type": "application/json"},
        body=json.dumps(body).encode(),
        hot_sql_on_loop=hot_sql_on_loop,
        # After the stream has started (its work reserved), while the upstream works.
        hang_up_after=0.75,
    )

    assert status == 200
    assert b"completed" not in content  # gone before anything was delivered to it
    generation = Generation.objects.get()
    assert generation.status == Generation.Status.SUCCEEDED
    assert generation.images.count() == 1
    assert ledger_kinds(owner)[-1] == ("charge", -cost)
    assert assert_ledger_balanced(owner) == 1000 - cost


def test_a_streamed_layer_split_sends_the_base_and_each_layer_with_its_fields(owner, owner_key):
    source = data_url(picture(RED, (768, 512), "JPEG"), "jpeg")
    body = {"model": "seedream-5-0-pro", "layer_decomposition": True, "max_layers": 3,
            "size": "1K", "stream": True, "images": [{"image_url": source}]}  # fmt: skip

    answer = send(owner_key, "/v1/images/edits", body=body)

    assert answer.status == 200, answer.body
    completed = answer.completed()
    assert [event["type"] for event in completed] == ["image_edit.completed"] * 4
    assert [event["z_index"] for event in completed] == [0, 1, 2, 3]
    assert all(event["name"] and event["bounding_box"] for event in completed[1:])
    assert assert_ledger_balanced(owner) == 1000 - completed[-1]["credits_charged"]
