"""The playground's reference images: files the customer chooses or drops, and pictures picked
from their own gallery, each checked by the domain's rules (generation/references.py), so the
playground takes and refuses exactly what /v1 does, in the same words.

What a model takes is shown next to the input, from the catalog: how many, which formats, how
large. The checks themselves are the domain's; nothing here decides what is allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from django.core.files.uploadedfile import UploadedFile

from generation import catalog, services
from generation.models import Image
from generation.references import Reference, editing_models, read_hosted_image, split_formats

# How many of the customer's newest gallery images the form offers as references.
GALLERY_PICKS = 8
# A file's name in a message is cut to this (it names the file; it is not a place for essays).
NAME_CHARS = 80
_MB = 1024 * 1024
_FORMAT_NAMES = {
    "jpeg": "JPEG", "png": "PNG", "webp": "WebP", "bmp": "BMP", "tiff": "TIFF", "gif": "GIF",
    "heic": "HEIC", "heif": "HEIF",
}  # fmt: skip
_EXTENSIONS = {"jpeg": (".jpg", ".jpeg"), "tiff": (".tif", ".tiff")}


def takes_references(model: catalog.ModelInfo) -> bool:
    return model.max_references > 0 and "edit" in model.modes


def accept(model: catalog.ModelInfo) -> str:
    """The file input's ``accept``: the model's formats as media types and file extensions (a
    hint to the browser's file picker; the bytes are what is checked)."""
    parts: list[str] = []
    for image_format in model.reference_formats:
        parts.append(f"image/{image_format}")
        parts.extend(_EXTENSIONS.get(image_format, (f".{image_format}",)))
    return ",".join(parts)


def _either(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


@dataclass(frozen=True)
class Limits:
    """What ``model`` takes, as the form shows it (and its script checks before sending)."""

    model: catalog.ModelInfo

    @property
    def max_count(self) -> int:
        return self.model.max_references

    @property
    def max_mb(self) -> str:
        return f"{self.model.reference_max_bytes / _MB:g}"

    @property
    def megapixels(self) -> str:
        return f"{self.model.reference_max_pixels / 1_000_000:g}"

    @property
    def formats(self) -> str:
        return _either([_FORMAT_NAMES.get(f, f.upper()) for f in self.model.reference_formats])

    @property
    def accept(self) -> str:
        return accept(self.model)

    def __str__(self) -> str:
        count = "1 image" if self.max_count == 1 else f"{self.max_count} images"
        return (
            f"{self.model.name} takes up to {count}: {self.formats}, at most {self.max_mb} MB "
            f"and {self.megapixels} megapixels each."
        )

    @property
    def for_split(self) -> str:
        """The same, for a layer split: one picture, in the formats a split takes."""
        formats = _either([_FORMAT_NAMES.get(f, f.upper()) for f in split_formats(self.model)])
        return (
            f"A split takes one image: {formats}, at most {self.max_mb} MB and "
            f"{self.megapixels} megapixels."
        )


def none_taken(model: catalog.ModelInfo) -> str:
    """What the form says where the model takes no reference images."""
    able = _either([m.name for m in editing_models()])
    return f"{model.name} does not take reference images. Models that do: {able}."


def file_param(upload: UploadedFile) -> str:
    """How a message names an uploaded file: by its name, as the customer knows it."""
    name = str(upload.name or "the file")
    return name if len(name) <= NAME_CHARS else f"{name[: NAME_CHARS - 1]}…"


def gallery_param(position: int) -> str:
    return f"gallery image {position}"


def read_upload(upload: UploadedFile) -> bytes:
    upload.seek(0)
    return upload.read()


def read_gallery_image(image: Image) -> bytes:
    """A gallery image's bytes (FileNotFoundError once retention has deleted its file), read as
    /v1 reads one named by its URL (generation/references.py)."""
    return read_hosted_image(image.file.name)


# Billing prices reference images by their number alone (generation/services/reserve.py,
# ``_priced_as``): the live price needs only how many are chosen, since chosen files cannot
# travel with the quote's GET. These stand in for them there and nowhere else.
_COUNTED = Reference(data=b"", image_format="png", width=0, height=0)


def counted(count: int) -> tuple[Reference, ...]:
    """``count`` stand-ins for the quote, which reads only how many there are."""
    return (_COUNTED,) * count


def priced_with(spec: services.GenerationSpec, count: int) -> services.GenerationSpec:
    """``spec`` carrying ``count`` stand-ins, to be priced. Not ``with_references``: that
    checks the pictures themselves (a split's must be 512x512), and these are not pictures;
    the form checks the real ones when it is sent."""
    return replace(spec, references=counted(count))
