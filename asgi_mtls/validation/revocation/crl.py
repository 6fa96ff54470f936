"""CRLs (RFC 5280 §5, §6.3): parsing, sanity checks, scope and signature verification.

A parsed :class:`CrlRecord` is immutable; its signature is checked against a certificate's
issuer when it is used (:func:`crl_signed_by`), since a CRL file does not say which of the
configured CAs issued it beyond its name.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from asgi_mtls.validation.revocation.common import THIS_UPDATE_TOLERANCE, http_urls, is_weak_hash

_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.DOTALL)


def crl_distribution_urls(certificate: x509.Certificate) -> tuple[str, ...]:
    """The http(s) URLs of ``certificate``'s CRL distribution points (RFC 5280 §4.2.1.13).

    Distribution points limited to some reasons or naming a separate CRL issuer (indirect
    CRLs) are skipped: they are not supported.  LDAP URLs are skipped.
    """
    try:
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except (x509.ExtensionNotFound, ValueError):
        return ()
    urls: list[str] = []
    for point in points:
        if point.full_name is None or point.reasons is not None or point.crl_issuer is not None:
            continue
        urls += http_urls(point.full_name)
    return tuple(dict.fromkeys(urls))


def distribution_point_names(certificate: x509.Certificate) -> frozenset[x509.GeneralName]:
    """Every full name of ``certificate``'s CRL distribution points (for IDP scoping)."""
    try:
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except (x509.ExtensionNotFound, ValueError):
        return frozenset()
    return frozenset(name for point in points for name in point.full_name or ())


@dataclass(frozen=True, slots=True, eq=False)
class CrlRecord:
    """A parsed, sanity-checked CRL (signature not yet verified: that needs the issuer)."""

    crl: x509.CertificateRevocationList
    source: str
    issuer: bytes  # DER of the issuer name
    serials: frozenset[int]
    this_update: dt.datetime
    next_update: dt.datetime | None
    number: int | None
    fingerprint: bytes
    loaded_at: dt.datetime
    only_user_certs: bool = False
    only_ca_certs: bool = False
    #: From issuingDistributionPoint: the CRL covers only certificates whose CRL distribution
    #: points name one of these (RFC 5280 §6.3.3 (b)(2)(i)).  ``None``: no such restriction.
    scope_names: frozenset[x509.GeneralName] | None = None

    def fresh_until(self, refresh_interval: dt.timedelta) -> dt.datetime:
        return self.next_update or self.loaded_at + refresh_interval


def parse_crl_data(data: bytes, source: str, loaded_at: dt.datetime) -> list[CrlRecord]:
    """Parse one DER CRL or any number of PEM CRLs from ``data``; ``ValueError`` for anything
    that is not a complete, direct, plausible CRL."""
    if b"-----BEGIN" in data:
        blocks = _PEM_CRL.findall(data)
        if not blocks:
            raise ValueError(f"{source}: no PEM X509 CRL block")
        crls = [x509.load_pem_x509_crl(block) for block in blocks]
    else:
        crls = [x509.load_der_x509_crl(data)]
    return [crl_record(crl, source, loaded_at) for crl in crls]


def crl_record(
    crl: x509.CertificateRevocationList, source: str, loaded_at: dt.datetime
) -> CrlRecord:
    """Check and index one CRL: plausible dates, a complete and direct CRL (no delta, no
    indirect or reason-partitioned scope, no unknown critical extension), the serials it
    lists as a set (so a lookup is O(1) on the request path)."""
    this_update = crl.last_update_utc
    next_update = crl.next_update_utc
    if this_update > loaded_at + THIS_UPDATE_TOLERANCE:
        raise ValueError(f"{source}: CRL thisUpdate {this_update.isoformat()} is in the future")
    if next_update is not None and next_update < this_update:
        raise ValueError(f"{source}: CRL nextUpdate is before its thisUpdate")
    number: int | None = None
    only_user = only_ca = False
    scope_names: frozenset[x509.GeneralName] | None = None
    for extension in crl.extensions:
        value = extension.value
        if isinstance(value, x509.DeltaCRLIndicator):
            raise ValueError(f"{source}: delta CRLs are not supported")
        if isinstance(value, x509.CRLNumber):
            number = value.crl_number
        elif isinstance(value, x509.IssuingDistributionPoint):
            if (
                value.indirect_crl
                or value.only_some_reasons is not None
                or value.only_contains_attribute_certs
                or value.relative_name is not None
            ):
                raise ValueError(f"{source}: indirect or partial CRLs are not supported")
            only_user = value.only_contains_user_certs
            only_ca = value.only_contains_ca_certs
            if value.full_name is not None:
                scope_names = frozenset(value.full_name)
        elif extension.critical and isinstance(value, x509.UnrecognizedExtension):
            raise ValueError(
                f"{source}: unknown critical CRL extension {extension.oid.dotted_string}"
            )
    serials = set()
    for entry in crl:
        for entry_extension in entry.extensions:
            if isinstance(entry_extension.value, x509.CertificateIssuer):
                raise ValueError(f"{source}: indirect CRL entries are not supported")
            if entry_extension.critical and isinstance(
                entry_extension.value, x509.UnrecognizedExtension
            ):
                raise ValueError(f"{source}: unknown critical CRL entry extension")
        serials.add(entry.serial_number)
    return CrlRecord(
        crl=crl,
        source=source,
        issuer=crl.issuer.public_bytes(),
        serials=frozenset(serials),
        this_update=this_update,
        next_update=next_update,
        number=number,
        fingerprint=crl.fingerprint(hashes.SHA256()),
        loaded_at=loaded_at,
        only_user_certs=only_user,
        only_ca_certs=only_ca,
        scope_names=scope_names,
    )


def crl_signed_by(record: CrlRecord, issuer: x509.Certificate) -> bool:
    """RFC 5280 §6.3.3 (f), (g): the CRL names the issuer, the issuer may sign CRLs, and the
    signature verifies with the issuer's key."""
    if record.issuer != issuer.subject.public_bytes():
        return False
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.crl_sign:
            return False
    except x509.ExtensionNotFound:
        pass
    except ValueError:
        return False
    try:
        if is_weak_hash(record.crl.signature_hash_algorithm):
            return False
        public_key = issuer.public_key()
        if not isinstance(
            public_key,
            (
                rsa.RSAPublicKey,
                ec.EllipticCurvePublicKey,
                ed25519.Ed25519PublicKey,
                ed448.Ed448PublicKey,
            ),
        ):
            return False
        return record.crl.is_signature_valid(public_key)
    except (UnsupportedAlgorithm, ValueError, TypeError):
        return False


def crl_covers(
    record: CrlRecord, is_ca: bool, names: Callable[[], frozenset[x509.GeneralName]]
) -> bool:
    """Whether the CRL's issuingDistributionPoint scope includes this certificate (RFC 5280
    §6.3.3 (b)): user/CA-only CRLs, and partitioned CRLs by distribution point name."""
    if record.only_user_certs and is_ca:
        return False
    if record.only_ca_certs and not is_ca:
        return False
    return record.scope_names is None or bool(record.scope_names & names())
