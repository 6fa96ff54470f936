"""Stage 2 of the pipeline: is this certificate trusted, now.

:class:`CertificateValidator` (path building with cryptography, usage, validity),
:mod:`~asgi_mtls.validation.trust` (trust material as an immutable snapshot, pins) and
:mod:`~asgi_mtls.validation.revocation` (CRL and OCSP, off the request path).
"""

from __future__ import annotations

from asgi_mtls.validation.validator import (
    CertificateInput,
    CertificateValidator,
    VerifiedChain,
    load_certificates,
)

__all__ = ["CertificateInput", "CertificateValidator", "VerifiedChain", "load_certificates"]
