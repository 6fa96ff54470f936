"""The leaf pre-checks: what a client can act on, refused with a precise reason code before
path building.

They can only refuse; acceptance is always cryptography's verifier's.  In this order (the
first failure names the reason):

1. extensions that cannot be decoded (duplicates, garbage), a public key that cannot be
   parsed: ``malformed``; a key outside the key policy: ``weak_key``
   (:mod:`~asgi_mtls.validation.policy`: the verifier never looks at the leaf's own key);
2. a signature made with MD5 or SHA-1, or outside ``signature_algorithms``: ``weak_signature``;
3. after notAfter + ``clock_skew``: ``expired``; before notBefore - ``clock_skew``:
   ``not_yet_valid``;
4. ``basicConstraints cA=TRUE``: ``wrong_usage`` (a CA certificate presented as a client);
5. no extendedKeyUsage (unless ``allow_missing_eku``), or one without clientAuth:
   ``wrong_usage``.  cryptography's client verifier refuses an EKU without clientAuth too,
   but takes a missing EKU for "any usage" (CA/B Forum practice); a client certificate here
   must say it is one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from asgi_mtls.errors import CertificateRejected, RejectionReason
from asgi_mtls.validation.policy import CertificatePolicy

__all__ = ["LeafChecks"]


@dataclass(frozen=True, slots=True)
class LeafChecks:
    """The pre-checks of one validator's configuration (see the module docstring)."""

    policy: CertificatePolicy
    clock_skew: dt.timedelta = dt.timedelta(0)
    allow_missing_eku: bool = False

    def check(self, leaf: x509.Certificate, moment: dt.datetime) -> dt.datetime:
        """Run the checks at ``moment``; return the time to run path validation at
        (``moment``, moved onto the leaf's validity period when it is outside by at most
        ``clock_skew``)."""
        try:
            extensions = leaf.extensions  # decoded once here, so that a bad one is `malformed`
            self.policy.check_key(leaf, "leaf")
        except (ValueError, x509.DuplicateExtension) as exc:  # bad extensions or public key
            raise CertificateRejected(RejectionReason.MALFORMED, str(exc)) from None
        self.policy.check_signature(leaf, "leaf")
        not_after, not_before = leaf.not_valid_after_utc, leaf.not_valid_before_utc
        if moment > not_after + self.clock_skew:
            raise CertificateRejected(RejectionReason.EXPIRED, f"notAfter {not_after.isoformat()}")
        if moment < not_before - self.clock_skew:
            raise CertificateRejected(
                RejectionReason.NOT_YET_VALID, f"notBefore {not_before.isoformat()}"
            )
        verify_at = min(max(moment, not_before), not_after)
        try:
            constraints = extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value
        except x509.ExtensionNotFound:
            pass
        else:
            if isinstance(constraints, x509.BasicConstraints) and constraints.ca:
                raise CertificateRejected(
                    RejectionReason.WRONG_USAGE, "a CA certificate was presented as a client"
                )
        try:
            usages = extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE).value
        except x509.ExtensionNotFound:
            if not self.allow_missing_eku:
                raise CertificateRejected(
                    RejectionReason.WRONG_USAGE, "no extendedKeyUsage extension (clientAuth)"
                ) from None
            return verify_at
        if not isinstance(usages, x509.ExtendedKeyUsage) or (
            ExtendedKeyUsageOID.CLIENT_AUTH not in usages
        ):
            raise CertificateRejected(
                RejectionReason.WRONG_USAGE, "extendedKeyUsage does not include clientAuth"
            )
        return verify_at
