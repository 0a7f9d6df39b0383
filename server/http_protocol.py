"""uvicorn's HTTP protocol with a time limit on a request's headers.

uvicorn (0.55) starts no timer until a connection's first response is complete: a client that
opens a connection and sends nothing, or half a request line and a few headers, holds it (and a
slot of ``--limit-concurrency``) for as long as it likes, and nothing of ours sees the request
before its headers are in (server/body_guard.py bounds the body once they are). This class,
named by ``--http`` in the Procfiles and the tests' server, closes such a connection after
HEADER_READ_TIMEOUT_SECONDS: a connection that has sent nothing is closed in silence, one whose
headers stopped half way is answered 408 and closed.

It touches uvicorn's HttpToolsProtocol at three documented-by-code points: ``connection_made``,
the parser callbacks ``on_message_begin`` and ``on_headers_complete``, and ``connection_lost``
(tests/server/test_http_protocol.py checks each against the installed uvicorn).
"""

from __future__ import annotations

import asyncio

from django.conf import settings
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_TIMEOUT_BODY = b"The request headers did not arrive in time.\n"
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\n"
    b"content-length: %d\r\n"
    b"\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that gives each request HEADER_READ_TIMEOUT_SECONDS to send its
    headers, counted from the connection's opening or the request's first byte."""

    _header_timer: asyncio.TimerHandle | None = None
    _request_begun = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_begun = True
        if self._header_timer is None:  # a keep-alive connection's next request
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        self._request_begun = False
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(
            settings.HEADER_READ_TIMEOUT_SECONDS, self._headers_too_slow
        )

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._request_begun:
            self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()
