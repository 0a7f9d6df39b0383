from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts.models import Account

from . import pricing, services, webhooks
from .models import (
    BillingProfile,
    CreditAccount,
    DebtEntry,
    LedgerEntry,
    PriceRule,
    PriceTier,
    PromoCode,
    PromoRedemption,
    Purchase,
    SpendWindow,
    StripeEvent,
    StripeRefund,
    normalise_code,
)
from .money import format_money


class PriceTierFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        """A rule's tiers: at least one, and exactly one without a bound (the last, which prices
        every image larger than the others take). Two with one bound are refused by the
        formset's own check of the unique (rule, max_pixels)."""
        super().clean()
        kept = [
            form.cleaned_data
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        if not kept:
            raise forms.ValidationError("A rule needs at least one tier.")
        if sum(data.get("max_pixels") is None for data in kept) != 1:
            raise forms.ValidationError(
                "Leave the largest pixels empty in exactly one tier: the last, which prices "
                "every larger image."
            )


class PriceTierInline(admin.TabularInline):
    model = PriceTier
    formset = PriceTierFormSet
    extra = 0
    fields = ("name", "max_pixels", "credits_per_image")


@admin.register(PriceRule)
class PriceRuleAdmin(admin.ModelAdmin):
    """Prices per model. A change applies to requests accepted after it is saved (each request
    keeps the rule it was quoted with); other web processes read it within PRICE_CACHE_SECONDS."""

    list_display = ("model", "tiers_shown", "reference_credits", "free_references", "updated_at")
    fields = ("model", "reference_credits", "free_references", "note")
    inlines = [PriceTierInline]

    @admin.display(description="Credits per image by tier")
    def tiers_shown(self, rule: PriceRule) -> str:
        return ", ".join(str(tier) for tier in rule.tiers.all())

    def get_queryset(self, request: HttpRequest) -> QuerySet[PriceRule]:
        return super().get_queryset(request).prefetch_related("tiers")

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # Saving only a tier leaves the rule's updated_at (its version in the ledger) as it was.
        PriceRule.objects.filter(pk=form.instance.pk).update(updated_at=timezone.now())
        pricing.forget_rules()

    def delete_model(self, request: HttpRequest, obj: PriceRule) -> None:
        super().delete_model(request, obj)
        pricing.forget_rules()


class ReadOnlyAdmin(admin.ModelAdmin):
    """Money rows change only through billing.services (which keeps the ledger balanced)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AdjustmentForm(forms.Form):
    credits = forms.IntegerField(
        help_text="Positive adds credits, negative takes them away (never below zero)."
    )
    reason = forms.CharField(max_length=200, help_text="Recorded on the customer's ledger.")

    def clean_credits(self) -> int:
        credits: int = self.cleaned_data["credits"]
        if credits == 0:
            raise forms.ValidationError("Enter a number other than zero.")
        return credits


@admin.register(CreditAccount)
class CreditAccountAdmin(ReadOnlyAdmin):
    list_display = (
        "owner", "balance_credits", "owed_credits", "auto_top_up", "updated_at", "adjust_link",
    )  # fmt: skip
    list_filter = ("auto_top_up_enabled",)
    # A person's account by their address; an organisation by its name.
    search_fields = ("owner__personal_owner__email", "owner__name")

    @admin.display(description="Automatic top-up")
    def auto_top_up(self, account: CreditAccount) -> str:
        if account.auto_top_up_enabled:
            return (
                f"below {account.auto_top_up_threshold_credits:,} credits: "
                f"{format_money(account.auto_top_up_amount_cents or 0, settings.STRIPE_CURRENCY)}"
            )
        if account.auto_top_up_stopped_at:
            return f"stopped {account.auto_top_up_stopped_at:%Y-%m-%d}"
        return "-"

    @admin.display(description="Adjust")
    def adjust_link(self, account: CreditAccount) -> str:
        url = reverse("admin:billing_adjust_credits", args=[account.owner_id])
        return format_html('<a href="{}">Adjust credits</a>', url)

    def get_urls(self) -> list[URLPattern]:
        adjust = path(
            "adjust/<int:account_id>/",
            self.admin_site.admin_view(self.adjust_view),
            name="billing_adjust_credits",
        )
        return [adjust, *super().get_urls()]

    def adjust_view(self, request: HttpRequest, account_id: int) -> HttpResponse:
        """Add or take credits of an account (a person's or an organisation's), through
        billing.services: an audited ledger line."""
        # Moving money is more than viewing it: it takes the right to add ledger entries.
        if not request.user.has_perm("billing.add_ledgerentry"):
            return HttpResponse(status=403)
        customer = get_object_or_404(Account, pk=account_id)
        form = AdjustmentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                entry = services.adjust(
                    customer,
                    form.cleaned_data["credits"],
                    reason=form.cleaned_data["reason"],
                    operator=getattr(request.user, "email", str(request.user)),
                )
            except services.InsufficientCredits as exc:
                form.add_error("credits", f"The balance is only {exc.balance_credits} credits.")
            else:
                self.message_user(
                    request,
                    f"Adjusted {customer} by {entry.amount_credits:+d} credits; "
                    f"balance {entry.balance_after_credits}.",
                    messages.SUCCESS,
                )
                return redirect("admin:billing_creditaccount_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": f"Adjust the credits of {customer}",
            "form": form,
            "customer": customer,
            "balance": services.balance_credits(customer),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/billing/adjust_credits.html", context)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at", "account", "kind", "amount_credits", "balance_after_credits", "reference",
        "description",
    )  # fmt: skip
    list_filter = ("kind",)
    search_fields = (
        "reference",
        "account__owner__personal_owner__email",
        "account__owner__name",
        "idempotency_key",
    )


@admin.register(SpendWindow)
class SpendWindowAdmin(ReadOnlyAdmin):
    """What each capped key has spent in each window of its cap (``key:<id>:<period>:<start>``),
    held credits included. Read only: it moves with holds and settlements, never by hand."""

    list_display = ("name", "spent_credits", "cap_credits", "alerted_percent", "updated_at")
    search_fields = ("name",)
    ordering = ("-updated_at",)


@admin.register(DebtEntry)
class DebtEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at", "account", "amount_credits", "owed_after_credits", "reference", "description",
    )  # fmt: skip
    search_fields = ("reference", "account__owner__personal_owner__email", "account__owner__name")


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at", "owner", "kind", "price", "credits", "status", "reversed_credits", "receipt",
        "invoice",
    )  # fmt: skip
    list_filter = ("status", "kind", "currency")
    search_fields = (
        "owner__personal_owner__email", "owner__name", "user__email", "checkout_session_id",
        "payment_intent_id", "charge_id", "public_id", "invoice_id", "invoice_number",
    )  # fmt: skip

    @admin.display(description="Receipt")
    def receipt(self, purchase: Purchase) -> str:
        if not purchase.receipt_url:
            return "-"
        return format_html(
            '<a href="{}" rel="noopener noreferrer">receipt</a>', purchase.receipt_url
        )

    @admin.display(description="Invoice")
    def invoice(self, purchase: Purchase) -> str:
        if not purchase.invoice_pdf_url:
            return purchase.invoice_id or "-"
        return format_html(
            '<a href="{}" rel="noopener noreferrer">{}</a>',
            purchase.invoice_pdf_url,
            purchase.invoice_number or "invoice",
        )


@admin.register(BillingProfile)
class BillingProfileAdmin(ReadOnlyAdmin):
    """Read-only: the customer edits them on the billing page, which also updates Stripe."""

    list_display = (
        "company_name", "account", "country", "tax_id_type", "tax_id_value", "stripe_customer_id",
        "updated_at",
    )  # fmt: skip
    search_fields = (
        "company_name",
        "account__owner__personal_owner__email",
        "account__owner__name",
        "stripe_customer_id",
        "tax_id_value",
    )


@admin.register(StripeRefund)
class StripeRefundAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "id", "purchase", "amount_cents", "status", "updated_at")
    list_filter = ("status",)
    search_fields = ("id", "purchase__public_id", "purchase__charge_id")


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "id", "type", "status", "attempts", "error")
    list_filter = ("status", "type")
    search_fields = ("id", "type")
    actions = ["process_again"]

    def has_process_permission(self, request: HttpRequest) -> bool:
        # Handling an event moves money, like an adjustment.
        return request.user.has_perm("billing.add_ledgerentry")

    @admin.action(description="Process the selected events again", permissions=["process"])
    def process_again(self, request: HttpRequest, queryset: QuerySet[StripeEvent]) -> None:
        done, failed = 0, 0
        for event in queryset.exclude(status=StripeEvent.Status.PROCESSED):
            try:
                webhooks.process(event)
            except webhooks.EventFailed:
                failed += 1
            else:
                done += 1
        level = messages.WARNING if failed else messages.SUCCESS
        self.message_user(request, f"{done} events handled, {failed} failed again.", level)


class PromoCodeForm(forms.ModelForm):
    class Meta:
        model = PromoCode
        fields = ["code", "credits", "max_redemptions", "expires_at", "active", "note"]

    def clean_code(self) -> str:
        code = normalise_code(self.cleaned_data["code"])
        if not code:
            raise forms.ValidationError("Enter a code.")
        return code

    def clean_max_redemptions(self) -> int:
        value: int = self.cleaned_data["max_redemptions"]
        if self.instance.pk and value < self.instance.times_redeemed:
            raise forms.ValidationError(
                f"It has been redeemed {self.instance.times_redeemed} times already."
            )
        return value


@admin.register(PromoCode)
class PromoCodeAdmin(admin.ModelAdmin):
    form = PromoCodeForm
    list_display = (
        "code", "credits", "times_redeemed", "max_redemptions", "expires_at", "active", "note",
    )  # fmt: skip
    list_filter = ("active",)
    search_fields = ("code", "note")
    readonly_fields = ("times_redeemed", "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # What a code is worth is fixed once anyone has redeemed it.
        if obj is not None and obj.times_redeemed:
            return (*self.readonly_fields, "code", "credits")
        return self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Redemptions point at their code; deactivate a code instead.
        return obj is None or not obj.times_redeemed


@admin.register(PromoRedemption)
class PromoRedemptionAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "promo_code", "account", "credits")
    search_fields = (
        "promo_code__code",
        "account__owner__personal_owner__email",
        "account__owner__name",
    )
