"""The routes audit: every route of an app, what it declares, and who may call it.

Behind ``asgi-mtls routes MODULE:APP`` and :func:`asgi_mtls.fastapi.install_openapi`.  The
routes are read with :mod:`asgi_mtls.authorization.routes`, the same reading the middleware's
``deny_by_default`` gate uses, and the middleware's settings are those of its own
:class:`~asgi_mtls.authorization.routes.RouteAuthorizer` (found in the app, never re-parsed from
its options), so the report cannot disagree with what runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from starlette.routing import BaseRoute, Host, Mount, Route, WebSocketRoute

from asgi_mtls.authorization.dry_run import DryRun
from asgi_mtls.authorization.requirements import ClientRequirement, Requirement
from asgi_mtls.authorization.routes import (
    MAX_DEPTH,
    Declaration,
    RouteAuthorizer,
    chain,
    endpoint_handler,
    find_router,
    flatten_routes,
    original_route,
    route_declarations,
)
from asgi_mtls.errors import ConfigurationError

__all__ = ["AppAudit", "RouteAudit", "audit_app", "find_authorizer"]

_HTTP_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
#: ``dry_run``: the route's only requirements are in report mode (open to anyone meanwhile).
Status = Literal["protected", "public", "open", "refused", "dry_run"]


def find_authorizer(app: object) -> RouteAuthorizer | None:
    """The route authorizer of the first ``MTLSMiddleware`` around ``app``: down its ``.app``
    chain, or, for a Starlette/FastAPI app, in its middleware stack (built as Starlette builds
    it, so the audit sees exactly the middleware's own settings)."""
    for node in chain(app):
        error = getattr(node, "configuration_error", None)
        if isinstance(error, ConfigurationError):  # built by Starlette, misconfigured
            raise error
        authorizer = getattr(node, "authorizer", None)
        if isinstance(authorizer, RouteAuthorizer):
            return authorizer
        if getattr(node, "user_middleware", None) and hasattr(node, "build_middleware_stack"):
            stack = getattr(node, "middleware_stack", None) or node.build_middleware_stack()
            return find_authorizer(stack)
    return None


# -- the audit ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteAudit:
    """One row of the audit: a route (or one method of a class endpoint)."""

    path: str
    kind: str  # "http", "websocket", "mount", "other"
    methods: tuple[str, ...]
    name: str | None
    endpoint: str
    declarations: tuple[Declaration, ...]
    status: Status
    allowed: str

    @property
    def flagged(self) -> bool:
        """No requirement and not public: open to anyone, or refused by deny_by_default."""
        return self.status in ("open", "refused")

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "methods": list(self.methods),
            "name": self.name,
            "endpoint": self.endpoint,
            "status": self.status,
            "allowed": self.allowed,
            "flagged": self.flagged,
            "requirements": [d.to_json() for d in self.declarations],
        }


@dataclass(frozen=True)
class AppAudit:
    routes: tuple[RouteAudit, ...]
    settings: RouteAuthorizer | None

    def to_json(self) -> dict[str, Any]:
        settings = self.settings
        return {
            "middleware": settings is not None,
            "deny_by_default": bool(settings and settings.deny_by_default),
            "deny_by_default_dry_run": bool(settings and settings.deny_by_default_dry_run),
            "require_certificate": bool(settings and settings.require_certificate),
            "exempt_paths": [path for path, _ in settings.exempt_paths] if settings else [],
            "policies": [
                {
                    "pattern": pattern,
                    "allowed": policy.describe(),
                    "dry_run": isinstance(policy, DryRun),
                }
                for pattern, policy in (settings.policies if settings else ())
            ],
            "roles": settings.roles.describe() if settings and settings.roles else {},
            "routes": [route.to_json() for route in self.routes],
        }


def _qualname(endpoint: Any) -> str:
    if endpoint is None:
        return ""
    target = endpoint if inspect.isclass(endpoint) or inspect.isroutine(endpoint) else None
    if target is None:
        target = type(endpoint)
    module = getattr(target, "__module__", "") or ""
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", repr(target))
    return f"{module}.{name}" if module else str(name)


