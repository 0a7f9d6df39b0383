"""Webhooks: endpoints, publishing events, and delivering them on the workers.

Every write of this app's tables is here. Other apps call ``publish``; the dashboard's pages
call the endpoint functions; the Celery tasks call ``deliver`` and ``sweep``.

A delivery, step by step (``deliver``): the message is claimed by a conditional UPDATE (its
status and attempt count as read, and due), which raises its attempt count and leases it for
the time an attempt may take; the attempt is signed afresh (its own webhook-timestamp, the
message's webhook-id) and sent by webhooks/sender.py; the outcome is logged as an Attempt and
the message finished (2xx), failed (no attempts left) or made due again after the next delay of
WEBHOOK_RETRY_SCHEDULE_SECONDS. A lost task or a worker that died is made good by ``sweep``,
which queues every message due (a lapsed lease is due too).

A delivery never touches the publisher's rows and never raises into it: ``publish`` only inserts
rows in the caller's transaction and queues their delivery when it commits.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Account

from . import crypto, events, policy, sender, signing
from .models import Attempt, Endpoint, Event, Message

logger = logging.getLogger(__name__)

DESCRIPTION_MAX_LENGTH = 100
# After a rotation the previous secret signs too, for this long.
PREVIOUS_SECRET_SECONDS = 24 * 3600
# A claimed attempt that has not reported back after the time limit and this margin is presumed
# lost (its worker died) and is due again.
CLAIM_MARGIN_SECONDS = 60
# Retries due sooner than this are queued with a countdown; later ones wait for the sweep (a
# broker holds a long countdown badly: Redis redelivers it every visibility timeout).
COUNTDOWN_MAX_SECONDS = 600
SWEEP_BATCH = 500


class Refusal(Exception):
    """An action the owner asked for that we will not do; ``message`` is for them."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class IssuedSecret:
    endpoint: Endpoint
    secret: str


# --- Endpoints ----------------------------------------------------------------------------------


def create_endpoint(
    account: Account, url: str, event_types: list[str], description: str = ""
) -> IssuedSecret:
    """A new enabled endpoint with a new signing secret (returned once, stored encrypted)."""
    url = _checked_url(url)
    chosen = _checked_types(event_types)
    with transaction.atomic():
        # The account's row is locked so that two requests cannot both pass the count.
        Account.objects.select_for_update().filter(pk=account.pk).first()
        if Endpoint.objects.filter(account=account).count() >= settings.WEBHOOK_MAX_ENDPOINTS:
            raise Refusal(
                f"You have {settings.WEBHOOK_MAX_ENDPOINTS} endpoints, the most an account may "
                "have. Remove or reuse one first."
            )
        secret = crypto.new_secret()
        endpoint = Endpoint.objects.create(
            account=account,
            url=url,
            description=" ".join(description.split())[:DESCRIPTION_MAX_LENGTH],
            event_types=chosen,
            secret_encrypted=crypto.encrypt(secret),
        )
    logger.info("webhook endpoint %s created for account %s", endpoint.pk, account.pk)
    return IssuedSecret(endpoint, secret)


def update_event_types(endpoint: Endpoint, event_types: list[str]) -> None:
    endpoint.event_types = _checked_types(event_types)
    endpoint.save(update_fields=["event_types"])


def rotate_secret(endpoint: Endpoint) -> IssuedSecret:
    """A new secret for ``endpoint``; the current one keeps signing beside it (both signatures
    in webhook-signature) for PREVIOUS_SECRET_SECONDS, so the receiver can switch calmly."""
    secret = crypto.new_secret()
    now = timezone.now()
    with transaction.atomic():
        locked = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        locked.previous_secret_encrypted = locked.secret_encrypted
        locked.previous_secret_expires_at = now + timedelta(seconds=PREVIOUS_SECRET_SECONDS)
        locked.secret_encrypted = crypto.encrypt(secret)
        locked.secret_rotated_at = now
        locked.save(
            update_fields=[
                "previous_secret_encrypted",
                "previous_secret_expires_at",
                "secret_encrypted",
                "secret_rotated_at",
            ]
        )
    logger.info("webhook endpoint %s: secret rotated", endpoint.pk)
    return IssuedSecret(locked, secret)


