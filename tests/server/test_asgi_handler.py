"""The ASGI handler (server/asgi_handler.py): Django's, less two thread hops with nothing to do."""

from __future__ import annotations

import difflib
import inspect
import io
import json
import threading
import tokenize
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core import signals
from django.core.handlers.asgi import ASGIHandler

from server import asgi_handler
from tests.support.asgi import serve

# server/asgi_handler.py marks each line of its handle() that is not Django's with this ...
CHANGED = "# changed:"
# ... and keeps the Django lines it stands for as comments, at their own indentation.
DJANGO = "# django:"


def django_source_from(copy: str) -> str:
    """Django's source as our copy records it: its lines less those marked changed, with the
    ``# django:`` comments turned back into the lines they keep."""
    # Comments as Python reads them (a mark inside a string is no mark), by line.
    comments = {
        token.start[0]: token
        for token in tokenize.generate_tokens(io.StringIO(copy).readline)
        if token.type == tokenize.COMMENT
    }
    rebuilt = []
    for number, line in enumerate(copy.splitlines(keepends=True), start=1):
        comment = comments.get(number)
        text = comment.string if comment else ""
        if text.startswith(CHANGED):
            continue
        if comment and text.startswith(DJANGO) and not line[: comment.start[1]].strip():
            kept = text.removeprefix(DJANGO).removeprefix(" ")
            rebuilt.append(line[: comment.start[1]] + kept + "\n")
        else:
            rebuilt.append(line)
    return "".join(rebuilt)


def differences(copy: str, django: str) -> str:
    """A unified diff of Django's source against the one our copy records; empty if equal."""
    return "".join(
        difflib.unified_diff(
            django.splitlines(keepends=True),
            django_source_from(copy).splitlines(keepends=True),
            "django.core.handlers.asgi.ASGIHandler.handle (installed)",
            "server.asgi_handler.Handler.handle (less its marked changes)",
        )
    )


def our_copy() -> str:
    """Handler.handle's source, with the ``# django:`` lines just above its ``def``."""
    lines, start = inspect.getsourcelines(asgi_handler.Handler.handle)
    above = inspect.getsourcelines(asgi_handler)[0][: start - 1]
    while above and above[-1].lstrip().startswith(DJANGO):
        lines.insert(0, above.pop())
    return "".join(lines)


def test_the_copied_handle_is_djangos_but_for_its_marked_changes():
    # If this fails after a Django upgrade, copy Django's new handle() over and mark our
    # changes again (server/asgi_handler.py's docstring says how).
    diff = differences(our_copy(), inspect.getsource(ASGIHandler.handle))

    assert diff == "", f"server/asgi_handler.py's handle() is not Django's:\n{diff}"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # One character in a line copied as it is, in code or in a comment.
        pytest.param("get_script_prefix(scope))", "get_script_prefix(scope ))", id="code"),
        pytest.param("client disconnects.", "client disconnect.", id="comment"),
        # A line changed without its mark ...
        pytest.param("None:  # changed: typed", "None:", id="unmarked"),
        # ... or Django's line it stands for not kept as it is.
        pytest.param(
            "# django: await sync_to_async(response.close)()",
            "# django: await response.close()",
            id="django-line",
        ),
        pytest.param("# django: Handles", "# django:  Handles", id="django-indent"),
    ],
)
def test_the_comparison_catches_an_unmarked_difference(old, new):
    copy, django = our_copy(), inspect.getsource(ASGIHandler.handle)
    assert copy.count(old) == 1 and differences(copy, django) == ""

    diff = differences(copy.replace(old, new), django)

    assert diff != ""


def test_the_comparison_catches_a_change_in_django_to_a_line_we_replaced():
    django = inspect.getsource(ASGIHandler.handle)
    upgraded = django.replace("await sync_to_async(response.close)()", "await response.aclose()")
    assert upgraded != django

    assert "+            await sync_to_async(response.close)()" in differences(our_copy(), upgraded)


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
