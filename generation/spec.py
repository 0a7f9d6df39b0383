"""A request for images, checked against the domain's rules: whoever sends it (the /v1 API, the
playground), the same values are accepted and refused with the same words."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings

from .catalog import (
    QUALITY_TIERS,
    RETIRED,
    ModelInfo,
    Size,
    SizeError,
    all_models,
    get_model,
    resolve_layer_size,
    resolve_size,
    text_to_image_models,
    transparency_models,
)
from .references import NOT_SPLIT_FORMATS, Reference, check_count, split_formats
from .refusals import Reason, Refusal, invalid

# Bounds every way in shares (the API's schema declares the same ones for its typed errors).
IMAGES_MAX = 10
# A set (sequential_image_generation "auto"): the model makes 1 to max_images related images in
# one call; its reference images and max_images together are at most this (Seedream's rule).
SET_TOTAL_MAX = 15
# A layer split's one input image has at least this many pixels (512 x 512).
LAYER_INPUT_MIN_PIXELS = 512 * 512
SEED_MAX = 2_147_483_647
GUIDANCE_SCALE_MIN, GUIDANCE_SCALE_MAX = 1, 10
# OpenAI's values: the formats we deliver (re-encoding where the model does not make one), the
# compression of a JPEG or WebP (100, the default, compresses least), the backgrounds.
OUTPUT_FORMATS = ("png", "jpeg", "webp")
COMPRESSION_MIN, COMPRESSION_MAX = 0, 100
BACKGROUNDS = ("transparent", "opaque", "auto")
QUALITIES = tuple(QUALITY_TIERS)


@dataclass(frozen=True)
class GenerationSpec:
    """A validated request, independent of where it came from (API or playground)."""

    model: ModelInfo
    prompt: str
    size: Size
    n: int
    response_format: str = "url"
    seed: int | None = None
    guidance_scale: float | None = None
    watermark: bool = False
    end_user: str | None = None
    # The format delivered (None: as the upstream makes it), its compression, the background.
    output_format: str | None = None
    output_compression: int | None = None
    background: str | None = None
    # The reference images sent with the prompt, in the customer's order (generation/
    # references.py); kept as the generation's InputImage rows, not in ``params``.
    references: tuple[Reference, ...] = ()
    # A set's most images (None: not a set): one call, in which the model decides how many.
    max_images: int | None = None
    # A layer split's most layers (None: not a split): one call, the base and its layers.
    max_layers: int | None = None

    @property
    def images_per_call(self) -> int:
        if self.max_layers is not None:
            return self.max_layers + 1  # the base, and each layer: all priced as images
        return self.max_images or 1

    @property
    def most_images(self) -> int:
        """The most images the request can deliver (what is held, and counted for limits)."""
        return self.n * self.images_per_call

    def with_references(self, references: tuple[Reference, ...]) -> GenerationSpec:
        """This spec with its reference images, once gathered and checked (build_spec checked
        their count for the model: ``reference_count``)."""
        if self.max_layers is not None:
            (reference,) = references
            if reference.image_format in NOT_SPLIT_FORMATS:
                raise invalid(
                    f"The image of a layer split is a {reference.image_format.upper()} image; a "
                    f"split takes {', '.join(split_formats(self.model))}.",
                    param="image",
                    code="invalid_image_format",
                )
            if reference.width * reference.height < LAYER_INPUT_MIN_PIXELS:
                raise invalid(
                    f"The image of a layer split is {reference.width}x{reference.height}; it "
                    f"must have at least {LAYER_INPUT_MIN_PIXELS:,} pixels (512x512).",
                    param="image",
                    code="image_too_small",
                )
        return replace(self, references=references)

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"watermark": self.watermark}
        if self.seed is not None:
            params["seed"] = self.seed
        if self.guidance_scale is not None:
            params["guidance_scale"] = self.guidance_scale
        if self.end_user:
            params["user"] = self.end_user
        if self.output_format is not None:
            params["output_format"] = self.output_format
        if self.output_compression is not None:
            params["output_compression"] = self.output_compression
        if self.background is not None:
            params["background"] = self.background
        if self.references:
            params["references"] = len(self.references)
        if self.max_images is not None:
            params["max_images"] = self.max_images
        if self.max_layers is not None:
            params["layers"] = self.max_layers
        return params


def available_model(name: str) -> ModelInfo:
    """The model ``name`` names, if it still answers: MODEL_NOT_FOUND for none, MODEL_RETIRED
    (naming its replacement) for one past its sunset."""
    info = get_model(name)
    if info is None:
        raise Refusal(
            Reason.MODEL_NOT_FOUND,
            f"The model '{name}' does not exist or you do not have access to it.",
            param="model",
        )
    if info.lifecycle() == RETIRED:
        when = f" on {info.sunset.isoformat()}" if info.sunset else ""
        instead = f"; use '{info.replacement}' instead" if info.replacement else ""
        raise Refusal(
            Reason.MODEL_RETIRED,
            f"The model '{info.id}' was retired{when}{instead}.",
            param="model",
        )
    return info


def build_spec(
    *,
    model: str,
    prompt: str,
    size: str | None = None,
    n: int = 1,
    response_format: str | None = None,
    seed: int | None = None,
    guidance_scale: float | None = None,
    watermark: bool = False,
    end_user: str | None = None,
    quality: str | None = None,
    output_format: str | None = None,
    output_compression: int | None = None,
    background: str | None = None,
    reference_count: int = 0,
    references_param: str = "image",
    sequential_image_generation: str | None = None,
    max_images: int | None = None,
    layer_decomposition: bool = False,
    max_layers: int | None = None,
) -> GenerationSpec:
    """The spec for these values, or a Refusal naming the first one at fault: the prompt, then
    the model (unknown: MODEL_NOT_FOUND), whether it takes ``reference_count`` reference images
    (named ``references_param``; they are added with ``with_references`` once gathered) or
    a prompt alone, the size (an explicit ``size`` wins over ``quality``, which picks one of
    the model's resolution tiers), then an extra the model does not take.

    A seed of -1 is "none" (the upstream picks one); with ``n`` above 1, image i is sent
    ``seed + i`` where the model takes a seed (generation/upstream.py)."""
    if not prompt.strip() and not layer_decomposition:  # a split may name what to separate
        raise invalid("'prompt' must not be empty.", param="prompt")
    limit = settings.PROMPT_MAX_CHARS
    if len(prompt) > limit:
        raise invalid(
            f"'prompt' is {len(prompt)} characters; the limit is {limit}.",
            param="prompt",
            code="string_above_max_length",
        )
    if not 1 <= n <= IMAGES_MAX:
        raise invalid(f"Invalid value for 'n': from 1 to {IMAGES_MAX}.", param="n")
    if seed is not None and not -1 <= seed <= SEED_MAX:
        raise invalid(f"Invalid value for 'seed': from -1 to {SEED_MAX}.", param="seed")
    _check_choice("quality", quality, QUALITIES)
    _check_choice("output_format", output_format, OUTPUT_FORMATS)
    _check_choice("background", background, BACKGROUNDS)
    if output_compression is not None and not (
        COMPRESSION_MIN <= output_compression <= COMPRESSION_MAX
    ):
        raise invalid(
            f"Invalid value for 'output_compression': from {COMPRESSION_MIN} to {COMPRESSION_MAX}.",
            param="output_compression",
        )
    info = available_model(model)
    if reference_count:
        check_count(info, reference_count, param=references_param)
    elif "text-to-image" not in info.modes:
        raise Refusal(
            Reason.UNSUPPORTED_PARAMETER,
            f"{info.id} only edits images: it cannot make one from a prompt alone. Models that "
            f"can: {', '.join(m.id for m in text_to_image_models())}.",
            param="model",
            code="unsupported_model_mode",
        )
    layers = None
    if layer_decomposition:
        layers = _layers(info, max_layers, n, reference_count, sequential_image_generation)
        if background is not None:
            raise Refusal(
                Reason.UNSUPPORTED_PARAMETER,
                "'background' is not supported in a layer split: the layers are PNGs with "
                "their own transparency.",
                param="background",
                code="unsupported_parameter",
            )
    elif max_layers is not None:
        raise invalid(
            "'max_layers' applies to a layer split only: send it with 'layer_decomposition': true.",
            param="max_layers",
        )
    if (size is None or size == "auto") and quality is not None and not layers:
        size = info.size_for_quality(quality)
    try:
        resolved = resolve_layer_size(info, size) if layers else resolve_size(info, size)
    except SizeError as exc:
        raise invalid(f"Invalid value for 'size': {exc}.", param="size") from None
    if guidance_scale is not None:
        if not info.supports_guidance_scale:
            raise Refusal(
                Reason.UNSUPPORTED_PARAMETER,
                f"'guidance_scale' is not supported by {info.id}.",
                param="guidance_scale",
                code="unsupported_parameter",
            )
        if not GUIDANCE_SCALE_MIN <= guidance_scale <= GUIDANCE_SCALE_MAX:
            raise invalid(
                f"Invalid value for 'guidance_scale': from {GUIDANCE_SCALE_MIN} to "
                f"{GUIDANCE_SCALE_MAX}.",
                param="guidance_scale",
            )
    if background == "transparent":
        output_format = _transparent_format(info, output_format)
    set_size = _set_size(info, sequential_image_generation, max_images, n, reference_count)
    return GenerationSpec(
        model=info,
        prompt=prompt,
        size=resolved,
        n=n,
        response_format=response_format or "url",
        seed=seed if seed != -1 else None,
        guidance_scale=float(guidance_scale) if guidance_scale else None,
        watermark=watermark,
        end_user=end_user,
        output_format=output_format,
        output_compression=output_compression,
        background=background,
        max_images=set_size,
        max_layers=layers,
    )


def _layers(
    info: ModelInfo, max_layers: int | None, n: int, references: int, sets: str | None
) -> int:
    """A layer split's most layers: the model's most, or fewer; a Refusal where the model
    splits no pictures, or the request is not one image to split."""
    if not info.max_layers:
        able = ", ".join(m.id for m in all_models() if m.max_layers) or "none today"
        raise Refusal(
            Reason.UNSUPPORTED_PARAMETER,
            f"'layer_decomposition' is not supported by {info.id}: it splits no pictures into "
            f"layers. Models that do: {able}.",
            param="layer_decomposition",
            code="unsupported_parameter",
        )
    if references != 1:
        raise invalid(
            f"A layer split takes exactly one image (the picture to split); {references} were "
            "sent.",
            param="image",
        )
    if n != 1 or sets == "auto":
        raise invalid(
            "A layer split is one picture's layers: leave out 'n' and sets.",
            param="n" if n != 1 else "sequential_image_generation",
        )
    most = info.max_layers if max_layers is None else max_layers
    if not 1 <= most <= info.max_layers:
        raise invalid(
            f"Invalid value for 'max_layers': from 1 to {info.max_layers} on {info.id}.",
            param="max_layers",
        )
    return most


def _set_size(
    info: ModelInfo, mode: str | None, max_images: int | None, n: int, references: int
) -> int | None:
    """A set's most images (sequential_image_generation "auto"), or None; a Refusal where the
    model makes no sets, ``n`` asks for a count too, or the set and references pass the cap."""
    _check_choice("sequential_image_generation", mode, ("auto", "disabled"))
    if mode != "auto":
        if max_images is not None:
            raise invalid(
                "'max_images' applies to a set only: send it with "
                "'sequential_image_generation': 'auto'.",
                param="sequential_image_generation_options.max_images",
            )
        return None
    if not info.sets:
        able = ", ".join(m.id for m in text_to_image_models() if m.sets) or "none today"
        raise Refusal(
            Reason.UNSUPPORTED_PARAMETER,
            f"'sequential_image_generation' is not supported by {info.id}: it makes no sets. "
            f"Models that do: {able}.",
            param="sequential_image_generation",
            code="unsupported_parameter",
        )
    if n != 1:
        raise invalid(
            "'n' cannot be combined with a set: the model decides how many images a set has, "
            "up to 'max_images'. Leave 'n' out (or 1).",
            param="n",
        )
    most = SET_TOTAL_MAX - references
    size = most if max_images is None else max_images
    if not 1 <= size <= most:
        with_refs = f" with {references} reference images" if references else ""
        raise invalid(
            f"Invalid value for 'max_images': from 1 to {most}{with_refs} (reference images "
            f"and the set's images are at most {SET_TOTAL_MAX} together).",
            param="sequential_image_generation_options.max_images",
        )
    return size


def _check_choice(param: str, value: str | None, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise invalid(
            f"Invalid value for '{param}': '{value}'; use one of {', '.join(choices)}.",
            param=param,
        )


def _transparent_format(info: ModelInfo, output_format: str | None) -> str:
    """The format a transparent image is delivered in (PNG unless WebP is asked for), or a
    Refusal: the model cannot make an alpha channel, or JPEG cannot hold one."""
    if not info.supports_transparency:
        able = ", ".join(m.id for m in transparency_models()) or "none today"
        raise Refusal(
            Reason.UNSUPPORTED_PARAMETER,
            f"'background': 'transparent' is not supported by {info.id}: it cannot make an "
            f"alpha channel. Models that can: {able}.",
            param="background",
            code="unsupported_parameter",
        )
    if output_format == "jpeg":
        raise invalid(
            "'background': 'transparent' needs an 'output_format' with an alpha channel: "
            "'png' (the default) or 'webp', not 'jpeg'.",
            param="background",
        )
    return output_format or "png"
