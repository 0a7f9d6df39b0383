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
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from billing import services as billing
from keys.models import ApiKey

from . import upstream
from .catalog import ModelInfo, Size, SizeError, get_model, resolve_size
from .errors import NO_RETRY, ApiError, invalid
from .models import Generation, Image, new_image_token
from .schemas import ImageGenerationRequest
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


def begin_generation(
    *,
    user: User,
    spec: GenerationSpec,
    source: str = Generation.Source.API,
    api_key: ApiKey | None = None,
    idempotency_key: str | None = None,
    request_hash: str = "",
) -> Generation:
    """Price, record and reserve, atomically. Raises billing.InsufficientCredits,
    IdempotentReplay or IdempotencyMismatch; the first leaves a failed row for the usage log."""
    try:
        price = billing.price_per_image(spec.model.id, spec.size.tier)
    except billing.UnknownPrice:
        logger.error("no price for %s tier %r: add one in the admin", spec.model.id, spec.size.tier)
        raise ApiError(
            503,
            f"{spec.model.id} is not available for sale right now.",
            type="server_error",
            code="model_not_priced",
            headers=NO_RETRY,
        ) from None
    now = timezone.now()
    fields: dict[str, Any] = {
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
        "price_per_image_credits": price,
        "reserved_credits": price * spec.n,
        "created_at": now,
        "deadline_at": now + timedelta(seconds=settings.GENERATION_DEADLINE_SECONDS),
    }
    if source == Generation.Source.API:
        fields.update(status=Generation.Status.RUNNING, started_at=now)
    if idempotency_key:
        _check_idempotency(user, idempotency_key, request_hash, now)
    try:
        with transaction.atomic():
            generation = Generation.objects.create(
                idempotency_key=idempotency_key or "", request_hash=request_hash, **fields
            )
            billing.reserve(
                user.pk,
                generation.reserved_credits,
                reference=generation.ledger_reference,
                description=_describe(generation),
            )
    except IntegrityError:
        if not idempotency_key:
            raise
        # A concurrent request with the same key won the insert: answer as its repeat.
        _check_idempotency(user, idempotency_key, request_hash, now)
        raise
    except billing.InsufficientCredits as exc:
        # Nothing was reserved; the row is there so the customer's usage log shows the refusal.
        Generation.objects.create(
            **{
                **fields,
                "reserved_credits": 0,
                "status": Generation.Status.FAILED,
                "http_status": 402,
                "error_code": "insufficient_quota",
                "error_message": str(exc),
                "finished_at": now,
                "latency_ms": 0,
            }
        )
        raise
    return generation


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
    return f"{generation.n} x {generation.model} {generation.size} ({generation.public_id})"


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


def complete_generation(
    generation: Generation, outcomes: list[Outcome], *, latency_ms: int
) -> Completed:
    """Store what was delivered and settle the money, exactly once."""
    delivered = [(i, o) for i, o in enumerate(outcomes) if isinstance(o, DeliveredImage)]
    failures = [o for o in outcomes if isinstance(o, Failure)]
    stored: list[tuple[int, DeliveredImage, str, str]] = []
    for index, image in delivered:
        token = new_image_token()
        name = default_storage.save(
            image_storage_name(token, image.extension), ContentFile(image.data)
        )
        stored.append((index, image, token, name))

    charged = generation.price_per_image_credits * len(stored)
    error = None if stored else failure_error(failures)
    now = timezone.now()
    outcome: dict[str, Any] = {
        "status": Generation.Status.SUCCEEDED if stored else Generation.Status.FAILED,
        "images_delivered": len(stored),
        "charged_credits": charged,
        "http_status": error.status if error else 200,
        "error_code": (error.code or "") if error else _partial_note(failures),
        "error_param": (error.param or "") if error else "",
        "error_message": error.message if error else _partial_message(failures, len(outcomes)),
        "finished_at": now,
        "latency_ms": latency_ms,
    }
    with transaction.atomic():
        claimed = Generation.objects.filter(
            pk=generation.pk, status__in=[Generation.Status.QUEUED, Generation.Status.RUNNING]
        ).update(**outcome)
        if claimed:
            images = Image.objects.bulk_create(
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
            )
            billing.settle(
                generation.user_id,
                reference=generation.ledger_reference,
                reserved_credits=generation.reserved_credits,
                charged_credits=charged,
                description=f"{len(stored)} of {generation.n} images, "
                f"{generation.model} {generation.size} ({generation.public_id})",
            )
    if not claimed:
        # The reconciler settled this row first (we overran the deadline): nothing is charged,
        # so nothing may be delivered.
        for *_, name in stored:
            default_storage.delete(name)
        logger.error("generation %s finished after its deadline", generation.public_id)
        generation.refresh_from_db()
        return Completed(generation, [])
    for field_name, value in outcome.items():
        setattr(generation, field_name, value)
    data = {img.pk: image.data for img, (_, image, _, _) in zip(images, stored, strict=True)}
    return Completed(generation, images, data)


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
    extension = image.file.name.rsplit(".", 1)[-1]
    return f"{settings.IMAGE_BASE_URL or base_url}/img/{image.token}.{extension}"


def read_image_b64(image: Image, data: dict[int, bytes]) -> str:
    raw = data.get(image.pk)
    if raw is None:
        with default_storage.open(image.file.name, "rb") as handle:
            raw = handle.read()
    return base64.b64encode(raw).decode("ascii")


def reconcile_stuck_generations(now: datetime | None = None) -> int:
    """Fail and release every generation still unsettled past its deadline. Returns how many."""
    now = now or timezone.now()
    stuck = Generation.objects.filter(
        status__in=[Generation.Status.QUEUED, Generation.Status.RUNNING], deadline_at__lt=now
    ).values_list("pk", flat=True)[:500]
    count = 0
    for pk in stuck:
        with transaction.atomic():
            claimed = Generation.objects.filter(
                pk=pk, status__in=[Generation.Status.QUEUED, Generation.Status.RUNNING]
            ).update(
                status=Generation.Status.FAILED,
                http_status=503,
                error_code="expired",
                error_message="The generation did not finish in time. You were not charged.",
                finished_at=now,
            )
            if not claimed:
                continue
            generation = Generation.objects.get(pk=pk)
            billing.settle(
                generation.user_id,
                reference=generation.ledger_reference,
                reserved_credits=generation.reserved_credits,
                charged_credits=0,
                description=f"expired, nothing delivered ({generation.public_id})",
            )
            count += 1
    if count:
        logger.warning("reconciled %d generations stuck past their deadline", count)
    return count
