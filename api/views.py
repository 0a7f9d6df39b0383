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
import dataclasses
import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
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
from generation.references import HostedImages, ImageSource, Reference
from generation.refusals import Refusal
from server.steps import Steps

from . import answers, jobs, streaming
from .auth import ApiRequest, api_endpoint
from .errors import ApiError, error_response, invalid
from .multipart import edit_form
from .refusals import api_error, stored_error
from .schemas import ImagesRequest, edit_request, generation_request

logger = logging.getLogger(__name__)

_IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")


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
    base_url = answers.base_url(request)
    since = model.deprecated or model.sunset
    headers = {"Deprecation": f"@{catalog.day_start(since)}" if since else "?1"}
    links = [f'<{base_url}/docs/#models>; rel="deprecation"']
    if model.sunset:
        headers["Sunset"] = http_date(catalog.day_start(model.sunset))
    if model.replacement:
        links.append(f'<{base_url}/v1/models/{model.replacement}>; rel="successor-version"')
    headers["Link"] = ", ".join(links)
    return headers


# Fields that say how to answer, not what to make: a repeat that differs only in them is the same
# request (a client that lost a synchronous answer asks again for it as a job).
_HOW_TO_ANSWER = ("async",)


def request_fingerprint(body: bytes) -> str:
    """A hash of the request's meaning: the same JSON with other spacing or key order matches."""
    try:
        payload = json.loads(body)
    except ValueError:
        return _digest(body.decode("utf-8", "replace"))
    if isinstance(payload, dict):
        payload = {k: v for k, v in payload.items() if k not in _HOW_TO_ANSWER}
    return _digest(json.dumps(payload, sort_keys=True, separators=(",", ":")))


def form_fingerprint(fields: dict[str, Any], files: list[ImageSource]) -> str:
    """A multipart edit's meaning: its typed fields and each image's hash, in order. Its bytes
    cannot be compared: each request has its own random boundary."""
    meaning = {
        "fields": {k: v for k, v in fields.items() if k not in _HOW_TO_ANSWER},
        "images": [hashlib.sha256(f.data or (f.text or "").encode()).hexdigest() for f in files],
    }
    return _digest(json.dumps(meaning, sort_keys=True, separators=(",", ":"), default=str))


def _digest(canonical: str) -> str:
    return hashlib.sha256(canonical.encode()).hexdigest()


def _hosted_images(request: ApiRequest) -> HostedImages:
    """A reference URL may name one of the key's account's own hosted images, linked under
    this request's base URL (or IMAGE_BASE_URL): it is read from storage, not fetched."""
    return HostedImages(request.api_key.account_id, answers.base_url(request), request.steps)


async def _edit_request(request: ApiRequest) -> ImagesRequest:
    """An edit, from its multipart form (the SDKs' images.edit) or its JSON body."""
    if (request.content_type or "") == "application/json":
        return await edit_request(_read_json(request), hosted=_hosted_images(request))
    fields, files = await edit_form(request)
    asked = await edit_request(fields, files)
    return dataclasses.replace(asked, fingerprint=form_fingerprint(fields, files))


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


@api_endpoint("GET", "POST", admit=False)
async def images_generations(request: ApiRequest) -> HttpResponseBase:
    """POST: images from a prompt (and, with Seedream's ``image``, from reference images).
    GET: the account's generations as a list of jobs (api/jobs.py)."""
    if request.method == "GET":
        admission = await services.admit(request.steps, request.api_key.account, request.api_key)
        request.answer_headers.update(admission.headers)
        return await jobs.list_generations(request)
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
        respond_async = asked.respond_async or jobs.prefers_async(request)
        if respond_async and asked.stream:
            raise invalid(
                "A request is answered either as a stream or as a job (Prefer: "
                "respond-async, or 'async': true), not both.",
                param="stream",
            )
    except (ApiError, Refusal):
        # A request that cannot run still counts as a request (not as work).
        admission = await services.admit(steps, api_key.account, api_key)
        request.answer_headers.update(admission.headers)
        raise
    spec = asked.spec
    request.answer_headers.update(lifecycle_headers(spec.model, request))
    # A multipart body has been read as a form by now (and its bytes differ by boundary).
    request_hash = (
        (asked.fingerprint or request_fingerprint(request.body)) if idempotency_key else ""
    )
    if respond_async:
        return await jobs.submit(request, asked, idempotency_key, request_hash)
    # Before anything is counted, charged or sent upstream: room in this process's memory for
    # the images (503 Busy if there is none). Released once they are stored.
    image_memory = memory.reserve(spec)
    opening = asyncio.ensure_future(
        services.open_generation(
            steps,
            account=api_key.account,
            made_by_id=api_key.user_id,
            api_key=api_key,
            spec=spec,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            rate_headers=request.answer_headers,
            # The x-request-id of this answer names the generation too, so a client that
            # loses the connection can collect it as a job (GET /v1/images/generations/{id}).
            public_id=jobs.new_job_id(request),
            slot_lease_seconds=_slot_lease_seconds(spec.model),
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
    return await answers.render(request, completed.generation, completed)


def _slot_lease_seconds(model: catalog.ModelInfo) -> float | None:
    """How long a concurrency slot may be held: the default lease, unless the model's time
    budget is longer (a slot must not lapse under a generation still running)."""
    if model.generation_timeout_seconds <= settings.GENERATION_TIMEOUT_SECONDS:
        return None
    return model.generation_timeout_seconds + 60


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
                "A request with this Idempotency-Key is still running; retry shortly, or "
                f"collect it as the job {generation.public_id} "
                f"(GET {jobs.location(generation)}).",
                code="idempotency_request_in_progress",
                headers={"Retry-After": "1", "Location": jobs.location(generation)},
            )
        await asyncio.sleep(0.25)
        generation = await request.steps.run(Generation.objects.get, pk=generation.pk)
    completed = await request.steps.run(answers.load_completed, generation)
    response: HttpResponseBase
    if asked.stream and answers.succeeded(completed):
        finished: asyncio.Future[services.Completed] = asyncio.get_running_loop().create_future()
        finished.set_result(completed)
        response = _event_stream(request, finished, asked, kind)
    else:
        response = await answers.render(request, generation, completed)
    response["Idempotent-Replayed"] = "true"
    return response


def _event_stream(
    request: HttpRequest,
    work: asyncio.Future[services.Completed],
    asked: ImagesRequest,
    kind: str,
) -> StreamingHttpResponse:
    """The answer of ``stream: true`` (api/streaming.py): what it cost cannot be known when it
    starts, so it has no x-credits-charged header; each event says it instead."""
    return streaming.event_stream(_events(work, asked, kind, answers.base_url(request)))


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
            aclosing(answers.image_base64(generation, image)) as b64_json,
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
    if not answers.succeeded(completed):
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
        "output_format": answers.FORMATS.get(image.content_type, ""),
        "quality": asked.quality or "auto",
        "size": f"{image.width}x{image.height}",
        "usage": answers.usage(generation, images),
        "url": services.image_url(image, base_url),
        "index": index,
        "id": generation.public_id,
        "model": generation.model,
        "images_requested": generation.n,
        "images_delivered": generation.images_delivered,
        "credits_charged": generation.charged_credits,
        **answers.item_extras(image),  # a split's layer fields, as in a JSON answer
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
    balance = await request.steps.run(billing.balance_credits, request.api_key.account)
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
