"""The private gallery: every image a customer made, from the playground or the API, newest
first, filtered and paged by keyset (see paging.py) over the (user, -created_at, -id) index."""

from __future__ import annotations

from django import forms
from django.db.models import QuerySet

from accounts.models import User
from generation.catalog import all_models
from generation.models import Generation, Image, InputImage

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
    # Each tile shows the reference images its generation was made from: one query per page.
    return (
        rows.select_related("generation")
        .prefetch_related("generation__inputs")
        .order_by("-created_at", "-id")
    )


def page_after(rows: QuerySet[Image], cursor: str | None) -> paging.Page[Image]:
    return paging.page_after(rows, cursor, PAGE_SIZE)


def owned_image(user: User, token: str) -> Image | None:
    return (
        Image.objects.filter(user=user, token=token)
        .select_related("generation", "generation__api_key")
        .first()
    )


def recent_images(user: User, limit: int) -> list[Image]:
    """The owner's newest ``limit`` images (the playground offers them as references)."""
    rows = Image.objects.filter(user=user).select_related("generation")
    return list(rows.order_by("-created_at", "-id")[:limit])


def owned_images(user: User, tokens: list[str]) -> dict[str, Image]:
    """The owner's images among ``tokens``, by token: another customer's token is simply not
    there, exactly like one that does not exist."""
    rows = Image.objects.filter(user=user, token__in=tokens).select_related("generation")
    return {image.token: image for image in rows}


def owned_input(user: User, token: str) -> InputImage | None:
    """One of the owner's reference images (an input of one of their generations)."""
    return InputImage.objects.filter(user=user, token=token).select_related("generation").first()
