"""Webhooks go to public addresses only, pinned to the address that was checked."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from darkroom.notify.targets import NotPublic, pinned

PRIVATE = [
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",
    "http://10.1.2.3/hook",
    "http://192.168.0.10/hook",
    "http://169.254.169.254/latest/meta-data/",  # a cloud's metadata service
    "http://100.64.0.1/hook",
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",
    "http://[::1]:9000/hook",
    "http://[fd00::1]/hook",
    "http://[::ffff:10.0.0.1]/hook",  # an IPv4 address in IPv6 clothing
    "http://[2002:a9fe:a9fe::1]/hook",  # 6to4 of 169.254.169.254
    "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254
    "http://[64:ff9b:1::a9fe:a9fe]/hook",  # a NAT64 prefix for a network's own use
    "http://[::a9fe:a9fe]/hook",  # IPv4-compatible (deprecated)
]


@pytest.mark.parametrize("url", PRIVATE)
async def test_a_private_loopback_or_link_local_target_is_refused(url: str) -> None:
    with pytest.raises(NotPublic, match="not a public address"):
        await pinned(url, private_allowed=False)


async def test_the_operator_may_allow_the_deployments_own_network() -> None:
    target = await pinned("http://127.0.0.1:8080/hook?x=1", private_allowed=True)
    assert target.url == "http://127.0.0.1:8080/hook?x=1"
    assert target.headers == {"Host": "127.0.0.1:8080"}


@pytest.mark.parametrize("host", ["[64:ff9b::808:808]", "[2002:808:808::1]", "[2606:4700::1111]"])
async def test_a_public_address_in_ipv6_is_allowed(host: str) -> None:
    target = await pinned(f"https://{host}/hook", private_allowed=False)
    assert target.url == f"https://{host}/hook"


async def test_a_public_address_is_used_as_it_is() -> None:
    target = await pinned("https://93.184.216.34/hook", private_allowed=False)
    assert target.url == "https://93.184.216.34/hook"
    assert target.extensions == {}  # no name to check a certificate against but the address


def _resolving(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> list[str]:
    asked: list[str] = []

    async def getaddrinfo(self: Any, host: str, port: int, **_: Any) -> list[Any]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    monkeypatch.setattr(type(asyncio.get_running_loop()), "getaddrinfo", getaddrinfo)
    return asked


async def test_a_name_is_looked_up_once_and_the_request_pinned_to_its_checked_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = _resolving(monkeypatch, "93.184.216.34")
    target = await pinned("https://hooks.example.org/darkroom", private_allowed=False)
    assert asked == ["hooks.example.org"]
    assert target.url == "https://93.184.216.34/darkroom"
    assert target.headers == {"Host": "hooks.example.org"}
    assert target.extensions == {"sni_hostname": "hooks.example.org"}  # TLS checks the name


async def test_a_name_with_any_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _resolving(monkeypatch, "93.184.216.34", "10.0.0.7")
    with pytest.raises(NotPublic, match=r"is 10\.0\.0\.7,"):
        await pinned("https://hooks.example.org/darkroom", private_allowed=False)
