from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.conf import settings

from .money import format_money
from .services import credits_for_cents


class PackForm(forms.Form):
    """One of the preset packs, chosen by its button (``name="pack" value="<cents>"``)."""

    pack = forms.TypedChoiceField(coerce=int, choices=())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["pack"]
        assert isinstance(field, forms.TypedChoiceField)
        field.choices = [(c, str(c)) for c in settings.STRIPE_PACKS_CENTS]

    @property
    def amount_cents(self) -> int:
        return int(self.cleaned_data["pack"])


class AmountForm(forms.Form):
    """Any amount within STRIPE_MIN_CENTS..STRIPE_MAX_CENTS, typed in the currency's units."""

    amount = forms.CharField(max_length=12, label="Other amount")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        currency = settings.STRIPE_CURRENCY.upper()
        low = format_money(settings.STRIPE_MIN_CENTS, settings.STRIPE_CURRENCY)
        high = format_money(settings.STRIPE_MAX_CENTS, settings.STRIPE_CURRENCY)
        field = self.fields["amount"]
        field.label = f"Other amount ({currency})"
        field.help_text = (
            f"From {low} to {high}. Every {format_money(100, settings.STRIPE_CURRENCY)} buys "
            f"{credits_for_cents(100):,} credits."
        )
        field.widget.attrs.update({"inputmode": "decimal", "autocomplete": "off"})

    def clean_amount(self) -> int:
        """The amount in cents: whole cents only, no floats on the way."""
        raw = self.cleaned_data["amount"].strip().lstrip("$").replace(",", "")
        try:
            amount = Decimal(raw)
        except InvalidOperation:
            raise forms.ValidationError("Enter an amount such as 25 or 12.50.") from None
        low, high = settings.STRIPE_MIN_CENTS, settings.STRIPE_MAX_CENTS
        if not amount.is_finite() or not low <= amount * 100 <= high:
            raise forms.ValidationError(
                f"Choose an amount from {format_money(low, settings.STRIPE_CURRENCY)} "
                f"to {format_money(high, settings.STRIPE_CURRENCY)}."
            )
        if amount != amount.quantize(Decimal("0.01")):
            raise forms.ValidationError("Enter an amount with at most two decimals.")
        return int(amount * 100)

    @property
    def amount_cents(self) -> int:
        return int(self.cleaned_data["amount"])


class PromoCodeForm(forms.Form):
    code = forms.CharField(max_length=40, label="Promotion code")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["code"].widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})
