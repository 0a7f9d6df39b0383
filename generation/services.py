"""The generation domain: quote, reserve, run, settle, reconcile.

The life of a request, each step a function here:

1. ``begin_generation`` (one transaction): price the request from the price table, record a
   Generation row and reserve n x price credits (402 if the balance is short).
2. ``produce_images`` (async, no database): n parallel upstream calls and image downloads.
3. ``complete_generation`` (files first, then one transaction): store each delivered image under
   an unguessable name, claim the row, record the images, and settle: release the hold and
   charge exactly the images delivered.

A crash between 1 and 3 leaves a row past its deadline holding credits;
``reconcile_stuck_generations`` (a periodic task) releases them. Both 3 and the reconciler claim
the row with a conditional UPDATE, so the money is settled exactly once.

The playground takes the same steps off the request: ``submit_generation`` does 1 with the row
queued and sends a Celery task once the transaction commits; the task calls
``run_queued_generation``, which claims the row (queued -> running, exactly one worker can) and
does 2 and 3. The reconciler also re-sends queued rows whose message was lost and re-queues
running rows whose worker died, so a playground generation finishes or is refunded, whatever
happens to the broker or the workers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from accounts.models import User
from api.errors import NO_RETRY, ApiError, invalid
from api.schemas import ImageGenerationRequest
from billing import services as billing
from keys.models import ApiKey
from server import asyncdb, metrics

from . import hotpath, ratelimits, storage, thumbnails, upstream
from .catalog import ModelInfo, Size, SizeError, get_model, resolve_size
from .models import Generation, Image, new_image_token, new_public_id
from .upstream import DeliveredImage, Failure, FailureKind, Outcome

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationSpec:
    """A validated request, independent of where it came from (API or playground)."""

    model: ModelInfo
    prompt: str
    size: Size
    n: int
    response_format: str = "url"
    seed: int | None = None
    guidance_scale: float | None = None
    watermark: bool = False
    end_user: str | None = None

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"watermark": self.watermark}
        if self.seed is not None:
            params["seed"] = self.seed
        if self.guidance_scale is not None:
            params["guidance_scale"] = self.guidance_scale
        if self.end_user:
            params["user"] = self.end_user
        return params


class IdempotencyMismatch(Exception):
    """The Idempotency-Key was used before with a different body."""


class IdempotentReplay(Exception):
    """The Idempotency-Key was used before with this body: answer with that generation."""

    def __init__(self, generation: Generation) -> None:
        super().__init__(generation.public_id)
        self.generation = generation


@dataclass
class Completed:
    generation: Generation
    images: list[Image]
    # The delivered bytes by image id, so a b64_json answer needs no read back from storage.
    data: dict[int, bytes] = field(default_factory=dict)


def model_object(model: ModelInfo, prices: dict[tuple[str, str], int]) -> dict[str, Any]:
    """One model as GET /v1/models answers it (the docs page shows the same)."""
    tiers = {
        tier or "default": credits
        for (model_id, tier), credits in prices.items()
        if model_id == model.id
    }
    default_price = tiers.get("default")
    return {
        "id": model.id,
        "object": "model",
        "created": model.created,
        "owned_by": "bytedance",
        "name": model.name,
        "price_per_image_credits": default_price,
        "price_per_image_usd": billing.format_usd(default_price) if default_price else None,
        "price_per_image_credits_by_size_tier": tiers,
        "default_size": model.default_size,
        "size_keywords": list(model.size_keywords),
        "min_pixels": model.min_pixels,
        "max_pixels": model.max_pixels,
        "max_aspect_ratio": model.max_aspect_ratio,
        "supports_seed": model.supports_seed,
        "supports_guidance_scale": model.supports_guidance_scale,
    }


def spec_from_request(request: ImageGenerationRequest) -> GenerationSpec:
    """Check a parsed API request against the catalog: 404 for an unknown model, 400 for a
    size or an extra the model does not take."""
    model = get_model(request.model)
    if model is None:
        raise ApiError(
            404,
            f"The model '{request.model}' does not exist or you do not have access to it.",
            code="model_not_found",
            param="model",
        )
    try:
        size = resolve_size(model, request.size)
    except SizeError as exc:
        raise invalid(f"Invalid value for 'size': {exc}.", param="size") from None
    if request.guidance_scale is not None and not model.supports_guidance_scale:
        raise invalid(
            f"'guidance_scale' is not supported by {model.id}.",
            param="guidance_scale",
            code="unsupported_parameter",
        )
    return GenerationSpec(
        model=model,
        prompt=request.prompt,
        size=size,
        n=request.n,
        response_format=request.response_format or "url",
        seed=request.seed,
        guidance_scale=float(request.guidance_scale) if request.guidance_scale else None,
        watermark=request.watermark,
        end_user=request.user,
    )


def request_fingerprint(body: bytes) -> str:
    """A hash of the request's meaning: the same JSON with other spacing or key order matches."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = body.decode("utf-8", "replace")
    return hashlib.sha256(canonical.encode()).hexdigest()


