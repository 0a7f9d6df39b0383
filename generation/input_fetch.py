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
are exempt from the address rules and may be fetched over http. The address rules themselves
(what is public, the resolver that keeps only public addresses) are server/addresses.py's, shared
with the webhook sender.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp.abc import AbstractResolver
from django.conf import settings
from yarl import URL

from server import addresses
from server.addresses import NoPublicAddressError

from .loop_sessions import SessionPerLoop

logger = logging.getLogger(__name__)

URL_MAX_CHARS = 2048
MAX_REDIRECTS = 3
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}
_CHUNK_BYTES = 64 * 1024
USER_AGENT = "SeedreamAPI-ReferenceFetch/1.0"

__all__ = [
    "InputFetchError",
    "NoPublicAddressError",
    "PublicAddressResolver",
    "check_reference_url",
    "fetch_reference",
]


class InputFetchError(Exception):
    """A reference URL we will not or could not fetch; ``message`` is for the customer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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
    host = addresses.normal_host(parsed.raw_host or "")
    if not host:
        raise InputFetchError(f"{subject} has no host.")
    allowed = _private_allowed(host)
    if not allowed:
        refusal = addresses.host_refusal(host)
        if refusal is not None:
            raise InputFetchError(f"{subject} {refusal}")
    if scheme == "http" and not allowed:
        raise InputFetchError(f"{subject} must be an https:// URL.")
    return parsed


def _private_allowed(host: str) -> bool:
    """Whether the operator listed ``host`` (a name, or an IP in any spelling) as fetchable
    although it may be private."""
    return addresses.host_listed(host, settings.INPUT_FETCH_PRIVATE_HOSTS)


class PublicAddressResolver(addresses.PublicAddressResolver):
    """The shared public-only resolver (server/addresses.py); names listed in
    INPUT_FETCH_PRIVATE_HOSTS keep all their addresses."""

    def may_be_private(self, host: str) -> bool:
        return _private_allowed(host)


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
