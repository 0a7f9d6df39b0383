"""Fetching a customer's reference image from the URL they sent (image edits), safely.

The URL is the customer's, so it is treated as hostile: it must not make us reach our own
network (server-side request forgery). ``check_reference_url`` refuses, without any I/O, a URL
that is not https, carries credentials, or names a loopback, private, link-local, metadata or
otherwise non-public address or a local-only name. ``fetch_reference`` checks the URL, then
fetches it through a session whose resolver drops every address that is not globally routable,
so whatever a name resolves to (now, or after a DNS change between check and connect) only a
public address is ever connected to. Redirects are followed by hand, each Location checked
again; the body is capped, the whole fetch bounded in time. Every refusal is an
``InputFetchError`` whose message can be shown to the customer as it is.

Hosts listed in INPUT_FETCH_PRIVATE_HOSTS (an operator's own storage, the tests' loopback server)
are exempt from the address rules and may be fetched over http.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from django.conf import settings
from yarl import URL

from .loop_sessions import SessionPerLoop

logger = logging.getLogger(__name__)

URL_MAX_CHARS = 2048
MAX_REDIRECTS = 3
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}
_LOCAL_NAMES = ("localhost",)
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_CHUNK_BYTES = 64 * 1024
USER_AGENT = "SeedreamAPI-ReferenceFetch/1.0"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class InputFetchError(Exception):
    """A reference URL we will not or could not fetch; ``message`` is for the customer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoPublicAddressError(OSError):
    """A name resolved only to addresses we do not connect to. An OSError so that aiohttp
    reports it as the DNS failure it is (ClientConnectorDNSError, carrying this as os_error)."""


def check_reference_url(url: str) -> None:
    """Raise InputFetchError unless ``url`` is one we may fetch. No I/O: a name's addresses
    are checked when it is resolved (``PublicAddressResolver``)."""
    _checked_url(url)


def _checked_url(url: str, subject: str = "The image URL") -> URL:
    """``url`` parsed by the same parser aiohttp connects with (so what is checked is what is
    fetched), or InputFetchError saying what is wrong with ``subject``."""
    if len(url) > URL_MAX_CHARS:
        raise InputFetchError(f"{subject} is longer than {URL_MAX_CHARS} characters.")
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        raise InputFetchError(f"{subject} is not a valid URL.") from None
    scheme = parsed.scheme.lower()
    if scheme not in ("https", "http"):
        raise InputFetchError(f"{subject} must be an https:// URL.")
    if parsed.user is not None or parsed.password is not None:
        raise InputFetchError(f"{subject} must not contain a user name or password.")
    host = _normal_host(parsed.raw_host or "")
    if not host:
        raise InputFetchError(f"{subject} has no host.")
    allowed = _private_allowed(host)
    if not allowed:
        _check_host(host, subject)
    if scheme == "http" and not allowed:
        raise InputFetchError(f"{subject} must be an https:// URL.")
    return parsed


def _check_host(host: str, subject: str) -> None:
    if "%" in host:
        raise InputFetchError(f"{subject} has an IPv6 zone in its host, which we do not accept.")
    address = _ip_or_none(host)
    if address is None:
        if _legacy_ipv4(host):
            # 127.1, 2130706433, 0x7f.0.0.1: the C resolver reads these as addresses.
            raise InputFetchError(f"{subject} has a host that is not a valid address.")
        if host in _LOCAL_NAMES or host.endswith(_LOCAL_SUFFIXES):
            raise InputFetchError(f"{subject} names a local host, not a public one.")
        return
    if not is_public_address(address):
        raise InputFetchError(
            f"{subject} points to a private, loopback, link-local or otherwise non-public address."
        )


