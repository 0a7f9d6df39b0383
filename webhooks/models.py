"""Webhook endpoints, the events published to them, one message per event and endpoint, and the
log of every attempt to deliver a message.

The Message row, not the broker, is the truth about a delivery: ``next_attempt_at`` says when it
is due, and an attempt is claimed by a conditional UPDATE on (status, attempts) so that two
workers never send the same attempt (services.deliver).
"""

from __future__ import annotations

import secrets

from django.db import models
from django.db.models import Q
from django.utils import timezone

from .events import TYPE_MAX_CHARS
from .policy import URL_MAX_CHARS

EVENT_KEY_MAX_CHARS = 200
# The first bytes of each answer kept in the attempt log.
RESPONSE_EXCERPT_BYTES = 512
ERROR_MAX_CHARS = 200


def new_event_id() -> str:
    return f"evt_{secrets.token_hex(12)}"


def new_webhook_id() -> str:
    # The webhook-id header: one per message, the same on every attempt and every resend, so a
    # receiver can drop the duplicates that at-least-once delivery brings.
    return f"msg_{secrets.token_hex(12)}"


class Endpoint(models.Model):
    class DisabledReason(models.TextChoices):
        NONE = "", "enabled"
        OWNER = "owner", "disabled by its owner"
        FAILING = "failing", "disabled after a day of failed deliveries"
        ACCOUNT_CLOSED = "account_closed", "the account was closed"

    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.CharField(max_length=URL_MAX_CHARS)
    description = models.CharField(max_length=100, blank=True)
    # The subscribed types (events.EVENT_TYPES keys), in that list's order.
    event_types = models.JSONField(default=list)
    # Fernet tokens (webhooks/crypto.py), never the secret itself.
    secret_encrypted = models.TextField()
    # After a rotation the previous secret still signs (beside the new one) until this time, so
    # a receiver can switch without refusing the deliveries in between.
    previous_secret_encrypted = models.TextField(blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(
        max_length=20, choices=DisabledReason.choices, default="", blank=True
    )
    # When the current run of failed attempts began (empty after a success): a run a day long
    # disables the endpoint (services._after_failure).
    failing_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["account", "-created_at"], name="webhook_endpoint_account_idx")
        ]
        constraints = [
            models.CheckConstraint(
                name="webhook_endpoint_disabled_has_reason",
                condition=Q(disabled_at__isnull=True, disabled_reason="")
                | (Q(disabled_at__isnull=False) & ~Q(disabled_reason="")),
            ),
            models.CheckConstraint(
                name="webhook_endpoint_previous_secret_expires",
                condition=Q(previous_secret_encrypted="", previous_secret_expires_at__isnull=True)
                | (~Q(previous_secret_encrypted="") & Q(previous_secret_expires_at__isnull=False)),
            ),
        ]

    def __str__(self) -> str:
        return self.url

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None

    @property
    def status(self) -> str:
        return "enabled" if self.enabled else "disabled"


class Event(models.Model):
    """One published event of one account. (account, type, key) is unique: publishing it again
    does nothing."""

    public_id = models.CharField(max_length=32, unique=True, default=new_event_id)
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="webhook_events"
    )
    type = models.CharField(max_length=TYPE_MAX_CHARS)
    key = models.CharField(max_length=EVENT_KEY_MAX_CHARS)
    # The exact body every message of this event sends, on every attempt (JSON, UTF-8).
    payload = models.TextField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "type", "key"], name="webhook_event_once"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.public_id}"


class Message(models.Model):
    """One event for one endpoint, delivered until a 2xx or its attempts run out."""

    class Status(models.TextChoices):
        PENDING = "pending"  # due at next_attempt_at
        SENDING = "sending"  # claimed; next_attempt_at is the claim's lease
        SUCCEEDED = "succeeded"
        FAILED = "failed"  # attempts ran out, or its endpoint was disabled

    webhook_id = models.CharField(max_length=32, unique=True, default=new_webhook_id)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="messages")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="messages")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # Attempts this message may have: one and the retry schedule's; a resend allows one more.
    max_attempts = models.PositiveIntegerField()
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    # The last successful attempt's time (a resend may follow it).
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["endpoint", "-created_at"]),
            # The sweep's question: which unfinished messages are due.
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_message_due",
                condition=Q(status__in=["pending", "sending"]),
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="webhook_message_once"),
            models.CheckConstraint(
                name="webhook_message_status",
                condition=Q(status__in=["pending", "sending", "succeeded", "failed"]),
            ),
            models.CheckConstraint(
                name="webhook_message_due_while_unfinished",
                condition=Q(status__in=["pending", "sending"], next_attempt_at__isnull=False)
                | Q(status__in=["succeeded", "failed"], next_attempt_at__isnull=True),
            ),
            models.CheckConstraint(
                name="webhook_message_attempts_bounded",
                condition=Q(attempts__lte=models.F("max_attempts"), max_attempts__gte=1),
            ),
        ]

    def __str__(self) -> str:
        return self.webhook_id


class Attempt(models.Model):
    """One try at delivering a message: what came back, or the error, and how long it took."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=ERROR_MAX_CHARS, blank=True)
    duration_ms = models.PositiveIntegerField()
    # The answer's first RESPONSE_EXCERPT_BYTES bytes, decoded leniently.
    response_excerpt = models.CharField(max_length=RESPONSE_EXCERPT_BYTES, blank=True)

    class Meta:
        ordering = ["number"]
        constraints = [
            models.UniqueConstraint(fields=["message", "number"], name="webhook_attempt_once"),
            models.CheckConstraint(
                name="webhook_attempt_has_outcome",
                condition=(Q(status_code__isnull=False) & Q(status_code__gte=100))
                & Q(status_code__lte=599)
                | (Q(status_code__isnull=True) & ~Q(error="")),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.message_id} #{self.number}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
