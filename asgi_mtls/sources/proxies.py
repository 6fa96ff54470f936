"""Which peers may set certificate headers: by address, or by the hop's own certificate.

By address, the decision rests on the *transport* peer, never on ``scope["client"]``:
uvicorn's proxy-header handling (on by default) rewrites ``scope["client"]`` from
``X-Forwarded-For`` before any middleware runs, so with ``--forwarded-allow-ips '*'`` any
client could claim to be the proxy.  ``asgi_mtls.uvicorn``'s protocol classes record the real
peer in ``scope["extensions"]["asgi_mtls.peer"]``; on other servers a user may opt into
``scope["client"]`` (``trust_scope_client=True``) when that server does not rewrite it.

By certificate (issue #12: IP allow-lists break in containers and meshes): the hop from the
proxy to the app is mutual TLS too, the app's server verifies the proxy's certificate in the
handshake and reports it in the ASGI ``tls`` extension, and a :class:`ProxyCertificate` entry
names the certificate a trusted proxy presents (its SPIFFE ID, or its SHA-256 fingerprint).
On such a connection the ``tls`` extension describes the proxy, not the client: it is never an
identity (:class:`ProxyHops`), and the client, if any, is in the proxy's header.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

from cryptography import x509

__all__ = [
    "PEER_EXTENSION",
    "ProxyCertificate",
    "ProxyHops",
    "TransportPeer",
    "TrustedProxies",
    "connection_certificate",
    "transport_peer",
]

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


_SHA256 = re.compile(r"[0-9a-f]{64}")
_DECISIONS_KEPT = 1024


@dataclass(frozen=True, slots=True)
class ProxyCertificate:
    """A proxy trusted by the certificate it presents on its own mutual-TLS connection to the
    app: ``ProxyCertificate(spiffe_id="spiffe://mesh.example/ns/ingress/sa/nginx")`` (the
    certificate's only URI SAN, compared exactly, as in a SPIFFE X.509-SVID) or
    ``ProxyCertificate(sha256="ab12...")`` (the SHA-256 of the certificate's DER, hex, ``:``
    allowed).  Exactly one of the two.

    What vouches for the certificate is the app's TLS server: it verified the chain in the
    handshake against its client CA bundle (``asgi_mtls.uvicorn.config(client_ca=...)``) and
    the proxy proved it holds the key.  A SPIFFE ID is only as good as that bundle (keep it to
    the CAs that issue your proxies' and clients' certificates); a fingerprint names one
    certificate whatever the bundle.
    """

    spiffe_id: str | None = None
    sha256: str | None = None

    def __post_init__(self) -> None:
        if (self.spiffe_id is None) == (self.sha256 is None):
            raise ValueError("ProxyCertificate takes exactly one of spiffe_id= and sha256=")
        if self.spiffe_id is not None:
            rest = self.spiffe_id.removeprefix("spiffe://")
            domain, _, path = rest.partition("/")
            if (
                rest == self.spiffe_id
                or not domain
                or not path
                or self.spiffe_id != self.spiffe_id.strip()
            ):
                raise ValueError(
                    f"ProxyCertificate spiffe_id {self.spiffe_id!r}: give spiffe://DOMAIN/PATH"
                )
        if self.sha256 is not None:
            digest = self.sha256.replace(":", "").lower()
            if not _SHA256.fullmatch(digest):
                raise ValueError(
                    f"ProxyCertificate sha256 {self.sha256!r}: give 64 hex digits (':' allowed)"
                )
            object.__setattr__(self, "sha256", digest)

    def __str__(self) -> str:
        return (
            f"certificate {self.spiffe_id}"
            if self.spiffe_id
            else f"certificate sha256:{self.sha256}"
        )

    def matches(self, der: bytes) -> bool:
        """Whether the DER certificate ``der`` is this proxy's (``False`` if unparseable)."""
        if self.sha256 is not None:
            return hashlib.sha256(der).hexdigest() == self.sha256
        try:
            certificate = x509.load_der_x509_certificate(der)
            san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except (ValueError, x509.ExtensionNotFound):
            return False
        uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
        return uris == [self.spiffe_id]


def connection_certificate(scope: Mapping[str, object]) -> str | bytes | None:
    """The certificate the peer of ``scope``'s connection presented, as the ASGI ``tls``
    extension reports it (``client_cert_chain[0]``, a PEM string or DER bytes, else a DER
    ``client_cert``), or ``None``: no ``tls`` extension, no certificate, or a server that
    reported ``client_cert_error``.  Not decoded (see :meth:`TrustedProxies.trusts_certificate`)."""
    extensions = scope.get("extensions")
    if not isinstance(extensions, Mapping):
        return None
    tls = extensions.get("tls")
    if not isinstance(tls, Mapping) or tls.get("client_cert_error") is not None:
        return None
    chain = tls.get("client_cert_chain")
    if isinstance(chain, list | tuple) and chain and isinstance(chain[0], str | bytes):
        return chain[0]
    der = tls.get("client_cert")
    return der if isinstance(der, bytes) and der else None


def _der(certificate: str | bytes) -> bytes | None:
    if isinstance(certificate, bytes):
        return certificate
    try:
        return ssl.PEM_cert_to_DER_cert(certificate)
    except ValueError:
        return None


class TrustedProxies:
    """Who may set certificate headers: IP addresses / CIDR networks (IPv4 and IPv6), Unix
    sockets, and proxies known by their certificate.

    Entries: ``"10.0.0.0/8"``, ``"192.0.2.7"``, ``"::1"``, ``"2001:db8::/32"``, ``"unix:"``
    to trust peers on a Unix socket (for a proxy that talks to the app over one), and
    :class:`ProxyCertificate` entries for proxies that talk mutual TLS to the app.  A peer is
    trusted when any entry matches.  There is no wildcard: to trust everyone, say
    ``"0.0.0.0/0"`` and ``"::/0"`` explicitly.
    """

    def __init__(self, entries: Iterable[str | ProxyCertificate] = ()) -> None:
        if isinstance(entries, str | ProxyCertificate):
            entries = [entries]
        networks: list[IPNetwork] = []
        certificates: list[ProxyCertificate] = []
        self.allow_unix = False
        for entry in entries:
            if isinstance(entry, ProxyCertificate):
                certificates.append(entry)
                continue
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
        self.certificates: tuple[ProxyCertificate, ...] = tuple(certificates)
        self._decisions: dict[str, bool] = {}
        self._certificate_decisions: dict[str | bytes, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks) or self.allow_unix or bool(self.certificates)

    def __repr__(self) -> str:
        entries: list[str | ProxyCertificate] = [str(n) for n in self.networks]
        entries += ["unix:"] if self.allow_unix else []
        entries += self.certificates
        return f"TrustedProxies({entries!r})"

    def trusts_scope(self, scope: Mapping[str, object], trust_scope_client: bool) -> bool:
        """:meth:`trusts` for ``scope``'s transport peer.  The common case, a recorded inet
        peer already decided trusted, is one memo lookup (issue #10: the decision is
        remembered per peer); anything else takes the full path."""
        extensions = scope.get("extensions")
        if type(extensions) is dict:
            recorded = extensions.get(PEER_EXTENSION)
            if type(recorded) is dict and recorded.get("family") == "inet":
                host = recorded.get("host")
                if type(host) is str and self._decisions.get(host) is True:
                    return True
        peer = transport_peer(scope, trust_scope_client=trust_scope_client)
        return self.trusts(peer, scope)

    def trusts(self, peer: TransportPeer | None, scope: Mapping[str, object]) -> bool:
        """Whether the peer of ``scope`` may set certificate headers: by its address
        (:meth:`is_trusted`) or by the certificate of its connection
        (:meth:`trusts_certificate`)."""
        return self.is_trusted(peer) or (bool(self.certificates) and self.trusts_certificate(scope))

    def trusts_certificate(self, scope: Mapping[str, object]) -> bool:
        """Whether the certificate of ``scope``'s connection is a trusted proxy's.  Decided
        once per certificate value (a bounded memo: a proxy keeps its connections open)."""
        if not self.certificates:
            return False
        presented = connection_certificate(scope)
        if presented is None:
            return False
        decision = self._certificate_decisions.get(presented)
        if decision is None:
            der = _der(presented)
            decision = der is not None and any(c.matches(der) for c in self.certificates)
            if len(self._certificate_decisions) < _DECISIONS_KEPT:
                self._certificate_decisions[presented] = decision
        return decision

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


class ProxyHops:
    """The proxies trusted by certificate, over a middleware's and its header sources'
    :class:`TrustedProxies`.

    On a connection whose certificate is one of theirs, the ASGI ``tls`` extension describes
    the hop from the proxy, not the client: the proxy's certificate must never become the
    request's identity (nor conflict with the client's, which arrives in the proxy's header).
    ``None`` from :meth:`of` when no proxy is trusted by certificate: nothing to check.
    """

    __slots__ = ("sets",)

    def __init__(self, sets: Iterable[TrustedProxies]) -> None:
        self.sets = tuple(s for s in sets if s.certificates)

    @classmethod
    def of(cls, trusted_proxies: TrustedProxies, sources: Iterable[object]) -> ProxyHops | None:
        own = [getattr(source, "trusted_proxies", None) for source in sources]
        hops = cls([trusted_proxies, *(s for s in own if isinstance(s, TrustedProxies))])
        return hops if hops.sets else None

    def hides(self, source: object, scope: Mapping[str, object]) -> bool:
        """Whether ``source`` (a source read from the connection itself, not a header) must be
        skipped on ``scope`` because its connection is a trusted proxy's hop."""
        if getattr(source, "requires_trusted_proxy", True):
            return False
        return any(s.trusts_certificate(scope) for s in self.sets)
