"""Principal strategies: which of a certificate's names is the client's principal.

Each strategy returns a :class:`~asgi_mtls.identity.names.Principal`, a name *with its kind*,
so that a requirement naming a SPIFFE ID can only be met by a SPIFFE ID (issue #8).  An app's
own mapper may return a ``Principal`` (kept as it is) or a plain string (kind ``custom``: the
app chose its names, so plain strings in requirements match it by value).

Strategies (``MTLSMiddleware(principal=...)``):

==============  ==================================================================  ========
name            principal                                                           kind
==============  ==================================================================  ========
``default``     SPIFFE ID, else first URI, first DNS name, first email, single CN   per name
``spiffe``      the SPIFFE ID                                                       spiffe
``uri``         first non-SPIFFE URI, else the SPIFFE ID                            uri
``dns``         first DNS SAN                                                       dns
``email``       first email SAN                                                     email
``cn``          the subject's single CN                                             cn
``subject``     the whole subject (RFC 4514)                                        subject
``fingerprint`` SHA-256 of the certificate                                          fingerprint
``kubernetes``  the single CN (groups: the ``O`` values), as Kubernetes' x509 auth  cn
``envoy``       first URI, else first DNS name, else the subject (Envoy RBAC)       per name
==============  ==================================================================  ========

A ``spiffe:`` URI SAN that is not a valid SPIFFE ID (malformed, or beside another URI SAN)
stops ``default`` and ``envoy``: it never falls through to another name.

A server-verified name (issue #12) has a subject and nothing else, so ``default`` gives its
single CN, ``envoy`` its subject, ``cn``, ``subject`` and ``kubernetes`` what they always do,
and ``spiffe``, ``uri``, ``dns``, ``email`` and ``fingerprint`` nothing (``no_principal``);
:func:`~asgi_mtls.identity.reader.build_name_identity` refuses any other kind a mapper returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from asgi_mtls.identity.identity import ClientIdentity
from asgi_mtls.identity.names import NameKind, Principal

__all__ = ["PrincipalMapper", "PrincipalStrategy", "StrategyName", "resolve_principal_strategy"]

StrategyName = Literal[
    "default",
    "spiffe",
    "uri",
    "dns",
    "email",
    "cn",
    "subject",
    "fingerprint",
    "kubernetes",
    "envoy",
]
#: An app's own mapper: receives the identity (with an empty principal) and returns the
#: principal, or ``None`` to refuse the certificate (reason ``no_principal``).
PrincipalMapper = Callable[[ClientIdentity], Principal | str | None]


@dataclass(frozen=True, slots=True)
class PrincipalStrategy:
    """A named way of choosing the principal (and, for ``kubernetes``, the groups)."""

    name: str
    mapper: PrincipalMapper
    groups_from_organization: bool = False

    def pick(self, identity: ClientIdentity) -> Principal | None:
        """The principal of ``identity`` (built with an empty one), or ``None``."""
        found = self.mapper(identity)
        if found is None or isinstance(found, Principal):
            return found
        if not isinstance(found, str):
            raise TypeError(f"principal mapper returned {type(found).__name__}, not a str")
        return Principal(NameKind.CUSTOM, found) if found else None

    def groups(self, identity: ClientIdentity) -> tuple[str, ...]:
        """Kubernetes' x509 authenticator reads the groups from the subject's ``O`` values."""
        return identity.attribute("O") if self.groups_from_organization else ()


def _spiffe(identity: ClientIdentity) -> Principal | None:
    spiffe = identity.spiffe_id
    return Principal(NameKind.SPIFFE, str(spiffe)) if spiffe is not None else None


def _first(kind: NameKind, values: tuple[str, ...]) -> Principal | None:
    return Principal(kind, values[0]) if values else None


def _single_cn(identity: ClientIdentity) -> Principal | None:
    # More than one CN is ambiguous: no CN principal at all (fail closed).
    names = identity.common_names
    return Principal(NameKind.CN, names[0]) if len(names) == 1 else None


def _has_invalid_spiffe(identity: ClientIdentity) -> bool:
    """A ``spiffe:`` URI SAN without a valid SPIFFE ID: malformed, or not the only URI."""
    return identity.spiffe_id is None and any(
        uri.lower().startswith("spiffe:") for uri in identity.uris
    )


def _first_uri(identity: ClientIdentity) -> Principal | None:
    if identity.spiffe_id is not None:  # then it is the only URI SAN
        return _spiffe(identity)
    return _first(NameKind.URI, identity.uris)


def _default(identity: ClientIdentity) -> Principal | None:
    if _has_invalid_spiffe(identity):
        return None  # an invalid SPIFFE ID must not fall through to another name
    return (
        _first_uri(identity)
        or _first(NameKind.DNS, identity.dns_names)
        or _first(NameKind.EMAIL, identity.emails)
        or _single_cn(identity)
    )


def _uri(identity: ClientIdentity) -> Principal | None:
    others = tuple(uri for uri in identity.uris if not uri.lower().startswith("spiffe:"))
    return _first(NameKind.URI, others) or _spiffe(identity)


def _envoy(identity: ClientIdentity) -> Principal | None:
    if _has_invalid_spiffe(identity):
        return None
    subject = identity.subject
    return (
        _first_uri(identity)
        or _first(NameKind.DNS, identity.dns_names)
        or (Principal(NameKind.SUBJECT, subject) if subject else None)
    )


def _fingerprint(identity: ClientIdentity) -> Principal | None:
    # A server-verified name has no certificate to take a digest of (issue #12).
    if identity.certificate is None:
        return None
    return Principal(NameKind.FINGERPRINT, identity.fingerprint_sha256)


def _subject(identity: ClientIdentity) -> Principal | None:
    return Principal(NameKind.SUBJECT, identity.subject) if identity.subject else None


_STRATEGIES: Final[dict[str, PrincipalStrategy]] = {
    strategy.name: strategy
    for strategy in (
        PrincipalStrategy("default", _default),
        PrincipalStrategy("spiffe", _spiffe),
        PrincipalStrategy("uri", _uri),
        PrincipalStrategy("dns", lambda i: _first(NameKind.DNS, i.dns_names)),
        PrincipalStrategy("email", lambda i: _first(NameKind.EMAIL, i.emails)),
        PrincipalStrategy("cn", _single_cn),
        PrincipalStrategy("subject", _subject),
        PrincipalStrategy("fingerprint", _fingerprint),
        PrincipalStrategy("kubernetes", _single_cn, groups_from_organization=True),
        PrincipalStrategy("envoy", _envoy),
    )
}


def resolve_principal_strategy(
    principal: StrategyName | str | PrincipalMapper | PrincipalStrategy,
) -> PrincipalStrategy:
    """A strategy from its name, an app's mapper (callable), or a strategy."""
    if isinstance(principal, PrincipalStrategy):
        return principal
    if callable(principal):
        return PrincipalStrategy(getattr(principal, "__name__", "custom"), principal)
    try:
        return _STRATEGIES[principal]
    except (KeyError, TypeError):
        names = ", ".join(sorted(_STRATEGIES))
        raise ValueError(f"unknown principal strategy {principal!r}; use one of {names}") from None