def quote(spec: GenerationSpec) -> billing.Quote:
    """What ``spec`` costs: what is held for it, and what each delivered image is charged.
    ApiError(503) when the price table has no row for it."""
    try:
        return billing.quote(spec.model.id, spec.size.tier, spec.n)
    except billing.UnknownPrice:
        logger.error("no price for %s tier %r: add one in the admin", spec.model.id, spec.size.tier)
        raise ApiError(
            503,
            f"{spec.model.id} is not available for sale right now.",
            type="server_error",
            code="model_not_priced",
            headers=NO_RETRY,
        ) from None


def begin_generation(
    *,
    user: User,
    spec: GenerationSpec,
    source: str = Generation.Source.API,
    api_key: ApiKey | None = None,
    idempotency_key: str | None = None,
    request_hash: str = "",
    public_id: str | None = None,
) -> Generation:
    """Price, record and reserve, atomically. Raises billing.InsufficientCredits (ApiError 402
    when the account owes credits after a refund or dispute), IdempotentReplay or
    IdempotencyMismatch; a refusal for credits leaves a failed row for the usage log."""
    priced = quote(spec)
    now = timezone.now()
    fields = _generation_fields(user, spec, source, api_key, public_id, priced, now)
    if idempotency_key:
        _check_idempotency(user, idempotency_key, request_hash, now)
    elif hotpath.available():
        generation = Generation(**fields)
        if hotpath.open_generation(generation, priced.hold(), _describe(generation)):
            metrics.generation_reserved(generation)
            return generation
        # Refused for credits: the ORM path below records and explains the refusal.
    return _begin_with_orm(fields, priced, user, idempotency_key, request_hash, now)


async def abegin_generation(
    *, user: User, spec: GenerationSpec, api_key: ApiKey, public_id: str
) -> Generation:
    """``begin_generation`` for an API request without an Idempotency-Key, on the server's
    event loop (server/asyncdb.py). A refusal, or a price list due for a refresh, takes the
    synchronous path on a thread."""
    priced = billing.cached_quote(spec.model.id, spec.size.tier, spec.n)
    if priced is None:  # the price list is due for a refresh, or has no such price (503)
        return await asyncdb.on_a_thread(
            begin_generation, user=user, spec=spec, api_key=api_key, public_id=public_id
        )
    now = timezone.now()
    fields = _generation_fields(user, spec, Generation.Source.API, api_key, public_id, priced, now)
    generation = Generation(**fields)
    if await hotpath.aopen_generation(generation, priced.hold(), _describe(generation)):
        metrics.generation_reserved(generation)
        return generation
    # Refused for credits: the ORM path records and explains the refusal.
    return await asyncdb.on_a_thread(
        begin_generation, user=user, spec=spec, api_key=api_key, public_id=public_id
    )


