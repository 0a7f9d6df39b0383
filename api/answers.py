"""Rendering a settled generation as the /v1 answer: its images as URLs or as base64 streamed
from storage, with OpenAI's envelope and ours (what was delivered and charged). The images
endpoints (api/views.py) and the job endpoints (api/jobs.py) answer the same body from here.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Generator
from contextlib import aclosing
from typing import Any

from django.http import HttpRequest, HttpResponseBase, JsonResponse, StreamingHttpResponse

from generation import services, storage
from generation.models import Generation, Image

from .refusals import stored_error

logger = logging.getLogger(__name__)


def base_url(request: HttpRequest) -> str:
    return f"{request.scheme}://{request.get_host()}"


def load_completed(generation: Generation) -> services.Completed:
    return services.Completed(generation, list(generation.images.all()))


async def render(
    request: HttpRequest,
    generation: Generation,
    completed: services.Completed,
    extra: dict[str, Any] | None = None,
) -> HttpResponseBase:
    """The answer of a settled generation: its images, or its stored error. ``extra``: fields
    added to a successful answer's envelope (a job's)."""
    response = await _rendered(request, generation, completed, extra or {})
    # Every answer says what it cost (an error: nothing), in a header a client can read
    # before (or without) parsing the body.
    response[CREDITS_CHARGED_HEADER] = str(generation.charged_credits)
    return response


CREDITS_CHARGED_HEADER = "x-credits-charged"


def succeeded(completed: services.Completed) -> bool:
    generation = completed.generation
    return generation.status == Generation.Status.SUCCEEDED and bool(completed.images)


async def _rendered(
    request: HttpRequest,
    generation: Generation,
    completed: services.Completed,
    extra: dict[str, Any],
) -> HttpResponseBase:
    if not succeeded(completed):
        return stored_error(generation).response()
    if generation.response_format == "b64_json":
        return b64_json_response(generation, completed.images, extra)
    data = url_items(request, completed.images)
    return JsonResponse({**extra, "data": data, **answer_fields(generation, completed.images)})


def url_items(request: HttpRequest, images: list[Image]) -> list[dict[str, Any]]:
    """A URL answer's ``data``: each image's hosted URL, and its extras."""
    return [
        {
            "url": services.image_url(image, base_url(request)),
            "revised_prompt": None,
            **item_extras(image),
        }
        for image in images
    ]


def item_extras(image: Image) -> dict[str, Any]:
    """What an answer's item carries beyond OpenAI's: a split's layer fields (z_index, and a
    layer's name, description and bounding_box), as the upstream gave them."""
    return dict(image.layer) if image.layer else {}


def _envelope(generation: Generation, images: list[Image]) -> dict[str, Any]:
    """Everything in a successful answer but its ``data``."""
    return {
        "created": int(generation.created_at.timestamp()),
        "id": generation.public_id,
        "model": generation.model,
        "size": generation.size,
        "images_requested": generation.n,  # a set's: its most (the model decides how many)
        "images_delivered": generation.images_delivered,
        "credits_charged": generation.charged_credits,
        "usage": usage(generation, images),
    }


def usage(generation: Generation, images: list[Image]) -> dict[str, Any]:
    """OpenAI's ``usage`` keys (Seedream reads no prompt tokens; its output tokens are each
    image's width x height / 256, as the upstream counts them), with what was charged."""
    output_tokens = sum(image.width * image.height // 256 for image in images)
    return {
        "input_tokens": 0,
        "input_tokens_details": {"image_tokens": 0, "text_tokens": 0},
        "output_tokens": output_tokens,
        "total_tokens": output_tokens,
        "generated_images": len(images),
        "input_images": int(generation.price_quote.get("references", 0)),
        "credits": generation.charged_credits,
    }


def answer_fields(generation: Generation, images: list[Image]) -> dict[str, Any]:
    """The envelope, with what was delivered in place of what was asked: ``output_format`` and
    ``size`` (when every image has the same; an image's own is in the gallery), and the
    ``background`` asked for, if one was."""
    fields = _envelope(generation, images)
    fields.pop("size", None)
    formats = {FORMATS.get(image.content_type, "") for image in images}
    if len(formats) == 1:
        fields["output_format"] = formats.pop()
    sizes = {f"{image.width}x{image.height}" for image in images}
    if len(sizes) == 1:
        fields["size"] = sizes.pop()
    if background := generation.params.get("background"):
        fields["background"] = background
    return fields


FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}


