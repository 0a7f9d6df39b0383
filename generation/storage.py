"""Where images and thumbnails live: files under MEDIA_ROOT, or an S3-compatible bucket.

The rest of the code reads and writes through Django's ``default_storage`` either way; this
module holds what differs with a bucket (config/settings.py, "Storage", sets it up from S3_*):

- ``ObjectStorage``: django-storages' S3 backend with one boto3 client per process and the way
  its objects are reached: a public base URL (a public bucket or a CDN in front of it) or, without
  one, presigned URLs that expire after ``querystring_expire`` seconds.
- ``is_remote()``: whether images are in a bucket, so this process never serves their bytes and
  answers ``/img/...`` with a redirect instead (``redirect``).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import HttpResponseRedirect
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

logger = logging.getLogger(__name__)

# A stored object never changes (its name is an unguessable token), so any cache may keep it,
# but only as long as IMAGE_CACHE_SECONDS: a customer who deletes an image is told its link is
# gone, and a cache holding it for a year would make that untrue.


def image_cache_control() -> str:
    """The Cache-Control of an image or thumbnail, and of the redirect to it."""
    return f"public, max-age={settings.IMAGE_CACHE_SECONDS}"


class ObjectStorage(S3Storage):
    """S3Storage with a ``public_base_url`` option and a boto3 client shared by all threads.

    S3Storage keeps one boto3 session and client per thread. Under ASGI every request runs its
    synchronous code on a fresh thread, so each request would build a new one: 0.2 to 0.4 s of
    CPU on our machines, against under 1 ms to presign a URL with a built one. boto3 clients
    are thread-safe, so one is built per process instead.
    """

    public_base_url: str
    querystring_expire: int

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.public_base_url = self.public_base_url.rstrip("/")
        self._shared_connection: Any = None
        self._connection_lock = threading.Lock()

    def get_default_settings(self) -> dict[str, Any]:
        return {
            **super().get_default_settings(),
            "public_base_url": "",
            # Botocore would presign with the legacy SigV2, which new AWS regions refuse.
            "signature_version": "s3v4",
            "object_parameters": {"CacheControl": image_cache_control()},
        }

    @property
    def connection(self) -> Any:
        if self._shared_connection is None:
            with self._connection_lock:
                if self._shared_connection is None:
                    connection = super().connection
                    connection.meta.client.meta.events.register(
                        "before-call.s3.DeleteObjects", _add_content_md5
                    )
                    self._shared_connection = connection
        return self._shared_connection

    def _save(self, name: str, content: Any) -> str:
        # One PUT. S3Storage uploads through s3transfer, whose planning for multipart uploads
        # costs about 3 ms of CPU per image and buys nothing at our sizes (an image is at most
        # UPSTREAM_IMAGE_MAX_BYTES; a single PUT takes up to 5 GB).
        cleaned = clean_name(name)
        key = self._normalize_name(cleaned)
        content.seek(0)
        self.connection.meta.client.put_object(
            Bucket=self.bucket_name,
            Key=key,
            Body=content,
            **self._get_write_parameters(key, content),
        )
        return cleaned

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_shared_connection", None)
        state.pop("_connection_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._shared_connection = None
        self._connection_lock = threading.Lock()

    def url(
        self,
        name: str,
        parameters: dict[str, str] | None = None,
        expire: int | None = None,
        http_method: str | None = None,
    ) -> str:
        """The public URL with a public base URL, else a presigned one. With ``parameters``
        (response overrides such as ResponseContentDisposition) always presigned: S3 honours
        them only on signed requests."""
        if self.public_base_url and not parameters and http_method in (None, "GET"):
            return f"{self.public_base_url}/{quote(self._normalize_name(clean_name(name)))}"
        return str(super().url(name, parameters, expire, http_method))


def _add_content_md5(params: dict[str, Any], **kwargs: Any) -> None:
    # S3 long required Content-MD5 on DeleteObjects and many S3-compatible servers (Swift, older
    # Ceph and MinIO) still do; boto3 now sends a CRC32 checksum instead. AWS accepts both.
    digest = hashlib.md5(params["body"], usedforsecurity=False).digest()
    params["headers"]["Content-MD5"] = base64.b64encode(digest).decode("ascii")


def is_remote() -> bool:
    """Images are in object storage: this process never serves their bytes."""
    return isinstance(default_storage, S3Storage)


def public_url(name: str) -> str | None:
    """The permanent public address of stored object ``name``, if the bucket has one."""
    if getattr(default_storage, "public_base_url", ""):
        return str(default_storage.url(name))
    return None


def redirect(name: str, *, download_as: str | None = None) -> HttpResponseRedirect:
    """A 302 to object ``name``: its public URL, or a fresh presigned one; with ``download_as``
    a presigned URL that makes the browser save it under that file name.

    Nothing is checked first: a missing object answers 404 at the target (S3 says 404 for a
    missing key to whoever may list the bucket), which spares every image view a round trip to
    the bucket here; presigning is local arithmetic (about 0.3 ms of CPU).
    """
    public = None if download_as else public_url(name)
    if public:
        response = HttpResponseRedirect(public)
        # The public URL never changes, but the object may be deleted: as long as the object.
        response["Cache-Control"] = image_cache_control()
        return response
    parameters = None
    if download_as:
        parameters = {"ResponseContentDisposition": f'attachment; filename="{download_as}"'}
    bucket = cast(ObjectStorage, default_storage)
    response = HttpResponseRedirect(bucket.url(name, parameters=parameters))
    # A presigned URL dies after querystring_expire seconds: a cached redirect must die well
    # before it does.
    response["Cache-Control"] = f"private, max-age={bucket.querystring_expire // 2}"
    return response


def files_under(prefix: str) -> Iterator[tuple[str, datetime]]:
    """Every stored file whose name starts with ``prefix`` (a folder, "images/"), with the time
    it was last written: one listing request per thousand objects in a bucket (a timestamp per
    file would cost a request each), a walk of the folder on disk."""
    if is_remote():
        s3: Any = default_storage
        root = s3._normalize_name(clean_name(prefix))
        for summary in s3.bucket.objects.filter(Prefix=root):
            # As django-storages names an object: its key less the storage's location.
            yield summary.key[len(s3.location) :].lstrip("/"), summary.last_modified
        return
    base = Path(default_storage.path(""))
    folder = base / prefix
    if not folder.is_dir():
        return
    for path in folder.rglob("*"):
        if path.is_file():
            modified = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
            yield path.relative_to(base).as_posix(), modified


def delete_many(names: Iterable[str]) -> None:
    """Delete stored objects, missing ones included. In a bucket a thousand go in one request
    (S3's DeleteObjects) rather than one request each: the retention job deletes thousands."""
    if not is_remote():
        for name in names:
            default_storage.delete(name)
        return
    s3: Any = default_storage
    client = s3.connection.meta.client
    keys = [s3._normalize_name(clean_name(name)) for name in names]
    for start in range(0, len(keys), 1000):
        batch = [{"Key": key} for key in keys[start : start + 1000]]
        answer = client.delete_objects(
            Bucket=s3.bucket_name, Delete={"Objects": batch, "Quiet": True}
        )
        for error in answer.get("Errors", []):
            logger.error("could not delete %s from the bucket: %s", error["Key"], error["Code"])