def _generation_fields(
    user: User,
    spec: GenerationSpec,
    source: str,
    api_key: ApiKey | None,
    public_id: str | None,
    priced: billing.Quote,
    now: datetime,
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "public_id": public_id or new_public_id(),
        "user": user,
        "api_key": api_key,
        "source": source,
        "model": spec.model.id,
        "upstream_model": spec.model.upstream_id,
        "prompt": spec.prompt,
        "size": spec.size.value,
        "size_tier": spec.size.tier,
        "n": spec.n,
        "response_format": spec.response_format,
        "params": spec.params(),
        "price_per_image_credits": priced.per_image_credits,
        "reserved_credits": priced.held_credits,
        "created_at": now,
        "deadline_at": now + timedelta(seconds=settings.GENERATION_DEADLINE_SECONDS),
    }
    if source == Generation.Source.API:
        fields.update(status=Generation.Status.RUNNING, started_at=now)
    else:
        fields.update(dispatched_at=now)  # its task is sent as soon as the row commits
    return fields


def _begin_with_orm(
    fields: dict[str, Any],
    priced: billing.Quote,
    user: User,
    idempotency_key: str | None,
    request_hash: str,
    now: datetime,
) -> Generation:
    try:
        with transaction.atomic():
            generation = Generation.objects.create(
                idempotency_key=idempotency_key or "", request_hash=request_hash, **fields
            )
            billing.hold(
                user.pk,
                priced.hold(),
                reference=generation.ledger_reference,
                description=_describe(generation),
                now=now,
            )
    except IntegrityError:
        if not idempotency_key:
            raise
        # A concurrent request with the same key won the insert: answer as its repeat.
        _check_idempotency(user, idempotency_key, request_hash, now)
        raise
    except billing.InsufficientCredits as exc:
        owed = exc.owed_credits if isinstance(exc, billing.CreditsOwed) else 0
        message = (
            f"Your account owes {owed} credits (${billing.format_usd(owed)}) after a card "
            "payment was refunded or disputed. API use is paused until that is paid: add "
            "credits on the billing page and they pay it first."
            if owed
            else str(exc)
        )
        # Nothing was reserved; the row is there so the customer's usage log shows the refusal.
        Generation.objects.create(
            **{
                **fields,
                "reserved_credits": 0,
                "status": Generation.Status.FAILED,
                "http_status": 402,
                "error_code": "insufficient_quota",
                "error_message": message,
                "finished_at": now,
                "latency_ms": 0,
            }
        )
        if owed:
            raise ApiError(
                402, message, type="insufficient_quota", code="insufficient_quota"
            ) from None
        raise
    metrics.generation_reserved(generation)
    return generation


def is_idempotent_repeat(user: User, key: str | None) -> bool:
    """Whether a request with this Idempotency-Key will be answered from an earlier one (so it
    must not count as new work against the rate limits)."""
    if not key:
        return False
    since = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_WINDOW_SECONDS)
    return Generation.objects.filter(user=user, idempotency_key=key, created_at__gte=since).exists()


def _check_idempotency(user: User, key: str, request_hash: str, now: datetime) -> None:
    window_start = now - timedelta(seconds=settings.IDEMPOTENCY_WINDOW_SECONDS)
    existing = Generation.objects.filter(user=user, idempotency_key=key).first()
    if existing is None:
        return
    if existing.created_at < window_start:
        # Older than the window: the key is free again.
        Generation.objects.filter(pk=existing.pk).update(idempotency_key="")
        return
    if existing.request_hash != request_hash:
        raise IdempotencyMismatch(key)
    raise IdempotentReplay(existing)


def _describe(generation: Generation) -> str:
    """The words of a generation's hold in the customer's ledger."""
    return f"{generation.n} x {generation.model} {generation.size} ({generation.public_id})"


def _describe_settlement(generation: Generation, delivered: int) -> str:
    """The words of a generation's release and charge in the customer's ledger."""
    return (
        f"{delivered} of {generation.n} images, "
        f"{generation.model} {generation.size} ({generation.public_id})"
    )


