"""Matchers: the building blocks of route requirements.

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
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable
from typing import Final

from cryptography import x509

from asgi_mtls.authorization.requirements import (
    PrincipalRequirement,
    Requirement,
    check_name,
    run_predicate,
)
from asgi_mtls.identity import ClientIdentity
from asgi_mtls.identity.identity import SHORT_NAMES
from asgi_mtls.identity.names import (
    NameKind,
    is_dns_name,
    is_uri,
    parse_principal,
    parse_spiffe_id,
    parse_trust_domain,
)
from asgi_mtls.validation.trust import parse_pin

__all__ = [
    "Glob",
    "cn",
    "dns_name",
    "fingerprint",
    "group",
    "issuer",
    "predicate",
    "principal",
    "principal_glob",
    "role",
    "spiffe_glob",
    "spiffe_prefix",
    "spki_pin",
    "subject_attribute",
    "trust_domain",
]

_SPIFFE_SEGMENT_PATTERN: Final = re.compile(r"[A-Za-z0-9._*-]+")
_ROLE_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]*")
_DOTTED_OID: Final = re.compile(r"[0-2](?:\.(?:0|[1-9][0-9]*))+")
#: Subject attribute names as ClientIdentity spells them, and their OIDs.
_ATTRIBUTE_NAMES: Final = frozenset(SHORT_NAMES.values())
_SHORT_NAME_OF_OID: Final = {oid.dotted_string: name for oid, name in SHORT_NAMES.items()}


def _names(values: Iterable[str], what: str) -> frozenset[str]:
    names = frozenset(check_name(value, what) for value in values)
    if not names:
        raise ValueError(f"at least one {what} is needed")
    return names


def _listed(names: Iterable[str]) -> str:
    return ", ".join(sorted(names))


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


class _CommonName(Requirement):
    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def _matches(self, identity: ClientIdentity) -> bool:
        common_names = identity.common_names
        return len(common_names) == 1 and common_names[0] in self.names

    def describe(self) -> str:
        return f"CN in {_listed(self.names)}"


def cn(*names: str) -> Requirement:
    """The certificate's subject has exactly one common name, and it is one of ``names``.

    The only way to match a CN: a plain string in a requirement is never compared with a CN
    (it could be a DNS name; issue #8).  Whatever the principal strategy, this reads the
    subject itself; two CNs in one subject never match."""
    return _CommonName(_names(names, "common name"))


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


class _TrustDomain(Requirement):
    def __init__(self, domains: frozenset[str]) -> None:
        self.domains = domains

    def _matches(self, identity: ClientIdentity) -> bool:
        return identity.trust_domain is not None and identity.trust_domain in self.domains

    def describe(self) -> str:
        return f"SPIFFE trust domain {_listed(self.domains)}"


def trust_domain(*domains: str) -> Requirement:
    """The client's SPIFFE ID belongs to one of the trust ``domains``."""
    for domain in domains:
        parse_trust_domain(domain)
    return _TrustDomain(_names(domains, "trust domain"))


class _DnsName(Requirement):
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


class _Group(Requirement):
    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def _matches(self, identity: ClientIdentity) -> bool:
        return not self.names.isdisjoint(identity.groups)

    def describe(self) -> str:
        return f"group in {_listed(self.names)}"


def group(*names: str) -> Requirement:
    """The client is in one of the Kubernetes groups ``names`` (``ClientIdentity.groups``,
    set by the ``kubernetes`` principal strategy from the subject's ``O`` values)."""
    return _Group(_names(names, "group"))


# -- certificate attributes -----------------------------------------------------------------


class _SubjectAttribute(Requirement):
    def __init__(self, name: str, values: frozenset[str]) -> None:
        self.name = name
        self.values = values

    def _matches(self, identity: ClientIdentity) -> bool:
        return any(value in self.values for value in identity.attribute(self.name))

    def describe(self) -> str:
        return f"subject {self.name} in {_listed(self.values)}"


def subject_attribute(name: str, *values: str) -> Requirement:
    """One of the subject's ``name`` attributes equals one of ``values``:
    ``subject_attribute("OU", "SRE")``.  ``name`` is a short name (``CN``, ``O``, ``OU``,
    ``C``, ``ST``, ``L``, ``STREET``, ``DC``, ``UID``, ``serialNumber``, ``emailAddress``) or a
    dotted OID (the OID of a named attribute means that attribute); anything else is a
    ``ValueError`` (a typo must not silently match nothing)."""
    if name not in _ATTRIBUTE_NAMES and not _DOTTED_OID.fullmatch(str(name)):
        known = ", ".join(sorted(_ATTRIBUTE_NAMES))
        raise ValueError(f"unknown subject attribute {name!r}; use one of {known} or an OID")
    name = _SHORT_NAME_OF_OID.get(name, name)
    return _SubjectAttribute(name, _names(values, f"{name} value"))


def _name_key(name: x509.Name) -> tuple[frozenset[tuple[str, object]], ...]:
    """A parsed Name as comparable values: RDNs in order, each a set of (OID, value)."""
    return tuple(
        frozenset((attribute.oid.dotted_string, attribute.value) for attribute in rdn)
        for rdn in name.rdns
    )


class _Issuer(Requirement):
    def __init__(self, names: tuple[x509.Name, ...]) -> None:
        self.names = names
        self.keys = frozenset(_name_key(name) for name in names)

    def _matches(self, identity: ClientIdentity) -> bool:
        return _name_key(identity.certificate.issuer) in self.keys

    def describe(self) -> str:
        return "issuer " + " or ".join(name.rfc4514_string() for name in self.names)


def issuer(*names: str | x509.Name) -> Requirement:
    """The leaf certificate was issued by a CA with one of these names (RFC 4514 strings such
    as ``"CN=Corp Issuing CA,O=Corp"``, or ``x509.Name``).  Compared as parsed names, RDN by
    RDN and value by value, exactly (no case folding)."""
    parsed = []
    for name in names:
        if isinstance(name, x509.Name):
            value = name
        else:
            check_name(name, "issuer")
            try:
                value = x509.Name.from_rfc4514_string(name)
            except ValueError as exc:
                raise ValueError(f"invalid issuer name {name!r}: {exc}") from None
        if len(value) == 0:
            raise ValueError("an issuer name must not be empty")
        for attribute in value:
            if isinstance(attribute.value, str):
                check_name(attribute.value, "issuer attribute value")
        parsed.append(value)
    if not parsed:
        raise ValueError("at least one issuer is needed")
    return _Issuer(tuple(parsed))


# -- keys and certificates ------------------------------------------------------------------


def _digests(values: tuple[str, ...], what: str) -> frozenset[str]:
    """The SHA-256 digests (lowercase hex, as ``ClientIdentity`` spells them) that ``values``
    spell, read by the one pin parser (:func:`~asgi_mtls.validation.trust.parse_pin`: hex with
    or without colons, base64, ``sha256//``, ``pin-sha256="..."``)."""
    if not values:
        raise ValueError(f"at least one {what} is needed")
    digests = set()
    for value in values:
        try:
            digests.add(parse_pin(value).hex())
        except ValueError as exc:
            raise ValueError(f"invalid {what} {value!r}: {exc}") from None
    return frozenset(digests)


class _Fingerprint(Requirement):
    def __init__(self, digests: frozenset[str]) -> None:
        self.digests = digests

    def _matches(self, identity: ClientIdentity) -> bool:
        return identity.fingerprint_sha256 in self.digests

    def describe(self) -> str:
        return f"certificate SHA-256 in {_listed(self.digests)}"


def fingerprint(*digests: str) -> Requirement:
    """The leaf certificate's SHA-256 fingerprint is one of ``digests``: hex (any case, ``:``
    separators allowed, as ``openssl x509 -fingerprint -sha256`` prints it) or any other
    spelling :func:`~asgi_mtls.validation.trust.parse_pin` reads."""
    return _Fingerprint(_digests(digests, "fingerprint"))


class _SpkiPin(Requirement):
    def __init__(self, digests: frozenset[str]) -> None:
        self.digests = digests

    def _matches(self, identity: ClientIdentity) -> bool:
        return bool(identity.spki_sha256) and identity.spki_sha256 in self.digests

    def describe(self) -> str:
        pins = sorted(base64.b64encode(bytes.fromhex(d)).decode() for d in self.digests)
        return "public key pin in " + ", ".join(pins)


def spki_pin(*pins: str) -> Requirement:
    """The leaf's public key is pinned: SHA-256 of its SubjectPublicKeyInfo equals one of
    ``pins``, given as base64 (as in HPKP ``pin-sha256="..."`` and curl ``sha256//``) or hex
    (:func:`~asgi_mtls.validation.trust.parse_pin`).  A pin survives certificate renewal
    with the same key."""
    return _SpkiPin(_digests(pins, "SPKI pin"))


# -- roles, predicates, combinations --------------------------------------------------------


def check_role_name(name: object) -> str:
    """``name`` if it is a valid role name (letters, digits, ``. _ : / @ -``, starting with a
    letter or digit; not ``authenticated``, which Starlette's scopes already use)."""
    if not isinstance(name, str) or not _ROLE_NAME.fullmatch(name):
        raise ValueError(f"invalid role name {name!r}")
    if name == "authenticated":
        raise ValueError("'authenticated' is reserved (every client has it); pick another name")
    return name


class RoleRequirement(Requirement):
    """The client has one of ``names`` (``ClientIdentity.roles``, from the role map)."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def _matches(self, identity: ClientIdentity) -> bool:
        return not self.names.isdisjoint(identity.roles)

    def describe(self) -> str:
        return f"role in {_listed(self.names)}"


def role(*names: str) -> Requirement:
    """The client has one of the roles ``names``, granted by the middleware's ``roles=``
    map.  Roles are also Starlette scopes, so ``@requires("name")`` works too."""
    if not names:
        raise ValueError("at least one role is needed")
    return RoleRequirement(frozenset(check_role_name(name) for name in names))


class _Predicate(Requirement):
    def __init__(self, function: Callable[[ClientIdentity], object]) -> None:
        self.function = function

    def _matches(self, identity: ClientIdentity) -> bool:
        return run_predicate(self.function, identity)

    def describe(self) -> str:
        return f"predicate {getattr(self.function, '__name__', repr(self.function))}"


def predicate(function: Callable[[ClientIdentity], object]) -> Requirement:
    """``function(identity)`` is truthy.  One that raises denies (fail closed, logged)."""
    if not callable(function):
        raise TypeError(f"not callable: {function!r}")
    return _Predicate(function)
