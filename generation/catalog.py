"""The model catalog, read from data (generation/catalog.toml, or SEEDREAM_CATALOG_FILE: see
config/settings.py), and each model's size rules and lifecycle.

Nothing about a particular model is written in code: its ids and aliases, the channel's upstream
ids, its modes, sizes and keywords, its pixel window and aspect bounds, its reference limits,
the upstream fields it accepts and its lifecycle are all entries of the file. A model is found
by its public id, an alias, or any of its upstream ids (customers copy those from BytePlus's
and Volcengine's docs).

Operators change a model's lifecycle, upstream ids and default size in the admin too (a
ModelOverride row over the file's entry). Those rows are read at most every
CATALOG_CACHE_SECONDS by ``refresh``, which the ways in call (the /v1 views, the pages, the
worker's tasks) where a query is allowed; ``get_model`` and the rest never query, so they are
safe on an event loop and in tests without a database.
"""

from __future__ import annotations

import copy
import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from .models import ModelOverride

_UPSTREAM_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SIZE_RE = re.compile(r"^(?P<w>[1-9][0-9]{1,4})[xX](?P<h>[1-9][0-9]{1,4})$")
# Suggested sizes are multiples of this (every model takes them; upstream sizes are usually so).
_SUGGESTION_STEP = 16

ACTIVE, DEPRECATED, RETIRED = "active", "deprecated", "retired"
MODES = ("text-to-image", "edit", "multi-reference", "sets", "layers")

# OpenAI's ``quality`` values, and the resolution tier each picks among a model's size keywords
# (smallest to largest): the lowest, the one at 2048x2048 (the "2K" every current model has; or
# the keyword nearest it), the highest. "auto" is the model's default size. Seedream has no
# quality knob: resolution is the trade-off between cost, time and detail it offers.
QUALITY_TIERS = {
    "low": "lowest",
    "medium": "2K",
    "high": "highest",
    "standard": "2K",
    "hd": "highest",
    "auto": "default",
}
_MEDIUM_PIXELS = 2048 * 2048


