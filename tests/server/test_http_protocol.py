"""server/http_protocol.py relies on four methods of uvicorn's HttpToolsProtocol, and on every
way we start uvicorn naming it (the timeout itself is tested over raw sockets against a real
process: tests/faults/test_slow_and_oversized_clients.py)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.http_protocol import HeaderTimeoutProtocol

ROOT = Path(__file__).resolve().parents[2]
HTTP_OPTION = "--http server.http_protocol:HeaderTimeoutProtocol"


@pytest.mark.parametrize(
    "hook", ["connection_made", "on_message_begin", "on_headers_complete", "connection_lost"]
)
def test_uvicorn_still_calls_the_hooks_the_timeout_extends(hook):
    ours, theirs = getattr(HeaderTimeoutProtocol, hook), getattr(HttpToolsProtocol, hook)
    assert ours is not theirs
    assert list(inspect.signature(ours).parameters) == list(inspect.signature(theirs).parameters)
    # uvicorn calls the parser callbacks by name from httptools; the protocol hooks from asyncio.
    source = inspect.getsource(HttpToolsProtocol)
    assert f"def {hook}(" in source


@pytest.mark.parametrize("procfile", ["Procfile", "Procfile.dev"])
def test_every_procfile_serves_with_the_header_timeout(procfile):
    web = next(
        line for line in (ROOT / procfile).read_text().splitlines() if line.startswith("web:")
    )
    assert HTTP_OPTION in web
