"""The /v1 surface, OpenAI-compatible, and the hosted images.

Views are async where they wait on the network. Under ASGI each ``sync_to_async`` call is a
thread hop. In a process served by config.asgi on PostgreSQL a generation takes none (with
Redis as the rate limiter): its statements (authenticate, reserve, settle) and the limiter's
calls run on the event loop (server/asyncdb.py); a request with an Idempotency-Key reserves in
one hop. Elsewhere (Django's test client, SQLite) the database work of each step is grouped
into one synchronous function called once: two hops (authenticate+reserve, then settle; none
while the upstream works), each giving its connection back to the pool when it ends.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from asgiref.sync import sync_to_async
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
from generation import catalog, hotpath, inflight, ratelimits, services, storage, thumbnails
from generation.models import Generation, new_public_id
from keys import services as keys
from server import asyncdb

from .errors import ApiError, error_response, invalid, invalid_api_key
from .schemas import parse_generation_request

logger = logging.getLogger(__name__)

AsyncView = Callable[..., Coroutine[Any, Any, HttpResponse]]
_IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")


def api_view(*methods: str) -> Callable[[AsyncView], AsyncView]:
    """An async /v1 view: 405 for other methods, ApiError rendered in OpenAI's shape."""

    def decorate(view: AsyncView) -> AsyncView:
        @csrf_exempt
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                return error_response(
                    405,
                    f"{request.method} is not allowed here; use {' or '.join(methods)}.",
                    code="method_not_allowed",
                    headers={"Allow": ", ".join(methods)},
                )
            # Filled by the view once the key is known: every answer to an authenticated
            # request carries the x-ratelimit-* headers, errors included.
            rate_headers: dict[str, str] = {}
            request.rate_limit_headers = rate_headers  # type: ignore[attr-defined]  # see _rate_headers
            try:
                response = await view(request, *args, **kwargs)
            except ApiError as exc:
                response = exc.response()
            for name, value in rate_headers.items():
                response.headers.setdefault(name, value)
            return response

        return wrapper

    return decorate


def _rate_headers(request: HttpRequest) -> dict[str, str]:
    """The x-ratelimit-* headers api_view adds to this request's response, once they are known."""
    headers: dict[str, str] = request.rate_limit_headers  # type: ignore[attr-defined]
    return headers


