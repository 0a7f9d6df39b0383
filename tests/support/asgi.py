"""One request through the product's ASGI handler, in-process, as uvicorn would send it."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

from asgiref.sync import ThreadSensitiveContext

from generation import inflight, ratelimits
from server import asyncdb
from server.asgi_handler import REQUEST_THREAD, Handler, RequestThread


def serve(
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    body: bytes = b"",
    lend_thread: bool = True,
    hot_sql_on_loop: bool = False,
    hang_up_after: float | None = None,
) -> tuple[int | None, bytes]:
    """The response's status (None if the client hung up first) and body.

    On an event loop of its own, with a thread lent to the request as server/asgi.py does
    (unless ``lend_thread`` is false), the API's SQL on that loop as in a served process with
    ``hot_sql_on_loop`` (the test then needs a committed database: transaction=True), and the
    client hanging up ``hang_up_after`` seconds after sending its body. Before returning it
    waits, as a server's shutdown does, for generations whose client left.
    """
    sent: list[dict[str, Any]] = []

    async def run() -> None:
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            if hang_up_after is None:
                await asyncio.Event().wait()  # the client stays connected
            await asyncio.sleep(hang_up_after or 0)
            return {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            sent.append(message)

        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"localhost"),
                *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
            ],
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8000),
        }
        if hot_sql_on_loop:
            await asyncdb.serve()  # as config.asgi's lifespan startup does
        try:
            if lend_thread:
                thread = scope[REQUEST_THREAD] = RequestThread()
                async with ThreadSensitiveContext(executor=thread):
                    await Handler()(scope, receive, send)
                thread.shutdown()
            else:
                await Handler()(scope, receive, send)
            assert not await inflight.drain(30)
        finally:
            await asyncdb.close()
            await ratelimits.aclose()

    # In a fresh context, as a server's requests start: the test's own has used caches.
    contextvars.Context().run(asyncio.run, run())
    statuses = [m["status"] for m in sent if m["type"] == "http.response.start"]
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return (statuses[0] if statuses else None), content
