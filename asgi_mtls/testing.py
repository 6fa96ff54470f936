"""Helpers for tests: a small, real PKI and ways to present its certificates.

Everything here builds genuine X.509 certificates with ``cryptography`` (no mocks), so the
same objects serve the library's own tests, the example app's development PKI and users'
tests of their own apps::

    ca = CertificateAuthority("Test Root")
    alice = ca.issue_client(spiffe_id="spiffe://example.org/alice")
    headers = {"x-ssl-client-cert": nginx_escaped_header(alice)}

Never use these certificates in production: the keys are generated in memory and written
to disk unencrypted.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "CertificateAuthority",
    "IssuedCertificate",
    "asgi_tls_scope_extension",
    "nginx_escaped_header",
    "simulate_connection",
]

_ONE_DAY = dt.timedelta(days=1)


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


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate with its private key and the CA chain above it (leaf excluded)."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
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
    ) -> None:
        self.key = _new_key()
        self.parent = parent
        now = _now()
        issuer_key = parent.key if parent else self.key
        issuer_name = parent.certificate.subject if parent else _name(common_name)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(issuer_name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - _ONE_DAY)
            .not_valid_after(not_after or now + 3650 * _ONE_DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
        )
        if parent is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()),
                critical=False,
            )
        self.certificate: x509.Certificate = builder.sign(issuer_key, hashes.SHA256())

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
    ) -> IssuedCertificate:
        """Issue a leaf certificate. ``extended_key_usages=None`` omits the EKU extension;
        ``rsa_bits`` gives the leaf an RSA key of that size instead of EC P-256."""
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
            rsa.generate_private_key(65537, rsa_bits) if rsa_bits else _new_key()
        )
        now = _now()
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        names += [x509.UniformResourceIdentifier(u) for u in uris]
        names += [x509.RFC822Name(e) for e in emails]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject or _name(common_name, organization))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - _ONE_DAY)
            .not_valid_after(not_after or now + 365 * _ONE_DAY)
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
            .add_extension(_key_usage(ca=is_ca), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )
        subject_name = subject or _name(common_name, organization)
        if names:
            # RFC 5280 4.2.1.6: the SAN is critical when the subject is empty.
            builder = builder.add_extension(
                x509.SubjectAlternativeName(names), critical=len(subject_name) == 0
            )
        if extended_key_usages is not None:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage(list(extended_key_usages)), critical=False
            )
        certificate = builder.sign(self.key, hashes.SHA256())
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


def nginx_escaped_header(cert: IssuedCertificate | x509.Certificate) -> str:
    """The value nginx puts in ``$ssl_client_escaped_cert``: URL-encoded PEM."""
    certificate = cert.certificate if isinstance(cert, IssuedCertificate) else cert
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return quote(pem, safe="")


def asgi_tls_scope_extension(
    cert: IssuedCertificate | None, *, include_chain: bool = True
) -> dict[str, Any]:
    """An ASGI ``tls`` extension dict (spec 0.2) for a connection presenting ``cert``."""
    chain: list[str] = []
    if cert is not None:
        chain.append(cert.pem)
        if include_chain:
            chain += [
                c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in cert.chain
            ]
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": cert.certificate.subject.rfc4514_string() if cert else None,
        "client_cert_error": None,
        "tls_version": 0x0304,
        "cipher_suite": None,
    }


def simulate_connection(
    app: ASGIApp, cert: IssuedCertificate | None = None, *, peer: str | None = "127.0.0.1"
) -> ASGIApp:
    """Wrap ``app`` as ``asgi_mtls.uvicorn`` would serve it: every HTTP and WebSocket scope
    gets the ASGI ``tls`` extension for a client presenting ``cert`` (none when ``cert`` is
    ``None``) and the transport peer ``peer``.  For in-process tests (httpx.ASGITransport,
    Starlette's TestClient) where no real TLS handshake happens."""

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            extensions = dict(scope.get("extensions") or {})
            if cert is not None:
                extensions["tls"] = asgi_tls_scope_extension(cert)
            if peer is not None:
                extensions["asgi_mtls.peer"] = {"family": "inet", "host": peer, "port": 40000}
            scope = {**scope, "extensions": extensions}
        await app(scope, receive, send)

    return wrapper
