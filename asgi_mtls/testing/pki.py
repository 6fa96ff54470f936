"""A small, real PKI for tests: certificate authorities, the certificates they issue, and the
CRLs and OCSP responses they sign.

Everything is a genuine X.509 object made with ``cryptography`` (EC P-256 keys unless asked
otherwise, SHA-256 signatures), so the same objects serve the library's own tests, the
example app's development PKI and users' tests of their apps.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from asgi_mtls.testing.revocation import (
    ocsp_request,
    revocation_pointers,
    sign_crl,
    sign_ocsp_response,
)

_ONE_DAY = dt.timedelta(days=1)
#: Any key a test CA or certificate may have (weak ones included, to test their refusal).
PrivateKey = CertificateIssuerPrivateKeyTypes


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str | None, organization: str | None = None) -> x509.Name:
    attributes = []
    if organization is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    if common_name is not None:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not ca,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(
    subject: x509.Name,
    key: PrivateKey,
    *,
    issuer: CertificateAuthority | None,
    ca: bool,
    path_length: int | None = None,
    not_before: dt.datetime | None,
    not_after: dt.datetime | None,
    days: int,
) -> x509.CertificateBuilder:
    """What every certificate here starts with: subject, issuer (``None``: self-signed),
    a random serial, validity (default: from a day ago, for ``days``), critical
    basicConstraints and keyUsage, the subject key identifier and, below an issuer, the
    authority key identifier."""
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - _ONE_DAY)
        .not_valid_after(not_after or now + days * _ONE_DAY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(_key_usage(ca=ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if issuer is None:
        return builder
    return builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
        critical=False,
    )


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate with its private key and the CA chain above it (leaf excluded)."""

    certificate: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...] = field(default=())

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")

    @property
    def fingerprint_sha256(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex()

    def write(self, directory: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
        """Write ``name.pem`` (certificate followed by its chain) and ``name.key``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        cert_path = directory / f"{name}.pem"
        key_path = directory / f"{name}.key"
        chain_pem = "".join(
            c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in self.chain
        )
        cert_path.write_text(self.pem + chain_pem)
        key_path.write_text(self.key_pem)
        key_path.chmod(0o600)
        return cert_path, key_path


class CertificateAuthority:
    """A CA that issues client, server and intermediate certificates for tests."""

    def __init__(
        self,
        common_name: str = "asgi-mtls test root CA",
        *,
        parent: CertificateAuthority | None = None,
        path_length: int | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        crl_urls: Iterable[str] = (),
        ocsp_urls: Iterable[str] = (),
        key: PrivateKey | None = None,
    ) -> None:
        self.key: PrivateKey = key if key is not None else _new_key()
        self.parent = parent
        #: Serial -> (revocation time, reason) of the certificates revoked with :meth:`revoke`.
        self.revoked: dict[int, tuple[dt.datetime, x509.ReasonFlags | None]] = {}
        #: Serial -> certificate, for everything this CA issued (the OCSP responder's view).
        self.issued: dict[int, x509.Certificate] = {}
        self._crl_count = 0
        builder = _builder(
            _name(common_name),
            self.key,
            issuer=parent,
            ca=True,
            path_length=path_length,
            not_before=not_before,
            not_after=not_after,
            days=3650,
        )
        builder = revocation_pointers(builder, crl_urls, ocsp_urls)
        issuer_key = parent.key if parent else self.key
        self.certificate: x509.Certificate = builder.sign(issuer_key, hashes.SHA256())
        if parent is not None:
            parent.issued[self.certificate.serial_number] = self.certificate

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """This CA's certificate and its parents, up to but excluding the root."""
        if self.parent is None:
            return ()
        return (self.certificate, *self.parent.chain)

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def write(self, directory: str | os.PathLike[str], name: str) -> Path:
        """Write the CA certificate as ``name.pem`` and return its path."""
        path = Path(directory) / f"{name}.pem"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.pem)
        return path

    def intermediate(self, common_name: str, **kwargs: Any) -> CertificateAuthority:
        return CertificateAuthority(common_name, parent=self, **kwargs)

    def issue(
        self,
        *,
        common_name: str | None = None,
        organization: str | None = None,
        subject: x509.Name | None = None,
        dns_names: Iterable[str] = (),
        uris: Iterable[str] = (),
        emails: Iterable[str] = (),
        ips: Iterable[str] = (),
        extended_key_usages: Sequence[x509.ObjectIdentifier] | None = (
            ExtendedKeyUsageOID.CLIENT_AUTH,
        ),
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        is_ca: bool = False,
        rsa_bits: int | None = None,
        crl_urls: Iterable[str] = (),
        ocsp_urls: Iterable[str] = (),
        key: PrivateKey | None = None,
        sans: Sequence[x509.GeneralName] = (),
    ) -> IssuedCertificate:
        """Issue a leaf certificate. ``extended_key_usages=None`` omits the EKU extension;
        ``rsa_bits`` gives the leaf an RSA key of that size instead of EC P-256, ``key`` any
        private key of your choice; ``crl_urls`` / ``ocsp_urls`` add CRL distribution points /
        an OCSP responder (authorityInfoAccess).  ``sans`` are further subjectAltName entries
        added exactly as given: ``x509.DNSName._init_without_validation("\u0430dmin.example")``
        issues a name that a careless CA might, for tests of what the library refuses."""
        if key is None:
            key = rsa.generate_private_key(65537, rsa_bits) if rsa_bits else _new_key()
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        names += [x509.UniformResourceIdentifier(u) for u in uris]
        names += [x509.RFC822Name(e) for e in emails]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        names += sans
        subject_name = subject or _name(common_name, organization)
        builder = _builder(
            subject_name,
            key,
            issuer=self,
            ca=is_ca,
            not_before=not_before,
            not_after=not_after,
            days=365,
        )
        if names:
            # RFC 5280 4.2.1.6: the SAN is critical when the subject is empty.
            builder = builder.add_extension(
                x509.SubjectAlternativeName(names), critical=len(subject_name) == 0
            )
        if extended_key_usages is not None:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage(list(extended_key_usages)), critical=False
            )
        builder = revocation_pointers(builder, crl_urls, ocsp_urls)
        certificate = builder.sign(self.key, hashes.SHA256())
        self.issued[certificate.serial_number] = certificate
        return IssuedCertificate(certificate, key, self.chain)

    def issue_client(
        self,
        common_name: str | None = None,
        *,
        spiffe_id: str | None = None,
        **kwargs: Any,
    ) -> IssuedCertificate:
        """Issue a clientAuth certificate; ``spiffe_id`` becomes a URI SAN."""
        uris = list(kwargs.pop("uris", ()))
        if spiffe_id is not None:
            uris.insert(0, spiffe_id)
        return self.issue(common_name=common_name, uris=uris, **kwargs)

    def issue_server(
        self, *hostnames: str, ips: Iterable[str] = ("127.0.0.1", "::1")
    ) -> IssuedCertificate:
        """Issue a serverAuth certificate for ``hostnames`` (default ``localhost``)."""
        hosts = hostnames or ("localhost",)
        return self.issue(
            common_name=hosts[0],
            dns_names=hosts,
            ips=ips,
            extended_key_usages=(ExtendedKeyUsageOID.SERVER_AUTH,),
        )

    # --- revocation: CRLs and OCSP ------------------------------------------------------

    def revoke(
        self,
        cert: IssuedCertificate | x509.Certificate | CertificateAuthority | int,
        *,
        reason: x509.ReasonFlags | None = None,
        at: dt.datetime | None = None,
    ) -> None:
        """Record ``cert`` (or a serial number) as revoked: later :meth:`crl` and
        :meth:`ocsp_response` calls list it."""
        self.revoked[_serial(cert)] = (at or _now(), reason)

    def crl(
        self,
        *,
        revoked: Iterable[IssuedCertificate | x509.Certificate | CertificateAuthority | int]
        | None = None,
        this_update: dt.datetime | None = None,
        next_update: dt.datetime | None = None,
        number: int | None = None,
        extensions: Iterable[tuple[x509.ExtensionType, bool]] = (),
        signing_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
    ) -> x509.CertificateRevocationList:
        """A CRL signed by this CA (or by ``signing_key``, to test a forged one).

        ``revoked`` defaults to what :meth:`revoke` recorded; ``this_update`` to now;
        ``next_update`` to one day after ``this_update``; ``number`` (the CRLNumber
        extension) to the number of CRLs issued so far.  ``extensions`` are added as given
        (e.g. an ``IssuingDistributionPoint`` or a ``DeltaCRLIndicator``)."""
        issued_at = this_update or _now()
        entries = (
            dict(self.revoked)
            if revoked is None
            else {_serial(item): (issued_at, None) for item in revoked}
        )
        self._crl_count += 1
        return sign_crl(
            self.certificate,
            self.key,
            entries,
            this_update=issued_at,
            next_update=next_update or issued_at + _ONE_DAY,
            number=self._crl_count if number is None else number,
            extensions=extensions,
            signing_key=signing_key,
        )

    def ocsp_responder(self, common_name: str | None = None) -> IssuedCertificate:
        """A delegated OCSP responder certificate (id-kp-OCSPSigning) issued by this CA."""
        return self.issue(
            common_name=common_name or f"{self.certificate.subject.rfc4514_string()} OCSP",
            extended_key_usages=(ExtendedKeyUsageOID.OCSP_SIGNING,),
        )

    def ocsp_response(
        self,
        request: ocsp.OCSPRequest | bytes | IssuedCertificate | x509.Certificate,
        *,
        status: ocsp.OCSPCertStatus | None = None,
        responder: IssuedCertificate | None = None,
        this_update: dt.datetime | None = None,
        next_update: dt.datetime | None = None,
        no_next_update: bool = False,
        nonce: bytes | None = None,
        signing_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
    ) -> ocsp.OCSPResponse:
        """A signed OCSP response for a request (object or DER) or a certificate this CA
        issued.

        ``status`` defaults to what this CA knows: REVOKED after :meth:`revoke`, GOOD for a
        serial it issued, UNKNOWN otherwise; a request naming another issuer gets an
        ``UNAUTHORIZED`` response.  Signed by this CA, or by the delegated ``responder``
        (see :meth:`ocsp_responder`), or by ``signing_key`` (to test a forged response).
        A nonce in the request is echoed unless ``nonce`` is given."""
        if isinstance(request, (IssuedCertificate, x509.Certificate)):
            request = ocsp_request(certificate_of(request), self.certificate)
        elif isinstance(request, bytes):
            request = ocsp.load_der_ocsp_request(request)
        produced = this_update or _now()
        return sign_ocsp_response(
            self.certificate,
            self.key,
            request,
            key=signing_key or (responder.key if responder else self.key),
            revoked=self.revoked,
            issued=self.issued,
            status=status,
            responder=responder.certificate if responder else None,
            this_update=produced,
            next_update=None if no_next_update else next_update or produced + _ONE_DAY,
            nonce=nonce,
        )


def _serial(cert: IssuedCertificate | x509.Certificate | CertificateAuthority | int) -> int:
    if isinstance(cert, int):
        return cert
    if isinstance(cert, (IssuedCertificate, CertificateAuthority)):
        return cert.certificate.serial_number
    return cert.serial_number


#: What the header encoders and helpers accept: an issued certificate or a bare one.
CertificateLike = IssuedCertificate | x509.Certificate


def certificate_of(cert: CertificateLike) -> x509.Certificate:
    """The ``x509.Certificate`` of ``cert``."""
    return cert.certificate if isinstance(cert, IssuedCertificate) else cert


def pem_of(cert: CertificateLike) -> str:
    """``cert`` as PEM text."""
    return certificate_of(cert).public_bytes(serialization.Encoding.PEM).decode("ascii")


def der_of(cert: CertificateLike) -> bytes:
    """``cert`` as DER bytes."""
    return certificate_of(cert).public_bytes(serialization.Encoding.DER)
