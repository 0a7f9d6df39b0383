"""Money. Credits are integers; the ledger is append-only; invariants live in the database.

``billing`` knows nothing about images: the ledger records references such as ``gen:<id>``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class CreditAccount(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="credit_account"
    )
    # A cache of the sum of this account's ledger, changed only in the transaction that appends
    # the ledger row, with this row locked.
    balance_credits = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(balance_credits__gte=0), name="billing_balance_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.balance_credits} credits)"


class LedgerEntry(models.Model):
    class Kind(models.TextChoices):
        GRANT = "grant", "Grant"
        TOP_UP = "top_up", "Top-up"
        RESERVE = "reserve", "Reserve"
        RELEASE = "release", "Release"
        CHARGE = "charge", "Charge"
        REFUND = "refund", "Refund"
        ADJUSTMENT = "adjustment", "Adjustment"

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Signed: positive adds to the balance, negative takes from it.
    amount_credits = models.BigIntegerField()
    balance_after_credits = models.BigIntegerField()
    reference = models.CharField(max_length=100, blank=True, db_index=True)
    description = models.CharField(max_length=255, blank=True)
    # Every entry has one; writing the same one twice fails in the database, which is what makes
    # settlement, webhooks and replays happen once.
    idempotency_key = models.CharField(max_length=150, unique=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(balance_after_credits__gte=0),
                name="billing_ledger_balance_after_not_negative",
            ),
        ]
        indexes = [models.Index(fields=["account", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount_credits:+d} ({self.reference})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Always an INSERT: an instance carrying an existing row's id must fail, not overwrite.
        if not self._state.adding:
            raise ValueError("Ledger entries are append-only")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise ValueError("Ledger entries are append-only")


class Price(models.Model):
    """Credits per delivered image, per model and (where it differs) per size tier.

    An empty ``size_tier`` is the model's price for every tier without a row of its own.
    """

    model = models.CharField(max_length=64)
    size_tier = models.CharField(max_length=16, blank=True)
    credits_per_image = models.PositiveIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model", "size_tier"]
        constraints = [
            models.UniqueConstraint(fields=["model", "size_tier"], name="billing_price_unique"),
            models.CheckConstraint(
                condition=models.Q(credits_per_image__gt=0), name="billing_price_positive"
            ),
        ]

    def __str__(self) -> str:
        tier = self.size_tier or "any size"
        return f"{self.model} ({tier}): {self.credits_per_image} credits"
