"""Route introspection, the deny-by-default gate, and the middleware's route authorizer.

One reading of an app's routes serves every consumer, so they can never disagree: the audit
(``asgi-mtls routes``, :mod:`asgi_mtls.audit`), the OpenAPI document
(:mod:`asgi_mtls.fastapi`) and the middleware's ``deny_by_default`` gate (which route will
serve this request, and did it declare anything?).

A route *declares* when its endpoint carries a requirement decorator or ``@PUBLIC``, when its
FastAPI dependency tree (route, router and ``include_router`` dependencies, recursively)
contains a requirement or ``PUBLIC``, or when a middleware path policy covers it.  Starlette's
own ``@requires`` is not a declaration (it does not say *which* clients).

:class:`RouteAuthorizer` is stage 5 as the middleware runs it before the app: exempt paths,
``require_certificate``, the most specific path policy, then the gate; all on the path the
router routes on (:func:`~asgi_mtls.authorization.policies.route_path`, issue #8).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from starlette.routing import BaseRoute, Host, Match, Mount, Router

from asgi_mtls.authorization.dry_run import DryRun
from asgi_mtls.authorization.endpoints import Declarable, declared_requirements
from asgi_mtls.authorization.policies import PathPolicies, PathTable, PolicyValue, route_path
from asgi_mtls.authorization.requirements import Public, Requirement
from asgi_mtls.authorization.roles import RoleMap
from asgi_mtls.errors import ConfigurationError, Denied, RejectionReason
from asgi_mtls.events.types import Event, WouldDeny
from asgi_mtls.identity import ClientIdentity

__all__ = [
    "Declaration",
    "RouteAuthorizer",
    "RouteGate",
    "chain",
    "endpoint_handler",
    "find_router",
    "flatten_routes",
    "original_route",
    "route_declarations",
]

MAX_DEPTH: Final = 100


@dataclass(frozen=True)
class Declaration:
    """One thing a route declares: where it comes from and what it is."""

    source: str  # "decorator", "dependency", "policy /admin/*", "require_certificate"
    requirement: Declarable

    @property
    def dry_run(self) -> bool:
        """Whether the requirement is in report mode (reports, never refuses)."""
        return isinstance(self.requirement, DryRun)

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "allowed": self.requirement.describe(),
            "dry_run": self.dry_run,
        }


def chain(app: object) -> Iterator[object]:
    """``app`` and the apps it wraps (``.app`` attributes), without loops."""
    seen: set[int] = set()
    node: object = app
    for _ in range(MAX_DEPTH):
        if node is None or id(node) in seen:
            return
        seen.add(id(node))
        yield node
        node = getattr(node, "app", None)


def find_router(app: object) -> Router | None:
    """The Starlette ``Router`` that routes ``app``'s requests: ``app`` itself, its
    ``router`` (Starlette, FastAPI), or the first one down the ``.app`` chain of wrappers."""
    for node in chain(app):
        if isinstance(node, Router):
            return node
        router = getattr(node, "router", None)
        if isinstance(router, Router):
            return router
    return None


def flatten_routes(routes: Sequence[BaseRoute]) -> list[Any]:
    """Routes in matching order.  FastAPI (0.13x+ with ``iter_route_contexts``) keeps included
    routers as nested objects; its own flattening gives each route with the dependencies of
    every ``include_router`` above it.  Elsewhere the routes are already flat."""
    try:
        from fastapi.routing import iter_route_contexts  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return list(routes)
    return list(iter_route_contexts(routes))


def original_route(route: Any) -> Any:
    return getattr(route, "original_route", route)


def endpoint_handler(endpoint: Any, method: str | None) -> Any:
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
    original = original_route(route)
    if isinstance(original, Mount | Host):
        target = getattr(route, "app", None)
        marks = declared_requirements(target) or declared_requirements(
            getattr(route, "_base_app", None)
        )
        return tuple(Declaration("mounted app", mark) for mark in marks)
    found = [
        Declaration("decorator", mark)
        for mark in declared_requirements(
            endpoint_handler(getattr(route, "endpoint", None), method)
        )
    ]
    for call in _dependency_calls(getattr(route, "dependant", None)):
        if isinstance(call, Requirement | Public | DryRun):
            found.append(Declaration("dependency", call))
    return tuple(found)


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
            route = self._serving_route(self.router.routes, self.router, dict(scope), 0)
        except Exception:  # an unexpected routing shape: never guess "declared"
            return False
        if route is None:
            return None
        if route is False:
            return False
        method = scope.get("method") if scope.get("type") == "http" else None
        original = original_route(route)
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

    def _serving_route(
        self, routes: Sequence[BaseRoute], router: Router, scope: dict[str, Any], depth: int
    ) -> Any:
        """The leaf route for ``scope`` among ``routes`` (those of ``router``); ``None``: not
        found and ``router`` answers 404 itself; ``False``: not found, but the router may
        still serve the request (a default app, low-priority routes)."""
        chosen: tuple[Any, Mapping[str, Any]] | None = None
        partial: tuple[Any, Mapping[str, Any]] | None = None
        for route in flatten_routes(routes):
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
        if isinstance(original_route(route), Mount | Host):
            children = getattr(route, "routes", None) or ()
            if children:
                sub_router = find_router(getattr(route, "app", None))
                if sub_router is None or depth >= MAX_DEPTH:
                    return False
                return self._serving_route(
                    children, sub_router, {**scope, **child_scope}, depth + 1
                )
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


# -- the middleware's authorization, before the app runs ------------------------------------


def _check_exempt_policies(policies: PathPolicies, exempt: PathTable[bool]) -> None:
    """A policy that requires a certificate on a path where none is ever read can never be
    met: a :class:`ConfigurationError` at startup rather than a 401 for every client."""
    exempt_prefixes = [pattern for pattern, _ in exempt if pattern.endswith("*")]
    exempt_exact = {pattern for pattern, _ in exempt if not pattern.endswith("*")}
    for pattern, policy in policies:
        if not isinstance(policy, Requirement | DryRun):
            continue
        key = pattern.removesuffix("*")
        covering = [p for p in exempt_prefixes if key.startswith(p.removesuffix("*"))]
        if pattern in exempt_exact:
            covering.append(pattern)
        if covering:
            raise ConfigurationError(
                f"policies[{pattern!r}] requires a client certificate, but exempt_paths "
                f"{covering[0]!r} reads none there, so it can never be met: remove the path "
                "from exempt_paths or make the policy PUBLIC"
            )


class RouteAuthorizer:
    """What the middleware decides about a request before the app runs.

    :param app: the app whose routes the ``deny_by_default`` gate reads.
    :param policies: the path table (``{pattern: requirement, PUBLIC or dry_run(...)}``).
    :param deny_by_default: refuse (403 ``forbidden``) a request whose route declares no
        requirement and is not covered by a policy; ``"dry_run"``: report it instead
        (:class:`~asgi_mtls.events.WouldDeny`) and let it through.
    :param require_certificate: refuse (401 ``missing``) any anonymous request outside
        ``exempt_paths``.
    :param exempt_paths: paths on which no certificate is read at all (``*`` ends a prefix).
    :param roles: the role map, for reports (the resolver grants the roles).
    :param report: where report-mode refusals go (the middleware's listeners; ``None``: they
        are dropped).
    """

    def __init__(
        self,
        app: object,
        *,
        policies: Mapping[str, PolicyValue] | Iterable[tuple[str, PolicyValue]] = (),
        deny_by_default: bool | Literal["dry_run"] = False,
        require_certificate: bool = False,
        exempt_paths: Iterable[str] = (),
        roles: RoleMap | None = None,
        report: Callable[[Event], object] | None = None,
    ) -> None:
        if deny_by_default not in (True, False, "dry_run"):
            raise ConfigurationError(
                f"deny_by_default must be True, False or 'dry_run', not {deny_by_default!r}"
            )
        self.policies = PathPolicies(policies)
        #: Enforced: an undeclared route is refused.
        self.deny_by_default = deny_by_default is True
        #: Report mode: an undeclared route is reported, and served.
        self.deny_by_default_dry_run = deny_by_default == "dry_run"
        self.require_certificate = require_certificate
        self.exempt_paths = PathTable([(path, True) for path in exempt_paths], "exempt path")
        self.roles = roles
        self.report = report
        _check_exempt_policies(self.policies, self.exempt_paths)
        # Built now, so that an app whose routes cannot be found fails at startup.
        gated = self.deny_by_default or self.deny_by_default_dry_run
        self.gate = RouteGate(app) if gated else None
        #: Whether :meth:`authorize` can refuse or report anything (else the middleware skips
        #: it).
        self.active = bool(self.policies) or gated or require_certificate

    def is_exempt(self, path: str) -> bool:
        """No certificate is read on ``path`` (a route path, see ``route_path``)."""
        return self.exempt_paths.lookup(path) is not None

    def policy_for(self, path: str) -> tuple[str, PolicyValue] | None:
        return self.policies.lookup(path)

    def authorize(self, scope: Mapping[str, Any], identity: ClientIdentity | None) -> None:
        """Raise :class:`~asgi_mtls.errors.Denied` unless ``identity`` may go on to the app:
        ``missing`` 401 (anonymous where a certificate is required), ``forbidden`` 403.
        What a report-mode policy or gate would refuse is reported instead."""
        path = route_path(scope)
        if identity is None and self.require_certificate and not self.is_exempt(path):
            raise Denied(
                RejectionReason.MISSING,
                "no client certificate",
                where="require_certificate",
                requirement="a client certificate",
            )
        found = self.policies.lookup(path) if self.policies else None
        if found is not None:
            pattern, policy = found
            if isinstance(policy, Requirement):
                policy.verify(identity, context=f"policy {pattern}")
            elif isinstance(policy, DryRun):
                policy.evaluate(scope, identity, where=f"policy {pattern}", report=self.report)
            return
        if self.gate is not None and self.gate.declared(scope) is False:
            detail = (
                "deny_by_default: the route declares no requirement"
                f" ({scope.get('method', 'WEBSOCKET')} {path})"
            )
            if self.deny_by_default:
                raise Denied(
                    RejectionReason.FORBIDDEN,
                    detail,
                    where="deny_by_default",
                    requirement="a declared requirement",
                    identity=identity,
                )
            if self.report is not None:
                self.report(
                    WouldDeny(
                        scope,
                        RejectionReason.FORBIDDEN,
                        detail,
                        identity,
                        "deny_by_default",
                        "a declared requirement",
                    )
                )
