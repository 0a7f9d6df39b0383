from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from accounts.models import User

from . import services
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
    list_display = ("user", "balance_credits", "updated_at", "adjust_link")
    search_fields = ("user__email",)

    @admin.display(description="Adjust")
    def adjust_link(self, account: CreditAccount) -> str:
        url = reverse("admin:billing_adjust_credits", args=[account.user_id])
        return format_html('<a href="{}">Adjust credits</a>', url)

    def get_urls(self) -> list[URLPattern]:
        adjust = path(
            "adjust/<int:user_id>/",
            self.admin_site.admin_view(self.adjust_view),
            name="billing_adjust_credits",
        )
        return [adjust, *super().get_urls()]

    def adjust_view(self, request: HttpRequest, user_id: int) -> HttpResponse:
        """Add or take credits, through billing.services: an audited ledger line."""
        # Moving money is more than viewing it: it takes the right to add ledger entries.
        if not request.user.has_perm("billing.add_ledgerentry"):
            return HttpResponse(status=403)
        customer = get_object_or_404(User, pk=user_id)
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
                    f"Adjusted {customer.email} by {entry.amount_credits:+d} credits; "
                    f"balance {entry.balance_after_credits}.",
                    messages.SUCCESS,
                )
                return redirect("admin:billing_creditaccount_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": f"Adjust the credits of {customer.email}",
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
    search_fields = ("reference", "account__user__email", "idempotency_key")
