"""Stage 2 of the pipeline: is this certificate trusted, now.

:class:`CertificateValidator` (path building with cryptography, usage, validity),
:mod:`~asgi_mtls.validation.policy` (one key and signature policy for every certificate of
the path), :mod:`~asgi_mtls.validation.paths` (the candidate issuers: bounding the search,
naming a weak issuer), :mod:`~asgi_mtls.validation.trust` (trust material as an immutable
snapshot, pins), :mod:`~asgi_mtls.validation.public_roots` (public CA bundles refused as
client trust roots) and :mod:`~asgi_mtls.validation.revocation` (CRL and OCSP, off the
request path).
"""

from __future__ import annotations

from asgi_mtls.validation.validator import (
    CertificateInput,
    CertificateValidator,
    VerifiedChain,
    load_certificates,
)

__all__ = ["CertificateInput", "CertificateValidator", "VerifiedChain", "load_certificates"]
