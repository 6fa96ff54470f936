"""Route inspection: what each route of a Starlette or FastAPI app declares.

One walk of the app's routes serves three consumers, so they can never disagree:

- ``asgi-mtls routes module:app`` (the audit table / JSON),
- ``asgi_mtls.fastapi.install_openapi`` (the per-operation ``security``),
- ``MTLSMiddleware(deny_by_default=True)`` (which route will serve this request, and did it
  declare anything?).

A route *declares* when its endpoint carries a requirement decorator or ``@PUBLIC``, when its
FastAPI dependency tree (route, router and ``include_router`` dependencies, recursively)
contains a requirement or ``PUBLIC``, or when a middleware path policy covers it.  Starlette's
own ``@requires`` is not a declaration (it does not say *which* clients).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from starlette.routing import BaseRoute, Host, Match, Mount, Route, Router, WebSocketRoute

from asgi_mtls.authorization import Public, Requirement, declared_requirements
from asgi_mtls.authorization.policies import PathPolicies, PathTable, Policy

if TYPE_CHECKING:
    from asgi_mtls.authorization.roles import RoleMap

__all__ = [
    "AppAudit",
    "Declaration",
    "MiddlewareSettings",
    "RouteAudit",
    "RouteGate",
    "audit_app",
    "find_middleware_settings",
    "find_router",
    "route_declarations",
]

_HTTP_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
_MAX_DEPTH: Final = 100
Status = Literal["protected", "public", "open", "refused"]


@dataclass(frozen=True)
class Declaration:
    """One thing a route declares: where it comes from and what it is."""

    source: str  # "decorator", "dependency", "policy /admin/*", "require_certificate"
    requirement: Requirement | Public

    def to_json(self) -> dict[str, str]:
        return {"source": self.source, "allowed": self.requirement.describe()}


# -- finding things in an app ---------------------------------------------------------------


def _chain(app: object) -> Iterator[object]:
    """``app`` and the apps it wraps (``.app`` attributes), without loops."""
    seen: set[int] = set()
    node: object = app
    for _ in range(_MAX_DEPTH):
        if node is None or id(node) in seen:
            return
        seen.add(id(node))
        yield node
        node = getattr(node, "app", None)


def find_router(app: object) -> Router | None:
    """The Starlette ``Router`` that routes ``app``'s requests: ``app`` itself, its
    ``router`` (Starlette, FastAPI), or the first one down the ``.app`` chain of wrappers."""
    for node in _chain(app):
        if isinstance(node, Router):
            return node
        router = getattr(node, "router", None)
        if isinstance(router, Router):
            return router
    return None


@dataclass(frozen=True)
class MiddlewareSettings:
    """The authorization-related options of the app's ``MTLSMiddleware``."""

    policies: PathPolicies = field(default_factory=lambda: PathPolicies({}))
    deny_by_default: bool = False
    require_certificate: bool = False
    exempt_paths: PathTable[bool] = field(default_factory=lambda: PathTable({}, "exempt path"))
    roles: RoleMap | None = None

    def policy_for(self, path: str) -> tuple[str, Policy] | None:
        return self.policies.lookup(path)

    def is_exempt(self, path: str) -> bool:
        return self.exempt_paths.lookup(path) is not None


def find_middleware_settings(app: object) -> MiddlewareSettings | None:
    """The settings of the first ``MTLSMiddleware`` around ``app``: an instance in its
    ``.app`` chain, or an entry of a Starlette/FastAPI app's ``user_middleware``."""
    from asgi_mtls.authorization.roles import load_roles
    from asgi_mtls.middleware import MTLSMiddleware

    for node in _chain(app):
        if isinstance(node, MTLSMiddleware):
            return MiddlewareSettings(
                policies=node.policies,
                deny_by_default=node.deny_by_default,
                require_certificate=node.require_certificate,
                exempt_paths=node.exempt_paths,
                roles=node.roles,
            )
        for entry in getattr(node, "user_middleware", None) or ():
            cls = getattr(entry, "cls", None)
            if isinstance(cls, type) and issubclass(cls, MTLSMiddleware):
                options: Mapping[str, Any] = getattr(entry, "kwargs", {})
                return MiddlewareSettings(
                    policies=PathPolicies(options.get("policies") or {}),
                    deny_by_default=bool(options.get("deny_by_default", False)),
                    require_certificate=bool(options.get("require_certificate", False)),
                    exempt_paths=PathTable(
                        [(path, True) for path in options.get("exempt_paths") or ()], "exempt path"
                    ),
                    roles=load_roles(options.get("roles")),
                )
    return None


