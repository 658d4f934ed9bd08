"""Where a webhook may be sent: to public addresses only, unless the operator allows more.

A project's admin names a webhook's URL; without this check notify would POST wherever it
points — the cloud's metadata service, an admin port, anything on the deployment's own
network. The host is looked up once, every address it has must be public (globally routable),
and the request goes to the address that was checked, the URL's host kept in ``Host`` and in
TLS (a second lookup could answer differently: DNS rebinding).
``DARKROOM_NOTIFY_WEBHOOK_PRIVATE_TARGETS`` lets a deployment reach receivers on its own
network (off by default, `make up` included; the tests turn it on for their receivers).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any

import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class NotPublic(Exception):
    """The webhook's host is, or resolves to, an address that is not public."""


@dataclass(frozen=True)
class Target:
    """A webhook request pinned to the address that was checked."""

    url: str
    headers: dict[str, str]
    extensions: dict[str, Any] = field(default_factory=dict)


async def pinned(url: str, *, private_allowed: bool) -> Target:
    """``url`` with its host replaced by a checked address; raises ``NotPublic``, or
    ``OSError`` when the host cannot be looked up now."""
    parsed = httpx.URL(url)
    host = parsed.host
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [ipaddress.ip_address(info[4][0]) for info in found]
        if not addresses:
            raise OSError(f"{host} has no address")
    if not private_allowed:
        for address in addresses:
            if not _public(address):
                raise NotPublic(
                    f"{host} is {address}, not a public address (a deployment's own network"
                    " is reached only with DARKROOM_NOTIFY_WEBHOOK_PRIVATE_TARGETS)"
                )
    return Target(
        url=str(parsed.copy_with(host=str(addresses[0]))),
        headers={"Host": parsed.netloc.decode("ascii")},
        extensions={}
        if literal is not None or parsed.scheme != "https"
        else {"sni_hostname": host},
    )


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known prefix: the last 32 bits are IPv4
_NEVER = (
    ipaddress.ip_network("64:ff9b:1::/48"),  # NAT64 prefixes for a network's own use
    ipaddress.ip_network("::/96"),  # IPv4-compatible (deprecated): ::169.254.169.254
)


def _public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4 address in IPv6 clothing is judged as the IPv4 address it reaches:
        # ::ffff:10.0.0.1 (mapped), 2002:a9fe:a9fe:: (6to4), 64:ff9b::a9fe:a9fe (NAT64).
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            address = embedded
        elif any(address in network for network in _NEVER):
            return False
    return address.is_global and not address.is_multicast


def _literal(host: str) -> Address | None:
    """The address a URL names directly, if it names one."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
