"""Thumbnails made once on demand, an image deleted by its owner, and the retention job."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image as PILImage

from generation import services, thumbnails
from generation.models import Generation, Image
from tests.support.money import assert_ledger_balanced


@pytest.fixture
def images(client, owner, owner_key):
    def make(n=1):
        response = client.post(
            "/v1/images/generations",
            json.dumps({"model": "seedream-4-0", "prompt": "a tram", "size": "1024x1024", "n": n}),
            content_type="application/json",
            headers={"Authorization": f"Bearer {owner_key}"},
        )
        assert response.status_code == 200, response.content
        return list(Image.objects.filter(generation__public_id=response.json()["id"]))

    return make


def read(response):
    return b"".join(response.streaming_content)


def test_a_thumbnail_is_made_on_first_request_and_kept(client, images):
    (image,) = images()
    url = f"/img/t/{image.token}.webp"
    assert not default_storage.exists(thumbnails.thumbnail_name(image.token))

    first = client.get(url)

    assert first.status_code == 200
    assert first["Content-Type"] == "image/webp"
    assert first["X-Content-Type-Options"] == "nosniff"
    picture = PILImage.open(io.BytesIO(read(first)))
    assert picture.format == "WEBP"
    assert max(picture.size) == 384
    assert default_storage.exists(thumbnails.thumbnail_name(image.token))
    # Served from storage from now on, even without the database row.
    Image.objects.filter(pk=image.pk).delete()
    assert client.get(url).status_code == 200


def test_an_unknown_or_malformed_thumbnail_token_is_404(client, db):
    assert client.get("/img/t/AAAAAAAAAAAAAAAAAAAAAA.webp").status_code == 404
    assert client.get("/img/t/short.webp").status_code == 404


def test_deleting_an_image_removes_its_files_but_not_the_books(
    client, images, owner, django_capture_on_commit_callbacks
):
    kept, deleted = images(n=2)
    client.get(f"/img/t/{deleted.token}.webp")

    with django_capture_on_commit_callbacks(execute=True):
        services.delete_image(deleted)

    assert not Image.objects.filter(pk=deleted.pk).exists()
    assert not default_storage.exists(deleted.file.name)
    assert not default_storage.exists(thumbnails.thumbnail_name(deleted.token))
    assert client.get(f"/img/{deleted.token}.jpg").status_code == 404
    assert default_storage.exists(kept.file.name)
    generation = Generation.objects.get()
    assert (generation.images_delivered, generation.charged_credits) == (2, 80)
    assert assert_ledger_balanced(owner) == 920


def test_retention_keeps_everything_by_default(images):
    images()
    assert services.purge_expired_images(now=timezone.now() + timedelta(days=3650)) == 0
    assert Image.objects.count() == 1


def test_retention_deletes_only_images_older_than_the_policy(
    images, settings, django_capture_on_commit_callbacks
):
    settings.IMAGE_RETENTION_DAYS = 30
    old, recent = images(), images()
    Image.objects.filter(pk=old[0].pk).update(created_at=timezone.now() - timedelta(days=31))

    with django_capture_on_commit_callbacks(execute=True):
        assert services.purge_expired_images(batch=1) == 1

    assert list(Image.objects.values_list("pk", flat=True)) == [recent[0].pk]
    assert not default_storage.exists(old[0].file.name)
    assert default_storage.exists(recent[0].file.name)
    assert Generation.objects.count() == 2
