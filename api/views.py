"""The /v1 surface, OpenAI-compatible, and the hosted images.

Each /v1 view is async and decorated with ``api_endpoint`` (api/auth.py), which checks the
method and the body's size, authenticates the key and counts the request against its limits
before the view runs. A generation takes the domain's one pipeline (generation/services/
pipeline.py): admit, reserve, run, settle; this module adds what only HTTP has: the body's
parsing, the process's memory for the images (generation/memory.py), the Idempotency-Key's
replay, a client that hangs up (the work goes on, shielded), and rendering the answer as a URL
or as base64, streamed from storage, or (``stream: true``) as Server-Sent Events
(api/streaming.py).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator
from contextlib import aclosing
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
from django.utils.http import http_date
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

from billing import services as billing
from generation import catalog, inflight, memory, services, storage, thumbnails
from generation.models import Generation, Image
from generation.references import HostedImages, Reference
from generation.refusals import Refusal
from server.steps import Steps

from . import streaming
from .auth import ApiRequest, api_endpoint
from .errors import ApiError, error_response, invalid
from .multipart import edit_form
from .refusals import api_error, stored_error
from .schemas import ImagesRequest, edit_request, generation_request

logger = logging.getLogger(__name__)

_IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")


def _base_url(request: HttpRequest) -> str:
    return f"{request.scheme}://{request.get_host()}"


def _read_json(request: HttpRequest) -> Any:
    content_type = request.content_type or ""
    if content_type != "application/json":
        raise ApiError(
            415,
            "The request body must be JSON, sent with 'Content-Type: application/json'.",
            code="unsupported_media_type",
        )
    try:
        return json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise invalid(
            "We could not parse the JSON body of your request.", param=None, code="invalid_json"
        ) from None


def lifecycle_headers(model: catalog.ModelInfo, request: HttpRequest) -> dict[str, str]:
    """A deprecated model's answers say so (RFC 9745 ``Deprecation``, RFC 8594 ``Sunset``) and
    link to the docs and to the model to move to; an active model's carry nothing extra."""
    if model.lifecycle() != catalog.DEPRECATED:
        return {}
    base_url = _base_url(request)
    since = model.deprecated or model.sunset
    headers = {"Deprecation": f"@{catalog.day_start(since)}" if since else "?1"}
    links = [f'<{base_url}/docs/#models>; rel="deprecation"']
    if model.sunset:
        headers["Sunset"] = http_date(catalog.day_start(model.sunset))
    if model.replacement:
        links.append(f'<{base_url}/v1/models/{model.replacement}>; rel="successor-version"')
    headers["Link"] = ", ".join(links)
    return headers


def request_fingerprint(body: bytes) -> str:
    """A hash of the request's meaning: the same JSON with other spacing or key order matches."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = body.decode("utf-8", "replace")
    return hashlib.sha256(canonical.encode()).hexdigest()


def _hosted_images(request: ApiRequest) -> HostedImages:
    """A reference URL may name one of the key's account's own hosted images, linked under
    this request's base URL (or IMAGE_BASE_URL): it is read from storage, not fetched."""
    return HostedImages(request.api_key.user_id, _base_url(request), request.steps)


async def _edit_request(request: ApiRequest) -> ImagesRequest:
    """An edit, from its multipart form (the SDKs' images.edit) or its JSON body."""
    if (request.content_type or "") == "application/json":
        return await edit_request(_read_json(request), hosted=_hosted_images(request))
    fields, files = await edit_form(request)
    return await edit_request(fields, files)


async def _quoted_request(request: ApiRequest) -> ImagesRequest:
    """What the quote prices: an edit (multipart, or JSON with OpenAI's ``images``), else a
    generation; a JSON body is read once."""
    if (request.content_type or "") == "multipart/form-data":
        return await _edit_request(request)
    payload = _read_json(request)
    if isinstance(payload, dict) and "images" in payload:
        return await edit_request(payload, hosted=_hosted_images(request))
    return await generation_request(payload, _hosted_images(request))


async def _generation_request(request: ApiRequest) -> ImagesRequest:
    return await generation_request(_read_json(request), _hosted_images(request))


