"""A generation's reference images kept with it (generation/services/inputs.py): read back by
the worker that runs a queued generation, refused work leaves no file behind, and the files go
with the images' retention, with the account, and (orphans) with the sweep."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import httpx
import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from generation import services, thumbnails
from generation.catalog import get_model, resolve_size
from generation.models import Generation, InputImage
from generation.references import check_reference
from generation.refusals import ShortOfCredits
from generation.services import images as image_services
from generation.services import inputs
from tests.support.pictures import BLUE, RED, picture

pytestmark = pytest.mark.smoke


def spec_with_references(prompt, *datas, n=1):
    model = get_model("seedream-4-0")
    spec = services.GenerationSpec(
        model=model, prompt=prompt, size=resolve_size(model, "1024x1024"), n=n
    )
    return spec.with_references(tuple(check_reference(d, model, param="image") for d in datas))


def stored_names():
    _, folders = default_storage.listdir(inputs.INPUTS_PREFIX)
    return {
        f"{inputs.INPUTS_PREFIX}{folder}/{name}"
        for folder in folders
        for name in default_storage.listdir(f"{inputs.INPUTS_PREFIX}{folder}")[1]
    } if default_storage.exists(inputs.INPUTS_PREFIX) else set()  # fmt: skip


@pytest.fixture
def queued(owner, monkeypatch, django_capture_on_commit_callbacks):
    """Submit as the playground does (the broker replaced by nothing: the test runs it)."""
    from generation import tasks

    monkeypatch.setattr(tasks, "send_generation", lambda pk, countdown=0: None)

    def make(spec):
        with django_capture_on_commit_callbacks(execute=True):
            return services.submit_generation(account=owner.personal_account, user=owner, spec=spec)

    return make


def test_a_queued_generation_is_run_with_its_references_read_back_in_order(
    queued, owner, simulator_url
):
    red, blue = picture(RED), picture(BLUE)
    prompt = "a worker's edit"
    generation = queued(spec_with_references(prompt, red, blue))

    assert services.run_queued_generation(generation.pk).status == "done"

    base = simulator_url.removesuffix("/api/v3")
    sent = httpx.get(f"{base}/_sim/calls", params={"prompt": prompt}).json()["references"]
    assert sent[-1] == [hashlib.sha256(d).hexdigest() for d in (red, blue)]
    generation.refresh_from_db()
    assert generation.status == Generation.Status.SUCCEEDED


def test_a_generation_whose_references_are_gone_is_not_sent_without_them(queued, owner):
    generation = queued(spec_with_references("lost inputs", picture(RED)))
    InputImage.objects.filter(generation=generation).delete()

    with pytest.raises(ValueError, match="0 of 1 references"):
        inputs.load_references(generation)


def test_a_refused_request_leaves_no_reference_file(user_factory, queued):
    poor = user_factory("poor@example.com", credits=0)
    before = stored_names()

    with pytest.raises(ShortOfCredits):
        services.submit_generation(
            account=poor.personal_account, user=poor, spec=spec_with_references("x", picture(RED))
        )

    assert stored_names() == before
    assert not InputImage.objects.exists()


def test_retention_deletes_old_references_and_their_files(
    queued, settings, django_capture_on_commit_callbacks
):
    settings.IMAGE_RETENTION_DAYS = 30
    generation = queued(spec_with_references("kept a while", picture(RED)))
    name = InputImage.objects.get(generation=generation).file.name

    services.purge_expired_images(now=timezone.now() + timedelta(days=29))
    assert InputImage.objects.filter(generation=generation).exists()

    with django_capture_on_commit_callbacks(execute=True):  # files go once it commits
        services.purge_expired_images(now=timezone.now() + timedelta(days=31))
    assert not InputImage.objects.filter(generation=generation).exists()
    assert not default_storage.exists(name)


def test_closing_an_account_deletes_its_references(
    queued, owner, django_capture_on_commit_callbacks
):
    generation = queued(spec_with_references("mine", picture(RED)))
    name = InputImage.objects.get(generation=generation).file.name

    with django_capture_on_commit_callbacks(execute=True):
        image_services.erase_customer_content(owner.personal_account)

    assert not InputImage.objects.exists()
    assert not default_storage.exists(name)


def test_the_sweep_keeps_a_kept_reference_and_removes_an_orphan(queued, settings):
    generation = queued(spec_with_references("swept", picture(RED)))
    kept = InputImage.objects.get(generation=generation).file.name
    orphan = inputs.write_reference_files(spec_with_references("o", picture(BLUE)).references)
    settings.ORPHAN_FILE_GRACE_SECONDS = 0

    services.sweep_orphan_files(now=timezone.now() + timedelta(seconds=5))

    assert default_storage.exists(kept)
    assert not default_storage.exists(orphan[0].name)


def test_retention_deletes_a_references_thumbnail_too(
    queued, settings, django_capture_on_commit_callbacks
):
    settings.IMAGE_RETENTION_DAYS = 30
    generation = queued(spec_with_references("thumbnailed", picture(RED)))
    kept = InputImage.objects.get(generation=generation)
    thumbnail = thumbnails.ensure_thumbnail(kept.token, kept.file.name)
    assert default_storage.exists(thumbnail)

    with django_capture_on_commit_callbacks(execute=True):
        services.purge_expired_images(now=timezone.now() + timedelta(days=31))

    assert not default_storage.exists(thumbnail)
