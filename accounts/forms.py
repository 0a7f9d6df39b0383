from __future__ import annotations

from typing import Any

from django import forms

from .models import Role, User


class CloseAccountForm(forms.Form):
    """Asks for the password (or, for an account that signs in only through GitHub or Google,
    the email address typed out) so that a borrowed, signed-in browser cannot close it."""

    confirmation = forms.CharField(max_length=254, strip=False)

    def __init__(self, user: User, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        field = self.fields["confirmation"]
        if user.has_usable_password():
            field.label = "Your password"
            field.widget = forms.PasswordInput(attrs={"autocomplete": "current-password"})
        else:
            field.label = "Type your email address to confirm"
            field.widget = forms.EmailInput(attrs={"autocomplete": "off"})
            field.help_text = user.email

    def clean_confirmation(self) -> str:
        given: str = self.cleaned_data["confirmation"]
        if self.user.has_usable_password():
            if not self.user.check_password(given):
                raise forms.ValidationError("That is not your password.")
        elif given.strip().lower() != self.user.email.lower():
            raise forms.ValidationError("That is not this account's email address.")
        return given


class OrganisationForm(forms.Form):
    name = forms.CharField(
        label="Organisation name",
        max_length=100,
        help_text="Up to 100 characters. Members see it in their account switcher.",
        widget=forms.TextInput(attrs={"autocomplete": "organization"}),
    )


class InviteForm(forms.Form):
    email = forms.EmailField(
        label="Email address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
    )
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.DEVELOPER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=Role.choices)
