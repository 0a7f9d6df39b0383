"""The ASGI handler (config/asgi_handler.py): Django's, less two thread hops with nothing to do."""

from __future__ import annotations

import hashlib
import inspect
import json
import threading
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core import signals
from django.core.handlers.asgi import ASGIHandler

from config import asgi_handler
from tests.support.asgi import serve


def test_the_copied_django_handle_is_the_one_installed():
    # config/asgi_handler.py copies Django 5.2's ASGIHandler.handle. If this fails, Django's
    # changed: copy the new one over (keeping the two marked steps) and record its hash here.
    source = inspect.getsource(ASGIHandler.handle).encode()
    assert hashlib.sha256(source).hexdigest() == (
        "98faeb5bef800331e6a8002fbc96b30e4122a23438ae45a047190a531ea11323"
    )


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
    started_send, started_asend = signals.request_started.send, signals.request_started.asend

    def started(*args: Any, **kwargs: Any) -> Any:
        taken.append(f"request_started on {threading.current_thread().name}")
        return started_send(*args, **kwargs)

    async def started_async(*args: Any, **kwargs: Any) -> Any:
        taken.append("request_started sent to a thread")
        return await started_asend(*args, **kwargs)

    monkeypatch.setattr(signals.request_started, "send", started)
    monkeypatch.setattr(signals.request_started, "asend", started_async)
    return taken


def test_a_request_that_opened_nothing_is_closed_on_the_loop(hops):
    status, body = serve("GET", "/healthz")

    assert status == 200 and json.loads(body)["status"] == "ok"
    assert hops == ["request_started on MainThread", "request_finished on MainThread"]


@pytest.mark.django_db(transaction=True)
def test_a_request_that_opened_a_connection_is_closed_on_a_thread_as_django_does(
    hops, owner_key, default_prices
):
    status, _ = serve("GET", "/v1/models", {"Authorization": f"Bearer {owner_key}"})

    assert status == 200
    # The key and the prices were read on the request's thread, whose connection is closed there.
    assert hops[1:] == ["HttpResponseBase.close", "request_finished on request_0"]


def test_a_request_without_a_thread_lent_hops_as_in_django(hops):
    status, _ = serve("GET", "/healthz", lend_thread=False)

    assert status == 200
    assert hops[0] == "request_started sent to a thread"
    assert hops[1] == "HttpResponseBase.close"
    assert "MainThread" not in hops[2]


def test_with_persistent_connections_a_request_starts_as_in_django(hops, monkeypatch):
    # They stay with their thread between requests; Django checks them there at the start.
    monkeypatch.setitem(django_settings.DATABASES["default"], "CONN_MAX_AGE", 60)

    status, _ = serve("GET", "/healthz")

    assert status == 200
    assert hops[0] == "request_started sent to a thread"
    # The start ran on the request's thread, so the end does too.
    assert hops[1:] == ["HttpResponseBase.close", "request_finished on request_0"]


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
