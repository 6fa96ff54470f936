"""Route-level authorization: which identities may call a route.

A :class:`Requirement` decides whether a :class:`~asgi_mtls.identity.ClientIdentity` may call a
route.  ``require_client(...)`` builds one, :mod:`~asgi_mtls.authorization.matchers` has the
building blocks (``principal``, ``spiffe_glob``, ``role``, ``issuer``, ...), and they combine
with ``&``, ``|`` and ``~``.  Every requirement serves four ways:

- a Starlette endpoint decorator (sync or async HTTP endpoints, WebSocket endpoints)::

      @require_client("spiffe://bank.example/payments")
      async def pay(request): ...

- a FastAPI dependency returning the identity::

      def pay(client: ClientIdentity = Depends(require_client(trust_domain="bank.example"))): ...

- a value in the middleware's path table: ``MTLSMiddleware(..., policies={"/admin/*": ...})``;

- a plain check: ``requirement.check(request)`` returns the identity or raises
  :class:`~asgi_mtls.errors.CertificateRejected`.

No certificate (or an anonymous request) is ``missing`` (401); a valid certificate that the
requirement does not allow is ``forbidden`` (403).  A requirement with no arguments allows any
client with a valid certificate.  :data:`PUBLIC` marks a route as deliberately open, for
``deny_by_default`` apps and for the audit (``asgi-mtls routes``).

Fail closed: a requirement that raises while deciding (a predicate with a bug) denies, and the
exception is logged; it never allows, even under ``~`` (negation).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from starlette.requests import HTTPConnection

from asgi_mtls.authorization.endpoints import (
    PUBLIC,
    REQUIREMENTS_ATTRIBUTE,
    Declarable,
    F,
    Public,
    declared_requirements,
    guard,
    rejection_handler,
    rejection_response,
)
from asgi_mtls.errors import Denied, RejectionReason
from asgi_mtls.identity import ClientIdentity
from asgi_mtls.identity.names import (
    NameKind,
    Principal,
    check_name,
    parse_principal,
    parse_trust_domain,
)
from asgi_mtls.inject import get_client_identity
from asgi_mtls.log import get_logger

__all__ = [
    "PUBLIC",
    "REQUIREMENTS_ATTRIBUTE",
    "AllOf",
    "AnyOf",
    "ClientRequirement",
    "Not",
    "PrincipalRequirement",
    "Public",
    "Requirement",
    "check_name",
    "declared_requirements",
    "predicate",
    "rejection_handler",
    "rejection_response",
    "require_client",
]

logger = get_logger()


class _Denied(Exception):
    """A condition failed while deciding (already logged): the whole requirement denies."""


class Requirement(Declarable):
    """Decides whether a client identity may call a route.  Subclasses implement
    :meth:`_matches` (may raise: the caller denies) and :meth:`describe`.

    Requirements are immutable after construction and compare by identity (FastAPI uses them
    as dependency cache keys).  Combine them with ``&`` (all), ``|`` (any) and ``~`` (not);
    evaluation goes left to right and stops early, like Python's ``and``/``or``.

    A requirement whose every part is :attr:`pure` remembers on the identity that it allows
    it (issue #10: a known client's route check is one dictionary probe); anything else, a
    predicate or a subclass of yours, decides on every request.
    """

    #: The decision depends on the identity alone (its certificate fields and roles), never
    #: on outside state: a positive one is kept on the identity.  ``False`` unless a class
    #: says otherwise; the built-in matchers do.
    pure: bool = False

    def _matches(self, identity: ClientIdentity) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        """A one-line human description, for docs, OpenAPI and audits."""
        raise NotImplementedError

    def children(self) -> tuple[Requirement, ...]:
        """The requirements this one is built from (for walking a requirement tree)."""
        return ()

    def walk(self) -> Iterator[Requirement]:
        """This requirement and every requirement below it, depth first."""
        yield self
        for child in self.children():
            yield from child.walk()

    @functools.cached_property
    def _remembered(self) -> bool:
        """Whether every part is :attr:`pure`, so that an "allowed" may be kept on the
        identity.  Decided once: requirements are immutable (an impure one would otherwise
        walk its tree on every request)."""
        return all(node.pure for node in self.walk())

    def _nested(self) -> str:
        """The description, parenthesised when it is a combination (inside another one)."""
        return self.describe()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"

    def allows(self, identity: ClientIdentity) -> bool:
        """``True`` if ``identity`` satisfies the requirement.  Never raises: a condition that
        raises denies (fail closed) and is logged."""
        try:
            return bool(self._matches(identity))
        except _Denied:
            return False
        except Exception:
            logger.exception("authorization requirement %r raised; denying", self)
            return False

    def explain(self, identity: ClientIdentity) -> str:
        """Why ``identity`` is denied, from the condition that denied it (like go-spiffe's
        matchers, a denial carries its reason).  Only meaningful when :meth:`allows` is
        false; combinations name the part that failed."""
        return f"not {self._nested()}"

    def verify(self, identity: ClientIdentity | None, *, context: str = "") -> ClientIdentity:
        """``identity`` if it is allowed; else raise :class:`~asgi_mtls.errors.Denied` (a
        ``CertificateRejected``): ``missing`` (anonymous) or ``forbidden``, with the denying
        condition in the log detail.  ``context`` says where the requirement applies
        (``"policy /admin/*"``; empty: a route)."""
        if identity is not None:
            computed = identity.computed
            if computed.get(self) is True:  # allowed before, and every part is pure
                return identity
            if self.allows(identity):
                if self._remembered:
                    computed[self] = True
                return identity
        prefix = f"{context}: " if context else ""
        where = context or "route"
        if identity is None:
            raise Denied(
                RejectionReason.MISSING,
                f"{prefix}anonymous request",
                where=where,
                requirement=self._described(),
            )
        try:
            why = self.explain(identity)
        except Exception:  # explaining must not turn a denial into a 500
            why = f"not {self._nested()}"
        raise Denied(
            RejectionReason.FORBIDDEN,
            f"{prefix}{identity.principal_kind.value} {identity.principal!r}: {why}",
            where=where,
            requirement=self._described(),
            identity=identity,
        )

    def _described(self) -> str:
        """:meth:`describe` for a denial's event; a requirement that cannot describe itself
        is named by its type (a denial must never become a 500)."""
        try:
            return self.describe()
        except Exception:
            return type(self).__name__

    def check(self, connection: HTTPConnection | Mapping[str, Any]) -> ClientIdentity:
        """The identity on ``connection`` if allowed; else raise ``CertificateRejected``."""
        identity = get_client_identity(connection)
        if identity is not None and identity.computed.get(self) is True:
            return identity  # :meth:`verify`'s first answer, without the call
        return self.verify(identity)

    # -- combinations ------------------------------------------------------------------------

    def __and__(self, other: Requirement) -> Requirement:
        if not isinstance(other, Requirement):
            return NotImplemented
        return AllOf(self, other)

    def __or__(self, other: Requirement) -> Requirement:
        if not isinstance(other, Requirement):
            return NotImplemented
        return AnyOf(self, other)

    def __invert__(self) -> Requirement:
        return Not(self)

    # -- as a FastAPI dependency and a Starlette decorator (see endpoints.py) ---------------

    async def _dependency(self, connection: HTTPConnection) -> ClientIdentity:
        return self.check(connection)

    def _decorate(self, endpoint: F) -> F:
        return guard(self, endpoint)


class _Combination(Requirement):
    pure = True  # as pure as its parts: verify walks them
    """Shared shape of :class:`AllOf` and :class:`AnyOf`: flattened parts, evaluated left to
    right by ``all`` or ``any`` (which stop early), described with one joiner."""

    _reduce: staticmethod[[Iterable[object]], bool]
    _joiner: str
    _empty: str

    def __init__(self, *parts: Requirement) -> None:
        flat: list[Requirement] = []
        for part in parts:
            if not isinstance(part, Requirement):
                raise TypeError(f"not a requirement: {part!r}")
            flat.extend(part.parts if isinstance(part, type(self)) else (part,))
        self.parts: tuple[Requirement, ...] = tuple(flat)

    def children(self) -> tuple[Requirement, ...]:
        return self.parts

    def _matches(self, identity: ClientIdentity) -> bool:
        return self._reduce(part._matches(identity) for part in self.parts)

    def describe(self) -> str:
        if not self.parts:
            return self._empty
        return f" {self._joiner} ".join(part._nested() for part in self.parts)

    def _nested(self) -> str:
        return f"({self.describe()})" if len(self.parts) > 1 else self.describe()


class AllOf(_Combination):
    """Allows when every part allows (``a & b``).  No parts: any valid client."""

    _reduce = staticmethod(all)
    _joiner = "and"
    _empty = "any valid client certificate"

    def explain(self, identity: ClientIdentity) -> str:
        for part in self.parts:
            if not part.allows(identity):
                return part.explain(identity)
        return super().explain(identity)


class AnyOf(_Combination):
    """Allows when at least one part allows (``a | b``).  No parts: nobody."""

    _reduce = staticmethod(any)
    _joiner = "or"
    _empty = "nobody"

    def explain(self, identity: ClientIdentity) -> str:
        if not self.parts:
            return "nobody is allowed"
        return "; ".join(part.explain(identity) for part in self.parts)


class Not(Requirement):
    pure = True  # as pure as its part
    """Allows when ``part`` does not (``~part``).  A part that raises still denies."""

    def __init__(self, part: Requirement) -> None:
        if not isinstance(part, Requirement):
            raise TypeError(f"not a requirement: {part!r}")
        self.part = part

    def _matches(self, identity: ClientIdentity) -> bool:
        return not self.part._matches(identity)

    def children(self) -> tuple[Requirement, ...]:
        return (self.part,)

    def describe(self) -> str:
        return f"not {self.part._nested()}"

    def explain(self, identity: ClientIdentity) -> str:
        return f"{self.part._nested()} holds"


class PrincipalRequirement(Requirement):
    pure = True
    """Allows a client whose principal is one of ``names``, compared by kind *and* value
    (issue #8): a CN, DNS or email SAN that holds the text of a SPIFFE ID is not that SPIFFE
    ID.  A principal of kind ``custom`` (a plain string from the app's own mapper) is
    compared by value: the app chose those names."""

    def __init__(self, names: Iterable[Principal]) -> None:
        self.names = frozenset(names)
        if not self.names:
            raise ValueError("at least one principal is needed")
        self._keys = frozenset((name.kind, name.value) for name in self.names)
        self._values = frozenset(name.value for name in self.names)

    def _matches(self, identity: ClientIdentity) -> bool:
        if identity.principal_kind is NameKind.CUSTOM:
            return identity.principal in self._values
        return (identity.principal_kind, identity.principal) in self._keys

    def describe(self) -> str:
        return "principal is " + " or ".join(sorted(name.describe() for name in self.names))

    def explain(self, identity: ClientIdentity) -> str:
        return "principal is not " + " or ".join(sorted(n.describe() for n in self.names))


class ClientRequirement(Requirement):
    """Allows a client whose identity satisfies every given condition.

    ``alternatives`` (positional): strings are principals of the kind their shape says
    (``spiffe://...`` a SPIFFE ID, ``scheme:...`` a URI, ``a@b`` an email, a host name a DNS
    name; see :func:`~asgi_mtls.identity.names.parse_principal`), compared by kind and value,
    exactly; requirement objects are matched; the client must satisfy at least one of them.
    ``trust_domain``: the client's SPIFFE ID must belong to it.  ``predicate``: any further
    test of the :class:`ClientIdentity` (one that raises denies).  The three kinds of
    condition combine with AND.
    """

    def __init__(
        self,
        *alternatives: str | Requirement,
        trust_domain: str | None = None,
        predicate: Callable[[ClientIdentity], bool] | None = None,
    ) -> None:
        principals: list[Principal] = []
        matchers: list[Requirement] = []
        for alternative in alternatives:
            if isinstance(alternative, Requirement):
                matchers.append(alternative)
            else:
                principals.append(parse_principal(alternative))
        if trust_domain is not None:
            parse_trust_domain(trust_domain)
        if principals:  # one typed comparison for all the strings, tried first
            matchers.insert(0, PrincipalRequirement(principals))
        self.matchers = tuple(matchers)
        self.trust_domain = trust_domain
        self.predicate = predicate
        self.pure = predicate is None

    def children(self) -> tuple[Requirement, ...]:
        return self.matchers

    def describe(self) -> str:
        alternatives = [matcher._nested() for matcher in self.matchers]
        parts = []
        if alternatives:
            either = " or ".join(alternatives)
            conditions = self.trust_domain is not None or self.predicate is not None
            parts.append(f"({either})" if conditions and len(alternatives) > 1 else either)
        if self.trust_domain:
            parts.append(f"SPIFFE trust domain {self.trust_domain}")
        if self.predicate is not None:
            parts.append(_describe_predicate(self.predicate))
        return " and ".join(parts) or "any valid client certificate"

    def _nested(self) -> str:
        described = self.describe()
        return f"({described})" if " and " in described or " or " in described else described

    def explain(self, identity: ClientIdentity) -> str:
        if self.matchers and not any(matcher.allows(identity) for matcher in self.matchers):
            return "; ".join(matcher.explain(identity) for matcher in self.matchers)
        if self.trust_domain is not None and identity.trust_domain != self.trust_domain:
            return f"SPIFFE trust domain {identity.trust_domain!r} is not {self.trust_domain!r}"
        return _describe_predicate(self.predicate)

    def _matches(self, identity: ClientIdentity) -> bool:
        if self.matchers and not any(matcher._matches(identity) for matcher in self.matchers):
            return False
        if self.trust_domain is not None and identity.trust_domain != self.trust_domain:
            return False
        if self.predicate is None:
            return True
        return run_predicate(self.predicate, identity)


def run_predicate(predicate: Callable[[ClientIdentity], object], identity: ClientIdentity) -> bool:
    """``bool(predicate(identity))``; a predicate that raises is logged and denies the whole
    requirement (it propagates as an internal signal, so ``~`` cannot turn it into a pass)."""
    try:
        return bool(predicate(identity))
    except Exception:  # a failing predicate denies (fail closed), it does not crash
        logger.exception("authorization predicate %r raised; denying", predicate)
        raise _Denied from None


def _describe_predicate(function: object) -> str:
    return f"predicate {getattr(function, '__name__', repr(function))}"


class _Predicate(Requirement):
    def __init__(self, function: Callable[[ClientIdentity], object]) -> None:
        self.function = function

    def _matches(self, identity: ClientIdentity) -> bool:
        return run_predicate(self.function, identity)

    def describe(self) -> str:
        return _describe_predicate(self.function)


def predicate(function: Callable[[ClientIdentity], object]) -> Requirement:
    """``function(identity)`` is truthy.  One that raises denies (fail closed, logged)."""
    if not callable(function):
        raise TypeError(f"not callable: {function!r}")
    return _Predicate(function)


def require_client(
    *alternatives: str | Requirement,
    trust_domain: str | None = None,
    predicate: Callable[[ClientIdentity], bool] | None = None,
) -> ClientRequirement:
    """Require a client certificate whose identity satisfies the given conditions.

    Positional arguments are alternatives (exact principal strings or requirement objects
    such as ``spiffe_glob(...)`` or ``role(...)``); see :class:`ClientRequirement`.  With no
    arguments any valid client is allowed.
    """
    return ClientRequirement(*alternatives, trust_domain=trust_domain, predicate=predicate)