@dataclass(frozen=True)
class ModelInfo:
    id: str
    name: str
    created: int
    status: str
    deprecated: date | None
    sunset: date | None
    replacement: str
    aliases: tuple[str, ...]
    modes: tuple[str, ...]
    upstream_ids: dict[str, tuple[str, ...]]
    default_size: str
    keyword_sizes: dict[str, str]
    # How much larger than a keyword's nominal pixels the model may deliver it (1: exactly).
    keyword_reach: float
    min_pixels: int
    max_pixels: int
    min_aspect: float
    max_aspect: float
    recommended_sizes: list[str]
    layer_keywords: tuple[str, ...]
    max_references: int
    reference_max_bytes: int
    reference_max_pixels: int
    reference_formats: tuple[str, ...]
    # A reference image's aspect-ratio bounds (width / height).
    reference_min_aspect: float
    reference_max_aspect: float
    seed: str
    guidance_scale_default: float
    sets: bool
    stream: bool
    output_formats: tuple[str, ...]
    background: tuple[str, ...]
    max_layers: int
    optimize_prompt: tuple[str, ...]
    # How long one generation may take upstream, in seconds (0: GENERATION_TIMEOUT_SECONDS).
    # Pro takes about two minutes an image, past the default.
    time_budget_seconds: int = 0
    # How long one image usually takes, fastest and slowest, in seconds ((0, 0): no figure).
    # Shown to people while a generation runs; nothing is timed by it.
    typical_seconds: tuple[int, int] = (0, 0)

    @property
    def upstream_id(self) -> str:
        """The id the upstream is sent, on this installation's channel (UPSTREAM_CHANNEL)."""
        ids = self.upstream_ids.get(settings.UPSTREAM_CHANNEL, ())
        return ids[0] if ids else ""

    @property
    def size_keywords(self) -> dict[str, int]:
        """Each size keyword and its nominal pixels."""
        return {keyword: _pixels(size) for keyword, size in self.keyword_sizes.items()}

    @property
    def max_aspect_ratio(self) -> float:
        """The widest ratio either way (a landscape's width / height, or a portrait's inverse)."""
        return max(self.max_aspect, 1 / self.min_aspect)

    @property
    def generation_timeout_seconds(self) -> int:
        """How long a generation of this model may take upstream (all its calls, retries
        included) before what is missing counts as not delivered."""
        return self.time_budget_seconds or settings.GENERATION_TIMEOUT_SECONDS

    @property
    def supports_seed(self) -> bool:
        return self.seed == "forward"

    @property
    def supports_guidance_scale(self) -> bool:
        return self.guidance_scale_default > 0

    @property
    def supports_transparency(self) -> bool:
        return "transparent" in self.background

    @property
    def chooses_output_format(self) -> bool:
        """Whether the upstream takes ``output_format``: a model that makes one format has no
        such field (it is sent only to models that make several)."""
        return len(self.output_formats) > 1

    def makes_format(self, image_format: str) -> bool:
        """Whether the upstream can be asked for ``image_format`` (png, jpeg)."""
        return self.chooses_output_format and image_format in self.output_formats

    def size_for_quality(self, quality: str) -> str:
        """The size ``quality`` (a QUALITY_TIERS key) stands for on this model: one of its
        keywords, or its default size (for "auto", and on a model without keywords)."""
        tier = QUALITY_TIERS[quality]
        by_pixels = sorted(self.keyword_sizes, key=lambda k: _pixels(self.keyword_sizes[k]))
        if tier == "default" or not by_pixels:
            return self.default_size
        if tier == "lowest":
            return by_pixels[0]
        if tier == "highest":
            return by_pixels[-1]
        return min(by_pixels, key=lambda k: abs(_pixels(self.keyword_sizes[k]) - _MEDIUM_PIXELS))

    @property
    def quality_sizes(self) -> dict[str, str]:
        """Each ``quality`` value and the size it gives on this model (the docs show these)."""
        return {quality: self.size_for_quality(quality) for quality in QUALITY_TIERS}

    def lifecycle(self, today: date | None = None) -> str:
        """active, deprecated (still answering, until its sunset) or retired."""
        if self.status == RETIRED:
            return RETIRED
        if self.status == DEPRECATED:
            if self.sunset is not None and (today or _today()) > self.sunset:
                return RETIRED
            return DEPRECATED
        return ACTIVE


@dataclass(frozen=True)
class Size:
    """A size the model accepts: ``value`` is what the upstream is sent, ``pixels`` its nominal
    pixel count (a keyword's nominal size), ``reach`` the most pixels an image of it can be
    delivered with (a keyword the model may deliver larger: [size] keyword_reach; 0: ``pixels``).
    A request's hold prices its images at ``most_pixels``; each is charged as delivered."""

    value: str
    pixels: int
    reach: int = 0

    @property
    def most_pixels(self) -> int:
        return max(self.pixels, self.reach)


class SizeError(ValueError):
    pass


def _today() -> date:
    return datetime.now(UTC).date()


def _pixels(size: str) -> int:
    match = _SIZE_RE.match(size)
    if match is None:
        raise ValueError(f"{size!r} is not WIDTHxHEIGHT")
    return int(match["w"]) * int(match["h"])


