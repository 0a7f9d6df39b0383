from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from .models import Generation, Image


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