@api_endpoint("POST", admit=False)
async def images_generations(request: ApiRequest) -> HttpResponseBase:
    """Images from a prompt (and, with Seedream's ``image``, from reference images)."""
    return await _images(request, _generation_request, streaming.GENERATION)


@api_endpoint("POST", admit=False)
async def images_edits(request: ApiRequest) -> HttpResponseBase:
    """Images from reference images and a prompt: OpenAI's images.edit, multipart or JSON."""
    return await _images(request, _edit_request, streaming.EDIT)


async def _images(
    request: ApiRequest,
    parse: Callable[[ApiRequest], Awaitable[ImagesRequest]],
    kind: str,
) -> HttpResponseBase:
    """``kind``: the events' name (api/streaming.py), should the request ask for them."""
    started = time.monotonic()
    steps, api_key = request.steps, request.api_key
    idempotency_key = request.headers.get("Idempotency-Key")
    try:
        if idempotency_key is not None and not _IDEMPOTENCY_KEY_RE.match(idempotency_key):
            raise invalid(
                "The Idempotency-Key header must be 1 to 255 printable characters.",
                param="Idempotency-Key",
            )
        asked = await parse(request)
    except (ApiError, Refusal):
        # A request that cannot run still counts as a request (not as work).
        admission = await services.admit(steps, api_key.user, api_key)
        request.answer_headers.update(admission.headers)
        raise
    spec = asked.spec
    request.answer_headers.update(lifecycle_headers(spec.model, request))
    # Before anything is counted, charged or sent upstream: room in this process's memory for
    # the images (503 Busy if there is none). Released once they are stored.
    image_memory = memory.reserve(spec)
    opening = asyncio.ensure_future(
        services.open_generation(
            steps,
            user=api_key.user,
            api_key=api_key,
            spec=spec,
            idempotency_key=idempotency_key,
            request_hash=request_fingerprint(request.body) if idempotency_key else "",
            rate_headers=request.answer_headers,
        )
    )
    # Shielded, from the reservation on: a client that hangs up does not stop the work, so what
    # the upstream delivers is stored, charged and kept in the customer's gallery, and nothing
    # stays reserved (not even when it hangs up while its credits are being reserved).
    try:
        opened = await asyncio.shield(opening)
    except services.IdempotentReplay as replay:
        image_memory.release()
        return await _replay(request, replay.generation, asked, kind)
    except asyncio.CancelledError:
        steps.detach()
        opening.add_done_callback(functools.partial(_run_once_opened, steps, started, image_memory))
        inflight.track_opening(opening)
        raise
    except BaseException:
        image_memory.release()
        raise
    work = _start(steps, opened, started, image_memory, spec.references)
    if asked.stream:
        # Everything that can be refused was (as JSON, with its status): the answer starts now
        # and tells the outcome as events. The work outlives this view from here on, and may
        # outlive the request (a client that hangs up, even before the first byte, when
        # nothing would tell it): its steps leave the request's thread now.
        steps.detach()
        return _event_stream(request, work, asked, kind)
    try:
        completed = await asyncio.shield(work)
    except asyncio.CancelledError:
        steps.detach()
        raise
    return await _render(request, completed.generation, completed)


def _start(
    steps: Steps,
    opened: Generation,
    started: float,
    image_memory: memory.Reservation,
    references: tuple[Reference, ...] | None = None,
) -> asyncio.Future[services.Completed]:
    work = asyncio.ensure_future(
        services.run_generation(
            steps, opened, started=started, memory=image_memory, references=references
        )
    )
    inflight.track(opened.pk, work)
    return work


def _run_once_opened(
    steps: Steps,
    started: float,
    image_memory: memory.Reservation,
    opening: asyncio.Future[Generation],
) -> None:
    """The reservation its client hung up during: once made, the generation runs as any other
    whose client left (refused, there is nothing to run, and its image memory goes back)."""
    if not opening.cancelled() and opening.exception() is None:
        _start(steps, opening.result(), started, image_memory)
    else:
        image_memory.release()


