from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from . import ratelimits
from .models import AccountRateLimit, Generation, Image


class ImageInline(admin.TabularInline):
    model = Image
    extra = 0
    can_delete = False
    fields = ("token", "index", "width", "height", "bytes", "created_at")
    readonly_fields = fields


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = (
        "public_id", "user", "source", "model", "size", "n", "images_delivered",
        "charged_credits", "status", "http_status", "created_at", "latency_ms",
    )  # fmt: skip
    list_filter = ("status", "source", "model")
    search_fields = ("public_id", "user__email")
    inlines = [ImageInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Generation | None = None) -> bool:
        return False


@admin.register(AccountRateLimit)
class AccountRateLimitAdmin(admin.ModelAdmin):
    """Operators' custom limits: each field set replaces the account's tier value."""

    list_display = (
        "user", "requests_per_minute", "images_per_minute", "concurrent_generations",
        "tier_now", "note", "updated_at",
    )  # fmt: skip
    search_fields = ("user__email", "note")
    raw_id_fields = ("user",)
    readonly_fields = ("tier_now", "limits_now")
    fields = (
        "user", "requests_per_minute", "images_per_minute", "concurrent_generations", "note",
        "tier_now", "limits_now",
    )  # fmt: skip

    @admin.display(description="Tier (without this override)")
    def tier_now(self, obj: AccountRateLimit) -> str:
        if not obj.pk:
            return "-"
        return ratelimits.limits_for(obj.user).tier.name

    @admin.display(description="Limits in force (requests / images / concurrent)")
    def limits_now(self, obj: AccountRateLimit) -> str:
        if not obj.pk:
            return "-"
        limits = ratelimits.limits_for(obj.user)
        return f"{limits.requests} / {limits.images} / {limits.concurrent}"
