"""Server-Sent Events: the answer to ``stream: true`` on POST /v1/images/generations and
/v1/images/edits, in the shapes the official SDKs parse (openai-python's ``Stream``, openai-node's
``Stream.fromSSEResponse``, both in their default "legacy" mode).

A streamed request is the same work as any other (api/views.py starts it the same way, so it
reserves, runs and settles the same money); only its answer differs:

- ``: keep-alive`` comment lines every ``KEEPALIVE_SECONDS`` while the work runs. Both SDKs skip
  lines that start with ":"; proxies and load balancers see bytes on a connection that would
  otherwise stay quiet for as long as an upstream call takes (minutes, on Pro).
- One ``<kind>.completed`` event per delivered image, in order (``image_generation`` or
  ``image_edit``), its ``b64_json`` sent a piece at a time as it is read from storage: the SDKs
  join an event's lines whatever pieces they arrive in.
- ``data: [DONE]``, after which both SDKs stop reading.

There are no partial images: Seedream sends none we could pass on (the upstream is never asked
to stream), and OpenAI's own streams may end without them.

A generation that fails as a whole ends with one ``event: error`` frame whose data has our usual
error object under ``error``: a data object with a truthy ``error`` is what makes both SDKs raise
APIError. Whatever is refused before the answer starts (the body, the key, the limits, the
credits) is an ordinary JSON error with its status, as without ``stream``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from django.http import StreamingHttpResponse

from .errors import ApiError

# How long a stream may go without a byte while the work runs (a module constant so that tests
# can shorten it). Well under the idle timeouts of common proxies (nginx: 60 s).
KEEPALIVE_SECONDS = 15.0

KEEPALIVE = b": keep-alive\n\n"
DONE = b"data: [DONE]\n\n"

GENERATION = "image_generation"
EDIT = "image_edit"


def event_stream(body: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(body, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    # nginx buffers what it proxies unless the answer says not to; events must go as sent.
    response["X-Accel-Buffering"] = "no"
    return response


async def keep_alive_until(work: asyncio.Future[Any]) -> AsyncIterator[bytes]:
    """A keep-alive comment every ``KEEPALIVE_SECONDS`` until ``work`` is done. Waiting never
    cancels the work: a client that hangs up cancels only this wait."""
    while True:
        done, _ = await asyncio.wait({work}, timeout=KEEPALIVE_SECONDS)
        if done:
            return
        yield KEEPALIVE


async def completed_event(
    kind: str, fields: dict[str, Any], b64_json: AsyncIterator[bytes]
) -> AsyncGenerator[bytes]:
    """One image's ``<kind>.completed`` event: ``fields``, then its ``b64_json`` as its pieces
    come, so an image's base64 is never held whole."""
    name = f"{kind}.completed"
    head = json.dumps({"type": name, **fields}, separators=(",", ":"))[:-1]
    yield f'event: {name}\ndata: {head},"b64_json":"'.encode()
    async for piece in b64_json:
        yield piece
    yield b'"}\n\n'


def error_event(error: ApiError) -> bytes:
    """The frame a stream ends with when the generation failed as a whole: our error object
    under ``error`` (the SDKs raise APIError with it as the body)."""
    body = {
        "error": {
            "message": error.message,
            "type": error.type,
            "code": error.code,
            "param": error.param,
        }
    }
    return b"event: error\ndata: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"
