"""asgi-mtls: which client is calling, proven by its mutual-TLS certificate.

The public API; see the README and ``docs/`` for guides.
"""

from __future__ import annotations

from asgi_mtls.authorization import (
    PUBLIC,
    ClientRequirement,
    Public,
    Requirement,
    public,
    rejection_handler,
    require_client,
)
from asgi_mtls.authorization.matchers import (
    all_of,
    any_client,
    any_of,
    dns_name,
    fingerprint,
    group,
    issuer,
    not_,
    predicate,
    principal,
    principal_glob,
    role,
    spiffe_glob,
    spiffe_prefix,
    spki_pin,
    subject_attribute,
    trust_domain,
)
from asgi_mtls.authorization.roles import RoleConfigError, RoleMap
from asgi_mtls.errors import CertificateRejected, RejectionReason
from asgi_mtls.identity import ClientIdentity, SpiffeId
from asgi_mtls.inject import ClientUser, get_client_identity
from asgi_mtls.middleware import MTLSMiddleware
from asgi_mtls.sources import (
    HeaderSource,
    NginxHeaderSource,
    TLSExtensionSource,
    TrustedProxies,
    header_source,
)
from asgi_mtls.validation import CertificateValidator, VerifiedChain
from asgi_mtls.validation.revocation import RevocationChecker

__all__ = [
    "PUBLIC",
    "CertificateRejected",
    "CertificateValidator",
    "ClientIdentity",
    "ClientRequirement",
    "ClientUser",
    "HeaderSource",
    "MTLSMiddleware",
    "NginxHeaderSource",
    "Public",
    "RejectionReason",
    "Requirement",
    "RevocationChecker",
    "RoleConfigError",
    "RoleMap",
    "SpiffeId",
    "TLSExtensionSource",
    "TrustedProxies",
    "VerifiedChain",
    "all_of",
    "any_client",
    "any_of",
    "dns_name",
    "fingerprint",
    "get_client_identity",
    "group",
    "header_source",
    "issuer",
    "not_",
    "predicate",
    "principal",
    "principal_glob",
    "public",
    "rejection_handler",
    "require_client",
    "role",
    "spiffe_glob",
    "spiffe_prefix",
    "spki_pin",
    "subject_attribute",
    "trust_domain",
]

__version__ = "0.1.0"