# Each step of a b64_json answer reads this much of an image: a multiple of 3, so each piece's
# base64 has no padding and the pieces join into the image's base64. 192 KiB read, 256 KiB sent.
B64_READ_BYTES = 3 * 64 * 1024
_B64_OPEN, _B64_CLOSE = b'{"b64_json":"', b'","revised_prompt":null}'


def b64_json_response(
    generation: Generation, images: list[Image], extra: dict[str, Any] | None = None
) -> StreamingHttpResponse:
    """The b64_json answer, streamed: each image read from storage and encoded a piece at a
    time as the client takes it, so an answer holds about 0.5 MB, not its images' base64 (ten
    4K photographs are 38 MB of it). Its exact length is known from the stored sizes, so it is
    sent with a Content-Length, as a built body would be."""
    head = b'{"data":['
    tail = b"]," + json.dumps({**answer_fields(generation, images), **(extra or {})}).encode()[1:]
    length = len(head) + len(tail) + max(len(images) - 1, 0)
    length += sum(
        len(_B64_OPEN) + _b64_length(image.bytes) + len(_b64_close(image)) for image in images
    )
    response = StreamingHttpResponse(
        _b64_json_body(generation, images, head, tail), content_type="application/json"
    )
    response["Content-Length"] = str(length)
    return response


def _b64_close(image: Image) -> bytes:
    """The end of an image's item: OpenAI's fields after b64_json, and ours."""
    extras = item_extras(image)
    if not extras:
        return _B64_CLOSE
    return _B64_CLOSE[:-1] + b"," + json.dumps(extras).encode()[1:]


def _b64_length(nbytes: int) -> int:
    return 4 * ((nbytes + 2) // 3)


async def _b64_json_body(
    generation: Generation, images: list[Image], head: bytes, tail: bytes
) -> AsyncIterator[bytes]:
    """The answer's pieces. An image that cannot be read while it is sent (storage failed, the
    file went or changed) cuts the connection: the status and length are sent already, so the
    client sees an incomplete body, never a wrong one. The money stays as settled: the images
    were stored when they were charged; they are in the gallery, and a retry with the same
    Idempotency-Key answers them again."""
    yield head
    for position, image in enumerate(images):
        yield (b"," if position else b"") + _B64_OPEN
        async with aclosing(image_base64(generation, image)) as pieces:
            async for piece in pieces:
                yield piece
        yield _b64_close(image)
    yield tail


async def image_base64(generation: Generation, image: Image) -> AsyncGenerator[bytes]:
    """An image's base64, read from storage a piece at a time (see ``_b64_json_body`` for what
    a failed read does). Iterate it in ``aclosing``: a client that leaves half way then lets go
    of the file at once, not when the generator is collected."""
    pieces = services.read_image(image, B64_READ_BYTES)
    try:
        read = 0
        while (piece := await _next_piece(pieces)) is not None:
            read += len(piece)
            if read > image.bytes:
                break
            yield base64.b64encode(piece)
        if read != image.bytes:
            raise OSError(f"{image.file.name} is {read} bytes, not {image.bytes}")
    except Exception:
        logger.exception(
            "generation %s: image %s could not be read while its answer was sent; the "
            "connection is cut",
            generation.public_id,
            image.token,
        )
        raise
    finally:
        pieces.close()


async def _next_piece(pieces: Generator[bytes]) -> bytes | None:
    if storage.is_remote():
        # A bucket's first read fetches the object: off the event loop.
        return await asyncio.to_thread(next, pieces, None)
    # A local file's piece is read faster than a thread would take to start reading it.
    return next(pieces, None)