async def _replay(
    request: ApiRequest, generation: Generation, asked: ImagesRequest, kind: str
) -> HttpResponseBase:
    """Answer a repeated Idempotency-Key: the stored result, after waiting for a running one.
    A streamed request's repeat (the same body, so streamed too) has its images as events; a
    failure, known before the first byte, is the JSON error either way."""
    deadline = time.monotonic() + settings.IDEMPOTENCY_WAIT_SECONDS
    while not generation.is_finished:
        if time.monotonic() >= deadline:
            return error_response(
                409,
                "A request with this Idempotency-Key is still running; retry shortly.",
                code="idempotency_request_in_progress",
                headers={"Retry-After": "1"},
            )
        await asyncio.sleep(0.25)
        generation = await request.steps.run(Generation.objects.get, pk=generation.pk)
    completed = await request.steps.run(_load_completed, generation)
    response: HttpResponseBase
    if asked.stream and _succeeded(completed):
        finished: asyncio.Future[services.Completed] = asyncio.get_running_loop().create_future()
        finished.set_result(completed)
        response = _event_stream(request, finished, asked, kind)
    else:
        response = await _render(request, generation, completed)
    response["Idempotent-Replayed"] = "true"
    return response


def _load_completed(generation: Generation) -> services.Completed:
    return services.Completed(generation, list(generation.images.all()))


async def _render(
    request: HttpRequest, generation: Generation, completed: services.Completed
) -> HttpResponseBase:
    response = await _rendered(request, generation, completed)
    # Every answer says what it cost (an error: nothing), in a header a client can read
    # before (or without) parsing the body.
    response[CREDITS_CHARGED_HEADER] = str(generation.charged_credits)
    return response


CREDITS_CHARGED_HEADER = "x-credits-charged"


def _succeeded(completed: services.Completed) -> bool:
    generation = completed.generation
    return generation.status == Generation.Status.SUCCEEDED and bool(completed.images)


async def _rendered(
    request: HttpRequest, generation: Generation, completed: services.Completed
) -> HttpResponseBase:
    if not _succeeded(completed):
        return stored_error(generation).response()
    if generation.response_format == "b64_json":
        return _b64_json_response(generation, completed.images)
    data = [
        {
            "url": services.image_url(image, _base_url(request)),
            "revised_prompt": None,
            **_item_extras(image),
        }
        for image in completed.images
    ]
    return JsonResponse({"data": data, **_answer_fields(generation, completed.images)})


def _item_extras(image: Image) -> dict[str, Any]:
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
        "usage": _usage(generation, images),
    }


def _usage(generation: Generation, images: list[Image]) -> dict[str, Any]:
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


def _answer_fields(generation: Generation, images: list[Image]) -> dict[str, Any]:
    """The envelope, with what was delivered in place of what was asked: ``output_format`` and
    ``size`` (when every image has the same; an image's own is in the gallery), and the
    ``background`` asked for, if one was."""
    fields = _envelope(generation, images)
    fields.pop("size", None)
    formats = {_FORMATS.get(image.content_type, "") for image in images}
    if len(formats) == 1:
        fields["output_format"] = formats.pop()
    sizes = {f"{image.width}x{image.height}" for image in images}
    if len(sizes) == 1:
        fields["size"] = sizes.pop()
    if background := generation.params.get("background"):
        fields["background"] = background
    return fields


_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}


# Each step of a b64_json answer reads this much of an image: a multiple of 3, so each piece's
# base64 has no padding and the pieces join into the image's base64. 192 KiB read, 256 KiB sent.
_B64_READ_BYTES = 3 * 64 * 1024
_B64_OPEN, _B64_CLOSE = b'{"b64_json":"', b'","revised_prompt":null}'


def _b64_json_response(generation: Generation, images: list[Image]) -> StreamingHttpResponse:
    """The b64_json answer, streamed: each image read from storage and encoded a piece at a
    time as the client takes it, so an answer holds about 0.5 MB, not its images' base64 (ten
    4K photographs are 38 MB of it). Its exact length is known from the stored sizes, so it is
    sent with a Content-Length, as a built body would be."""
    head = b'{"data":['
    tail = b"]," + json.dumps(_answer_fields(generation, images)).encode()[1:]
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
    extras = _item_extras(image)
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
        async with aclosing(_image_base64(generation, image)) as pieces:
            async for piece in pieces:
                yield piece
        yield _b64_close(image)
    yield tail


