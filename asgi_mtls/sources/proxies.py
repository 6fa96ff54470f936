"""Which TCP peers may set certificate headers.

The decision rests on the *transport* peer, never on ``scope["client"]``: uvicorn's
proxy-header handling (on by default) rewrites ``scope["client"]`` from ``X-Forwarded-For``
before any middleware runs, so with ``--forwarded-allow-ips '*'`` any client could claim to be
the proxy.  ``asgi_mtls.uvicorn``'s protocol classes record the real peer in
``scope["extensions"]["asgi_mtls.peer"]``; on other servers a user may opt into
``scope["client"]`` (``trust_scope_client=True``) when that server does not rewrite it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

__all__ = ["PEER_EXTENSION", "TransportPeer", "TrustedProxies", "transport_peer"]

#: The scope extension key under which ``asgi_mtls.uvicorn`` records the real TCP peer.
PEER_EXTENSION: Final = "asgi_mtls.peer"

_UNIX_ENTRIES = frozenset({"unix", "unix:"})

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class TransportPeer:
    """The peer of the TCP (or Unix) connection the request arrived on."""

    family: Literal["inet", "unix"]
    host: str | None = None

    def __str__(self) -> str:
        return "unix-socket" if self.family == "unix" else str(self.host)


def transport_peer(
    scope: Mapping[str, object], *, trust_scope_client: bool
) -> TransportPeer | None:
    """The real transport peer of ``scope``, or ``None`` when it cannot be known."""
    extensions = scope.get("extensions")
    if isinstance(extensions, Mapping):
        recorded = extensions.get(PEER_EXTENSION)
        if isinstance(recorded, Mapping):
            family = recorded.get("family")
            host = recorded.get("host")
            if family == "unix":
                return TransportPeer("unix")
            if family == "inet" and isinstance(host, str) and host:
                return TransportPeer("inet", host)
            return None
    if trust_scope_client:
        client = scope.get("client")
        if isinstance(client, (tuple, list)) and client and isinstance(client[0], str):
            return TransportPeer("inet", client[0])
    return None


@lru_cache(maxsize=1024)
def _parse_address(host: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """A set of IP addresses / CIDR networks (IPv4 and IPv6), plus optionally Unix sockets.

    Entries: ``"10.0.0.0/8"``, ``"192.0.2.7"``, ``"::1"``, ``"2001:db8::/32"``, and ``"unix:"``
    to trust peers on a Unix socket (for a proxy that talks to the app over one).  There is
    no wildcard: to trust everyone, say ``"0.0.0.0/0"`` and ``"::/0"`` explicitly.
    """

    def __init__(self, entries: Iterable[str] = ()) -> None:
        if isinstance(entries, str):
            entries = [entries]
        networks: list[IPNetwork] = []
        self.allow_unix = False
        for entry in entries:
            text = entry.strip()
            if text in _UNIX_ENTRIES:
                self.allow_unix = True
                continue
            if text in ("*", ""):
                raise ValueError(
                    f"trusted proxy entry {entry!r}: no wildcard; list the proxies' addresses"
                )
            try:
                network = ipaddress.ip_network(text, strict=True)
            except ValueError as exc:
                raise ValueError(f"trusted proxy entry {entry!r}: {exc}") from None
            if isinstance(network, ipaddress.IPv6Network):
                mapped = network.network_address.ipv4_mapped
                if mapped is not None and network.prefixlen >= 96:
                    network = ipaddress.IPv4Network(f"{mapped}/{network.prefixlen - 96}")
            networks.append(network)
        self.networks: tuple[IPNetwork, ...] = tuple(networks)
        self._decisions: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks) or self.allow_unix

    def __repr__(self) -> str:
        entries = [str(n) for n in self.networks] + (["unix:"] if self.allow_unix else [])
        return f"TrustedProxies({entries!r})"

    def is_trusted(self, peer: TransportPeer | None) -> bool:
        """Whether ``peer`` may set certificate headers.  Unknown peers never may."""
        if peer is None:
            return False
        if peer.family == "unix":
            return self.allow_unix
        host = peer.host
        if host is None:
            return False
        decision = self._decisions.get(host)
        if decision is None:
            address = _parse_address(host)
            decision = address is not None and any(address in n for n in self.networks)
            if len(self._decisions) < 4096:
                self._decisions[host] = decision
        return decision
