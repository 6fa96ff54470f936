"""asgi-mtls: which client is calling, proven by its mutual-TLS certificate.

The names most apps need; everything else is imported from its stage's package
(``docs/architecture.md``): matchers and role maps from :mod:`asgi_mtls.authorization`,
identities from :mod:`asgi_mtls.identity`, proxy formats from :mod:`asgi_mtls.sources`,
validation options from :mod:`asgi_mtls.validation`, test helpers from
:mod:`asgi_mtls.testing`.
"""

from __future__ import annotations

from asgi_mtls import log as _log
from asgi_mtls.authorization import PUBLIC, Requirement, RoleMap, require_client
from asgi_mtls.errors import CertificateRejected, RejectionReason
from asgi_mtls.identity import ClientIdentity
from asgi_mtls.inject import get_client_identity
from asgi_mtls.middleware import MTLSMiddleware
from asgi_mtls.sources import HeaderSource, TLSExtensionSource, TrustedProxies
from asgi_mtls.validation import CertificateValidator

__all__ = [
    "PUBLIC",
    "CertificateRejected",
    "CertificateValidator",
    "ClientIdentity",
    "HeaderSource",
    "MTLSMiddleware",
    "RejectionReason",
    "Requirement",
    "RoleMap",
    "TLSExtensionSource",
    "TrustedProxies",
    "get_client_identity",
    "require_client",
]

__version__ = "0.2.0"

# Level and logger name on asgi-mtls's log lines when the app configured no logging.
_log.install()