def _date(value: Any) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def day_start(day: date) -> int:
    """The Unix time at which ``day`` begins (UTC)."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _created(value: Any) -> int:
    """A release date (TOML date or ISO string) or a Unix time, as a Unix time."""
    if isinstance(value, int):
        return value
    day = _date(value)
    return day_start(day) if day else 0


def _info(model_id: str, raw: dict[str, Any]) -> ModelInfo:
    size = raw.get("size", {})
    refs = raw.get("references", {})
    fields = raw.get("fields", {})
    aspect = size.get("aspect", [1 / 16, 16])
    return ModelInfo(
        id=model_id,
        name=raw.get("name", model_id),
        created=_created(raw.get("created")),
        status=raw.get("status", ACTIVE),
        deprecated=_date(raw.get("deprecated")),
        sunset=_date(raw.get("sunset")),
        replacement=raw.get("replacement", ""),
        aliases=tuple(raw.get("aliases", ())),
        modes=tuple(raw.get("modes", ("text-to-image",))),
        upstream_ids={channel: tuple(ids) for channel, ids in raw.get("upstream", {}).items()},
        default_size=size["default"],
        keyword_sizes=dict(size.get("keywords", {})),
        keyword_reach=float(size.get("keyword_reach", 1.0)),
        min_pixels=int(size["min_pixels"]),
        max_pixels=int(size["max_pixels"]),
        min_aspect=float(aspect[0]),
        max_aspect=float(aspect[1]),
        recommended_sizes=list(size.get("recommended", [])),
        layer_keywords=tuple(size.get("layer_keywords", ())),
        max_references=int(refs.get("max", 0)),
        reference_max_bytes=int(refs.get("max_bytes", 0)),
        reference_max_pixels=int(refs.get("max_pixels", 0)),
        reference_formats=tuple(refs.get("formats", ())),
        reference_min_aspect=float(refs.get("aspect", [1 / 16, 16])[0]),
        reference_max_aspect=float(refs.get("aspect", [1 / 16, 16])[1]),
        seed=fields.get("seed", "drop"),
        guidance_scale_default=float(fields.get("guidance_scale", 0)),
        sets=bool(fields.get("sets", False)),
        stream=bool(fields.get("stream", False)),
        output_formats=tuple(fields.get("output_formats", ("jpeg",))),
        background=tuple(fields.get("background", ())),
        max_layers=int(fields.get("layers", 0)),
        optimize_prompt=tuple(fields.get("optimize_prompt", ())),
        time_budget_seconds=int(raw.get("time_budget", 0)),
        typical_seconds=_typical(raw.get("typical_seconds")),
    )


def _typical(value: Any) -> tuple[int, int]:
    """``typical_seconds``: [fastest, slowest] (a single figure is both)."""
    if value is None:
        return (0, 0)
    figures = [int(v) for v in (value if isinstance(value, list) else [value])]
    return (min(figures), max(figures))


@dataclass(frozen=True)
class _Catalog:
    models: tuple[ModelInfo, ...]
    by_name: dict[str, ModelInfo]


@dataclass(frozen=True)
class Override:
    """An admin's ModelOverride, as the catalog applies it over the file's entry."""

    model: str
    status: str = ""
    deprecated: date | None = None
    sunset: date | None = None
    replacement: str = ""
    upstream: tuple[tuple[str, tuple[str, ...]], ...] = ()
    default_size: str = ""

    @classmethod
    def of_row(cls, row: ModelOverride) -> Override:
        return cls(
            model=row.model,
            status=row.status,
            deprecated=row.deprecated,
            sunset=row.sunset,
            replacement=row.replacement,
            upstream=tuple(parse_upstream_ids(row.upstream_ids).items()),
            default_size=row.default_size,
        )

    def applied(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The file's entry ``raw`` with this override's changes."""
        raw = copy.deepcopy(raw)
        if self.status:
            raw.update(
                status=self.status,
                deprecated=self.deprecated,
                sunset=self.sunset,
                replacement=self.replacement,
            )
        for channel, ids in self.upstream:
            raw.setdefault("upstream", {})[channel] = list(ids)
        if self.default_size:
            raw.setdefault("size", {})["default"] = self.default_size
        return raw


