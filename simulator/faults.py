"""Faults a test asks for with markers inside the prompt, so parallel tests never interfere.

``[sim:NAME]`` or ``[sim:NAME=VALUE]``, several allowed; see ``FLAG_MARKERS`` and
``VALUE_MARKERS``. An unknown or malformed marker is a 400 ``InvalidParameter`` on ``prompt``, so a
typo in a test fails loudly instead of silently succeeding.

Most markers choose what the upstream answers. The delivery markers (``close``, ``garbage``,
``truncate``, ``slow-body``; ``truncate-image`` and ``slow-image`` for the image behind a link)
choose how the bytes travel instead, as a failing upstream, a proxy before it or the network
breaks them: no answer at all, a body that is not JSON, a body cut short under a
``Content-Length`` that promised more, or one trickled in pieces (see ``Delivery``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from .protocol import (
    INPUT_GENERIC,
    INPUT_IMAGE,
    INPUT_TEXT,
    OUTPUT_IMAGE,
    URL_TTL_SECONDS,
    UpstreamError,
    invalid,
    parse_wxh,
)

MAX_MARKER_LATENCY: Final = 600.0

FLAG_MARKERS: Final = frozenset(
    {
        "block-prompt",  # 400 InputTextSensitiveContentDetected
        "block-input",  # 400 SensitiveContentDetected (the input, stage not named)
        "block-input-image",  # 400 InputImageSensitiveContentDetected
        "block-output",  # 400 OutputImageSensitiveContentDetected
        "in-200",  # the block-* above arrive inside an HTTP 200, as data[0].error
        "error-500",  # 500 InternalServiceError
        "error-429",  # 429 ModelAccountIpmRateLimitExceeded
        "quota",  # 403 AccountOverdueError
        "batch-error",  # 200 whose last data entry is an in-batch error
        "bad-image",  # the link serves bytes that are not an image
        "offsite-url",  # the link points at a host the product must refuse
        "huge-image",  # the link serves a 40 MiB body
        "photo",  # fine detail everywhere: a JPEG as large as a real photograph's (MBs at 4K)
        # How the answer itself arrives (any answer, an error's too):
        "close",  # the connection is closed with no response at all
        "garbage",  # 200 with a body that is not JSON (an HTML error page, as a proxy sends)
        "truncate",  # half the body, under a Content-Length promising all of it, then closed
        # How the image behind a link arrives (url answers only):
        "truncate-image",  # half the JPEG, under a Content-Length promising all of it, then closed
    }
)
VALUE_MARKERS: Final = frozenset(
    {
        "latency",  # float seconds slept before answering
        "deliver",  # calls K+1 and later for this exact prompt get 500
        "fail-first",  # the first K calls for this exact prompt get 500
        "expires",  # X-Tos-Expires of the links (0 gives an already expired link)
        "slow-body",  # float seconds: the answer's headers at once, its body trickled over them
        "slow-image",  # float seconds: the same for the image behind each link
        "block-reason",  # a dotted reason for the moderation code: DeepFake, ...Detected.DeepFake
        "deliver-size",  # WxH the model delivers instead of the keyword's (within the window)
        "set-count",  # how many images a set (sequential_image_generation auto) gives, <= max
        "set-block",  # comma-separated indexes of images blocked by output moderation, in a 200
        "set-error-500",  # index of the image that fails with InternalServiceError; none after it
        "layers",  # how many layers layer_decomposition gives (default 3)
    }
)
_BLOCKS: Final = (
    ("block-input", INPUT_GENERIC),
    ("block-prompt", INPUT_TEXT),
    ("block-input-image", INPUT_IMAGE),
    ("block-output", OUTPUT_IMAGE),
)
_REASON_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")
_MARKER_RE: Final = re.compile(r"\[sim:([^\]=]*)(?:=([^\]]*))?\]")


@dataclass(frozen=True)
class Delivery:
    """How the bytes of one response reach the client: whole and at once unless a marker says
    otherwise. A generation answer can have any of these; an image link only ``truncate`` and
    ``trickle_seconds``."""

    close: bool = False
    garbage: bool = False
    truncate: bool = False
    trickle_seconds: float = 0.0


WHOLE: Final = Delivery()


@dataclass(frozen=True)
class Faults:
    """The faults a prompt asks for through its ``[sim:...]`` markers."""

    flags: frozenset[str] = frozenset()
    latency: float = 0.0
    deliver: int | None = None
    fail_first: int = 0
    expires: int = URL_TTL_SECONDS
    answer: Delivery = WHOLE  # of the generation answer
    image: Delivery = WHOLE  # of the images behind its links
    block_reason: str = ""
    deliver_size: tuple[int, int] | None = None
    set_count: int | None = None
    set_block: frozenset[int] = frozenset()
    set_error_500: int | None = None
    layers: int | None = None

    def moderation(self) -> str | None:
        """The moderation family a block-* marker asks for as a whole-request refusal."""
        for flag, family in _BLOCKS:
            if flag in self.flags:
                return family
        return None


def _marker_error(detail: str) -> UpstreamError:
    return invalid("prompt", f"simulator marker {detail}")


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
    deliver = values.get("deliver")
    reason = values.get("block-reason", "")
    if reason and not _REASON_RE.fullmatch(reason):
        raise _marker_error(f"[sim:block-reason] needs a word such as DeepFake, not {reason!r}")
    deliver_size = None
    if "deliver-size" in values:
        deliver_size = parse_wxh(values["deliver-size"])
        if deliver_size is None:
            raise _marker_error("[sim:deliver-size] needs WxH")
    set_count = values.get("set-count")
    set_error = values.get("set-error-500")
    layers = values.get("layers")
    return Faults(
        flags=frozenset(flags),
        latency=_seconds("latency", values),
        deliver=None if deliver is None else _non_negative_int("deliver", deliver),
        fail_first=_non_negative_int("fail-first", values.get("fail-first", "0")),
        expires=_non_negative_int("expires", values.get("expires", str(URL_TTL_SECONDS))),
        answer=Delivery(
            close="close" in flags,
            garbage="garbage" in flags,
            truncate="truncate" in flags,
            trickle_seconds=_seconds("slow-body", values),
        ),
        image=Delivery(
            truncate="truncate-image" in flags, trickle_seconds=_seconds("slow-image", values)
        ),
        block_reason=reason,
        deliver_size=deliver_size,
        set_count=None if set_count is None else _positive_int("set-count", set_count),
        set_block=frozenset(
            _non_negative_int("set-block", index.strip())
            for index in values.get("set-block", "").split(",")
            if "set-block" in values
        ),
        set_error_500=None if set_error is None else _non_negative_int("set-error-500", set_error),
        layers=None if layers is None else _non_negative_int("layers", layers),
    )


def _positive_int(name: str, value: str) -> int:
    number = _non_negative_int(name, value)
    if number == 0:
        raise _marker_error(f"[sim:{name}] must be at least 1")
    return number


def _seconds(name: str, values: dict[str, str]) -> float:
    """The value of the ``[sim:NAME=SECONDS]`` marker, 0 without one."""
    if name not in values:
        return 0.0
    try:
        seconds = float(values[name])
    except ValueError:
        raise _marker_error(f"[sim:{name}] needs a number of seconds") from None
    if not 0.0 <= seconds <= MAX_MARKER_LATENCY:
        raise _marker_error(f"[sim:{name}] must be within 0 to {MAX_MARKER_LATENCY:g}")
    return seconds


def without_markers(prompt: str) -> str:
    """``prompt`` with its markers replaced by spaces."""
    return _MARKER_RE.sub(" ", prompt)
