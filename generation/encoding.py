"""The format a customer asked for (``output_format``, ``output_compression``), made on our side
where the upstream does not make it: each delivered image re-encoded before it is marked with
its provenance and stored (services/settle.py), so the hosted file, its name's extension, its
content type and the answer's ``output_format`` all say the format delivered.

- PNG is lossless (``output_compression`` does not apply to it) and keeps an alpha channel.
- JPEG and WebP are encoded at the quality ``output_compression`` (OpenAI's meaning: 0 to 100,
  100, the default, compressing least). JPEG has no alpha channel; WebP keeps it.
- An image already in the format asked for is left as the upstream made it, unless a
  compression below 100 is asked of a JPEG or WebP.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from typing import Any

from PIL import Image as PILImage

from .upstream import IMAGE_FORMATS, DeliveredImage

# Our names (OpenAI's) for Pillow's formats, and back.
_PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
_FORMAT_OF_TYPE = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}
# zlib level 6 (Pillow's and libpng's default): within a few percent of the smallest PNG, at a
# fraction of level 9's time.
_PNG_COMPRESS_LEVEL = 6
_LEAST_COMPRESSION = 100


def format_of(image: DeliveredImage) -> str:
    """``image``'s format in OpenAI's words (png, jpeg, webp)."""
    return _FORMAT_OF_TYPE[image.content_type]


@dataclass(frozen=True)
class Delivery:
    """How a generation's images are delivered: ``output_format`` (None: as the upstream made
    them) and ``output_compression`` (None: the least)."""

    output_format: str | None = None
    output_compression: int | None = None

    @classmethod
    def of(cls, params: dict[str, Any]) -> Delivery:
        """The delivery a generation's stored ``params`` ask for (GenerationSpec.params)."""
        return cls(params.get("output_format"), params.get("output_compression"))

    @property
    def may_reencode(self) -> bool:
        """Whether any image may need re-encoding (seconds of CPU for a large PNG: it is done
        off the event loop)."""
        return self.output_format is not None or self._compresses

    @property
    def _compresses(self) -> bool:
        return self.output_compression is not None and self.output_compression < _LEAST_COMPRESSION

    def target_format(self, image: DeliveredImage) -> str:
        return self.output_format or format_of(image)

    def needs_reencoding(self, image: DeliveredImage) -> bool:
        target = self.target_format(image)
        if target != format_of(image):
            return True
        return target != "png" and self._compresses

    def apply(self, image: DeliveredImage) -> DeliveredImage:
        """``image`` in the format asked for (itself if it is so already). A split's layers
        stay the PNGs with alpha they are: the format asked for is the base's."""
        if (image.layer and image.layer.get("z_index", 0)) or not self.needs_reencoding(image):
            return image
        target = self.target_format(image)
        quality = _LEAST_COMPRESSION if self.output_compression is None else self.output_compression
        data = reencode(image.data, target, quality)
        content_type, extension = IMAGE_FORMATS[_PILLOW_FORMATS[target]]
        return replace(image, data=data, content_type=content_type, extension=extension)


def reencode(data: bytes, target: str, quality: int = _LEAST_COMPRESSION) -> bytes:
    """``data`` (an image) encoded as ``target``: png, jpeg or webp at ``quality``."""
    with PILImage.open(io.BytesIO(data)) as opened:
        opened.load()
        icc_profile = opened.info.get("icc_profile")
        has_alpha = opened.mode in ("RGBA", "LA", "PA") or "transparency" in opened.info
        picture: PILImage.Image = opened
        if target == "jpeg":
            picture = opened.convert("RGB")
        elif opened.mode not in ("RGB", "RGBA"):
            picture = opened.convert("RGBA" if has_alpha else "RGB")
        options: dict[str, Any] = {}
        if icc_profile:
            options["icc_profile"] = icc_profile
        if target == "png":
            options["compress_level"] = _PNG_COMPRESS_LEVEL
        else:
            options["quality"] = quality
        out = io.BytesIO()
        picture.save(out, _PILLOW_FORMATS[target], **options)
    return out.getvalue()
