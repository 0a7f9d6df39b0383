"""A request for images, checked against the domain's rules: whoever sends it (the /v1 API, the
playground), the same values are accepted and refused with the same words."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from .catalog import (
    RETIRED,
    ModelInfo,
    Size,
    SizeError,
    get_model,
    resolve_size,
    text_to_image_models,
)
from .refusals import Reason, Refusal, invalid

# Bounds every way in shares (the API's schema declares the same ones for its typed errors).
IMAGES_MAX = 10
SEED_MAX = 2_147_483_647
GUIDANCE_SCALE_MIN, GUIDANCE_SCALE_MAX = 1, 10


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

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"watermark": self.watermark}
        if self.seed is not None:
            params["seed"] = self.seed
        if self.guidance_scale is not None:
            params["guidance_scale"] = self.guidance_scale
        if self.end_user:
            params["user"] = self.end_user
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
) -> GenerationSpec:
    """The spec for these values, or a Refusal naming the first one at fault: the prompt, then
    the model (unknown: MODEL_NOT_FOUND), the size, then an extra the model does not take."""
    if not prompt.strip():
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
    info = available_model(model)
    if "text-to-image" not in info.modes:
        raise Refusal(
            Reason.UNSUPPORTED_PARAMETER,
            f"{info.id} only edits images: it cannot make one from a prompt alone. Models that "
            f"can: {', '.join(m.id for m in text_to_image_models())}.",
            param="model",
            code="unsupported_model_mode",
        )
    try:
        resolved = resolve_size(info, size)
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
    return GenerationSpec(
        model=info,
        prompt=prompt,
        size=resolved,
        n=n,
        response_format=response_format or "url",
        seed=seed,
        guidance_scale=float(guidance_scale) if guidance_scale else None,
        watermark=watermark,
        end_user=end_user,
    )
