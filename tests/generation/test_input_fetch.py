"""Reference images fetched from customers' URLs: public addresses only, redirects re-checked,
size and time capped (generation/input_fetch.py).

A small aiohttp server on loopback stands in for a customer's image host. It listens on
127.0.0.1 and, on the same port, on 127.0.0.2, so a redirect to 127.0.0.2 would reach it: a
refusal there is the redirect's check at work, not a dead address. Nothing here needs the
internet: refusals of public-looking URLs happen before any connection.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from generation import input_fetch
from generation.input_fetch import (
    InputFetchError,
    NoPublicAddressError,
    PublicAddressResolver,
    check_reference_url,
    fetch_reference,
)

T = TypeVar("T")
MAX_BYTES = 100_000
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


class ImageHost:
    """The customer's image host: records what reached it, and holds its slow answers until the
    test is over (so a client that waited for them would time out, not succeed)."""

    def __init__(self) -> None:
        self.image_requests: list[dict[str, Any]] = []
        self.body_bytes_sent: dict[str, int] = {}
        self.released = asyncio.Event()
        self.port = 0
        app = web.Application()
        app.router.add_get("/image.png", self.image)
        app.router.add_get("/redirect", self.redirect)
        app.router.add_get("/hops/{left}", self.hops)
        app.router.add_get("/declared-too-large", self.declared_too_large)
        app.router.add_get("/chunked-too-large", self.chunked_too_large)
        app.router.add_get("/slow", self.slow)
        self.runner = web.AppRunner(app)

    def url(self, path: str, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    async def start(self) -> None:
        await self.runner.setup()
        first = web.TCPSite(self.runner, "127.0.0.1", 0)
        await first.start()
        server = first._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]
        await web.TCPSite(self.runner, "127.0.0.2", self.port).start()

    async def stop(self) -> None:
        self.released.set()
        await self.runner.cleanup()

    async def image(self, request: web.Request) -> web.Response:
        self.image_requests.append(
            {
                "reached": request.transport.get_extra_info("sockname")[0]
                if request.transport
                else None,
                "user_agent": request.headers.get("User-Agent"),
                "cookie": request.headers.get("Cookie"),
            }
        )
        response = web.Response(body=PNG_BYTES, headers={"Content-Type": "image/png; name=x"})
        response.set_cookie("tracker", "customer-a")
        return response

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def hops(self, request: web.Request) -> web.Response:
        left = int(request.match_info["left"])
        if left == 0:
            return await self.image(request)
        # Relative, as many servers send it: resolved against the URL that answered.
        raise web.HTTPFound(f"{left - 1}")

    async def declared_too_large(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = MAX_BYTES + 1
        await response.prepare(request)
        self.body_bytes_sent[request.path] = 0
        await self.released.wait()
        return response

    async def chunked_too_large(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        sent = 0
        try:
            while sent <= MAX_BYTES:
                await response.write(b"\0" * 4096)
                sent += 4096
        except ConnectionError:
            pass
        self.body_bytes_sent[request.path] = sent
        # Never finished: only a client that stops reading at the cap gets an answer.
        await self.released.wait()
        return response

    async def slow(self, request: web.Request) -> web.Response:
        await self.released.wait()
        return web.Response(body=PNG_BYTES, content_type="image/png")


def with_image_host(scenario: Callable[[ImageHost], Awaitable[T]]) -> T:
    async def main() -> T:
        host = ImageHost()
        await host.start()
        try:
            return await scenario(host)
        finally:
            await input_fetch.close_client()
            await host.stop()

    return asyncio.run(main())


def fetch_refusal(url: str, max_bytes: int = MAX_BYTES) -> str:
    """The message fetching ``url`` is refused with (the test fails if it is fetched)."""

    async def attempt() -> str:
        try:
            await fetch_reference(url, max_bytes=max_bytes)
        except InputFetchError as refusal:
            return refusal.message
        finally:
            await input_fetch.close_client()
        raise AssertionError(f"{url} was fetched")

    return asyncio.run(attempt())


@pytest.fixture
def loopback_allowed(settings: Any) -> None:
    settings.INPUT_FETCH_PRIVATE_HOSTS = ["127.0.0.1"]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a session fails the test: these refusals must come before I/O."""

    def refuse() -> None:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(input_fetch, "get_session", refuse)


