"""The only code that speaks to Seedream (BytePlus ModelArk, or Volcengine Ark by configuration).

``generate_images`` fans a request for n images out into n parallel upstream calls (each
yielding exactly one image: ``sequential_image_generation: "disabled"`` where the model takes
that field; image i gets ``seed + i`` where it takes a seed), retries what is
transient, downloads each image from the upstream's expiring URL (only from allowed hosts, with
a timeout; or, with UPSTREAM_RESPONSE_FORMAT=b64_json, takes it from the answer's base64), checks
it is an image within the size cap, and returns, per requested image, either the image bytes or
a failure. It never raises for an upstream problem: the caller charges for what came back.
"""

from __future__ import annotations

import asyncio
import binascii
import io
import json
import logging
import random
import time
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from django.conf import settings
from PIL import Image as PILImage

from server import metrics

from .catalog import ModelInfo
from .loop_sessions import SessionPerLoop
from .memory import Reservation
from .spec import SEED_MAX

logger = logging.getLogger(__name__)

IMAGE_FORMATS = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}


@dataclass(frozen=True)
class UpstreamRequest:
    """One model's request, holding only what that model takes (``for_model``: its catalog
    entry's fields are the allow-list); ``body`` sends exactly these."""

    upstream_model: str
    prompt: str
    size: str
    seed: int | None = None
    guidance_scale: float | None = None
    watermark: bool = False
    output_format: str | None = None
    background: str | None = None
    # Sent only to a model that takes them: Seedream 5.0 Pro and Flash answer 400 to either
    # field even when it says "disabled" or false.
    sets: bool = False
    stream: bool = False
    # The model's other upstream ids on this channel, tried in order when the upstream says it
    # does not know ``upstream_model`` (BytePlus spells some models two ways: "dola-seedream-...").
    other_models: tuple[str, ...] = ()
    # The reference images, as data URLs, in the customer's order (sent as ``image``); never
    # in a repr, which may be logged.
    images: tuple[str, ...] = field(default=(), repr=False)
    # A set's most images (sequential_image_generation "auto"); None: one image.
    max_images: int | None = None
    # A layer split's most layers (layer_decomposition); None: no split.
    max_layers: int | None = None
    # How long the whole generation may take (the model's time budget); None: the default.
    time_budget_seconds: int | None = None

    @classmethod
    def for_model(
        cls,
        model: ModelInfo,
        *,
        upstream_model: str,
        prompt: str,
        size: str,
        seed: int | None = None,
        guidance_scale: float | None = None,
        watermark: bool = False,
        output_format: str | None = None,
        background: str | None = None,
        images: tuple[str, ...] = (),
        max_images: int | None = None,
        max_layers: int | None = None,
    ) -> UpstreamRequest:
        """The request ``model`` is sent: a seed where it uses one (the others ignore it, so it
        is dropped), a guidance scale where it takes one, ``output_format`` where it makes that
        format (the others are re-encoded by us: generation/encoding.py; a transparent image is
        asked for as a PNG), ``background`` where it takes the value."""
        if background == "transparent" and output_format != "jpeg":
            output_format = "png"
        return cls(
            upstream_model=upstream_model,
            prompt=prompt,
            size=size,
            seed=seed if model.supports_seed and seed is not None and seed >= 0 else None,
            guidance_scale=guidance_scale if model.supports_guidance_scale else None,
            watermark=watermark,
            output_format=(
                output_format if output_format and model.makes_format(output_format) else None
            ),
            background=background if background in model.background else None,
            sets=model.sets,
            stream=model.stream,
            other_models=tuple(
                i
                for i in model.upstream_ids.get(settings.UPSTREAM_CHANNEL, ())
                if i != upstream_model
            ),
            images=images,
            max_images=max_images if model.sets else None,
            max_layers=max_layers if model.max_layers else None,
            time_budget_seconds=model.generation_timeout_seconds,
        )

    def for_image(self, index: int) -> UpstreamRequest:
        """The call for the ``index``-th image of a request: its seed is ``seed + index``
        (wrapping past the largest seed), so a batch is never n copies of one picture."""
        if self.seed is None or index == 0:
            return self
        return replace(self, seed=(self.seed + index) % (SEED_MAX + 1))

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.upstream_model,
            "prompt": self.prompt,
            "size": self.size,
            "response_format": settings.UPSTREAM_RESPONSE_FORMAT,
            # The upstream default is true (a visible "AI generated" mark); ours is false.
            "watermark": self.watermark,
        }
        if self.max_layers is not None:
            # A split takes none of the set or stream fields, not even "disabled".
            body["layer_decomposition"] = True
        elif self.sets and self.max_images is not None:
            body["sequential_image_generation"] = "auto"
            body["sequential_image_generation_options"] = {"max_images": self.max_images}
        elif self.sets:
            body["sequential_image_generation"] = "disabled"
        if self.stream and self.max_layers is None:
            body["stream"] = False
        if self.seed is not None:
            body["seed"] = self.seed
        if self.guidance_scale is not None:
            body["guidance_scale"] = self.guidance_scale
        if self.output_format is not None:
            body["output_format"] = self.output_format
        if self.background is not None:
            body["background"] = self.background
        if self.images:
            # One image as a string (as SeedEdit's docs show it), several as a list.
            body["image"] = self.images[0] if len(self.images) == 1 else list(self.images)
        return body


