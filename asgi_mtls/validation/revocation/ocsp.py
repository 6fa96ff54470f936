"""OCSP (RFC 6960, RFC 5019): requests for the leaf and verification of the answers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from asgi_mtls.validation.revocation.common import (
    THIS_UPDATE_TOLERANCE,
    http_urls,
    is_weak_hash,
    utcnow,
    verify_signature,
)


def ocsp_responder_urls(certificate: x509.Certificate) -> tuple[str, ...]:
    """The http(s) OCSP responder URLs in ``certificate``'s authorityInfoAccess."""
    try:
        access = certificate.extensions.get_extension_for_class(
            x509.AuthorityInformationAccess
        ).value
    except (x509.ExtensionNotFound, ValueError):
        return ()
    names = [d.access_location for d in access if d.access_method == x509.OID_OCSP]
    return tuple(dict.fromkeys(http_urls(names)))


@dataclass(frozen=True, slots=True)
class OcspAnswer:
    """A verified OCSP answer for one certificate."""

    status: ocsp.OCSPCertStatus
    this_update: dt.datetime
    next_update: dt.datetime | None
    revocation_time: dt.datetime | None
    loaded_at: dt.datetime

    def fresh_until(self, refresh_interval: dt.timedelta) -> dt.datetime:
        return self.next_update or self.loaded_at + refresh_interval


def build_ocsp_request(
    leaf: x509.Certificate, issuer: x509.Certificate, nonce: bytes | None = None
) -> ocsp.OCSPRequest:
    """An OCSP request for ``leaf`` (certID with SHA-1, as RFC 5019 profiles it)."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1())  # noqa: S303
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build()


def _responder_matches(response: ocsp.OCSPResponse, certificate: x509.Certificate) -> bool:
    """RFC 6960 ResponderID: by name, or by SHA-1 of the key (``byKey``)."""
    if response.responder_name is not None:
        return response.responder_name == certificate.subject
    key_id = x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest
    return response.responder_key_hash == key_id


def _authorised_responder(
    candidate: x509.Certificate, issuer: x509.Certificate, at: dt.datetime
) -> bool:
    """RFC 6960 §4.2.2.2: a delegated responder is issued directly by the CA and carries the
    id-kp-OCSPSigning extended key usage."""
    try:
        candidate.verify_directly_issued_by(issuer)
        usages = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm, x509.ExtensionNotFound):
        return False
    if ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
        return False
    if is_weak_hash(candidate.signature_hash_algorithm):
        return False
    if not candidate.not_valid_before_utc <= at <= candidate.not_valid_after_utc:
        return False
    try:
        usage = candidate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return usage.digital_signature


def verify_ocsp_response(
    data: bytes,
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    *,
    nonce: bytes | None = None,
    at: dt.datetime | None = None,
) -> OcspAnswer:
    """Check an OCSP response for ``leaf`` and return its answer; ``ValueError`` when it is
    not a successful, matching, fresh response signed by the issuer or its delegate."""
    moment = at or utcnow()
    response = ocsp.load_der_ocsp_response(data)
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise ValueError(f"OCSP responder status {response.response_status.name}")
    if _responder_matches(response, issuer):
        signer = issuer
    else:
        for candidate in response.certificates:
            if _responder_matches(response, candidate) and _authorised_responder(
                candidate, issuer, moment
            ):
                signer = candidate
                break
        else:
            raise ValueError("OCSP response not signed by the issuer or an authorised responder")
    try:
        verify_signature(
            signer.public_key(),
            response.signature,
            response.tbs_response_bytes,
            response.signature_hash_algorithm,
            response.signature_algorithm_oid,
        )
    except (InvalidSignature, UnsupportedAlgorithm) as exc:
        raise ValueError(f"bad OCSP response signature: {exc!r}") from None
    if nonce is not None:
        try:
            answered = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            answered = None
        if answered is not None and answered != nonce:
            raise ValueError("OCSP nonce mismatch")
    for single in response.responses:
        expected = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, single.hash_algorithm)
        request = expected.build()
        if (
            single.serial_number == leaf.serial_number
            and single.issuer_name_hash == request.issuer_name_hash
            and single.issuer_key_hash == request.issuer_key_hash
        ):
            break
    else:
        raise ValueError("OCSP response does not answer for this certificate")
    this_update = single.this_update_utc
    next_update = single.next_update_utc
    if this_update > moment + THIS_UPDATE_TOLERANCE:
        raise ValueError(f"OCSP thisUpdate {this_update.isoformat()} is in the future")
    if next_update is not None and (next_update < this_update or next_update < moment):
        raise ValueError("stale OCSP response (nextUpdate has passed)")
    return OcspAnswer(
        status=single.certificate_status,
        this_update=this_update,
        next_update=next_update,
        revocation_time=single.revocation_time_utc,
        loaded_at=utcnow(),
    )
