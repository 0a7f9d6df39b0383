"""A layer split in the gallery: its stack (the base, then each layer in z order with its name,
description and bounding box) and the zip of its files with a JSON manifest.

The boxes are drawn on the page as SVG rectangles over the base: the Content-Security-Policy
allows no inline styles, and an SVG element's x/y/width/height are attributes, not styles.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from dataclasses import dataclass
from typing import IO, Any

from django.utils.text import slugify

from generation import services
from generation.models import Generation, Image

# The normalized box is per mille of the base's width and height.
PER_MILLE = 1000
# The boxes and the stack's numbers take one of this many colours (app.css, .box-c0...), by
# z_index, so a layer's box and its line in the list match.
BOX_COLOURS = 6
# Copied into the zip this much at a time: memory holds one piece of one file, not the file.
_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Box:
    """A layer's place on the base, in the base's pixels (the overlay's user units), from the
    normalized box: right even if the base and the absolute box disagree on its size."""

    x: int
    y: int
    width: int
    height: int


def _number(value: Any) -> int:
    try:
        return round(float(value))
    except (TypeError, ValueError, OverflowError):
        return 0


def box_on(bounding_box: Any, base_width: int, base_height: int) -> Box | None:
    """``bounding_box`` (as the upstream gave it) on a base of that size; None without a
    normalized box. Values outside the base are brought back to its edges."""
    normalized = bounding_box.get("normalized") if isinstance(bounding_box, dict) else None
    if not (isinstance(normalized, list) and len(normalized) == 4):
        return None
    left, top, right, bottom = (min(max(_number(v), 0), PER_MILLE) for v in normalized)
    right, bottom = max(right, left), max(bottom, top)
    return Box(
        x=round(left * base_width / PER_MILLE),
        y=round(top * base_height / PER_MILLE),
        width=round((right - left) * base_width / PER_MILLE),
        height=round((bottom - top) * base_height / PER_MILLE),
    )


def absolute_box(layer: Image) -> list[int]:
    """The layer's box in the base's pixels as the upstream gave it ([] without one)."""
    box = (layer.layer or {}).get("bounding_box")
    absolute = box.get("absolute") if isinstance(box, dict) else None
    if not (isinstance(absolute, list) and len(absolute) == 4):
        return []
    return [_number(v) for v in absolute]


@dataclass(frozen=True)
class Layer:
    image: Image
    z_index: int
    name: str
    description: str
    box: Box | None
    absolute: list[int]

    @property
    def colour(self) -> int:
        return self.z_index % BOX_COLOURS


@dataclass(frozen=True)
class Stack:
    """A split's images still there: the base (None if the customer deleted it) and the
    layers, bottom to top."""

    base: Image | None
    layers: list[Layer]

    @property
    def width(self) -> int:
        return self.base.width if self.base else 0

    @property
    def height(self) -> int:
        return self.base.height if self.base else 0

    @property
    def label_size(self) -> int:
        # The boxes' numbers, in the base's pixels: a 24th of its longer side whatever its size,
        # so they read the same on a 1K and a 4K base.
        return max(12, round(max(self.width, self.height) / 24))

    @property
    def label_inset(self) -> int:
        return round(self.label_size / 3)

    @property
    def boxed(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.box is not None]


def z_index_of(image: Image) -> int:
    return _number((image.layer or {}).get("z_index", 0))


def stack_of(images: list[Image]) -> Stack:
    """The stack of a split's ``images`` (any order)."""
    ordered = sorted(images, key=lambda image: (z_index_of(image), image.index))
    base = next((image for image in ordered if z_index_of(image) == 0), None)
    width, height = (base.width, base.height) if base else (0, 0)
    layers = []
    for image in ordered:
        if image is base:
            continue
        info = image.layer or {}
        layers.append(
            Layer(
                image=image,
                z_index=z_index_of(image),
                name=str(info.get("name") or ""),
                description=str(info.get("description") or ""),
                box=box_on(info.get("bounding_box"), width, height),
                absolute=absolute_box(image),
            )
        )
    return Stack(base, layers)


def _extension(image: Image) -> str:
    return image.file.name.rsplit(".", 1)[-1]


def _format(image: Image) -> str:
    # "image/jpeg" -> "jpeg": the API's output_format words.
    return image.content_type.split("/", 1)[-1]


def file_name(image: Image) -> str:
    """Its name in the zip: the z_index first, so the files sort bottom to top."""
    z_index = z_index_of(image)
    if z_index == 0:
        return f"{z_index:02d}-base.{_extension(image)}"
    name = slugify((image.layer or {}).get("name") or "")[:60] or "layer"
    return f"{z_index:02d}-{name}.{_extension(image)}"


def manifest(generation: Generation, stack: Stack) -> dict[str, Any]:
    base = stack.base
    return {
        "generation": generation.public_id,
        "model": generation.model,
        # Unix seconds, as the API's answer gives its "created".
        "created": int(generation.created_at.timestamp()),
        "base": None
        if base is None
        else {
            "file": file_name(base),
            "width": base.width,
            "height": base.height,
            "format": _format(base),
        },
        "layers": [
            {
                "file": file_name(layer.image),
                "z_index": layer.z_index,
                "name": layer.name,
                "description": layer.description,
                "bounding_box": (layer.image.layer or {}).get("bounding_box"),
                "width": layer.image.width,
                "height": layer.image.height,
            }
            for layer in stack.layers
        ],
    }


def write_zip(generation: Generation, stack: Stack, out: IO[bytes]) -> None:
    """The split's files and manifest.json, written to ``out``, each file read from storage one
    piece at a time (FileNotFoundError when one is missing).

    The pictures are stored as they are (JPEG, PNG and WebP are compressed already: deflating
    them again costs time and saves nothing); the manifest is deflated."""
    images = ([stack.base] if stack.base else []) + [layer.image for layer in stack.layers]
    with zipfile.ZipFile(out, "w") as archive:
        for image in images:
            info = zipfile.ZipInfo(file_name(image), image.created_at.timetuple()[:6])
            info.compress_type = zipfile.ZIP_STORED
            with archive.open(info, "w") as target:
                for piece in services.read_image(image, _CHUNK_BYTES):
                    target.write(piece)
        archive.writestr(
            "manifest.json",
            json.dumps(manifest(generation, stack), indent=2, ensure_ascii=False) + "\n",
            compress_type=zipfile.ZIP_DEFLATED,
        )


def spooled_zip(generation: Generation, stack: Stack, memory_bytes: int) -> IO[bytes]:
    """The zip (``write_zip``) in a file kept in memory up to ``memory_bytes``, then on disk,
    rewound and open: the caller closes it (a FileResponse does, once it is sent)."""
    # Not a context manager: the open file is what is returned.
    built = tempfile.SpooledTemporaryFile(max_size=memory_bytes)  # noqa: SIM115
    try:
        write_zip(generation, stack, built)
    except BaseException:
        built.close()
        raise
    built.seek(0)
    return built
