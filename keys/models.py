"""API keys. The raw key is never stored: only its public lookup id and a keyed hash."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from . import crypto


class SpendPeriod(models.TextChoices):
    """How a key's spend cap is counted: per UTC day, week (from Monday) or month, or in
    total. billing.limits draws the windows (the same names)."""

    DAY = "day", "per day (UTC)"
    WEEK = "week", "per week (UTC, from Monday)"
    MONTH = "month", "per month (UTC)"
    TOTAL = "total", "in total"


class ApiKey(models.Model):
    # The account whose key it is, whose credits and limits it spends; and the member who made
    # it. The key stays the account's (and keeps working) when that member leaves.
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="api_keys"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100)
    lookup_id = models.CharField(max_length=crypto.LOOKUP_ID_LENGTH, unique=True)
    secret_hash = models.CharField(max_length=64)
    pepper_id = models.CharField(max_length=32)
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Optional limits the customer sets below the account's (empty: the account's apply).
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    images_per_minute = models.PositiveIntegerField(null=True, blank=True)
    concurrent_generations = models.PositiveIntegerField(null=True, blank=True)
    # Spend controls (keys/controls.py). A cap in credits per UTC day, week or month, or in
    # total; empty: the key may spend the whole balance.
    spend_cap_credits = models.PositiveBigIntegerField(null=True, blank=True)
    spend_cap_period = models.CharField(
        max_length=8, choices=SpendPeriod.choices, default=SpendPeriod.MONTH
    )
    # The model ids the key may use, and the addresses (IPs or CIDR networks) it may be used
    # from; empty: any.
    allowed_models = models.JSONField(default=list, blank=True)
    allowed_networks = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "-created_at"])]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def prefix(self) -> str:
        return crypto.display_prefix(self.lookup_id)

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.is_expired():
            return "expired"
        return "active"


class KeyIssue(models.Model):
    """A secret issued from the keys page (a key made or rotated), by the form that asked for it.

    The row is what makes one form make one key: its token's hash is unique per user, so the
    same form sent twice (a double click, back and send again, a reload of the POST) finds the
    row and makes nothing new. ``sealed`` carries the new secret, encrypted under the form's
    token (crypto.seal), from the POST to the page after its redirect; that page empties it as
    it shows it, and a stale one is emptied unshown (keys.services.REVEAL_SECONDS).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="issues")
    token_hash = models.CharField(max_length=64)
    sealed = models.BinaryField(null=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "token_hash"], name="keys_issue_once_per_form")
        ]

    def __str__(self) -> str:
        return f"{self.api_key} issued {self.created_at:%Y-%m-%d %H:%M}"
