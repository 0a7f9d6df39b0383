"""Outcomes as the upstream client returns them for a request of one image per call."""

from __future__ import annotations

from dataclasses import replace
from typing import Any


def one_per_call(outcomes: list[Any]) -> list[Any]:
    """``outcomes`` with each delivered image marked as made by the call at its position (what
    upstream.generate_images does: settlement prices each image by its call)."""
    return [replace(o, call=i) if hasattr(o, "call") else o for i, o in enumerate(outcomes)]
