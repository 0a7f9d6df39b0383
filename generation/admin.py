from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from . import catalog, ratelimits, services
from .models import AccountRateLimit, Generation, Image, ModelOverride


class ImageInline(admin.TabularInline):
    model = Image
    extra = 0
    can_delete = False
    fields = ("token", "index", "width", "height", "bytes", "created_at")
    readonly_fields = fields


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = (
        "public_id", "account", "user", "source", "model", "size", "n", "images_delivered",
        "charged_credits", "status", "http_status", "created_at", "latency_ms",
    )  # fmt: skip
    list_filter = ("status", "source", "model")
    search_fields = ("public_id", "account__name", "account__personal_owner__email")
    inlines = [ImageInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Generation | None = None) -> bool:
        return False


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    """Every hosted image, to choose the home page's showcase: nothing else about an image can be
    changed here, and images are neither added nor deleted (their files live in storage)."""

    list_display = ("preview", "prompt", "made_by_model", "account", "created_at", "showcase")
    list_display_links = None
    list_editable = ("showcase",)
    list_filter = ("showcase", "generation__model")
    search_fields = (
        "token", "account__name", "account__personal_owner__email", "generation__prompt",
    )  # fmt: skip
    list_select_related = ("generation", "account__personal_owner")
    actions = ("add_to_showcase", "remove_from_showcase")
    list_per_page = 50
    # The change page too offers the flag alone.
    fields = ("preview", "prompt", "made_by_model", "account", "created_at", "showcase")
    readonly_fields = ("preview", "prompt", "made_by_model", "account", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Image | None = None) -> bool:
        return False

    @admin.display(description="Image")
    def preview(self, obj: Image) -> str:
        return format_html(
            '<a href="{}"><img src="{}" alt="" width="96" height="96" loading="lazy"></a>',
            services.image_url(obj, ""),
            services.thumbnail_url(obj),
        )

    @admin.display(description="Prompt")
    def prompt(self, obj: Image) -> str:
        text = obj.generation.prompt
        return text if len(text) <= 120 else f"{text[:119]}…"

    @admin.display(description="Model", ordering="generation__model")
    def made_by_model(self, obj: Image) -> str:
        return obj.generation.model

    @admin.action(description="Show the selected images on the home page")
    def add_to_showcase(self, request: HttpRequest, queryset: QuerySet[Image]) -> None:
        count = queryset.update(showcase=True)
        self.message_user(request, f"{count} image(s) now on the home page.")

    @admin.action(description="Take the selected images off the home page")
    def remove_from_showcase(self, request: HttpRequest, queryset: QuerySet[Image]) -> None:
        count = queryset.update(showcase=False)
        self.message_user(request, f"{count} image(s) taken off the home page.")


@admin.register(AccountRateLimit)
class AccountRateLimitAdmin(admin.ModelAdmin):
    """Operators' custom limits: each field set replaces the account's tier value."""

    list_display = (
        "account", "requests_per_minute", "images_per_minute", "concurrent_generations",
        "tier_now", "note", "updated_at",
    )  # fmt: skip
    search_fields = ("account__name", "account__personal_owner__email", "note")
    raw_id_fields = ("account",)
    readonly_fields = ("tier_now", "limits_now")
    fields = (
        "account", "requests_per_minute", "images_per_minute", "concurrent_generations", "note",
        "tier_now", "limits_now",
    )  # fmt: skip

    @admin.display(description="Tier (without this override)")
    def tier_now(self, obj: AccountRateLimit) -> str:
        if not obj.pk:
            return "-"
        return ratelimits.limits_for(obj.account).tier.name

    @admin.display(description="Limits in force (requests / images / concurrent)")
    def limits_now(self, obj: AccountRateLimit) -> str:
        if not obj.pk:
            return "-"
        limits = ratelimits.limits_for(obj.account)
        return f"{limits.requests} / {limits.images} / {limits.concurrent}"


class ModelOverrideForm(forms.ModelForm):
    """Checks an override against the catalog file before it is saved: a model and replacement
    the file has, ids in the form the upstream uses on known channels, a default size the model
    makes, a sunset not before the deprecation."""

    model = forms.ChoiceField(choices=())

    class Meta:
        model = ModelOverride
        fields = (
            "model", "status", "deprecated", "sunset", "replacement", "upstream_ids",
            "default_size", "note",
        )  # fmt: skip
        widgets = {"upstream_ids": forms.Textarea(attrs={"rows": 3})}  # a line per channel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        model_field = self.fields["model"]
        assert isinstance(model_field, forms.ChoiceField)
        model_field.choices = [(m, m) for m in settings.SEEDREAM_MODELS]
        model_field.help_text = "The model's public id (in the catalog file)."

    def clean_replacement(self) -> str:
        replacement: str = self.cleaned_data["replacement"].strip()
        if replacement and replacement not in settings.SEEDREAM_MODELS:
            raise forms.ValidationError(f"'{replacement}' is not a model of the catalog.")
        if replacement and replacement == self.cleaned_data.get("model"):
            raise forms.ValidationError("A model cannot replace itself.")
        return replacement

    def clean_upstream_ids(self) -> str:
        text: str = self.cleaned_data["upstream_ids"]
        try:
            parsed = catalog.parse_upstream_ids(text)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        unknown = sorted(set(parsed) - catalog.channels())
        if unknown:
            known = ", ".join(sorted(catalog.channels()))
            raise forms.ValidationError(f"Unknown channel '{unknown[0]}': use one of {known}.")
        return text.strip()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        deprecated: date | None = data.get("deprecated")
        sunset: date | None = data.get("sunset")
        if deprecated and sunset and sunset < deprecated:
            self.add_error("sunset", "The sunset cannot come before the deprecation.")
        if not data.get("status") and (deprecated or sunset or data.get("replacement")):
            self.add_error("status", "Choose a status: the dates and the replacement go with it.")
        model_id = data.get("model")
        if model_id in settings.SEEDREAM_MODELS and not self.errors:
            override = catalog.Override.of_row(ModelOverride(**data))
            try:
                catalog.resolve_size(catalog.model_entry(model_id, override), None)
            except (catalog.SizeError, ValueError) as exc:
                self.add_error("default_size", f"{model_id} does not make it: {exc}")
        return data


@admin.register(ModelOverride)
class ModelOverrideAdmin(admin.ModelAdmin):
    """The catalog file's entries, changed without a release: in force in this process at
    once, in every other within CATALOG_CACHE_SECONDS; deleting one restores the file's."""

    form = ModelOverrideForm
    list_display = ("model", "status", "sunset", "replacement", "in_force", "note", "updated_at")
    readonly_fields = ("in_force",)

    @admin.display(description="In force (with this override)")
    def in_force(self, obj: ModelOverride) -> str:
        if obj.model not in settings.SEEDREAM_MODELS:
            return "-"
        model = catalog.model_entry(obj.model, catalog.Override.of_row(obj))
        ids = model.upstream_ids.get(settings.UPSTREAM_CHANNEL, ())
        sunset = f", sunset {model.sunset}" if model.sunset else ""
        return (
            f"{model.lifecycle()}{sunset}; sent to {settings.UPSTREAM_CHANNEL} as "
            f"{', '.join(ids) or '(no id)'}; default size {model.default_size}"
        )

    def save_model(self, request: HttpRequest, obj: ModelOverride, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        catalog.forget_overrides()

    def delete_model(self, request: HttpRequest, obj: ModelOverride) -> None:
        super().delete_model(request, obj)
        catalog.forget_overrides()

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        super().delete_queryset(request, queryset)
        catalog.forget_overrides()
