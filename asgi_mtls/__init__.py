"""asgi-mtls: which client is calling, proven by its mutual-TLS certificate.

The public API; see the README and ``docs/`` for guides.
"""

from __future__ import annotations

from asgi_mtls.authorization import ClientRequirement, rejection_handler, require_client
from asgi_mtls.errors import CertificateRejected, RejectionReason
from asgi_mtls.identity import ClientIdentity, ClientUser, SpiffeId, get_client_identity
from asgi_mtls.middleware import MTLSMiddleware
from asgi_mtls.sources import NginxHeaderSource, TLSExtensionSource, TrustedProxies
from asgi_mtls.validation import CertificateValidator, VerifiedChain

__all__ = [
    "CertificateRejected",
    "CertificateValidator",
    "ClientIdentity",
    "ClientRequirement",
    "ClientUser",
    "MTLSMiddleware",
    "NginxHeaderSource",
    "RejectionReason",
    "SpiffeId",
    "TLSExtensionSource",
    "TrustedProxies",
    "VerifiedChain",
    "get_client_identity",
    "rejection_handler",
    "require_client",
]

__version__ = "0.1.0"
