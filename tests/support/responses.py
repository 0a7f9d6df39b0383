"""Reading what Django's test client returns, streamed or not."""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import async_to_sync
from django.http import HttpResponseBase


def pieces_of(response: HttpResponseBase) -> list[bytes]:
    """The body as the server sends it: a streamed one (b64_json answers) piece by piece, on an
    event loop of its own as a server would read an async stream; any other in one piece."""
    if not response.streaming:
        return [response.content]  # type: ignore[attr-defined]

    async def collect() -> list[bytes]:
        return [piece async for piece in response.streaming_content]  # type: ignore[attr-defined]

    return async_to_sync(collect)()


def body_of(response: HttpResponseBase) -> bytes:
    return b"".join(pieces_of(response))


def json_of(response: HttpResponseBase) -> Any:
    return json.loads(body_of(response))
