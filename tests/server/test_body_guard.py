"""Request bodies refused before they are read, and bounded while they are read
(server/body_guard.py): in-process against the guard, then against a real uvicorn with raw
sockets."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import MutableMapping
from typing import Any

import pytest

from server import body_guard
from tests.support.server import running_server

LIMIT = 1024


@pytest.fixture
def small_limits(settings: Any) -> None:
    settings.API_MAX_BODY_BYTES = LIMIT // 2
    settings.API_MAX_IMAGE_BODY_BYTES = LIMIT
    settings.WEB_MAX_BODY_BYTES = 4 * LIMIT
    settings.BODY_READ_TIMEOUT_SECONDS = 0.3
    settings.IMAGE_BODY_READ_TIMEOUT_SECONDS = 0.3


class Client:
    """What the guard receives from the server: ``chunks`` of a body, one per receive call,
    after ``delay`` seconds each; and what the guard and the app send back."""

    def __init__(self, chunks: list[bytes], delay: float = 0.0) -> None:
        self.chunks = list(chunks)
        self.delay = delay
        self.read = 0
        self.sent: list[MutableMapping[str, Any]] = []

    async def receive(self) -> MutableMapping[str, Any]:
        if not self.chunks:
            await asyncio.Event().wait()
        await asyncio.sleep(self.delay)
        chunk = self.chunks.pop(0)
        self.read += 1
        return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])


async def django_like_app(scope: Any, receive: Any, send: Any) -> None:
    """Reads the whole body first, as Django's handler does; answers nothing if the client
    goes away meanwhile."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": f"read {len(body)}".encode()})


def request(path: str, length: int | None = None) -> dict[str, Any]:
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    return {"type": "http", "path": path, "headers": headers}


def run(scope: dict[str, Any], client: Client) -> Client:
    asyncio.run(body_guard.guarded(django_like_app, scope, client.receive, client.send))
    return client


@pytest.mark.smoke
def test_a_declared_length_over_the_limit_is_refused_without_reading(small_limits):
    client = run(request("/v1/images/generations", 64 * 1024 * 1024), Client([b"x" * 100]))

    assert client.status == 413
    assert client.read == 0
    assert json.loads(client.body)["error"]["code"] == "request_too_large"
    assert (b"connection", b"close") in client.sent[0]["headers"]


@pytest.mark.smoke
def test_a_body_that_grows_past_the_limit_stops_being_read_there(small_limits):
    chunks = [b"x" * 400] * 100  # 40,000 bytes, none of it declared

    client = run(request("/v1/images/generations"), Client(chunks))

    assert client.status == 413
    assert client.read == 3  # 1,200 bytes: one chunk past the limit, no more


@pytest.mark.smoke
def test_pages_have_their_own_larger_limit_and_a_plain_answer(small_limits):
    fits = run(request("/accounts/login/", 3 * LIMIT), Client([b"x" * 3 * LIMIT]))
    too_big = run(request("/healthz", 5 * LIMIT), Client([b"x"]))

    assert (fits.status, fits.body) == (200, f"read {3 * LIMIT}".encode())
    assert too_big.status == 413 and too_big.read == 0
    assert too_big.body == f"The request body is larger than {4 * LIMIT} bytes.".encode()


@pytest.mark.smoke
def test_a_body_that_does_not_arrive_in_time_is_answered_408(small_limits):
    # Whole after 0.6 s, against a limit of 0.3 s.
    client = run(request("/v1/images/generations", 300), Client([b"x" * 100] * 3, delay=0.2))

    assert client.status == 408
    assert json.loads(client.body)["error"]["code"] == "request_timeout"
    assert client.read == 1


@pytest.mark.smoke
def test_the_paths_that_take_images_wait_longer_for_their_body(small_limits, settings):
    """A body whole after 0.6 s: in time for the image paths' timeout (30 s here), too late
    for everyone else's (0.3 s)."""
    settings.IMAGE_BODY_READ_TIMEOUT_SECONDS = 30

    def slow() -> Client:
        return Client([b"x" * 100] * 3, delay=0.2)

    image_paths = [run(request(path, 300), slow()) for path in body_guard.IMAGE_BODY_PATHS]
    other = run(request("/v1/models", 300), slow())
    page = run(request("/accounts/login/", 300), slow())

    assert [(c.status, c.body) for c in image_paths] == [(200, b"read 300")] * 4
    assert other.status == page.status == 408
    assert json.loads(other.body)["error"]["message"] == (
        "The request body did not arrive within 0.3 s."
    )


