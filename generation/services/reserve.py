"""Reserving a generation: priced by billing's quote, recorded, and its credits held, at once.

On PostgreSQL (with GENERATION_SINGLE_STATEMENT_SQL) the row and the hold are one statement
(generation/hotpath.py); a refusal for credits, and every reservation elsewhere, is one ORM
transaction that writes the same rows. Requests with and without an Idempotency-Key take the
same way: the key is looked up first (a repeat is answered from the first request), and a
concurrent request with the same key that wins the insert makes this one its repeat.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any, cast

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import Account
from billing import limits as billing_limits
from billing import services as billing
from billing.models import CreditAccount
from keys.models import ApiKey
from server import metrics
from server.steps import Steps

from .. import hotpath
from ..catalog import ModelInfo
from ..models import Generation, new_public_id
from ..refusals import Reason, Refusal, ShortOfCredits
from ..spec import GenerationSpec
from . import spend

logger = logging.getLogger(__name__)


class IdempotentReplay(Exception):
    """The Idempotency-Key was used before with this body: answer with that generation."""

    def __init__(self, generation: Generation) -> None:
        super().__init__(generation.public_id)
        self.generation = generation


def _priced_as(spec: GenerationSpec) -> dict[str, int]:
    """What billing prices ``spec`` by: one upstream call per image (a set: one call, of up to
    its most images), each image at the most pixels its size can reach, and the reference
    images each call is sent."""
    return {
        "max_pixels": spec.size.most_pixels,
        "calls": spec.n,
        "references": len(spec.references),
        "images_per_call": spec.images_per_call,
    }


def quote(spec: GenerationSpec) -> billing.Quote:
    """What ``spec`` costs: what is held for it, and how each delivered image is charged.
    Refusal(NOT_FOR_SALE) when its model has no price rule."""
    try:
        return billing.quote(spec.model.id, **_priced_as(spec))
    except billing.UnknownPrice:
        logger.error("no price rule for %s: add one in the admin", spec.model.id)
        raise Refusal(
            Reason.NOT_FOR_SALE, f"{spec.model.id} is not available for sale right now."
        ) from None


async def reserve_generation(
    steps: Steps,
    *,
    account: Account,
    made_by_id: int,
    spec: GenerationSpec,
    source: str = Generation.Source.API,
    api_key: ApiKey | None = None,
    idempotency_key: str | None = None,
    request_hash: str = "",
    public_id: str | None = None,
    queued: bool = False,
) -> Generation:
    """Price, record and hold, atomically, for ``account`` (whose credits, limits and request it
    is), asked by its member ``made_by_id``. ``queued``: an API job (run by a worker, as the
    playground's are) rather than work this process runs at once. Raises ShortOfCredits (a
    failed row records the refusal for the usage log), Refusal (not for sale, an
    Idempotency-Key reused with another body) or IdempotentReplay."""
    priced = billing.cached_quote(spec.model.id, **_priced_as(spec)) if steps.on_loop else None
    if priced is None:  # not on the loop, or the cached price list is due for a refresh
        priced = await steps.run(quote, spec)
    now = timezone.now()
    limit = spend.key_limit(api_key, now)
    fields = _generation_fields(account, made_by_id, spec, source, api_key, public_id, priced, now)
    _set_status(fields, source, queued, now)
    fields.update(
        idempotency_key=idempotency_key or "",
        request_hash=request_hash,
        spend_window=limit.window if limit else "",
    )
    if idempotency_key:
        await steps.run(_check_idempotency, account, idempotency_key, request_hash, now)
    if hotpath.available():
        generation = Generation(**fields)
        hold = priced.hold()
        try:
            opened = await hotpath.open_generation(
                steps, generation, hold, _describe(generation), limit
            )
        except IntegrityError as exc:
            if billing_limits.is_cap_refusal(exc):
                opened = None  # the ORM path below records and explains the refusal
            elif not idempotency_key:
                raise
            else:
                # A concurrent request with the same key won the insert: its repeat.
                await steps.run(_check_idempotency, account, idempotency_key, request_hash, now)
                raise
        if opened:
            metrics.generation_reserved(generation)
            counted = None
            if limit is not None and opened.window_spent_credits is not None:
                counted = billing_limits.Counted(
                    limit,
                    spent_before_credits=opened.window_spent_credits - hold["held_credits"],
                    spent_after_credits=opened.window_spent_credits,
                    alerted_percent=opened.window_alerted_percent or 0,
                )
            await _send_alerts(
                spend.alerts_due(
                    _loaded_account(account),
                    balance_before_credits=opened.balance_after_credits + hold["held_credits"],
                    balance_after_credits=opened.balance_after_credits,
                    counted=counted,
                )
            )
            return generation
        # Refused for credits or by the cap: the ORM path below records and explains it.
    generation, due = await steps.run(
        _reserve_with_orm, fields, priced, account, api_key, limit, now
    )
    await _send_alerts(due)
    return generation


def _loaded_account(account: Account) -> CreditAccount | None:
    """The account's credit account if it was loaded with the key (no query), else None."""
    related = Account.credit_account.related
    if not related.is_cached(account):
        return None
    return cast(CreditAccount | None, related.get_cached_value(account))


