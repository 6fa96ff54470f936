"""Revocation checking (CRLs and OCSP) that never puts the network on the request path.

:class:`RevocationChecker` (:mod:`~asgi_mtls.validation.revocation.checker`: configuration,
what to fetch and when, lifecycle) reads the data held in memory
(:mod:`~asgi_mtls.validation.revocation.state`), decides
(:mod:`~asgi_mtls.validation.revocation.decision`) and fetches in the background with backoff
(:mod:`~asgi_mtls.validation.revocation.scheduler`); :mod:`~asgi_mtls.validation.revocation.crl`
and :mod:`~asgi_mtls.validation.revocation.ocsp` parse and verify the data,
:mod:`~asgi_mtls.validation.revocation.fetch` downloads it.  See docs/validation.md.
"""

from __future__ import annotations

from asgi_mtls.validation.revocation.checker import (
    RevocationChecker,
    RevocationPolicy,
    RevocationResult,
)
from asgi_mtls.validation.revocation.crl import crl_distribution_urls
from asgi_mtls.validation.revocation.fetch import FetchError
from asgi_mtls.validation.revocation.ocsp import (
    build_ocsp_request,
    ocsp_responder_urls,
    verify_ocsp_response,
)

__all__ = [
    "FetchError",
    "RevocationChecker",
    "RevocationPolicy",
    "RevocationResult",
    "build_ocsp_request",
    "crl_distribution_urls",
    "ocsp_responder_urls",
    "verify_ocsp_response",
]
