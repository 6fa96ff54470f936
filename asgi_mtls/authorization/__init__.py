"""Stage 5 of the pipeline: may this client call this route.

Everything an app writes in its requirements, from one place::

    from asgi_mtls.authorization import cn, role, spiffe_glob, subject_attribute

:mod:`~asgi_mtls.authorization.requirements` (the requirement algebra, ``require_client``,
``PUBLIC``, ``predicate``), :mod:`~asgi_mtls.authorization.matchers` (matchers on the client's
names), :mod:`~asgi_mtls.authorization.certificates` (matchers on the certificate itself),
:mod:`~asgi_mtls.authorization.roles` (role maps, ``role``),
:mod:`~asgi_mtls.authorization.policies`
(the middleware's path table) and :mod:`~asgi_mtls.authorization.routes` (route introspection,
the deny-by-default gate).
"""

from __future__ import annotations

from asgi_mtls.authorization.certificates import (
    fingerprint,
    issuer,
    spki_pin,
    subject_attribute,
)
from asgi_mtls.authorization.dry_run import DryRun, dry_run
from asgi_mtls.authorization.matchers import (
    cn,
    dns_name,
    group,
    principal,
    principal_glob,
    spiffe_glob,
    spiffe_prefix,
    trust_domain,
)
from asgi_mtls.authorization.requirements import (
    PUBLIC,
    AllOf,
    AnyOf,
    ClientRequirement,
    Not,
    Public,
    Requirement,
    predicate,
    rejection_handler,
    require_client,
)
from asgi_mtls.authorization.roles import RoleConfigError, RoleMap, role
from asgi_mtls.authorization.tokens import check_token_binding

__all__ = [
    "PUBLIC",
    "AllOf",
    "AnyOf",
    "ClientRequirement",
    "DryRun",
    "Not",
    "Public",
    "Requirement",
    "RoleConfigError",
    "RoleMap",
    "check_token_binding",
    "cn",
    "dns_name",
    "dry_run",
    "fingerprint",
    "group",
    "issuer",
    "predicate",
    "principal",
    "principal_glob",
    "rejection_handler",
    "require_client",
    "role",
    "spiffe_glob",
    "spiffe_prefix",
    "spki_pin",
    "subject_attribute",
    "trust_domain",
]
