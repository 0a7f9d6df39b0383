"""Requests map the way customers expect (generation/spec.py, generation/upstream.py): OpenAI's
``quality`` picks a resolution tier, and each model's upstream is sent exactly the fields its
catalog entry allows, captured here as the upstream client sends them over HTTP."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Iterator

import pytest
from aiohttp import web
from PIL import Image as PILImage

from billing import pricing
from generation import upstream
from generation.models import Generation
from generation.refusals import Reason, Refusal
from generation.services.run import upstream_request
from generation.spec import SEED_MAX, build_spec
from tests.support.aiohttp_server import serving

pytestmark = pytest.mark.smoke

TEXT_TO_IMAGE = [
    "seedream-4-0", "seedream-4-5", "seedream-5-0-lite", "seedream-5-0-pro",
    "seedream-5-0-flash", "seedream-5-5", "seedream-3-0",
]  # fmt: skip

# quality -> the size sent upstream, per model (README "quality"): low, medium, high.
QUALITY_MAP = {
    "seedream-4-0": ("1K", "2K", "4K"),
    "seedream-4-5": ("2K", "2K", "4K"),
    "seedream-5-0-lite": ("2K", "2K", "3K"),
    "seedream-5-0-pro": ("1K", "2K", "2K"),
    "seedream-5-0-flash": ("1K", "2K", "2K"),
    "seedream-5-5": ("1K", "2K", "2K"),
    "seedream-3-0": ("1024x1024", "1024x1024", "1024x1024"),
}


@pytest.mark.parametrize("model_id", TEXT_TO_IMAGE)
def test_quality_picks_the_models_resolution_tier(model_id):
    low, medium, high = QUALITY_MAP[model_id]
    sizes = {
        quality: build_spec(model=model_id, prompt="a fox", quality=quality).size.value
        for quality in ("low", "medium", "high", "standard", "hd", "auto")
    }
    default = build_spec(model=model_id, prompt="a fox").size.value
    assert sizes == {
        "low": low,
        "medium": medium,
        "high": high,
        "standard": medium,
        "hd": high,
        "auto": default,
    }


def test_an_explicit_size_wins_over_quality():
    spec = build_spec(model="seedream-4-0", prompt="a fox", size="1536x1024", quality="high")
    assert spec.size.value == "1536x1024"
    # "auto" is no size: quality decides.
    assert (
        build_spec(model="seedream-4-0", prompt="a fox", size="auto", quality="high").size.value
        == "4K"
    )


def test_high_quality_is_priced_in_the_tier_it_gives(db):
    rule = pricing.price_rule("seedream-4-0")
    high = build_spec(model="seedream-4-0", prompt="a fox", quality="high").size
    low = build_spec(model="seedream-4-0", prompt="a fox", quality="low").size
    assert (rule.tier(high.most_pixels).credits, rule.tier(low.most_pixels).credits) == (60, 40)


@pytest.mark.parametrize(
    ("change", "reason", "param"),
    [
        ({"quality": "ultra"}, Reason.INVALID_VALUE, "quality"),
        ({"quality": "HD"}, Reason.INVALID_VALUE, "quality"),
        ({"output_format": "gif"}, Reason.INVALID_VALUE, "output_format"),
        ({"output_format": "jpg"}, Reason.INVALID_VALUE, "output_format"),
        ({"output_compression": -1}, Reason.INVALID_VALUE, "output_compression"),
        ({"output_compression": 101}, Reason.INVALID_VALUE, "output_compression"),
        ({"background": "clear"}, Reason.INVALID_VALUE, "background"),
        ({"background": "transparent"}, Reason.UNSUPPORTED_PARAMETER, "background"),
        ({"model": "seedream-5-5", "background": "transparent", "output_format": "jpeg"},
         Reason.INVALID_VALUE, "background"),
    ],
)  # fmt: skip
def test_each_bad_delivery_option_is_refused_naming_it(change, reason, param):
    with pytest.raises(Refusal) as refused:
        build_spec(**{"model": "seedream-4-0", "prompt": "a fox", **change})
    assert (refused.value.reason, refused.value.param) == (reason, param)


def test_transparency_elsewhere_names_the_models_that_can():
    with pytest.raises(Refusal) as refused:
        build_spec(model="seedream-5-0-pro", prompt="a fox", background="transparent")
    assert refused.value.code == "unsupported_parameter"
    assert "seedream-5-5" in refused.value.message
    assert "seedream-5-0-pro" in refused.value.message


def test_a_transparent_image_is_a_png_unless_webp_is_asked_for():
    spec = build_spec(model="seedream-5-5", prompt="a fox", background="transparent")
    assert spec.output_format == "png"
    spec = build_spec(
        model="seedream-5-5", prompt="a fox", background="transparent", output_format="webp"
    )
    assert spec.output_format == "webp"


# --- What the upstream is sent ------------------------------------------------------------------


def _png() -> bytes:
    out = io.BytesIO()
    PILImage.new("RGBA", (32, 32), (10, 20, 30, 0)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def captured(settings) -> Iterator[list[dict]]:
    """The bodies the upstream client sends, to a stand-in upstream that answers each with an
    image in base64."""
    bodies: list[dict] = []
    image = base64.b64encode(_png()).decode()

    async def upstream_stand_in(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.json_response({"data": [{"b64_json": image}]})

    settings.UPSTREAM_RESPONSE_FORMAT = "b64_json"
    with serving(upstream_stand_in) as base_url:
        settings.UPSTREAM_BASE_URL = base_url
        yield bodies


def send(n: int = 1, **request) -> list[upstream.Outcome]:
    """Run ``request`` (build_spec's arguments) through the upstream client as a generation's
    run sends it."""
    spec = build_spec(**{"prompt": "a fox", "n": n, **request})
    generation = Generation(
        model=spec.model.id,
        upstream_model=spec.model.upstream_id,
        prompt=spec.prompt,
        size=spec.size.value,
        n=spec.most_images,
        params=spec.params(),
    )

    async def run() -> list[upstream.Outcome]:
        try:
            return await upstream.generate_images(upstream_request(generation), generation.calls)
        finally:
            await upstream.close_client()

    return asyncio.run(run())


BASE = {"model", "prompt", "size", "response_format", "watermark"}
# Every field a model's upstream may be sent beyond the base, asked for all at once.
EVERYTHING = {
    "seed": 7,
    "guidance_scale": 3.0,
    "output_format": "png",
    "background": "opaque",
}
# What each model is sent of EVERYTHING (guidance_scale is refused where it is not taken, so it
# is asked of the models that take it), plus sets and stream where the model takes those fields.
SENT = {
    "seedream-4-0": BASE | {"sequential_image_generation", "stream"},
    "seedream-4-5": BASE | {"sequential_image_generation", "stream"},
    "seedream-5-0-lite": BASE | {"sequential_image_generation", "stream", "output_format"},
    "seedream-5-0-pro": BASE | {"seed", "output_format"},
    "seedream-5-0-flash": BASE | {"seed", "output_format"},
    "seedream-5-5": BASE | {"output_format", "background"},
    "seedream-3-0": BASE | {"seed", "guidance_scale"},
}


@pytest.mark.parametrize("model_id", TEXT_TO_IMAGE)
def test_each_model_is_sent_only_the_fields_it_takes(captured, model_id):
    asked = {**EVERYTHING}
    if model_id != "seedream-3-0":
        del asked["guidance_scale"]
    outcomes = send(model=model_id, **asked)

    assert all(isinstance(o, upstream.DeliveredImage) for o in outcomes)
    (body,) = captured
    assert set(body) == SENT[model_id]
    assert body["watermark"] is False
    if "sequential_image_generation" in body:
        assert (body["sequential_image_generation"], body["stream"]) == ("disabled", False)
    if "output_format" in body:
        assert body["output_format"] == "png"


def test_pro_and_flash_never_see_the_sets_or_stream_fields_even_plainly_asked(captured):
    send(model="seedream-5-0-pro")
    send(model="seedream-5-0-flash")
    for body in captured:
        assert "sequential_image_generation" not in body
        assert "stream" not in body


def test_a_seed_gives_each_image_of_a_batch_its_own(captured):
    send(model="seedream-5-0-pro", seed=7, n=3)
    assert sorted(body["seed"] for body in captured) == [7, 8, 9]


def test_the_seeds_of_a_batch_wrap_past_the_largest(captured):
    send(model="seedream-3-0", seed=SEED_MAX, n=2)
    assert sorted(body["seed"] for body in captured) == [0, SEED_MAX]


@pytest.mark.parametrize(("model_id", "seed"), [("seedream-5-0-pro", -1), ("seedream-4-0", 7)])
def test_no_seed_is_sent_for_minus_one_nor_to_a_model_that_ignores_it(captured, model_id, seed):
    send(model=model_id, seed=seed, n=2)
    assert [("seed" in body) for body in captured] == [False, False]


@pytest.mark.parametrize(
    ("model_id", "asked", "sent"),
    [
        # The model makes the format: asked for upstream.
        ("seedream-5-5", {"output_format": "jpeg"}, {"output_format": "jpeg"}),
        # It does not (WebP; or a model that makes JPEG only): re-encoded by us, not sent.
        ("seedream-5-5", {"output_format": "webp"}, {}),
        ("seedream-4-0", {"output_format": "png"}, {}),
        # Transparent: a PNG with the background asked for, where the model can.
        ("seedream-5-5", {"background": "transparent"},
         {"background": "transparent", "output_format": "png"}),
        ("seedream-5-5", {"background": "transparent", "output_format": "webp"},
         {"background": "transparent", "output_format": "png"}),
        # auto and opaque: forwarded where the model takes them, dropped elsewhere.
        ("seedream-5-5", {"background": "auto"}, {"background": "auto"}),
        ("seedream-4-0", {"background": "opaque"}, {}),
        ("seedream-5-0-pro", {"background": "auto"}, {}),
    ],
)  # fmt: skip
def test_format_and_background_are_sent_where_the_model_takes_them(captured, model_id, asked, sent):
    send(model=model_id, **asked)
    (body,) = captured
    assert {k: body[k] for k in ("output_format", "background") if k in body} == sent


def test_compression_is_never_sent_upstream(captured):
    send(model="seedream-5-5", output_format="jpeg", output_compression=40)
    (body,) = captured
    assert "output_compression" not in body


def test_a_set_is_sent_as_auto_with_its_most_images_in_one_call(captured):
    outcomes = send(
        model="seedream-4-5", sequential_image_generation="auto", max_images=5, size="2K"
    )

    (body,) = captured  # one call, however many images the set may have
    assert body["sequential_image_generation"] == "auto"
    assert body["sequential_image_generation_options"] == {"max_images": 5}
    assert len(outcomes) == 1  # the stand-in answers with one image


def test_a_set_answer_gives_each_member_its_own_outcome_and_the_call_they_share(settings):
    """Members delivered, and one failed inside the 200 (not charged), all of call 0."""
    image = base64.b64encode(_png()).decode()
    blocked = {"error": {"code": "OutputImageSensitiveContentDetected", "message": "Blocked."}}

    async def a_set(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"b64_json": image}, blocked, {"b64_json": image}]})

    settings.UPSTREAM_RESPONSE_FORMAT = "b64_json"
    with serving(a_set) as base_url:
        settings.UPSTREAM_BASE_URL = base_url
        outcomes = send(model="seedream-4-0", sequential_image_generation="auto", max_images=3)

    kinds = [type(o).__name__ for o in outcomes]
    assert kinds == ["DeliveredImage", "Failure", "DeliveredImage"]
    assert {o.call for o in outcomes if isinstance(o, upstream.DeliveredImage)} == {0}
    assert outcomes[1].kind == upstream.FailureKind.OUTPUT_BLOCKED
