"""Who is calling: ClientIdentity, SPIFFE ID parsing and principal mappers.

Names are read as parsed X.509 values (subject attributes, subjectAltName entries), never by
pattern-matching a DN string.  A SPIFFE ID is parsed strictly (SPIFFE ID spec, section 2);
a URI SAN that looks like ``spiffe://`` but is malformed never becomes a principal.

Subject attributes are flattened in certificate order: the attributes of a multi-valued RDN
(``CN=alice+UID=42``) appear one after the other, in the order they are encoded.  A CN
principal needs exactly one CN in the whole subject, whichever RDN holds it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from starlette.authentication import BaseUser
from starlette.requests import HTTPConnection

from asgi_mtls.errors import CertificateRejected, RejectionReason
from asgi_mtls.validation.trust import spki_sha256

__all__ = [
    "IDENTITY_SCOPE_KEY",
    "ClientIdentity",
    "ClientUser",
    "PrincipalMapper",
    "PrincipalStrategy",
    "SpiffeId",
    "build_identity",
    "get_client_identity",
    "parse_spiffe_id",
    "resolve_principal_mapper",
]

#: Where the middleware puts the request's ClientIdentity (``None`` when anonymous).
IDENTITY_SCOPE_KEY: Final = "asgi_mtls.identity"
_MAX_SPIFFE_ID_LENGTH: Final = 2048
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+")
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class SpiffeId:
    """A parsed SPIFFE ID: ``spiffe://<trust_domain><path>``."""

    trust_domain: str
    path: str

    def __str__(self) -> str:
        return f"spiffe://{self.trust_domain}{self.path}"


def parse_spiffe_id(value: str) -> SpiffeId:
    """Parse ``value`` strictly per the SPIFFE ID specification; ``ValueError`` if invalid.

    Scheme exactly ``spiffe``; trust domain of lowercase letters, digits, ``.``, ``-`` and
    ``_`` (so no userinfo, port or uppercase); path segments of letters, digits, ``.``, ``-``,
    ``_``, none empty, ``.`` or ``..``; no trailing slash, query, fragment or
    percent-encoding; at most 2048 bytes.
    """
    if len(value.encode("utf-8", "surrogatepass")) > _MAX_SPIFFE_ID_LENGTH:
        raise ValueError("SPIFFE ID longer than 2048 bytes")
    prefix = "spiffe://"
    if not value.startswith(prefix):
        raise ValueError("SPIFFE ID must start with 'spiffe://'")
    rest = value[len(prefix) :]
    trust_domain, slash, path = rest.partition("/")
    if not trust_domain:
        raise ValueError("SPIFFE ID has an empty trust domain")
    if not _TRUST_DOMAIN.fullmatch(trust_domain):
        raise ValueError(f"invalid SPIFFE trust domain {trust_domain!r}")
    if not slash:
        return SpiffeId(trust_domain, "")
    for segment in path.split("/"):
        if not segment:
            raise ValueError("SPIFFE ID path has an empty segment or a trailing slash")
        if segment in (".", ".."):
            raise ValueError("SPIFFE ID path has a '.' or '..' segment")
        if not _PATH_SEGMENT.fullmatch(segment):
            raise ValueError(f"invalid character in SPIFFE ID path segment {segment!r}")
    return SpiffeId(trust_domain, "/" + path)


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """A client proven by a validated certificate.  Immutable; safe to cache and share.

    ``subject`` and ``issuer`` are RFC 4514 strings for display and logs; compare on the
    parsed fields (``subject_attributes``, SANs, ``spiffe_id``, ``fingerprint_sha256``).

    ``spki_sha256`` is the SHA-256 of the leaf's SubjectPublicKeyInfo (hex; the value an HPKP
    ``pin-sha256`` encodes in base64).  ``groups`` are the Kubernetes groups (the subject's
    ``O`` values) under the ``kubernetes`` principal strategy, else empty.  ``roles`` are the
    role names the middleware's role map granted, computed once per certificate.
    """

    principal: str
    subject: str
    subject_attributes: tuple[tuple[str, str], ...]
    common_names: tuple[str, ...]
    dns_names: tuple[str, ...]
    uris: tuple[str, ...]
    emails: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    spiffe_id: SpiffeId | None
    issuer: str
    serial_number: int
    fingerprint_sha256: str
    not_before: dt.datetime
    not_after: dt.datetime
    source: str
    certificate: x509.Certificate = field(repr=False, compare=False)
    chain: tuple[x509.Certificate, ...] = field(default=(), repr=False, compare=False)
    spki_sha256: str = ""
    groups: tuple[str, ...] = ()
    roles: frozenset[str] = frozenset()

    @property
    def trust_domain(self) -> str | None:
        return self.spiffe_id.trust_domain if self.spiffe_id else None

    @property
    def serial_hex(self) -> str:
        return format(self.serial_number, "x")

    def attribute(self, oid_or_name: str) -> tuple[str, ...]:
        """Values of one subject attribute, by short name (``"OU"``) or dotted OID."""
        return tuple(value for name, value in self.subject_attributes if name == oid_or_name)


