"""The catalog changed from the admin (generation.models.ModelOverride): a model deprecated,
retired, sent to other upstream ids or given another default size by an operator's form takes
effect without a restart, in the saving process at once and in the others within
CATALOG_CACHE_SECONDS; a bad override is refused with a reason and saves nothing."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from django.utils.http import parse_http_date

from generation import catalog, upstream
from generation.models import Generation, ModelOverride
from tests.support.money import assert_ledger_balanced

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]

TODAY = date.today()


@pytest.fixture
def operator(client, user_factory):
    """A second client, signed in to the admin as an operator (``client`` stays anonymous for
    the API calls)."""
    from django.test import Client

    operator_client = Client()
    operator_client.force_login(user_factory("ops@example.com", is_staff=True, is_superuser=True))
    return operator_client


def override_form(model: str, **fields: str) -> dict[str, str]:
    form = {
        "model": model, "status": "", "deprecated": "", "sunset": "", "replacement": "",
        "upstream_ids": "", "default_size": "", "note": "",
    }  # fmt: skip
    form.update(fields)
    return form


def save_override(operator, model: str, **fields: str):
    existing = ModelOverride.objects.filter(model=model).first()
    url = (
        f"/admin/generation/modeloverride/{existing.pk}/change/"
        if existing
        else "/admin/generation/modeloverride/add/"
    )
    return operator.post(url, override_form(model, **fields))


def generate(client, key, model, **fields):
    return client.post(
        "/v1/images/generations",
        json.dumps({"model": model, "prompt": "a lighthouse", **fields}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


def test_deprecating_then_retiring_a_model_in_the_admin_takes_effect_on_the_next_request(
    client, operator, owner, owner_key
):
    assert "Deprecation" not in generate(client, owner_key, "seedream-4-0")
    sunset = TODAY + timedelta(days=30)

    saved = save_override(
        operator,
        "seedream-4-0",
        status="deprecated",
        deprecated=TODAY.isoformat(),
        sunset=sunset.isoformat(),
        replacement="seedream-4-5",
        note="4.0 goes when BytePlus stops serving it",
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    deprecated = generate(client, owner_key, "seedream-4-0")

    assert deprecated.status_code == 200
    assert deprecated["Deprecation"] == f"@{catalog.day_start(TODAY)}"
    assert parse_http_date(deprecated["Sunset"]) == catalog.day_start(sunset)
    assert '/v1/models/seedream-4-5>; rel="successor-version"' in deprecated["Link"]
    detail = client.get(
        "/v1/models/seedream-4-0", headers={"Authorization": f"Bearer {owner_key}"}
    ).json()
    assert (detail["status"], detail["sunset"]) == ("deprecated", sunset.isoformat())

    assert save_override(operator, "seedream-4-0", status="retired", replacement="seedream-4-5")
    balance = assert_ledger_balanced(owner)
    generations = Generation.objects.count()
    retired = generate(client, owner_key, "seedream-4-0")

    assert retired.status_code == 410
    assert retired.json()["error"]["code"] == "model_retired"
    assert "seedream-4-5" in retired.json()["error"]["message"]
    assert (assert_ledger_balanced(owner), Generation.objects.count()) == (balance, generations)
    assert "seedream-4-0" not in [m.id for m in catalog.text_to_image_models()]

    override = ModelOverride.objects.get(model="seedream-4-0")
    deleted = operator.post(
        f"/admin/generation/modeloverride/{override.pk}/delete/", {"post": "yes"}
    )
    assert deleted.status_code == 302
    assert generate(client, owner_key, "seedream-4-0").status_code == 200  # the file's again


def test_upstream_ids_set_in_the_admin_are_sent_upstream_and_answer_as_the_model(
    client, operator, owner, owner_key, settings, monkeypatch
):
    monkeypatch.setattr(upstream, "_unknown_upstream_ids", set())
    channel = settings.UPSTREAM_CHANNEL
    file_ids = catalog.get_model("seedream-4-0").upstream_ids[channel]
    # The simulator knows the model under this spelling too (the other channel's).
    other = "doubao-seedream-4-0-250828" if channel == "byteplus" else "seedream-4-0-250828"
    assert other not in file_ids

    saved = save_override(operator, "seedream-4-0", upstream_ids=f"{channel}: {other}")
    assert saved.status_code == 302
    response = generate(client, owner_key, "seedream-4-0", size="1024x1024")

    assert response.status_code == 200
    assert Generation.objects.get().upstream_model == other
    assert catalog.get_model(other).id == "seedream-4-0"  # customers may send it too

    # An id the upstream does not know, and only it: the customer gets the configuration
    # error, uncharged, so the admin's id (not the file's) is what was sent.
    save_override(operator, "seedream-4-0", upstream_ids=f"{channel}: seedream-4-0-999999")
    balance = assert_ledger_balanced(owner)
    unknown = generate(client, owner_key, "seedream-4-0", size="1024x1024")

    assert unknown.status_code == 503
    assert assert_ledger_balanced(owner) == balance


def test_a_default_size_set_in_the_admin_is_what_a_request_without_size_gets_and_is_quoted_at(
    client, operator, owner, owner_key
):
    headers = {"Authorization": f"Bearer {owner_key}"}
    body = json.dumps({"model": "seedream-4-0", "prompt": "a lighthouse"})
    before = client.post("/v1/images/quote", body, content_type="application/json", headers=headers)

    assert save_override(operator, "seedream-4-0", default_size="1K").status_code == 302
    quoted = client.post("/v1/images/quote", body, content_type="application/json", headers=headers)
    balance = assert_ledger_balanced(owner)
    response = generate(client, owner_key, "seedream-4-0")

    assert before.json()["images"][0]["size"] == "2048x2048"
    assert quoted.json()["images"][0]["size"] == "1K"
    assert Generation.objects.get().size == "1K"
    assert response.json()["data"][0]
    assert balance - assert_ledger_balanced(owner) == quoted.json()["credits"]
    listed = client.get("/v1/models/seedream-4-0", headers=headers).json()
    assert listed["default_size"] == "1K"


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"replacement": "seedream-9-9", "status": "deprecated"}, "replacement", "not a model"),
        ({"replacement": "seedream-4-0", "status": "deprecated"}, "replacement", "itself"),
        ({"upstream_ids": "moon: seedream-4-0-250828"}, "upstream_ids", "Unknown channel"),
        ({"upstream_ids": "byteplus: seed ream/4"}, "upstream_ids", "not an upstream model id"),
        ({"upstream_ids": "seedream-4-0-250828"}, "upstream_ids", "channel: id"),
        ({"default_size": "512x512"}, "default_size", "nearest size it makes"),
        ({"default_size": "huge"}, "default_size", "not a size"),
        (
            {"status": "deprecated", "deprecated": "2026-12-01", "sunset": "2026-11-01"},
            "sunset",
            "cannot come before",
        ),
        ({"sunset": "2027-01-01"}, "status", "Choose a status"),
    ],
)
def test_a_bad_override_is_refused_with_its_reason_and_saves_nothing(
    operator, fields, field, reason
):
    response = save_override(operator, "seedream-4-0", **fields)

    assert response.status_code == 200  # the form again, with its errors
    errors = response.context["adminform"].form.errors
    assert reason in " ".join(errors.get(field, [])), errors
    assert not ModelOverride.objects.exists()
    assert catalog.get_model("seedream-4-0").lifecycle() == catalog.ACTIVE


def test_an_override_for_a_model_the_file_does_not_have_is_refused(operator):
    response = save_override(operator, "seedream-9-9", status="retired")

    assert "model" in response.context["adminform"].form.errors
    assert not ModelOverride.objects.exists()


def test_another_process_reads_an_override_within_the_cache_time(settings):
    """An override saved elsewhere (no ``forget_overrides`` here) is read once the cache time
    has passed, not before; ``get_model`` itself never queries."""
    settings.CATALOG_CACHE_SECONDS = 3600
    catalog.refresh()
    ModelOverride.objects.create(model="seedream-4-5", status="retired")

    catalog.refresh()
    assert catalog.get_model("seedream-4-5").lifecycle() == catalog.ACTIVE  # still cached

    settings.CATALOG_CACHE_SECONDS = 0
    assert catalog.overrides_due()
    catalog.refresh()
    assert catalog.get_model("seedream-4-5").lifecycle() == catalog.RETIRED


def test_the_admin_shows_what_is_in_force(operator, settings):
    save_override(operator, "seedream-4-5", status="deprecated", sunset="2099-01-01")
    override = ModelOverride.objects.get()

    page = operator.get(f"/admin/generation/modeloverride/{override.pk}/change/")

    text = page.content.decode()
    assert "deprecated, sunset 2099-01-01" in text
    assert f"sent to {settings.UPSTREAM_CHANNEL} as" in text
    listing = operator.get("/admin/generation/modeloverride/")
    assert "seedream-4-5" in listing.content.decode()


def test_a_model_retired_in_the_admin_leaves_the_playground_and_the_docs(
    client, operator, owner, settings
):
    settings.CATALOG_CACHE_SECONDS = 0  # as another process would, once its cache has aged
    client.force_login(owner)
    assert 'value="seedream-4-5"' in client.get("/dashboard/playground/").content.decode()

    ModelOverride.objects.create(model="seedream-4-5", status="retired", replacement="seedream-5-5")
    page = client.get("/dashboard/playground/").content.decode()
    docs = client.get("/docs/").content.decode()

    assert 'value="seedream-4-5"' not in page
    assert 'value="seedream-4-0"' in page
    assert "Retired: answers 410; use <code>seedream-5-5</code>" in docs
