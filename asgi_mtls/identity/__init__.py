"""Stage 3 of the pipeline: who is calling.

:mod:`~asgi_mtls.identity.names` (typed names: SPIFFE IDs, SAN syntax, principals with their
kind), :mod:`~asgi_mtls.identity.principals` (which name is the principal) and
:mod:`~asgi_mtls.identity.identity` (:class:`ClientIdentity`) and
:mod:`~asgi_mtls.identity.reader` (``build_identity``: a validated chain read into one).
"""

from __future__ import annotations

from asgi_mtls.identity.identity import ClientIdentity, NoCertificateError, VerifiedBy
from asgi_mtls.identity.names import NameKind, Principal, SpiffeId, parse_spiffe_id
from asgi_mtls.identity.principals import (
    PrincipalMapper,
    PrincipalStrategy,
    StrategyName,
    resolve_principal_strategy,
)
from asgi_mtls.identity.reader import build_identity

__all__ = [
    "ClientIdentity",
    "NameKind",
    "NoCertificateError",
    "Principal",
    "PrincipalMapper",
    "PrincipalStrategy",
    "SpiffeId",
    "StrategyName",
    "VerifiedBy",
    "build_identity",
    "parse_spiffe_id",
    "resolve_principal_strategy",
]