def upstream_request(generation: Generation) -> upstream.UpstreamRequest:
    params = generation.params
    return upstream.UpstreamRequest(
        upstream_model=generation.upstream_model,
        prompt=generation.prompt,
        size=generation.size,
        seed=params.get("seed"),
        guidance_scale=params.get("guidance_scale"),
        watermark=bool(params.get("watermark", False)),
    )


async def produce_images(generation: Generation) -> list[Outcome]:
    return await upstream.generate_images(upstream_request(generation), generation.n)


def image_storage_name(token: str, extension: str) -> str:
    # Sharded by the token's first characters so no folder grows huge; the URL alone names the
    # file, so serving an image needs no database query.
    return f"images/{token[:2]}/{token}.{extension}"


# A delivered image once stored: its position in the request, the image, its token, its name.
_Stored = tuple[int, DeliveredImage, str, str]


def complete_generation(
    generation: Generation, outcomes: list[Outcome], *, latency_ms: int
) -> Completed:
    """Store what was delivered and settle the money, exactly once."""
    stored = _store_delivered(outcomes)
    try:
        settlement = _Settlement.of(generation, outcomes, stored, latency_ms)
        if hotpath.available():
            claimed = hotpath.settle_generation(generation, **settlement.written())
        else:
            claimed = _settle_with_orm(generation, settlement)
    finally:
        # Even when the settlement fails (the reconciler then refunds the row), the slot goes
        # back. The files stay: a failure can come after the commit, and they may be charged.
        ratelimits.release(generation.user_id, generation.api_key_id, generation.public_id)
    if not claimed:
        return _too_late(generation, stored)
    return settlement.completed(generation, stored)


async def acomplete_generation(
    generation: Generation, outcomes: list[Outcome], *, latency_ms: int
) -> Completed:
    """``complete_generation`` on the server's event loop (server/asyncdb.py)."""
    if storage.is_remote():
        stored = await asyncio.to_thread(_store_delivered, outcomes)
    else:
        # A local file is written faster than a thread would take to start writing it.
        stored = _store_delivered(outcomes)
    try:
        settlement = _Settlement.of(generation, outcomes, stored, latency_ms)
        claimed = await hotpath.asettle_generation(generation, **settlement.written())
    finally:
        await ratelimits.arelease(generation.user_id, generation.api_key_id, generation.public_id)
    if not claimed:
        return await asyncdb.on_a_thread(_too_late, generation, stored)
    return settlement.completed(generation, stored)


def _store_delivered(outcomes: list[Outcome]) -> list[_Stored]:
    """Each delivered image saved under an unguessable name."""
    stored: list[_Stored] = []
    for index, image in enumerate(outcomes):
        if isinstance(image, DeliveredImage):
            token = new_image_token()
            name = default_storage.save(
                image_storage_name(token, image.extension), ContentFile(image.data)
            )
            stored.append((index, image, token, name))
    return stored


def _too_late(generation: Generation, stored: list[_Stored]) -> Completed:
    # The reconciler settled this row first (we overran the deadline): nothing is charged, so
    # nothing may be delivered.
    for *_, name in stored:
        default_storage.delete(name)
    logger.error("generation %s finished after its deadline", generation.public_id)
    generation.refresh_from_db()
    return Completed(generation, [])


def _quote_of(generation: Generation) -> billing.Quote:
    """The quote ``generation`` was accepted with, from the figures its row keeps."""
    return billing.Quote.of_hold(
        per_image_credits=generation.price_per_image_credits,
        images=generation.n,
        held_credits=generation.reserved_credits,
    )