@dataclass(frozen=True)
class DeliveredImage:
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int
    # The upstream call that delivered it (its position among the request's calls): a set's
    # images all share their one call, which billing prices them by.
    call: int = 0
    # In a layer split: its z_index (0: the base), and a layer's name, description and
    # bounding_box, as the upstream gave them.
    layer: dict[str, Any] | None = None


class FailureKind:
    PROMPT_BLOCKED = "prompt_blocked"
    OUTPUT_BLOCKED = "output_blocked"
    INVALID_REQUEST = "invalid_request"
    # Our own account or configuration at the upstream: credentials, quota, model access.
    UNAVAILABLE = "unavailable"
    RATE_LIMITED = "rate_limited"
    UPSTREAM_ERROR = "upstream_error"
    TIMEOUT = "timeout"
    # Ours, after the upstream delivered: the image could not be stored, so it is not delivered.
    NOT_STORED = "not_stored"


@dataclass(frozen=True)
class Failure:
    kind: str
    code: str
    message: str
    param: str | None = None
    upstream_status: int | None = None


Outcome = DeliveredImage | Failure


@dataclass
class _Member:
    """One image of an answer: its outcome when the answer carried it (delivered; unusable,
    which no retry mends; or a set member that failed inside the 200), or a URL to download
    it from."""

    outcome: Outcome | None = None
    url: str | None = None
    layer: dict[str, Any] | None = None


@dataclass
class _Call:
    """One upstream call's result: what its answer delivered (one member, or a set's), or a
    failure of the call as a whole (which may be retried)."""

    members: list[_Member] = field(default_factory=list)
    failure: Failure | None = None
    attempts: int = 0


_RETRYABLE = {FailureKind.UPSTREAM_ERROR, FailureKind.TIMEOUT, FailureKind.RATE_LIMITED}


# aiohttp, used directly: measured in bench/upstream_clients.py against httpx's own pool and
# httpx's API over aiohttp's pool (httpx-aiohttp), it costs the least CPU per call and holds
# hundreds of slow calls in flight without degrading (httpx's pool does not: encode/httpx#3215).
# One session per event loop (loop_sessions.py).
def _new_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        # One connection per call in flight, up to the concurrency a process serves.
        limit=settings.UPSTREAM_MAX_CONNECTIONS,
        limit_per_host=0,
        ttl_dns_cache=300,
    )
    timeout = aiohttp.ClientTimeout(
        total=settings.UPSTREAM_TIMEOUT_SECONDS,
        sock_connect=settings.UPSTREAM_CONNECT_TIMEOUT_SECONDS,
    )
    # No proxy settings from the environment, no cookies kept between customers' calls.
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        raise_for_status=False,
    )


_sessions = SessionPerLoop(_new_session)


def get_session() -> aiohttp.ClientSession:
    """One pooled session per event loop (a server process has one; each Celery run its own)."""
    return _sessions.get()


async def close_client() -> None:
    await _sessions.close()


async def generate_images(
    request: UpstreamRequest, n: int, memory: Reservation | None = None
) -> list[Outcome]:
    """n images for ``request``: each either delivered or a Failure saying why not. Every
    answer and image read into memory is counted in ``memory`` (generation/memory.py).

    Never raises for what happens upstream, and never takes longer than the model's time
    budget (GENERATION_TIMEOUT_SECONDS unless its catalog entry says more): the OpenAI SDKs
    give up (and retry, paying again) at 600 s, so a long budget is for jobs (async).
    """
    budget = request.time_budget_seconds or settings.GENERATION_TIMEOUT_SECONDS
    deadline = asyncio.get_running_loop().time() + budget
    calls = (_generate_one(request.for_image(i), i, deadline, memory) for i in range(n))
    return [outcome for outcomes in await asyncio.gather(*calls) for outcome in outcomes]


