"""The private gallery: every image a customer made, from the playground or the API, newest
first, filtered and paged by keyset (see paging.py) over the (user, -created_at, -id) index."""

from __future__ import annotations

from django import forms
from django.db.models import QuerySet

from accounts.models import User
from generation.catalog import all_models
from generation.models import Generation, Image

from . import paging

PAGE_SIZE = 48


class GalleryFilterForm(forms.Form):
    model = forms.ChoiceField(required=False, label="Model")
    source = forms.ChoiceField(required=False, label="Source")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["model"].choices = [  # type: ignore[attr-defined]
            ("", "All models"),
            *((m.id, m.id) for m in all_models()),
        ]
        self.fields["source"].choices = [  # type: ignore[attr-defined]
            ("", "API and playground"),
            *Generation.Source.choices,
        ]


def images(user: User, form: GalleryFilterForm) -> QuerySet[Image]:
    rows = Image.objects.filter(user=user)
    data = form.cleaned_data if form.is_valid() else {}
    if data.get("model"):
        rows = rows.filter(generation__model=data["model"])
    if data.get("source"):
        rows = rows.filter(generation__source=data["source"])
    return rows.select_related("generation").order_by("-created_at", "-id")


def page_after(rows: QuerySet[Image], cursor: str | None) -> paging.Page[Image]:
    return paging.page_after(rows, cursor, PAGE_SIZE)


def owned_image(user: User, token: str) -> Image | None:
    return (
        Image.objects.filter(user=user, token=token)
        .select_related("generation", "generation__api_key")
        .first()
    )
