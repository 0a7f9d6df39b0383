"""A generation's reference images, kept with it: their files are written before its credits
are held (a refused request deletes them again), their rows recorded once it exists, and read
back by a worker that runs it later (the playground's queued generations).

A file whose row was never recorded (a crash between the two) is an orphan: the sweep removes
it after ORPHAN_FILE_GRACE_SECONDS (images.sweep_orphan_files).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from .. import storage
from ..models import Generation, InputImage, new_image_token
from ..references import Reference

INPUTS_PREFIX = "inputs/"


def input_storage_name(token: str, extension: str) -> str:
    # Sharded like the images (images.image_storage_name); never served by a public URL.
    return f"{INPUTS_PREFIX}{token[:2]}/{token}.{extension}"


@dataclass(frozen=True)
class StoredReference:
    reference: Reference
    token: str
    name: str


def write_reference_files(references: tuple[Reference, ...]) -> list[StoredReference]:
    """Write each reference's file (blocking I/O: on a thread from an event loop). On a failure
    the files already written are deleted and the error raised."""
    stored: list[StoredReference] = []
    try:
        for reference in references:
            token = new_image_token()
            name = default_storage.save(
                input_storage_name(token, reference.extension), ContentFile(reference.data)
            )
            stored.append(StoredReference(reference, token, name))
    except BaseException:
        delete_reference_files(stored)
        raise
    return stored


def delete_reference_files(stored: list[StoredReference]) -> None:
    storage.delete_many(item.name for item in stored)


def record_references(generation: Generation, stored: list[StoredReference]) -> None:
    """The generation's InputImage rows, in the customer's order."""
    InputImage.objects.bulk_create(
        InputImage(
            generation=generation,
            account_id=generation.account_id,
            token=item.token,
            index=index,
            file=item.name,
            content_type=item.reference.content_type,
            width=item.reference.width,
            height=item.reference.height,
            bytes=len(item.reference.data),
            created_at=generation.created_at,
        )
        for index, item in enumerate(stored)
    )


def load_references(generation: Generation) -> tuple[Reference, ...]:
    """The reference images ``generation`` was asked with, read back from storage in order.
    ValueError if any is missing (it must not run without them)."""
    rows = list(InputImage.objects.filter(generation=generation).order_by("index"))
    expected = int(generation.params.get("references", 0))
    if len(rows) != expected:
        raise ValueError(f"{generation.public_id}: {len(rows)} of {expected} references kept")
    references = []
    for row in rows:
        with default_storage.open(row.file.name, "rb") as handle:
            data = handle.read()
        image_format = row.content_type.removeprefix("image/")
        references.append(Reference(data, image_format, row.width, row.height))
    return tuple(references)
