"""Gallery thumbnails: one small WebP per image, made the first time it is asked for.

Made lazily (by the thumbnail URL, on a miss) rather than when the image is stored, so the API's
hot path pays nothing for a gallery the customer may never open. Making one twice at the same
moment is harmless: both write the same bytes under the same name.
"""

from __future__ import annotations

import io

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image as PILImage
from PIL import ImageOps

from .models import Image
from .references import read_heic

# Pillow refuses to open anything larger: our own stored images are at most 4096x4096.
PILImage.MAX_IMAGE_PIXELS = 64 * 1024 * 1024


def thumbnail_name(token: str) -> str:
    return f"thumbs/{token[:2]}/{token}.webp"


def render_thumbnail(original: bytes, max_pixels: int) -> bytes:
    read_heic()  # a reference image may be a HEIC (generation/references.py)
    with PILImage.open(io.BytesIO(original)) as opened:
        picture: PILImage.Image = ImageOps.exif_transpose(opened)
        picture.thumbnail((max_pixels, max_pixels), PILImage.Resampling.LANCZOS)
        # The original's XMP (its provenance, generation/provenance.py) goes on the thumbnail:
        # a smaller copy of an AI-made picture is one too. Pillow writes it only when told.
        xmp = picture.info.get("xmp") or b""
        if picture.mode not in ("RGB", "RGBA"):
            picture = picture.convert("RGB")
        out = io.BytesIO()
        picture.save(out, "WEBP", quality=80, method=4, xmp=xmp)
        return out.getvalue()


def ensure_thumbnail(token: str, original_name: str) -> str:
    """The storage name of ``token``'s thumbnail, made from ``original_name`` if missing."""
    name = thumbnail_name(token)
    if default_storage.exists(name):
        return name
    with default_storage.open(original_name, "rb") as handle:
        data = render_thumbnail(handle.read(), settings.THUMBNAIL_MAX_PIXELS)
    if default_storage.exists(name):  # another request made it meanwhile
        return name
    return default_storage.save(name, ContentFile(data))


def thumbnail_for(token: str) -> str | None:
    """The storage name of ``token``'s thumbnail, made from its original if it is missing; None
    when neither exists. The database is read only on a miss."""
    name = thumbnail_name(token)
    if default_storage.exists(name):
        return name
    original = Image.objects.filter(token=token).values_list("file", flat=True).first()
    if not original:
        return None
    try:
        return ensure_thumbnail(token, original)
    except FileNotFoundError:
        return None
