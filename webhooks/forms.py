from __future__ import annotations

from django import forms

from . import events, policy
from .services import DESCRIPTION_MAX_LENGTH

EVENT_CHOICES = [(name, name) for name in events.EVENT_TYPES]


class EventTypesField(forms.MultipleChoiceField):
    widget = forms.CheckboxSelectMultiple

    def __init__(self, **kwargs: object) -> None:
        super().__init__(
            choices=EVENT_CHOICES,
            label="Events to send",
            error_messages={"required": "Choose at least one event."},
            **kwargs,  # type: ignore[arg-type]
        )


class EventTypesMixin:
    def event_rows(self) -> list[tuple[object, str]]:
        """Each event checkbox with what the event means, for the template."""
        return [
            (choice, events.EVENT_TYPES[str(choice.data["value"])])
            for choice in self["event_types"]  # type: ignore[index]
        ]


class EndpointCreateForm(EventTypesMixin, forms.Form):
    url = forms.CharField(
        label="Endpoint URL",
        max_length=policy.URL_MAX_CHARS,
        help_text="Where we POST each event, e.g. https://example.com/webhooks/seedream.",
        widget=forms.URLInput(attrs={"placeholder": "https://", "autocomplete": "off"}),
    )
    description = forms.CharField(
        label="Description (optional)",
        required=False,
        max_length=DESCRIPTION_MAX_LENGTH,
        help_text="Something that tells you what receives these events.",
    )
    event_types = EventTypesField()

    def clean_url(self) -> str:
        try:
            return policy.check_endpoint_url(self.cleaned_data["url"])
        except policy.EndpointUrlError as error:
            raise forms.ValidationError(error.message) from None


class EndpointEventsForm(EventTypesMixin, forms.Form):
    event_types = EventTypesField()
