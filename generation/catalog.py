"""The model catalog (from settings.SEEDREAM_MODELS) and each model's size rules."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings

_SIZE_RE = re.compile(r"^(?P<w>[1-9][0-9]{1,4})x(?P<h>[1-9][0-9]{1,4})$")
# Above 2048x2048 pixels an image is priced in the "4k" tier where the price table has one.
FOUR_K_TIER = "4k"
FOUR_K_MIN_PIXELS = 2048 * 2048 + 1


@dataclass(frozen=True)
class ModelInfo:
    id: str
    upstream_id: str
    name: str
    created: int
    default_size: str
    size_keywords: dict[str, int]
    min_pixels: int
    max_pixels: int
    max_aspect_ratio: float
    supports_seed: bool
    supports_guidance_scale: bool
    recommended_sizes: list[str]


@dataclass(frozen=True)
class Size:
    """A size the model accepts: ``value`` is what the upstream is sent."""

    value: str
    pixels: int

    @property
    def tier(self) -> str:
        return FOUR_K_TIER if self.pixels >= FOUR_K_MIN_PIXELS else ""


class SizeError(ValueError):
    pass


def _info(model_id: str, raw: dict[str, Any]) -> ModelInfo:
    return ModelInfo(
        id=model_id,
        upstream_id=raw["upstream_id"],
        name=raw.get("name", model_id),
        created=int(raw.get("created", 0)),
        default_size=raw["default_size"],
        size_keywords=dict(raw.get("size_keywords", {})),
        min_pixels=int(raw["min_pixels"]),
        max_pixels=int(raw["max_pixels"]),
        max_aspect_ratio=float(raw.get("max_aspect_ratio", 16)),
        supports_seed=bool(raw.get("supports_seed", False)),
        supports_guidance_scale=bool(raw.get("supports_guidance_scale", False)),
        recommended_sizes=list(raw.get("recommended_sizes", [])),
    )


def all_models() -> list[ModelInfo]:
    return [_info(model_id, raw) for model_id, raw in settings.SEEDREAM_MODELS.items()]


def get_model(model_id: str) -> ModelInfo | None:
    raw = settings.SEEDREAM_MODELS.get(model_id)
    return None if raw is None else _info(model_id, raw)


def resolve_size(model: ModelInfo, size: str | None) -> Size:
    """The size to send upstream, checked against the model's rules; SizeError says why not."""
    if size is None or size == "auto":
        size = model.default_size
    if size in model.size_keywords:
        return Size(value=size, pixels=model.size_keywords[size])
    match = _SIZE_RE.match(size)
    if match is None:
        keywords = ", ".join(model.size_keywords)
        also = f", or one of {keywords}" if keywords else ""
        raise SizeError(f"'{size}' is not a size: use WIDTHxHEIGHT in pixels{also}")
    width, height = int(match["w"]), int(match["h"])
    pixels = width * height
    if not model.min_pixels <= pixels <= model.max_pixels:
        raise SizeError(
            f"{size} has {pixels:,} pixels; {model.id} makes images of "
            f"{model.min_pixels:,} to {model.max_pixels:,} pixels (width x height)"
        )
    ratio = max(width / height, height / width)
    if ratio > model.max_aspect_ratio:
        raise SizeError(
            f"{size} is too narrow: {model.id} allows aspect ratios up to "
            f"{model.max_aspect_ratio:g}:1"
        )
    return Size(value=f"{width}x{height}", pixels=pixels)
