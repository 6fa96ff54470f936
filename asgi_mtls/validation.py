"""CertificateValidator: is this client certificate trusted, now?

Path validation is cryptography's ``x509.verification`` (RFC 5280 as the CA/B Forum profile
reads it), with the client-side choices a service needs:

- trust roots come only from configuration (a PEM file, PEM/DER bytes, certificates); there is
  no system trust store;
- certificates sent with the request are path-building hints only, appended to the configured
  intermediates;
- the clientAuth extended key usage is required (a leaf without an EKU extension is refused
  unless ``allow_missing_eku=True``);
- RSA keys shorter than ``min_rsa_bits`` (2048) anywhere in the path are refused
  (``weak_key``);
- a leaf without subjectAltName (CN-only, as Kubernetes and many enterprise CAs issue) is
  accepted when its chain is good: cryptography's default end-entity policy demands a SAN, so
  the policy is relaxed for exactly that extension, keeping RFC 5280's rule that a SAN must
  be present and critical when the subject is empty.

Before path building, the leaf is checked for the reasons a client can act on (expired, not
yet valid, not a client certificate), so rejections carry a precise reason code.  Those
checks only ever reject: acceptance is always the verifier's.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from asgi_mtls.errors import CertificateRejected, RejectionReason

__all__ = ["CertificateInput", "CertificateValidator", "VerifiedChain", "load_certificates"]

#: What may be given as trust roots or intermediates: a path to a PEM file, PEM or DER bytes,
#: a certificate, or a sequence of any of these.
CertificateInput = (
    str
    | os.PathLike[str]
    | bytes
    | x509.Certificate
    | Sequence["str | os.PathLike[str] | bytes | x509.Certificate"]
)

#: Upper bound on certificates accepted as path-building hints from one request.
MAX_PRESENTED_CHAIN = 8


@dataclass(frozen=True, slots=True)
class VerifiedChain:
    """A successful validation: ``chain[0]`` is the leaf, ``chain[-1]`` the trust root."""

    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    #: The earliest notAfter in the chain: the result must not be reused past it.
    expires_at: dt.datetime


def _load_one(item: str | os.PathLike[str] | bytes | x509.Certificate) -> list[x509.Certificate]:
    if isinstance(item, x509.Certificate):
        return [item]
    data = item if isinstance(item, bytes) else Path(item).read_bytes()
    if b"-----BEGIN" in data:
        certificates = x509.load_pem_x509_certificates(data)
    else:
        certificates = [x509.load_der_x509_certificate(data)]
    return certificates


def load_certificates(source: CertificateInput | None) -> list[x509.Certificate]:
    """Load certificates from any :data:`CertificateInput` (see there)."""
    if source is None:
        return []
    if isinstance(source, (str, os.PathLike, bytes, x509.Certificate)):
        return _load_one(source)
    certificates: list[x509.Certificate] = []
    for item in source:
        certificates += _load_one(item)
    return certificates


def _san_required_when_subject_empty(
    policy: Policy, certificate: x509.Certificate, san: x509.SubjectAlternativeName | None
) -> None:
    # RFC 5280 4.2.1.6: with an empty subject, the SAN must be present and critical.
    if len(certificate.subject) == 0:
        if san is None:
            raise ValueError("certificate has neither a subject nor a subjectAltName")
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        if not extension.critical:
            raise ValueError("subjectAltName MUST be critical when the subject is empty")


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


class CertificateValidator:
    """Validates client certificates against configured trust roots.

    ``validate(leaf, chain, at=None)`` returns a :class:`VerifiedChain` or raises
    :class:`~asgi_mtls.errors.CertificateRejected`.  Instances are immutable and safe to
    share between middlewares and threads.
    """

    def __init__(
        self,
        trust_roots: CertificateInput,
        *,
        intermediates: CertificateInput | None = None,
        allow_missing_eku: bool = False,
        max_chain_depth: int | None = None,
        min_rsa_bits: int = 2048,
    ) -> None:
        roots = load_certificates(trust_roots)
        if not roots:
            raise ValueError("CertificateValidator needs at least one trust root")
        self.trust_roots: tuple[x509.Certificate, ...] = tuple(roots)
        self.intermediates: tuple[x509.Certificate, ...] = tuple(load_certificates(intermediates))
        self.allow_missing_eku = allow_missing_eku
        self.max_chain_depth = max_chain_depth
        self.min_rsa_bits = min_rsa_bits
        self._store = Store(list(self.trust_roots))
        self._ca_policy = ExtensionPolicy.webpki_defaults_ca()
        self._ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
            x509.SubjectAlternativeName, Criticality.AGNOSTIC, _san_required_when_subject_empty
        )

    def __repr__(self) -> str:
        subjects = [root.subject.rfc4514_string() for root in self.trust_roots]
        return f"CertificateValidator(trust_roots={subjects!r})"

    def validate(
        self,
        leaf: x509.Certificate | bytes,
        chain: Iterable[x509.Certificate | bytes] = (),
        *,
        at: dt.datetime | None = None,
    ) -> VerifiedChain:
        """Validate ``leaf`` (with untrusted ``chain`` hints) at time ``at`` (default: now)."""
        moment = _utc(at) if at is not None else dt.datetime.now(dt.UTC)
        presented = list(chain)
        if len(presented) > MAX_PRESENTED_CHAIN:
            raise CertificateRejected(
                RejectionReason.TOO_LARGE,
                f"{len(presented)} chain certificates presented, limit {MAX_PRESENTED_CHAIN}",
            )
        leaf_certificate = _parse(leaf)
        hints = [_parse(item) for item in presented]
        self._check_leaf(leaf_certificate, moment)
        builder = PolicyBuilder().store(self._store).time(moment)
        builder = builder.extension_policies(ca_policy=self._ca_policy, ee_policy=self._ee_policy)
        if self.max_chain_depth is not None:
            builder = builder.max_chain_depth(self.max_chain_depth)
        verifier = builder.build_client_verifier()
        try:
            verified = verifier.verify(leaf_certificate, [*self.intermediates, *hints])
        except VerificationError as exc:
            raise CertificateRejected(RejectionReason.UNTRUSTED, str(exc)) from None
        path = tuple(verified.chain)
        for certificate in path[1:]:
            self._check_key(certificate)
        return VerifiedChain(
            leaf=leaf_certificate,
            chain=path,
            expires_at=min(c.not_valid_after_utc for c in path),
        )

    def _check_key(self, certificate: x509.Certificate) -> None:
        # cryptography checks the RSA size of keys that verify signatures (issuers), not the
        # leaf's own key: the floor applies to every certificate in the path.
        key = certificate.public_key()
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < self.min_rsa_bits:
            raise CertificateRejected(
                RejectionReason.WEAK_KEY,
                f"{key.key_size}-bit RSA key in {certificate.subject.rfc4514_string()!r}, "
                f"minimum {self.min_rsa_bits}",
            )

    def _check_leaf(self, leaf: x509.Certificate, moment: dt.datetime) -> None:
        try:
            self._check_key(leaf)
        except ValueError as exc:  # an unparseable public key
            raise CertificateRejected(RejectionReason.MALFORMED, str(exc)) from None
        if moment > leaf.not_valid_after_utc:
            raise CertificateRejected(
                RejectionReason.EXPIRED, f"notAfter {leaf.not_valid_after_utc.isoformat()}"
            )
        if moment < leaf.not_valid_before_utc:
            raise CertificateRejected(
                RejectionReason.NOT_YET_VALID, f"notBefore {leaf.not_valid_before_utc.isoformat()}"
            )
        try:
            constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        except ValueError as exc:  # duplicate or undecodable extensions
            raise CertificateRejected(RejectionReason.MALFORMED, str(exc)) from None
        if constraints is not None and constraints.ca:
            raise CertificateRejected(
                RejectionReason.WRONG_USAGE, "a CA certificate was presented as a client"
            )
        try:
            usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            if not self.allow_missing_eku:
                raise CertificateRejected(
                    RejectionReason.WRONG_USAGE, "no extendedKeyUsage extension (clientAuth)"
                ) from None
            return
        if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
            raise CertificateRejected(
                RejectionReason.WRONG_USAGE, "extendedKeyUsage does not include clientAuth"
            )


def _parse(certificate: x509.Certificate | bytes) -> x509.Certificate:
    if isinstance(certificate, x509.Certificate):
        return certificate
    try:
        return x509.load_der_x509_certificate(certificate)
    except ValueError as exc:
        raise CertificateRejected(
            RejectionReason.MALFORMED, f"not a DER certificate: {exc}"
        ) from None
