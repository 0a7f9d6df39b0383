"""A key's spend controls that are the key's own business: which models it may use and which
addresses it may be used from. (Its spend cap is counted by billing: billing/limits.py.)

Both lists are optional; empty means any. They are checked before anything is counted or held:
an address outside the list is refused when the key is authenticated, a model outside it before
the request is admitted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from .models import ApiKey

# Bounded, so a key's row (loaded on every request) stays small and a check stays cheap.
MAX_NETWORKS = 50
MAX_MODELS = 50

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class InvalidControl(ValueError):
    """A value a key's controls cannot take; the message says which and why."""


def model_allowed(api_key: ApiKey, model_id: str) -> bool:
    return not api_key.allowed_models or model_id in api_key.allowed_models


def address_allowed(api_key: ApiKey, address: str | None) -> bool:
    """Whether ``address`` (the client's IP, as the server saw it) is inside one of the key's
    networks. An address that cannot be read is outside every list."""
    if not api_key.allowed_networks:
        return True
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:203.0.113.7 is 203.0.113.7
    return any(ip in ipaddress.ip_network(network) for network in api_key.allowed_networks)


def parse_networks(lines: Iterable[str]) -> list[str]:
    """The networks a customer typed (IPs or CIDR, one per line or comma-separated), checked and
    written canonically (``203.0.113.7`` becomes ``203.0.113.7/32``); InvalidControl names the
    first that is not one, or a network with host bits set (``10.0.0.1/8``: meant 10.0.0.0/8?)."""
    networks: list[str] = []
    for raw in lines:
        text = raw.strip()
        if not text:
            continue
        try:
            network: Network = ipaddress.ip_network(text, strict=True)
        except ValueError:
            try:
                loose = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise InvalidControl(
                    f"{text[:60]!r} is not an IP address or a CIDR network (like 203.0.113.0/24)."
                ) from None
            raise InvalidControl(
                f"{text[:60]!r} has host bits set: did you mean {loose}?"
            ) from None
        if str(network) not in networks:
            networks.append(str(network))
    if len(networks) > MAX_NETWORKS:
        raise InvalidControl(f"A key takes at most {MAX_NETWORKS} networks.")
    return networks


def parse_models(chosen: Iterable[str], known: Iterable[str]) -> list[str]:
    """The model ids chosen, each one a model of the catalog (``known``)."""
    known_ids = set(known)
    models: list[str] = []
    for model_id in chosen:
        if model_id not in known_ids:
            raise InvalidControl(f"{model_id[:64]!r} is not one of our models.")
        if model_id not in models:
            models.append(model_id)
    if len(models) > MAX_MODELS:
        raise InvalidControl(f"A key takes at most {MAX_MODELS} models.")
    return models