def disable_endpoint(
    endpoint: Endpoint, reason: str = Endpoint.DisabledReason.OWNER, *, now: datetime | None = None
) -> bool:
    """Stop delivering to ``endpoint``: its waiting messages fail (the owner may resend them
    once it is enabled again). False if it was already disabled."""
    now = now or timezone.now()
    with transaction.atomic():
        changed = Endpoint.objects.filter(pk=endpoint.pk, disabled_at__isnull=True).update(
            disabled_at=now, disabled_reason=reason
        )
        if changed:
            Message.objects.filter(endpoint_id=endpoint.pk, status=Message.Status.PENDING).update(
                status=Message.Status.FAILED, next_attempt_at=None
            )
    endpoint.refresh_from_db()
    if changed:
        logger.info("webhook endpoint %s disabled: %s", endpoint.pk, reason)
    return bool(changed)


def enable_endpoint(endpoint: Endpoint) -> None:
    Endpoint.objects.filter(pk=endpoint.pk).update(
        disabled_at=None, disabled_reason="", failing_since=None
    )
    endpoint.refresh_from_db()


def disable_all_endpoints(account: Account) -> None:
    for endpoint in Endpoint.objects.filter(account=account, disabled_at__isnull=True):
        disable_endpoint(endpoint, Endpoint.DisabledReason.ACCOUNT_CLOSED)


def send_test_event(endpoint: Endpoint) -> Message:
    """A ``webhook.test`` event to this one endpoint, delivered like any other."""
    if not endpoint.enabled:
        raise Refusal("Enable the endpoint before sending it a test event.")
    with transaction.atomic():
        event = _new_event(
            endpoint.account,
            events.WEBHOOK_TEST,
            {"message": "A test event from the Seedream API dashboard."},
            key=f"test:{crypto.new_secret()}",
        )
        message = _new_message(event, endpoint)
    _queue_on_commit([message.pk])
    return message


def resend(message: Message) -> None:
    """One more attempt at ``message`` now, with the same webhook-id (and the same body)."""
    if not message.endpoint.enabled:
        raise Refusal("Enable the endpoint before resending to it.")
    now = timezone.now()
    # A finished message (delivered, or its attempts ran out) gets exactly one more attempt; one
    # still on its schedule is only brought forward, keeping the rest of its schedule.
    changed = Message.objects.filter(
        pk=message.pk, status__in=[Message.Status.SUCCEEDED, Message.Status.FAILED]
    ).update(
        status=Message.Status.PENDING, next_attempt_at=now, max_attempts=F("attempts") + 1
    ) or Message.objects.filter(pk=message.pk, status=Message.Status.PENDING).update(
        next_attempt_at=now
    )
    if not changed:
        raise Refusal("This message is being sent right now; look again in a moment.")
    _queue_on_commit([message.pk])


def _checked_url(url: str) -> str:
    try:
        return policy.check_endpoint_url(url)
    except policy.EndpointUrlError as error:
        raise Refusal(error.message) from None


def _checked_types(event_types: list[str]) -> list[str]:
    chosen = set(event_types)
    unknown = chosen - set(events.EVENT_TYPES)
    if unknown:
        raise Refusal(f"Unknown event type: {', '.join(sorted(unknown))}.")
    if not chosen:
        raise Refusal("Choose at least one event.")
    return [name for name in events.EVENT_TYPES if name in chosen]


