"""Path policies: route requirements kept in one table on the middleware.

::

    MTLSMiddleware(app, trust=..., policies={
        "/health": PUBLIC,
        "/admin/*": role("admin"),
        "/admin/reports/*": role("admin") | role("auditor"),
    })

Semantics:

- a pattern is an exact path (``/health``) or a prefix ending in ``*`` (``/admin/*`` matches
  ``/admin/`` and everything below it, but not ``/admin`` itself; add ``/admin`` as well if it
  is a route).  ``*`` anywhere else is an error;
- patterns are matched against **the path the router routes on**: ``scope["path"]``
  (percent-decoded) without the ``root_path`` prefix, case-sensitively (:func:`route_path`).
  Under ``uvicorn --root-path /api`` a request for ``/api/admin`` is routed, and policed, as
  ``/admin``; a middleware inside a ``Mount("/sub", ...)`` sees the path below ``/sub``
  (issue #8: a policy checked on another path than the router's is a bypass);
- **the most specific pattern wins**, whatever the declaration order: an exact pattern beats
  every prefix, a longer prefix beats a shorter one.  One policy applies per request;
- the value is a requirement (anonymous → 401 ``missing``, not allowed → 403 ``forbidden``),
  ``PUBLIC`` (no check), or ``dry_run(requirement)`` (report mode: what it would refuse is
  reported, nothing is refused; :mod:`~asgi_mtls.authorization.dry_run`).  The policy is
  checked by the middleware before the app runs; the route's own requirements (decorator,
  dependency) still apply after it.

The same :class:`PathTable` matches the middleware's ``exempt_paths``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from asgi_mtls.authorization.dry_run import DryRun
from asgi_mtls.authorization.requirements import Public, Requirement
from asgi_mtls.identity.names import check_name

__all__ = ["PathPolicies", "PathTable", "PolicyValue", "route_path"]

#: A path table value: a requirement, ``PUBLIC`` (no check), or a requirement in report mode
#: (:func:`~asgi_mtls.authorization.dry_run.dry_run`).
PolicyValue = Requirement | Public | DryRun
V = TypeVar("V")


def route_path(scope: Mapping[str, Any]) -> str:
    """The path Starlette's router matches routes on: ``scope["path"]`` minus ``root_path``.

    The ASGI HTTP spec (2.x) has ``path`` include ``root_path``; servers that follow it
    (uvicorn ``--root-path``) and Starlette's ``Mount`` (which extends ``root_path``) rely on
    the router stripping it.  This is the same rule as Starlette's router
    (``starlette.routing``, ``get_route_path``): a ``path`` that does not start with
    ``root_path`` followed by ``/`` is used as it is.
    """
    path: str = scope.get("path", "")
    root_path: str = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path):
        return path
    if path == root_path:
        return ""
    if path[len(root_path)] == "/":
        return path[len(root_path) :]
    return path


class PathTable(Generic[V]):
    """Exact and ``*``-prefix patterns → values; :meth:`lookup` finds the most specific."""

    def __init__(self, entries: Mapping[str, V] | Iterable[tuple[str, V]], what: str) -> None:
        items = list(entries.items() if isinstance(entries, Mapping) else entries)
        self._exact: dict[str, V] = {}
        prefixes: dict[str, V] = {}
        for pattern, value in items:
            check_name(pattern, f"{what} pattern")
            if not pattern.startswith("/"):
                raise ValueError(f"{what} pattern {pattern!r} must start with '/'")
            if "*" in pattern[:-1]:
                raise ValueError(f"{what} pattern {pattern!r}: '*' is allowed only at the end")
            table = prefixes if pattern.endswith("*") else self._exact
            key = pattern.removesuffix("*")
            if key in table:
                raise ValueError(f"{what} pattern {pattern!r}: the same pattern appears twice")
            table[key] = value
        self.patterns: tuple[tuple[str, V], ...] = tuple(items)
        # Longest prefix first: the first hit is the most specific.
        self._prefixes = tuple(sorted(prefixes.items(), key=lambda item: -len(item[0])))

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def __iter__(self) -> Iterator[tuple[str, V]]:
        return iter(self.patterns)

    def lookup(self, path: str) -> tuple[str, V] | None:
        """The most specific ``(pattern, value)`` for ``path``, or ``None``."""
        exact = self._exact.get(path)
        if exact is not None or path in self._exact:
            return path, self._exact[path]
        for prefix, value in self._prefixes:
            if path.startswith(prefix):
                return prefix + "*", value
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self.patterns)!r})"


class PathPolicies(PathTable[PolicyValue]):
    """The middleware's ``policies=`` table: each value a requirement or ``PUBLIC``."""

    def __init__(
        self, policies: Mapping[str, PolicyValue] | Iterable[tuple[str, PolicyValue]]
    ) -> None:
        super().__init__(policies, "path")
        for pattern, policy in self.patterns:
            if not isinstance(policy, Requirement | Public | DryRun):
                raise TypeError(
                    f"policy for {pattern!r} must be a requirement, PUBLIC or dry_run(...), "
                    f"not {policy!r}"
                )