async def _generate_one(
    request: UpstreamRequest, position: int, deadline: float, memory: Reservation | None
) -> list[Outcome]:
    """What the ``position``-th call delivered: its image (a set's images), or its failure."""
    try:
        async with asyncio.timeout_at(deadline):
            call = await _call_with_retries(request, memory)
            if call.failure is not None:
                return [call.failure]
            outcomes = await asyncio.gather(*(_member(m, memory) for m in call.members))
    except TimeoutError:
        return [Failure(FailureKind.TIMEOUT, "generation_timeout", "The generation took too long.")]
    except Exception:
        # Whatever went wrong (a malformed response the transport could not map, a bad URL),
        # this image was not delivered: the others still are, and the money still settles.
        logger.exception("unexpected error while generating an image")
        return [
            Failure(FailureKind.UPSTREAM_ERROR, "internal", "The image could not be generated.")
        ]
    if position == 0:
        return list(outcomes)
    return [replace(o, call=position) if isinstance(o, DeliveredImage) else o for o in outcomes]


async def _member(member: _Member, memory: Reservation | None) -> Outcome:
    if member.outcome is not None:
        return member.outcome
    assert member.url is not None
    outcome = await _download(member.url, memory)
    if member.layer is not None and isinstance(outcome, DeliveredImage):
        return replace(outcome, layer=member.layer)
    return outcome


# Upstream ids the upstream answered "not found" to, in this process: later requests go
# straight to the model's next id rather than paying a failed call each.
_unknown_upstream_ids: set[str] = set()


async def _call_with_retries(request: UpstreamRequest, memory: Reservation | None) -> _Call:
    """The call, retried while it fails transiently; under another of the model's upstream ids
    while the upstream does not know the one tried (the operator is told, once per id)."""
    candidates = [request.upstream_model, *request.other_models]
    known = [i for i in candidates if i not in _unknown_upstream_ids] or candidates
    for position, upstream_model in enumerate(known):
        attempt = (
            request
            if upstream_model == request.upstream_model
            else replace(request, upstream_model=upstream_model)
        )
        call = await _call_retrying(attempt, memory)
        if not _model_not_found(call) or position + 1 == len(known):
            return call
        _unknown_upstream_ids.add(upstream_model)
        logger.error(
            "upstream does not know model id %s; trying %s (fix the catalog's upstream ids)",
            upstream_model,
            known[position + 1],
        )
    raise AssertionError("unreachable")  # the loop returns on its last candidate


def _model_not_found(call: _Call) -> bool:
    failure = call.failure
    return (
        failure is not None
        and failure.upstream_status == 404
        and failure.code.startswith("InvalidEndpointOrModel.NotFound")
    )


async def _call_retrying(request: UpstreamRequest, memory: Reservation | None) -> _Call:
    attempts = settings.UPSTREAM_MAX_RETRIES + 1
    for attempt in range(attempts):
        call = await _call_once(request, memory)
        call.attempts = attempt + 1
        if call.failure is None or call.failure.kind not in _RETRYABLE:
            return call
        if attempt + 1 < attempts:
            backoff = settings.UPSTREAM_RETRY_BACKOFF_MS / 1000 * (2**attempt)
            await asyncio.sleep(backoff * random.uniform(0.75, 1.0))
    logger.warning(
        "upstream gave up after %d attempts: %s %s",
        attempts,
        call.failure.code if call.failure else "",
        call.failure.message if call.failure else "",
    )
    return call


def _unreachable() -> _Call:
    return _Call(
        failure=Failure(FailureKind.UPSTREAM_ERROR, "unreachable", "The upstream is unreachable.")
    )