# -- what a route declares ------------------------------------------------------------------


def _flatten(routes: Sequence[BaseRoute]) -> list[Any]:
    """Routes in matching order.  FastAPI (0.13x+ with ``iter_route_contexts``) keeps included
    routers as nested objects; its own flattening gives each route with the dependencies of
    every ``include_router`` above it.  Elsewhere the routes are already flat."""
    try:
        from fastapi.routing import iter_route_contexts  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return list(routes)
    return list(iter_route_contexts(routes))


def _original(route: Any) -> Any:
    return getattr(route, "original_route", route)


def _endpoint_handler(endpoint: Any, method: str | None) -> Any:
    """For a class-based ``HTTPEndpoint``, the method handling ``method``; else ``endpoint``."""
    if inspect.isclass(endpoint) and method is not None:
        name = method.lower()
        if name == "head" and not hasattr(endpoint, "head"):
            name = "get"
        return getattr(endpoint, name, None)
    return endpoint


def _dependency_calls(dependant: Any) -> Iterator[Any]:
    seen: set[int] = set()
    stack = list(getattr(dependant, "dependencies", None) or ())
    while stack:
        child = stack.pop(0)
        if id(child) in seen:
            continue
        seen.add(id(child))
        yield getattr(child, "call", None)
        stack.extend(getattr(child, "dependencies", None) or ())


