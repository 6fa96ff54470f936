"""Stage 3 of the pipeline: who is calling.

:mod:`~asgi_mtls.identity.identity` builds the :class:`ClientIdentity` of a validated chain;
the principal strategies and the parsing of names live beside it.
"""

from __future__ import annotations

from asgi_mtls.identity.identity import (
    IDENTITY_SCOPE_KEY,
    ClientIdentity,
    ClientUser,
    PrincipalMapper,
    PrincipalStrategy,
    SpiffeId,
    build_identity,
    get_client_identity,
    parse_spiffe_id,
    resolve_principal_mapper,
)

__all__ = [
    "IDENTITY_SCOPE_KEY",
    "ClientIdentity",
    "ClientUser",
    "PrincipalMapper",
    "PrincipalStrategy",
    "SpiffeId",
    "build_identity",
    "get_client_identity",
    "parse_spiffe_id",
    "resolve_principal_mapper",
]
