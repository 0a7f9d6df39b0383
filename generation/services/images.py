"""A generation's images once delivered: where they are stored, their URLs and bytes, and their
deletion (by the customer, by retention, or when an account closes)."""

from __future__ import annotations

import logging
from collections.abc import Generator
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from accounts.models import Account
from server import metrics

from .. import storage, thumbnails
from ..models import Generation, Image, InputImage
from .inputs import INPUTS_PREFIX

logger = logging.getLogger(__name__)


def image_storage_name(token: str, extension: str) -> str:
    # Sharded by the token's first characters so no folder grows huge; the URL alone names the
    # file, so serving an image needs no database query.
    return f"images/{token[:2]}/{token}.{extension}"


def image_url(image: Image, base_url: str) -> str:
    # A public bucket (or its CDN) serves the image itself; otherwise our /img/ URL does (a
    # redirect to a fresh presigned URL when the bucket is private).
    public = storage.public_url(image.file.name)
    if public:
        return public
    extension = image.file.name.rsplit(".", 1)[-1]
    return f"{settings.IMAGE_BASE_URL or base_url}/img/{image.token}.{extension}"


def read_image(image: Image, chunk_bytes: int) -> Generator[bytes]:
    """An image's stored bytes, ``chunk_bytes`` at a time: its file is open while they are
    read (closing the iterator closes it), and no more of it is in memory than one chunk."""
    with default_storage.open(image.file.name, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            yield chunk


def _delete_files_after_commit(images: list[tuple[str, str]]) -> None:
    """Delete each (token, file name)'s original and thumbnail once the transaction commits, so
    a deletion that rolls back loses nothing."""

    def delete() -> None:
        storage.delete_many(
            path
            for token, name in images
            for path in (name, thumbnails.thumbnail_name(token))
            if path
        )

    transaction.on_commit(delete)


def delete_image(image: Image) -> None:
    """The customer deletes one image: its row, file and thumbnail. The generation, its
    charge and the ledger keep their lines."""
    with transaction.atomic():
        Image.objects.filter(pk=image.pk).delete()
        _delete_files_after_commit([(image.token, image.file.name)])


def purge_expired_images(now: datetime | None = None, batch: int = 1000) -> int:
    """Delete images older than IMAGE_RETENTION_DAYS (0 keeps them forever). Returns how many."""
    days = settings.IMAGE_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    total = 0
    while True:
        with transaction.atomic():
            rows = list(
                Image.objects.filter(created_at__lt=cutoff)
                .order_by("created_at")
                .values_list("pk", "token", "file")[:batch]
            )
            if not rows:
                break
            Image.objects.filter(pk__in=[pk for pk, *_ in rows]).delete()
            _delete_files_after_commit([(token, name) for _, token, name in rows])
        total += len(rows)
    inputs = _purge_expired_inputs(cutoff, batch)
    if total or inputs:
        logger.info(
            "retention: deleted %d images and %d reference images older than %d days",
            total,
            inputs,
            days,
        )
    return total


def _purge_expired_inputs(cutoff: datetime, batch: int) -> int:
    """The reference images kept with generations, on the images' retention."""
    total = 0
    while True:
        with transaction.atomic():
            rows = list(
                InputImage.objects.filter(created_at__lt=cutoff)
                .order_by("created_at")
                .values_list("pk", "token", "file")[:batch]
            )
            if not rows:
                return total
            InputImage.objects.filter(pk__in=[pk for pk, *_ in rows]).delete()
            # Its file, and the thumbnail the gallery made of it (the same names as an image's).
            _delete_files_after_commit([(token, name) for _, token, name in rows])
        total += len(rows)


def sweep_orphan_files(now: datetime | None = None, batch: int = 500) -> int:
    """Remove stored images, thumbnails and reference images that no row names: what a failed
    store left
    half written, a settlement that never committed, or a deletion whose files outlived a crash.
    A file younger than ORPHAN_FILE_GRACE_SECONDS is left alone (it may be one a generation
    has stored and not yet settled). Returns how many files were removed."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.ORPHAN_FILE_GRACE_SECONDS)
    removed = 0
    for prefix in ("images/", "thumbs/", INPUTS_PREFIX):
        candidates: dict[str, list[str]] = {}
        for name, modified in storage.files_under(prefix):
            if modified < cutoff:
                candidates.setdefault(_token_of(name), []).append(name)
            if len(candidates) >= batch:
                removed += _remove_unnamed(candidates)
                candidates = {}
        removed += _remove_unnamed(candidates)
    if removed:
        logger.warning("orphan sweep: removed %d stored files no image names", removed)
        metrics.orphan_files_removed(removed)
    return removed


def _token_of(name: str) -> str:
    # images/ab/<token>.<ext> and thumbs/ab/<token>.webp (image_storage_name, thumbnail_name).
    return name.rsplit("/", 1)[-1].split(".", 1)[0]


def _remove_unnamed(candidates: dict[str, list[str]]) -> int:
    if not candidates:
        return 0
    named = set(Image.objects.filter(token__in=candidates).values_list("token", flat=True))
    named.update(InputImage.objects.filter(token__in=candidates).values_list("token", flat=True))
    orphans = [name for token, names in candidates.items() if token not in named for name in names]
    storage.delete_many(orphans)
    return len(orphans)


def erase_customer_content(account: Account) -> int:
    """Delete what a closing account made (images and their files) and blank what it wrote
    (prompts, parameters, idempotency keys), keeping each request's amounts for the books.

    Returns how many images were deleted.
    """
    images = Image.objects.filter(account=account)
    files = list(images.values_list("token", "file"))
    deleted, _ = images.delete()
    inputs = InputImage.objects.filter(account=account)
    input_files = list(inputs.values_list("token", "file"))
    inputs.delete()
    _delete_files_after_commit(input_files)
    Generation.objects.filter(account=account).update(
        prompt="", params={}, idempotency_key="", request_hash="", error_message=""
    )
    _delete_files_after_commit(files)
    return deleted


def thumbnail_url(image: Image) -> str:
    return f"{settings.IMAGE_BASE_URL}/img/t/{image.token}.webp"