@dataclass
class _Settlement:
    """What settling a generation writes: its outcome (the row's settled fields), its image
    rows, the money (billing's settlement quantities) and the ledger's words."""

    outcome: dict[str, Any]
    images: list[Image]
    money: dict[str, int]
    description: str
    now: datetime

    @classmethod
    def of(
        cls,
        generation: Generation,
        outcomes: list[Outcome],
        stored: list[_Stored],
        latency_ms: int,
    ) -> _Settlement:
        failures = [o for o in outcomes if isinstance(o, Failure)]
        money = _quote_of(generation).settlement(images_delivered=len(stored))
        error = None if stored else failure_error(failures)
        now = timezone.now()
        outcome: dict[str, Any] = {
            "status": Generation.Status.SUCCEEDED if stored else Generation.Status.FAILED,
            "images_delivered": len(stored),
            "charged_credits": billing.charged_credits(money),
            "http_status": error.status if error else 200,
            "error_code": (error.code or "") if error else _partial_note(failures),
            "error_param": (error.param or "") if error else "",
            "error_message": (
                error.message if error else _partial_message(failures, len(outcomes))
            ),
            "finished_at": now,
            "latency_ms": latency_ms,
        }
        images = [
            Image(
                generation=generation,
                user_id=generation.user_id,
                token=token,
                index=index,
                file=name,
                content_type=image.content_type,
                width=image.width,
                height=image.height,
                bytes=len(image.data),
                created_at=now,
            )
            for index, image, token, name in stored
        ]
        return cls(outcome, images, money, _describe_settlement(generation, len(stored)), now)

    def written(self) -> dict[str, Any]:
        """hotpath.settle_generation's arguments after the generation."""
        return {
            "outcome": self.outcome,
            "images": self.images,
            "settlement": self.money,
            "description": self.description,
            "now": self.now,
        }

    def completed(self, generation: Generation, stored: list[_Stored]) -> Completed:
        """The settled generation (claimed: this settlement is what the database holds)."""
        for field_name, value in self.outcome.items():
            setattr(generation, field_name, value)
        metrics.generation_settled(generation)
        data = {
            row.pk: image.data for row, (_, image, _, _) in zip(self.images, stored, strict=True)
        }
        return Completed(generation, self.images, data)


def _settle_with_orm(generation: Generation, settlement: _Settlement) -> bool:
    with transaction.atomic():
        claimed = Generation.objects.filter(
            pk=generation.pk, status__in=Generation.UNSETTLED
        ).update(**settlement.outcome)
        if claimed:
            Image.objects.bulk_create(settlement.images)
            billing.settle(
                generation.user_id,
                settlement.money,
                reference=generation.ledger_reference,
                description=settlement.description,
                now=settlement.now,
            )
    return bool(claimed)


def submit_generation(*, user: User, spec: GenerationSpec) -> Generation:
    """The playground's request: price, record (queued) and reserve like the API does, then send
    the task once the row is committed (a worker must never look for a row it cannot see)."""
    from . import tasks  # tasks imports this module

    public_id = new_public_id()
    # The account's limits, as for the API (429 ApiError when over); the slot is held until the
    # worker settles the generation.
    ratelimits.admit(
        user,
        None,
        images=spec.n,
        slot_holder=public_id,
        # Queued work, retried with backoff, may run until its deadline.
        slot_lease_seconds=settings.GENERATION_DEADLINE_SECONDS + 60,
    )
    try:
        generation = begin_generation(
            user=user, spec=spec, source=Generation.Source.PLAYGROUND, public_id=public_id
        )
    except BaseException:
        ratelimits.release(user.pk, None, public_id)
        raise
    transaction.on_commit(lambda: tasks.send_generation(generation.pk))
    return generation


# Faults where trying again later can help; a blocked prompt or a bad request cannot.
_TRANSIENT = {FailureKind.RATE_LIMITED, FailureKind.UPSTREAM_ERROR, FailureKind.TIMEOUT}


@dataclass(frozen=True)
class RunResult:
    """What ``run_queued_generation`` did: finished the row, found it taken, or queued it again
    to be sent after ``retry_in_seconds``."""

    status: str
    retry_in_seconds: int = 0


