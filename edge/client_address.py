"""Who the client is: the TCP peer, or behind a trusted reverse proxy the address it forwarded.

``X-Forwarded-For`` is read only when the TCP peer is one of ``trusted_proxies``; then its hops are
walked from the right (each proxy appends the address it got the request from), past every trusted
proxy, and the first address that is not one is the client.  Anything a client writes itself is to
the left of that and never read.  With no trusted proxies (the default) the header is ignored.
Both servers (token API and portal) take the client address from :func:`client_address` for every
per-address limit.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import hdrs, web

__all__ = ["TrustedProxies", "client_address", "parse_address"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

UNKNOWN = "unknown"


def parse_address(text: str) -> IPAddress | None:
    """An address as a hop or peer writes it (``1.2.3.4``, ``1.2.3.4:80``, ``::1``, ``[::1]:80``);
    IPv4-mapped IPv6 addresses come back as IPv4.  ``None`` when it is not an address."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """Addresses and networks (``10.0.0.1``, ``10.0.0.0/8``, ``fd00::/8``) whose ``X-Forwarded-For``
    is believed.

    :raises ValueError: an entry is neither an address nor a network.
    """

    __slots__ = ("_networks",)

    def __init__(self, entries: Iterable[str], *, setting: str = "trusted_proxies") -> None:
        networks: list[_Network] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{setting}: {entry!r} is not an IP address or network") from None
        self._networks = tuple(networks)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __contains__(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self._networks)


def client_address(request: web.BaseRequest, trusted: TrustedProxies) -> str:
    """The client's address for ``request`` (see the module docstring); ``"unknown"`` without a peer."""
    peer_text = request.remote
    if not peer_text:
        return UNKNOWN
    peer = parse_address(peer_text)
    if peer is None:
        return peer_text  # a Unix socket path: nothing to forward through
    if peer not in trusted:
        return str(peer)
    client = peer
    hops = [hop for value in request.headers.getall(hdrs.X_FORWARDED_FOR, ()) for hop in value.split(",")]
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            break  # a garbled hop: nothing left of it can be believed
        client = address
        if address not in trusted:
            break
    return str(client)
