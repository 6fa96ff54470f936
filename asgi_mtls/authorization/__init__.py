"""Stage 5 of the pipeline: may this client call this route.

:mod:`~asgi_mtls.authorization.requirements` (the requirement algebra, ``require_client``,
``PUBLIC``), :mod:`~asgi_mtls.authorization.matchers` (the building blocks),
:mod:`~asgi_mtls.authorization.roles` (role maps) and
:mod:`~asgi_mtls.authorization.policies` (the middleware's path table).
"""

from __future__ import annotations

from asgi_mtls.authorization.requirements import (
    PUBLIC,
    REQUIREMENTS_ATTRIBUTE,
    AllOf,
    AnyOf,
    ClientRequirement,
    Not,
    Public,
    Requirement,
    check_name,
    declared_requirements,
    public,
    rejection_handler,
    require_client,
    run_predicate,
)

__all__ = [
    "PUBLIC",
    "REQUIREMENTS_ATTRIBUTE",
    "AllOf",
    "AnyOf",
    "ClientRequirement",
    "Not",
    "Public",
    "Requirement",
    "check_name",
    "declared_requirements",
    "public",
    "rejection_handler",
    "require_client",
    "run_predicate",
]
