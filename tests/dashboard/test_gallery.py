"""The private gallery: the owner's images only, filtered, paged, shown, downloaded, deleted."""

from __future__ import annotations

import datetime
import json

import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from generation.models import Generation, Image
from tests.support.money import assert_ledger_balanced

URL = "/dashboard/gallery/"


def generate(client, key, prompt="a lantern", **extra):
    response = client.post(
        "/v1/images/generations",
        json.dumps({"model": "seedream-4-0", "prompt": prompt, "size": "1024x1024", **extra}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.content
    return Image.objects.filter(generation__public_id=response.json()["id"]).order_by("index")


@pytest.fixture
def mine(client, owner_key):
    return list(generate(client, owner_key, "my lantern", n=2))


@pytest.fixture
def theirs(client, outsider, api_key_factory):
    return list(generate(client, api_key_factory(outsider).raw_key, "their secret"))


def test_the_owner_sees_their_images_newest_first_and_nobody_elses(client, owner, mine, theirs):
    client.force_login(owner)

    response = client.get(URL)

    assert [image.pk for image in response.context["page"].rows] == [mine[1].pk, mine[0].pk]
    page = response.content.decode()
    assert f"/img/t/{mine[0].token}.webp" in page
    assert theirs[0].token not in page and "their secret" not in page
    assert "kept until you delete them" in page


@pytest.mark.parametrize("suffix", ["", "download/", "delete/"])
def test_an_outsider_gets_404_for_any_of_anothers_images(client, outsider, mine, suffix):
    client.force_login(outsider)
    assert client.get(f"{URL}{mine[0].token}/{suffix}").status_code == 404
    assert client.post(f"{URL}{mine[0].token}/delete/").status_code == 404
    assert Image.objects.filter(pk=mine[0].pk).exists()


def test_filters_by_model_and_source(client, owner, mine):
    Generation.objects.filter(pk=mine[0].generation_id).update(source="playground")
    client.force_login(owner)

    assert len(client.get(URL, {"source": "playground"}).context["page"].rows) == 2
    assert client.get(URL, {"source": "api"}).context["page"].rows == []
    assert client.get(URL, {"model": "seedream-3-0"}).context["page"].rows == []
    assert "match these filters" in client.get(URL, {"model": "seedream-3-0"}).content.decode()


def test_the_detail_shows_what_made_the_image_and_how_to_reuse_it(client, owner, mine):
    client.force_login(owner)

    page = client.get(f"{URL}{mine[0].token}/").content.decode()

    assert "my lantern" in page
    assert "seedream-4-0" in page and "1024 \u00d7 1024" in page
    assert "40 for this image (80 credits for the request)" in page
    assert "(key “test key”)" in page
    assert f"/img/{mine[0].token}.jpg" in page
    assert (
        "/dashboard/playground/?prompt=my+lantern&amp;model=seedream-4-0&amp;size=1024x1024&amp;n=2"
        in page
    )


def test_download_gives_the_original_as_an_attachment(client, owner, mine):
    client.force_login(owner)

    response = client.get(f"{URL}{mine[0].token}/download/")

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment; filename=")
    assert response["Content-Disposition"].endswith('-1.jpg"')
    with default_storage.open(mine[0].file.name, "rb") as handle:
        assert b"".join(response.streaming_content) == handle.read()


def test_deleting_asks_first_then_removes_the_image_but_not_the_charge(
    client, owner, mine, django_capture_on_commit_callbacks
):
    client.force_login(owner)
    confirm = client.get(f"{URL}{mine[0].token}/delete/")
    assert "Delete this image?" in confirm.content.decode()
    # What caches may still hold, in the time the image's headers give them (one day).
    assert "may still answer for up to 24 hours" in confirm.content.decode()
    assert Image.objects.filter(pk=mine[0].pk).exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{URL}{mine[0].token}/delete/")

    assert response.status_code == 302
    assert not Image.objects.filter(pk=mine[0].pk).exists()
    assert not default_storage.exists(mine[0].file.name)
    assert Image.objects.filter(pk=mine[1].pk).exists()
    assert Generation.objects.get().charged_credits == 80
    assert assert_ledger_balanced(owner) == 920


def test_deleting_needs_the_csrf_token(owner, mine):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner)
    assert strict.post(f"{URL}{mine[0].token}/delete/").status_code == 403
    assert Image.objects.filter(pk=mine[0].pk).exists()


def test_the_retention_policy_is_stated(client, owner, settings):
    settings.IMAGE_RETENTION_DAYS = 90
    client.force_login(owner)
    assert "Images are kept for 90 days" in client.get(URL).content.decode()


def test_fifty_thousand_images_page_in_the_same_few_queries(client, owner):
    now = timezone.now()
    generation = Generation.objects.create(account=owner.personal_account, user=owner,
        model="seedream-4-0", upstream_model="u", prompt="p", size="1K", n=1,
        status="succeeded", created_at=now, deadline_at=now,
    )  # fmt: skip
    Image.objects.bulk_create(
        (
            Image(
                generation=generation,
                account=owner.personal_account,
                token=f"tok{i:019d}",
                index=0,
                file=f"images/x/{i}.jpg",
                width=1024,
                height=1024,
                bytes=1,
                created_at=now - datetime.timedelta(seconds=i),
            )
            for i in range(50_000)
        ),
        batch_size=5000,
    )
    client.force_login(owner)
    with CaptureQueriesContext(connection) as first:
        response = client.get(URL)
    cursor = response.context["page"].next_cursor
    with CaptureQueriesContext(connection) as deep:
        later = client.get(URL, {"after": cursor, "model": "seedream-4-0"})

    assert len(response.context["page"].rows) == 48
    assert later.context["page"].rows[0].token == "tok0000000000000000048"
    assert len(first) == len(deep) <= 6
    assert not any("COUNT(" in q["sql"].upper() for q in first.captured_queries)
