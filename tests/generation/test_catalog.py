"""The catalog is data (generation/catalog.toml): every model's ids, size rules and lifecycle,
checked against the figures of the Seedream reference (docs: README "Models")."""

from __future__ import annotations

import copy
from datetime import date, timedelta

import pytest

from generation import catalog
from generation.catalog import SizeError, get_model, nearest_size, resolve_size

pytestmark = pytest.mark.smoke

PUBLIC_IDS = [
    "seedream-4-0", "seedream-4-5", "seedream-5-0-lite", "seedream-5-0-pro",
    "seedream-5-0-flash", "seedream-5-5", "seedream-3-0", "seededit-3-0",
]  # fmt: skip

# The reference's table of sizes OpenAI clients send by habit (§3.5): accepted or not, by model.
OPENAI_SIZES = {
    "512x512": {"seedream-3-0"},
    "1280x720": {"seedream-3-0", "seedream-5-0-flash", "seedream-5-5"},
    "1024x1024": {"seedream-3-0", "seedream-4-0", "seedream-5-0-pro", "seedream-5-0-flash",
                  "seedream-5-5"},
    "1536x1024": {"seedream-3-0", "seedream-4-0", "seedream-5-0-pro", "seedream-5-0-flash",
                  "seedream-5-5"},
    "1024x1536": {"seedream-3-0", "seedream-4-0", "seedream-5-0-pro", "seedream-5-0-flash",
                  "seedream-5-5"},
    "1792x1024": {"seedream-3-0", "seedream-4-0", "seedream-5-0-pro", "seedream-5-0-flash",
                  "seedream-5-5"},
    "2048x2048": {"seedream-3-0", "seedream-4-0", "seedream-4-5", "seedream-5-0-lite",
                  "seedream-5-0-pro", "seedream-5-0-flash", "seedream-5-5"},
    "3840x2160": {"seedream-4-0", "seedream-4-5", "seedream-5-0-lite"},
}  # fmt: skip
TEXT_TO_IMAGE = [m for m in PUBLIC_IDS if m != "seededit-3-0"]


def test_the_catalog_sells_the_whole_current_line_in_its_files_order():
    assert [m.id for m in catalog.all_models()] == [
        "seedream-4-0", "seedream-4-5", "seedream-5-0-lite", "seedream-5-0-pro",
        "seedream-5-0-flash", "seedream-5-5", "seedream-3-0", "seededit-3-0",
    ]  # fmt: skip


@pytest.mark.parametrize("model_id", PUBLIC_IDS)
def test_every_model_accepts_its_default_size_and_each_of_its_keywords(model_id):
    model = get_model(model_id)
    assert model is not None
    assert resolve_size(model, None) == resolve_size(model, "auto")
    for keyword, size in model.keyword_sizes.items():
        for spelling in (keyword, keyword.lower()):
            resolved = resolve_size(model, spelling)
            assert resolved.value == keyword  # sent upstream in the model's own spelling
            assert resolved.pixels == catalog._pixels(size)


@pytest.mark.parametrize("size", list(OPENAI_SIZES))
@pytest.mark.parametrize("model_id", TEXT_TO_IMAGE)
def test_the_sizes_openai_clients_send_are_taken_or_refused_as_the_reference_says(model_id, size):
    model = get_model(model_id)
    if model_id in OPENAI_SIZES[size]:
        assert resolve_size(model, size).value == size
        return
    with pytest.raises(SizeError) as refused:
        resolve_size(model, size)
    message = str(refused.value)
    suggestion = message.rsplit(" ", 1)[-1]
    # The message names the window, and its suggestion is one the model makes.
    assert f"{model.min_pixels:,} to {model.max_pixels:,} pixels" in message
    assert resolve_size(model, suggestion).value == suggestion


@pytest.mark.parametrize("model_id", TEXT_TO_IMAGE)
def test_the_window_edges_are_exact(model_id):
    model = get_model(model_id)
    # A 1-pixel-high strip is out of any aspect bound; a square at the floor is in.
    side = int(model.min_pixels**0.5)
    if side * side == model.min_pixels:
        assert resolve_size(model, f"{side}x{side}").pixels == model.min_pixels
        with pytest.raises(SizeError):
            resolve_size(model, f"{side - 1}x{side}")


