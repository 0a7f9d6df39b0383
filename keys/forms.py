from __future__ import annotations

import datetime

from django import forms
from django.utils import timezone

from .services import NAME_MAX_LENGTH


class KeyCreateForm(forms.Form):
    # The form's one-time token (keys/views.py): one key per form, however often it is sent.
    token = forms.CharField(required=False, widget=forms.HiddenInput, max_length=64)
    name = forms.CharField(
        max_length=NAME_MAX_LENGTH,
        help_text="Something that tells you where the key is used, e.g. “production server”.",
    )
    expires_on = forms.DateField(
        required=False,
        label="Expires on (optional)",
        help_text="The key stops working at the start of this day (UTC). Leave empty for never.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError("Give the key a name.")
        return name

    def clean_expires_on(self) -> datetime.date | None:
        expires_on: datetime.date | None = self.cleaned_data.get("expires_on")
        if expires_on is not None and expires_on <= timezone.now().date():
            raise forms.ValidationError("The expiry must be a future date.")
        return expires_on

    def expires_at(self) -> datetime.datetime | None:
        expires_on = self.cleaned_data.get("expires_on")
        if expires_on is None:
            return None
        return datetime.datetime.combine(expires_on, datetime.time.min, tzinfo=datetime.UTC)


class KeyLimitsForm(forms.Form):
    """Lower limits for one key; empty fields leave the account's limits in force."""

    requests_per_minute = forms.IntegerField(
        required=False, min_value=1, max_value=1_000_000, label="Requests per minute"
    )
    images_per_minute = forms.IntegerField(
        required=False, min_value=1, max_value=1_000_000, label="Images per minute"
    )
    concurrent_generations = forms.IntegerField(
        required=False, min_value=1, max_value=100_000, label="Generations at a time"
    )
