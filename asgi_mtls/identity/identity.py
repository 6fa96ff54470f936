"""ClientIdentity: a client proven by a validated certificate.

Names are read as parsed X.509 values (subject attributes, subjectAltName entries), never by
pattern-matching a DN string, and each is checked for its kind before it is used
(:mod:`asgi_mtls.identity.names`).  Subject attributes are flattened in certificate order: the
attributes of a multi-valued RDN (``CN=alice+UID=42``) appear one after the other, in the order
they are encoded.  A CN principal needs exactly one CN in the whole subject.

What a requirement needs (the principal and its kind, the SANs, the SPIFFE ID) is read when the
identity is built; display strings and digests (``subject``, ``issuer``, fingerprints, validity)
are computed on first use and kept (issue #10: a new client costs its signatures, not its
formatting).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from asgi_mtls.errors import CertificateRejected, RejectionReason
from asgi_mtls.identity.names import (
    NameKind,
    SpiffeId,
    check_name,
    is_dns_name,
    is_email,
    is_uri,
    parse_spiffe_id,
)
from asgi_mtls.identity.principals import PrincipalStrategy

__all__ = ["SHORT_NAMES", "ClientIdentity", "build_identity"]

#: Subject attribute short names (as ``ClientIdentity.subject_attributes`` spells them).
SHORT_NAMES: Final[dict[x509.ObjectIdentifier, str]] = {
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

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """A client proven by a validated certificate.  Immutable; safe to cache and share.

    ``principal`` is the client's name and ``principal_kind`` the field it came from
    (:class:`~asgi_mtls.identity.names.NameKind`): requirements compare both.  ``subject``
    and ``issuer`` are RFC 4514 strings for display and logs; compare on the parsed fields
    (``subject_attributes``, SANs, ``spiffe_id``, ``fingerprint_sha256``).
    ``spki_sha256`` is the SHA-256 of the leaf's SubjectPublicKeyInfo (hex; the value an
    HPKP ``pin-sha256`` encodes in base64).  ``groups`` are the Kubernetes groups (the
    subject's ``O`` values) under the ``kubernetes`` strategy, else empty.  ``roles`` are the
    role names the middleware's role map granted, computed once per certificate.
    """

    principal: str
    principal_kind: NameKind
    source: str
    certificate: x509.Certificate = field(repr=False)
    chain: tuple[x509.Certificate, ...] = field(repr=False)
    subject_attributes: tuple[tuple[str, str], ...]
    dns_names: tuple[str, ...]
    uris: tuple[str, ...]
    emails: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    spiffe_id: SpiffeId | None
    groups: tuple[str, ...] = ()
    roles: frozenset[str] = frozenset()
    _computed: dict[str, object] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def memo(self, key: str, compute: Callable[..., _T], *args: object) -> _T:
        """``compute(*args)`` once per identity, kept under ``key``: for values derived from
        the identity alone (display strings, digests, an integration's per-identity objects).
        The identity is shared by every request of the same certificate."""
        try:
            return self._computed[key]  # type: ignore[return-value]
        except KeyError:
            value = self._computed[key] = compute(*args)
            return value

    @property
    def common_names(self) -> tuple[str, ...]:
        return tuple(value for name, value in self.subject_attributes if name == "CN")

    @property
    def subject(self) -> str:
        return self.memo("subject", self.certificate.subject.rfc4514_string)

    @property
    def issuer(self) -> str:
        return self.memo("issuer", self.certificate.issuer.rfc4514_string)

    @property
    def fingerprint_sha256(self) -> str:
        """SHA-256 of the DER certificate, lowercase hex."""
        return self.memo(
            "fingerprint",
            lambda: hashlib.sha256(
                self.certificate.public_bytes(serialization.Encoding.DER)
            ).hexdigest(),
        )

    @property
    def spki_sha256(self) -> str:
        """SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex."""
        return self.memo("spki", lambda: _spki_sha256(self.certificate))

    @property
    def serial_number(self) -> int:
        return self.certificate.serial_number

    @property
    def serial_hex(self) -> str:
        return format(self.serial_number, "x")

    @property
    def not_before(self) -> dt.datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc

    @property
    def trust_domain(self) -> str | None:
        return self.spiffe_id.trust_domain if self.spiffe_id else None

    def attribute(self, oid_or_name: str) -> tuple[str, ...]:
        """Values of one subject attribute, by short name (``"OU"``) or dotted OID."""
        return tuple(value for name, value in self.subject_attributes if name == oid_or_name)


def _spki_sha256(certificate: x509.Certificate) -> str:
    try:
        spki = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except Exception:  # an exotic key type: no pin can match (fail closed)
        return ""
    return hashlib.sha256(spki).hexdigest()


def _invalid(detail: str) -> CertificateRejected:
    return CertificateRejected(RejectionReason.INVALID_NAME, detail)


def _attribute_text(value: object, oid: x509.ObjectIdentifier) -> str:
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    if "\x00" in text:
        raise CertificateRejected(RejectionReason.MALFORMED, "a certificate name contains NUL")
    try:
        return check_name(text, f"subject attribute {oid.dotted_string}")
    except ValueError as exc:
        raise _invalid(str(exc)) from None


def _san_values(
    san: x509.SubjectAlternativeName | None,
    kind: type[x509.DNSName | x509.UniformResourceIdentifier | x509.RFC822Name],
    valid: Callable[[str], bool],
) -> tuple[str, ...]:
    if san is None:
        return ()
    values = tuple(san.get_values_for_type(kind))
    for value in values:
        if "\x00" in value:
            raise CertificateRejected(RejectionReason.MALFORMED, "a certificate name contains NUL")
        if not valid(value):
            raise _invalid(f"{kind.__name__} {value[:200]!r} is not well formed")
    return values


def build_identity(
    chain: tuple[x509.Certificate, ...], *, source: str, principal: PrincipalStrategy
) -> ClientIdentity:
    """Read a validated chain (leaf first) into a :class:`ClientIdentity`.

    Raises ``CertificateRejected``: ``invalid_name`` when a DNS, URI or email SAN is not well
    formed for its kind (or a subject attribute holds invisible characters), ``malformed`` for
    a NUL in a name, ``no_principal`` when the strategy finds no name.
    """
    leaf = chain[0]
    attributes = tuple(
        (SHORT_NAMES.get(a.oid, a.oid.dotted_string), _attribute_text(a.value, a.oid))
        for a in leaf.subject
    )
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    uris = _san_values(san, x509.UniformResourceIdentifier, is_uri)
    spiffe: SpiffeId | None = None
    if len(uris) == 1 and uris[0].startswith("spiffe://"):
        try:
            spiffe = parse_spiffe_id(uris[0])
        except ValueError:
            spiffe = None
    identity = ClientIdentity(
        principal="",
        principal_kind=NameKind.CUSTOM,
        source=source,
        certificate=leaf,
        chain=chain,
        subject_attributes=attributes,
        dns_names=_san_values(san, x509.DNSName, is_dns_name),
        uris=uris,
        emails=_san_values(san, x509.RFC822Name, is_email),
        ip_addresses=tuple(str(v) for v in san.get_values_for_type(x509.IPAddress)) if san else (),
        spiffe_id=spiffe,
    )
    name = principal.pick(identity)
    if name is None or not name.value:
        raise CertificateRejected(
            RejectionReason.NO_PRINCIPAL, f"no principal for subject {identity.subject!r}"
        )
    if "\x00" in name.value:
        raise CertificateRejected(RejectionReason.MALFORMED, "principal contains NUL")
    return replace(
        identity,
        principal=name.value,
        principal_kind=name.kind,
        groups=principal.groups(identity),
    )
