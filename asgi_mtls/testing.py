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

import base64
import datetime as dt
import http.server
import ipaddress
import os
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from starlette.types import ASGIApp, Receive, Scope, Send

from asgi_mtls.sources.headers import header_format
from asgi_mtls.sources.openssl_dn import envoy_subject
from asgi_mtls.sources.xfcc import envoy_names

__all__ = [
    "CertificateAuthority",
    "IssuedCertificate",
    "RevocationServer",
    "alb_header",
    "alb_leaf_header",
    "apache_header",
    "asgi_tls_scope_extension",
    "base64_der_header",
    "client_cert_chain_header",
    "client_cert_header",
    "cloudfront_header",
    "encode_certificate_headers",
    "haproxy_chain_header",
    "nginx_escaped_header",
    "nginx_pem_header",
    "simulate_connection",
    "traefik_header",
    "xfcc_header",
]

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
        builder = _add_revocation_pointers(builder, crl_urls, ocsp_urls)
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
        now = _now()
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        names += [x509.UniformResourceIdentifier(u) for u in uris]
        names += [x509.RFC822Name(e) for e in emails]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        names += sans
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
        builder = _add_revocation_pointers(builder, crl_urls, ocsp_urls)
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
        self._crl_count = getattr(self, "_crl_count", 0) + 1
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(issued_at)
            .next_update(next_update or issued_at + _ONE_DAY)
            .add_extension(
                x509.CRLNumber(self._crl_count if number is None else number), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        for serial, (when, reason) in entries.items():
            entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
            if reason is not None:
                entry = entry.add_extension(x509.CRLReason(reason), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        return builder.sign(signing_key or self.key, hashes.SHA256())

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
            certificate = request.certificate if isinstance(request, IssuedCertificate) else request
            request = (
                ocsp.OCSPRequestBuilder()
                .add_certificate(certificate, self.certificate, hashes.SHA1())  # noqa: S303
                .build()
            )
        elif isinstance(request, bytes):
            request = ocsp.load_der_ocsp_request(request)
        expected = (
            ocsp.OCSPRequestBuilder()
            .add_certificate_by_hash(
                request.issuer_name_hash,
                request.issuer_key_hash,
                request.serial_number,
                request.hash_algorithm,
            )
            .build()
        )
        algorithm = request.hash_algorithm
        mine = (
            _digest(algorithm, self.certificate.subject.public_bytes()),
            _digest(algorithm, _key_bits(self.key.public_key())),
        )
        if (expected.issuer_name_hash, expected.issuer_key_hash) != mine:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        serial = request.serial_number
        revocation = self.revoked.get(serial)
        if status is None:
            if revocation is not None:
                status = ocsp.OCSPCertStatus.REVOKED
            elif serial in self.issued:
                status = ocsp.OCSPCertStatus.GOOD
            else:
                status = ocsp.OCSPCertStatus.UNKNOWN
        produced = this_update or _now()
        revoked_at, reason = revocation or (produced, None)
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            request.issuer_name_hash,
            request.issuer_key_hash,
            serial,
            request.hash_algorithm,
            status,
            produced,
            None if no_next_update else next_update or produced + _ONE_DAY,
            revoked_at if status == ocsp.OCSPCertStatus.REVOKED else None,
            reason if status == ocsp.OCSPCertStatus.REVOKED else None,
        )
        if responder is not None:
            builder = builder.responder_id(
                ocsp.OCSPResponderEncoding.HASH, responder.certificate
            ).certificates([responder.certificate])
            key = signing_key or responder.key
        else:
            builder = builder.responder_id(ocsp.OCSPResponderEncoding.NAME, self.certificate)
            key = signing_key or self.key
        if nonce is None:
            try:
                nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
            except x509.ExtensionNotFound:
                nonce = None
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        return builder.sign(key, hashes.SHA256())


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


# --- proxy header values, exactly as each proxy writes them -----------------------------------
#
# One function per format; ``encode_certificate_headers`` picks the right ones with the default
# header names of ``asgi_mtls.sources.header_source``.  ``chain`` is always what the client
# sent after its leaf (intermediates), leaf excluded.

CertificateLike = IssuedCertificate | x509.Certificate


def _x509(cert: CertificateLike) -> x509.Certificate:
    return cert.certificate if isinstance(cert, IssuedCertificate) else cert


def _pem(cert: CertificateLike) -> str:
    return _x509(cert).public_bytes(serialization.Encoding.PEM).decode("ascii")


def _der(cert: CertificateLike) -> bytes:
    return _x509(cert).public_bytes(serialization.Encoding.DER)


def _b64(cert: CertificateLike) -> str:
    return base64.b64encode(_der(cert)).decode("ascii")


def nginx_pem_header(cert: CertificateLike) -> str:
    """nginx's deprecated ``$ssl_client_cert``: the PEM without its final newline, every other
    newline followed by a tab (``ngx_ssl_get_certificate``).  An HTTP/1.1 server receives
    the tabs as obsolete line folding; h11 turns each fold into one space."""
    return _pem(cert)[:-1].replace("\n", "\n\t")


def xfcc_header(
    cert: CertificateLike,
    *,
    chain: Sequence[x509.Certificate] = (),
    by: str | None = "spiffe://proxy.example/envoy",
    include_cert: bool = True,
    include_chain: bool = False,
    subject: bool = True,
    uri: bool = True,
    dns: bool = True,
    previous: str | None = None,
) -> str:
    """Envoy's ``x-forwarded-client-cert`` element for ``cert``, byte for byte as Envoy 1.40
    writes it (compared with the real binary in ``tests/e2e/test_envoy.py``), pairs joined by
    ``;`` in this order: ``By=`` (the proxy's own URI SAN, unquoted; ``None`` for a proxy
    certificate without one), ``Hash=`` (lower-case hex SHA-256 of the DER), ``Cert="..."``
    and ``Chain="..."`` (URL-encoded PEM: newline, space, ``+ / =`` escaped; the chain is
    what the client sent, leaf first), ``Subject="..."`` (the subject as BoringSSL prints it
    in RFC 2253 form, :func:`asgi_mtls.sources.openssl_dn.envoy_subject`), one ``URI=`` per
    URI SAN (one empty ``URI=`` when there is none) and one ``DNS=`` per DNS SAN.  URI and DNS
    values are written raw, unquoted, whatever they contain, as Envoy does.  ``previous`` is
    the XFCC that arrived from earlier hops (``APPEND_FORWARD`` appends after a ``,``)."""

    def envoy_escape(pem: str) -> str:
        for plain, escaped in (
            ("\n", "%0A"),
            (" ", "%20"),
            ("+", "%2B"),
            ("/", "%2F"),
            ("=", "%3D"),
        ):
            pem = pem.replace(plain, escaped)
        return pem

    certificate = _x509(cert)
    pairs: list[str] = []
    if by is not None:
        pairs.append(f"By={by}")
    pairs.append(f"Hash={certificate.fingerprint(hashes.SHA256()).hex()}")
    if include_cert:
        pairs.append(f'Cert="{envoy_escape(_pem(certificate))}"')
    if include_chain:
        full = "".join(_pem(c) for c in (certificate, *chain))
        pairs.append(f'Chain="{envoy_escape(full)}"')
    uris, dns_names = envoy_names(certificate)
    if subject:
        pairs.append(f'Subject="{envoy_subject(certificate)}"')
    if uri:
        pairs += [f"URI={u}" for u in uris]
    if dns:
        pairs += [f"DNS={d}" for d in dns_names]
    element = ";".join(pairs)
    return f"{previous},{element}" if previous else element


def client_cert_header(cert: CertificateLike) -> str:
    """RFC 9440 ``Client-Cert``: ``:<base64 DER>:`` (an RFC 8941 byte sequence)."""
    return f":{_b64(cert)}:"


def client_cert_chain_header(chain: Sequence[CertificateLike]) -> str:
    """RFC 9440 ``Client-Cert-Chain``: byte sequences joined by ``", "``, leaf excluded."""
    return ", ".join(f":{_b64(c)}:" for c in chain)


def base64_der_header(cert: CertificateLike) -> str:
    """Base64 DER: HAProxy ``%[ssl_c_der,base64]``, Caddy
    ``{http.request.tls.client.certificate_der_base64}``, Azure ``X-ARR-ClientCert``."""
    return _b64(cert)


def haproxy_chain_header(chain: Sequence[CertificateLike]) -> str:
    """HAProxy ``%[ssl_c_chain_der,base64]``: base64 of the concatenated DER of the chain the
    client sent after its leaf; empty when it sent none."""
    return base64.b64encode(b"".join(_der(c) for c in chain)).decode("ascii")


def traefik_header(
    cert: CertificateLike, chain: Sequence[CertificateLike] = (), *, legacy: bool = False
) -> str:
    """Traefik ``X-Forwarded-Tls-Client-Cert``: each certificate's PEM body without armour or
    newlines, leaf first, joined by ``,``; ``legacy=True`` URL-encodes each body as Traefik
    did before v2.9.4 (Go's ``url.QueryEscape``)."""
    bodies = []
    for certificate in (cert, *chain):
        pem = _pem(certificate)
        body = pem.replace("-----BEGIN CERTIFICATE-----", "").replace(
            "-----END CERTIFICATE-----", ""
        )
        body = body.replace("\n", "")
        bodies.append(quote(body, safe="") if legacy else body)
    return ",".join(bodies)


def apache_header(cert: CertificateLike) -> str:
    """Apache ``RequestHeader set X-SSL-Client-Cert "%{SSL_CLIENT_CERT}s"``: the PEM with every
    newline (the last one too) turned into a space.  Without a certificate: ``(null)``."""
    return _pem(cert).replace("\n", " ")


def alb_header(cert: CertificateLike, chain: Sequence[CertificateLike] = ()) -> str:
    """AWS ALB passthrough ``X-Amzn-Mtls-Clientcert``: the whole chain, leaf first, as
    URL-encoded PEM with ``+ = /`` as safe characters."""
    return quote("".join(_pem(c) for c in (cert, *chain)), safe="+=/")


def alb_leaf_header(cert: CertificateLike) -> str:
    """AWS ALB verify mode ``X-Amzn-Mtls-Clientcert-Leaf``: the leaf, URL-encoded PEM with
    ``+ = /`` as safe characters."""
    return quote(_pem(cert), safe="+=/")


def cloudfront_header(cert: CertificateLike) -> str:
    """CloudFront ``CloudFront-Viewer-Cert-Pem``: the leaf as URL-encoded PEM
    (``-----BEGIN%20CERTIFICATE-----%0AMII...``)."""
    return quote(_pem(cert), safe="")


#: The success value each verdict header carries.
_VERDICT_OK = {"nginx": "SUCCESS", "nginx-pem": "SUCCESS", "apache": "SUCCESS", "haproxy": "0"}


def encode_certificate_headers(
    format: str,
    cert: CertificateLike,
    *,
    chain: Sequence[x509.Certificate] | None = None,
    header: str | None = None,
    chain_header: str | None = None,
    verify_header: str | None = None,
    verdict: str | None = None,
) -> dict[str, str]:
    """The headers a proxy of ``format`` (one of ``asgi_mtls.sources.HEADER_FORMATS``) sends
    for a client presenting ``cert``, under the source's default names unless overridden.

    ``chain`` defaults to ``cert.chain`` for an :class:`IssuedCertificate`; formats that carry
    a chain get it.  ``verdict`` is the verdict header's value (default: the proxy's success
    value where the format has a verdict header by default: ``SUCCESS``, ``0``).
    """
    spec = header_format(format)
    if chain is None:
        chain = cert.chain if isinstance(cert, IssuedCertificate) else ()
    name = header or spec.header
    headers: dict[str, str] = {}
    chain_value: str | None = None
    if format == "nginx":
        headers[name] = nginx_escaped_header(cert)
    elif format == "nginx-pem":
        headers[name] = nginx_pem_header(cert)
    elif format == "envoy":
        headers[name] = xfcc_header(cert, chain=chain, include_chain=bool(chain))
    elif format == "rfc9440":
        headers[name] = client_cert_header(cert)
        chain_value = client_cert_chain_header(chain) if chain else None
    elif format == "haproxy":
        headers[name] = base64_der_header(cert)
        chain_value = haproxy_chain_header(chain)
    elif format == "traefik":
        headers[name] = traefik_header(cert, chain)
    elif format in ("caddy", "azure"):
        headers[name] = base64_der_header(cert)
    elif format == "apache":
        headers[name] = apache_header(cert)
    elif format == "aws-alb":
        headers[name] = alb_header(cert, chain)
    elif format == "aws-alb-verify":
        headers[name] = alb_leaf_header(cert)
    elif format == "cloudfront":
        headers[name] = cloudfront_header(cert)
    else:  # pragma: no cover - every registered format is handled above
        raise ValueError(f"no encoder for {format!r}")
    if chain_value is not None:
        headers[chain_header or spec.chain_header or ""] = chain_value
    verdict_name = verify_header or spec.verify_header
    verdict_value = verdict if verdict is not None else _VERDICT_OK.get(format)
    if verdict_name and verdict_value is not None:
        headers[verdict_name] = verdict_value
    return headers


# --- revocation test helpers: pointers in certificates, and a local responder -------------


def _serial(cert: IssuedCertificate | x509.Certificate | CertificateAuthority | int) -> int:
    if isinstance(cert, int):
        return cert
    if isinstance(cert, (IssuedCertificate, CertificateAuthority)):
        return cert.certificate.serial_number
    return cert.serial_number


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    digest = hashes.Hash(algorithm)
    digest.update(data)
    return digest.finalize()


def _key_bits(key: object) -> bytes:
    """The subjectPublicKey BIT STRING content (what an OCSP certID's key hash covers)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    raise TypeError(f"no OCSP key hash for a {type(key).__name__} test CA")


def _add_revocation_pointers(
    builder: x509.CertificateBuilder, crl_urls: Iterable[str], ocsp_urls: Iterable[str]
) -> x509.CertificateBuilder:
    crl = [x509.UniformResourceIdentifier(url) for url in crl_urls]
    if crl:
        point = x509.DistributionPoint(
            full_name=crl, relative_name=None, reasons=None, crl_issuer=None
        )
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    responders = [
        x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(u)
        )
        for u in ocsp_urls
    ]
    if responders:
        builder = builder.add_extension(x509.AuthorityInformationAccess(responders), critical=False)
    return builder


#: A route of :class:`RevocationServer`: request body (``b""`` for GET) -> response body.
Route = Callable[[bytes], bytes]


class RevocationServer:
    """A small HTTP server on 127.0.0.1 publishing CRLs and answering OCSP, for tests.

    ::

        with RevocationServer() as server:
            crl_url = server.serve_crl("/ca.crl", ca)      # a fresh ca.crl() per request
            ocsp_url = server.serve_ocsp("/ocsp", ca)      # ca.ocsp_response(request)
            client = ca.issue_client("alice", crl_urls=[crl_url], ocsp_urls=[ocsp_url])

    ``hang = True`` makes it accept connections and never answer (until stopped), to test
    timeouts; :meth:`refused_url` gives a URL where nothing listens.  ``requests`` records
    ``(method, path)`` of every request received.
    """

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str]] = []
        self.hang = False
        self.status = 200
        self._release = threading.Event()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, body: bytes) -> None:
                owner.requests.append((self.command, self.path))
                if owner.hang:
                    owner._release.wait(60)
                    self.close_connection = True
                    return
                route = owner.routes.get(self.path.split("?", 1)[0])
                if route is None:
                    self.send_error(404)
                    return
                data = route(body)
                self.send_response(owner.status)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer(b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self._answer(self.rfile.read(length))

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="asgi-mtls revocation server",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def serve(self, path: str, route: Route) -> str:
        """Answer ``path`` with ``route(body)``; returns the full URL."""
        self.routes[path] = route
        return self.url + path

    def publish_crl(self, path: str, crl: x509.CertificateRevocationList | bytes) -> str:
        """Serve a fixed CRL (DER) at ``path``."""
        data = crl if isinstance(crl, bytes) else crl.public_bytes(serialization.Encoding.DER)
        return self.serve(path, lambda _: data)

    def serve_crl(self, path: str, ca: CertificateAuthority, **options: Any) -> str:
        """Serve ``ca.crl(**options)``, built afresh for every request (so it follows
        :meth:`CertificateAuthority.revoke`)."""
        return self.serve(
            path, lambda _: ca.crl(**options).public_bytes(serialization.Encoding.DER)
        )

    def serve_ocsp(self, path: str, ca: CertificateAuthority, **options: Any) -> str:
        """Answer OCSP POSTs at ``path`` with ``ca.ocsp_response(request, **options)``."""
        return self.serve(
            path,
            lambda body: ca.ocsp_response(body, **options).public_bytes(serialization.Encoding.DER),
        )

    @staticmethod
    def refused_url(path: str = "/") -> str:
        """A URL on 127.0.0.1 where (just now) nothing listens: connections are refused."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        return f"http://127.0.0.1:{port}{path}"

    def start(self) -> RevocationServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RevocationServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