def run_queued_generation(generation_id: int) -> RunResult:
    """Claim a queued playground generation (exactly one worker can), run it and settle it.

    When nothing was delivered and every failure was transient, the row goes back to the queue
    for a later attempt (with exponential backoff) while its attempts and deadline allow.
    """
    now = timezone.now()
    claimed = Generation.objects.filter(
        pk=generation_id, status=Generation.Status.QUEUED, deadline_at__gt=now
    ).update(status=Generation.Status.RUNNING, started_at=now, attempts=models.F("attempts") + 1)
    if not claimed:
        return RunResult("not_claimed")
    generation = Generation.objects.get(pk=generation_id)
    started = time.monotonic()
    outcomes = asyncio.run(_produce_and_close(generation))
    latency_ms = int((time.monotonic() - started) * 1000)

    failures = [o for o in outcomes if isinstance(o, Failure)]
    if len(failures) == len(outcomes) and all(f.kind in _TRANSIENT for f in failures):
        backoff = settings.GENERATION_RETRY_BACKOFF_SECONDS * 2 ** (generation.attempts - 1)
        retry_at = timezone.now() + timedelta(seconds=backoff)
        if generation.attempts < settings.GENERATION_MAX_ATTEMPTS and retry_at < (
            generation.deadline_at
        ):
            # dispatched_at is when the next run is due, so the reconciler does not resend it
            # while it waits out its backoff.
            requeued = Generation.objects.filter(
                pk=generation_id, status=Generation.Status.RUNNING
            ).update(status=Generation.Status.QUEUED, dispatched_at=retry_at)
            if requeued:
                return RunResult("retry", backoff)
    complete_generation(generation, outcomes, latency_ms=latency_ms)
    return RunResult("done")


async def _produce_and_close(generation: Generation) -> list[Outcome]:
    # Each run has its own event loop, so its pooled upstream client goes with it.
    try:
        return await produce_images(generation)
    finally:
        await upstream.close_client()


def _partial_note(failures: list[Failure]) -> str:
    return failures[0].code[:64] if failures else ""


def _partial_message(failures: list[Failure], requested: int) -> str:
    if not failures:
        return ""
    return f"{len(failures)} of {requested} images were not delivered: {failures[0].message}"


# For a request in which no image was delivered: what the customer is told, by failure kind,
# most telling kind first (it speaks for the request when the n calls failed differently).
# (status, code, param, message); every message ends "You were not charged."
_FAILURE_ERRORS: dict[str, tuple[int, str, str | None, str]] = {
    FailureKind.PROMPT_BLOCKED: (
        400, "content_policy_violation", "prompt",
        "Your prompt was rejected by the content safety system.",
    ),
    FailureKind.OUTPUT_BLOCKED: (
        400, "content_policy_violation", None,
        "The generated image was blocked by the content safety system.",
    ),
    FailureKind.INVALID_REQUEST: (
        400, "invalid_value", None, "The image service rejected the request: {message}",
    ),
    FailureKind.UNAVAILABLE: (
        503, "service_unavailable", None, "Image generation is temporarily unavailable.",
    ),
    FailureKind.RATE_LIMITED: (
        503, "upstream_busy", None, "The image service is busy; retry shortly.",
    ),
    FailureKind.TIMEOUT: (503, "upstream_timeout", None, "The image service timed out."),
    FailureKind.UPSTREAM_ERROR: (
        502, "upstream_error", None, "The image service failed to generate the image.",
    ),
}  # fmt: skip
_FAILURE_PRIORITY = list(_FAILURE_ERRORS)


def failure_error(failures: list[Failure]) -> ApiError:
    """The customer's error for a request that delivered nothing (and was charged nothing).

    Its headers come from the code, in ``stored_error``, which renders every failed generation.
    """
    failure = min(failures, key=lambda f: _FAILURE_PRIORITY.index(f.kind))
    status, code, param, message = _FAILURE_ERRORS[failure.kind]
    return ApiError(
        status,
        message.format(message=failure.message) + " You were not charged.",
        type="server_error" if status >= 500 else "invalid_request_error",
        code=code,
        param=failure.param if failure.kind == FailureKind.INVALID_REQUEST else param,
    )


