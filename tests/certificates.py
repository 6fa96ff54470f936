"""Certificates changed after issue: what ``CertificateAuthority`` does not make on purpose (the
same certificate re-signed with another hash or key, a changed extension, a new serial or
validity), built in one place so each test states only what it changes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

Extensions = Iterable[tuple[x509.ExtensionType, bool]]


def extensions_of(certificate: x509.Certificate) -> list[tuple[x509.ExtensionType, bool]]:
    """``certificate``'s extensions as ``(value, critical)`` pairs, in order."""
    return [(extension.value, extension.critical) for extension in certificate.extensions]


def reissue(
    certificate: x509.Certificate,
    signer: CertificateIssuerPrivateKeyTypes,
    *,
    serial: int | None = None,
    not_after: dt.datetime | None = None,
    extensions: Extensions | None = None,
    hash_algorithm: hashes.HashAlgorithm | None = None,
) -> x509.Certificate:
    """``certificate`` signed again by ``signer`` (SHA-256 unless ``hash_algorithm``): same
    subject, issuer, public key and validity start; its own serial, expiry and extensions
    unless given."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(certificate.subject)
        .issuer_name(certificate.issuer)
        .public_key(certificate.public_key())
        .serial_number(certificate.serial_number if serial is None else serial)
        .not_valid_before(certificate.not_valid_before_utc)
        .not_valid_after(not_after or certificate.not_valid_after_utc)
    )
    for value, critical in extensions_of(certificate) if extensions is None else extensions:
        builder = builder.add_extension(value, critical)
    return builder.sign(signer, hash_algorithm or hashes.SHA256())