def _bearer_token(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


# What ratelimits.limits_for reads, loaded in the key's own query.
_LIMITS_RELATED = ("user__credit_account", "user__rate_limit_override")


def _authenticate(raw_key: str | None) -> Any:
    """The ApiKey for a bearer token, or ApiError 401. Runs inside a sync hop."""
    raw_key = _require_key(raw_key)
    try:
        if hotpath.available():
            return keys.authenticate(raw_key, lookup=hotpath.find_key)
        return keys.authenticate(raw_key, related=_LIMITS_RELATED)
    except keys.AuthenticationFailed as exc:
        raise _refused_key(raw_key, exc) from None


async def _aauthenticate(raw_key: str | None) -> Any:
    """``_authenticate`` on the server's event loop (server/asyncdb.py)."""
    raw_key = _require_key(raw_key)
    try:
        return await keys.aauthenticate(
            raw_key, lookup=hotpath.afind_key, run_write=asyncdb.on_a_thread
        )
    except keys.AuthenticationFailed as exc:
        raise _refused_key(raw_key, exc) from None


def _require_key(raw_key: str | None) -> str:
    if raw_key is None:
        raise invalid_api_key(
            "You didn't provide an API key. Send it in the Authorization header as "
            "'Bearer sk-seedream-...'."
        )
    return raw_key


def _refused_key(raw_key: str, exc: keys.AuthenticationFailed) -> ApiError:
    if exc.reason in ("revoked", "expired", "inactive"):
        return invalid_api_key(f"This API key is {exc.reason}.")
    return invalid_api_key(
        f"Incorrect API key provided: {_redact(raw_key)}. Find your keys in the dashboard."
    )


def _redact(raw_key: str) -> str:
    if len(raw_key) <= 12:
        return "****"
    return f"{raw_key[:8]}****{raw_key[-4:]}"


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


def _check_body_size(request: HttpRequest) -> None:
    too_large = ApiError(
        413,
        f"The request body is larger than {settings.API_MAX_BODY_BYTES} bytes.",
        code="request_too_large",
    )
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    # A chunked body declares no length: it is measured once read.
    if declared > settings.API_MAX_BODY_BYTES or len(request.body) > settings.API_MAX_BODY_BYTES:
        raise too_large


@api_view("POST")
async def images_generations(request: HttpRequest) -> HttpResponse:
    started = time.monotonic()
    _check_body_size(request)
    raw_key = _bearer_token(request)
    idempotency_key = request.headers.get("Idempotency-Key")
    # Validation needs no database, but a bad key must win over a bad body (401 before 400), so
    # an input error is held until the key has been checked in the same hop as the reservation.
    problem: ApiError | None = None
    spec: services.GenerationSpec | None = None
    try:
        if idempotency_key is not None and not _IDEMPOTENCY_KEY_RE.match(idempotency_key):
            raise invalid(
                "The Idempotency-Key header must be 1 to 255 printable characters.",
                param="Idempotency-Key",
            )
        payload = _read_json(request)
        spec = services.spec_from_request(
            parse_generation_request(payload, prompt_max_chars=settings.PROMPT_MAX_CHARS)
        )
    except ApiError as exc:
        problem = exc
    fingerprint = services.request_fingerprint(request.body) if idempotency_key else ""

    if asyncdb.enabled() and idempotency_key is None:
        opening = _aopen_generation(raw_key, spec, problem, _rate_headers(request))
    else:
        opening = sync_to_async(asyncdb.closing_connection(_open_generation))(
            raw_key, spec, problem, idempotency_key, fingerprint, _rate_headers(request)
        )

    # Shielded, from the reservation on: a client that hangs up does not stop the work, so what
    # the upstream delivers is stored, charged and kept in the customer's gallery, and nothing
    # stays reserved (not even when it hangs up while its credits are being reserved).
    detached = threading.Event()
    opened = asyncio.ensure_future(opening)
    try:
        generation = await asyncio.shield(opened)
    except services.IdempotentReplay as replay:
        return await _replay(request, replay.generation)
    except asyncio.CancelledError:
        detached.set()
        opened.add_done_callback(functools.partial(_run_once_opened, started, detached))
        inflight.track_opening(opened)
        raise
    work = _start(generation, started, detached)
    try:
        completed = await asyncio.shield(work)
    except asyncio.CancelledError:
        detached.set()
        raise
    return await _render(request, completed.generation, completed)


def _start(
    generation: Generation, started: float, detached: threading.Event
) -> asyncio.Future[services.Completed]:
    work = asyncio.ensure_future(_run(generation, started, detached))
    inflight.track(generation.pk, work)
    return work


def _run_once_opened(
    started: float, detached: threading.Event, opened: asyncio.Future[Generation]
) -> None:
    """The reservation its client hung up during: once made, the generation runs as any other
    whose client left (refused, there is nothing to run)."""
    if not opened.cancelled() and opened.exception() is None:
        _start(opened.result(), started, detached)


def _open_generation(
    raw_key: str | None,
    spec: services.GenerationSpec | None,
    problem: ApiError | None,
    idempotency_key: str | None,
    fingerprint: str,
    rate_headers: dict[str, str],
) -> Generation:
    api_key = _authenticate(raw_key)
    if problem is not None:
        rate_headers.update(ratelimits.admit(api_key.user, api_key).headers)
        raise problem
    assert spec is not None
    public_id = new_public_id()
    # A repeat answered from the first request's result is a request, not new work.
    repeat = services.is_idempotent_repeat(api_key.user, idempotency_key)
    admission = ratelimits.admit(
        api_key.user,
        api_key,
        images=0 if repeat else spec.n,
        slot_holder=None if repeat else public_id,
    )
    rate_headers.update(admission.headers)
    try:
        return _begin(api_key, spec, idempotency_key, fingerprint, public_id)
    except BaseException:
        # Nothing will run (refused, or a repeat answered from the first): the slot goes back.
        ratelimits.release(api_key.user_id, api_key.pk, public_id)
        raise


async def _aopen_generation(
    raw_key: str | None,
    spec: services.GenerationSpec | None,
    problem: ApiError | None,
    rate_headers: dict[str, str],
) -> Generation:
    """``_open_generation`` for a request without an Idempotency-Key, on the server's event
    loop: no thread hop (server/asyncdb.py)."""
    api_key = await _aauthenticate(raw_key)
    if problem is not None:
        rate_headers.update((await ratelimits.aadmit(api_key.user, api_key)).headers)
        raise problem
    assert spec is not None
    public_id = new_public_id()
    admission = await ratelimits.aadmit(api_key.user, api_key, images=spec.n, slot_holder=public_id)
    rate_headers.update(admission.headers)
    try:
        return await services.abegin_generation(
            user=api_key.user, spec=spec, api_key=api_key, public_id=public_id
        )
    except BaseException as exc:
        # Nothing will run (refused, or failed): the slot goes back.
        await ratelimits.arelease(api_key.user_id, api_key.pk, public_id)
        if isinstance(exc, billing.InsufficientCredits):
            raise _insufficient_credits(exc) from None
        raise


def _insufficient_credits(exc: billing.InsufficientCredits) -> ApiError:
    return ApiError(
        402,
        f"Insufficient credits: this request costs {exc.needed_credits} credits "
        f"(${billing.format_usd(exc.needed_credits)}) and your balance is "
        f"{exc.balance_credits} credits (${billing.format_usd(exc.balance_credits)}). "
        "Add credits to continue.",
        type="insufficient_quota",
        code="insufficient_quota",
    )


def _begin(
    api_key: Any,
    spec: services.GenerationSpec,
    idempotency_key: str | None,
    fingerprint: str,
    public_id: str,
) -> Generation:
    try:
        return services.begin_generation(
            user=api_key.user,
            spec=spec,
            api_key=api_key,
            idempotency_key=idempotency_key,
            request_hash=fingerprint,
            public_id=public_id,
        )
    except billing.InsufficientCredits as exc:
        raise _insufficient_credits(exc) from None
    except services.IdempotencyMismatch:
        raise invalid(
            "This Idempotency-Key was already used with a different request body.",
            param="Idempotency-Key",
            code="idempotency_key_reused",
        ) from None


async def _run(
    generation: Generation, started: float, detached: threading.Event
) -> services.Completed:
    on_loop = asyncdb.enabled()
    try:
        outcomes = await services.produce_images(generation)
    except BaseException:
        # Unsettled now: the reconciler will fail and refund it; its slot goes back at once.
        if on_loop:
            await ratelimits.arelease(
                generation.user_id, generation.api_key_id, generation.public_id
            )
        else:
            release = asyncdb.closing_connection(ratelimits.release)
            await sync_to_async(release, thread_sensitive=not detached.is_set())(
                generation.user_id, generation.api_key_id, generation.public_id
            )
        raise
    latency_ms = int((time.monotonic() - started) * 1000)
    if on_loop:
        return await services.acomplete_generation(generation, outcomes, latency_ms=latency_ms)
    # Once the client has hung up the request is over and its thread is lent to another
    # (config/asgi.py): the last step then runs on a thread of the loop's own pool.
    settle = sync_to_async(
        asyncdb.closing_connection(services.complete_generation),
        thread_sensitive=not detached.is_set(),
    )
    return await settle(generation, outcomes, latency_ms=latency_ms)


async def _replay(request: HttpRequest, generation: Generation) -> HttpResponse:
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
        get = asyncdb.closing_connection(Generation.objects.get)
        generation = await sync_to_async(get)(pk=generation.pk)
    completed = await sync_to_async(_load_completed)(generation)
    response = await _render(request, generation, completed)
    response["Idempotent-Replayed"] = "true"
    return response


def _load_completed(generation: Generation) -> services.Completed:
    return services.Completed(generation, list(generation.images.all()))


async def _render(
    request: HttpRequest, generation: Generation, completed: services.Completed
) -> HttpResponse:
    if generation.status != Generation.Status.SUCCEEDED or not completed.images:
        return services.stored_error(generation).response()
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
    the garbage collector's next full pass, which config/asgi.py makes rare. For megabytes of
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


def _authenticate_and_count(raw_key: str | None, rate_headers: dict[str, str]) -> Any:
    """The key, once this request has been counted against its limits (429 if over)."""
    api_key = _authenticate(raw_key)
    rate_headers.update(ratelimits.admit(api_key.user, api_key).headers)
    return api_key


def _authenticate_and_price(
    raw_key: str | None, rate_headers: dict[str, str]
) -> dict[tuple[str, str], int]:
    _authenticate_and_count(raw_key, rate_headers)
    return {(p.model, p.size_tier): p.credits_per_image for p in billing.price_list()}


@api_view("GET")
async def models_list(request: HttpRequest) -> HttpResponse:
    prices = await sync_to_async(_authenticate_and_price)(
        _bearer_token(request), _rate_headers(request)
    )
    data = [services.model_object(model, prices) for model in catalog.all_models()]
    return JsonResponse({"object": "list", "data": data})


@api_view("GET")
async def model_detail(request: HttpRequest, model_id: str) -> HttpResponse:
    prices = await sync_to_async(_authenticate_and_price)(
        _bearer_token(request), _rate_headers(request)
    )
    model = catalog.get_model(model_id)
    if model is None:
        raise ApiError(
            404,
            f"The model '{model_id}' does not exist or you do not have access to it.",
            code="model_not_found",
            param="model",
        )
    return JsonResponse(services.model_object(model, prices))


def _credits_for_key(raw_key: str | None, rate_headers: dict[str, str]) -> int:
    api_key = _authenticate_and_count(raw_key, rate_headers)
    return billing.balance_credits(api_key.user)


@api_view("GET")
async def credits(request: HttpRequest) -> HttpResponse:
    balance = await sync_to_async(_credits_for_key)(_bearer_token(request), _rate_headers(request))
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
    # The content behind a token never changes: caches and CDNs may keep it for a year.
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


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
    response["Cache-Control"] = "public, max-age=31536000, immutable"
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