def _kind(route: Any) -> str:
    original = original_route(route)
    if isinstance(original, WebSocketRoute):
        return "websocket"
    if isinstance(original, Route):
        return "http"
    if isinstance(original, Mount | Host):
        return "mount"
    return "other"


def _evaluate(
    path: str,
    declarations: tuple[Declaration, ...],
    settings: RouteAuthorizer | None,
) -> tuple[tuple[Declaration, ...], Status, str]:
    found = list(declarations)
    if settings is not None:
        policy = settings.policy_for(path)
        if policy is not None:
            found.append(Declaration(f"policy {policy[0]}", policy[1]))
    declared = bool(found)
    if settings is not None and settings.require_certificate and not settings.is_exempt(path):
        found.append(Declaration("require_certificate", ClientRequirement()))
    requirements = [d.requirement for d in found if isinstance(d.requirement, Requirement)]
    dry_runs = [d.requirement for d in found if isinstance(d.requirement, DryRun)]
    if not declared and settings is not None and settings.deny_by_default:
        return tuple(found), "refused", "nobody (no requirement declared; deny_by_default)"
    if requirements:
        allowed = " and ".join(
            r._nested() if len(requirements) > 1 else r.describe() for r in requirements
        )
        return tuple(found), "protected", allowed
    if dry_runs:
        would = " and ".join(d.requirement.describe() for d in dry_runs)
        return tuple(found), "dry_run", f"anyone (dry run: would require {would})"
    if declared:
        return tuple(found), "public", "public"
    if settings is not None and settings.deny_by_default_dry_run:
        return (
            tuple(found),
            "open",
            "anyone (no requirement declared; deny_by_default dry run reports it)",
        )
    return tuple(found), "open", "anyone (no requirement declared)"


def _walk(routes: Sequence[BaseRoute], prefix: str, depth: int = 0) -> Iterator[tuple[Any, str]]:
    """(route, full path template) for every leaf route, descending into mounts."""
    for route in flatten_routes(routes):
        original = original_route(route)
        if isinstance(original, Mount | Host):
            children = getattr(route, "routes", None) or ()
            if children and depth < MAX_DEPTH:
                mount_path = _text_attribute(route, "path") if isinstance(original, Mount) else ""
                yield from _walk(children, prefix + mount_path, depth + 1)
                continue
        path = _text_attribute(route, "path_format") or _text_attribute(route, "path")
        yield route, prefix + path


def _text_attribute(route: Any, name: str) -> str:
    value = getattr(route, name, None)
    return value if isinstance(value, str) else ""


def audit_app(app: object) -> AppAudit:
    """Every route of ``app`` with what it declares and who may call it."""
    router = find_router(app)
    if router is None:
        raise ValueError(f"no Starlette/FastAPI router found in {app!r}")
    settings = find_authorizer(app)
    rows: list[RouteAudit] = []
    for route, path in _walk(router.routes, ""):
        kind = _kind(route)
        endpoint = getattr(route, "endpoint", None)
        name = getattr(route, "name", None)
        if kind == "mount":
            path = path.removesuffix("/{path}") + "/*"
            lookup_path = path[:-1]
            endpoint = getattr(route, "app", None)
        else:
            lookup_path = path
        groups: list[tuple[tuple[str, ...], str | None]]
        if kind == "http" and inspect.isclass(endpoint):
            handled = [m for m in _HTTP_METHODS if endpoint_handler(endpoint, m) is not None]
            groups = [((m,), m) for m in handled]
        elif kind == "http":
            groups = [(tuple(sorted(getattr(route, "methods", None) or ())), None)]
        else:
            groups = [((), None)]
        for methods, method in groups:
            declarations, status, allowed = _evaluate(
                lookup_path, route_declarations(route, method), settings
            )
            rows.append(
                RouteAudit(
                    path=path,
                    kind=kind,
                    methods=methods,
                    name=name,
                    endpoint=_qualname(endpoint),
                    declarations=declarations,
                    status=status,
                    allowed=allowed,
                )
            )
    return AppAudit(tuple(rows), settings)


# -- the deny_by_default gate ---------------------------------------------------------------