class ClientUser(BaseUser):
    """The Starlette user (``request.user``) for a request proven by a client certificate.

    ``identity`` is the principal name, as Starlette's ``BaseUser`` defines it; the full
    :class:`ClientIdentity` is ``client_identity``.
    """

    __slots__ = ("client_identity",)

    def __init__(self, client_identity: ClientIdentity) -> None:
        self.client_identity = client_identity

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.client_identity.principal

    @property
    def identity(self) -> str:
        return self.client_identity.principal

    def __repr__(self) -> str:
        return f"ClientUser({self.client_identity.principal!r})"


PrincipalStrategy = Literal[
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
#: A callable receives the identity with ``principal == ""`` and returns the name, or ``None``
#: to refuse the certificate (reason ``no_principal``).
PrincipalMapper = Callable[[ClientIdentity], str | None]


def _first(values: tuple[str, ...]) -> str | None:
    return values[0] if values else None


def _single_cn(identity: ClientIdentity) -> str | None:
    # More than one CN is ambiguous: no CN principal at all (fail closed).
    return identity.common_names[0] if len(identity.common_names) == 1 else None


def _non_spiffe_uris(identity: ClientIdentity) -> tuple[str, ...]:
    return tuple(u for u in identity.uris if not u.lower().startswith("spiffe:"))


def _has_invalid_spiffe(identity: ClientIdentity) -> bool:
    """A ``spiffe:`` URI SAN without a valid SPIFFE ID: malformed, or not the only URI."""
    return identity.spiffe_id is None and any(
        u.lower().startswith("spiffe:") for u in identity.uris
    )


def _default(identity: ClientIdentity) -> str | None:
    if identity.spiffe_id is not None:
        return str(identity.spiffe_id)
    if _has_invalid_spiffe(identity):
        return None  # an invalid SPIFFE ID must not fall through to another name
    return (
        _first(identity.uris)
        or _first(identity.dns_names)
        or _first(identity.emails)
        or _single_cn(identity)
    )


def _kubernetes(identity: ClientIdentity) -> str | None:
    """Kubernetes' x509 client authenticator: the user is the CN (exactly one), the groups
    are the ``O`` values (see :func:`build_identity`)."""
    return _single_cn(identity)


def _envoy(identity: ClientIdentity) -> str | None:
    """Envoy's RBAC ``principal_name`` order: the first URI SAN, else the first DNS SAN, else
    the subject.  A malformed SPIFFE URI stops the search, as in ``default``."""
    if _has_invalid_spiffe(identity):
        return None
    return _first(identity.uris) or _first(identity.dns_names) or identity.subject or None


_STRATEGIES: Final[dict[str, PrincipalMapper]] = {
    "default": _default,
    "spiffe": lambda i: str(i.spiffe_id) if i.spiffe_id else None,
    "uri": lambda i: _first(_non_spiffe_uris(i)) or (str(i.spiffe_id) if i.spiffe_id else None),
    "dns": lambda i: _first(i.dns_names),
    "email": lambda i: _first(i.emails),
    "cn": _single_cn,
    "subject": lambda i: i.subject or None,
    "fingerprint": lambda i: i.fingerprint_sha256,
    "kubernetes": _kubernetes,
    "envoy": _envoy,
}


def resolve_principal_mapper(
    principal: PrincipalStrategy | str | PrincipalMapper,
) -> PrincipalMapper:
    """A mapper from a strategy name or a callable."""
    if callable(principal):
        return principal
    try:
        return _STRATEGIES[principal]
    except KeyError:
        names = ", ".join(sorted(_STRATEGIES))
        raise ValueError(f"unknown principal strategy {principal!r}; use one of {names}") from None


_SHORT_NAMES: Final[dict[x509.ObjectIdentifier, str]] = {
    NameOID.COMMON_NAME: "CN",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STREET_ADDRESS: "STREET",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.USER_ID: "UID",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.EMAIL_ADDRESS: "emailAddress",
}


def _spki_sha256(certificate: x509.Certificate) -> str:
    try:
        return spki_sha256(certificate).hex()
    except Exception:  # an exotic key type: no pin can match (fail closed)
        return ""


def _text(value: object) -> str:
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    if "\x00" in text:
        raise CertificateRejected(RejectionReason.MALFORMED, "a certificate name contains NUL")
    return text


def build_identity(
    chain: tuple[x509.Certificate, ...], *, source: str, principal: PrincipalMapper
) -> ClientIdentity:
    """Read a validated chain (leaf first) into a :class:`ClientIdentity`.

    Raises ``CertificateRejected`` with ``no_principal`` when the mapper finds no name.  Under
    the ``kubernetes`` strategy the subject's ``O`` values become ``groups``.
    """
    leaf = chain[0]
    attributes = tuple(
        (_SHORT_NAMES.get(a.oid, a.oid.dotted_string), _text(a.value)) for a in leaf.subject
    )
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    dns = tuple(_text(v) for v in san.get_values_for_type(x509.DNSName)) if san else ()
    uris = (
        tuple(_text(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier))
        if san
        else ()
    )
    emails = tuple(_text(v) for v in san.get_values_for_type(x509.RFC822Name)) if san else ()
    ips = tuple(str(v) for v in san.get_values_for_type(x509.IPAddress)) if san else ()
    spiffe: SpiffeId | None = None
    if len(uris) == 1 and uris[0].startswith("spiffe://"):
        try:
            spiffe = parse_spiffe_id(uris[0])
        except ValueError:
            spiffe = None
    identity = ClientIdentity(
        principal="",
        subject=leaf.subject.rfc4514_string(),
        subject_attributes=attributes,
        common_names=tuple(value for name, value in attributes if name == "CN"),
        dns_names=dns,
        uris=uris,
        emails=emails,
        ip_addresses=ips,
        spiffe_id=spiffe,
        issuer=leaf.issuer.rfc4514_string(),
        serial_number=leaf.serial_number,
        fingerprint_sha256=leaf.fingerprint(hashes.SHA256()).hex(),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        source=source,
        certificate=leaf,
        chain=chain,
        spki_sha256=_spki_sha256(leaf),
    )
    name = principal(identity)
    if not name:
        raise CertificateRejected(
            RejectionReason.NO_PRINCIPAL, f"no principal for subject {identity.subject!r}"
        )
    if "\x00" in name:
        raise CertificateRejected(RejectionReason.MALFORMED, "principal contains NUL")
    groups = identity.attribute("O") if principal is _kubernetes else ()
    return replace(identity, principal=name, groups=groups)


def get_client_identity(connection: HTTPConnection | Mapping[str, object]) -> ClientIdentity | None:
    """The identity of the client on ``connection`` (a Request, WebSocket or ASGI scope).

    ``None`` for an anonymous request.  Raises ``RuntimeError`` when ``MTLSMiddleware`` did not
    process the scope: a missing middleware must never look like an anonymous caller.
    """
    scope = connection.scope if isinstance(connection, HTTPConnection) else connection
    try:
        identity = scope[IDENTITY_SCOPE_KEY]
    except KeyError:
        raise RuntimeError(
            "no client identity in scope: is MTLSMiddleware installed around this app?"
        ) from None
    if identity is None or isinstance(identity, ClientIdentity):
        return identity
    raise RuntimeError(f"scope[{IDENTITY_SCOPE_KEY!r}] holds {type(identity).__name__}")
