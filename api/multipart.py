"""OpenAI's multipart form of POST /v1/images/edits, as both official SDKs send it: the images
as files named ``image`` (one), ``image[]`` (a list, even of one) or ``image[0]``,
``image[1]``... (other clients), and every other field as text.

The form is parsed on a thread: Django's parser reads the spooled body and writes large files
to disk, blocking work the event loop must not do.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from django.http import HttpRequest
from django.http.multipartparser import MultiPartParserError

from generation.references import ImageSource

from .errors import ApiError, invalid

# Form values are text: these become the JSON types the strict schema expects. A value that
# does not convert stays text, so the schema names it ("expected an integer").
_INTEGERS = (
    "n", "output_compression", "seed", "partial_images", "max_layers",
    "sequential_image_generation_options[max_images]",
)  # fmt: skip
_NUMBERS = ("guidance_scale",)
_BOOLEANS = ("stream", "watermark", "layer_decomposition", "async")
_INDEXED = re.compile(r"^image\[(\d{1,3})\]$")


def _typed(name: str, value: str) -> Any:
    if name in _INTEGERS and re.fullmatch(r"-?\d{1,12}", value):
        return int(value)
    if name in _NUMBERS:
        try:
            return float(value)
        except ValueError:
            return value
    if name in _BOOLEANS and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _images(files: Any) -> list[ImageSource]:
    """The image files in the customer's order, under one of the three names."""
    names = [name for name in files if name != "mask"]
    plain = [n for n in names if n in ("image", "image[]")]
    indexed = sorted((int(m.group(1)), n) for n in names if (m := _INDEXED.match(n)))
    unknown = sorted(set(names) - set(plain) - {n for _, n in indexed})
    if unknown:
        raise invalid(
            f"Unexpected file '{unknown[0]}': send the images as 'image' (one) or 'image[]'.",
            param=unknown[0],
        )
    if len(plain) + bool(indexed) > 1:
        raise invalid(
            "Send the images under one name: 'image', 'image[]' or 'image[0]', 'image[1]'...",
            param="image",
        )
    if indexed:
        if [i for i, _ in indexed] != list(range(len(indexed))):
            raise invalid("'image[N]' files must be numbered 0, 1, 2... in order.", param="image")
        uploads = [(name, files[name]) for _, name in indexed]
    elif plain:
        name = plain[0]
        listed = files.getlist(name)
        uploads = [(name if len(listed) == 1 else f"image[{i}]", f) for i, f in enumerate(listed)]
    else:
        uploads = []
    return [ImageSource(param=param, data=upload.read()) for param, upload in uploads]


def _parse(request: HttpRequest) -> tuple[dict[str, Any], list[ImageSource]]:
    try:
        form, files = request.POST, request.FILES
    except MultiPartParserError:
        raise invalid(
            "We could not parse the multipart body of your request.", param=None
        ) from None
    fields: dict[str, Any] = {name: _typed(name, form[name]) for name in form}
    # A set's options, as form clients spell a nested field.
    nested = "sequential_image_generation_options[max_images]"
    if nested in fields:
        fields["sequential_image_generation_options"] = {"max_images": fields.pop(nested)}
    if "mask" in files:
        fields["mask"] = "file"  # refused by name (edit_spec): Seedream has no masks
    return fields, _images(files)


async def edit_form(request: HttpRequest) -> tuple[dict[str, Any], list[ImageSource]]:
    """The multipart edit's typed fields and its images, or an ApiError/Refusal."""
    if request.content_type != "multipart/form-data":
        raise ApiError(
            415,
            "The request body must be multipart/form-data (the SDKs' images.edit) or JSON.",
            code="unsupported_media_type",
        )
    return await asyncio.to_thread(_parse, request)