def route_declarations(route: Any, method: str | None = None) -> tuple[Declaration, ...]:
    """What ``route`` (a route, or FastAPI's route context) declares for ``method``: marks
    left by requirement decorators / ``@PUBLIC`` on its endpoint (or on a class endpoint's
    handler for ``method``, or on a mounted app), and requirements or ``PUBLIC`` anywhere in
    its FastAPI dependency tree."""
    original = _original(route)
    if isinstance(original, Mount | Host):
        target = getattr(route, "app", None)
        marks = declared_requirements(target) or declared_requirements(
            getattr(route, "_base_app", None)
        )
        return tuple(Declaration("mounted app", mark) for mark in marks)
    found = [
        Declaration("decorator", mark)
        for mark in declared_requirements(
            _endpoint_handler(getattr(route, "endpoint", None), method)
        )
    ]
    for call in _dependency_calls(getattr(route, "dependant", None)):
        if isinstance(call, Requirement | Public):
            found.append(Declaration("dependency", call))
    return tuple(found)


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
    settings: MiddlewareSettings | None

    def to_json(self) -> dict[str, Any]:
        settings = self.settings
        return {
            "middleware": settings is not None,
            "deny_by_default": bool(settings and settings.deny_by_default),
            "require_certificate": bool(settings and settings.require_certificate),
            "exempt_paths": [path for path, _ in settings.exempt_paths] if settings else [],
            "policies": [
                {"pattern": pattern, "allowed": policy.describe()}
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
    original = _original(route)
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
    settings: MiddlewareSettings | None,
) -> tuple[tuple[Declaration, ...], Status, str]:
    found = list(declarations)
    if settings is not None:
        policy = settings.policy_for(path)
        if policy is not None:
            found.append(Declaration(f"policy {policy[0]}", policy[1]))
    declared = bool(found)
    if settings is not None and settings.require_certificate and not settings.is_exempt(path):
        from asgi_mtls.authorization import ClientRequirement

        found.append(Declaration("require_certificate", ClientRequirement()))
    requirements = [d.requirement for d in found if isinstance(d.requirement, Requirement)]
    if not declared and settings is not None and settings.deny_by_default:
        return tuple(found), "refused", "nobody (no requirement declared; deny_by_default)"
    if requirements:
        allowed = " and ".join(
            r._nested() if len(requirements) > 1 else r.describe() for r in requirements
        )
        return tuple(found), "protected", allowed
    if declared:
        return tuple(found), "public", "public"
    return tuple(found), "open", "anyone (no requirement declared)"


def _walk(routes: Sequence[BaseRoute], prefix: str, depth: int = 0) -> Iterator[tuple[Any, str]]:
    """(route, full path template) for every leaf route, descending into mounts."""
    for route in _flatten(routes):
        original = _original(route)
        if isinstance(original, Mount | Host):
            children = getattr(route, "routes", None) or ()
            if children and depth < _MAX_DEPTH:
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
    settings = find_middleware_settings(app)
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
            handled = [m for m in _HTTP_METHODS if _endpoint_handler(endpoint, m) is not None]
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


class RouteGate:
    """Answers, before the app runs, whether the route that will serve a request declared a
    requirement (or ``PUBLIC``).  Used by ``MTLSMiddleware(deny_by_default=True)``.

    It selects the route as Starlette's router does (first full match in order, else the first
    partial match, i.e. a 405), descending into mounts; FastAPI's included routers are
    flattened with FastAPI's own helper.  What each route declares is cached per route.
    """

    _CACHE_LIMIT: Final = 10_000

    def __init__(self, app: object) -> None:
        router = find_router(app)
        if router is None:
            raise ValueError(
                "deny_by_default needs a Starlette or FastAPI app to find the routes in;"
                f" none found in {app!r}"
            )
        self.router = router
        self._cache: dict[tuple[int, int, str | None], tuple[object, object, bool]] = {}

    def declared(self, scope: Mapping[str, Any]) -> bool | None:
        """``True``: the serving route declares something; ``False``: it does not (or the
        request cannot be attributed safely); ``None``: no route matches and the router will
        answer 404 (or a slash redirect) itself."""
        try:
            route = self._resolve(self.router.routes, self.router, dict(scope), 0)
        except Exception:  # an unexpected routing shape: never guess "declared"
            return False
        if route is None:
            return None
        if route is False:
            return False
        method = scope.get("method") if scope.get("type") == "http" else None
        original = _original(route)
        dependant = getattr(route, "dependant", None)
        key = (id(original), id(dependant), method)
        cached = self._cache.get(key)
        if cached is not None and cached[0] is original and cached[1] is dependant:
            return cached[2]
        result = bool(route_declarations(route, method))
        if len(self._cache) >= self._CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = (original, dependant, result)
        return result

    def _resolve(
        self, routes: Sequence[BaseRoute], router: Router, scope: dict[str, Any], depth: int
    ) -> Any:
        """The leaf route for ``scope`` among ``routes`` (those of ``router``); ``None``: not
        found and ``router`` answers 404 itself; ``False``: not found, but the router may
        still serve the request (a default app, low-priority routes)."""
        chosen: tuple[Any, Mapping[str, Any]] | None = None
        partial: tuple[Any, Mapping[str, Any]] | None = None
        for route in _flatten(routes):
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                chosen = (route, child_scope)
                break
            if match is Match.PARTIAL and partial is None:
                partial = (route, child_scope)
        chosen = chosen or partial
        if chosen is None:
            return None if _answers_404(router) else False
        route, child_scope = chosen
        if isinstance(_original(route), Mount | Host):
            children = getattr(route, "routes", None) or ()
            if children:
                sub_router = find_router(getattr(route, "app", None))
                if sub_router is None or depth >= _MAX_DEPTH:
                    return False
                return self._resolve(children, sub_router, {**scope, **child_scope}, depth + 1)
        return route


def _answers_404(router: Router) -> bool:
    """Does ``router`` answer an unmatched request with its own 404 (or slash redirect)?  Not
    when it has a custom default app or FastAPI low-priority (frontend) routes."""
    if router.default != router.not_found:
        return False
    low_priority = getattr(router, "_iter_low_priority_routes", None)
    if callable(low_priority):
        try:
            return next(iter(low_priority()), None) is None
        except Exception:
            return False
    return True
