"""CRLs and OCSP responses for tests, and the pointers to them in certificates.

The signing side of revocation, as plain functions of an issuer's certificate and key:
:class:`~asgi_mtls.testing.CertificateAuthority` calls them for ``crl()`` and
``ocsp_response()``, and :class:`~asgi_mtls.testing.RevocationServer` publishes what they
sign.  RFC 5280 section 5 (CRLs), RFC 6960 (OCSP).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Container, Iterable, Mapping

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

#: A CA's or responder's private key.
PrivateKey = CertificateIssuerPrivateKeyTypes
#: Serial number -> (revocation time, reason) of the certificates an issuer revoked.
Revocations = Mapping[int, tuple[dt.datetime, x509.ReasonFlags | None]]


def revocation_pointers(
    builder: x509.CertificateBuilder, crl_urls: Iterable[str], ocsp_urls: Iterable[str]
) -> x509.CertificateBuilder:
    """``builder`` with CRL distribution points and an OCSP responder (authorityInfoAccess)
    for the given URLs, when there are any."""
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


def sign_crl(
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    revoked: Revocations,
    *,
    this_update: dt.datetime,
    next_update: dt.datetime,
    number: int,
    extensions: Iterable[tuple[x509.ExtensionType, bool]] = (),
    signing_key: PrivateKey | None = None,
) -> x509.CertificateRevocationList:
    """A CRL of ``issuer`` (whose private key is ``issuer_key``) listing ``revoked``, with a
    CRLNumber and an authority key identifier, plus ``extensions`` as given; signed with
    ``issuer_key``, or with ``signing_key`` to test a forged one."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    for serial, (when, reason) in revoked.items():
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(signing_key or issuer_key, hashes.SHA256())


def ocsp_request(certificate: x509.Certificate, issuer: x509.Certificate) -> ocsp.OCSPRequest:
    """The OCSP request a client sends for ``certificate`` (SHA-1 certID, as clients do)."""
    builder = ocsp.OCSPRequestBuilder()
    return builder.add_certificate(certificate, issuer, hashes.SHA1()).build()  # noqa: S303


def sign_ocsp_response(
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    request: ocsp.OCSPRequest,
    *,
    key: PrivateKey,
    revoked: Revocations,
    issued: Container[int],
    status: ocsp.OCSPCertStatus | None = None,
    responder: x509.Certificate | None = None,
    this_update: dt.datetime,
    next_update: dt.datetime | None,
    nonce: bytes | None = None,
) -> ocsp.OCSPResponse:
    """``issuer``'s answer to ``request``, signed with ``key`` (``issuer_key``, a delegated
    responder's, or a forger's).

    A request naming another issuer gets ``UNAUTHORIZED``.  ``status`` defaults to REVOKED
    for a serial in ``revoked``, GOOD for one in ``issued``, UNKNOWN otherwise.  With a
    delegated ``responder`` certificate the response names it by key hash and carries it;
    else it names ``issuer``.  ``nonce`` defaults to the request's (echoed)."""
    algorithm = request.hash_algorithm
    mine = (
        _digest(algorithm, issuer.subject.public_bytes()),
        _digest(algorithm, _key_bits(issuer_key.public_key())),
    )
    if (request.issuer_name_hash, request.issuer_key_hash) != mine:
        return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
    serial = request.serial_number
    revocation = revoked.get(serial)
    if status is None:
        if revocation is not None:
            status = ocsp.OCSPCertStatus.REVOKED
        elif serial in issued:
            status = ocsp.OCSPCertStatus.GOOD
        else:
            status = ocsp.OCSPCertStatus.UNKNOWN
    revoked_at, reason = revocation or (this_update, None)
    is_revoked = status == ocsp.OCSPCertStatus.REVOKED
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        request.issuer_name_hash,
        request.issuer_key_hash,
        serial,
        algorithm,
        status,
        this_update,
        next_update,
        revoked_at if is_revoked else None,
        reason if is_revoked else None,
    )
    if responder is not None:
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, responder)
        builder = builder.certificates([responder])
    else:
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.NAME, issuer)
    if nonce is None:
        try:
            nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            nonce = None
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.sign(key, hashes.SHA256())


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
