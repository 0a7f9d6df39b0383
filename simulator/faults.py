"""Faults a test asks for with markers inside the prompt, so parallel tests never interfere.

``[sim:NAME]`` or ``[sim:NAME=VALUE]``, several allowed; see ``FLAG_MARKERS`` and
``VALUE_MARKERS``. An unknown or malformed marker is a 400 ``InvalidParameter`` on ``prompt``, so a
typo in a test fails loudly instead of silently succeeding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from .protocol import URL_TTL_SECONDS, UpstreamError, invalid

MAX_MARKER_LATENCY: Final = 600.0

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


def without_markers(prompt: str) -> str:
    """``prompt`` with its markers replaced by spaces."""
    return _MARKER_RE.sub(" ", prompt)
