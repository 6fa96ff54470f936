"""ClientIdentity: a client proven by a validated certificate, or (opt-in, issue #12) by the
subject name the ASGI server says it verified.

Names are read as parsed X.509 values (subject attributes, subjectAltName entries), never by
pattern-matching a DN string, and each is checked for its kind before it is used
(:mod:`asgi_mtls.identity.names`).  Subject attributes are flattened in certificate order: the
attributes of a multi-valued RDN (``CN=alice+UID=42``) appear one after the other, in the order
they are encoded.  A CN principal needs exactly one CN in the whole subject.

What a requirement needs (the principal and its kind, the SANs, the SPIFFE ID) is read when the
identity is built; display strings and digests (``subject``, ``issuer``, fingerprints, validity)
are computed on first use and kept (issue #10: a new client costs its signatures, not its
formatting).

A *server-verified name* (``verified_by == "server"``, issue #12) is the weaker kind: the ASGI
server reported the RFC 4514 subject of a client certificate it verified (``client_cert_name``
without ``client_cert_chain``: pyvoy) and asgi-mtls, holding no certificate, validated
nothing.  Such an identity has a subject and nothing else: ``certificate`` is ``None``, the
chain and the SANs are empty, there is no SPIFFE ID, and the principal is a CN or the subject.
The class enforces that shape when any identity is built (``__post_init__``), so no code path,
an identity hook's ``dataclasses.replace`` included, can give it a SAN, a SPIFFE ID or a
principal of another kind.  What the certificate alone knows (issuer, digests, serial,
validity) raises :class:`NoCertificateError` there; the library's own readers check
``identity.certificate is None`` first.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from asgi_mtls.identity.names import (
    NameKind,
    SpiffeId,
)

__all__ = ["SHORT_NAMES", "ClientIdentity", "NoCertificateError", "VerifiedBy"]

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
_NO_EXTRA: Final[Mapping[str, Any]] = MappingProxyType({})

#: How an identity was proven (issue #12): ``"certificate"``, asgi-mtls validated the client
#: certificate itself against ``trust=`` (path, key policy, revocation, names); ``"server"``,
#: only the ASGI server's word: the subject name of a certificate it says it verified, which
#: asgi-mtls never saw (:class:`~asgi_mtls.sources.ServerVerifiedNameSource`).
VerifiedBy = Literal["certificate", "server"]
#: The principal kinds a server-verified name may have: it has a subject and nothing else.
_NAME_ONLY_KINDS: Final = frozenset({NameKind.CN, NameKind.SUBJECT})


class NoCertificateError(LookupError):
    """What only a certificate knows (issuer, digests, serial, validity), asked of a
    server-verified name (``verified_by == "server"``, issue #12), which has none."""


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """A client proven by a validated certificate (or, opt-in, by a server-verified subject
    name: ``verified_by == "server"``, see the module docstring).  Immutable; safe to cache
    and share.

    ``principal`` is the client's name and ``principal_kind`` the field it came from
    (:class:`~asgi_mtls.identity.names.NameKind`): requirements compare both.  ``subject``
    and ``issuer`` are RFC 4514 strings for display and logs; compare on the parsed fields
    (``subject_attributes``, SANs, ``spiffe_id``, ``fingerprint_sha256``).
    ``spki_sha256`` is the SHA-256 of the leaf's SubjectPublicKeyInfo (hex; the value an
    HPKP ``pin-sha256`` encodes in base64).  ``groups`` are the Kubernetes groups (the
    subject's ``O`` values) under the ``kubernetes`` strategy, else empty.  ``roles`` are the
    role names the middleware's role map granted, computed once per certificate.  ``extra``
    holds what the app's identity hook attached (tenant, account; see
    :meth:`with_extra` and :mod:`asgi_mtls.hooks`), read-only, not compared.
    ``verified_by`` says how the client was proven (:data:`VerifiedBy`); ``server_subject``
    is the parsed subject name of a server-verified name (``None`` for a certificate).
    """

    principal: str
    principal_kind: NameKind
    source: str
    #: The validated leaf; ``None`` for a server-verified name (issue #12).
    certificate: x509.Certificate | None = field(repr=False)
    chain: tuple[x509.Certificate, ...] = field(repr=False)
    subject_attributes: tuple[tuple[str, str], ...]
    dns_names: tuple[str, ...]
    uris: tuple[str, ...]
    emails: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    spiffe_id: SpiffeId | None
    groups: tuple[str, ...] = ()
    roles: frozenset[str] = frozenset()
    extra: Mapping[str, Any] = field(default_factory=lambda: _NO_EXTRA, compare=False)
    verified_by: VerifiedBy = "certificate"
    server_subject: x509.Name | None = field(default=None, repr=False)
    #: Values computed from the identity on first use (:meth:`memo`); read-only for others.
    computed: dict[object, object] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        """Refuse an identity of neither shape (issue #12): a certificate with no server
        subject, or a server subject with nothing a certificate alone could give."""
        if self.verified_by == "certificate":
            if self.certificate is None or self.server_subject is not None:
                raise ValueError("a certificate identity needs its certificate, and no server name")
        elif self.verified_by == "server":
            if (
                self.certificate is not None
                or self.chain
                or self.server_subject is None
                or self.dns_names
                or self.uris
                or self.emails
                or self.ip_addresses
                or self.spiffe_id is not None
            ):
                raise ValueError(
                    "a server-verified name (issue #12) has a subject and nothing else: no "
                    "certificate, chain, subjectAltName or SPIFFE ID"
                )
            if self.principal_kind not in _NAME_ONLY_KINDS and (
                self.principal_kind is not NameKind.CUSTOM or self.principal
            ):
                raise ValueError(
                    "a server-verified name (issue #12) has only a cn or subject principal, "
                    f"not {self.principal_kind.value}"
                )
        else:
            raise ValueError(f"verified_by is 'certificate' or 'server', not {self.verified_by!r}")

    def _leaf(self, what: str) -> x509.Certificate:
        """The certificate, or :class:`NoCertificateError` naming ``what`` was asked."""
        if self.certificate is None:
            raise NoCertificateError(
                f"{what}: a server-verified name (issue #12) has no certificate"
            )
        return self.certificate

    def memo(self, key: str, compute: Callable[..., _T], *args: object) -> _T:
        """``compute(*args)`` once per identity, kept under ``key``: for values derived from
        the identity alone (display strings, digests, an integration's per-identity objects).
        The identity is shared by every request of the same certificate."""
        try:
            return self.computed[key]  # type: ignore[return-value]
        except KeyError:
            value = self.computed[key] = compute(*args)
            return value

    @property
    def common_names(self) -> tuple[str, ...]:
        return tuple(value for name, value in self.subject_attributes if name == "CN")

    @property
    def subject(self) -> str:
        """The subject, RFC 4514: the certificate's, or the server-verified name's."""
        name = self.server_subject if self.certificate is None else self.certificate.subject
        assert name is not None  # __post_init__: one or the other
        return self.memo("subject", name.rfc4514_string)

    @property
    def issuer(self) -> str:
        return self.memo("issuer", self._leaf("issuer").issuer.rfc4514_string)

    def with_extra(self, **values: Any) -> ClientIdentity:
        """A copy of this identity with ``values`` added to :attr:`extra` (what an identity
        hook returns to attach the app's own data to a client)."""
        return dataclasses.replace(self, extra=MappingProxyType({**self.extra, **values}))

    @property
    def der_sha256(self) -> bytes:
        """SHA-256 of the DER certificate (the digest behind the fingerprint and the
        ``x5t#S256`` thumbprint; computed once)."""
        return self.memo(
            "der_sha256",
            lambda: hashlib.sha256(
                self._leaf("der_sha256").public_bytes(serialization.Encoding.DER)
            ).digest(),
        )

    @property
    def fingerprint_sha256(self) -> str:
        """SHA-256 of the DER certificate, lowercase hex."""
        self._leaf("fingerprint_sha256")
        return self.memo("fingerprint", lambda: self.der_sha256.hex())

    @property
    def x5t_s256(self) -> str:
        """The certificate's ``x5t#S256`` thumbprint: the unpadded base64url SHA-256 of its
        DER (RFC 8705 section 3.1, RFC 7515 section 4.1.8), what a certificate-bound access
        token carries in its ``cnf`` claim (:mod:`asgi_mtls.authorization.tokens`)."""
        self._leaf("x5t_s256")
        return self.memo(
            "x5t#S256", lambda: base64.urlsafe_b64encode(self.der_sha256).rstrip(b"=").decode()
        )

    @property
    def spki_sha256(self) -> str:
        """SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex."""
        return self.memo("spki", lambda: _spki_sha256(self._leaf("spki_sha256")))

    @property
    def serial_number(self) -> int:
        return self._leaf("serial_number").serial_number

    @property
    def serial_hex(self) -> str:
        return format(self.serial_number, "x")

    @property
    def not_before(self) -> dt.datetime:
        return self._leaf("not_before").not_valid_before_utc

    @property
    def not_after(self) -> dt.datetime:
        return self._leaf("not_after").not_valid_after_utc

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
