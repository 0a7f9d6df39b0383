"""Which network addresses a customer's URL may make us connect to (server-side request forgery).

Shared by the two places that open connections to hosts a customer names: the reference-image
fetcher (generation/input_fetch.py) and the webhook sender (webhooks/sender.py). Each keeps its
own rules about schemes and exemptions; what is here is the address policy itself:

- ``host_refusal`` judges a URL's host without any I/O: an IP literal that is not public, an
  IPv6 zone, a legacy IPv4 spelling the C resolver would read as an address (127.1,
  2130706433), a local-only name (localhost, *.local, *.internal);
- ``PublicAddressResolver`` wraps aiohttp's resolver and keeps only the public addresses a name
  resolves to, so aiohttp connects to an address that was checked (whatever DNS answers next);
  a name with none is refused with ``NoPublicAddressError``.

It imports aiohttp's resolver interface only, to implement it: it sends no request (the import
contract in pyproject.toml names this exemption).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LOCAL_NAMES = ("localhost",)
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class NoPublicAddressError(OSError):
    """A name resolved only to addresses we do not connect to. An OSError so that aiohttp
    reports it as the DNS failure it is (ClientConnectorDNSError, carrying this as os_error)."""


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


def host_refusal(host: str) -> str | None:
    """Why we would not connect to ``host`` (a URL's host, see ``normal_host``), as the end of a
    sentence whose subject the caller names ("The image URL " + this), or None when only its
    resolved addresses are left to judge (a name) or it is a public address."""
    if "%" in host:
        return "has an IPv6 zone in its host, which we do not accept."
    address = ip_or_none(host)
    if address is None:
        if _legacy_ipv4(host):
            # 127.1, 2130706433, 0x7f.0.0.1: the C resolver reads these as addresses.
            return "has a host that is not a valid address."
        if host in _LOCAL_NAMES or host.endswith(_LOCAL_SUFFIXES):
            return "names a local host, not a public one."
        return None
    if not is_public_address(address):
        return "points to a private, loopback, link-local or otherwise non-public address."
    return None


def normal_host(host: str) -> str:
    """A URL's host as compared here: no IPv6 brackets, no trailing dot, lower case."""
    return host.strip("[]").rstrip(".").lower()


def ip_or_none(host: str) -> IPAddress | None:
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


def host_listed(host: str, entries: Iterable[str]) -> bool:
    """Whether ``host`` (normalised) is one of ``entries``: a name, or an IP in any spelling."""
    address = ip_or_none(host)
    for entry in entries:
        entry = normal_host(entry)
        if entry == host or (address is not None and ip_or_none(entry) == address):
            return True
    return False


class PublicAddressResolver(AbstractResolver):
    """Wraps a resolver and keeps only the public addresses a name resolves to, so that every
    connection reaches a public address whatever DNS says. A name resolving to none is refused
    with NoPublicAddressError. Names for which ``may_be_private`` says true keep all their
    addresses. (IP literals never reach a resolver: ``host_refusal`` judges them.)"""

    def __init__(self, inner: AbstractResolver) -> None:
        self._inner = inner

    def may_be_private(self, host: str) -> bool:
        """Whether the operator allows ``host`` (normalised) to resolve to private addresses.
        None here; subclasses read their own settings (at each resolution, so a changed
        setting applies at once)."""
        return False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self.may_be_private(normal_host(host)):
            return results
        public = [r for r in results if _resolved_public(r["host"])]
        if not public:
            raise NoPublicAddressError(f"{host} resolves to no public address")
        return public

    async def close(self) -> None:
        await self._inner.close()


def _resolved_public(host: str) -> bool:
    address = ip_or_none(host)
    return address is not None and is_public_address(address)
