"""What the real Seedream upstream accepts and answers: models, sizes and error bodies.

BytePlus ModelArk / Volcengine Ark image generation, as far as the simulator reproduces it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

API_PREFIX: Final = "/api/v3"
URL_TTL_SECONDS: Final = 86_400  # real upstream links carry X-Tos-Expires=86400

STATUS_TYPES: Final[Mapping[int, str]] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    429: "TooManyRequests",
    500: "InternalServerError",
}


# --- Models and their size rules ----------------------------------------------------------------


@dataclass(frozen=True)
class ModelRules:
    """What one upstream model accepts as ``size`` and how many images it may return."""

    default_size: tuple[int, int]
    keywords: Mapping[str, tuple[int, int]]
    min_pixels: int
    max_pixels: int
    max_aspect_ratio: float
    batch: bool  # supports sequential_image_generation=auto


_RULES_4_0 = ModelRules(
    default_size=(2048, 2048),
    keywords={"1K": (1024, 1024), "2K": (2048, 2048), "4K": (4096, 4096)},
    min_pixels=1280 * 720,
    max_pixels=4096 * 4096,
    max_aspect_ratio=16.0,
    batch=True,
)
_RULES_4_5 = ModelRules(
    default_size=(2048, 2048),
    keywords={"2K": (2048, 2048), "4K": (4096, 4096)},
    min_pixels=2560 * 1440,
    max_pixels=4096 * 4096,
    max_aspect_ratio=16.0,
    batch=True,
)
_RULES_3_0 = ModelRules(
    default_size=(1024, 1024),
    keywords={},
    min_pixels=512 * 512,
    max_pixels=2048 * 2048,
    max_aspect_ratio=16.0,
    batch=False,
)

# Keyed by BytePlus id; Volcengine ids are the same with a "doubao-" prefix.
MODELS: Final[Mapping[str, ModelRules]] = {
    "seedream-4-0-250828": _RULES_4_0,
    "seedream-4-5-251128": _RULES_4_5,
    "seedream-3-0-t2i-250415": _RULES_3_0,
}


def model_rules(model: str) -> ModelRules | None:
    """The rules for a BytePlus (``seedream-...``) or Volcengine (``doubao-seedream-...``) id."""
    return MODELS.get(model.removeprefix("doubao-"))


# --- Upstream-shaped errors ---------------------------------------------------------------------


class UpstreamError(Exception):
    """An error the simulator answers with the upstream's error body.

    ``message`` is the text before " Request id: <id>", which is appended when rendering.
    """

    def __init__(self, status: int, code: str, message: str, *, param: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param

    def body(self, request_id: str) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": f"{self.message} Request id: {request_id}",
                "param": self.param,
                "type": STATUS_TYPES[self.status],
            }
        }


def invalid(param: str, detail: str) -> UpstreamError:
    return UpstreamError(
        400,
        "InvalidParameter",
        f"The parameter `{param}` specified in the request is not valid: {detail}.",
        param=param,
    )


def missing(param: str) -> UpstreamError:
    return UpstreamError(
        400,
        "MissingParameter",
        "The request failed because it is missing one or multiple required parameters.",
        param=param,
    )


def internal_error() -> UpstreamError:
    return UpstreamError(
        500,
        "InternalServiceError",
        "The service encountered an unexpected internal error.",
    )


OUTPUT_BLOCKED_MESSAGE: Final = (
    "The request failed because the output image may contain sensitive information."
)


# --- Request values -----------------------------------------------------------------------------

_SIZE_RE: Final = re.compile(r"([1-9][0-9]{0,5})[xX]([1-9][0-9]{0,5})")


def parse_size(value: object, rules: ModelRules) -> tuple[int, int]:
    """The (width, height) a ``size`` value asks for, or an ``InvalidParameter`` on ``size``."""
    if value is None:
        return rules.default_size
    if not isinstance(value, str):
        raise invalid("size", "size must be a string")
    keyword = rules.keywords.get(value.strip().upper())
    if keyword is not None:
        return keyword
    match = _SIZE_RE.fullmatch(value.strip())
    if match is None:
        allowed = ", ".join([*rules.keywords, "WxH"])
        raise invalid("size", f"size {value!r} is not one of {allowed}")
    width, height = int(match.group(1)), int(match.group(2))
    pixels = width * height
    # The limit is on the product W*H, not on each side: 1600x600 is valid on 4.0, 800x800 is not.
    if not rules.min_pixels <= pixels <= rules.max_pixels:
        raise invalid(
            "size",
            f"total pixels of {value} must be within [{rules.min_pixels}, {rules.max_pixels}]",
        )
    ratio = width / height
    if not 1 / rules.max_aspect_ratio <= ratio <= rules.max_aspect_ratio:
        limit = f"{rules.max_aspect_ratio:g}"
        raise invalid("size", f"aspect ratio of {value} must be within [1/{limit}, {limit}]")
    return width, height


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
