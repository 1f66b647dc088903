"""Where a key may be used from: a browser or not, and which addresses.

Two per-key conditions on a request, beside the key's term (``key_term.py``):

- a request from a browser (it carries ``Origin`` or ``Sec-Fetch-Site``, which
  browsers set and scripts rarely do) is refused unless the key allows it
  (``allowBrowser``): keys belong on servers, where no page's visitor can read
  them;
- a key with an allowlist (``allowedCidrs``) works only from an address in
  one of its networks; without one, from anywhere.

Both depend on the request, not on the key alone, so the cached steady path
cannot answer them from a key's ``ends``: it steps aside and the full path
decides. Nothing here reads a request or the store.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "BROWSER_HEADERS",
    "MAX_CIDRS",
    "CidrError",
    "Network",
    "address_allowed",
    "networks_of",
    "normalized_cidrs",
    "sent_from_browser",
]

#: Headers only a browser sends on its own (lower case, as ASGI names them).
BROWSER_HEADERS = ("origin", "sec-fetch-site")

#: Most networks one key may list.
MAX_CIDRS = 100

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class CidrError(ValueError):
    """An allowlist entry that is not an IP network, or too many of them."""


def sent_from_browser(headers: Mapping[str, str]) -> bool:
    return any(headers.get(name) is not None for name in BROWSER_HEADERS)


def normalized_cidrs(values: Iterable[str]) -> list[str]:
    """The allowlist in canonical form (``10.0.0.0/8``, ``2001:db8::/32``), duplicates dropped.

    A bare address is its own network (``/32`` or ``/128``). Host bits set
    (``10.0.0.1/8``) are refused rather than silently widened or narrowed.
    """
    seen: dict[str, None] = {}
    for value in values:
        text = value.strip()
        try:
            network = ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            raise CidrError(f"allowedCidrs: {text!r} is not an IP address or network") from exc
        seen[str(network)] = None
    if len(seen) > MAX_CIDRS:
        raise CidrError(f"allowedCidrs: at most {MAX_CIDRS} networks per key")
    return list(seen)


def networks_of(cidrs: Sequence[str]) -> tuple[Network, ...]:
    """A stored allowlist, parsed once (per verification, not per request)."""
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


def address_allowed(networks: Sequence[Network], address: str | None) -> bool:
    """Whether ``address`` may use a key with allowlist ``networks`` (empty: any address).

    An unknown or unparsable address is never in an allowlist. An IPv4
    address seen as IPv6 (``::ffff:192.0.2.1``) is matched as the IPv4 one.
    """
    if not networks:
        return True
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)
