"""How a playground generation is shown while it runs and once it is done, in the customer's
words rather than the API's error codes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from generation import catalog
from generation.models import Generation, Image, InputImage

# Error code -> what the customer reads. Every failed generation was charged nothing.
_EXPLANATIONS = {
    "insufficient_quota": "Not enough credits for this request. Add credits on the billing page.",
    "content_policy_violation": "The content filter blocked this prompt or its picture. "
    "Try describing it differently.",
    "upstream_busy": "The image service is busy right now. Try again in a minute.",
    "upstream_timeout": "The image service took too long to answer. Try again in a minute.",
    "service_unavailable": "Image generation is unavailable right now. Try again later.",
    "upstream_error": "The image service failed to make the picture. Try again.",
    "storage_error": "The picture was made but could not be saved. Try again in a minute.",
    "expired": "The image service did not answer in time.",
    "model_not_priced": "This model is not on sale right now.",
    "cancelled": "This generation was stopped before it finished.",
}
# At most this many placeholders stand for the images being made (a split may make 17).
PLACEHOLDERS_MAX = 4
_SIZE = re.compile(r"^(\d+)x(\d+)$")


def explain(generation: Generation) -> str:
    """One sentence on why a generation failed, or on the images it could not deliver."""
    if generation.status == Generation.Status.FAILED:
        return _EXPLANATIONS.get(generation.error_code, generation.error_message)
    if generation.images_delivered < generation.n and generation.is_finished:
        return generation.error_message
    return ""


def progress_label(generation: Generation) -> str:
    return {
        Generation.Status.QUEUED: "Waiting for a worker…",
        Generation.Status.RUNNING: "Generating…",
        Generation.Status.SUCCEEDED: "Done",
        Generation.Status.FAILED: "Failed",
    }[Generation.Status(generation.status)]


def elapsed(since: datetime, now: datetime) -> str:
    """``7 s``, ``2 min 05 s``: how long ago ``since`` was."""
    seconds = max(int((now - since).total_seconds()), 0)
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} min {seconds % 60:02d} s"


def typical(model_id: str) -> str:
    """How long the model usually takes an image, in words ("" where there is no figure)."""
    model = catalog.get_model(model_id)
    if model is None or not model.typical_seconds[1]:
        return ""
    fastest, slowest = model.typical_seconds
    figure = f"{fastest}\u2013{slowest} s" if fastest != slowest else f"{slowest} s"
    return f"{model.name} usually takes {figure} an image"


def aspect(size: str) -> tuple[int, int]:
    """The width and height a placeholder is drawn at: the size asked for, or a square for a
    size that is not WxH."""
    match = _SIZE.match(size or "")
    return (int(match[1]), int(match[2])) if match else (1, 1)


@dataclass(frozen=True)
class Card:
    """Everything one generation's card shows."""

    g: Generation
    images: list[Image] = field(default_factory=list)
    inputs: list[InputImage] = field(default_factory=list)
    explanation: str = ""
    progress: str = ""
    elapsed: str = ""
    typical: str = ""
    width: int = 1
    height: int = 1
    placeholders: range = range(0)
    # The newest card's images are drawn large: their largest file is worth loading.
    large: bool = False


def card(generation: Generation, now: datetime | None = None, *, large: bool = True) -> Card:
    width, height = aspect(generation.size)
    running = not generation.is_finished
    return Card(
        g=generation,
        images=list(generation.images.all()),
        inputs=list(generation.inputs.all()),
        explanation=explain(generation),
        progress=progress_label(generation),
        elapsed=elapsed(generation.created_at, now or timezone.now()) if running else "",
        typical=typical(generation.model) if running else "",
        width=width,
        height=height,
        placeholders=range(min(generation.n, PLACEHOLDERS_MAX) if running else 0),
        large=large,
    )