def parse_upstream_ids(text: str) -> dict[str, tuple[str, ...]]:
    """An override's upstream ids ("channel: id, id" per line) per channel; ValueError says
    which line is wrong."""
    channels: dict[str, tuple[str, ...]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        channel, colon, listed = line.partition(":")
        ids = tuple(i.strip() for i in listed.replace(",", " ").split())
        if not colon or not channel.strip() or not ids:
            raise ValueError(f"line {number}: write 'channel: id, id'")
        bad = [i for i in ids if not _UPSTREAM_ID_RE.match(i)]
        if bad:
            raise ValueError(f"line {number}: {bad[0]!r} is not an upstream model id")
        channels[channel.strip().lower()] = ids
    return channels


def channels() -> set[str]:
    """The upstream channels the catalog file names, and this installation's."""
    named = {c for raw in settings.SEEDREAM_MODELS.values() for c in raw.get("upstream", {})}
    return named | {settings.UPSTREAM_CHANNEL}


# The admin's overrides, as last read (``refresh``), and when: read again once
# CATALOG_CACHE_SECONDS have passed. -inf: never read, or forgotten (``forget_overrides``).
_overrides: tuple[float, tuple[Override, ...]] = (-math.inf, ())


def overrides_due() -> bool:
    """Whether ``refresh`` would read the overrides again (no query: a caller on an event loop
    asks this first, and sends ``refresh`` to a thread only when it is due)."""
    return time.monotonic() - _overrides[0] >= settings.CATALOG_CACHE_SECONDS


def refresh() -> None:
    """Read the admin's overrides if the last read is CATALOG_CACHE_SECONDS old (a query)."""
    global _overrides
    if overrides_due():
        rows = ModelOverride.objects.order_by("model")
        _overrides = (time.monotonic(), tuple(Override.of_row(row) for row in rows))


def forget_overrides() -> None:
    """Drop the overrides read: the next ``refresh`` reads them (the admin, after a save)."""
    global _overrides
    _overrides = (-math.inf, ())


def model_entry(model_id: str, override: Override | None = None) -> ModelInfo:
    """The file's entry for ``model_id`` with ``override`` applied (the admin checks an
    override with this before saving it)."""
    raw = settings.SEEDREAM_MODELS[model_id]
    return _info(model_id, override.applied(raw) if override else raw)


def _catalog() -> _Catalog:
    return _built(_overrides[1])


@lru_cache(maxsize=4)
def _built(overrides: tuple[Override, ...]) -> _Catalog:
    by_model = {o.model: o for o in overrides}
    models = tuple(
        model_entry(model_id, by_model.get(model_id)) for model_id in settings.SEEDREAM_MODELS
    )
    by_name: dict[str, ModelInfo] = {}
    # Upstream ids first, then aliases, then public ids: a public id always names its own model.
    for model in models:
        for ids in model.upstream_ids.values():
            by_name.update(dict.fromkeys(ids, model))
    for model in models:
        by_name.update(dict.fromkeys(model.aliases, model))
    for model in models:
        by_name[model.id] = model
    return _Catalog(models, by_name)


@receiver(setting_changed)
def _forget_catalog(*, setting: str, **kwargs: Any) -> None:
    # Tests change the catalog through settings; a served process never does.
    if setting in ("SEEDREAM_MODELS", "UPSTREAM_CHANNEL"):
        _built.cache_clear()


def all_models() -> list[ModelInfo]:
    """Every model in the catalog, retired ones included (they answer 410, and say where to
    go), in the file's order."""
    return list(_catalog().models)


def text_to_image_models() -> list[ModelInfo]:
    """The models a prompt alone can be sent to today (what the playground offers)."""
    return [m for m in _catalog().models if "text-to-image" in m.modes and m.lifecycle() != RETIRED]


def transparency_models() -> list[ModelInfo]:
    """The models that can make an image with a real alpha channel (background transparent)."""
    return [m for m in text_to_image_models() if m.supports_transparency]


def get_model(name: str) -> ModelInfo | None:
    """The model a public id, an alias or an upstream id names, or None."""
    return _catalog().by_name.get(name)


def resolve_size(model: ModelInfo, size: str | None) -> Size:
    """The size to send upstream, checked against the model's rules; SizeError says why not
    and, for a size outside the model's window or aspect bounds, the nearest one it makes."""
    if size is None or size == "auto":
        size = model.default_size
    keyword = _keyword(model, size)
    if keyword is not None:
        nominal = _pixels(model.keyword_sizes[keyword])
        reach = min(model.max_pixels, math.floor(nominal * model.keyword_reach))
        return Size(value=keyword, pixels=nominal, reach=max(nominal, reach))
    match = _SIZE_RE.match(size)
    if match is None:
        keywords = ", ".join(model.keyword_sizes)
        also = f", or one of {keywords}" if keywords else ""
        raise SizeError(f"'{size}' is not a size: use WIDTHxHEIGHT in pixels{also}")
    width, height = int(match["w"]), int(match["h"])
    pixels = width * height
    ratio = width / height
    if not model.min_aspect <= ratio <= model.max_aspect:
        raise SizeError(
            f"{width}x{height} is too narrow: {model.id} makes aspect ratios (width / height) "
            f"from 1:{1 / model.min_aspect:g} to {model.max_aspect:g}:1; the nearest it makes "
            f"is {nearest_size(model, width, height)}"
        )
    if not model.min_pixels <= pixels <= model.max_pixels:
        raise SizeError(
            f"{width}x{height} has {pixels:,} pixels; {model.id} makes images of "
            f"{model.min_pixels:,} to {model.max_pixels:,} pixels (width x height); the nearest "
            f"size it makes is {nearest_size(model, width, height)}"
        )
    return Size(value=f"{width}x{height}", pixels=pixels)


def resolve_layer_size(model: ModelInfo, size: str | None) -> Size:
    """A layer split's size: one of the model's layer keywords (``auto``, the default, lets the
    model choose by the input's size); WxH is SizeError. A keyword is held at its nominal size
    where the model has one for it, and ``auto`` (or a layer keyword the model has no size for,
    as 1.5K on 5.0 Pro) at the largest: each image is charged as delivered."""
    keywords = model.layer_keywords
    chosen = next(
        (k for k in keywords if size is not None and k.casefold() == size.casefold()), None
    )
    if size is not None and chosen is None:
        raise SizeError(
            f"'{size}' is not a size of a layer split: use one of {', '.join(keywords)}"
        )
    value = chosen or "auto"
    if value in model.keyword_sizes:
        return resolve_size(model, value)
    largest = max(
        (k for k in keywords if k in model.keyword_sizes),
        key=lambda k: _pixels(model.keyword_sizes[k]),
    )
    held = resolve_size(model, largest)
    return Size(value=value, pixels=held.pixels, reach=held.reach)


def _keyword(model: ModelInfo, size: str) -> str | None:
    """``size`` as one of the model's keywords (any case), in the model's own spelling."""
    folded = size.casefold()
    return next((k for k in model.keyword_sizes if k.casefold() == folded), None)


def nearest_size(model: ModelInfo, width: int, height: int) -> str:
    """The size closest to ``width`` x ``height`` that ``model`` makes: the aspect ratio held
    within its bounds, then both sides scaled by one factor into its pixel window, in multiples
    of 16 (rounded inwards, so the suggestion is always valid)."""
    ratio = min(max(width / height, model.min_aspect), model.max_aspect)
    pixels = min(max(width * height, model.min_pixels), model.max_pixels)
    step = _SUGGESTION_STEP
    # Sides of ``pixels`` at ``ratio``, then on the step grid: up while below the window, down
    # while above it (at most a few steps either way).
    w = max(step, round(math.sqrt(pixels * ratio) / step) * step)
    h = max(step, round(math.sqrt(pixels / ratio) / step) * step)
    while w * h < model.min_pixels:
        w, h = (w + step, h) if w / h <= ratio else (w, h + step)
    while w * h > model.max_pixels:
        w, h = (w - step, h) if w / h >= ratio else (w, h - step)
    return f"{w}x{h}"
