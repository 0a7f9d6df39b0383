"""Request bodies refused before they are read, and bounded while they are read.

Django's ASGI handler reads a request's whole body (into a temporary file past 2.5 MB) before any
middleware or view looks at it, so a view's own size check comes after the bytes have arrived: a
64 MiB POST without a key was read in full, then refused. This guard stands in front of Django
(server/asgi.py):

- a declared ``Content-Length`` above the path's limit is answered 413 at once, reading nothing;
- a body that goes past the limit as it arrives (chunked, or longer than declared) stops being
  read there and is answered 413;
- a body that has not arrived within the path's read timeout is answered 408.

The limit is ``API_MAX_IMAGE_BODY_BYTES`` on the paths that take reference images,
``API_MAX_BODY_BYTES`` on the rest of ``/v1/``, and ``WEB_MAX_BODY_BYTES`` elsewhere. The read
timeout is ``IMAGE_BODY_READ_TIMEOUT_SECONDS`` on the paths that take reference images (their
50 MiB cannot arrive in 30 s over a slow link) and ``BODY_READ_TIMEOUT_SECONDS`` elsewhere. Slow
headers are the server's and a front proxy's to bound (README, "Deployment"): no application
sees a request before its headers are complete.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Message, Receive, Send], Awaitable[None]]

API_PREFIX = "/v1/"
# The paths whose bodies may carry reference images (files, or base64 in JSON): the API's, and
# the playground's form.
IMAGE_BODY_PATHS = (
    "/v1/images/edits",
    "/v1/images/generations",
    "/v1/images/quote",
    "/dashboard/playground",
)


def takes_images(path: str) -> bool:
    return path.rstrip("/") in IMAGE_BODY_PATHS


def limit_for(path: str) -> int:
    if takes_images(path):
        return int(settings.API_MAX_IMAGE_BODY_BYTES)
    if path.startswith(API_PREFIX):
        return int(settings.API_MAX_BODY_BYTES)
    return int(settings.WEB_MAX_BODY_BYTES)


def read_timeout_for(path: str) -> float:
    """The seconds ``path``'s whole body has to arrive in."""
    if takes_images(path):
        return float(settings.IMAGE_BODY_READ_TIMEOUT_SECONDS)
    return float(settings.BODY_READ_TIMEOUT_SECONDS)


def declared_length(scope: Message) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def guarded(app: App, scope: Message, receive: Receive, send: Send) -> None:
    """Run ``app`` for the HTTP request ``scope`` with its body bounded in size and time."""
    limit = limit_for(scope["path"])
    declared = declared_length(scope)
    if declared is not None and declared > limit:
        await refuse(send, scope, 413, limit)
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + read_timeout_for(scope["path"])
    received = 0
    body_done = False
    refused: int | None = None
    started = False

    async def bounded_receive() -> Message:
        nonlocal received, body_done, refused
        if body_done:  # after the body: only the disconnect to wait for, however long
            return await receive()
        try:
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            refused = 408
            return {"type": "http.disconnect"}
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                refused = 413
                return {"type": "http.disconnect"}
            body_done = not message.get("more_body", False)
        return message

    async def watched_send(message: Message) -> None:
        nonlocal started
        if message["type"] == "http.response.start":
            started = True
        await send(message)

    await app(scope, bounded_receive, watched_send)
    if refused is not None and not started:
        # Django heard a disconnect and answered nothing: the answer is ours.
        await refuse(send, scope, refused, limit)


async def refuse(send: Send, scope: Message, status: int, limit: int) -> None:
    if status == 413:
        message = f"The request body is larger than {limit} bytes."
        code = "request_too_large"
    else:
        message = f"The request body did not arrive within {read_timeout_for(scope['path']):g} s."
        code = "request_timeout"
    if scope["path"].startswith(API_PREFIX):
        error = {"message": message, "type": "invalid_request_error", "code": code, "param": None}
        body, content_type = json.dumps({"error": error}).encode(), b"application/json"
    else:
        body, content_type = message.encode(), b"text/plain; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                # What is left of the body is not read: the connection cannot be reused.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
