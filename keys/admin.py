from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

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
    # Keys are issued through keys.services (so the raw key is shown exactly once); the admin may
    # only look, and revoke by setting revoked_at.
    readonly_fields = (
        "user", "name", "lookup_id", "pepper_id", "secret_hash", "created_at",
        "rotated_at", "last_used_at", "expires_at",
    )  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