async def _send_alerts(due: list[tuple[str, tuple[object, ...]]]) -> None:
    """Hand the alerts a hold set off to the workers (nearly always none: no broker call)."""
    if not due:
        return
    from .. import tasks  # tasks imports the services

    await asyncio.to_thread(tasks.send_alerts, due)


def begin_generation(**arguments: Any) -> Generation:
    """``reserve_generation`` (same arguments, after its ``steps``) for a synchronous caller: a
    test, a management command."""
    return async_to_sync(reserve_generation)(Steps.inline(), **arguments)


def deadline_seconds(model: ModelInfo) -> int:
    """How long after it is accepted a generation of ``model`` must be settled by, before the
    reconciler fails and refunds it: GENERATION_DEADLINE_SECONDS, plus whatever the model's
    time budget takes past the default one."""
    extra = max(0, model.generation_timeout_seconds - settings.GENERATION_TIMEOUT_SECONDS)
    return settings.GENERATION_DEADLINE_SECONDS + extra


def _generation_fields(
    account: Account,
    made_by_id: int,
    spec: GenerationSpec,
    source: str,
    api_key: ApiKey | None,
    public_id: str | None,
    priced: billing.Quote,
    now: datetime,
) -> dict[str, Any]:
    return {
        "public_id": public_id or new_public_id(),
        "account": account,
        "user_id": made_by_id,
        "api_key": api_key,
        "source": source,
        "model": spec.model.id,
        "upstream_model": spec.model.upstream_id,
        "prompt": spec.prompt,
        "size": spec.size.value,
        "size_tier": priced.tier.name,
        "n": spec.most_images,  # a set's most images; its calls are ``Generation.calls``
        "response_format": spec.response_format,
        "params": spec.params(),
        "price_per_image_credits": priced.per_image_credits,
        "price_quote": priced.record(),
        "reserved_credits": priced.held_credits,
        "created_at": now,
        "deadline_at": now + timedelta(seconds=deadline_seconds(spec.model)),
    }


def _set_status(fields: dict[str, Any], source: str, queued: bool, now: datetime) -> None:
    if source == Generation.Source.API and not queued:
        fields.update(status=Generation.Status.RUNNING, started_at=now)
    else:
        fields.update(dispatched_at=now)  # its task is sent as soon as the row commits