@metrics.timed_upstream("generate")
async def _call_once(request: UpstreamRequest, memory: Reservation | None = None) -> _Call:
    url = f"{settings.UPSTREAM_BASE_URL}/images/generations"
    headers = {
        "Authorization": f"Bearer {settings.UPSTREAM_API_KEY}",
        "Content-Type": "application/json",
    }
    body = json.dumps(request.body()).encode()
    answer_limit = _answer_limit(_most_images(request))
    try:
        async with get_session().post(
            url, data=body, headers=headers, allow_redirects=False
        ) as response:
            status = response.status
            raw = await _read_capped(response, answer_limit, memory)
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
        logger.warning("upstream unreachable at %s", settings.UPSTREAM_BASE_URL)
        return _unreachable()
    except TimeoutError:
        # aiohttp's own timeouts (ServerTimeoutError, ConnectionTimeoutError) are TimeoutErrors.
        return _Call(failure=Failure(FailureKind.TIMEOUT, "timeout", "The upstream timed out."))
    except aiohttp.ClientError as exc:
        logger.warning("upstream unreachable: %s", type(exc).__name__)
        return _unreachable()
    if raw is None:
        too_big = _too_big(answer_limit, "answer")
        # Over the cap, a 200 carried an image (paid for upstream): it is unusable, not retried.
        return _Call([_Member(too_big)]) if status == 200 else _Call(failure=too_big)
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    if status != 200 or not isinstance(payload, dict):
        return _Call(failure=classify_error(status, payload))
    data = payload.get("data")
    if not isinstance(data, list) or not data or not all(isinstance(i, dict) for i in data):
        return _Call(
            failure=Failure(FailureKind.UPSTREAM_ERROR, "bad_response", "No image returned.")
        )
    if len(data) == 1 and isinstance(data[0].get("error"), dict):
        # A single image's failure inside a 200 (moderation): the call's, as a non-200 is.
        return _Call(failure=classify_error(200, data[0]))
    # A set: each member delivered or failed on its own (a failed one is not charged, and the
    # call is not retried: its delivered members were made, and would be paid for again).
    members = [_parsed_member(item) for item in data]
    if request.max_layers is not None:
        members = _capped_layers(members, request.max_layers)
    return _Call(members)


def _most_images(request: UpstreamRequest) -> int:
    if request.max_layers is not None:
        return request.max_layers + 1
    return request.max_images or 1


def _capped_layers(members: list[_Member], max_layers: int) -> list[_Member]:
    """A split's base and layers in stacking order, at most ``max_layers`` layers: the quote held
    no more, so any beyond are dropped (and not charged)."""
    ordered = sorted(members, key=lambda m: int((m.layer or {}).get("z_index", 0)))
    if len(ordered) > max_layers + 1:
        logger.warning(
            "layer split gave %d layers, %d asked at most: the rest dropped",
            len(ordered) - 1,
            max_layers,
        )
    return ordered[: max_layers + 1]


_LAYER_FIELDS = ("z_index", "name", "description", "bounding_box")


def _parsed_member(item: dict[str, Any]) -> _Member:
    member = _parsed_image(item)
    if "z_index" in item:
        member.layer = {key: item[key] for key in _LAYER_FIELDS if key in item}
        if isinstance(member.outcome, DeliveredImage):
            member.outcome = replace(member.outcome, layer=member.layer)
    return member


def _parsed_image(item: dict[str, Any]) -> _Member:
    if isinstance(item.get("error"), dict):
        return _Member(classify_error(200, item))
    encoded = item.get("b64_json")
    if isinstance(encoded, str):
        try:
            # Strict (only the base64 alphabet, padded) and in C; b64decode(validate=True) first
            # runs a regular expression over the megabytes.
            image_bytes = binascii.a2b_base64(encoded, strict_mode=True)
        except (binascii.Error, ValueError):
            return _Member(_bad_image("malformed base64"))
        return _Member(_checked_image(image_bytes))
    image_url = item.get("url")
    if not isinstance(image_url, str):
        return _Member(Failure(FailureKind.UPSTREAM_ERROR, "bad_response", "No image URL."))
    return _Member(url=image_url)


def _answer_limit(images: int) -> int:
    """The largest answer read for up to ``images`` images: links and some JSON, or the images
    in base64 (4 characters for 3 bytes, twice that if every "/" comes escaped as "\\/") and
    some JSON."""
    if settings.UPSTREAM_RESPONSE_FORMAT == "url":
        return 1024 * 1024
    return images * settings.UPSTREAM_IMAGE_MAX_BYTES * 8 // 3 + 64 * 1024


