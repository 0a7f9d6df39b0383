"""The /v1 surface, OpenAI-compatible, and the hosted images.

Each /v1 view is async and decorated with ``api_endpoint`` (api/auth.py), which checks the
method and the body's size, authenticates the key and counts the request against its limits
before the view runs. A generation takes the domain's one pipeline (generation/services/
pipeline.py): admit, reserve, run, settle; this module adds what only HTTP has: the body's
parsing, the Idempotency-Key's replay, a client that hangs up (the work goes on, shielded),
and rendering the answer as a URL or as base64.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import re
import time
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
)
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

from billing import services as billing
from generation import catalog, inflight, services, storage, thumbnails
from generation.models import Generation
from generation.refusals import Refusal
from server.steps import Steps

from .auth import ApiRequest, api_endpoint
from .errors import ApiError, error_response, invalid
from .refusals import stored_error
from .schemas import parse_generation_request

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


def request_fingerprint(body: bytes) -> str:
    """A hash of the request's meaning: the same JSON with other spacing or key order matches."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = body.decode("utf-8", "replace")
    return hashlib.sha256(canonical.encode()).hexdigest()


@api_endpoint("POST", admit=False)
async def images_generations(request: ApiRequest) -> HttpResponse:
    started = time.monotonic()
    steps, api_key = request.steps, request.api_key
    idempotency_key = request.headers.get("Idempotency-Key")
    try:
        if idempotency_key is not None and not _IDEMPOTENCY_KEY_RE.match(idempotency_key):
            raise invalid(
                "The Idempotency-Key header must be 1 to 255 printable characters.",
                param="Idempotency-Key",
            )
        spec = parse_generation_request(_read_json(request))
    except (ApiError, Refusal):
        # A request that cannot run still counts as a request (not as work).
        admission = await services.admit(steps, api_key.user, api_key)
        request.rate_limit_headers.update(admission.headers)
        raise
    opening = asyncio.ensure_future(
        services.open_generation(
            steps,
            user=api_key.user,
            api_key=api_key,
            spec=spec,
            idempotency_key=idempotency_key,
            request_hash=request_fingerprint(request.body) if idempotency_key else "",
            rate_headers=request.rate_limit_headers,
        )
    )
    # Shielded, from the reservation on: a client that hangs up does not stop the work, so what
    # the upstream delivers is stored, charged and kept in the customer's gallery, and nothing
    # stays reserved (not even when it hangs up while its credits are being reserved).
    try:
        opened = await asyncio.shield(opening)
    except services.IdempotentReplay as replay:
        return await _replay(request, replay.generation)
    except asyncio.CancelledError:
        steps.detach()
        opening.add_done_callback(functools.partial(_run_once_opened, steps, started))
        inflight.track_opening(opening)
        raise
    work = _start(steps, opened, started)
    try:
        completed = await asyncio.shield(work)
    except asyncio.CancelledError:
        steps.detach()
        raise
    return await _render(request, completed.generation, completed)


def _start(steps: Steps, opened: Generation, started: float) -> asyncio.Future[services.Completed]:
    work = asyncio.ensure_future(services.run_generation(steps, opened, started=started))
    inflight.track(opened.pk, work)
    return work


def _run_once_opened(steps: Steps, started: float, opening: asyncio.Future[Generation]) -> None:
    """The reservation its client hung up during: once made, the generation runs as any other
    whose client left (refused, there is nothing to run)."""
    if not opening.cancelled() and opening.exception() is None:
        _start(steps, opening.result(), started)


async def _replay(request: ApiRequest, generation: Generation) -> HttpResponse:
    """Answer a repeated Idempotency-Key: the stored result, after waiting for a running one."""
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
    response = await _render(request, generation, completed)
    response["Idempotent-Replayed"] = "true"
    return response


def _load_completed(generation: Generation) -> services.Completed:
    return services.Completed(generation, list(generation.images.all()))


async def _render(
    request: HttpRequest, generation: Generation, completed: services.Completed
) -> HttpResponse:
    if generation.status != Generation.Status.SUCCEEDED or not completed.images:
        return stored_error(generation).response()
    if generation.response_format == "b64_json":
        # Megabytes of base64: encoded off the event loop, which serves everyone else.
        return await asyncio.to_thread(_render_b64, generation, completed)
    data = [
        {"url": services.image_url(image, _base_url(request)), "revised_prompt": None}
        for image in completed.images
    ]
    return JsonResponse({"data": data, **_envelope(generation)})


def _envelope(generation: Generation) -> dict[str, Any]:
    """Everything in a successful answer but its ``data``."""
    return {
        "created": int(generation.created_at.timestamp()),
        "id": generation.public_id,
        "model": generation.model,
        "size": generation.size,
        "images_requested": generation.n,
        "images_delivered": generation.images_delivered,
        "credits_charged": generation.charged_credits,
    }


class _LargeResponse(HttpResponse):
    """A response whose body is dropped as soon as Django has sent and closed it.

    Django's ASGI handler leaves each finished request in a reference cycle (its frame, the
    cancelled disconnect-listener task and that task's exception), so the response lives until
    the garbage collector's next full pass, which server/asgi.py makes rare. For megabytes of
    base64 that was about 1 MB kept per request: a worker grew by 17 MB with every 16 b64_json
    4K requests (bench/api_bench.py). Emptied on close once it has been sent, the cycle holds
    nothing big. (A server reads the body before closing; Django's test clients close first and
    read after, and then find the body intact.)
    """

    _sent = False

    @HttpResponse.content.getter  # type: ignore[attr-defined]
    def content(self) -> bytes:
        self._sent = True
        return HttpResponse.content.fget(self)  # type: ignore[attr-defined]

    def close(self) -> None:
        super().close()
        if self._sent:
            self.content = b""


def _render_b64(generation: Generation, completed: services.Completed) -> HttpResponse:
    """The b64_json answer, assembled as bytes around each image's base64.

    A 4K image is several megabytes, and sixteen of them at once are a process's peak memory.
    Through JsonResponse the body existed four times over (base64 str, JSON str, UTF-8 bytes,
    and the image); here each image is dropped once encoded, and the body is its base64 joined
    once (base64 needs no JSON escaping). bench/api_bench.py measures the peak.
    """
    parts = [b'{"data":[']
    for position, image in enumerate(completed.images):
        if position:
            parts.append(b",")
        encoded = base64.b64encode(services.take_image(image, completed.data))
        parts += [b'{"b64_json":"', encoded, b'","revised_prompt":null}']
    parts += [b"],", json.dumps(_envelope(generation)).encode()[1:]]
    body = b"".join(parts)
    del parts
    return _LargeResponse(body, content_type="application/json")


@api_endpoint("GET")
async def models_list(request: ApiRequest) -> HttpResponse:
    prices = await request.steps.run(_prices)
    data = [services.model_object(model, prices) for model in catalog.all_models()]
    return JsonResponse({"object": "list", "data": data})


@api_endpoint("GET")
async def model_detail(request: ApiRequest, model_id: str) -> HttpResponse:
    prices = await request.steps.run(_prices)
    model = catalog.get_model(model_id)
    if model is None:
        raise ApiError(
            404,
            f"The model '{model_id}' does not exist or you do not have access to it.",
            code="model_not_found",
            param="model",
        )
    return JsonResponse(services.model_object(model, prices))


def _prices() -> dict[tuple[str, str], int]:
    return {(p.model, p.size_tier): p.credits_per_image for p in billing.price_list()}


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