# --- Fetching -------------------------------------------------------------------------------


def test_it_fetches_the_bytes_and_content_type_from_an_allowed_host(
    loopback_allowed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy from the environment would swallow the request: it must be ignored.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    async def scenario(host: ImageHost) -> None:
        first = await fetch_reference(host.url("/image.png"), max_bytes=MAX_BYTES)
        second = await fetch_reference(host.url("/image.png"), max_bytes=MAX_BYTES)
        assert first == second == (PNG_BYTES, "image/png")
        assert [r["user_agent"] for r in host.image_requests] == [input_fetch.USER_AGENT] * 2

    with_image_host(scenario)


def test_no_fetch_carries_cookies_another_was_given(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # By name: a cookie jar keeps no cookies for a bare IP, so only a name proves this.
    settings.INPUT_FETCH_PRIVATE_HOSTS = ["images.example.test"]
    inner = FakeResolver({"images.example.test": ["127.0.0.1"]})
    monkeypatch.setattr(input_fetch, "_inner_resolver", lambda: inner)

    async def scenario(host: ImageHost) -> None:
        url = host.url("/image.png", host="images.example.test")
        for _ in range(2):
            await fetch_reference(url, max_bytes=MAX_BYTES)
        assert [r["cookie"] for r in host.image_requests] == [None, None]

    with_image_host(scenario)


def test_it_refuses_loopback_that_is_not_allowed() -> None:
    async def scenario(host: ImageHost) -> None:
        with pytest.raises(InputFetchError, match="non-public address"):
            await fetch_reference(host.url("/image.png", scheme="https"), max_bytes=MAX_BYTES)
        assert host.image_requests == []

    with_image_host(scenario)


def test_it_refuses_a_final_answer_that_is_not_200(loopback_allowed: None) -> None:
    async def scenario(host: ImageHost) -> None:
        with pytest.raises(InputFetchError) as refusal:
            await fetch_reference(host.url("/missing.png"), max_bytes=MAX_BYTES)
        assert refusal.value.message == "The image URL answered HTTP 404."

    with_image_host(scenario)


# --- Redirects ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "refused"), [(["127.0.0.1"], True), (["127.0.0.1", "127.0.0.2"], False)]
)
def test_each_redirect_is_checked_before_it_is_followed(
    settings: Any, allowed: list[str], refused: bool
) -> None:
    settings.INPUT_FETCH_PRIVATE_HOSTS = allowed

    async def scenario(host: ImageHost) -> None:
        elsewhere = host.url("/image.png", host="127.0.0.2")
        start = str(URL(host.url("/redirect")).with_query(to=elsewhere))
        if refused:
            with pytest.raises(InputFetchError) as refusal:
                await fetch_reference(start, max_bytes=MAX_BYTES)
            assert refusal.value.message.startswith("The image URL's redirect points to a")
            assert host.image_requests == []
        else:
            assert await fetch_reference(start, max_bytes=MAX_BYTES) == (PNG_BYTES, "image/png")
            assert [r["reached"] for r in host.image_requests] == ["127.0.0.2"]

    with_image_host(scenario)


def test_it_follows_three_redirects_and_refuses_a_fourth(loopback_allowed: None) -> None:
    async def scenario(host: ImageHost) -> None:
        fetched = await fetch_reference(host.url("/hops/3"), max_bytes=MAX_BYTES)
        assert fetched == (PNG_BYTES, "image/png")
        with pytest.raises(InputFetchError, match="redirected more than 3 times"):
            await fetch_reference(host.url("/hops/4"), max_bytes=MAX_BYTES)
        assert len(host.image_requests) == 1

    with_image_host(scenario)


# --- Size and time --------------------------------------------------------------------------


def test_a_declared_length_over_the_cap_is_refused_before_the_body(
    loopback_allowed: None,
) -> None:
    # The server sends the headers and then nothing: a client reading the body would wait
    # until its timeout and be refused for that instead.
    async def scenario(host: ImageHost) -> None:
        with pytest.raises(InputFetchError) as refusal:
            await fetch_reference(host.url("/declared-too-large"), max_bytes=MAX_BYTES)
        assert refusal.value.message == f"The image at the URL is larger than {MAX_BYTES} bytes."
        assert host.body_bytes_sent == {"/declared-too-large": 0}

    with_image_host(scenario)


def test_a_chunked_body_is_refused_once_it_passes_the_cap(loopback_allowed: None) -> None:
    # The server sends just past the cap and never ends the body: only a client that stops
    # counting at the cap is refused for size rather than time.
    async def scenario(host: ImageHost) -> None:
        with pytest.raises(InputFetchError) as refusal:
            await fetch_reference(host.url("/chunked-too-large"), max_bytes=MAX_BYTES)
        assert refusal.value.message == f"The image at the URL is larger than {MAX_BYTES} bytes."

    with_image_host(scenario)


def test_a_body_at_the_cap_is_accepted(loopback_allowed: None) -> None:
    async def scenario(host: ImageHost) -> None:
        fetched = await fetch_reference(host.url("/image.png"), max_bytes=len(PNG_BYTES))
        assert fetched[0] == PNG_BYTES
        with pytest.raises(InputFetchError, match="larger than"):
            await fetch_reference(host.url("/image.png"), max_bytes=len(PNG_BYTES) - 1)

    with_image_host(scenario)


def test_a_slow_host_is_given_up_on(settings: Any, loopback_allowed: None) -> None:
    settings.INPUT_FETCH_TIMEOUT_SECONDS = 1

    async def scenario(host: ImageHost) -> None:
        with pytest.raises(InputFetchError) as refusal:
            await fetch_reference(host.url("/slow"), max_bytes=MAX_BYTES)
        assert refusal.value.message == "The image URL did not deliver the image within 1 second."

    with_image_host(scenario)


# --- URLs refused before any connection --------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://localhost/x.png", "local host"),
        ("https://localhost/x.png", "local host"),
        ("https://LOCALHOST./x.png", "local host"),
        ("https://images.localhost/x.png", "local host"),
        ("https://printer.local/x.png", "local host"),
        ("https://metadata.google.internal/computeMetadata/v1/", "local host"),
        ("https://127.0.0.2/x.png", "non-public address"),
        ("https://10.0.0.1/x.png", "non-public address"),
        ("https://192.168.1.1/x.png", "non-public address"),
        ("https://172.16.0.1/x.png", "non-public address"),
        ("https://169.254.169.254/latest/meta-data/", "non-public address"),
        ("https://100.64.0.1/x.png", "non-public address"),
        ("https://0.0.0.0/x.png", "non-public address"),
        ("https://224.0.0.1/x.png", "non-public address"),
        ("https://240.0.0.1/x.png", "non-public address"),
        ("https://[::1]/x.png", "non-public address"),
        ("https://[::]/x.png", "non-public address"),
        ("https://[fe80::1]/x.png", "non-public address"),
        ("https://[fc00::1]/x.png", "non-public address"),
        ("https://[ff02::1]/x.png", "non-public address"),
        ("https://[::ffff:127.0.0.1]/x.png", "non-public address"),
        ("https://[::ffff:169.254.169.254]/x.png", "non-public address"),
        ("https://[2002:a00:1::]/x.png", "non-public address"),  # 6to4 of 10.0.0.1
        ("https://[64:ff9b::a9fe:a9fe]/x.png", "non-public address"),  # NAT64 of metadata
        ("https://[fe80::1%25eth0]/x.png", "IPv6 zone"),
        ("https://127.1/x.png", "not a valid address"),
        ("https://2130706433/x.png", "not a valid address"),
        ("https://0x7f.0.0.1/x.png", "not a valid address"),
        ("https://user:pass@example.com/x.png", "user name or password"),
        ("https://user@example.com/x.png", "user name or password"),
        ("ftp://example.com/x.png", "must be an https:// URL"),
        ("file:///etc/passwd", "must be an https:// URL"),
        ("example.com/x.png", "must be an https:// URL"),
        ("http://8.8.8.8/x.png", "must be an https:// URL"),
        ("http://example.com/x.png", "must be an https:// URL"),
        ("https:///x.png", "no host"),
        ("https://example.com/" + "a" * 2048, "longer than 2048 characters"),
    ],
)
def test_it_refuses_urls_it_must_not_fetch(
    loopback_allowed: None, no_network: None, url: str, why: str
) -> None:
    with pytest.raises(InputFetchError) as refusal:
        check_reference_url(url)
    assert why in refusal.value.message
    assert why in fetch_refusal(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://8.8.8.8/x.png",
        "https://[2606:4700::1111]/x.png",
        "https://[::ffff:8.8.8.8]/x.png",
        "https://images.example.com/a.png?signature=abc#part",
        "https://example.com/" + "a" * (2048 - len("https://example.com/")),
        "http://127.0.0.1:8000/x.png",
    ],
)
def test_it_accepts_public_https_urls_and_allowed_hosts(loopback_allowed: None, url: str) -> None:
    check_reference_url(url)