def _reserve_with_orm(
    fields: dict[str, Any],
    priced: billing.Quote,
    account: Account,
    api_key: ApiKey | None,
    limit: billing.Limit | None,
    now: datetime,
) -> tuple[Generation, list[tuple[str, tuple[object, ...]]]]:
    """The reservation in one ORM transaction, and the alerts its hold set off."""
    idempotency_key = fields["idempotency_key"]
    try:
        with transaction.atomic():
            generation = Generation.objects.create(**fields)
            held = billing.hold(
                account.pk,
                priced.hold(),
                reference=generation.ledger_reference,
                description=_describe(generation),
                limit=limit,
                now=now,
            )
    except billing.SpendCapReached as reached:
        assert api_key is not None  # only a key has a cap
        refusal = spend.cap_refusal(reached, api_key)
        _record_refusal(fields, refusal.message, status=402, code="key_budget_exceeded", now=now)
        raise refusal from None
    except IntegrityError:
        if not idempotency_key:
            raise
        # A concurrent request with the same key won the insert: answer as its repeat.
        _check_idempotency(account, idempotency_key, fields["request_hash"], now)
        raise
    except billing.InsufficientCredits as exc:
        raise _refused_for_credits(fields, exc, now) from None
    metrics.generation_reserved(generation)
    due = spend.alerts_due(
        _loaded_account(account) or CreditAccount.objects.filter(owner=account).first(),
        balance_before_credits=held.balance_before_credits,
        balance_after_credits=held.entry.balance_after_credits,
        counted=held.window,
    )
    return generation, due


def _refused_for_credits(
    fields: dict[str, Any], exc: billing.InsufficientCredits, now: datetime
) -> ShortOfCredits:
    """Record the refusal (nothing was held; the row is there so the customer's usage log shows
    it) and say why."""
    owed = exc.owed_credits if isinstance(exc, billing.CreditsOwed) else 0
    # The billing page's full address: an API client's log shows where to go.
    billing_url = f"{settings.SITE_URL}{reverse('billing:ledger')}"
    needed, balance = exc.needed_credits, exc.balance_credits
    message = (
        f"Your account owes {owed:,} credits ({billing.format_usd_for_people(owed)}) after a "
        "card payment was refunded or disputed. API use is paused until that is paid: add "
        f"credits at {billing_url} and they pay it first."
        if owed
        else f"Insufficient credits: this request costs {needed:,} credits "
        f"({billing.format_usd_for_people(needed)}) and your balance is {balance:,} credits "
        f"({billing.format_usd_for_people(balance)}). Add credits at {billing_url}"
    )
    _record_refusal(fields, message, status=402, code="insufficient_quota", now=now)
    return ShortOfCredits(
        message,
        needed_credits=exc.needed_credits,
        balance_credits=exc.balance_credits,
        owed_credits=owed,
    )


def _record_refusal(
    fields: dict[str, Any], message: str, *, status: int, code: str, now: datetime
) -> None:
    """A request refused before anything was held, recorded as a failed row so the customer's
    usage log shows it (nothing held, nothing charged, counted in no window)."""
    Generation.objects.create(
        **{
            **fields,
            # A retry with the same Idempotency-Key, once the refusal is mended, is new work.
            "idempotency_key": "",
            "request_hash": "",
            "reserved_credits": 0,
            "spend_window": "",
            "status": Generation.Status.FAILED,
            "http_status": status,
            "error_code": code,
            "error_message": message,
            "finished_at": now,
            "latency_ms": 0,
        }
    )


def is_idempotent_repeat(account: Account, key: str | None) -> bool:
    """Whether a request with this Idempotency-Key will be answered from an earlier one (so it
    must not count as new work against the rate limits)."""
    if not key:
        return False
    since = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_WINDOW_SECONDS)
    return Generation.objects.filter(
        account=account, idempotency_key=key, created_at__gte=since
    ).exists()


def _check_idempotency(account: Account, key: str, request_hash: str, now: datetime) -> None:
    window_start = now - timedelta(seconds=settings.IDEMPOTENCY_WINDOW_SECONDS)
    existing = Generation.objects.filter(account=account, idempotency_key=key).first()
    if existing is None:
        return
    if existing.created_at < window_start:
        # Older than the window: the key is free again.
        Generation.objects.filter(pk=existing.pk).update(idempotency_key="")
        return
    if existing.request_hash != request_hash:
        raise Refusal(
            Reason.IDEMPOTENCY_KEY_REUSED,
            "This Idempotency-Key was already used with a different request body.",
            param="Idempotency-Key",
            code="idempotency_key_reused",
        )
    raise IdempotentReplay(existing)


def _describe(generation: Generation) -> str:
    """The words of a generation's hold in the customer's ledger."""
    return f"{generation.n} x {generation.model} {generation.size} ({generation.public_id})"
