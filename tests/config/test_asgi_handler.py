"""The ASGI handler (config/asgi_handler.py): Django's, less two thread hops with nothing to do."""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import inspect
import json
import threading
from typing import Any

import pytest
from asgiref.sync import ThreadSensitiveContext
from django.core import signals
from django.core.handlers.asgi import ASGIHandler

from api import asyncdb
from config import asgi_handler
from config.asgi_handler import REQUEST_THREAD, Handler, RequestThread


def test_the_copied_django_handle_is_the_one_installed():
    # config/asgi_handler.py copies Django 5.2's ASGIHandler.handle. If this fails, Django's
    # changed: copy the new one over (keeping the two marked steps) and record its hash here.
    source = inspect.getsource(ASGIHandler.handle).encode()
    assert hashlib.sha256(source).hexdigest() == (
        "98faeb5bef800331e6a8002fbc96b30e4122a23438ae45a047190a531ea11323"
    )


def serve(
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    lend_thread: bool = True,
    hot_sql_on_loop: bool = False,
) -> tuple[int, bytes]:
    """One request through the handler, on an event loop of its own, as uvicorn would (with a
    thread lent to it, as config/asgi.py does, unless ``lend_thread`` is false)."""
    sent: list[dict[str, Any]] = []

    async def run() -> None:
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # the client stays connected
            raise AssertionError

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
        finally:
            await asyncdb.close()

    # In a fresh context, as a server's requests start: the test's own has used caches.
    contextvars.Context().run(asyncio.run, run())
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The handler's own thread hops, by what they ran; and where request_finished was sent."""
    taken: list[str] = []
    real = asgi_handler.sync_to_async

    def counting(func: Any, *args: Any, **kwargs: Any) -> Any:
        taken.append(getattr(func, "__qualname__", repr(func)))
        return real(func, *args, **kwargs)

    monkeypatch.setattr(asgi_handler, "sync_to_async", counting)
    send = signals.request_finished.send

    def finished(*args: Any, **kwargs: Any) -> Any:
        taken.append(f"request_finished on {threading.current_thread().name}")
        return send(*args, **kwargs)

    monkeypatch.setattr(signals.request_finished, "send", finished)
    return taken


def test_a_request_that_opened_nothing_is_closed_on_the_loop(hops):
    status, body = serve("GET", "/healthz")

    assert status == 200 and json.loads(body)["status"] == "ok"
    assert hops == ["request_finished on MainThread"]


@pytest.mark.django_db(transaction=True)
def test_a_request_that_opened_a_connection_is_closed_on_a_thread_as_django_does(
    hops, owner_key, default_prices
):
    status, _ = serve("GET", "/v1/models", {"Authorization": f"Bearer {owner_key}"})

    assert status == 200
    # The key and the prices were read on the request's thread, whose connection is closed there.
    assert hops == ["HttpResponseBase.close", "request_finished on request_0"]


def test_a_request_without_a_thread_lent_hops_as_in_django(hops):
    status, _ = serve("GET", "/healthz", lend_thread=False)

    assert status == 200
    assert hops[0] == "HttpResponseBase.close"
    assert "MainThread" not in hops[1]


def test_another_receiver_sends_the_signals_from_a_thread_as_django_does(hops):
    threads: list[str] = []

    def receiver(**kwargs: Any) -> None:
        threads.append(threading.current_thread().name)

    signals.request_started.connect(receiver)
    signals.request_finished.connect(receiver)
    try:
        status, _ = serve("GET", "/healthz")
    finally:
        signals.request_started.disconnect(receiver)
        signals.request_finished.disconnect(receiver)

    assert status == 200
    assert len(threads) == 2 and "MainThread" not in threads


@pytest.mark.django_db(transaction=True)
def test_pages_still_check_the_csrf_token_and_the_api_is_spared_the_check(hops):
    status, _ = serve("POST", "/accounts/login/")
    assert status == 403  # no CSRF cookie or token: refused, as under WSGI

    status, body = serve("POST", "/v1/images/generations", hot_sql_on_loop=True)
    assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"
    # Neither the check nor the close took the request's thread.
    assert hops[-1] == "request_finished on MainThread"
