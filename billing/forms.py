from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.conf import settings

from .auto_top_up import MAX_THRESHOLD_CREDITS
from .countries import COUNTRIES
from .customers import TAX_ID_TYPES, Details, normalise_tax_id, tax_id_problem
from .money import format_money
from .services import credits_for_cents


def parse_amount_cents(raw: str) -> int:
    """An amount typed in the currency's units ("25", "12.50", "$1,000"), in cents, within
    STRIPE_MIN_CENTS..STRIPE_MAX_CENTS: whole cents only, no floats on the way."""
    raw = raw.strip().lstrip("$").replace(",", "")
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


def _amount_help() -> str:
    low = format_money(settings.STRIPE_MIN_CENTS, settings.STRIPE_CURRENCY)
    high = format_money(settings.STRIPE_MAX_CENTS, settings.STRIPE_CURRENCY)
    return (
        f"From {low} to {high}. Every {format_money(100, settings.STRIPE_CURRENCY)} buys "
        f"{credits_for_cents(100):,} credits."
    )


class SaveCardMixin(forms.Form):
    """The buy form's tick box: keep the card for automatic top-ups (billing.auto_top_up)."""

    save_card = forms.BooleanField(
        required=False,
        label="Save the card I pay with for automatic top-ups",
        help_text="Stripe keeps the card; we charge it only as your automatic top-up settings "
        "below say, and you can remove it at any time.",
    )


class PackForm(SaveCardMixin):
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


class AmountForm(SaveCardMixin):
    """Any amount within STRIPE_MIN_CENTS..STRIPE_MAX_CENTS, typed in the currency's units."""

    amount = forms.CharField(max_length=12, label="Other amount")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        currency = settings.STRIPE_CURRENCY.upper()
        field = self.fields["amount"]
        field.label = f"Other amount ({currency})"
        field.help_text = _amount_help()
        field.widget.attrs.update({"inputmode": "decimal", "autocomplete": "off"})

    def clean_amount(self) -> int:
        return parse_amount_cents(self.cleaned_data["amount"])

    @property
    def amount_cents(self) -> int:
        return int(self.cleaned_data["amount"])


class PromoCodeForm(forms.Form):
    code = forms.CharField(max_length=40, label="Promotion code")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["code"].widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})


class AutoTopUpForm(forms.Form):
    """Automatic top-up's settings: below how many credits, and how much to buy then."""

    threshold_credits = forms.IntegerField(
        label="Threshold",
        min_value=1,
        max_value=MAX_THRESHOLD_CREDITS,
        error_messages={
            "min_value": "Choose a threshold of at least 1 credit.",
            "max_value": f"Choose a threshold of at most {MAX_THRESHOLD_CREDITS:,} credits.",
            "invalid": "Enter a whole number of credits, such as 5000.",
        },
    )
    amount = forms.CharField(max_length=12, label="Buy")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Its own ids: the buy form on the same page has an "amount" too.
        kwargs.setdefault("auto_id", "top_up_%s")
        super().__init__(*args, **kwargs)
        currency = settings.STRIPE_CURRENCY.upper()
        packs = ", ".join(
            format_money(cents, settings.STRIPE_CURRENCY) for cents in settings.STRIPE_PACKS_CENTS
        )
        amount = self.fields["amount"]
        amount.label = f"Amount ({currency})"
        amount.help_text = f"{_amount_help()} The packs: {packs}."
        amount.widget.attrs.update({"inputmode": "decimal", "autocomplete": "off"})
        threshold = self.fields["threshold_credits"]
        threshold.help_text = f"In credits, from 1 to {MAX_THRESHOLD_CREDITS:,}."
        threshold.widget.attrs.update({"inputmode": "numeric", "autocomplete": "off"})

    def clean_amount(self) -> int:
        return parse_amount_cents(self.cleaned_data["amount"])


# Printable text only: no control characters (a newline in a name would break the invoice).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text(value: str) -> str:
    value = " ".join(value.split())
    if _CONTROL.search(value):
        raise forms.ValidationError("Use letters, digits and punctuation only.")
    return value


class BillingDetailsForm(forms.Form):
    """Who the invoices are made out to (billing.customers.Details)."""

    company_name = forms.CharField(max_length=150, label="Company or full name")
    address_line1 = forms.CharField(max_length=200, label="Address")
    address_line2 = forms.CharField(max_length=200, required=False, label="Address, line 2")
    city = forms.CharField(max_length=100, label="City")
    postal_code = forms.CharField(max_length=20, required=False, label="Postal code")
    state = forms.CharField(max_length=100, required=False, label="State, county or region")
    country = forms.ChoiceField(label="Country")
    tax_id_type = forms.ChoiceField(required=False, label="Tax id type")
    tax_id_value = forms.CharField(max_length=64, required=False, label="Tax id")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        country = self.fields["country"]
        assert isinstance(country, forms.ChoiceField)
        country.choices = [("", "Choose a country"), *COUNTRIES]
        tax_type = self.fields["tax_id_type"]
        assert isinstance(tax_type, forms.ChoiceField)
        tax_type.choices = [("", "None")] + [
            (code, f"{kind.label} ({code})") for code, kind in TAX_ID_TYPES.items()
        ]
        tax_type.help_text = "Stripe's name for it is in brackets."
        self.fields["tax_id_value"].help_text = "As on your registration, e.g. DE123456789."
        autocomplete = {
            "company_name": "organization",
            "address_line1": "address-line1",
            "address_line2": "address-line2",
            "city": "address-level2",
            "postal_code": "postal-code",
            "state": "address-level1",
            "country": "country",
        }
        for name, token in autocomplete.items():
            self.fields[name].widget.attrs["autocomplete"] = token
        self.fields["tax_id_value"].widget.attrs.update(
            {"autocomplete": "off", "spellcheck": "false"}
        )

    def clean_company_name(self) -> str:
        return _text(self.cleaned_data["company_name"])

    def clean_address_line1(self) -> str:
        return _text(self.cleaned_data["address_line1"])

    def clean_address_line2(self) -> str:
        return _text(self.cleaned_data["address_line2"])

    def clean_city(self) -> str:
        return _text(self.cleaned_data["city"])

    def clean_state(self) -> str:
        return _text(self.cleaned_data["state"])

    def clean_postal_code(self) -> str:
        value = _text(self.cleaned_data["postal_code"]).upper()
        if value and not re.fullmatch(r"[A-Z0-9][A-Z0-9 -]{0,18}[A-Z0-9]", value):
            raise forms.ValidationError("Enter a postal code of letters, digits, spaces or -.")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        tax_type = data.get("tax_id_type") or ""
        value = data.get("tax_id_value") or ""
        if "tax_id_value" in self.errors or "tax_id_type" in self.errors:
            return data
        if value and not tax_type:
            self.add_error("tax_id_type", "Choose the type of this tax id.")
        elif tax_type and not value:
            self.add_error("tax_id_value", "Enter the tax id, or choose None as its type.")
        elif tax_type:
            value = normalise_tax_id(tax_type, value)
            problem = tax_id_problem(tax_type, value)
            if problem:
                self.add_error("tax_id_value", problem)
            data["tax_id_value"] = value
        return data

    @property
    def details(self) -> Details:
        data = self.cleaned_data
        return Details(
            company_name=data["company_name"],
            address_line1=data["address_line1"],
            address_line2=data["address_line2"],
            city=data["city"],
            postal_code=data["postal_code"],
            state=data["state"],
            country=data["country"],
            tax_id_type=data["tax_id_type"],
            tax_id_value=data["tax_id_value"] if data["tax_id_type"] else "",
        )
