"""One key policy for every certificate of the path: each key type at the leaf, intermediate
(presented or configured) and root position, through CertificateValidator.validate().

Before this policy the leaf's key was checked for its RSA size only: leaves with P-192, P-224
or DSA-1024 keys, RSA moduli that are not a whole number of bytes and RSA exponents of 3 were
accepted, and cryptography let 2047-bit and e=3 issuers sign."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519

from asgi_mtls import CertificateRejected, CertificateValidator, RejectionReason
from asgi_mtls.testing import CertificateAuthority
from tests.test_conformance import CA
from tests.validate import outcome


def rsa_key(bits: int, exponent: int = 65537) -> rsa.RSAPrivateKey:
    """An RSA key whose modulus has exactly ``bits`` bits (OpenSSL sometimes makes one less)."""
    for _ in range(20):
        key = rsa.generate_private_key(exponent, bits)
        if key.key_size == bits:
            return key
    raise AssertionError(f"no {bits}-bit RSA modulus in 20 tries")


#: Keys the policy refuses, with the words the log detail must contain.
WEAK_KEYS: dict[str, tuple[Callable[[], object], str]] = {
    "rsa-1024": (lambda: rsa_key(1024), "RSA-1024"),
    "rsa-2047": (lambda: rsa_key(2047), "RSA-2047"),
    "rsa-2050-not-whole-bytes": (lambda: rsa_key(2050), "RSA-2050"),
    "rsa-2048-e3": (lambda: rsa_key(2048, exponent=3), "e=3"),
    "ec-p192": (lambda: ec.generate_private_key(ec.SECP192R1()), "secp192r1"),
    "ec-p224": (lambda: ec.generate_private_key(ec.SECP224R1()), "secp224r1"),
    "ec-secp256k1": (lambda: ec.generate_private_key(ec.SECP256K1()), "secp256k1"),
    "ec-brainpool": (lambda: ec.generate_private_key(ec.BrainpoolP256R1()), "brainpoolP256r1"),
    "dsa-1024": (lambda: dsa.generate_private_key(1024), "DSA-1024"),
    "dsa-2048": (lambda: dsa.generate_private_key(2048), "DSA-2048"),
}
#: Keys the policy accepts at every position (and cryptography lets sign).
STRONG_KEYS: dict[str, Callable[[], object]] = {
    "rsa-2048": lambda: rsa_key(2048),
    "rsa-3072": lambda: rsa_key(3072),
    "ec-p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ec-p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "ec-p521": lambda: ec.generate_private_key(ec.SECP521R1()),
}
POSITIONS = ["leaf", "presented-intermediate", "configured-intermediate", "root"]


@functools.cache
def key_of(kind: str):
    """One key per kind for the whole module (DSA and RSA generation is slow)."""
    return WEAK_KEYS[kind][0]() if kind in WEAK_KEYS else STRONG_KEYS[kind]()


@pytest.fixture(scope="module")
def root() -> CertificateAuthority:
    return CertificateAuthority("Key Policy Root")


def chain_with(key, position: str, root: CertificateAuthority):
    """``(validator, leaf, presented chain)`` with ``key`` at ``position``, the rest P-256."""
    if position == "leaf":
        leaf = root.issue_client("keyed-leaf", key=key)
        return CertificateValidator(root.certificate), leaf.certificate, []
    if position == "root":
        keyed_root = CertificateAuthority("Keyed Root", key=key)
        leaf = keyed_root.issue_client("leaf-of-keyed-root")
        return CertificateValidator(keyed_root.certificate), leaf.certificate, []
    issuing = root.intermediate("Keyed Issuing CA", key=key)
    leaf = issuing.issue_client("leaf-of-keyed-ca")
    if position == "configured-intermediate":
        validator = CertificateValidator(root.certificate, intermediates=[issuing.certificate])
        return validator, leaf.certificate, []
    return CertificateValidator(root.certificate), leaf.certificate, [issuing.certificate]


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("kind", sorted(WEAK_KEYS))
def test_weak_keys_are_refused_at_every_position(root, kind, position):
    validator, leaf, chain = chain_with(key_of(kind), position, root)
    with pytest.raises(CertificateRejected) as info:
        validator.validate(leaf, chain)
    assert info.value.reason is RejectionReason.WEAK_KEY
    # The log detail names the certificate (by its role and subject) and the key.
    role = position.split("-")[-1]
    subject = {"leaf": "keyed-leaf", "intermediate": "Keyed Issuing CA", "root": "Keyed Root"}
    assert info.value.log_detail.startswith(f"{role} 'CN={subject[role]}' (sha256 ")
    assert WEAK_KEYS[kind][1] in info.value.log_detail


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("kind", sorted(STRONG_KEYS))
def test_strong_keys_are_accepted_at_every_position(root, kind, position):
    validator, leaf, chain = chain_with(key_of(kind), position, root)
    assert outcome(validator, leaf, chain) == "accepted"


@pytest.mark.parametrize(
    "key", [ed25519.Ed25519PrivateKey.generate(), ed448.Ed448PrivateKey.generate()]
)
def test_eddsa_leaves_are_accepted_unless_disallowed(root, key):
    leaf = root.issue_client("eddsa-leaf", key=key).certificate
    assert outcome(CertificateValidator(root.certificate), leaf) == "accepted"
    strict = CertificateValidator(root.certificate, allow_eddsa=False)
    assert outcome(strict, leaf) == "weak_key"


def test_an_eddsa_ca_passes_the_key_policy_but_may_not_sign():
    # The key policy accepts Ed25519 at any position; cryptography's webpki profile decides
    # what may sign a certificate, and it does not allow EdDSA: untrusted, not weak_key.
    ed_root = CA.root("Ed25519 Root", key=ed25519.Ed25519PrivateKey.generate())
    leaf = ed_root.leaf("signed-by-ed25519")
    assert outcome(CertificateValidator(ed_root.certificate), leaf) == "untrusted"
    with pytest.raises(CertificateRejected) as info:
        CertificateValidator(ed_root.certificate, allow_eddsa=False).validate(leaf)
    assert info.value.reason is RejectionReason.WEAK_KEY
    assert info.value.log_detail.startswith("root 'CN=Ed25519 Root' (sha256 ")


def test_a_weak_ca_that_leads_to_no_root_is_just_untrusted(root):
    # weak_key only when the weak key is on a signature-checked chain to a configured root:
    # an attacker's own DSA CA is untrusted, as any other stranger.
    stranger = CertificateAuthority("Keyed Issuing CA", key=key_of("dsa-1024"))
    leaf = stranger.issue_client("stranger")
    validator = CertificateValidator(root.certificate)
    assert outcome(validator, leaf.certificate, [stranger.certificate]) == "untrusted"


class PublicOnly:
    """A stand-in for a private key where the test only needs the certificate's public key."""

    def __init__(self, public_key) -> None:
        self._public_key = public_key

    def public_key(self):
        return self._public_key


