from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import controls, services
from .models import ApiKey

# What a model id looks like (keys does not know the catalog: the customer's page checks ids
# against it; here an operator's typo of a shape is caught at least).
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _lines(text: str) -> list[str]:
    return [item for item in re.split(r"[\s,;]+", text or "") if item]


class ApiKeyAdminForm(forms.ModelForm):
    """The key's own limits and spend controls, with the lists one item per line and every value
    checked by the rules the customer's pages use (keys.services, keys.controls)."""

    allowed_models = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Model ids as GET /v1/models lists them, one per line. Empty: any model.",
    )
    allowed_networks = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="IP addresses or CIDR networks, one per line. Empty: any address.",
    )

    class Meta:
        model = ApiKey
        fields = (
            "requests_per_minute", "images_per_minute", "concurrent_generations",
            "spend_cap_credits", "spend_cap_period",
        )  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial["allowed_models"] = "\n".join(self.instance.allowed_models)
            self.initial["allowed_networks"] = "\n".join(self.instance.allowed_networks)
        self.fields[
            "spend_cap_credits"
        ].help_text = "Credits the key may spend per period (UTC windows). Empty: no cap."

    def clean_spend_cap_credits(self) -> int | None:
        try:
            return services.check_spend_cap(self.cleaned_data.get("spend_cap_credits"))
        except controls.InvalidControl as error:
            raise forms.ValidationError(str(error)) from None

    def clean_allowed_models(self) -> list[str]:
        models = list(dict.fromkeys(_lines(self.cleaned_data.get("allowed_models", ""))))
        for model_id in models:
            if not _MODEL_ID.match(model_id):
                raise forms.ValidationError(f"{model_id[:64]!r} is not a model id.")
        if len(models) > controls.MAX_MODELS:
            raise forms.ValidationError(f"A key takes at most {controls.MAX_MODELS} models.")
        return models

    def clean_allowed_networks(self) -> list[str]:
        try:
            return controls.parse_networks(_lines(self.cleaned_data.get("allowed_networks", "")))
        except controls.InvalidControl as error:
            raise forms.ValidationError(str(error)) from None


# The fields an operator may change: the key's own limits and spend controls.
EDITABLE = (
    "requests_per_minute", "images_per_minute", "concurrent_generations",
    "spend_cap_credits", "spend_cap_period", "allowed_models", "allowed_networks",
)  # fmt: skip


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyAdminForm
    list_display = (
        "name",
        "prefix",
        "account",
        "user",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
        "spend_cap_credits",
    )
    list_filter = ("revoked_at", "spend_cap_period")
    search_fields = ("name", "lookup_id", "account__name", "account__personal_owner__email")
    actions = ["revoke"]
    # Keys are issued through keys.services (so the raw key is shown exactly once) and revoked by
    # the action below, which is one-way: only the key's limits and spend controls can be edited
    # here, so nothing can un-revoke.
    readonly_fields = (
        "account", "user", "name", "lookup_id", "pepper_id", "created_at", "rotated_at",
        "last_used_at", "expires_at", "revoked_at",
    )  # fmt: skip
    fieldsets = (
        (None, {"fields": readonly_fields}),
        ("Limits", {"fields": ("requests_per_minute", "images_per_minute",
                               "concurrent_generations")}),
        ("Spend controls", {
            "fields": ("spend_cap_credits", "spend_cap_period", "allowed_models",
                       "allowed_networks"),
            "description": "Applied from the key's next request. The cap is counted in UTC "
            "windows; a cap lowered below what the current window has spent refuses the key's "
            "requests until the window resets.",
        }),
    )  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        # Only the editable columns: a full save would write back the row as it was read, and
        # could undo a revocation or rotation made in between.
        obj.save(update_fields=EDITABLE)

    @admin.action(description="Revoke the selected keys (cannot be undone)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            services.revoke_key(api_key)
        self.message_user(request, f"Revoked {queryset.count()} keys.", messages.SUCCESS)
