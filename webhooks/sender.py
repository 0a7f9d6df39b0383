"""The only code that speaks HTTP to customers' webhook endpoints (an import contract in
pyproject.toml holds the rest of this app to that).

One POST per attempt, on a connection of its own: the URL is checked again (policy.py: the
setting may have changed since the endpoint was made), and the name is resolved through
server/addresses.py's resolver, which keeps only public addresses unless private ones are
allowed, so aiohttp connects only to an address that was checked. No redirects are followed, no
proxy or cookie is used, and the whole attempt, up to the answer's status line, must be done
within WEBHOOK_TIMEOUT_SECONDS. Nothing here raises: every failure is an Outcome with an error
fit for the owner's eyes (never a secret, never our internals).
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import time
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver
from django.conf import settings

from server import addresses

from . import policy
from .models import ERROR_MAX_CHARS, RESPONSE_EXCERPT_BYTES

logger = logging.getLogger(__name__)

USER_AGENT = "SeedreamAPI-Webhooks/1.0"


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str
    duration_ms: int
    response_excerpt: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class EndpointResolver(addresses.PublicAddressResolver):
    """Public addresses only, unless WEBHOOK_ALLOW_PRIVATE_ADDRESSES (read at each delivery)."""

    def may_be_private(self, host: str) -> bool:
        return policy.private_addresses_allowed()


def _inner_resolver() -> AbstractResolver:
    # aiohttp's own choice: getaddrinfo in a thread, or aiodns when installed.
    return aiohttp.DefaultResolver()


def post_sync(url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    """``post`` for synchronous callers (a Celery task): on an event loop of its own."""
    return asyncio.run(post(url, body, headers))


async def post(url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    """POST ``body`` (JSON) with ``headers`` to ``url``, under the rules above."""
    try:
        target = policy.check_endpoint_url(url)
    except policy.EndpointUrlError as refusal:
        return Outcome(None, _short(f"Refused: {refusal.message}"), 0)
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    started = time.monotonic()
    connector = aiohttp.TCPConnector(
        resolver=EndpointResolver(_inner_resolver()),
        # Resolved (and checked) at every attempt; never a connection kept for another.
        use_dns_cache=False,
        force_close=True,
    )
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    ) as session:
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                response = await session.post(
                    target,
                    data=body,
                    headers={
                        **headers,
                        "Content-Type": "application/json",
                        "User-Agent": USER_AGENT,
                        "Accept-Encoding": "identity",
                    },
                    allow_redirects=False,
                )
        except TimeoutError:
            unit = "second" if timeout == 1 else "seconds"
            return Outcome(None, f"No answer within {timeout} {unit}.", _ms_since(started))
        except aiohttp.ClientError as exc:
            return Outcome(None, _short(_describe(exc)), _ms_since(started))
        duration_ms = _ms_since(started)
        try:
            excerpt = b""
            # The first bytes of the answer, for the attempt log, while time is left: the
            # outcome is already decided by the status.
            async with asyncio.timeout_at(deadline):
                excerpt = await response.content.read(RESPONSE_EXCERPT_BYTES)
        except (TimeoutError, aiohttp.ClientError, ValueError):
            pass
        finally:
            response.close()
        return Outcome(response.status, "", duration_ms, _text(excerpt))


def _describe(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        if isinstance(exc.os_error, addresses.NoPublicAddressError):
            return "Refused: the endpoint's host resolves only to private addresses."
        return "The endpoint's host could not be found."
    if isinstance(exc, aiohttp.ClientSSLError):
        return "The endpoint's TLS certificate could not be verified."
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "Could not connect to the endpoint."
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "The endpoint closed the connection without answering."
    if isinstance(exc, aiohttp.InvalidURL):
        return "The endpoint URL is not a valid URL."
    logger.info("webhook delivery failed: %s", type(exc).__name__)
    return f"The request failed ({type(exc).__name__})."


def _text(excerpt: bytes) -> str:
    # Not final: a character cut in two at the end is left out rather than replaced. PostgreSQL
    # text cannot hold NUL; anything else is kept, undecodable bytes replaced.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return decoder.decode(excerpt, final=False).replace("\x00", "")[:RESPONSE_EXCERPT_BYTES]


def _short(error: str) -> str:
    return error[:ERROR_MAX_CHARS]


def _ms_since(started: float) -> int:
    return max(0, round((time.monotonic() - started) * 1000))