async def _image_base64(generation: Generation, image: Image) -> AsyncGenerator[bytes]:
    """An image's base64, read from storage a piece at a time (see ``_b64_json_body`` for what
    a failed read does). Iterate it in ``aclosing``: a client that leaves half way then lets go
    of the file at once, not when the generator is collected."""
    pieces = services.read_image(image, _B64_READ_BYTES)
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


def _event_stream(
    request: HttpRequest,
    work: asyncio.Future[services.Completed],
    asked: ImagesRequest,
    kind: str,
) -> StreamingHttpResponse:
    """The answer of ``stream: true`` (api/streaming.py): what it cost cannot be known when it
    starts, so it has no x-credits-charged header; each event says it instead."""
    return streaming.event_stream(_events(work, asked, kind, _base_url(request)))


async def _events(
    work: asyncio.Future[services.Completed], asked: ImagesRequest, kind: str, base_url: str
) -> AsyncIterator[bytes]:
    # A client that hangs up cancels this (not the work: it is shielded and tracked).
    async for keep_alive in streaming.keep_alive_until(work):
        yield keep_alive
    outcome = _outcome(work)
    if isinstance(outcome, ApiError):
        yield streaming.error_event(outcome)
        return
    generation, images = outcome.generation, outcome.images
    for index, image in enumerate(images):
        fields = _event_fields(generation, images, index, asked, base_url)
        async with (
            aclosing(_image_base64(generation, image)) as b64_json,
            aclosing(streaming.completed_event(kind, fields, b64_json)) as event,
        ):
            async for piece in event:
                yield piece
    yield streaming.DONE


def _outcome(work: asyncio.Future[services.Completed]) -> services.Completed | ApiError:
    """The finished work's images, or the error the stream ends with: the generation's stored
    one, or (the work itself failed: it will be settled by the reconciler, uncharged) the 500
    an unstreamed request would have answered."""
    failure = None if work.cancelled() else work.exception()  # cancelled: a shutdown's drain
    if isinstance(failure, ApiError):
        return failure
    if isinstance(failure, Refusal):
        return api_error(failure)
    if work.cancelled() or failure is not None:
        logger.error(
            "a streamed generation's work failed; its stream ends with an error", exc_info=failure
        )
        return ApiError(
            500,
            "The server had an error while processing your request. You were not charged for "
            "anything that was not delivered.",
            type="server_error",
        )
    completed = work.result()
    if not _succeeded(completed):
        return stored_error(completed.generation)
    return completed


def _event_fields(
    generation: Generation, images: list[Image], index: int, asked: ImagesRequest, base_url: str
) -> dict[str, Any]:
    """A completed event's fields but ``type`` and ``b64_json``: OpenAI's, each image's own
    where it has one and the settings asked for (``auto`` for none), then ours. Every event
    carries the whole request's ``usage`` and ``credits_charged``, settled before the first."""
    image = images[index]
    return {
        "created_at": int(time.time()),
        "background": generation.params.get("background") or "auto",
        "output_format": _FORMATS.get(image.content_type, ""),
        "quality": asked.quality or "auto",
        "size": f"{image.width}x{image.height}",
        "usage": _usage(generation, images),
        "url": services.image_url(image, base_url),
        "index": index,
        "id": generation.public_id,
        "model": generation.model,
        "images_requested": generation.n,
        "images_delivered": generation.images_delivered,
        "credits_charged": generation.charged_credits,
        **_item_extras(image),  # a split's layer fields, as in a JSON answer
    }