def test_an_allowed_name_matches_however_it_is_spelled(settings: Any) -> None:
    settings.INPUT_FETCH_PRIVATE_HOSTS = ["Storage.Internal", "[::1]"]
    check_reference_url("http://storage.internal./x.png")
    check_reference_url("http://[0:0::1]/x.png")
    with pytest.raises(InputFetchError):
        check_reference_url("http://other.internal/x.png")


# --- The resolver ---------------------------------------------------------------------------


class FakeResolver(AbstractResolver):
    """Resolves each name to the addresses given, as aiohttp's resolvers report them."""

    def __init__(self, addresses: dict[str, list[str]]) -> None:
        self.addresses = addresses
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.addresses[host]
        ]

    async def close(self) -> None:
        self.closed = True


MIXED = ["10.0.0.5", "93.184.215.14", "::1", "2606:2800:21f:cb07::1", "169.254.169.254"]
PRIVATE_ONLY = ["10.0.0.5", "127.0.0.1", "::ffff:192.168.0.1", "fe80::1%eth0", "100.64.1.1"]


def resolve_with(addresses: dict[str, list[str]], host: str) -> list[str]:
    async def resolve() -> list[str]:
        resolver = PublicAddressResolver(FakeResolver(addresses))
        return [result["host"] for result in await resolver.resolve(host, 443)]

    return asyncio.run(resolve())


