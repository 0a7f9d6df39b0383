"""Images and thumbnails in an S3-compatible bucket (issue 7), against a real server: Debian's
Swift with s3api (tests/support/swift.py), which checks every signature and expiry.

The real uvicorn server stores and serves with S3_* set in its environment; the in-process test
client covers the paths that need a signed-in browser or a changed setting (gallery download,
public bucket, short expiry). This module adds about 20 s to ``make test``, Swift's start (4-7 s)
included.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.test import Client
from django.utils import timezone
from PIL import Image as PILImage

from generation import services, storage, thumbnails
from generation.models import Image
from tests.support import swift as swift_support
from tests.support.money import assert_ledger_balanced
from tests.support.server import running_server
from tests.support.simulator import PROJECT_ROOT

pytestmark = [pytest.mark.integration]

swift_s3 = swift_support.swift_s3  # the session's Swift (a fixture)
EXPIRY_SECONDS = 60
AMZ_DATE = "%Y%m%dT%H%M%SZ"


BODY = {"model": "seedream-4-0", "prompt": "a tram", "size": "1024x1024"}


def generate(client: httpx.Client, key: str, **extra: object) -> dict:
    """A generation through the real server."""
    response = client.post(
        "/v1/images/generations", json={**BODY, **extra}, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def generate_here(client: Client, key: str, **extra: object) -> dict:
    """A generation through the in-process test client (this process's settings apply)."""
    response = client.post(
        "/v1/images/generations",
        {**BODY, **extra},
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.content
    return dict(response.json())


def stored_bytes(swift: swift_support.Swift, key: str) -> bytes:
    return bytes(swift.client().get_object(Bucket=swift.bucket, Key=key)["Body"].read())


def image_of(answer: dict) -> Image:
    return Image.objects.get(generation__public_id=answer["id"], index=0)


@pytest.fixture(scope="module")
def s3_api(live_server_env, swift_s3) -> Iterator[str]:
    """uvicorn with its images in the bucket (presigned URLs: the bucket is private)."""
    env = {**live_server_env, **swift_s3.env(S3_URL_EXPIRY_SECONDS=str(EXPIRY_SECONDS))}
    with running_server(env) as base_url:
        yield base_url


@pytest.fixture
def api(s3_api, default_prices, user_factory, api_key_factory):
    """An HTTP client of that server and the key of a customer with 1000 credits."""
    user = user_factory(credits=1000)
    with httpx.Client(base_url=s3_api, timeout=30) as client:
        yield client, api_key_factory(user).raw_key, user


@pytest.fixture
def in_bucket(settings, swift_s3):
    """This process's default storage is the bucket too (for services and the test client)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": swift_s3.storage_options(querystring_expire=EXPIRY_SECONDS),
    }
    assert storage.is_remote()
    return swift_s3


def test_an_api_image_goes_to_the_bucket_and_its_url_redirects_to_a_signed_url(
    api, swift_s3, live_server_env
):
    client, key, user = api

    answer = generate(client, key)

    url = answer["data"][0]["url"]
    assert url.startswith(f"{str(client.base_url).rstrip('/')}/img/") and url.endswith(".jpg")
    image = image_of(answer)
    name = services.image_storage_name(image.token, "jpg")
    head = swift_s3.client().head_object(Bucket=swift_s3.bucket, Key=name)
    assert (head["ContentType"], head["ContentLength"]) == ("image/jpeg", image.bytes)
    assert head["CacheControl"] == "public, max-age=86400"
    # The server did not write it to its own disk (other tests share that folder).
    assert not Path(live_server_env["DATA_DIR"], "media", name).exists()

    redirect = client.get(url)
    assert redirect.status_code == 302
    target = redirect.headers["Location"]
    assert target.startswith(f"{swift_s3.endpoint_url}/{swift_s3.bucket}/{name}?")
    assert parse_qs(urlsplit(target).query)["X-Amz-Expires"] == [str(EXPIRY_SECONDS)]
    assert redirect.headers["Cache-Control"] == f"private, max-age={EXPIRY_SECONDS // 2}"

    served = httpx.get(target)
    assert served.status_code == 200
    assert served.headers["Content-Type"] == "image/jpeg"
    assert served.content == stored_bytes(swift_s3, name)
    with PILImage.open(io.BytesIO(served.content)) as picture:
        assert (picture.format, picture.size) == ("JPEG", (1024, 1024))
    # Swift checks the signature: a forged one is refused.
    forged = target.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert httpx.get(forged).status_code == 403
    assert assert_ledger_balanced(user) == 960


def test_b64_json_comes_from_memory_and_a_replay_reads_it_back_from_the_bucket(api, swift_s3):
    client, key, _ = api
    body = {**BODY, "response_format": "b64_json"}
    headers = {"Idempotency-Key": str(uuid.uuid4()), "Authorization": f"Bearer {key}"}

    first = client.post("/v1/images/generations", json=body, headers=headers)
    replay = client.post("/v1/images/generations", json=body, headers=headers)

    assert first.status_code == replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    name = image_of(first.json()).file.name
    original = stored_bytes(swift_s3, name)
    assert base64.b64decode(first.json()["data"][0]["b64_json"]) == original
    assert base64.b64decode(replay.json()["data"][0]["b64_json"]) == original


def test_a_thumbnail_is_made_from_the_bucket_on_first_request_and_kept_there(api, swift_s3):
    client, key, _ = api
    image = image_of(generate(client, key))
    thumb = thumbnails.thumbnail_name(image.token)
    assert thumb not in swift_s3.object_keys("thumbs/")

    first = client.get(f"/img/t/{image.token}.webp")

    assert first.status_code == 302
    assert thumb in swift_s3.object_keys("thumbs/")
    served = httpx.get(first.headers["Location"])
    assert (served.status_code, served.headers["Content-Type"]) == (200, "image/webp")
    with PILImage.open(io.BytesIO(served.content)) as picture:
        assert (picture.format, max(picture.size)) == ("WEBP", 384)
    # Kept: the next request redirects to the same object without making it again.
    modified = swift_s3.client().head_object(Bucket=swift_s3.bucket, Key=thumb)["LastModified"]
    assert client.get(f"/img/t/{image.token}.webp").status_code == 302
    again = swift_s3.client().head_object(Bucket=swift_s3.bucket, Key=thumb)["LastModified"]
    assert again == modified


def test_a_missing_object_is_404_at_the_end_of_the_redirect(api):
    client, _, _ = api
    assert client.get("/img/short.jpg").status_code == 404  # malformed: answered here

    redirect = client.get("/img/AAAAAAAAAAAAAAAAAAAAAA.jpg")  # well-formed, never stored

    assert redirect.status_code == 302
    assert httpx.get(redirect.headers["Location"]).status_code == 404
    assert client.get("/img/t/AAAAAAAAAAAAAAAAAAAAAA.webp").status_code == 404


def test_deleting_an_image_removes_its_objects_and_its_url_then_404s(
    api, in_bucket, django_capture_on_commit_callbacks
):
    client, key, _ = api
    kept, deleted = Image.objects.filter(
        generation__public_id=generate(client, key, n=2)["id"]
    ).order_by("index")
    client.get(f"/img/t/{deleted.token}.webp")  # makes its thumbnail
    thumb = thumbnails.thumbnail_name(deleted.token)
    assert {deleted.file.name, thumb} <= in_bucket.object_keys()

    with django_capture_on_commit_callbacks(execute=True):
        services.delete_image(deleted)

    assert not {deleted.file.name, thumb} & in_bucket.object_keys()
    assert kept.file.name in in_bucket.object_keys()
    redirect = client.get(f"/img/{deleted.token}.jpg")
    assert httpx.get(redirect.headers["Location"]).status_code == 404


def test_retention_removes_expired_objects_in_one_batch(
    api, in_bucket, settings, django_capture_on_commit_callbacks
):
    client, key, _ = api
    settings.IMAGE_RETENTION_DAYS = 30
    old = Image.objects.filter(generation__public_id=generate(client, key, n=2)["id"])
    recent = image_of(generate(client, key))
    for image in old:
        client.get(f"/img/t/{image.token}.webp")
    old_names = {n for i in old for n in (i.file.name, thumbnails.thumbnail_name(i.token))}
    assert old_names <= in_bucket.object_keys()
    old.update(created_at=timezone.now() - timedelta(days=31))

    with django_capture_on_commit_callbacks(execute=True):
        assert services.purge_expired_images() == 2

    assert not old_names & in_bucket.object_keys()
    assert recent.file.name in in_bucket.object_keys()


def test_the_gallery_download_is_a_signed_url_that_names_the_file(
    client, in_bucket, owner, owner_key
):
    image = image_of(generate_here(client, owner_key))
    client.force_login(owner)

    redirect = client.get(f"/dashboard/gallery/{image.token}/download/")

    assert redirect.status_code == 302
    download = httpx.get(redirect["Location"])
    assert download.status_code == 200
    filename = f"{image.generation.public_id}-1.jpg"
    assert download.headers["Content-Disposition"] == f'attachment; filename="{filename}"'
    assert download.content == stored_bytes(in_bucket, image.file.name)


def test_a_presigned_url_expires(client, in_bucket, settings, owner_key):
    settings.STORAGES = {
        **settings.STORAGES,
        # X-Amz-Date has whole seconds, so this URL lives between 1 and 2 seconds.
        "default": in_bucket.storage_options(querystring_expire=2),
    }
    image = image_of(generate_here(client, owner_key))
    redirect = client.get(f"/img/{image.token}.jpg")
    assert redirect["Cache-Control"] == "private, max-age=1"
    target = redirect["Location"]
    assert httpx.get(target).status_code == 200

    signed_at = datetime.strptime(parse_qs(urlsplit(target).query)["X-Amz-Date"][0], AMZ_DATE)
    time.sleep(max(0, signed_at.replace(tzinfo=UTC).timestamp() + 2.2 - time.time()))

    expired = httpx.get(target)
    assert expired.status_code == 403
    assert "expired" in expired.text


def test_with_a_public_bucket_urls_point_at_it_directly(client, settings, swift_s3, owner_key):
    public = swift_s3.another_bucket("seedream-public")
    base = public.make_public()
    settings.STORAGES = {
        **settings.STORAGES,
        "default": public.storage_options(public_base_url=base),
    }

    answer = generate_here(client, owner_key)

    image = image_of(answer)
    url = answer["data"][0]["url"]
    assert url == f"{base}/{image.file.name}"
    served = httpx.get(url)  # no signature: anyone may read
    assert (served.status_code, served.headers["Content-Type"]) == (200, "image/jpeg")
    assert served.content == stored_bytes(public, image.file.name)
    # Our own URL sends browsers there too, cacheable for good (the target never changes).
    redirect = client.get(f"/img/{image.token}.jpg")
    assert (redirect.status_code, redirect["Location"]) == (302, url)
    assert redirect["Cache-Control"] == "public, max-age=86400"
    thumb = client.get(f"/img/t/{image.token}.webp")
    assert thumb["Location"] == f"{base}/{thumbnails.thumbnail_name(image.token)}"
    assert httpx.get(thumb["Location"]).headers["Content-Type"] == "image/webp"


def read_storages(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = (
        "import json; from config import settings; print(json.dumps(settings.STORAGES['default']))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_settings_build_the_bucket_from_s3_variables(tmp_path):
    secret = tmp_path / "s3-secret"
    secret.write_text("from-a-file\n")
    env = {
        "S3_BUCKET": "images",
        "S3_ENDPOINT_URL": "https://s3.example.net",
        "S3_ACCESS_KEY_ID": "AKIA1",
        "S3_SECRET_ACCESS_KEY_FILE": str(secret),
    }

    options = json.loads(read_storages(env).stdout)["OPTIONS"]

    assert options["bucket_name"] == "images"
    assert options["secret_key"] == "from-a-file"
    assert options["addressing_style"] == "path"  # a self-hosted endpoint
    assert (options["querystring_expire"], options["public_base_url"]) == (3600, "")
    assert json.loads(read_storages({"S3_BUCKET": ""}).stdout)["BACKEND"].endswith(
        "FileSystemStorage"
    )
    refused = read_storages({**env, "S3_ADDRESSING_STYLE": "sideways"})
    assert refused.returncode != 0
    assert "S3_ADDRESSING_STYLE must be path, virtual or auto" in refused.stderr
