"""Settling a generation: what was delivered is stored and charged, the rest released, once.

``settle_generation`` stores each delivered image under an unguessable name, then claims the
row and makes billing's settlement in one step (on PostgreSQL one statement,
generation/hotpath.py; elsewhere one ORM transaction): the hold released and exactly the
delivered images charged by the quote the row keeps, each at the size it was delivered with.
A row the reconciler settled first is not charged, and its files are removed again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, transaction
from django.utils import timezone

from billing import services as billing
from server import metrics
from server.asyncdb import is_connection_lost
from server.steps import Steps

from .. import hotpath, provenance, ratelimits, storage
from ..encoding import Delivery
from ..models import Generation, Image, new_image_token
from ..upstream import DeliveredImage, Failure, FailureKind, Outcome
from .announce import announce_finished
from .images import image_storage_name

logger = logging.getLogger(__name__)

# A delivered image once stored: its position in the request, the image, its token, its name.
_Stored = tuple[int, DeliveredImage, str, str]

# What a delivered image becomes when it cannot be stored: not delivered, so not charged.
_NOT_STORED = Failure(
    kind=FailureKind.NOT_STORED, code="not_stored", message="The image could not be saved."
)


@dataclass
class Completed:
    """A settled generation and its stored images. The images' bytes are not kept: a b64_json
    answer streams them from storage (api/views.py), so they leave memory once stored."""

    generation: Generation
    images: list[Image]


async def settle_generation(
    steps: Steps, generation: Generation, outcomes: list[Outcome], *, latency_ms: int
) -> Completed:
    """Store what was delivered and settle the money, exactly once. The generation's
    concurrency slot goes back whatever happens.

    Images that cannot be stored (the store is down, full or refuses us) are not delivered: the
    generation settles at once as failed and uncharged, and the files already written for it
    are removed. A settlement whose database connection dies is tried once more."""
    try:
        try:
            made_by = provenance.MadeBy.for_model(generation.model, generation.upstream_model)
            delivery = Delivery.of(generation.params)
            stored = await _store(steps, outcomes, made_by, delivery)
        except Exception:
            logger.exception("generation %s: its images could not be stored", generation.public_id)
            metrics.images_not_stored()
            outcomes = [_NOT_STORED if isinstance(o, DeliveredImage) else o for o in outcomes]
            stored = []
        settlement = _Settlement.of(generation, outcomes, stored, latency_ms)
        claimed = await _claim(steps, generation, settlement)
    finally:
        # Even when the settlement fails (the reconciler then refunds the row), the slot goes
        # back (or lapses with its lease, if its store cannot be reached). The files stay: a
        # failure can come after the commit, and they may be charged (the orphan sweep removes
        # those of a row that was never settled with them).
        await release_slot(steps, generation)
    if not claimed:
        return await steps.run(_too_late, generation, stored)
    if claimed.has_webhooks is not False:
        await steps.run(announce_finished, generation.pk, generation.account_id)
    return settlement.completed(generation, stored)


async def _store(
    steps: Steps, outcomes: list[Outcome], made_by: provenance.MadeBy, delivery: Delivery
) -> list[_Stored]:
    store = functools.partial(_store_delivered, outcomes, made_by, delivery)
    if (
        steps.on_loop
        and not storage.is_remote()
        and not provenance.signs()
        and not delivery.may_reencode
    ):
        # A local file is written (and its XMP added) faster than a thread would take to start
        # writing it; signing a C2PA manifest, or re-encoding an image, is not.
        return store()
    if steps.on_loop:
        return await asyncio.to_thread(store)
    return await steps.run(store)


@dataclass(frozen=True)
class _Claim:
    """A claim made. ``has_webhooks``: whether the owner has a webhook endpoint, when the claim
    could tell (the single statement asks), else None."""

    has_webhooks: bool | None = None


async def _claim(steps: Steps, generation: Generation, settlement: _Settlement) -> _Claim | None:
    """Claim the row and settle its money; once more if the database connection was lost.

    Safe to repeat: the claim is conditional on the row being unsettled. If the first attempt
    committed before its connection died, the second claims nothing, and the row's finish time
    (this settlement's own) tells that it was ours."""
    try:
        return await _claim_once(steps, generation, settlement)
    except DatabaseError as error:
        if not is_connection_lost(error):
            raise
        logger.warning(
            "generation %s: the settlement lost its database connection; trying once more",
            generation.public_id,
        )
        metrics.settlement_retried()
    if claim := await _claim_once(steps, generation, settlement):
        return claim
    return _Claim() if await steps.run(_settled_by, generation, settlement) else None


async def _claim_once(
    steps: Steps, generation: Generation, settlement: _Settlement
) -> _Claim | None:
    if hotpath.available():
        claimed = await hotpath.settle_generation(steps, generation, **settlement.written())
        return _Claim(claimed.has_webhooks) if claimed else None
    return _Claim() if await steps.run(_settle_with_orm, generation, settlement) else None


def _settled_by(generation: Generation, settlement: _Settlement) -> bool:
    """Whether ``settlement`` is what the row holds (it committed, then the connection died
    before saying so); if so its image rows get their ids."""
    ours = Generation.objects.filter(
        pk=generation.pk, finished_at=settlement.now, status=settlement.outcome["status"]
    ).exists()
    if ours and settlement.images:
        ids = dict(
            Image.objects.filter(
                generation_id=generation.pk, token__in=[i.token for i in settlement.images]
            ).values_list("token", "pk")
        )
        for image in settlement.images:
            image.pk = ids[image.token]
            image._state.adding = False
    return ours


def complete_generation(
    generation: Generation, outcomes: list[Outcome], *, latency_ms: int
) -> Completed:
    """``settle_generation`` for a synchronous caller (a Celery worker, a test)."""
    return async_to_sync(settle_generation)(
        Steps.inline(), generation, outcomes, latency_ms=latency_ms
    )


async def release_slot(steps: Steps, generation: Generation) -> None:
    """Give back the generation's concurrency slot (idempotent)."""
    await release(steps, generation.account_id, generation.api_key_id, generation.public_id)


async def release(steps: Steps, account_id: int, api_key_id: int | None, holder: str) -> None:
    """Give back the concurrency slots ``holder`` took (idempotent).

    Never raises: this runs after a settlement (or beside an error being raised), and a slot
    store that cannot be reached just then (the database restarting, with the limits counted
    there) must not turn a generation that was settled and charged into an error for its
    customer, nor hide the error it is failing with. Such a slot lapses with its lease
    (RATE_LIMIT_SLOT_LEASE_SECONDS); the reconciler gives back that of a row it fails."""
    try:
        if steps.on_loop:
            await ratelimits.arelease(account_id, api_key_id, holder)
        else:
            await steps.run(ratelimits.release, account_id, api_key_id, holder)
    except Exception as error:
        # The error's type only, as for an unreachable Redis (server/outage.py): the database
        # being away already shows in every request that needs it.
        logger.warning(
            "the concurrency slot of %s could not be given back now (%s); it lapses with its lease",
            holder,
            type(error).__name__,
        )
        metrics.slot_release_failed()


def _store_delivered(
    outcomes: list[Outcome], made_by: provenance.MadeBy, delivery: Delivery
) -> list[_Stored]:
    """Each delivered image in the format asked for (re-encoded where the upstream did not make
    it), marked with its provenance and saved under an unguessable name; all or none (a failure
    removes those already written, and whatever the failed write left, then raises). The marked
    bytes are the ones stored, counted and answered as b64_json."""
    stored: list[_Stored] = []
    writing = ""
    try:
        for index, image in enumerate(outcomes):
            if isinstance(image, DeliveredImage):
                # Re-encoded first: the provenance (and a C2PA manifest's hash) is of the bytes
                # we host.
                image = provenance.mark_delivered(delivery.apply(image), made_by)
                token = new_image_token()
                writing = image_storage_name(token, image.extension)
                name = default_storage.save(writing, ContentFile(image.data))
                stored.append((index, image, token, name))
                writing = ""
    except BaseException:
        _remove_files([name for *_, name in stored])
        if writing:
            _remove_partial_file(writing)
        raise
    return stored


def _remove_files(names: list[str]) -> None:
    """Best effort (the store may be what failed): what is left, the orphan sweep removes."""
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:
            logger.warning("could not remove %s; the orphan sweep will", name, exc_info=True)


def _remove_partial_file(name: str) -> None:
    """A write that failed half way (a full disk) leaves what it wrote under its name: Django's
    FileSystemStorage does not remove it. Asked first, since usually nothing is there (the
    folder could not be made; a bucket's upload is all or nothing)."""
    try:
        if default_storage.exists(name):
            default_storage.delete(name)
    except Exception:
        logger.warning("could not remove %s; the orphan sweep will", name, exc_info=True)


def _too_late(generation: Generation, stored: list[_Stored]) -> Completed:
    # The reconciler settled this row first (we overran the deadline): nothing is charged, so
    # nothing may be delivered.
    _remove_files([name for *_, name in stored])
    logger.error("generation %s finished after its deadline", generation.public_id)
    generation.refresh_from_db()
    return Completed(generation, [])


def quote_of(generation: Generation) -> billing.Quote:
    """The quote ``generation`` was accepted with, from the figures its row keeps."""
    return billing.Quote.of_hold(
        record=generation.price_quote,
        held_credits=generation.reserved_credits,
        # A row accepted before price rules: a flat price per image.
        per_image_credits=generation.price_per_image_credits,
        images=generation.n,
    )


@dataclass
class _Settlement:
    """What settling a generation writes: its outcome (the row's settled fields), its image
    rows, the money (billing's settlement quantities) and the ledger's words."""

    outcome: dict[str, Any]
    images: list[Image]
    money: dict[str, int]
    description: str
    charged_as: str
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
        # Each image charged at the size it was delivered with, by the call that delivered it.
        quote = quote_of(generation)
        delivered = [
            billing.Delivered(call=image.call, pixels=image.width * image.height)
            for _, image, _, _ in stored
        ]
        money = quote.settlement(delivered=delivered)
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
                account_id=generation.account_id,
                token=token,
                index=index,
                file=name,
                content_type=image.content_type,
                width=image.width,
                height=image.height,
                bytes=len(image.data),
                layer=image.layer,
                created_at=now,
            )
            for index, image, token, name in stored
        ]
        description = _describe_settlement(generation, len(stored))
        return cls(outcome, images, money, description, quote.charged_as(delivered), now)

    def written(self) -> dict[str, Any]:
        """hotpath.settle_generation's arguments after the generation."""
        return {
            "outcome": self.outcome,
            "images": self.images,
            "settlement": self.money,
            "description": self.description,
            "charged_as": self.charged_as,
            "now": self.now,
        }

    def completed(self, generation: Generation, stored: list[_Stored]) -> Completed:
        """The settled generation (claimed: this settlement is what the database holds)."""
        for field_name, value in self.outcome.items():
            setattr(generation, field_name, value)
        metrics.generation_settled(generation)
        return Completed(generation, self.images)


