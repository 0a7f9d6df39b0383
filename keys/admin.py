from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import services
from .models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "prefix",
        "user",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    list_filter = ("revoked_at",)
    search_fields = ("name", "lookup_id", "user__email")
    actions = ["revoke"]
    # Keys are issued through keys.services (so the raw key is shown exactly once) and revoked by
    # the action below, which is one-way: nothing here can be edited, so nothing can un-revoke.
    readonly_fields = (
        "user", "name", "lookup_id", "pepper_id", "created_at", "rotated_at",
        "last_used_at", "expires_at", "revoked_at",
    )  # fmt: skip
    exclude = ("secret_hash",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke the selected keys (cannot be undone)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            services.revoke_key(api_key)
        self.message_user(request, f"Revoked {queryset.count()} keys.", messages.SUCCESS)