def is_public_address(address: IPAddress) -> bool:
    """Whether ``address`` is globally routable: not loopback, private, shared (CGNAT),
    link-local (cloud metadata's 169.254.169.254 among them), unspecified, multicast or reserved.
    An IPv6 address carrying an IPv4 one (IPv4-mapped, 6to4, NAT64) is judged by the IPv4 one,
    which is where a connection to it ends up."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return False
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(embedded)
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
    )


def _normal_host(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


def _ip_or_none(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _legacy_ipv4(host: str) -> bool:
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def _private_allowed(host: str) -> bool:
    """Whether the operator listed ``host`` (a name, or an IP in any spelling) as fetchable
    although it may be private."""
    address = _ip_or_none(host)
    for entry in settings.INPUT_FETCH_PRIVATE_HOSTS:
        entry = _normal_host(entry)
        if entry == host or (address is not None and _ip_or_none(entry) == address):
            return True
    return False


class PublicAddressResolver(AbstractResolver):
    """Wraps a resolver and keeps only the public addresses a name resolves to, so that every
    connection (redirects' included) reaches a public address whatever DNS says. A name resolving
    to none is refused with NoPublicAddressError. Names listed in INPUT_FETCH_PRIVATE_HOSTS keep
    all their addresses. (IP literals never reach a resolver: ``check_reference_url`` judges
    them.)"""

    def __init__(self, inner: AbstractResolver) -> None:
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if _private_allowed(_normal_host(host)):
            return results
        public = [r for r in results if _resolved_public(r["host"])]
        if not public:
            raise NoPublicAddressError(f"{host} resolves to no public address")
        return public

    async def close(self) -> None:
        await self._inner.close()


def _resolved_public(host: str) -> bool:
    address = _ip_or_none(host)
    return address is not None and is_public_address(address)


def _inner_resolver() -> AbstractResolver:
    # aiohttp's own choice: getaddrinfo in a thread, or aiodns when installed.
    return aiohttp.DefaultResolver()


# Its own sessions, not generation.upstream's: a different resolver, and no connection to a
# customer's host is ever pooled beside the upstream's (one per event loop: loop_sessions.py).
def _new_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        resolver=PublicAddressResolver(_inner_resolver()),
        limit=settings.UPSTREAM_MAX_CONNECTIONS,
        limit_per_host=0,
        # Resolved (and filtered) at each fetch: the operator's list is read each time, and a
        # reference image is fetched once, so a cache would save little.
        use_dns_cache=False,
        # One fetch per URL: no idle connections to customers' hosts are kept open.
        force_close=True,
    )
    # No proxy settings from the environment, no cookies kept between customers' fetches. The
    # bytes counted against the cap are the bytes received: nothing is decompressed here.
    # Time is bounded per fetch (INPUT_FETCH_TIMEOUT_SECONDS, read at each call).
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        raise_for_status=False,
        auto_decompress=False,
        headers={
            "User-Agent": USER_AGENT,
            "Accept": "image/*",
            "Accept-Encoding": "identity",
        },
    )


_sessions = SessionPerLoop(_new_session)


def get_session() -> aiohttp.ClientSession:
    """One pooled session per event loop (a server process has one; each Celery run its own)."""
    return _sessions.get()


async def close_client() -> None:
    await _sessions.close()


async def fetch_reference(url: str, *, max_bytes: int) -> tuple[bytes, str]:
    """The body at ``url`` and its content type (without parameters), fetched under the rules
    above; at most ``max_bytes`` bytes. Any failure is an InputFetchError."""
    target = _checked_url(url)
    timeout = settings.INPUT_FETCH_TIMEOUT_SECONDS
    try:
        async with asyncio.timeout(timeout):
            return await _fetch(target, max_bytes)
    except TimeoutError:
        unit = "second" if timeout == 1 else "seconds"
        raise InputFetchError(
            f"The image URL did not deliver the image within {timeout} {unit}."
        ) from None
    except aiohttp.ClientConnectorDNSError as exc:
        if isinstance(exc.os_error, NoPublicAddressError):
            raise InputFetchError(
                "The image URL's host resolves only to private addresses."
            ) from None
        raise InputFetchError("The image URL's host could not be found.") from None
    except aiohttp.ClientSSLError:
        raise InputFetchError("The image URL's TLS certificate could not be verified.") from None
    except aiohttp.ClientConnectorError:
        raise InputFetchError("The image URL's host could not be reached.") from None
    except aiohttp.InvalidURL:
        raise InputFetchError("The image URL is not a valid URL.") from None
    except aiohttp.ClientError as exc:
        logger.info("reference fetch from %s failed: %s", target.host, type(exc).__name__)
        raise InputFetchError("The image could not be fetched from the URL.") from None


async def _fetch(target: URL, max_bytes: int) -> tuple[bytes, str]:
    session = get_session()
    for _hop in range(MAX_REDIRECTS + 1):
        # No automatic redirects: each Location is checked before it is followed.
        async with session.get(target, allow_redirects=False) as response:
            if response.status in _REDIRECT_STATUSES and "Location" in response.headers:
                target = _redirect_target(target, response.headers["Location"])
                continue
            if response.status != 200:
                raise InputFetchError(f"The image URL answered HTTP {response.status}.")
            if (response.content_length or 0) > max_bytes:
                raise _too_large(max_bytes)
            body = await _read_capped(response, max_bytes)
            return body, response.content_type.lower()
    raise InputFetchError(f"The image URL redirected more than {MAX_REDIRECTS} times.")


def _redirect_target(current: URL, location: str) -> URL:
    try:
        joined = current.join(URL(location))
    except (ValueError, TypeError):
        raise InputFetchError("The image URL's redirect is not a valid URL.") from None
    return _checked_url(str(joined.with_fragment(None)), "The image URL's redirect")


async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The body, refused as soon as it passes ``max_bytes`` (whatever its length said)."""
    chunks = []
    received = 0
    async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
        received += len(chunk)
        if received > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(max_bytes: int) -> InputFetchError:
    return InputFetchError(f"The image at the URL is larger than {max_bytes} bytes.")