def test_the_resolver_keeps_only_public_addresses() -> None:
    kept = resolve_with({"mixed.example.com": MIXED}, "mixed.example.com")
    assert kept == ["93.184.215.14", "2606:2800:21f:cb07::1"]


def test_the_resolver_refuses_a_name_with_only_private_addresses() -> None:
    with pytest.raises(NoPublicAddressError):
        resolve_with({"inside.example.com": PRIVATE_ONLY}, "inside.example.com")


def test_the_resolver_keeps_every_address_of_an_allowed_name(settings: Any) -> None:
    settings.INPUT_FETCH_PRIVATE_HOSTS = ["inside.example.com"]
    kept = resolve_with({"inside.example.com.": PRIVATE_ONLY}, "inside.example.com.")
    assert kept == PRIVATE_ONLY


def test_the_resolver_closes_what_it_wraps() -> None:
    inner = FakeResolver({})
    asyncio.run(PublicAddressResolver(inner).close())
    assert inner.closed


@pytest.mark.parametrize(("allowed", "refused"), [([], True), (["images.example.test"], False)])
def test_fetches_resolve_names_through_the_public_only_resolver(
    settings: Any, monkeypatch: pytest.MonkeyPatch, allowed: list[str], refused: bool
) -> None:
    # A public-looking name whose DNS answer is our own loopback.
    settings.INPUT_FETCH_PRIVATE_HOSTS = allowed
    inner = FakeResolver({"images.example.test": ["127.0.0.1"]})
    monkeypatch.setattr(input_fetch, "_inner_resolver", lambda: inner)

    async def scenario(host: ImageHost) -> None:
        scheme = "https" if refused else "http"
        url = host.url("/image.png", host="images.example.test", scheme=scheme)
        if refused:
            with pytest.raises(InputFetchError) as refusal:
                await fetch_reference(url, max_bytes=MAX_BYTES)
            assert refusal.value.message == (
                "The image URL's host resolves only to private addresses."
            )
            assert host.image_requests == []
        else:
            assert await fetch_reference(url, max_bytes=MAX_BYTES) == (PNG_BYTES, "image/png")

    with_image_host(scenario)