def endpoint_secrets(endpoint: Endpoint, now: datetime | None = None) -> list[str]:
    """The secrets that sign the endpoint's deliveries now: its own, and the previous one while
    it is honoured after a rotation."""
    now = now or timezone.now()
    secrets = [crypto.decrypt(endpoint.secret_encrypted)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted and expires is not None and expires > now:
        secrets.append(crypto.decrypt(endpoint.previous_secret_encrypted))
    return secrets


# --- Publishing ---------------------------------------------------------------------------------


def has_endpoints(account_id: int) -> bool:
    """Whether the account has an enabled endpoint (one indexed query): a caller on a hot path
    asks this before gathering what it would publish."""
    return Endpoint.objects.filter(account_id=account_id, disabled_at__isnull=True).exists()


def publish(account: Account, event_type: str, data: dict[str, Any], *, event_key: str) -> None:
    """Record one event for each of the account's enabled endpoints subscribed to event_type, in
    the caller's transaction; deliveries are sent to the workers on commit. event_key makes it
    idempotent: publishing the same (account, event_type, event_key) again does nothing.

    An account with no endpoint for the type costs one query and records nothing (so an endpoint
    added later may still receive a later publish of the same key). Never raises for a delivery:
    a broker that cannot be reached is logged, and the sweep sends the messages later.
    """
    if event_type not in events.EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    endpoints = [
        endpoint
        for endpoint in Endpoint.objects.filter(account=account, disabled_at__isnull=True)
        if event_type in endpoint.event_types
    ]
    if not endpoints:
        return
    try:
        # A savepoint: a repeat's unique violation must not break the caller's transaction.
        with transaction.atomic():
            event = _new_event(account, event_type, data, key=event_key)
    except IntegrityError:
        return
    messages = [_new_message(event, endpoint) for endpoint in endpoints]
    _queue_on_commit([message.pk for message in messages])


def _new_event(account: Account, event_type: str, data: dict[str, Any], *, key: str) -> Event:
    event = Event(account=account, type=event_type, key=key)
    # OpenAI's event shape, so the openai SDK's webhooks.unwrap() parses it.
    event.payload = json.dumps(
        {
            "object": "event",
            "id": event.public_id,
            "type": event_type,
            "created_at": int(event.created_at.timestamp()),
            "data": data,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )
    event.save()
    return event


def _new_message(event: Event, endpoint: Endpoint) -> Message:
    return Message.objects.create(
        event=event,
        endpoint=endpoint,
        max_attempts=1 + len(settings.WEBHOOK_RETRY_SCHEDULE_SECONDS),
        next_attempt_at=event.created_at,
    )


def _queue_on_commit(message_ids: list[int], countdown: int = 0) -> None:
    from . import tasks  # tasks imports the services

    transaction.on_commit(lambda: tasks.send_deliveries(message_ids, countdown=countdown))


# --- Delivering ---------------------------------------------------------------------------------


def deliver(message_id: int, now: datetime | None = None) -> str:
    """One attempt at the message if it is due and this call wins its claim. Returns what
    happened: "succeeded", "retry", "failed", or "skipped" (not due, finished, or claimed by
    another worker). ``now`` is the schedule's clock (tests move it); signatures always carry
    the real time."""
    started_at = now or timezone.now()
    message = _claim(message_id, started_at)
    if message is None:
        return "skipped"
    endpoint = message.endpoint
    body = message.event.payload.encode()
    try:
        # Signed now, whatever clock the schedule runs on: receivers refuse a stale timestamp.
        signed_at = timezone.now()
        headers = signing.headers(
            endpoint_secrets(endpoint, signed_at),
            webhook_id=message.webhook_id,
            timestamp=signed_at,
            body=body,
        )
    except crypto.InvalidToken:
        # A key was dropped from WEBHOOK_SECRET_KEYS before this secret was re-encrypted.
        logger.error("webhook endpoint %s: its secret cannot be decrypted", endpoint.pk)
        outcome = sender.Outcome(None, "Our signing key for this endpoint is unavailable.", 0)
    else:
        outcome = sender.post_sync(endpoint.url, body, headers)
    return _record(message, started_at, outcome)


def _claim(message_id: int, now: datetime) -> Message | None:
    message = (
        Message.objects.select_related("endpoint", "event")
        .filter(pk=message_id, status__in=[Message.Status.PENDING, Message.Status.SENDING])
        .first()
    )
    if message is None or message.next_attempt_at is None or message.next_attempt_at > now:
        return None
    if not message.endpoint.enabled:
        Message.objects.filter(pk=message.pk, status=Message.Status.PENDING).update(
            status=Message.Status.FAILED, next_attempt_at=None
        )
        return None
    if message.attempts >= message.max_attempts:
        # A lapsed lease on the last attempt: its worker died without a word.
        _lost_attempt(message)
        Message.objects.filter(
            pk=message.pk, status=Message.Status.SENDING, attempts=message.attempts
        ).update(status=Message.Status.FAILED, next_attempt_at=None)
        return None
    lease = settings.WEBHOOK_TIMEOUT_SECONDS + CLAIM_MARGIN_SECONDS
    claimed = Message.objects.filter(
        pk=message.pk,
        status=message.status,
        attempts=message.attempts,
        next_attempt_at__lte=now,
    ).update(
        status=Message.Status.SENDING,
        attempts=F("attempts") + 1,
        next_attempt_at=now + timedelta(seconds=lease),
        last_attempt_at=now,
    )
    if claimed != 1:
        return None
    if message.status == Message.Status.SENDING:
        _lost_attempt(message)
    message.refresh_from_db()
    return message


def _lost_attempt(message: Message) -> None:
    """Log the attempt of a worker that died mid-delivery (a late report from a worker that
    was only slow replaces this line)."""
    Attempt.objects.get_or_create(
        message=message,
        number=message.attempts,
        defaults={
            "started_at": message.last_attempt_at or timezone.now(),
            "error": "No outcome was recorded: the worker sending it stopped.",
            "duration_ms": 0,
        },
    )


def _record(message: Message, started_at: datetime, outcome: sender.Outcome) -> str:
    number = message.attempts
    finished_at = started_at + timedelta(milliseconds=outcome.duration_ms)
    with transaction.atomic():
        Attempt.objects.update_or_create(
            message=message,
            number=number,
            defaults={
                "started_at": started_at,
                "status_code": outcome.status_code,
                "error": outcome.error
                or ("" if outcome.succeeded else "The endpoint did not answer with a 2xx."),
                "duration_ms": outcome.duration_ms,
                "response_excerpt": outcome.response_excerpt,
            },
        )
        # Only the claim that is still current may finish the message.
        mine = Message.objects.filter(pk=message.pk, status=Message.Status.SENDING, attempts=number)
        if outcome.succeeded:
            mine.update(
                status=Message.Status.SUCCEEDED, next_attempt_at=None, delivered_at=finished_at
            )
            Endpoint.objects.filter(pk=message.endpoint_id).update(failing_since=None)
            return "succeeded"
        delay = _retry_delay(number, message.max_attempts)
        if delay is None:
            mine.update(status=Message.Status.FAILED, next_attempt_at=None)
        else:
            mine.update(
                status=Message.Status.PENDING,
                next_attempt_at=finished_at + timedelta(seconds=delay),
            )
        Endpoint.objects.filter(pk=message.endpoint_id, failing_since__isnull=True).update(
            failing_since=started_at
        )
        _disable_if_failing_for_a_day(message.endpoint_id, finished_at)
    if delay is None:
        return "failed"
    if delay <= COUNTDOWN_MAX_SECONDS:
        _queue_on_commit([message.pk], countdown=delay)
    return "retry"


def _retry_delay(attempts: int, max_attempts: int) -> int | None:
    """Seconds until the next attempt after ``attempts`` failed ones, or None if none is left."""
    schedule = settings.WEBHOOK_RETRY_SCHEDULE_SECONDS
    if attempts >= max_attempts or not schedule:
        return None
    return int(schedule[min(attempts, len(schedule)) - 1])


def _disable_if_failing_for_a_day(endpoint_id: int, now: datetime) -> None:
    """ "A day of failures": every attempt to the endpoint since ``failing_since`` failed (a
    success clears it), and the first of them is WEBHOOK_DISABLE_AFTER_FAILING_SECONDS old. A
    single event that is never accepted gets there on its eighth attempt, 27.5 hours in."""
    cutoff = now - timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER_FAILING_SECONDS)
    endpoint = Endpoint.objects.filter(
        pk=endpoint_id, disabled_at__isnull=True, failing_since__lte=cutoff
    ).first()
    if endpoint is None:
        return
    if disable_endpoint(endpoint, Endpoint.DisabledReason.FAILING, now=now):
        transaction.on_commit(lambda: _email_disabled(endpoint))


def _email_disabled(endpoint: Endpoint) -> None:
    page = f"{settings.SITE_URL}/dashboard/webhooks/{endpoint.pk}/"
    since = endpoint.failing_since
    try:
        send_mail(
            subject=f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}Webhook endpoint disabled",
            message=(
                f"We disabled your webhook endpoint {endpoint.url} because every delivery to "
                f"it has failed since {since:%Y-%m-%d %H:%M} UTC.\n\n"
                "Events are not sent to it while it is disabled. When it can receive them "
                f"again, enable it (and resend what it missed) here:\n{page}\n"
            ),
            from_email=None,
            recipient_list=endpoint.account.contact_emails(),
        )
    except Exception:
        logger.exception("could not email the owner of webhook endpoint %s", endpoint.pk)


def sweep(now: datetime | None = None) -> int:
    """Queue every message that is due (a retry too far off for a countdown, a lost task, a
    lapsed claim); delete events older than WEBHOOK_RETENTION_DAYS that nothing waits on.
    Returns how many messages were queued."""
    now = now or timezone.now()
    due = list(
        Message.objects.filter(
            status__in=[Message.Status.PENDING, Message.Status.SENDING], next_attempt_at__lte=now
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    if due:
        from . import tasks

        tasks.send_deliveries(due)
    cutoff = now - timedelta(days=settings.WEBHOOK_RETENTION_DAYS)
    Event.objects.filter(created_at__lt=cutoff).exclude(
        Q(messages__status__in=[Message.Status.PENDING, Message.Status.SENDING])
    ).delete()
    return len(due)
