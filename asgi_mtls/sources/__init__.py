"""Certificate sources: where a request's client certificate comes from.

A source answers two questions, split so that the middleware can cache between them:

``find(scope)``
    Cheap and pure: the raw, still-encoded values this source sees in the scope (a tuple of
    strings, used as the cache key), or ``None`` when the source does not apply.  It does not
    decode, validate or judge anything.
``decode(raw)``
    Turns those raw values into a :class:`PresentedCertificate`, ``None`` when they say that
    no certificate was presented, or raises :class:`~asgi_mtls.errors.CertificateRejected`.
    It is deterministic in ``raw``, so its result may be cached under ``raw``.

Header sources set ``requires_trusted_proxy``: the middleware refuses them unless the real
TCP peer is a configured trusted proxy, before ``decode`` ever runs.  They may carry their own
``trusted_proxies`` (a :class:`TrustedProxies`, or ``None`` for the middleware's).
``HeaderSource(format, ...)`` reads any of :data:`HEADER_FORMATS`.

:class:`ServerVerifiedNameSource` is the opt-in for a server that reports only the subject
name of the certificate it verified (issue #12): its ``decode`` gives a
:class:`PresentedName`, which becomes an identity of the weaker kind
(``verified_by == "server"``) without any validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from asgi_mtls.sources.headers import (
    HEADER_FORMATS,
    HeaderFormat,
    HeaderSource,
    header_format,
)
from asgi_mtls.sources.proxies import (
    ProxyCertificate,
    TransportPeer,
    TrustedProxies,
    transport_peer,
)
from asgi_mtls.sources.tls import TLSExtensionSource
from asgi_mtls.sources.types import PresentedCertificate, PresentedName, RawValues
from asgi_mtls.sources.verified_name import ServerVerifiedNameSource

__all__ = [
    "HEADER_FORMATS",
    "CertificateSource",
    "HeaderFormat",
    "HeaderSource",
    "PresentedCertificate",
    "PresentedName",
    "ProxyCertificate",
    "RawValues",
    "ServerVerifiedNameSource",
    "TLSExtensionSource",
    "TransportPeer",
    "TrustedProxies",
    "header_format",
    "transport_peer",
]


@runtime_checkable
class CertificateSource(Protocol):
    """The interface every source implements (see the module docstring)."""

    name: str
    requires_trusted_proxy: bool

    def find(self, scope: Mapping[str, object]) -> RawValues | None: ...

    def decode(self, raw: RawValues) -> PresentedCertificate | PresentedName | None: ...
