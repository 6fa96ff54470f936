"""One key and signature policy for every certificate of the path: leaf, intermediates, root.

cryptography's webpki verifier decides which keys and algorithms may *sign* in the path (RSA
PKCS#1 v1.5 and PSS, ECDSA on P-256/P-384/P-521, SHA-256/384/512), but it never looks at the
leaf's own key, and it lets issuer keys through that the CA/Browser Forum Baseline
Requirements forbid (an RSA modulus of 2047 or 2050 bits, an exponent of 3).  This module is
the one place where key strength and signature algorithms are decided, for every position:

========================  =======================================================  ==========
key                       rule                                                     source
========================  =======================================================  ==========
RSA                       modulus >= ``min_rsa_bits`` (never below 2048), a whole   BR 6.1.5,
                          number of bytes; public exponent odd and in               SP 800-131A,
                          [2**16 + 1, 2**256 - 1]                                   FIPS 186-5
EC                        named curve P-256, P-384 or P-521 (narrowable)            BR 6.1.5,
                                                                                    RFC 8446
Ed25519, Ed448            accepted (``allow_eddsa=False`` refuses them)             RFC 8410
DSA, X25519, X448, other  refused                                                   BR 6.1.5
========================  =======================================================  ==========

A key outside the policy is refused as ``weak_key`` at any position.  An Ed25519 or Ed448 key
passes this policy at every position, but cryptography's webpki profile does not let it sign a
certificate, so an EdDSA CA is ``untrusted`` (not weak: not allowed to sign); EdDSA is in
practice a leaf key.  An even exponent or ``e = 1`` never reaches the policy: cryptography
refuses to load such a key, which makes the certificate ``malformed``.

Signature algorithms: MD5 and SHA-1 (in any scheme, RSA-PSS included) are refused whatever
the configuration (``weak_signature``), and ``signature_algorithms`` narrows the accepted
set further.  The trust anchor's self-signature is not relied upon, so it is not checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import SignatureAlgorithmOID

from asgi_mtls.errors import CertificateRejected, RejectionReason

__all__ = [
    "ACCEPTED_CURVES",
    "RSA_FLOOR_BITS",
    "WEAK_SIGNATURE_ALGORITHMS",
    "CertificatePolicy",
    "describe_key",
]

#: The shortest RSA modulus accepted at all (NIST SP 800-131A rev. 2: 112-bit security);
#: ``min_rsa_bits`` can raise it, never lower it.
RSA_FLOOR_BITS: Final = 2048
#: FIPS 186-5 §5.4 (and the CA/B Forum's SHOULD in BR 6.1.6): 2**16 < e < 2**256, e odd.
MIN_RSA_EXPONENT: Final = 2**16 + 1
MAX_RSA_EXPONENT: Final = 2**256 - 1
#: The named curves accepted (BR 6.1.5; the TLS 1.3 ECDSA schemes of RFC 8446 §4.2.3), by
#: their NIST names, with cryptography's names as aliases.
ACCEPTED_CURVES: Final[dict[str, type[ec.EllipticCurve]]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}
_CURVE_ALIASES: Final = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}

#: Signature algorithms refused whatever the configuration (cryptography's webpki policy
#: refuses them in the path too; this check gives them a precise reason code).
WEAK_SIGNATURE_ALGORITHMS: Final = frozenset(
    {
        SignatureAlgorithmOID.RSA_WITH_MD5,
        SignatureAlgorithmOID.RSA_WITH_SHA1,
        SignatureAlgorithmOID._RSA_WITH_SHA1,
        SignatureAlgorithmOID.ECDSA_WITH_SHA1,
        SignatureAlgorithmOID.DSA_WITH_SHA1,
    }
)


def _curve_name(name: str) -> str:
    canonical = _CURVE_ALIASES.get(name.lower(), name.upper())
    if canonical not in ACCEPTED_CURVES:
        choices = ", ".join(ACCEPTED_CURVES)
        raise ValueError(f"ec_curves: {name!r} is not an accepted curve (choose from {choices})")
    return canonical


def describe_key(key: object) -> str:
    """A short name for a public key, for logs: ``RSA-2048 e=65537``, ``EC secp192r1``."""
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size} e={key.public_numbers().e}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA-{key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    return type(key).__name__


def describe_certificate(certificate: x509.Certificate) -> str:
    """The subject and the start of the SHA-256 fingerprint, for log details."""
    fingerprint = certificate.fingerprint(hashes.SHA256()).hex()[:16]
    return f"{certificate.subject.rfc4514_string()!r} (sha256 {fingerprint})"


@dataclass(frozen=True, slots=True)
class CertificatePolicy:
    """The key and signature rules applied to every certificate of a path (see the module).

    Build it with :meth:`build`, which validates the options: nothing can be configured below
    the floor (RSA under 2048 bits, a curve other than P-256/P-384/P-521).
    """

    min_rsa_bits: int = RSA_FLOOR_BITS
    ec_curves: frozenset[str] = frozenset(ACCEPTED_CURVES)
    allow_eddsa: bool = True
    #: ``None``: cryptography's webpki set (minus MD5 and SHA-1).
    signature_algorithms: frozenset[x509.ObjectIdentifier] | None = None

    @classmethod
    def build(
        cls,
        *,
        min_rsa_bits: int = RSA_FLOOR_BITS,
        ec_curves: Iterable[str] | None = None,
        allow_eddsa: bool = True,
        signature_algorithms: Iterable[x509.ObjectIdentifier] | None = None,
    ) -> CertificatePolicy:
        """A policy from the validator's options; ``ValueError`` for one that would weaken
        the floor (there is deliberately no opt-in for that)."""
        if isinstance(min_rsa_bits, bool) or not isinstance(min_rsa_bits, int):
            raise TypeError("min_rsa_bits must be an int")
        if min_rsa_bits < RSA_FLOOR_BITS:
            raise ValueError(
                f"min_rsa_bits={min_rsa_bits} is below the floor of {RSA_FLOOR_BITS} bits "
                "(NIST SP 800-131A); it can be raised, never lowered"
            )
        if isinstance(ec_curves, str):
            raise TypeError("ec_curves must be a list of curve names, e.g. ['P-256', 'P-384']")
        curves = (
            frozenset(ACCEPTED_CURVES)
            if ec_curves is None
            else frozenset(_curve_name(name) for name in ec_curves)
        )
        return cls(
            min_rsa_bits=min_rsa_bits,
            ec_curves=curves,
            allow_eddsa=allow_eddsa,
            signature_algorithms=(
                None if signature_algorithms is None else frozenset(signature_algorithms)
            ),
        )

    def key_problem(self, certificate: x509.Certificate) -> str | None:
        """Why ``certificate``'s public key is refused, or ``None`` when it is accepted.

        Raises ``ValueError`` when the key cannot be decoded at all (malformed, or an RSA key
        with an even exponent, which cryptography refuses to load).
        """
        try:
            key = certificate.public_key()
        except UnsupportedAlgorithm:
            oid = certificate.public_key_algorithm_oid.dotted_string
            return f"key algorithm {oid} is not supported"
        # The description is built only for a refusal: this runs for every new client.
        if isinstance(key, ec.EllipticCurvePublicKey):
            if isinstance(key.curve, self._curve_types):
                return None
            allowed = ", ".join(name for name in ACCEPTED_CURVES if name in self.ec_curves)
            return f"{describe_key(key)}: curve not accepted (accepted: {allowed or 'none'})"
        if isinstance(key, rsa.RSAPublicKey):
            exponent = key.public_numbers().e
            if key.key_size < self.min_rsa_bits:
                return f"{describe_key(key)}: modulus shorter than {self.min_rsa_bits} bits"
            if key.key_size % 8:
                return f"{describe_key(key)}: modulus is not a whole number of bytes"
            if exponent % 2 == 0 or not MIN_RSA_EXPONENT <= exponent <= MAX_RSA_EXPONENT:
                return (
                    f"{describe_key(key)}: public exponent must be odd and between 2**16 + 1 "
                    "and 2**256 - 1"
                )
            return None
        if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            return None if self.allow_eddsa else f"{describe_key(key)}: EdDSA keys are not accepted"
        return f"{describe_key(key)}: key type not accepted"

    @property
    def _curve_types(self) -> tuple[type[ec.EllipticCurve], ...]:
        return tuple(curve for name, curve in ACCEPTED_CURVES.items() if name in self.ec_curves)

    def check_key(self, certificate: x509.Certificate, role: str) -> None:
        """Raise ``weak_key`` naming the certificate (``role``: leaf, intermediate, root) and
        its key when the key is outside the policy."""
        problem = self.key_problem(certificate)
        if problem is not None:
            raise CertificateRejected(
                RejectionReason.WEAK_KEY,
                f"{role} {describe_certificate(certificate)}: {problem}",
            )

    def check_signature(self, certificate: x509.Certificate, role: str) -> None:
        """Raise ``weak_signature`` when ``certificate`` is signed with MD5 or SHA-1 (in any
        scheme), or with an algorithm outside ``signature_algorithms``."""
        oid = certificate.signature_algorithm_oid
        weak = oid in WEAK_SIGNATURE_ALGORITHMS
        if not weak and oid == SignatureAlgorithmOID.RSASSA_PSS:
            try:
                weak = isinstance(certificate.signature_hash_algorithm, hashes.SHA1 | hashes.MD5)
            except UnsupportedAlgorithm:
                weak = True
        if weak or (self.signature_algorithms is not None and oid not in self.signature_algorithms):
            raise CertificateRejected(
                RejectionReason.WEAK_SIGNATURE,
                f"{role} {describe_certificate(certificate)} is signed with "
                f"{getattr(oid, '_name', None) or oid.dotted_string}",
            )
