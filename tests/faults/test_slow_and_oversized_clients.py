"""Slow and oversized clients, over raw sockets against a real uvicorn web process.

A body over its path's limit is refused before it is read (server/body_guard.py): a declared
64 MiB answers 413 before a byte of it is sent, a chunked body is cut off at the limit. A body
that stops arriving is answered 408 after its path's read timeout (IMAGE_BODY_READ_TIMEOUT_SECONDS
on the image paths, BODY_READ_TIMEOUT_SECONDS elsewhere) and its connection closed,
and so are headers that stop arriving, after HEADER_READ_TIMEOUT_SECONDS (server/http_protocol.py).
Each test prints what it measured (run with -s to see it); the only bounds asserted are generous
ones that prove a connection was closed rather than held open for ever.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from generation.models import Generation
from tests.support.money import balance
from tests.support.server import running_server

from .books import assert_books_balance_and_nothing_held
from .conftest import Customers

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

# BODY_READ_TIMEOUT_SECONDS and IMAGE_BODY_READ_TIMEOUT_SECONDS of this module's web process
BODY_READ_TIMEOUT = 2
HEADER_READ_TIMEOUT = 2  # HEADER_READ_TIMEOUT_SECONDS of this module's web process
KEEP_ALIVE_TIMEOUT = 5  # uvicorn's default --timeout-keep-alive, the Procfile's too
MARGIN = 30  # a bound past the configured timeout that proves a close, not a figure tested
SIXTY_FOUR_MIB = 64 * 1024 * 1024
API_LIMIT = 64 * 1024  # API_MAX_IMAGE_BODY_BYTES of this module's web process


@pytest.fixture(scope="module")
def web(live_server_env: dict[str, str]) -> Iterator[str]:
    with running_server(
        {
            **live_server_env,
            "BODY_READ_TIMEOUT_SECONDS": str(BODY_READ_TIMEOUT),
            "IMAGE_BODY_READ_TIMEOUT_SECONDS": str(BODY_READ_TIMEOUT),
            "HEADER_READ_TIMEOUT_SECONDS": str(HEADER_READ_TIMEOUT),
            # The generations path takes reference images (50 MiB by default): a small limit
            # here, so that the chunked body is seen cut off at it.
            "API_MAX_IMAGE_BODY_BYTES": str(API_LIMIT),
        }
    ) as base_url:
        yield base_url


def connect(base_url: str, timeout: float = MARGIN) -> socket.socket:
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def head(method: str, path: str, *lines: str) -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *lines, "", ""]).encode()


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and body (by its Content-Length) of the answer on ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before an answer: {data!r}"
        data += chunk
    top, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = top.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in header_lines)
    }
    if headers.get("transfer-encoding") == "chunked":
        # Whole once the last chunk (size 0) has come; kept as it came (tests read the status).
        while not body.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            assert chunk, "the connection closed inside the answer's body"
            body += chunk
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed inside the answer's body"
        body += chunk
    assert " " in status_line, f"not an HTTP answer: {data!r}"
    return int(status_line.split(" ", 2)[1]), headers, body


def seconds_until_closed(sock: socket.socket, bound: float) -> float | None:
    """How long until the server closes ``sock`` (reading and dropping whatever it sends), or
    None if it is still open after ``bound`` seconds."""
    started = time.monotonic()
    while (left := bound - (time.monotonic() - started)) > 0:
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            break
        try:
            if not sock.recv(65536):
                return time.monotonic() - started
        except ConnectionResetError:
            return time.monotonic() - started
    return None


def assert_still_serving(base_url: str) -> None:
    assert httpx.get(f"{base_url}/healthz", timeout=MARGIN).status_code == 200


@pytest.mark.parametrize("path", ["/v1/images/generations", "/healthz"])
def test_a_64_mib_body_is_refused_413_before_a_byte_of_it_is_sent(web: str, path: str):
    sock = connect(web)
    started = time.monotonic()

    # Only the head: not one byte of the 64 MiB it declares is ever sent.
    sock.sendall(
        head(
            "POST",
            path,
            "Content-Type: application/json",
            f"Content-Length: {SIXTY_FOUR_MIB}",
        )
    )
    status, headers, body = read_answer(sock)
    refused_in = time.monotonic() - started
    closed_in = seconds_until_closed(sock, MARGIN)
    sock.close()

    print(
        f"\n64 MiB POST {path} without a key: 413 in {refused_in * 1000:.1f} ms, "
        f"connection closed {closed_in and closed_in * 1000:.1f} ms later"
    )
    assert status == 413
    assert headers["connection"] == "close"
    assert closed_in is not None, f"the connection was still open {MARGIN} s after the 413"
    if path.startswith("/v1/"):
        assert json.loads(body)["error"]["code"] == "request_too_large"
    assert_still_serving(web)


def test_a_chunked_body_that_grows_past_the_limit_is_cut_off_with_413(
    web: str, customers: Customers
):
    customer = customers.open(1000)
    sock = connect(web)
    sock.sendall(
        head(
            "POST",
            "/v1/images/generations",
            f"Authorization: Bearer {customer.key}",
            "Content-Type: application/json",
            "Transfer-Encoding: chunked",
        )
    )
    piece = b"a" * 16 * 1024
    frames = [b'{"model": "seedream-4-0", "prompt": "'] + [piece] * (SIXTY_FOUR_MIB // len(piece))
    sent = 0
    started = time.monotonic()

    # Keep sending until the server answers (or stops taking bytes): it must not read 64 MiB.
    for frame in frames:
        if select.select([sock], [], [], 0)[0]:
            break
        try:
            sock.sendall(b"%x\r\n%s\r\n" % (len(frame), frame))
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(frame)
    status, _, body = read_answer(sock)
    answered_in = time.monotonic() - started
    sock.close()

    print(
        f"\nchunked body cut off: 413 after {sent / 1024:.0f} KiB sent (limit "
        f"{API_LIMIT // 1024} KiB; the rest sat in socket buffers), in {answered_in * 1000:.1f} ms"
    )
    assert status == 413
    assert json.loads(body)["error"]["code"] == "request_too_large"
    assert sent < SIXTY_FOUR_MIB
    # Nothing was started, held or charged for it.
    assert not Generation.objects.filter(user_id=customer.user_id).exists()
    assert balance(customer.user()) == 1000
    assert_books_balance_and_nothing_held()
    assert_still_serving(web)


def test_a_half_sent_body_is_answered_408_and_closed_after_the_body_timeout(web: str):
    sock = connect(web)
    started = time.monotonic()

    sock.sendall(
        head("POST", "/v1/images/generations", "Content-Type: application/json",
             "Content-Length: 100")
        + b'{"model": '  # 10 of the 100 bytes promised, and then nothing
    )  # fmt: skip
    status, headers, body = read_answer(sock)
    answered_in = time.monotonic() - started
    closed_in = seconds_until_closed(sock, MARGIN)
    held = time.monotonic() - started
    sock.close()

    print(
        f"\nhalf-sent body: 408 after {answered_in:.2f} s (IMAGE_BODY_READ_TIMEOUT_SECONDS "
        f"{BODY_READ_TIMEOUT}), connection held {held:.2f} s in all"
    )
    assert status == 408
    assert headers["connection"] == "close"
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert closed_in is not None, f"the connection was still open {MARGIN} s after the 408"
    assert_still_serving(web)


def test_a_half_sent_header_is_answered_408_and_closed_after_the_header_timeout(web: str):
    sock = connect(web)
    started = time.monotonic()

    sock.sendall(b"POST /v1/images/generations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
    status, headers, body = read_answer(sock)
    answered_in = time.monotonic() - started
    closed_in = seconds_until_closed(sock, MARGIN)
    sock.close()

    print(
        f"\nhalf-sent header: 408 after {answered_in:.2f} s (HEADER_READ_TIMEOUT_SECONDS "
        f"{HEADER_READ_TIMEOUT}), then closed"
    )
    assert status == 408
    assert headers["connection"] == "close"
    assert b"headers did not arrive in time" in body
    assert closed_in is not None, f"the connection was still open {MARGIN} s after the 408"
    assert_still_serving(web)


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(web: str):
    sock = connect(web)
    started = time.monotonic()

    closed_in = seconds_until_closed(sock, HEADER_READ_TIMEOUT + MARGIN)
    sock.close()

    print(f"\nsilent connection: closed after {time.monotonic() - started:.2f} s")
    assert closed_in is not None, "a connection that sent nothing was held open"
    assert_still_serving(web)


def test_a_kept_alive_connection_gives_its_next_request_the_same_time_for_its_headers(web: str):
    sock = connect(web)
    sock.sendall(head("GET", "/healthz"))
    assert read_answer(sock)[0] == 200

    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0")  # the next request, half sent
    status, _, _ = read_answer(sock)
    sock.close()

    assert status == 408


def test_connections_past_the_cap_are_answered_503_at_once(live_server_env: dict[str, str]):
    # The Procfile's --limit-concurrency (WEB_MAX_CONNECTIONS), set here through uvicorn's own
    # environment variable: idle connections count against it.
    cap = 4
    with running_server({**live_server_env, "UVICORN_LIMIT_CONCURRENCY": str(cap)}) as base_url:
        idle = [connect(base_url) for _ in range(cap)]
        try:
            sock = connect(base_url)
            started = time.monotonic()
            sock.sendall(head("GET", "/healthz"))
            status, _, _ = read_answer(sock)
            refused_in = time.monotonic() - started
            sock.close()
        finally:
            for held in idle:
                held.close()
        print(f"\nconnection {cap + 1} of a cap of {cap}: {status} in {refused_in * 1000:.1f} ms")
        assert status == 503
        assert_still_serving(base_url)