@api_endpoint("POST")
async def images_quote(request: ApiRequest) -> HttpResponse:
    """What a generation or an edit with this body would hold (the most it can cost), image by
    image and reference by reference, without charging or calling upstream. The body is parsed
    and refused exactly as ``images_generations`` (or, multipart or with ``images``,
    ``images_edits``) does; the request counts against the requests-per-minute limit (not
    images, no concurrency slot), as any other /v1 call."""
    spec = (await _quoted_request(request)).spec
    request.answer_headers.update(lifecycle_headers(spec.model, request))
    priced = await request.steps.run(services.quote, spec)
    images = [
        {
            "size": spec.size.value,
            "max_pixels": spec.size.most_pixels,
            "tier": priced.tier.name,
            "credits": priced.per_image_credits,
        }
        for _ in range(priced.images)
    ]
    return JsonResponse(
        {
            "object": "image.quote",
            "model": spec.model.id,
            "credits": priced.held_credits,
            "usd": billing.format_usd(priced.held_credits),
            "images": images,
            "inputs": [{"credits": credits} for credits in priced.reference_credits()],
        }
    )


@api_endpoint("GET")
async def models_list(request: ApiRequest) -> HttpResponse:
    rules = await request.steps.run(billing.price_rules)
    data = [services.model_object(model, rules) for model in catalog.all_models()]
    return JsonResponse({"object": "list", "data": data})


@api_endpoint("GET")
async def model_detail(request: ApiRequest, model_id: str) -> HttpResponse:
    rules = await request.steps.run(billing.price_rules)
    model = catalog.get_model(model_id)
    if model is None:
        raise ApiError(
            404,
            f"The model '{model_id}' does not exist or you do not have access to it.",
            code="model_not_found",
            param="model",
        )
    request.answer_headers.update(lifecycle_headers(model, request))
    return JsonResponse(services.model_object(model, rules))


@api_endpoint("GET")
async def credits(request: ApiRequest) -> HttpResponse:
    balance = await request.steps.run(billing.balance_credits, request.api_key.user)
    return JsonResponse(
        {
            "object": "credit_balance",
            "balance": balance,
            "balance_usd": billing.format_usd(balance),
            "currency": "usd",
            "credits_per_usd": settings.CREDITS_PER_USD,
        }
    )


@csrf_exempt
async def not_found(request: HttpRequest, path: str = "") -> HttpResponse:
    return error_response(
        404, f"Unknown request URL: {request.method} {request.path}.", code="unknown_url"
    )


_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,32}$")
_CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


def hosted_image(request: HttpRequest, token: str, extension: str) -> HttpResponseBase:
    """An image by its unguessable token. No database: the token names the file."""
    if not _TOKEN_RE.match(token) or extension not in _CONTENT_TYPES:
        raise Http404
    name = services.image_storage_name(token, extension)
    if storage.is_remote():
        # The bucket serves the bytes, and says 404 for a missing object (generation/storage.py).
        return storage.redirect(name)
    try:
        handle = default_storage.open(name, "rb")
    except FileNotFoundError:
        raise Http404 from None
    response = FileResponse(handle, content_type=_CONTENT_TYPES[extension])
    response["Cache-Control"] = storage.image_cache_control()
    return _no_sniffing(response)


def hosted_thumbnail(request: HttpRequest, token: str) -> HttpResponseBase:
    """An image's gallery thumbnail, made on the first request (see generation/thumbnails.py)."""
    if not _TOKEN_RE.match(token):
        raise Http404
    name = thumbnails.thumbnail_for(token)
    if name is None:
        raise Http404
    if storage.is_remote():
        return storage.redirect(name)
    try:
        handle = default_storage.open(name, "rb")
    except FileNotFoundError:  # deleted this very moment
        raise Http404 from None
    response = FileResponse(handle, content_type="image/webp")
    response["Cache-Control"] = storage.image_cache_control()
    return _no_sniffing(response)


def _no_sniffing(response: FileResponse) -> FileResponse:
    # These paths skip the browser middleware (server/web_only.py) and with it the security
    # middleware's header: a browser must take an image for the type we say, never for a page.
    response["X-Content-Type-Options"] = "nosniff"
    return response


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/v1/"):
        return error_response(404, f"Unknown request URL: {request.path}.", code="unknown_url")
    return defaults.page_not_found(request, exception or Http404())


def handler500(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/v1/"):
        return error_response(
            500,
            "The server had an error while processing your request. You were not charged for "
            "anything that was not delivered.",
            type="server_error",
        )
    return defaults.server_error(request)