# Headers that go with an error code, so that a stored error answers like the first time.
_ERROR_HEADERS = {
    "content_policy_violation": NO_RETRY,
    "service_unavailable": NO_RETRY,
    "model_not_priced": NO_RETRY,
    "upstream_busy": {"Retry-After": "5"},
}


def stored_error(generation: Generation) -> ApiError:
    """The error a finished, failed generation answers with."""
    status = generation.http_status or 500
    if status == 402:
        error_type = "insufficient_quota"
    elif status >= 500:
        error_type = "server_error"
    else:
        error_type = "invalid_request_error"
    return ApiError(
        status,
        generation.error_message or "The generation failed.",
        type=error_type,
        code=generation.error_code or None,
        param=generation.error_param or None,
        headers=_ERROR_HEADERS.get(generation.error_code),
    )


def image_url(image: Image, base_url: str) -> str:
    # A public bucket (or its CDN) serves the image itself; otherwise our /img/ URL does (a
    # redirect to a fresh presigned URL when the bucket is private).
    public = storage.public_url(image.file.name)
    if public:
        return public
    extension = image.file.name.rsplit(".", 1)[-1]
    return f"{settings.IMAGE_BASE_URL or base_url}/img/{image.token}.{extension}"


def take_image(image: Image, data: dict[int, bytes]) -> bytes:
    """An image's bytes: those just delivered, taken out of ``data`` (by image id, so the caller
    can drop them once used), else read from storage."""
    raw = data.pop(image.pk, None)
    if raw is None:
        with default_storage.open(image.file.name, "rb") as handle:
            raw = handle.read()
    return raw


def reconcile_stuck_generations(now: datetime | None = None) -> int:
    """Fail and release every generation still unsettled past its deadline, and put lost or
    abandoned playground runs back on the queue. Returns how many were failed."""
    now = now or timezone.now()
    _redispatch_lost_runs(now)
    stuck = Generation.objects.filter(
        status__in=Generation.UNSETTLED, deadline_at__lt=now
    ).values_list("pk", flat=True)[:500]
    count = 0
    for pk in stuck:
        if _fail_and_release(
            pk,
            list(Generation.UNSETTLED),
            now,
            message="The generation did not finish in time. You were not charged.",
            note="expired, nothing delivered",
        ):
            count += 1
    if count:
        logger.warning("reconciled %d generations stuck past their deadline", count)
    return count


def _fail_and_release(
    pk: int, from_statuses: list[str], now: datetime, *, message: str, note: str
) -> bool:
    """Claim an unsettled row as failed and give its whole reservation back; False if another
    process settled it first."""
    with transaction.atomic():
        claimed = Generation.objects.filter(pk=pk, status__in=from_statuses).update(
            status=Generation.Status.FAILED,
            http_status=503,
            error_code="expired",
            error_message=message,
            finished_at=now,
        )
        if not claimed:
            return False
        generation = Generation.objects.get(pk=pk)
        ratelimits.release(generation.user_id, generation.api_key_id, generation.public_id)
        billing.settle(
            generation.user_id,
            _quote_of(generation).settlement(images_delivered=0),
            reference=generation.ledger_reference,
            description=f"{note} ({generation.public_id})",
            now=now,
        )
    metrics.generation_settled(generation)
    return True


def abandon_generation(generation_id: int) -> bool:
    """A web process stopping hands back a generation it could not finish in its grace
    period: failed, the reservation released, nothing charged (unless it settled meanwhile)."""
    return _fail_and_release(
        generation_id,
        [Generation.Status.RUNNING],
        timezone.now(),
        message="The server restarted before the generation finished. You were not charged.",
        note="interrupted by a restart, nothing charged",
    )


