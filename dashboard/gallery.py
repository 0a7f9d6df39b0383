"""The private gallery: every image a customer made, from the playground or the API, newest
first, filtered and paged by keyset (see paging.py) over the (account, -created_at, -id) index.

A set or a layer split is one generation whose images belong together (one upstream call made
them): the grid shows it as one tile, its first image, and the image's page shows the rest. The
images of a plain generation asked with n > 1 are independent and each has its own tile."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from django import forms
from django.db.models import Exists, OuterRef, Q, QuerySet

from accounts.models import Account
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


GroupKind = Literal["set", "layers"]


def group_kind(generation: Generation) -> GroupKind | None:
    """What kind of group ``generation``'s images make: "set", "layers" (a split) or None (a
    plain generation). The same test as ``_in_a_group`` below, in Python."""
    if "layers" in generation.params:
        return "layers"
    if "max_images" in generation.params:
        return "set"
    return None


def _in_a_group() -> Q:
    return Q(generation__params__has_key="layers") | Q(generation__params__has_key="max_images")


def images(account: Account, form: GalleryFilterForm) -> QuerySet[Image]:
    """The owner's tiles, newest first: every image, except that a set or a split shows only
    its first image still there (one the customer deleted hands the tile to the next)."""
    earlier_sibling = Image.objects.filter(
        generation=OuterRef("generation"), index__lt=OuterRef("index")
    )
    rows = Image.objects.filter(account=account).exclude(
        Q(index__gt=0) & _in_a_group() & Q(Exists(earlier_sibling))
    )
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


@dataclass(frozen=True)
class Tile:
    """One tile of the grid: an image, and for a set or a split how many it stands for."""

    image: Image
    kind: GroupKind | None = None
    # A set: its images; a split: its layers (the base not counted). Those still there.
    count: int = 0

    @property
    def badge(self) -> str:
        if self.kind == "set":
            return f"set of {self.count}"
        if self.kind == "layers":
            return f"{self.count} layer{'' if self.count == 1 else 's'}"
        return ""


def tiles(rows: list[Image]) -> list[Tile]:
    """The page's rows as tiles, with one more query when sets or splits are among them."""
    grouped = {image.generation_id for image in rows if group_kind(image.generation)}
    members: dict[int, list[int | None]] = {}
    if grouped:
        found = Image.objects.filter(generation_id__in=grouped).values_list(
            "generation_id", "layer__z_index"
        )
        for generation_id, z_index in found:
            members.setdefault(generation_id, []).append(z_index)
    result = []
    for image in rows:
        kind = group_kind(image.generation)
        if kind is None:
            result.append(Tile(image))
            continue
        z_indexes = members.get(image.generation_id, [])
        # A split counts its layers, not its base (z_index 0); a set counts every image.
        count = sum(1 for z in z_indexes if z) if kind == "layers" else len(z_indexes)
        result.append(Tile(image, kind, count))
    return result


def owned_image(account: Account, token: str) -> Image | None:
    return (
        Image.objects.filter(account=account, token=token)
        .select_related("generation", "generation__api_key")
        .first()
    )


def siblings(image: Image) -> list[Image]:
    """Every image of ``image``'s generation still there, in order (itself among them)."""
    return list(Image.objects.filter(generation_id=image.generation_id).order_by("index"))


def owned_split(account: Account, public_id: str) -> Generation | None:
    """The owner's layer split ``public_id``; None for another's, a plain generation or a set."""
    return Generation.objects.filter(
        account=account, public_id=public_id, params__has_key="layers"
    ).first()


def recent_images(account: Account, limit: int) -> list[Image]:
    """The owner's newest ``limit`` images (the playground offers them as references)."""
    rows = Image.objects.filter(account=account).select_related("generation")
    return list(rows.order_by("-created_at", "-id")[:limit])


def owned_images(account: Account, tokens: list[str]) -> dict[str, Image]:
    """The owner's images among ``tokens``, by token: another customer's token is simply not
    there, exactly like one that does not exist."""
    rows = Image.objects.filter(account=account, token__in=tokens).select_related("generation")
    return {image.token: image for image in rows}


def owned_input(account: Account, token: str) -> InputImage | None:
    """One of the owner's reference images (an input of one of their generations)."""
    return (
        InputImage.objects.filter(account=account, token=token).select_related("generation").first()
    )
