"""What the real Seedream upstream accepts and answers: models, sizes and error bodies.

BytePlus ModelArk / Volcengine Ark image generation, as far as the simulator reproduces it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import io
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

import pillow_heif
from PIL import Image

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


# --- Models and their rules ---------------------------------------------------------------------
#
# Written from ../shared/reference/seedream-2026.md (sections 2 and 3), not read from the product's
# catalog: the simulator stands in for the real upstream, so a mistake in our catalog must show up
# as an upstream refusal in the tests, not be mirrored here.

K1: Final = (1024, 1024)
K15: Final = (1536, 1536)
K2: Final = (2048, 2048)
K3: Final = (3072, 3072)
K4: Final = (4096, 4096)
KEYWORD_SIZES: Final[Mapping[str, tuple[int, int]]] = {
    "1K": K1,
    "1.5K": K15,
    "2K": K2,
    "3K": K3,
    "4K": K4,
}
FORMATS_4X: Final = frozenset({"jpeg", "jpg", "png", "webp", "bmp", "tiff", "gif"})
MB: Final = 1024 * 1024


@dataclass(frozen=True)
class ModelRules:
    """What one upstream model accepts and answers.

    ``keywords`` are the ``size`` keywords (each delivering a square of its nominal pixels unless a
    ``[sim:deliver-size]`` marker picks another size); ``min_pixels``/``max_pixels`` bound W*H.
    """

    name: str  # drawn on its pictures
    default_size: str
    keywords: tuple[str, ...]
    min_pixels: int
    max_pixels: int
    max_aspect_ratio: float = 16.0
    pixel_sizes: bool = True  # accepts WxH
    adaptive: bool = False  # SeedEdit: size "adaptive", picked from the input image's ratio
    min_images: int = 0  # reference images in ``image``
    max_images: int = 0
    image_formats: frozenset[str] = FORMATS_4X
    max_image_bytes: int = 10 * MB
    max_input_aspect: float = 16.0
    # sequential_image_generation(_options) and stream: "yes" (4.x, Lite), "ignored" (3.0,
    # SeedEdit: "disabled"/false pass, "auto" gives one image) or "rejected" (Pro, Flash, 5.5:
    # 400 whatever the value).
    sets: str = "yes"
    seed: bool = True  # accepted (ignored on 4.x and Lite)
    guidance_scale: bool = False
    output_formats: tuple[str, ...] = ()  # () = the field is refused; the output is JPEG
    backgrounds: tuple[str, ...] = ()
    max_layers: int = 0  # layer_decomposition; 0 = refused
    reports_input_images: bool = False  # usage.input_images
    reports_output_format: bool = False  # data[].output_format

    @property
    def layer_keywords(self) -> tuple[str, ...]:
        return ("1K", "1.5K", "2K", "auto")


_V30 = ModelRules(
    name="Seedream 3.0",
    default_size="1024x1024",
    keywords=(),
    min_pixels=512 * 512,
    max_pixels=2048 * 2048,
    sets="ignored",
    guidance_scale=True,
)
_SEEDEDIT = ModelRules(
    name="SeedEdit 3.0",
    default_size="adaptive",
    keywords=(),
    min_pixels=512 * 512,
    max_pixels=1536 * 1536,
    pixel_sizes=False,
    adaptive=True,
    min_images=1,
    max_images=1,
    image_formats=frozenset({"jpeg", "jpg", "png"}),
    max_input_aspect=3.0,
    sets="ignored",
    guidance_scale=True,
)
_V40 = ModelRules(
    name="Seedream 4.0",
    default_size="2048x2048",
    keywords=("1K", "2K", "4K"),
    # The Router schema's floor (older copies say 921,600: seedream-2026.md section 9, item 2).
    min_pixels=1024 * 1024,
    max_pixels=4096 * 4096,
    max_images=14,
)
_V45 = replace(_V40, name="Seedream 4.5", keywords=("2K", "4K"), min_pixels=2560 * 1440)
_LITE = replace(
    _V40,
    name="Seedream 5.0 Lite",
    keywords=("2K", "3K"),
    min_pixels=2560 * 1440,
    max_pixels=10_404_496,  # 3072 squared, each side x1.05
    output_formats=("png", "jpeg"),
    reports_output_format=True,
)
_PRO = ModelRules(
    name="Seedream 5.0 Pro",
    default_size="1024x1024",
    keywords=("1K", "2K"),
    min_pixels=1024 * 1024,
    max_pixels=2048 * 2048,
    max_images=10,
    image_formats=FORMATS_4X | {"heic", "heif"},
    max_image_bytes=30 * MB,
    sets="rejected",
    output_formats=("png", "jpeg"),
    max_layers=16,
    reports_input_images=True,
    reports_output_format=True,
)
_FLASH = replace(
    _PRO,
    name="Seedream 5.0 Flash",
    default_size="2K",
    keywords=("1K", "1.5K", "2K"),
    min_pixels=1280 * 720,
    max_pixels=4_624_220,  # 2048 squared, each side x1.05
    image_formats=FORMATS_4X,
    max_image_bytes=10 * MB,
    reports_input_images=False,
)
_V55 = replace(
    _FLASH,
    name="Seedream 5.5",
    seed=False,  # "unknown" in the reference: refused, so a gateway must not rely on it
    backgrounds=("auto", "transparent", "opaque"),
    max_layers=99,
    reports_input_images=True,
)

# Every upstream id a model answers to on BytePlus; Volcengine's are the same with "doubao-" (the
# "dola-" spellings are BytePlus only). A bare or undated id is not a model: 404.
_BYTEPLUS_IDS: Final[Mapping[str, ModelRules]] = {
    "seedream-3-0-t2i-250415": _V30,
    "seededit-3-0-i2i-250628": _SEEDEDIT,
    "seedream-4-0-250828": _V40,
    "seedream-4-5-251128": _V45,
    "seedream-5-0-260128": _LITE,
    "seedream-5-0-lite-260128": _LITE,
    "seedream-5-0-pro-260628": _PRO,
    "dola-seedream-5-0-pro-260628": _PRO,
    "seedream-5-0-flash-260915": _FLASH,
    "seedream-5-5-261028": _V55,
    "dola-seedream-5-5-261028": _V55,
}
MODELS: Final[Mapping[str, ModelRules]] = {
    **_BYTEPLUS_IDS,
    **{
        f"doubao-{model_id}": rules
        for model_id, rules in _BYTEPLUS_IDS.items()
        if not model_id.startswith("dola-")
    },
}


def model_rules(model: str) -> ModelRules | None:
    """The rules for an upstream model id (BytePlus, ``dola-`` or Volcengine ``doubao-``)."""
    return MODELS.get(model)


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


def unsupported(param: str, rules: ModelRules, detail: str = "") -> UpstreamError:
    return invalid(param, detail or f"{param} is not supported by {rules.name}")


OUTPUT_BLOCKED_MESSAGE: Final = (
    "The request failed because the output image may contain sensitive information."
)
# Moderation code families by stage; a code may carry a dotted reason (".DeepFake").
INPUT_GENERIC: Final = "SensitiveContentDetected"
INPUT_TEXT: Final = "InputTextSensitiveContentDetected"
INPUT_IMAGE: Final = "InputImageSensitiveContentDetected"
OUTPUT_IMAGE: Final = "OutputImageSensitiveContentDetected"
MODERATION_MESSAGES: Final[Mapping[str, str]] = {
    INPUT_GENERIC: "The request failed because the input may contain sensitive information.",
    INPUT_TEXT: "The request failed because the input text may contain sensitive information.",
    INPUT_IMAGE: "The request failed because the input image may contain sensitive information.",
    OUTPUT_IMAGE: OUTPUT_BLOCKED_MESSAGE,
}


def moderation_code(family: str, reason: str = "") -> str:
    return f"{family}.{reason}" if reason else family


def moderation_error(family: str, reason: str = "") -> UpstreamError:
    return UpstreamError(400, moderation_code(family, reason), MODERATION_MESSAGES[family])


# --- Request values -----------------------------------------------------------------------------

_SIZE_RE: Final = re.compile(r"([1-9][0-9]{0,5})[xX]([1-9][0-9]{0,5})")


def parse_wxh(value: str) -> tuple[int, int] | None:
    match = _SIZE_RE.fullmatch(value.strip())
    return None if match is None else (int(match.group(1)), int(match.group(2)))


def check_window(width: int, height: int, rules: ModelRules, *, param: str = "size") -> None:
    """An ``InvalidParameter`` on ``param`` unless WxH is within the model's window and aspect."""
    pixels = width * height
    # The limit is on the product W*H, not on each side: 1600x1200 is valid on 4.0, 800x800 is not.
    if not rules.min_pixels <= pixels <= rules.max_pixels:
        raise invalid(
            param,
            f"total pixels of {width}x{height} must be within "
            f"[{rules.min_pixels}, {rules.max_pixels}]",
        )
    ratio = width / height
    if not 1 / rules.max_aspect_ratio <= ratio <= rules.max_aspect_ratio:
        limit = f"{rules.max_aspect_ratio:g}"
        raise invalid(
            param, f"aspect ratio of {width}x{height} must be within [1/{limit}, {limit}]"
        )