@pytest.mark.smoke
def test_an_image_path_says_its_own_timeout_when_its_body_is_late(small_limits, settings):
    settings.IMAGE_BODY_READ_TIMEOUT_SECONDS = 0.5
    settings.BODY_READ_TIMEOUT_SECONDS = 30

    client = run(request("/v1/images/edits", 400), Client([b"x" * 100] * 4, delay=0.2))

    assert client.status == 408
    assert json.loads(client.body)["error"] == {
        "message": "The request body did not arrive within 0.5 s.",
        "type": "invalid_request_error",
        "code": "request_timeout",
        "param": None,
    }


@pytest.mark.parametrize(
    ("path", "setting"),
    [
        ("/v1/images/edits", "IMAGE_BODY_READ_TIMEOUT_SECONDS"),
        ("/v1/images/generations", "IMAGE_BODY_READ_TIMEOUT_SECONDS"),
        ("/v1/images/quote", "IMAGE_BODY_READ_TIMEOUT_SECONDS"),
        ("/dashboard/playground/", "IMAGE_BODY_READ_TIMEOUT_SECONDS"),
        ("/v1/models", "BODY_READ_TIMEOUT_SECONDS"),
        ("/dashboard/usage/", "BODY_READ_TIMEOUT_SECONDS"),
        ("/accounts/login/", "BODY_READ_TIMEOUT_SECONDS"),
    ],
)
def test_each_path_reads_its_body_within_its_own_setting(settings, path, setting):
    settings.BODY_READ_TIMEOUT_SECONDS = 11
    settings.IMAGE_BODY_READ_TIMEOUT_SECONDS = 222

    assert body_guard.read_timeout_for(path) == getattr(settings, setting)


@pytest.mark.smoke
def test_a_body_within_its_limits_reaches_the_app_whole(small_limits):
    client = run(request("/v1/images/generations", LIMIT), Client([b"x" * 512, b"y" * 512]))

    assert (client.status, client.body) == (200, f"read {LIMIT}".encode())


# - Against a real server, with raw sockets ---------------------------------------------------


def raw_request(base_url: str, head: str, body: bytes = b"") -> socket.socket:
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
    return sock


def status_of(sock: socket.socket) -> int:
    answer = sock.recv(65536).decode(errors="replace")
    return int(answer.split(" ", 2)[1])


@pytest.mark.integration
def test_a_served_process_refuses_64_mib_before_reading_it_and_drops_a_stalled_body(
    live_server_env,
):
    env = {
        **live_server_env,
        "BODY_READ_TIMEOUT_SECONDS": "2",
        "IMAGE_BODY_READ_TIMEOUT_SECONDS": "2",
    }
    with running_server(env) as base_url:
        started = time.monotonic()
        sock = raw_request(
            base_url,
            "POST /v1/images/generations HTTP/1.1\nHost: 127.0.0.1\n"
            f"Content-Type: application/json\nContent-Length: {64 * 1024 * 1024}\n",
        )
        big = status_of(sock)
        refused_in = time.monotonic() - started
        sock.close()

        started = time.monotonic()
        stalled = raw_request(
            base_url,
            "POST /v1/images/generations HTTP/1.1\nHost: 127.0.0.1\n"
            "Content-Type: application/json\nContent-Length: 100\n",
            body=b'{"model": ',
        )
        timed_out = status_of(stalled)
        held_for = time.monotonic() - started
        stalled.close()

    # Not a byte of the 64 MiB was sent: an answer other than 408 means none was waited for.
    assert big == 413
    assert timed_out == 408
    print(f"64 MiB refused in {refused_in * 1000:.1f} ms; stalled body held {held_for:.2f} s")


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("/v1/images/edits", LIMIT),
        ("/v1/images/generations", LIMIT),
        ("/v1/images/quote", LIMIT),
        ("/v1/models", LIMIT // 2),
        ("/v1/credits", LIMIT // 2),
        ("/dashboard/playground/", LIMIT),  # its form takes reference images
        ("/dashboard/usage/", 4 * LIMIT),
    ],
)
def test_the_paths_that_take_images_have_the_image_limit_and_the_rest_their_own(
    small_limits, path, limit
):
    fits = run(request(path, limit), Client([b"x" * limit]))
    too_big = run(request(path, limit + 1), Client([b"x"]))

    assert (fits.status, fits.body) == (200, f"read {limit}".encode())
    assert (too_big.status, too_big.read) == (413, 0)
