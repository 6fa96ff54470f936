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
- patterns are matched against ``scope["path"]`` (percent-decoded, without ``root_path``),
  case-sensitively, exactly as the router sees it;
- **the most specific pattern wins**, whatever the declaration order: an exact pattern beats
  every prefix, a longer prefix beats a shorter one.  One policy applies per request;
- the value is a requirement (anonymous → 401 ``missing``, not allowed → 403 ``forbidden``)
  or ``PUBLIC`` (no check).  The policy is checked by the middleware before the app runs; the
  route's own requirements (decorator, dependency) still apply after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Final

from asgi_mtls.authorization import Public, Requirement, check_name

__all__ = ["PathPolicies", "Policy"]

Policy = Requirement | Public
_CONFLICT: Final = "the same pattern appears twice"


class PathPolicies:
    """A compiled path table: ``lookup(path)`` → ``(pattern, policy)`` or ``None``."""

    def __init__(self, policies: Mapping[str, Policy] | Iterable[tuple[str, Policy]]) -> None:
        items = list(policies.items() if isinstance(policies, Mapping) else policies)
        self._exact: dict[str, Policy] = {}
        prefixes: dict[str, Policy] = {}
        self.patterns: tuple[tuple[str, Policy], ...] = ()
        for pattern, policy in items:
            check_name(pattern, "path pattern")
            if not pattern.startswith("/"):
                raise ValueError(f"path pattern {pattern!r} must start with '/'")
            if "*" in pattern[:-1]:
                raise ValueError(f"path pattern {pattern!r}: '*' is allowed only at the end")
            if not isinstance(policy, Requirement | Public):
                raise TypeError(
                    f"policy for {pattern!r} must be a requirement or PUBLIC, not {policy!r}"
                )
            table = prefixes if pattern.endswith("*") else self._exact
            key = pattern[:-1] if pattern.endswith("*") else pattern
            if key in table:
                raise ValueError(f"path pattern {pattern!r}: {_CONFLICT}")
            table[key] = policy
        self.patterns = tuple(items)
        # Longest prefix first: the first hit is the most specific.
        self._prefixes = tuple(sorted(prefixes.items(), key=lambda item: -len(item[0])))

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def __iter__(self) -> Iterator[tuple[str, Policy]]:
        return iter(self.patterns)

    def lookup(self, path: str) -> tuple[str, Policy] | None:
        """The most specific ``(pattern, policy)`` for ``path``, or ``None``."""
        policy = self._exact.get(path)
        if policy is not None:
            return path, policy
        for prefix, policy in self._prefixes:
            if path.startswith(prefix):
                return prefix + "*", policy
        return None

    def __repr__(self) -> str:
        return f"PathPolicies({dict(self.patterns)!r})"
