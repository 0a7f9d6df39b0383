"""The pictures: what one is made from, its rendering, and a cache of rendered ones.

Images are real baseline JPEGs (or PNGs, with an alpha channel when transparent) of the delivered
size. Each varies with the prompt, the seed and its index, and prints the model, size, seed and
index, so the images of a batch are told apart at a glance. The link the simulator hands out
carries the picture's whole description (an ``ImageSpec`` token), so serving it needs no stored
state.

A call with reference images (the ``image`` field) marks every picture it makes with a band of
their mean colours across the top, one column per reference in the order received (layout in
``draw_reference_band``); ``reference_colours`` reads it back from a delivered picture, so a test
can tell that the references arrived, and in which order. A picture without references has no
band and is exactly what it was before references were drawn.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import io
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from PIL import Image, ImageDraw, ImageFont, ImageStat

from .faults import WHOLE, Delivery, without_markers

HUGE_IMAGE_BYTES: Final = 40 * 1024 * 1024
JPEG_QUALITY: Final = 85
JPEG_CACHE_ENTRIES: Final = 64
PROMPT_HEAD_CHARS: Final = 60

RGB = tuple[int, int, int]  # a colour, each channel 0 to 255

# The colour of a reference the simulator cannot read: a URL (never fetched) or bytes Pillow
# does not decode.
UNREAD_REFERENCE_COLOUR: Final[RGB] = (128, 128, 128)
BAND_MIN_ROWS: Final = 8


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
    # How the link serves it ([sim:truncate-image], [sim:slow-image]); not part of the picture.
    delivery: Delivery = WHOLE
    model: str = ""  # the model's display name, printed on the picture
    fmt: str = "jpeg"  # "jpeg" or "png"
    alpha: bool = False  # png only: transparent around the subject
    label: str = ""  # printed too: "base", "layer 2 of 3"
    # The mean colour of each reference image, in the order received; drawn as the top band.
    references: tuple[RGB, ...] = ()

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
        delivery: Delivery = WHOLE,
        model: str = "",
        fmt: str = "jpeg",
        alpha: bool = False,
        label: str = "",
        references: tuple[RGB, ...] = (),
    ) -> ImageSpec:
        words = " ".join(without_markers(prompt).split())
        head = words if len(words) <= PROMPT_HEAD_CHARS else words[:PROMPT_HEAD_CHARS] + "..."
        digest = hashlib.sha256(prompt.encode()).hexdigest()[:32]
        return cls(
            digest,
            head,
            seed,
            size[0],
            size[1],
            watermark,
            index,
            kind,
            delivery,
            model=model,
            fmt=fmt,
            alpha=alpha,
            label=label,
            references=references,
        )

    @property
    def picture(self) -> ImageSpec:
        """This spec as the renderer and its cache see it: how it is delivered left out."""
        return replace(self, delivery=WHOLE) if self.delivery != WHOLE else self

    def token(self) -> str:
        payload: dict[str, Any] = {
            "d": self.digest,
            "t": self.head,
            "s": self.seed,
            "w": self.width,
            "h": self.height,
            "m": int(self.watermark),
            "i": self.index,
            "k": self.kind,
            "n": self.model,
            "o": self.fmt,
            "a": int(self.alpha),
            "l": self.label,
        }
        if self.references:
            payload["r"] = [list(colour) for colour in self.references]
        if self.delivery != WHOLE:
            payload["f"] = {
                "t": int(self.delivery.truncate),
                "s": self.delivery.trickle_seconds,
            }
        raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def from_token(cls, token: str) -> ImageSpec:
        """Decode a token; raises ``ValueError`` if it is malformed."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = json.loads(raw)
            faults = data.get("f", {})
            return cls(
                str(data["d"]),
                str(data["t"]),
                int(data["s"]),
                int(data["w"]),
                int(data["h"]),
                bool(data["m"]),
                int(data["i"]),
                str(data["k"]),
                Delivery(
                    truncate=bool(faults.get("t", 0)),
                    trickle_seconds=float(faults.get("s", 0.0)),
                ),
                str(data.get("n", "")),
                "png" if data.get("o") == "png" else "jpeg",
                bool(data.get("a", 0)),
                str(data.get("l", "")),
                tuple(_rgb(colour) for colour in data.get("r", ())),
            )
        except (binascii.Error, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise ValueError("malformed image token") from exc

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def content_type(self) -> str:
        return "image/png" if self.fmt == "png" and self.kind in ("jpeg", "photo") else "image/jpeg"

    @property
    def caption(self) -> tuple[str, ...]:
        """The lines printed under the prompt: the model, then size, seed and index (and layer)."""
        parts = [self.size, f"seed {self.seed}", f"#{self.index}", self.label]
        details = " · ".join(part for part in parts if part)
        return (self.model, details) if self.model else (details,)


def _rgb(value: Any) -> RGB:
    red, green, blue = value  # a ValueError unless exactly three channels
    return (int(red), int(green), int(blue))


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


def render_image(spec: ImageSpec) -> bytes:
    """A baseline JPEG (or a PNG) of exactly ``spec``'s size, the same bytes for the same spec.

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
    caption_size = max(8, title_size // 4)
    caption = _font(caption_size)
    for line, text in enumerate((spec.head, *spec.caption)):
        draw.text(
            (left, top + title_size * 1.3 + line * caption_size * 1.4),
            _fit_text(text, caption, width * 0.8),
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

    if spec.fmt == "png" and spec.alpha:
        # Transparent around an opaque ellipse holding the subject: a real alpha channel, with
        # fully transparent and fully opaque pixels.
        mask = Image.new("L", (width, height), 0)
        ImageDraw.Draw(mask).ellipse(
            (width // 20, height // 20, width - width // 20, height - height // 20), fill=255
        )
        image.putalpha(mask)
    # Last, over the text and the alpha mask, so nothing covers it.
    draw_reference_band(image, spec.references)

    buffer = io.BytesIO()
    if spec.fmt != "png":
        image.save(buffer, "JPEG", quality=JPEG_QUALITY, progressive=False)
    else:
        image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


# --- The reference band -------------------------------------------------------------------------


def band_rows(height: int) -> int:
    """How many rows the reference band takes at the top of a picture ``height`` rows high."""
    return min(height, max(BAND_MIN_ROWS, height // 10))


def band_columns(width: int, count: int) -> list[tuple[int, int]]:
    """The first and last x (inclusive) of each of ``count`` equal columns across ``width``."""
    return [(i * width // count, (i + 1) * width // count - 1) for i in range(count)]


def draw_reference_band(image: Image.Image, colours: Sequence[RGB]) -> None:
    """Paint the reference band on ``image`` (in place); nothing when there are no references.

    The layout, which ``reference_colours`` reads back:

    - the band is rows ``0`` to ``band - 1``, where ``band = max(8, height // 10)``;
    - it is split into ``k = len(colours)`` columns; column ``i`` spans x from ``i * width // k``
      to ``(i + 1) * width // k - 1``;
    - column ``i`` is filled with ``colours[i]``, the mean RGB colour of reference ``i`` in the
      order the call sent them (``UNREAD_REFERENCE_COLOUR``, mid grey, for a URL);
    - on a picture with an alpha channel the band is fully opaque.
    """
    if not colours:
        return
    draw = ImageDraw.Draw(image)
    bottom = band_rows(image.height) - 1
    opaque = image.mode == "RGBA"
    for (left, right), colour in zip(band_columns(image.width, len(colours)), colours, strict=True):
        if right >= left:
            draw.rectangle((left, 0, right, bottom), fill=(*colour, 255) if opaque else colour)


def reference_colours(image: Image.Image, count: int) -> list[RGB]:
    """The colours of the ``count`` band columns of a delivered picture, left to right.

    Each is the mean of the middle half (across and down) of its column, away from the edges
    where JPEG blurs one column into the next; compare with a tolerance, not exactly.
    """
    rgb = image.convert("RGB")
    rows = band_rows(rgb.height)
    top, bottom = rows // 4, rows - rows // 4
    colours = []
    for left, right in band_columns(rgb.width, count):
        inset = (right - left + 1) // 4
        mean = ImageStat.Stat(rgb.crop((left + inset, top, right + 1 - inset, bottom))).mean
        colours.append(_rgb(round(channel) for channel in mean))
    return colours


def mean_colour(data: bytes | None) -> RGB:
    """The mean RGB colour of an encoded reference image (alpha ignored).

    ``None`` (a URL, never fetched) or bytes Pillow cannot decode give ``UNREAD_REFERENCE_COLOUR``.
    CPU-bound on large images: run it in a thread, not on the event loop.
    """
    if data is None:
        return UNREAD_REFERENCE_COLOUR
    try:
        with Image.open(io.BytesIO(data)) as picture:
            mean = ImageStat.Stat(picture.convert("RGB")).mean
    except (OSError, ValueError, Image.DecompressionBombError):
        return UNREAD_REFERENCE_COLOUR
    return _rgb(round(channel) for channel in mean)


# The name the product's tests know it by: a JPEG unless the spec says png.
render_jpeg = render_image


class ImageCache:
    """A bounded LRU of encoded images that also merges concurrent renders of the same picture.

    Only touched from the event loop thread, so it needs no lock; rendering runs in the loop's
    default thread pool.
    """

    def __init__(self, capacity: int = JPEG_CACHE_ENTRIES) -> None:
        self._capacity = capacity
        self._items: OrderedDict[ImageSpec, bytes] = OrderedDict()
        self._pending: dict[ImageSpec, asyncio.Future[bytes]] = {}

    async def get(self, spec: ImageSpec) -> bytes:
        spec = spec.picture
        cached = self._items.get(spec)
        if cached is not None:
            self._items.move_to_end(spec)
            return cached
        pending = self._pending.get(spec)
        if pending is None:
            pending = asyncio.get_running_loop().run_in_executor(None, render_image, spec)
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
