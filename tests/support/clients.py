"""HTTP clients that behave badly on purpose."""

from __future__ import annotations

import uuid

import httpx
import pytest


def hang_up(base_url: str, key: str, *, latency: float, after: float) -> None:
    """Ask for an image the simulator takes ``latency`` seconds to make, and hang up ``after``."""
    body = {
        "model": "seedream-4-0",
        "prompt": f"a patient heron {uuid.uuid4()} [sim:latency={latency}]",
        "size": "1024x1024",
    }
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{base_url}/v1/images/generations",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(after),
        )
