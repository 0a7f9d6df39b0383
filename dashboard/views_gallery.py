"""The private gallery: the grid, one image in detail (with the rest of its set or its layer
split), its download and its deletion, a split's layers as a zip, and the reference images a
generation was made from. Every lookup is scoped to the signed-in owner:
another customer's image is a 404, exactly like one that does not exist."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_http_methods

from accounts.current import require
from accounts.http import AuthenticatedRequest
from accounts.models import Account
from accounts.permissions import Action
from generation import services, storage
from generation.models import Image, InputImage
from generation.thumbnails import ensure_thumbnail

from . import gallery, layers

# A split's zip is built in memory up to this, then in a temporary file: up to 100 layers of a
# few megabytes each never sit in a worker's memory whole.
ZIP_MEMORY_BYTES = 16 * 1024 * 1024


@login_required
@require_GET
def gallery_page(request: AuthenticatedRequest) -> HttpResponse:
    form = gallery.GalleryFilterForm(request.GET or None)
    page = gallery.page_after(gallery.images(_account(request), form), request.GET.get("after"))
    query = request.GET.copy()
    query.pop("after", None)
    return render(
        request,
        "dashboard/gallery.html",
        {
            "form": form,
            "page": page,
            "tiles": gallery.tiles(page.rows),
            "filters": query.urlencode(),
            "retention_days": settings.IMAGE_RETENTION_DAYS,
        },
    )


def _account(request: AuthenticatedRequest) -> Account:
    """The gallery is the current account's, for its members who may use the playground."""
    return require(request, Action.USE_PLAYGROUND)


def _owned(request: AuthenticatedRequest, token: str) -> Image:
    image = gallery.owned_image(_account(request), token)
    if image is None:
        raise Http404
    return image


def _owned_input(request: AuthenticatedRequest, token: str) -> InputImage:
    # A request's reference images are part of its record: whoever may see usage sees them.
    found = gallery.owned_input(require(request, Action.VIEW_USAGE), token)
    if found is None:
        raise Http404
    return found


def _reuse_query(image: Image) -> str:
    g = image.generation
    params: dict[str, object] = {"prompt": g.prompt, "model": g.model, "size": g.size}
    # A set's or a split's n is what one call could make, not a number of images to ask for.
    if gallery.group_kind(g) is None:
        params["n"] = g.n
    for name in ("seed", "guidance_scale"):
        if g.params.get(name) is not None:
            params[name] = g.params[name]
    if g.params.get("watermark"):
        params["watermark"] = "1"
    return urlencode(params)


@login_required
@require_GET
def image_detail(request: AuthenticatedRequest, token: str) -> HttpResponse:
    image = _owned(request, token)
    return render(
        request,
        "dashboard/image.html",
        {
            "image": image,
            "g": image.generation,
            "inputs": list(image.generation.inputs.all()),
            "reuse_query": _reuse_query(image),
            "reference_query": urlencode({"ref": image.token}),
            "image_url": services.image_url(image, ""),
            **_group(image),
        },
    )


def _group(image: Image) -> dict[str, object]:
    """What the page shows of the rest of a set or a split: its images in order and this one's
    place among them, and a split's stack with this image's layer in it."""
    kind = gallery.group_kind(image.generation)
    if kind is None:
        return {"kind": None}
    siblings = gallery.siblings(image)
    position = next((i for i, sibling in enumerate(siblings, 1) if sibling.pk == image.pk), 1)
    context: dict[str, object] = {"kind": kind, "siblings": siblings, "position": position}
    if kind == "layers":
        stack = layers.stack_of(siblings)
        context["stack"] = stack
        context["layer"] = next((x for x in stack.layers if x.image.pk == image.pk), None)
    return context


@login_required
@require_GET
def image_download(request: AuthenticatedRequest, token: str) -> HttpResponseBase:
    image = _owned(request, token)
    extension = image.file.name.rsplit(".", 1)[-1]
    filename = f"{image.generation.public_id}-{image.index + 1}.{extension}"
    if storage.is_remote():
        # Straight from the bucket, by a short-lived signed URL that names the download.
        return storage.redirect(image.file.name, download_as=filename)
    try:
        handle = default_storage.open(image.file.name, "rb")
    except FileNotFoundError:
        raise Http404 from None
    return FileResponse(
        handle,
        as_attachment=True,
        filename=filename,
        content_type=image.content_type,
    )


@login_required
@require_GET
@cache_control(private=True)
def layers_zip(request: AuthenticatedRequest, public_id: str) -> HttpResponseBase:
    """A layer split's base and layers, with manifest.json, as one zip: the owner's only."""
    generation = gallery.owned_split(_account(request), public_id)
    if generation is None:
        raise Http404
    stack = layers.stack_of(list(generation.images.all()))
    if stack.base is None and not stack.layers:
        raise Http404
    # Built whole before the answer starts, so a file missing from storage is a 404 and never a
    # zip cut short.
    try:
        built = layers.spooled_zip(generation, stack, ZIP_MEMORY_BYTES)
    except FileNotFoundError:
        raise Http404 from None
    return FileResponse(
        built,
        as_attachment=True,
        filename=f"{generation.public_id}-layers.zip",
        content_type="application/zip",
    )


@login_required
@require_http_methods(["GET", "POST"])
def image_delete(request: AuthenticatedRequest, token: str) -> HttpResponse:
    image = _owned(request, token)
    if request.method == "POST":
        services.delete_image(image)
        messages.success(request, "The image was deleted. Its charge stays in your usage.")
        return redirect("dashboard:gallery")
    context = {
        "image": image,
        "g": image.generation,
        # A copy already cached by a browser, proxy or CDN expires within this.
        "cache_hours": max(round(settings.IMAGE_CACHE_SECONDS / 3600), 1),
    }
    return render(request, "dashboard/image_delete.html", context)


# A customer's reference images are private (unlike a generated image's unguessable link): only
# the owner's signed-in browser may keep a copy, never a shared cache. They never change, so
# that copy may be kept a while.
_PRIVATE = {"private": True, "max_age": 3600}


@login_required
@require_GET
@cache_control(**_PRIVATE)
def input_image(request: AuthenticatedRequest, token: str) -> HttpResponseBase:
    """One of the owner's reference images, as it was sent."""
    found = _owned_input(request, token)
    try:
        handle = default_storage.open(found.file.name, "rb")
    except FileNotFoundError:
        raise Http404 from None
    extension = found.file.name.rsplit(".", 1)[-1]
    filename = f"{found.generation.public_id}-reference-{found.index + 1}.{extension}"
    return FileResponse(handle, filename=filename, content_type=found.content_type)


@login_required
@require_GET
@cache_control(**_PRIVATE)
def input_thumbnail(request: AuthenticatedRequest, token: str) -> HttpResponseBase:
    """A small WebP of one of the owner's reference images, made once and kept (as an image's
    is): any format the model took shows in any browser, a TIFF or a 30 MB photograph too."""
    found = _owned_input(request, token)
    try:
        name = ensure_thumbnail(found.token, found.file.name)
    except FileNotFoundError:
        raise Http404 from None
    return FileResponse(default_storage.open(name, "rb"), content_type="image/webp")