@pytest.mark.parametrize("model_id", TEXT_TO_IMAGE)
@pytest.mark.parametrize(
    "size", ["16x16", "100x2000", "2000x100", "900x900", "5000x5000", "9999x9999", "4097x4096"]
)
def test_a_suggested_size_is_always_one_the_model_makes(model_id, size):
    model = get_model(model_id)
    width, height = map(int, size.split("x"))

    suggested = nearest_size(model, width, height)

    assert resolve_size(model, suggested).value == suggested


@pytest.mark.parametrize("size", ["big", "1024*1024", "1024x", "x1024", "0x0", "3K"])
def test_what_is_not_a_size_for_the_model_says_what_is(size):
    with pytest.raises(SizeError) as refused:
        resolve_size(get_model("seedream-5-5"), size)
    assert "1K, 1.5K, 2K" in str(refused.value)


@pytest.mark.parametrize(
    ("name", "model_id"),
    [
        ("seedream-5-0", "seedream-5-0-lite"),
        ("seedream-5-0-260128", "seedream-5-0-lite"),
        ("doubao-seedream-5-0-lite-260128", "seedream-5-0-lite"),
        ("seedream-4-5-251128", "seedream-4-5"),
        ("dola-seedream-5-0-pro-260628", "seedream-5-0-pro"),
        ("seedream-5-0-pro-260628", "seedream-5-0-pro"),
        ("dola-seedream-5-5-261028", "seedream-5-5"),
        ("seededit-3-0-i2i-250628", "seededit-3-0"),
    ],
)
def test_a_model_answers_to_its_aliases_and_dated_upstream_ids(name, model_id):
    assert get_model(name).id == model_id


@pytest.mark.parametrize("name", ["seedream-6-0", "dall-e-3", "SEEDREAM-4-0", ""])
def test_anything_else_names_no_model(name):
    assert get_model(name) is None


def test_the_channel_picks_the_upstream_ids(settings):
    assert get_model("seedream-5-5").upstream_id == "seedream-5-5-261028"
    settings.UPSTREAM_CHANNEL = "volcengine"
    assert get_model("seedream-5-5").upstream_id == "doubao-seedream-5-5-261028"
    assert get_model("seedream-5-0-flash").upstream_id == ""  # none known there


def test_a_deprecated_model_answers_until_its_sunset_then_is_retired():
    model = get_model("seedream-3-0")
    assert model.status == "deprecated" and model.replacement == "seedream-4-0"

    assert model.lifecycle(model.sunset) == "deprecated"
    assert model.lifecycle(model.sunset + timedelta(days=1)) == "retired"
    assert get_model("seedream-4-0").lifecycle(date(2099, 1, 1)) == "active"


def test_the_catalog_is_what_the_settings_say(settings):
    models = copy.deepcopy(settings.SEEDREAM_MODELS)
    models["seedream-4-0"]["status"] = "retired"
    models["seedream-4-0"]["replacement"] = "seedream-4-5"
    settings.SEEDREAM_MODELS = models

    assert get_model("seedream-4-0").lifecycle() == "retired"


def test_the_readme_lists_the_models_as_the_catalog_has_them():
    from pathlib import Path

    from generation.management.commands.models_table import markdown_table

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert markdown_table() in readme


@pytest.mark.parametrize("model_id", ["seedream-5-0-pro", "seedream-5-0-flash", "seedream-5-5"])
def test_every_layer_keyword_of_a_splitting_model_resolves_and_auto_is_held_at_the_largest(
    model_id,
):
    model = get_model(model_id)
    largest = max(resolve_size(model, k).most_pixels for k in model.keyword_sizes)
    for keyword in model.layer_keywords:
        size = catalog.resolve_layer_size(model, keyword.lower())
        assert size.value == keyword  # sent upstream in the model's own spelling
        if keyword not in model.keyword_sizes:  # auto, and 1.5K on Pro: held at the largest
            assert size.most_pixels == largest
    with pytest.raises(SizeError, match="not a size of a layer split"):
        catalog.resolve_layer_size(model, "1024x1024")