def _settle_with_orm(generation: Generation, settlement: _Settlement) -> bool:
    with transaction.atomic():
        claimed = Generation.objects.filter(
            pk=generation.pk, status__in=Generation.UNSETTLED
        ).update(**settlement.outcome)
        if claimed:
            Image.objects.bulk_create(settlement.images)
            billing.settle(
                generation.account_id,
                settlement.money,
                reference=generation.ledger_reference,
                description=settlement.description,
                charged_as=settlement.charged_as,
                spend_window=generation.spend_window,
                now=settlement.now,
            )
    return bool(claimed)


def _describe_settlement(generation: Generation, delivered: int) -> str:
    """The words of a generation's release and charge in the customer's ledger."""
    return (
        f"{delivered} of {generation.n} images, "
        f"{generation.model} {generation.size} ({generation.public_id})"
    )


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
    FailureKind.NOT_STORED: (
        503, "storage_error", None, "The image was made but could not be saved; retry shortly.",
    ),
    FailureKind.UPSTREAM_ERROR: (
        502, "upstream_error", None, "The image service failed to generate the image.",
    ),
}  # fmt: skip

_FAILURE_PRIORITY = list(_FAILURE_ERRORS)


@dataclass(frozen=True)
class FailedOutcome:
    """What a generation that delivered nothing records on its row: the status, code, input at
    fault and message the API answers with (then and on every replay)."""

    status: int
    code: str
    param: str | None
    message: str


def failure_error(failures: list[Failure]) -> FailedOutcome:
    """The customer's error for a request that delivered nothing (and was charged nothing)."""
    failure = min(failures, key=lambda f: _FAILURE_PRIORITY.index(f.kind))
    status, code, param, message = _FAILURE_ERRORS[failure.kind]
    return FailedOutcome(
        status=status,
        code=code,
        param=failure.param if failure.kind == FailureKind.INVALID_REQUEST else param,
        message=message.format(message=failure.message) + " You were not charged.",
    )