def huge_exponent() -> PublicOnly:
    """An RSA-2048 public key with e = 2**256 + 1 (odd, loadable, above FIPS 186-5's range)."""
    modulus = key_of("rsa-2048").public_key().public_numbers().n
    return PublicOnly(rsa.RSAPublicNumbers(2**256 + 1, modulus).public_key())


@pytest.mark.parametrize(
    ("make_key", "words"),
    [
        (x25519.X25519PrivateKey.generate, "X25519PublicKey: key type not accepted"),
        (huge_exponent, "public exponent must be odd and between 2**16 + 1 and 2**256 - 1"),
    ],
    ids=["x25519", "rsa-exponent-too-large"],
)
def test_other_keys_in_the_leaf_are_refused(root, make_key, words):
    leaf = root.issue_client("odd-key", key=make_key()).certificate
    with pytest.raises(CertificateRejected) as info:
        CertificateValidator(root.certificate).validate(leaf)
    assert info.value.reason is RejectionReason.WEAK_KEY
    assert words in info.value.log_detail


def even_exponent(certificate: x509.Certificate) -> x509.Certificate:
    """``certificate`` (RSA, e = 65537) with e = 65536: its signature no longer verifies, and
    cryptography refuses to load the key."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    e_65537, e_65536 = bytes.fromhex("0203010001"), bytes.fromhex("0203010000")
    assert der.count(e_65537) == 1
    return x509.load_der_x509_certificate(der.replace(e_65537, e_65536))


def test_an_even_rsa_exponent_cannot_even_be_decoded(root, caplog):
    leaf = even_exponent(root.issue_client("even-exponent", key=rsa_key(2048)).certificate)
    assert outcome(CertificateValidator(root.certificate), leaf) == "malformed"
    # As a configured root it is logged as unusable, and the good root still works.
    bad_root = even_exponent(CertificateAuthority("Even Root", key=rsa_key(2048)).certificate)
    with caplog.at_level(logging.WARNING, logger="asgi_mtls"):
        validator = CertificateValidator([root.certificate, bad_root])
    assert "'CN=Even Root'" in caplog.text and "undecodable key" in caplog.text
    assert outcome(validator, root.issue_client("fine").certificate) == "accepted"


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [512, 1024, 2047, 0, -1])
def test_the_rsa_floor_cannot_be_lowered(root, bits):
    with pytest.raises(ValueError, match=f"min_rsa_bits={bits} is below the floor of 2048"):
        CertificateValidator(root.certificate, min_rsa_bits=bits)


def test_the_rsa_floor_can_be_raised_for_the_whole_path(root):
    for kind, expected in (("rsa-2048", "weak_key"), ("rsa-3072", "accepted")):
        for position in POSITIONS:
            default, leaf, chain = chain_with(key_of(kind), position, root)
            strict = CertificateValidator(
                list(default.trust_roots),
                intermediates=list(default.intermediates),
                min_rsa_bits=3072,
            )
            assert strict.min_rsa_bits == 3072
            assert outcome(default, leaf, chain) == "accepted", position
            assert outcome(strict, leaf, chain) == expected, position


def test_curves_can_be_narrowed(root):
    # The P-256 root itself falls outside a P-384-only policy: refused at the root position.
    p384_leaf = root.issue_client("p384", key=key_of("ec-p384")).certificate
    assert outcome(CertificateValidator(root.certificate), p384_leaf) == "accepted"
    only_384 = CertificateValidator(root.certificate, ec_curves=["P-384"])
    assert outcome(only_384, p384_leaf) == "weak_key"
    p384_root = CertificateAuthority("P-384 Root", key=key_of("ec-p384"))
    for alias in ("P-384", "secp384r1"):
        narrowed = CertificateValidator(p384_root.certificate, ec_curves=[alias])
        p384 = p384_root.issue_client("p384", key=key_of("ec-p384")).certificate
        p256 = p384_root.issue_client("p256", key=key_of("ec-p256")).certificate
        assert outcome(narrowed, p384) == "accepted"
        assert outcome(narrowed, p256) == "weak_key"


@pytest.mark.parametrize(
    ("curves", "error"),
    [
        (["P-192"], ValueError),
        (["P-256", "secp224r1"], ValueError),
        (["brainpoolP256r1"], ValueError),
        ("P-256", TypeError),
    ],
)
def test_curves_cannot_be_widened(root, curves, error):
    with pytest.raises(error, match="ec_curves"):
        CertificateValidator(root.certificate, ec_curves=curves)


def test_unusable_configured_cas_are_logged_at_startup(root, caplog):
    weak_root = CertificateAuthority("Legacy DSA Root", key=key_of("dsa-1024"))
    with caplog.at_level(logging.WARNING, logger="asgi_mtls"):
        validator = CertificateValidator([root.certificate, weak_root.certificate])
    assert "1 configured CA certificate(s) can never be part of an accepted path" in caplog.text
    assert "'CN=Legacy DSA Root'" in caplog.text and "DSA-1024" in caplog.text
    assert outcome(validator, weak_root.issue_client("legacy").certificate) == "weak_key"
    assert outcome(validator, root.issue_client("fine").certificate) == "accepted"


def test_signature_policy_names_the_certificate(root):
    leaf = root.issue_client("sha256-signed")
    only_384 = CertificateValidator(
        root.certificate, signature_algorithms=[x509.oid.SignatureAlgorithmOID.ECDSA_WITH_SHA384]
    )
    with pytest.raises(CertificateRejected) as info:
        only_384.validate(leaf.certificate)
    assert info.value.reason is RejectionReason.WEAK_SIGNATURE
    assert info.value.log_detail.startswith("leaf 'CN=sha256-signed' (sha256 ")
    assert info.value.log_detail.endswith("is signed with ecdsa-with-SHA256")
