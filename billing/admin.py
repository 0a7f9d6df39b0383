from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import CreditAccount, LedgerEntry, Price


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    list_display = ("model", "size_tier", "credits_per_image", "updated_at")
    list_editable = ("credits_per_image",)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Money rows change only through billing.services (which keeps the ledger balanced)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CreditAccount)
class CreditAccountAdmin(ReadOnlyAdmin):
    list_display = ("user", "balance_credits", "updated_at")
    search_fields = ("user__email",)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "account",
        "kind",
        "amount_credits",
        "balance_after_credits",
        "reference",
    )
    list_filter = ("kind",)
    search_fields = ("reference", "account__user__email", "idempotency_key")
