"""Pictures for reference-image tests: small solid colours, in any format Pillow writes, and
HEIC (an iPhone's format), written by pillow-heif's encoder."""

from __future__ import annotations

import base64
import io

import pillow_heif
from PIL import Image as PILImage

RED, GREEN, BLUE = (220, 30, 30), (30, 200, 60), (40, 60, 230)


def picture(colour: tuple[int, int, int] = RED, size: tuple[int, int] = (64, 48),
            image_format: str = "PNG") -> bytes:  # fmt: skip
    out = io.BytesIO()
    PILImage.new("RGB", size, colour).save(out, image_format)
    return out.getvalue()


def data_url(data: bytes, image_format: str = "png") -> str:
    return f"data:image/{image_format};base64,{base64.b64encode(data).decode()}"


def heic(colour: tuple[int, int, int] = RED, size: tuple[int, int] = (64, 48)) -> bytes:
    """A HEIC file (an HEVC-coded HEIF, ``ftypheic``), as an iPhone saves a photograph."""
    out = io.BytesIO()
    pillow_heif.from_pillow(PILImage.new("RGB", size, colour)).save(out, format="HEIF", quality=90)
    return out.getvalue()