def _redispatch_lost_runs(now: datetime) -> None:
    """Playground rows whose task never started (a lost message) are sent again; rows whose
    worker went silent past the upstream time budget (a killed worker) are queued again, or
    failed and refunded once they have used up their attempts."""
    from . import tasks  # tasks imports this module

    wait = timedelta(seconds=settings.GENERATION_REDISPATCH_SECONDS)
    silent = timedelta(seconds=settings.GENERATION_TIMEOUT_SECONDS) + wait
    playground = Generation.objects.filter(
        source=Generation.Source.PLAYGROUND, deadline_at__gte=now
    )
    lost = playground.filter(status=Generation.Status.QUEUED, dispatched_at__lt=now - wait)
    dead = playground.filter(status=Generation.Status.RUNNING, started_at__lt=now - silent)
    for pk, attempts in dead.values_list("pk", "attempts")[:500]:
        if attempts >= settings.GENERATION_MAX_ATTEMPTS:
            _fail_and_release(
                pk,
                [Generation.Status.RUNNING],
                now,
                message="The image service did not answer in time. You were not charged.",
                note="abandoned, nothing delivered",
            )
            continue
        requeued = Generation.objects.filter(
            pk=pk, status=Generation.Status.RUNNING, started_at__lt=now - silent
        ).update(status=Generation.Status.QUEUED, dispatched_at=now)
        if requeued:
            logger.warning("generation %s: its worker went silent; queued again", pk)
            tasks.send_generation(pk)
    for pk in lost.values_list("pk", flat=True)[:500]:
        resent = Generation.objects.filter(
            pk=pk, status=Generation.Status.QUEUED, dispatched_at__lt=now - wait
        ).update(dispatched_at=now)
        if resent:
            logger.warning("generation %s: its task never started; sent again", pk)
            tasks.send_generation(pk)


def _delete_files_after_commit(images: list[tuple[str, str]]) -> None:
    """Delete each (token, file name)'s original and thumbnail once the transaction commits, so
    a deletion that rolls back loses nothing."""

    def delete() -> None:
        storage.delete_many(
            path
            for token, name in images
            for path in (name, thumbnails.thumbnail_name(token))
            if path
        )

    transaction.on_commit(delete)


def delete_image(image: Image) -> None:
    """The customer deletes one image: its row, file and thumbnail. The generation, its
    charge and the ledger keep their lines."""
    with transaction.atomic():
        Image.objects.filter(pk=image.pk).delete()
        _delete_files_after_commit([(image.token, image.file.name)])


def purge_expired_images(now: datetime | None = None, batch: int = 1000) -> int:
    """Delete images older than IMAGE_RETENTION_DAYS (0 keeps them forever). Returns how many."""
    days = settings.IMAGE_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    total = 0
    while True:
        with transaction.atomic():
            rows = list(
                Image.objects.filter(created_at__lt=cutoff)
                .order_by("created_at")
                .values_list("pk", "token", "file")[:batch]
            )
            if not rows:
                break
            Image.objects.filter(pk__in=[pk for pk, *_ in rows]).delete()
            _delete_files_after_commit([(token, name) for _, token, name in rows])
        total += len(rows)
    if total:
        logger.info("retention: deleted %d images older than %d days", total, days)
    return total


def erase_customer_content(user: User) -> int:
    """Delete what a closing account made (images and their files) and blank what it wrote
    (prompts, parameters, idempotency keys), keeping each request's amounts for the books.

    Returns how many images were deleted.
    """
    images = Image.objects.filter(user=user)
    files = list(images.values_list("token", "file"))
    deleted, _ = images.delete()
    Generation.objects.filter(user=user).update(
        prompt="", params={}, idempotency_key="", request_hash="", error_message=""
    )
    _delete_files_after_commit(files)
    return deleted


def thumbnail_url(image: Image) -> str:
    return f"{settings.IMAGE_BASE_URL}/img/t/{image.token}.webp"