def classify_error(status: int, payload: Any) -> Failure:
    """Map an upstream error body (``{"error": {"code", "message", "param"}}``) to a Failure."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        error = {}
    code = str(error.get("code") or f"http_{status}")
    message = _strip_request_id(str(error.get("message") or "The upstream failed."))
    # Stored with the generation (64 characters at most) and shown to the customer.
    param = str(error["param"])[:64] if error.get("param") else None
    if "SensitiveContentDetected" in code:
        kind = (
            FailureKind.OUTPUT_BLOCKED if code.startswith("Output") else FailureKind.PROMPT_BLOCKED
        )
        return Failure(kind, code, message, upstream_status=status)
    if status in (401, 403, 404) or code.startswith(("InvalidEndpoint", "ModelNotOpen")):
        # Our credentials, our account's standing or our model access: never the customer's
        # fault, never a 401 for them. Operators must hear about it.
        logger.error("upstream refused our account or configuration: %s %s", status, code)
        return Failure(FailureKind.UNAVAILABLE, code, message, upstream_status=status)
    if status == 429:
        return Failure(FailureKind.RATE_LIMITED, code, message, upstream_status=status)
    if status == 400:
        return Failure(FailureKind.INVALID_REQUEST, code, message, param, upstream_status=status)
    return Failure(FailureKind.UPSTREAM_ERROR, code, message, upstream_status=status)


def _strip_request_id(message: str) -> str:
    head, _, _ = message.partition(" Request id:")
    return head.strip()


def image_host_allowed(url: str) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    upstream_host = urlsplit(settings.UPSTREAM_BASE_URL).hostname
    if parts.scheme != "https" and not (parts.scheme == "http" and host == upstream_host):
        return False
    for pattern in settings.UPSTREAM_IMAGE_HOSTS:
        pattern = pattern.lower()
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


@metrics.timed_upstream("download")
async def _download(url: str, memory: Reservation | None = None) -> Outcome:
    if not image_host_allowed(url):
        logger.error(
            "upstream returned an image URL on a host we do not fetch from: %s",
            urlsplit(url).hostname,
        )
        return Failure(
            FailureKind.UPSTREAM_ERROR, "image_host_refused", "The image could not be fetched."
        )
    limit = settings.UPSTREAM_IMAGE_MAX_BYTES
    started = time.monotonic()
    try:
        async with asyncio.timeout(settings.UPSTREAM_IMAGE_TIMEOUT_SECONDS):
            # No redirects: the allowed-host check above must hold for where the bytes come from.
            async with get_session().get(url, allow_redirects=False) as response:
                if response.status != 200:
                    return Failure(
                        FailureKind.UPSTREAM_ERROR,
                        "image_fetch_failed",
                        f"Fetching the image failed with HTTP {response.status}.",
                    )
                data = await _read_capped(response, limit, memory)
    except TimeoutError:
        return Failure(FailureKind.TIMEOUT, "image_fetch_timeout", "Fetching the image timed out.")
    except aiohttp.ClientError as exc:
        logger.warning("image fetch failed: %s", type(exc).__name__)
        return Failure(
            FailureKind.UPSTREAM_ERROR, "image_fetch_failed", "Fetching the image failed."
        )
    if data is None:
        return _too_big(limit)
    logger.debug("downloaded %d bytes in %.0f ms", len(data), (time.monotonic() - started) * 1000)
    return _checked_image(data)


async def _read_capped(
    response: aiohttp.ClientResponse, limit: int, memory: Reservation | None = None
) -> bytes | None:
    """The body, or None as soon as it is known to be longer than ``limit`` bytes. Each chunk
    is counted in ``memory`` as it arrives."""
    if (response.content_length or 0) > limit:
        return None
    chunks = []
    received = 0
    async for chunk in response.content.iter_chunked(256 * 1024):
        received += len(chunk)
        if received > limit:
            return None
        if memory is not None:
            memory.count(len(chunk))
        chunks.append(chunk)
    return b"".join(chunks)


def _checked_image(data: bytes) -> Outcome:
    """``data`` delivered, if it is an image we serve and within the size cap."""
    if len(data) > settings.UPSTREAM_IMAGE_MAX_BYTES:
        return _too_big(settings.UPSTREAM_IMAGE_MAX_BYTES)
    try:
        with PILImage.open(io.BytesIO(data)) as picture:
            image_format, (width, height) = picture.format, picture.size
    except (OSError, ValueError, PILImage.DecompressionBombError):
        image_format = None
    if image_format not in IMAGE_FORMATS:
        return _bad_image(f"not an image ({len(data)} bytes)")
    content_type, extension = IMAGE_FORMATS[image_format]
    return DeliveredImage(data, content_type, extension, width, height)


def _bad_image(why: str) -> Failure:
    logger.error("upstream served an unreadable image: %s", why)
    return Failure(
        FailureKind.UPSTREAM_ERROR, "bad_image", "The upstream returned an unreadable image."
    )


def _too_big(limit: int, what: str = "image") -> Failure:
    logger.error("upstream %s over the size cap of %d bytes", what, limit)
    return Failure(
        FailureKind.UPSTREAM_ERROR, "image_too_large", "The upstream image was too large."
    )
