"""FastAPI: the OpenAPI 3.1 ``mutualTLS`` security scheme, from the routes' own requirements.

FastAPI's security models know ``apiKey``, ``http``, ``oauth2`` and ``openIdConnect`` but not
OpenAPI 3.1's ``mutualTLS``, so the scheme is added to the generated document afterwards, by
one line::

    from asgi_mtls.fastapi import install_openapi

    app = FastAPI()
    app.add_middleware(MTLSMiddleware, trust="clients-ca.pem")
    install_openapi(app)

The document then has ``components.securitySchemes.mutualTLS = {"type": "mutualTLS",
"description": ...}``, and every operation that needs a client certificate (a requirement in
its dependencies, a middleware path policy, or ``require_certificate``) lists it in
``security`` and says who may call it: ``x-asgi-mtls-requirement`` (machine-readable) and a
line appended to its description (shown by ``/docs``).  Operations marked ``PUBLIC`` carry
``x-asgi-mtls-requirement: "public"`` and no security.  The routes are read with the same
inspection as ``asgi-mtls routes`` (:mod:`asgi_mtls.audit`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from fastapi import Depends, FastAPI
from starlette.requests import HTTPConnection

from asgi_mtls.audit import AppAudit, audit_app
from asgi_mtls.authorization import PUBLIC
from asgi_mtls.authorization.policies import PolicyValue
from asgi_mtls.authorization.tokens import check_token_binding

__all__ = [
    "EXTENSION",
    "SCHEME_NAME",
    "add_mutual_tls",
    "certificate_bound",
    "docs_policies",
    "install_openapi",
]

#: The security scheme's name in ``components.securitySchemes``.
SCHEME_NAME: Final = "mutualTLS"
#: The operation extension that states the route's requirement.
EXTENSION: Final = "x-asgi-mtls-requirement"
_DEFAULT_DESCRIPTION: Final = (
    "Mutual TLS: the client presents an X.509 certificate issued by a trusted authority."
    f" Each operation states which clients may call it ({EXTENSION})."
)
_INSTALLED: Final = "__asgi_mtls_openapi__"
_METHODS: Final = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def add_mutual_tls(
    schema: dict[str, Any],
    audit: AppAudit,
    *,
    scheme_name: str = SCHEME_NAME,
    description: str = _DEFAULT_DESCRIPTION,
) -> dict[str, Any]:
    """Add the ``mutualTLS`` scheme and per-operation security to an OpenAPI ``schema`` (in
    place; running it again changes nothing)."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[scheme_name] = {
        "type": "mutualTLS",
        "description": description,
    }
    paths = schema.get("paths") or {}
    for route in audit.routes:
        operations = paths.get(route.path)
        if route.kind != "http" or not isinstance(operations, dict):
            continue
        for method in route.methods:
            operation = operations.get(method.lower())
            if method.lower() not in _METHODS or not isinstance(operation, dict):
                continue
            if route.status == "public":
                operation[EXTENSION] = "public"
                continue
            operation[EXTENSION] = route.allowed
            if route.status != "protected":
                continue
            security = operation.get("security") or [{}]
            operation["security"] = [{**item, scheme_name: []} for item in security]
            note = f"Client certificate: {route.allowed}."
            text = operation.get("description") or ""
            if note not in text:
                operation["description"] = f"{text}\n\n{note}" if text else note
    return schema


def install_openapi(
    app: FastAPI,
    *,
    scheme_name: str = SCHEME_NAME,
    description: str = _DEFAULT_DESCRIPTION,
) -> FastAPI:
    """Make ``app.openapi()`` (and so ``/openapi.json`` and ``/docs``) declare the
    ``mutualTLS`` scheme and each operation's requirement.  Idempotent; returns ``app``.

    Call it once the routes and the middleware are added, or at any time before the first
    request: the document is computed when first asked for, and again whenever FastAPI
    regenerates it.
    """
    current: Callable[[], dict[str, Any]] = app.openapi
    if getattr(current, _INSTALLED, False):
        return app
    processed: list[int] = []

    def openapi() -> dict[str, Any]:
        schema = current()
        if not processed or processed[-1] != id(schema):
            add_mutual_tls(schema, audit_app(app), scheme_name=scheme_name, description=description)
            processed[:] = [id(schema)]
        return schema

    setattr(openapi, _INSTALLED, True)
    app.openapi = openapi  # type: ignore[method-assign]
    app.openapi_schema = None
    return app


def docs_policies(app: FastAPI, requirement: PolicyValue = PUBLIC) -> dict[str, PolicyValue]:
    """A path table for FastAPI's own routes (``openapi_url``, ``docs_url`` and its OAuth2
    redirect, ``redoc_url``, as configured on ``app``), all set to ``requirement``.

    These routes are added by FastAPI, not by the app, so they cannot carry ``@PUBLIC`` or a
    dependency: under ``deny_by_default`` they are refused, and ``asgi-mtls routes --strict``
    flags them (issue #11).  Declare them explicitly, public or not::

        app = FastAPI()
        app.add_middleware(MTLSMiddleware, trust="ca.pem", policies=docs_policies(app))
        # or only for the operators: docs_policies(app, role("ops"))
    """
    paths = [app.openapi_url, app.docs_url, app.redoc_url]
    if app.docs_url and app.swagger_ui_oauth2_redirect_url:
        paths.append(app.swagger_ui_oauth2_redirect_url)
    return {path: requirement for path in paths if path}


def certificate_bound(
    claims: Callable[..., Any], *, required: bool = True
) -> Callable[..., Awaitable[Mapping[str, Any]]]:
    """A dependency giving the claims of ``claims`` (the app's own dependency that verifies
    the access token) once they are checked to be bound to the request's client certificate
    (RFC 8705; :func:`~asgi_mtls.authorization.tokens.check_token_binding`)::

        def verified_claims(authorization: str = Header()) -> dict: ...   # the app's JWT code

        @app.get("/accounts")
        async def accounts(claims: dict = Depends(certificate_bound(verified_claims))): ...

    A token of another certificate, or one without ``cnf.x5t#S256`` while ``required``, is
    refused with 401 ``invalid_token`` and RFC 6750's ``WWW-Authenticate`` header.
    """

    async def bound_claims(
        connection: HTTPConnection, verified: Mapping[str, Any] = Depends(claims)
    ) -> Mapping[str, Any]:
        check_token_binding(connection, verified, required=required)
        return verified

    return bound_claims
