"""A simulator of the Seedream upstream: BytePlus ModelArk / Volcengine Ark image generation.

It answers ``POST /api/v3/images/generations`` with the real upstream's request validation,
response and error bodies, so the product's real HTTP client can run against it in the local demo,
the integration tests and the benchmarks. Images are real baseline JPEGs of the requested size,
served from signed, expiring links shaped like the TOS links the real upstream returns.

Tests inject faults with markers inside the prompt (so parallel tests never interfere):
``[sim:NAME]`` or ``[sim:NAME=VALUE]``, several allowed; see ``FLAG_MARKERS`` and
``VALUE_MARKERS``. An unknown or malformed marker is a 400 ``InvalidParameter`` on ``prompt``, so a
typo in a test fails loudly instead of silently succeeding.

This module must not import Django: ``run_simulator`` starts it in its own cheap process.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import hmac
import io
import json
import math
import re
import secrets
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web
from PIL import Image, ImageDraw, ImageFont

API_PREFIX: Final = "/api/v3"
URL_TTL_SECONDS: Final = 86_400  # real upstream links carry X-Tos-Expires=86400
TOS_DATE_FORMAT: Final = "%Y%m%dT%H%M%SZ"
OFFSITE_URL: Final = "http://203.0.113.9/evil.jpeg"  # TEST-NET-3: never routable, never fetched
HUGE_IMAGE_BYTES: Final = 40 * 1024 * 1024
JPEG_QUALITY: Final = 85
JPEG_CACHE_ENTRIES: Final = 64
CALL_COUNTER_ENTRIES: Final = 100_000
MAX_MARKER_LATENCY: Final = 600.0
PROMPT_HEAD_CHARS: Final = 60

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


def _invalid(param: str, detail: str) -> UpstreamError:
    return UpstreamError(
        400,
        "InvalidParameter",
        f"The parameter `{param}` specified in the request is not valid: {detail}.",
        param=param,
    )


def _missing(param: str) -> UpstreamError:
    return UpstreamError(
        400,
        "MissingParameter",
        "The request failed because it is missing one or multiple required parameters.",
        param=param,
    )


def _internal_error() -> UpstreamError:
    return UpstreamError(
        500,
        "InternalServiceError",
        "The service encountered an unexpected internal error.",
    )


OUTPUT_BLOCKED_MESSAGE: Final = (
    "The request failed because the output image may contain sensitive information."
)


# --- Fault markers ------------------------------------------------------------------------------

FLAG_MARKERS: Final = frozenset(
    {
        "block-prompt",  # 400 InputTextSensitiveContentDetected
        "block-output",  # 400 OutputImageSensitiveContentDetected
        "error-500",  # 500 InternalServiceError
        "error-429",  # 429 ModelAccountIpmRateLimitExceeded
        "quota",  # 403 AccountOverdueError
        "batch-error",  # 200 whose last data entry is an in-batch error
        "bad-image",  # the link serves bytes that are not an image
        "offsite-url",  # the link points at a host the product must refuse
        "huge-image",  # the link serves a 40 MiB body
        "photo",  # fine detail everywhere: a JPEG as large as a real photograph's (MBs at 4K)
    }
)
VALUE_MARKERS: Final = frozenset(
    {
        "latency",  # float seconds slept before answering
        "deliver",  # calls K+1 and later for this exact prompt get 500
        "fail-first",  # the first K calls for this exact prompt get 500
        "expires",  # X-Tos-Expires of the links (0 gives an already expired link)
    }
)
_MARKER_RE: Final = re.compile(r"\[sim:([^\]=]*)(?:=([^\]]*))?\]")


@dataclass(frozen=True)
class Faults:
    """The faults a prompt asks for through its ``[sim:...]`` markers."""

    flags: frozenset[str] = frozenset()
    latency: float = 0.0
    deliver: int | None = None
    fail_first: int = 0
    expires: int = URL_TTL_SECONDS


def _marker_error(detail: str) -> UpstreamError:
    return _invalid("prompt", f"simulator marker {detail}")


def _non_negative_int(name: str, value: str) -> int:
    if not value.isdigit():
        raise _marker_error(f"[sim:{name}] needs a whole number, not {value!r}")
    return int(value)


def parse_markers(prompt: str) -> Faults:
    """Read the ``[sim:NAME]`` / ``[sim:NAME=VALUE]`` markers of a prompt."""
    flags: set[str] = set()
    values: dict[str, str] = {}
    for match in _MARKER_RE.finditer(prompt):
        name, value = match.group(1), match.group(2)
        if name in FLAG_MARKERS and value is None:
            flags.add(name)
        elif name in VALUE_MARKERS and value:
            values[name] = value
        elif name in FLAG_MARKERS or name in VALUE_MARKERS:
            raise _marker_error(f"{match.group(0)} is malformed")
        else:
            raise _marker_error(f"{match.group(0)} is unknown")
    latency = 0.0
    if "latency" in values:
        try:
            latency = float(values["latency"])
        except ValueError:
            raise _marker_error("[sim:latency] needs a number of seconds") from None
        if not 0.0 <= latency <= MAX_MARKER_LATENCY:
            raise _marker_error(f"[sim:latency] must be within 0 to {MAX_MARKER_LATENCY:g}")
    deliver = values.get("deliver")
    return Faults(
        flags=frozenset(flags),
        latency=latency,
        deliver=None if deliver is None else _non_negative_int("deliver", deliver),
        fail_first=_non_negative_int("fail-first", values.get("fail-first", "0")),
        expires=_non_negative_int("expires", values.get("expires", str(URL_TTL_SECONDS))),
    )


# --- Request validation -------------------------------------------------------------------------

_SIZE_RE: Final = re.compile(r"([1-9][0-9]{0,5})[xX]([1-9][0-9]{0,5})")


def parse_size(value: object, rules: ModelRules) -> tuple[int, int]:
    """The (width, height) a ``size`` value asks for, or an ``InvalidParameter`` on ``size``."""
    if value is None:
        return rules.default_size
    if not isinstance(value, str):
        raise _invalid("size", "size must be a string")
    keyword = rules.keywords.get(value.strip().upper())
    if keyword is not None:
        return keyword
    match = _SIZE_RE.fullmatch(value.strip())
    if match is None:
        allowed = ", ".join([*rules.keywords, "WxH"])
        raise _invalid("size", f"size {value!r} is not one of {allowed}")
    width, height = int(match.group(1)), int(match.group(2))
    pixels = width * height
    # The limit is on the product W*H, not on each side: 1600x600 is valid on 4.0, 800x800 is not.
    if not rules.min_pixels <= pixels <= rules.max_pixels:
        raise _invalid(
            "size",
            f"total pixels of {value} must be within [{rules.min_pixels}, {rules.max_pixels}]",
        )
    ratio = width / height
    if not 1 / rules.max_aspect_ratio <= ratio <= rules.max_aspect_ratio:
        limit = f"{rules.max_aspect_ratio:g}"
        raise _invalid("size", f"aspect ratio of {value} must be within [1/{limit}, {limit}]")
    return width, height


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class GenerationCall:
    """A validated ``images/generations`` request."""

    model: str
    prompt: str
    number: int  # this call's position among the calls received with this exact prompt
    faults: Faults
    width: int
    height: int
    seed: int
    response_format: str
    watermark: bool
    images: int


# --- Images -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSpec:
    """Everything a picture is made from; the signed link token carries exactly this.

    The prompt itself is not carried (links would grow with it), only a digest for the colours
    and the start of the prompt that is drawn on the picture.
    """

    digest: str
    head: str
    seed: int
    width: int
    height: int
    watermark: bool
    index: int
    kind: str  # "jpeg", "photo" (a detailed jpeg), "bad" (not an image) or "huge" (40 MiB body)

    @classmethod
    def for_prompt(
        cls,
        prompt: str,
        *,
        seed: int,
        size: tuple[int, int],
        watermark: bool,
        index: int,
        kind: str,
    ) -> ImageSpec:
        words = " ".join(_MARKER_RE.sub(" ", prompt).split())
        head = words if len(words) <= PROMPT_HEAD_CHARS else words[:PROMPT_HEAD_CHARS] + "..."
        digest = hashlib.sha256(prompt.encode()).hexdigest()[:32]
        return cls(digest, head, seed, size[0], size[1], watermark, index, kind)

    def token(self) -> str:
        payload = {
            "d": self.digest,
            "t": self.head,
            "s": self.seed,
            "w": self.width,
            "h": self.height,
            "m": int(self.watermark),
            "i": self.index,
            "k": self.kind,
        }
        raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def from_token(cls, token: str) -> ImageSpec:
        """Decode a token; raises ``ValueError`` if it is malformed."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = json.loads(raw)
            return cls(
                str(data["d"]),
                str(data["t"]),
                int(data["s"]),
                int(data["w"]),
                int(data["h"]),
                bool(data["m"]),
                int(data["i"]),
                str(data["k"]),
            )
        except (binascii.Error, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise ValueError("malformed image token") from exc

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


# Served for [sim:bad-image]: starts like nothing an image decoder knows.
BAD_IMAGE_BYTES: Final = b"SIMULATED: this body is not an image.\n" * 32
# [sim:huge-image] starts like a JPEG, so only its size (not its first bytes) makes it unacceptable.
HUGE_IMAGE_PREFIX: Final = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


# Per thread: renders run in a thread pool, and a FreeType face is not safe to share between
# threads drawing at the same time.
_fonts = threading.local()


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    cache: dict[int, ImageFont.FreeTypeFont | ImageFont.ImageFont] | None = getattr(
        _fonts, "by_size", None
    )
    if cache is None:
        cache = _fonts.by_size = {}
    font = cache.get(size)
    if font is None:
        font = cache[size] = ImageFont.load_default(size=size)
    return font


def _fit_text(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: float) -> str:
    """``text`` cut (with "...") so it is at most ``width`` pixels long in ``font``."""
    if not text or font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        # Cut proportionally first, then one character at a time near the fit.
        keep = int(len(text) * width / font.getlength(text + "..."))
        text = text[: min(keep, len(text) - 1)]
    return text + "..." if text else ""


def render_jpeg(spec: ImageSpec) -> bytes:
    """A baseline JPEG of exactly ``spec``'s size, the same bytes for the same spec.

    CPU-bound (about 100 ms at 4096x4096): run it in a thread, not on the event loop.
    """
    width, height = spec.width, spec.height
    colours = hashlib.sha256(f"{spec.digest}:{spec.seed}:{spec.index}".encode()).digest()
    start, end = colours[0:3], colours[3:6]
    palette = [
        start[channel] + (end[channel] - start[channel]) * step // 255
        for step in range(256)
        for channel in range(3)
    ]
    # The gradient is drawn at a quarter of the size and scaled up with NEAREST: resizing a small
    # gradient straight to 16 megapixels with interpolation costs several times more.
    small = (max(1, width // 4), max(1, height // 4))
    gradient = Image.linear_gradient("L")
    if colours[6] & 1:
        gradient = gradient.transpose(Image.Transpose.ROTATE_90)
    gradient = gradient.resize(small, Image.Resampling.BILINEAR)
    gradient.putpalette(palette)
    image = gradient.convert("RGB").resize((width, height), Image.Resampling.NEAREST)
    if spec.kind == "photo":
        # Detail at every scale, as in a photograph, so the JPEG is as large as a real one
        # (about 4 MB at 4096x4096 rather than 0.5 MB): for measuring large responses.
        noise = Image.effect_noise((max(1, width // 2), max(1, height // 2)), 40)
        noise = noise.resize((width, height), Image.Resampling.BILINEAR).convert("RGB")
        image = Image.blend(image, noise, 0.3)

    draw = ImageDraw.Draw(image)
    short_side = min(width, height)
    reference = _font(100)
    title_size = int(100 * 0.8 * width / reference.getlength("SIMULATED"))
    title_size = max(8, min(title_size, height // 4))
    title = _font(title_size)
    stroke = max(1, title_size // 30)
    left, top = width // 10, height // 2 - title_size
    draw.text(
        (left, top), "SIMULATED", font=title, fill="white", stroke_width=stroke, stroke_fill="black"
    )
    caption = _font(max(8, title_size // 4))
    text = _fit_text(spec.head, caption, width * 0.8)
    draw.text(
        (left, top + title_size * 1.3),
        text,
        font=caption,
        fill="white",
        stroke_width=max(1, stroke // 2),
        stroke_fill="black",
    )
    if spec.watermark:
        mark = _font(max(8, short_side // 24))
        margin = max(4, short_side // 64)
        draw.text(
            (width - margin, height - margin),
            "AI generated",
            font=mark,
            anchor="rd",  # right, descender: the text ends at the corner
            fill=(255, 255, 255),
            stroke_width=1,
            stroke_fill=(64, 64, 64),
        )

    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY, progressive=False)
    return buffer.getvalue()


class JpegCache:
    """A bounded LRU of encoded JPEGs that also merges concurrent renders of the same picture.

    Only touched from the event loop thread, so it needs no lock; rendering runs in the loop's
    default thread pool.
    """

    def __init__(self, capacity: int = JPEG_CACHE_ENTRIES) -> None:
        self._capacity = capacity
        self._items: OrderedDict[ImageSpec, bytes] = OrderedDict()
        self._pending: dict[ImageSpec, asyncio.Future[bytes]] = {}

    async def get(self, spec: ImageSpec) -> bytes:
        cached = self._items.get(spec)
        if cached is not None:
            self._items.move_to_end(spec)
            return cached
        pending = self._pending.get(spec)
        if pending is None:
            pending = asyncio.get_running_loop().run_in_executor(None, render_jpeg, spec)
            self._pending[spec] = pending
            pending.add_done_callback(functools.partial(self._settle, spec))
        # shield: one waiter going away must not cancel the render the others wait for.
        return await asyncio.shield(pending)

    def _settle(self, spec: ImageSpec, future: asyncio.Future[bytes]) -> None:
        self._pending.pop(spec, None)
        if future.cancelled() or future.exception() is not None:
            return
        self._items[spec] = future.result()
        self._items.move_to_end(spec)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)


# --- The server ---------------------------------------------------------------------------------


def new_request_id() -> str:
    """An id shaped like the upstream's (``021`` + milliseconds + hex)."""
    return f"021{int(time.time() * 1000)}{secrets.token_hex(16)}"


_REQUEST_ID: Final = web.RequestKey("request_id", str)


def request_id(request: web.Request) -> str:
    """The id of this request, made on first use; every response carries it as x-request-id."""
    value = request.get(_REQUEST_ID)
    if value is None:
        value = new_request_id()
        request[_REQUEST_ID] = value
    return value


def _json_response(body: object, *, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
        status=status,
        content_type="application/json",
        charset="utf-8",
    )


class Simulator:
    """The simulator's state (key, latency, caches, call counters) and its request handlers."""

    def __init__(self, *, api_key: str, latency: float = 0.0, public_url: str = "") -> None:
        self.api_key = api_key
        self.latency = latency
        # Base of the image links; known only once the port is bound when serving on port 0.
        self.public_url = public_url.rstrip("/")
        self.images = JpegCache()
        self._calls: OrderedDict[str, int] = OrderedDict()
        # Per process: links from an earlier run stop verifying, as a rotated TOS key would.
        self._secret = secrets.token_bytes(32)

    def app(self) -> web.Application:
        # Bodies may carry base64 reference images (up to 10 MB each upstream).
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(f"{API_PREFIX}/images/generations", self.handle_generation)
        app.router.add_get(r"/tos/{token:[A-Za-z0-9_-]+}.jpeg", self.handle_image)
        app.router.add_get("/_sim/health", self.handle_health)
        app.router.add_get("/_sim/calls", self.handle_calls)
        app.on_response_prepare.append(self._stamp_request_id)
        return app

    @staticmethod
    async def _stamp_request_id(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.setdefault("x-request-id", request_id(request))

    # - Generation -

    async def handle_generation(self, request: web.Request) -> web.Response:
        rid = request_id(request)
        if not self._authenticated(request):
            error = UpstreamError(
                401, "AuthenticationError", "The API key in the request is missing or invalid."
            )
            return _json_response(error.body(rid), status=error.status)
        delay = self.latency
        try:
            call = self._parse(await self._read_json(request))
            delay += call.faults.latency
            response = await self._answer(call)
        except UpstreamError as error:
            response = _json_response(error.body(rid), status=error.status)
        if delay > 0:
            await asyncio.sleep(delay)
        return response

    def _authenticated(self, request: web.Request) -> bool:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            key.strip().encode(), self.api_key.encode()
        )

    @staticmethod
    async def _read_json(request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            raise _invalid("", "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _invalid("", "the request body must be a JSON object")
        return body

    def _count_call(self, prompt: str) -> int:
        number = self._calls.get(prompt, 0) + 1
        self._calls[prompt] = number
        self._calls.move_to_end(prompt)
        while len(self._calls) > CALL_COUNTER_ENTRIES:
            self._calls.popitem(last=False)
        return number

    def _parse(self, body: dict[str, Any]) -> GenerationCall:
        prompt = body.get("prompt")
        # Counted before any validation: /_sim/calls reports every call received.
        number = self._count_call(prompt) if isinstance(prompt, str) else 0

        model = body.get("model")
        if model is None or model == "":
            raise _missing("model")
        if not isinstance(model, str):
            raise _invalid("model", "model must be a string")
        rules = model_rules(model)
        if rules is None:
            raise UpstreamError(
                404,
                "InvalidEndpointOrModel.NotFound",
                f"The model or endpoint {model} does not exist or you do not have access to it.",
            )

        if prompt is None or (isinstance(prompt, str) and not prompt.strip()):
            raise _missing("prompt")
        if not isinstance(prompt, str):
            raise _invalid("prompt", "prompt must be a string")
        faults = parse_markers(prompt)

        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise _invalid("stream", "stream must be a boolean")
        if stream:
            raise _invalid("stream", "streaming is not simulated")

        width, height = parse_size(body.get("size"), rules)

        seed = body.get("seed", -1)
        if not _is_int(seed) or not -1 <= seed <= 2_147_483_647:
            raise _invalid("seed", "seed must be an integer within [-1, 2147483647]")

        guidance_scale = body.get("guidance_scale")
        if guidance_scale is not None and (
            not _is_number(guidance_scale) or not 1 <= guidance_scale <= 10
        ):
            raise _invalid("guidance_scale", "guidance_scale must be a number within [1, 10]")

        response_format = body.get("response_format", "url")
        if response_format not in ("url", "b64_json"):
            raise _invalid("response_format", "response_format must be url or b64_json")

        watermark = body.get("watermark", True)  # upstream stamps the mark unless told not to
        if not isinstance(watermark, bool):
            raise _invalid("watermark", "watermark must be a boolean")

        return GenerationCall(
            model=model,
            prompt=prompt,
            number=number,
            faults=faults,
            width=width,
            height=height,
            seed=seed,
            response_format=response_format,
            watermark=watermark,
            images=self._image_count(body, rules),
        )

    @staticmethod
    def _image_count(body: dict[str, Any], rules: ModelRules) -> int:
        mode = body.get("sequential_image_generation", "disabled")
        if mode not in ("auto", "disabled"):
            raise _invalid(
                "sequential_image_generation",
                "sequential_image_generation must be auto or disabled",
            )
        options = body.get("sequential_image_generation_options") or {}
        if not isinstance(options, dict):
            raise _invalid(
                "sequential_image_generation_options", "it must be an object with max_images"
            )
        # The real model decides how many images "auto" gives (up to max_images); the simulator
        # always gives max_images, defaulting to 1, so tests can predict it.
        max_images = options.get("max_images", 1)
        if not _is_int(max_images) or not 1 <= max_images <= 15:
            raise _invalid(
                "sequential_image_generation_options.max_images",
                "max_images must be an integer within [1, 15]",
            )
        return max_images if mode == "auto" and rules.batch else 1

    async def _answer(self, call: GenerationCall) -> web.Response:
        flags = call.faults.flags
        if "quota" in flags:
            raise UpstreamError(
                403,
                "AccountOverdueError",
                "The request failed because your account has an overdue balance.",
            )
        if "error-429" in flags:
            raise UpstreamError(
                429,
                "ModelAccountIpmRateLimitExceeded",
                "The request failed because you have exceeded the images per minute (IPM) "
                "limit of the model for your account. Please try again later.",
            )
        if "error-500" in flags or call.number <= call.faults.fail_first:
            raise _internal_error()
        if call.faults.deliver is not None and call.number > call.faults.deliver:
            raise _internal_error()
        if "block-prompt" in flags:
            raise UpstreamError(
                400,
                "InputTextSensitiveContentDetected",
                "The request failed because the input text may contain sensitive information.",
            )
        if "block-output" in flags:
            raise UpstreamError(400, "OutputImageSensitiveContentDetected", OUTPUT_BLOCKED_MESSAGE)

        kind = (
            "bad"
            if "bad-image" in flags
            else "huge"
            if "huge-image" in flags
            else "photo"
            if "photo" in flags
            else "jpeg"
        )
        specs = [
            ImageSpec.for_prompt(
                call.prompt,
                seed=call.seed,
                size=(call.width, call.height),
                watermark=call.watermark,
                index=index,
                kind=kind,
            )
            for index in range(call.images)
        ]
        # [sim:batch-error]: the last image of the batch fails inside an HTTP 200.
        delivered = specs[:-1] if "batch-error" in flags else specs
        entries = await asyncio.gather(*(self._entry(spec, call) for spec in delivered))
        data: list[dict[str, Any]] = list(entries)
        if "batch-error" in flags:
            data.append(
                {
                    "error": {
                        "code": "OutputImageSensitiveContentDetected",
                        "message": OUTPUT_BLOCKED_MESSAGE,
                    }
                }
            )
        tokens = sum(round(spec.width * spec.height / 256) for spec in delivered)
        return _json_response(
            {
                "model": call.model,
                "created": int(time.time()),
                "data": data,
                "usage": {
                    "generated_images": len(delivered),
                    "output_tokens": tokens,
                    "total_tokens": tokens,
                },
            }
        )

    async def _entry(self, spec: ImageSpec, call: GenerationCall) -> dict[str, Any]:
        if call.response_format == "b64_json":
            body = await self._image_bytes(spec)
            return {"b64_json": base64.b64encode(body).decode(), "size": spec.size}
        if "offsite-url" in call.faults.flags:
            return {"url": OFFSITE_URL, "size": spec.size}
        if spec.kind in ("jpeg", "photo"):
            # Rendered before answering, as upstream does, so the product's fetch hits the cache.
            await self.images.get(spec)
        return {"url": self.image_url(spec, expires=call.faults.expires), "size": spec.size}

    async def _image_bytes(self, spec: ImageSpec) -> bytes:
        if spec.kind == "bad":
            return BAD_IMAGE_BYTES
        if spec.kind == "huge":
            return HUGE_IMAGE_PREFIX + bytes(HUGE_IMAGE_BYTES - len(HUGE_IMAGE_PREFIX))
        return await self.images.get(spec)

    # - Signed image links -

    def _signature(self, token: str, date: str, expires: str) -> str:
        message = f"{token}\n{date}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def image_url(self, spec: ImageSpec, *, expires: int = URL_TTL_SECONDS) -> str:
        token = spec.token()
        date = datetime.now(UTC).strftime(TOS_DATE_FORMAT)
        signature = self._signature(token, date, str(expires))
        return (
            f"{self.public_url}/tos/{token}.jpeg"
            f"?X-Tos-Expires={expires}&X-Tos-Date={date}&X-Tos-Signature={signature}"
        )

    async def handle_image(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        expires = request.query.get("X-Tos-Expires", "")
        date = request.query.get("X-Tos-Date", "")
        signature = request.query.get("X-Tos-Signature", "")
        expected = self._signature(token, date, expires)
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return _tos_error(
                request, "SignatureDoesNotMatch", "The request signature does not match."
            )
        # Signed by us, so the date and token parse; the expiry is what remains to check.
        signed_at = datetime.strptime(date, TOS_DATE_FORMAT).replace(tzinfo=UTC).timestamp()
        if time.time() >= signed_at + int(expires):
            return _tos_error(request, "AccessDenied", "Request has expired.")
        try:
            spec = ImageSpec.from_token(token)
        except ValueError:
            return _tos_error(request, "AccessDenied", "The object key is invalid.")
        if spec.kind == "huge":
            return await _stream_huge_image(request)
        return web.Response(body=await self._image_bytes(spec), content_type="image/jpeg")

    # - Test helpers -

    async def handle_health(self, request: web.Request) -> web.Response:
        return _json_response({"ok": True})

    async def handle_calls(self, request: web.Request) -> web.Response:
        prompt = request.query.get("prompt")
        if prompt is None:
            return _json_response({"error": "the prompt query parameter is required"}, status=400)
        return _json_response({"calls": self._calls.get(prompt, 0)})


def _tos_error(request: web.Request, code: str, message: str) -> web.Response:
    # TOS (the object store behind upstream links) answers with a JSON error of this shape.
    body = {"Code": code, "Message": message, "RequestId": request_id(request)}
    return _json_response(body, status=403)


_HUGE_CHUNK: Final = bytes(1024 * 1024)


async def _stream_huge_image(request: web.Request) -> web.StreamResponse:
    """A 40 MiB body written in 1 MiB chunks, so it is never held in memory at once."""
    response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
    response.content_length = HUGE_IMAGE_BYTES
    await response.prepare(request)
    try:
        await response.write(HUGE_IMAGE_PREFIX + _HUGE_CHUNK[len(HUGE_IMAGE_PREFIX) :])
        for _ in range(HUGE_IMAGE_BYTES // len(_HUGE_CHUNK) - 1):
            await response.write(_HUGE_CHUNK)
        await response.write_eof()
    except (ConnectionResetError, ConnectionError):
        pass  # the product hung up once it reached its size cap, which is the point
    return response


# --- Serving ------------------------------------------------------------------------------------


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def serve(
    *,
    host: str,
    port: int,
    api_key: str,
    latency: float = 0.0,
    public_url: str | None = None,
    on_ready: Callable[[str], None],
) -> None:
    """Serve until SIGTERM or SIGINT; ``on_ready`` gets the bound ``http://host:port``.

    ``port`` 0 binds a free port; ``public_url`` (default: the bound address) is the base of
    the image links.
    """
    simulator = Simulator(api_key=api_key, latency=latency)
    # access_log=None: formatting a log line per request would dominate CPU in the benchmarks.
    # shutdown_timeout: keep-alive connections from the product must not delay a clean exit.
    runner = web.AppRunner(simulator.app(), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        bound_port = runner.addresses[0][1]
        listen_url = f"http://{_url_host(host)}:{bound_port}"
        simulator.public_url = (public_url or listen_url).rstrip("/")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        on_ready(listen_url)
        await stop.wait()
    finally:
        await runner.cleanup()