def _keyword(value: str, keywords: tuple[str, ...]) -> str | None:
    wanted = value.strip().upper()
    return next((keyword for keyword in keywords if keyword.upper() == wanted), None)


def parse_size(value: object, rules: ModelRules) -> tuple[int, int]:
    """The (width, height) a ``size`` value asks for, or an ``InvalidParameter`` on ``size``.

    Keywords are case-insensitive and deliver a square of their nominal pixels.
    """
    if value is None:
        value = rules.default_size
    if not isinstance(value, str):
        raise invalid("size", "size must be a string")
    keyword = _keyword(value, rules.keywords)
    if keyword is not None:
        return KEYWORD_SIZES[keyword]
    size = parse_wxh(value) if rules.pixel_sizes else None
    if size is None:
        allowed = ", ".join([*rules.keywords, *(["WxH"] if rules.pixel_sizes else [])])
        raise invalid("size", f"size {value!r} is not one of {allowed}")
    check_window(*size, rules)
    return size


def parse_adaptive_size(value: object) -> None:
    """SeedEdit: ``size`` is ``adaptive`` or absent; the output size follows the input's ratio."""
    if value is not None and (not isinstance(value, str) or value.strip().lower() != "adaptive"):
        raise invalid("size", f"size {value!r} is not one of adaptive")


