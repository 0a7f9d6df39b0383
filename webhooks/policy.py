"""Which URLs may be webhook endpoints. No I/O: a name's addresses are judged when the sender
resolves it (server/addresses.py's resolver), at every delivery.

On a public site (WEBHOOK_ALLOW_PRIVATE_ADDRESSES false, the default unless the site itself runs
on loopback or DEBUG is on) an endpoint must be https, and its host a public name or address. In
the embedded default a developer may use http and loopback or private addresses, to receive on
their own machine.
"""

from __future__ import annotations

from django.conf import settings
from yarl import URL

from server import addresses

URL_MAX_CHARS = 2000


class EndpointUrlError(Exception):
    """A URL that may not be an endpoint; ``message`` is for its owner, as it is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def private_addresses_allowed() -> bool:
    return bool(settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES)


def check_endpoint_url(url: str) -> str:
    """``url`` as it will be stored and posted to, or EndpointUrlError saying what is wrong.
    Parsed by yarl, the parser aiohttp connects with, so what is checked is what is reached."""
    subject = "The endpoint URL"
    url = url.strip()
    if not url:
        raise EndpointUrlError(f"{subject} is empty.")
    if len(url) > URL_MAX_CHARS:
        raise EndpointUrlError(f"{subject} is longer than {URL_MAX_CHARS} characters.")
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in url):
        raise EndpointUrlError(f"{subject} contains spaces or control characters.")
    try:
        parsed = URL(url)
        port = parsed.port  # a bad port only fails when it is read
    except (ValueError, TypeError):
        raise EndpointUrlError(f"{subject} is not a valid URL.") from None
    allowed = private_addresses_allowed()
    scheme = parsed.scheme.lower()
    if scheme not in ("https", "http") or (scheme == "http" and not allowed):
        raise EndpointUrlError(f"{subject} must start with https://.")
    if parsed.user is not None or parsed.password is not None:
        raise EndpointUrlError(f"{subject} must not contain a user name or password.")
    if parsed.fragment:
        raise EndpointUrlError(f"{subject} must not have a #fragment: it is never sent.")
    host = addresses.normal_host(parsed.raw_host or "")
    if not host:
        raise EndpointUrlError(f"{subject} has no host.")
    if port is None or not 0 < port < 65536:
        raise EndpointUrlError(f"{subject} has an invalid port.")
    if not allowed:
        refusal = addresses.host_refusal(host)
        if refusal is not None:
            raise EndpointUrlError(f"{subject} {refusal}")
        if "." not in host and addresses.ip_or_none(host) is None:
            raise EndpointUrlError(f"{subject} names a local host, not a public one.")
    return str(parsed)
