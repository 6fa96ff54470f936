"""Matchers on the client's names: the building blocks of route requirements.

Each function returns a :class:`~asgi_mtls.authorization.Requirement`, so a matcher is used
exactly like ``require_client(...)`` (decorator, FastAPI dependency, path-table value, or a
positional argument of ``require_client``) and combines with ``&``, ``|`` and ``~``::

    admin = role("payments-admin") | principal("spiffe://bank.example/ops")
    web = spiffe_glob("spiffe://prod.example/ns/*/sa/web")
    sre = subject_attribute("OU", "SRE") & issuer("CN=Corp Issuing CA,O=Corp")

Comparison rules, the same everywhere:

- values are compared exactly as parsed from the certificate: case-sensitive, no trimming,
  no Unicode case folding or NFKC normalisation, so ``\u0430dmin`` (with a Cyrillic a)
  never equals ``admin`` and a glob's literal parts never match a look-alike;
- configured names and patterns are checked when the matcher is built: empty values,
  invisible or control characters (NUL, zero-width space, bidi controls) are a ``ValueError``;
- globs: ``*`` matches within one segment (never across the separator, ``/`` for principals
  and SPIFFE paths, ``.`` for DNS names); a segment that is exactly ``*`` matches one whole,
  non-empty segment; a segment that is exactly ``**`` matches one or more whole segments.
  Every other character is literal (``?``, ``[``, ``\\`` included).

Matchers on the certificate itself (subject attributes, issuer, fingerprint, public key) are in
:mod:`~asgi_mtls.authorization.certificates`, ``role`` is in
:mod:`~asgi_mtls.authorization.roles`, ``predicate`` in
:mod:`~asgi_mtls.authorization.requirements`; :mod:`asgi_mtls.authorization` has them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Final

from asgi_mtls.authorization.requirements import (
    PrincipalRequirement,
    Requirement,
    check_name,
)
from asgi_mtls.identity import ClientIdentity
from asgi_mtls.identity.names import (
    NameKind,
    is_dns_name,
    is_uri,
    parse_principal,
    parse_spiffe_id,
    parse_trust_domain,
)

__all__ = [
    "Glob",
    "ValueIn",
    "cn",
    "dns_name",
    "group",
    "name_set",
    "principal",
    "principal_glob",
    "spiffe_glob",
    "spiffe_prefix",
    "trust_domain",
]

_SPIFFE_SEGMENT_PATTERN: Final = re.compile(r"[A-Za-z0-9._*-]+")


def name_set(values: Iterable[str], what: str) -> frozenset[str]:
    names = frozenset(check_name(value, what) for value in values)
    if not names:
        raise ValueError(f"at least one {what} is needed")
    return names


class ValueIn(Requirement):
    """Allows when one of the values ``read`` takes from the identity is one of ``allowed``,
    compared exactly: the one shape of every matcher that compares a field of the certificate
    with configured values (:func:`cn`, :func:`trust_domain`, :func:`group`,
    :func:`~asgi_mtls.authorization.certificates.subject_attribute`,
    :func:`~asgi_mtls.authorization.certificates.fingerprint`, ``role``).  ``label`` starts
    the description: ``"group in"`` describes ``group in ops, sre``."""

    def __init__(
        self,
        label: str,
        read: Callable[[ClientIdentity], Iterable[object]],
        allowed: frozenset[str],
        *,
        pure: bool = False,
    ) -> None:
        self.label = label
        self.read = read
        self.allowed = allowed
        #: ``read`` takes a field of the identity and nothing else (the built-in matchers).
        self.pure = pure

    def _matches(self, identity: ClientIdentity) -> bool:
        return not self.allowed.isdisjoint(self.read(identity))

    def describe(self) -> str:
        return f"{self.label} {', '.join(sorted(self.allowed))}"


class Glob:
    """A compiled glob over ``separator``-delimited text (see the module docstring)."""

    def __init__(self, pattern: str, separator: str = "/") -> None:
        self.pattern = check_name(pattern, "pattern")
        self.separator = separator
        sep = re.escape(separator)
        one = f"[^{sep}]"
        pieces = []
        for segment in pattern.split(separator):
            if segment == "**":
                pieces.append(f"{one}+(?:{sep}{one}+)*")
            elif "**" in segment:
                raise ValueError(f"'**' must be a whole segment in pattern {pattern!r}")
            elif segment == "*":
                pieces.append(f"{one}+")
            else:
                pieces.append(f"{one}*".join(re.escape(part) for part in segment.split("*")))
        self.regex = re.compile(sep.join(pieces))

    def matches(self, value: str) -> bool:
        return self.regex.fullmatch(value) is not None

    @property
    def is_literal(self) -> bool:
        return "*" not in self.pattern

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"


# -- names ----------------------------------------------------------------------------------


def principal(*names: str) -> Requirement:
    """The principal is one of ``names``, compared by kind and value: each name's kind comes
    from its shape (``spiffe://...`` a SPIFFE ID, ``scheme:...`` a URI, ``a@b`` an email, a
    host name a DNS name, ``CN=...`` a subject, 64 hex digits a fingerprint; see
    :func:`~asgi_mtls.identity.names.parse_principal`).  For a common name use :func:`cn`."""
    if not names:
        raise ValueError("at least one principal is needed")
    return PrincipalRequirement(parse_principal(name) for name in names)


def _single_common_name(identity: ClientIdentity) -> tuple[str, ...]:
    """The subject's common name; nothing when it has none or several (never matched)."""
    common_names = identity.common_names
    return common_names if len(common_names) == 1 else ()