def parse_layer_size(value: object, rules: ModelRules) -> str:
    """Layer mode: a keyword (``1K``, ``1.5K``, ``2K`` or ``auto``, the default); WxH refused."""
    if value is None:
        return "auto"
    keyword = _keyword(value, rules.layer_keywords) if isinstance(value, str) else None
    if keyword is None:
        allowed = ", ".join(rules.layer_keywords)
        raise invalid("size", f"size {value!r} is not one of {allowed} in layer decomposition")
    return keyword


# SeedEdit's preset output sizes; it picks the one whose ratio is closest to the input's.
SEEDEDIT_SIZES: Final = (
    (512, 1536),
    (648, 1512),
    (720, 1280),
    (832, 1248),
    (864, 1152),
    (1024, 1024),
    (1152, 864),
    (1248, 832),
    (1280, 720),
    (1512, 648),
    (1536, 512),
)


def seededit_size(input_size: tuple[int, int] | None) -> tuple[int, int]:
    if input_size is None:
        return (1024, 1024)
    ratio = math.log(input_size[0] / input_size[1])
    return min(SEEDEDIT_SIZES, key=lambda size: abs(math.log(size[0] / size[1]) - ratio))


def scaled(size: tuple[int, int], pixels: int) -> tuple[int, int]:
    """``size``'s aspect ratio at about ``pixels`` pixels, each side a multiple of 16."""
    factor = math.sqrt(pixels / (size[0] * size[1]))
    return (
        max(16, round(size[0] * factor / 16) * 16),
        max(16, round(size[1] * factor / 16) * 16),
    )


def layer_base_size(keyword: str, input_size: tuple[int, int] | None) -> tuple[int, int]:
    """The base image's size in layer mode: the input's ratio at the keyword's tier.

    ``auto`` keeps inputs from 1280x720 to about 2048 squared as they are, makes smaller ones 1K
    and larger ones 2K. A URL input (not fetched) counts as a 1024x1024 square.
    """
    source = input_size or (1024, 1024)
    if keyword == "auto":
        pixels = source[0] * source[1]
        if 1280 * 720 <= pixels <= 4_624_220:
            return source
        keyword = "1K" if pixels < 1280 * 720 else "2K"
    nominal = KEYWORD_SIZES[keyword]
    return scaled(source, nominal[0] * nominal[1])


# --- Reference images -----------------------------------------------------------------------------

_DATA_URI_RE: Final = re.compile(r"data:image/([^;,]+);base64,(.*)", re.DOTALL)
MAX_INPUT_PIXELS: Final = 36_000_000
MIN_INPUT_SIDE: Final = 15  # each side more than 14 px
MIN_LAYER_INPUT_PIXELS: Final = 512 * 512