def cn(*names: str) -> Requirement:
    """The certificate's subject has exactly one common name, and it is one of ``names``.

    The only way to match a CN: a plain string in a requirement is never compared with a CN
    (it could be a DNS name; issue #8).  Whatever the principal strategy, this reads the
    subject itself; two CNs in one subject never match."""
    return ValueIn("CN in", _single_common_name, name_set(names, "common name"), pure=True)


#: Glob separators per kind: ``*`` stays inside one label of a DNS name, one path segment
#: of a URI or SPIFFE ID.
_GLOB_SEPARATORS: Final = {NameKind.DNS: "."}


def _glob_kind(pattern: str) -> NameKind:
    check_name(pattern, "pattern")
    if pattern.lower().startswith("spiffe:"):
        return NameKind.SPIFFE
    if is_uri(pattern.replace("*", "x")):
        return NameKind.URI
    if "@" in pattern:
        return NameKind.EMAIL
    if is_dns_name(pattern.replace("*", "x")):
        return NameKind.DNS
    raise ValueError(
        f"cannot tell which kind of name the pattern {pattern!r} is for; pass kind= "
        "(spiffe, uri, dns, email, cn)"
    )


class _PrincipalGlob(Requirement):
    pure = True

    def __init__(self, globs: tuple[tuple[NameKind, Glob], ...]) -> None:
        self.globs = globs

    def _matches(self, identity: ClientIdentity) -> bool:
        kind, value = identity.principal_kind, identity.principal
        return any(
            (kind is wanted or kind is NameKind.CUSTOM) and glob.matches(value)
            for wanted, glob in self.globs
        )

    def describe(self) -> str:
        return "principal matches " + " or ".join(
            f"{kind.value}:{glob.pattern}" for kind, glob in self.globs
        )


def principal_glob(*patterns: str, kind: NameKind | str | None = None) -> Requirement:
    """The principal matches one of the glob ``patterns``, and is of the pattern's kind
    (inferred from its shape as in :func:`principal`, or given: ``kind="cn"``).  ``*`` stays
    within one ``/``-separated segment (one ``.``-separated label for DNS names), ``**``
    spans segments.  For SPIFFE IDs prefer :func:`spiffe_glob`, which also checks the
    pattern is a valid SPIFFE ID pattern.  Subjects cannot be globbed (no patterns over DN
    strings)."""
    if not patterns:
        raise ValueError("at least one pattern is needed")
    forced = None if kind is None else NameKind(kind)
    if forced in (NameKind.SUBJECT, NameKind.FINGERPRINT):
        raise ValueError(f"principal_glob does not match {forced.value} principals")
    globs = []
    for pattern in patterns:
        wanted = forced or _glob_kind(pattern)
        globs.append((wanted, Glob(pattern, _GLOB_SEPARATORS.get(wanted, "/"))))
    return _PrincipalGlob(tuple(globs))


class _SpiffeGlob(Requirement):
    pure = True

    def __init__(self, patterns: tuple[tuple[str, Glob | None, str], ...]) -> None:
        self.patterns = patterns  # (trust domain, path glob or None for no path, text)

    def _matches(self, identity: ClientIdentity) -> bool:
        spiffe = identity.spiffe_id
        if spiffe is None:
            return False
        for domain, glob, _ in self.patterns:
            if spiffe.trust_domain != domain:
                continue
            if glob is None:
                if spiffe.path == "":
                    return True
            elif spiffe.path and glob.matches(spiffe.path[1:]):
                return True
        return False

    def describe(self) -> str:
        return "SPIFFE ID matches " + " or ".join(text for _, _, text in self.patterns)


def _spiffe_pattern(pattern: str) -> tuple[str, Glob | None, str]:
    check_name(pattern, "SPIFFE ID pattern")
    if not pattern.startswith("spiffe://"):
        raise ValueError(f"SPIFFE ID pattern {pattern!r} must start with 'spiffe://'")
    domain, slash, path = pattern[len("spiffe://") :].partition("/")
    try:
        parse_trust_domain(domain)
    except ValueError:
        raise ValueError(
            f"invalid trust domain {domain!r} in SPIFFE ID pattern {pattern!r}"
            " (wildcards are for the path only)"
        ) from None
    if not slash:
        return domain, None, pattern
    for segment in path.split("/"):
        if not _SPIFFE_SEGMENT_PATTERN.fullmatch(segment) or segment in (".", ".."):
            raise ValueError(f"invalid path segment {segment!r} in SPIFFE ID pattern {pattern!r}")
    return domain, Glob(path, "/"), pattern


def spiffe_glob(*patterns: str) -> Requirement:
    """The client's (strictly parsed) SPIFFE ID matches one of ``patterns``, e.g.
    ``spiffe://prod.example/ns/*/sa/web``.  The trust domain is literal; path segments may
    use ``*`` and ``**``.  A client without a valid SPIFFE ID never matches."""
    if not patterns:
        raise ValueError("at least one pattern is needed")
    return _SpiffeGlob(tuple(_spiffe_pattern(pattern) for pattern in patterns))


class _SpiffePrefix(Requirement):
    pure = True

    def __init__(self, prefixes: tuple[tuple[str, tuple[str, ...]], ...]) -> None:
        self.prefixes = prefixes  # (trust domain, path segments)

    def _matches(self, identity: ClientIdentity) -> bool:
        spiffe = identity.spiffe_id
        if spiffe is None:
            return False
        segments = spiffe.segments
        return any(
            spiffe.trust_domain == domain and segments[: len(prefix)] == prefix
            for domain, prefix in self.prefixes
        )

    def describe(self) -> str:
        texts = [f"spiffe://{d}" + "".join("/" + s for s in p) for d, p in self.prefixes]
        return "SPIFFE ID under " + " or ".join(texts)


def spiffe_prefix(*prefixes: str) -> Requirement:
    """The client's SPIFFE ID is one of ``prefixes`` or below it, segment by segment:
    ``spiffe://bank.example/ns/pay`` covers ``.../ns/pay`` and ``.../ns/pay/sa/web`` but not
    ``.../ns/payments``."""
    if not prefixes:
        raise ValueError("at least one SPIFFE ID prefix is needed")
    parsed = []
    for prefix in prefixes:
        spiffe = parse_spiffe_id(check_name(prefix, "SPIFFE ID prefix"))
        parsed.append((spiffe.trust_domain, spiffe.segments))
    return _SpiffePrefix(tuple(parsed))


def trust_domain(*domains: str) -> Requirement:
    """The client's SPIFFE ID belongs to one of the trust ``domains``."""
    for domain in domains:
        parse_trust_domain(domain)
    allowed = name_set(domains, "trust domain")
    return ValueIn(
        "SPIFFE trust domain", lambda identity: (identity.trust_domain,), allowed, pure=True
    )


class _DnsName(Requirement):
    pure = True

    def __init__(self, globs: tuple[Glob, ...]) -> None:
        self.globs = globs

    def _matches(self, identity: ClientIdentity) -> bool:
        return any(glob.matches(name) for glob in self.globs for name in identity.dns_names)

    def describe(self) -> str:
        return "DNS name matches " + " or ".join(glob.pattern for glob in self.globs)


def dns_name(*patterns: str) -> Requirement:
    """One of the client's DNS SANs matches one of ``patterns`` (globs over ``.``-separated
    labels: ``*.internal.example`` matches ``a.internal.example``, not
    ``a.b.internal.example``).  Exact comparison: DNS names are not case-folded."""
    if not patterns:
        raise ValueError("at least one pattern is needed")
    return _DnsName(tuple(Glob(pattern, ".") for pattern in patterns))


def group(*names: str) -> Requirement:
    """The client is in one of the Kubernetes groups ``names`` (``ClientIdentity.groups``,
    set by the ``kubernetes`` principal strategy from the subject's ``O`` values)."""
    return ValueIn("group in", attrgetter("groups"), name_set(names, "group"), pure=True)