@dataclass(frozen=True)
class InputImage:
    """One reference image; ``size`` is known for a data URI, not for a URL (never fetched).

    ``data`` is a data URI's decoded bytes (``None`` for a URL): the picture's band is drawn from
    them.
    """

    size: tuple[int, int] | None
    data: bytes | None = field(default=None, repr=False)


def reference_id(item: object) -> str | None:
    """How ``/_sim/calls`` reports one item of ``image``, read before any check.

    The sha256 hex of a data URI's decoded bytes, a URL as given, or ``None`` for anything else
    (such a call is refused).
    """
    if not isinstance(item, str):
        return None
    if item.startswith(("http://", "https://")):
        return item
    match = _DATA_URI_RE.fullmatch(item)
    if match is None:
        return None
    try:
        data = base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        return None
    return hashlib.sha256(data).hexdigest()


def reference_ids(value: object) -> tuple[str | None, ...]:
    """``reference_id`` of each item of the ``image`` field (a string or a list), in order."""
    if value is None:
        return ()
    return tuple(reference_id(item) for item in (value if isinstance(value, list) else [value]))


def _image_error(code: str, detail: str) -> UpstreamError:
    return UpstreamError(
        400,
        code,
        f"The parameter `image` specified in the request is not valid: {detail}.",
        param="image",
    )


def parse_images(value: object, rules: ModelRules, *, layers: bool) -> list[InputImage]:
    """The ``image`` field (a string or a list of them) checked against the model's limits."""
    if value is None:
        values: list[object] = []
    elif isinstance(value, list):
        values = list(value)
        if not values:
            raise invalid("image", "image must not be an empty list")
    else:
        values = [value]
    low, high = (1, 1) if layers else (rules.min_images, rules.max_images)
    if not low <= len(values) <= high:
        wanted = f"exactly {low}" if low == high else f"{low} to {high}"
        mode = " in layer decomposition" if layers else ""
        raise _image_error(
            "InvalidParameter.UnsupportedImageCount",
            f"{len(values)} images given, this model takes {wanted}{mode}",
        )
    return [_parse_image(item, rules, layers=layers) for item in values]


@functools.cache
def read_heic() -> None:
    """Let Pillow open HEIC/HEIF (5.0 Pro's references), once per process."""
    pillow_heif.register_heif_opener()


def _parse_image(value: object, rules: ModelRules, *, layers: bool) -> InputImage:
    if not isinstance(value, str) or not value:
        raise invalid("image", "each image must be a URL or a data URI")
    if value.startswith(("http://", "https://")):
        return InputImage(size=None)
    match = _DATA_URI_RE.fullmatch(value)
    if match is None:
        raise invalid("image", "each image must be a URL or data:image/<format>;base64,<data>")
    image_format, payload = match.group(1), match.group(2)
    # The format must be written in lowercase (data:image/png, not data:image/PNG). Layer mode
    # takes the 4.x formats only (no HEIC, even on 5.0 Pro).
    formats = rules.image_formats & FORMATS_4X if layers else rules.image_formats
    if image_format not in formats:
        allowed = ", ".join(sorted(formats))
        raise _image_error(
            "InvalidParameter.UnsupportedImageFormat",
            f"format {image_format!r} is not one of {allowed} (lowercase)",
        )
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise invalid("image", "the data URI is not valid base64") from None
    if len(data) > rules.max_image_bytes:
        raise _image_error(
            "InvalidParameter.OversizedImage",
            f"an image is {len(data)} bytes, over {rules.max_image_bytes // MB} MB",
        )
    read_heic()  # before any reference is opened: the mean colour of a HEIC is read later too
    try:
        with Image.open(io.BytesIO(data)) as picture:
            width, height = picture.size
    except (OSError, ValueError, Image.DecompressionBombError):
        raise invalid("image", "an image cannot be decoded") from None
    pixels = width * height
    floor = MIN_LAYER_INPUT_PIXELS if layers else 0
    aspect = rules.max_input_aspect
    if min(width, height) < MIN_INPUT_SIDE or not floor <= pixels <= MAX_INPUT_PIXELS:
        raise _image_error(
            "InvalidParameter.OversizedImage",
            f"an image of {width}x{height} is outside {floor or MIN_INPUT_SIDE} to "
            f"{MAX_INPUT_PIXELS} pixels",
        )
    if not 1 / aspect <= width / height <= aspect:
        raise invalid(
            "image", f"the aspect ratio of an image must be within [1/{aspect:g}, {aspect:g}]"
        )
    return InputImage(size=(width, height), data=data)


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
