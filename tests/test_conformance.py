"""Conformance: the validator agrees with RFC 5280 and the CA/B Forum profile as cryptography
implements them, and closes the gaps it leaves (directoryName constraints, SAN-less leaves
under name constraints).  A false accept is the worst bug; every case that must be refused
is built here from scratch, with real signatures."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asgi_mtls import CertificateRejected, CertificateValidator, RejectionReason
from asgi_mtls.errors import ConfigurationError
from tests.validate import outcome

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
CLIENT = (ExtendedKeyUsageOID.CLIENT_AUTH,)
Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization is not None:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def organization(value: str) -> x509.Name:
    """A name that is only ``O=value``: a directoryName subtree over organizations."""
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, value)])


def key_usage(*, ca: bool, cert_sign: bool | None = None) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca if cert_sign is None else cert_sign,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def certificate(
    subject: x509.Name,
    key: Key,
    issuer: tuple[x509.Name, Key] | None = None,
    *,
    ca: bool = False,
    path_length: int | None = None,
    basic_constraints: bool = True,
    usage: x509.KeyUsage | str | None = "default",
    eku: Sequence[x509.ObjectIdentifier] | None = CLIENT,
    aki: bool | Key = True,
    ski: bool = True,
    sans: Sequence[x509.GeneralName] = (),
    extra: Sequence[tuple[x509.ExtensionType, bool]] = (),
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    hash_algorithm: hashes.HashAlgorithm | None = None,
) -> x509.Certificate:
    """One certificate with exactly the listed properties (self-signed without ``issuer``)."""
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - dt.timedelta(days=1))
        .not_valid_after(not_after or NOW + dt.timedelta(days=30))
    )
    if basic_constraints:
        builder = builder.add_extension(x509.BasicConstraints(ca, path_length), critical=True)
    if usage == "default":
        builder = builder.add_extension(key_usage(ca=ca), critical=True)
    elif isinstance(usage, x509.KeyUsage):
        builder = builder.add_extension(usage, critical=True)
    if ski:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    if aki is not False:
        aki_key = issuer_key if aki is True else aki
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(aki_key.public_key()),
            critical=False,
        )
    if eku is not None and not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(list(sans)), critical=len(subject) == 0
        )
    for extension, critical in extra:
        builder = builder.add_extension(extension, critical=critical)
    if isinstance(issuer_key, ed25519.Ed25519PrivateKey):
        return builder.sign(issuer_key, None)
    return builder.sign(issuer_key, hash_algorithm or hashes.SHA256())


class CA:
    """A CA key and certificate; ``issue`` builds children with :func:`certificate`."""

    def __init__(self, subject: x509.Name, cert: x509.Certificate, key: Key) -> None:
        self.subject, self.certificate, self.key = subject, cert, key

    @classmethod
    def root(cls, common_name: str, key: Key | None = None, **options) -> CA:
        key = key or new_key()
        subject = name(common_name)
        return cls(subject, certificate(subject, key, ca=True, aki=False, **options), key)

    def sub_ca(self, common_name: str, key: Key | None = None, **options) -> CA:
        key = key or new_key()
        subject = name(common_name)
        cert = certificate(subject, key, (self.subject, self.key), ca=True, **options)
        return CA(subject, cert, key)

    def leaf(self, common_name: str = "client", key: Key | None = None, **options):
        return certificate(name(common_name), key or new_key(), (self.subject, self.key), **options)


@pytest.fixture(scope="module")
def root() -> CA:
    return CA.root("Conformance Root")


@pytest.fixture(scope="module")
def trust(root) -> CertificateValidator:
    return CertificateValidator(root.certificate)


# --- name constraints (RFC 5280 §4.2.1.10) -------------------------------------------------


def constrained(root: CA, permitted=None, excluded=None) -> CA:
    constraints = x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=excluded)
    return root.sub_ca("Constrained CA", extra=[(constraints, True)])


DNS = x509.DNSName
URI = x509.UniformResourceIdentifier


@pytest.mark.parametrize(
    ("permitted", "excluded", "sans", "expected"),
    [
        ([DNS("bank.example")], None, [DNS("api.bank.example")], "accepted"),
        ([DNS("bank.example")], None, [DNS("bank.example")], "accepted"),
        ([DNS("bank.example")], None, [DNS("api.other.example")], "untrusted"),
        ([DNS("bank.example")], None, [DNS("notbank.example")], "untrusted"),
        ([DNS("bank.example")], None, [DNS("a.bank.example"), DNS("b.evil.example")], "untrusted"),
        (None, [DNS("evil.bank.example")], [DNS("x.evil.bank.example")], "untrusted"),
        (None, [DNS("evil.bank.example")], [DNS("good.bank.example")], "accepted"),
        (
            [DNS("bank.example")],
            [DNS("evil.bank.example")],
            [DNS("x.evil.bank.example")],
            "untrusted",
        ),
        # RFC 5280: a constraint applies to names of its own type only.
        ([DNS("bank.example")], None, [URI("spiffe://other.example/x")], "accepted"),
        # cryptography does not implement URI constraints: refused, never ignored.
        ([URI("bank.example")], None, [URI("spiffe://bank.example/a")], "untrusted"),
        ([URI("bank.example")], None, [URI("spiffe://other.example/a")], "untrusted"),
        (None, [URI("evil.example")], [URI("spiffe://evil.example/a")], "untrusted"),
        (None, [URI(".evil.example")], [URI("https://x.evil.example/")], "untrusted"),
        ([x509.RFC822Name("bank.example")], None, [x509.RFC822Name("a@bank.example")], "accepted"),
        ([x509.RFC822Name("bank.example")], None, [x509.RFC822Name("a@evil.example")], "untrusted"),
        (
            [x509.IPAddress(ipaddress.ip_network("10.0.0.0/8"))],
            None,
            [x509.IPAddress(ipaddress.ip_address("10.1.2.3"))],
            "accepted",
        ),
        (
            [x509.IPAddress(ipaddress.ip_network("10.0.0.0/8"))],
            None,
            [x509.IPAddress(ipaddress.ip_address("192.0.2.1"))],
            "untrusted",
        ),
    ],
)
@pytest.mark.parametrize("where", ["presented", "configured"])
def test_name_constraints_on_an_intermediate(
    root, trust, permitted, excluded, sans, expected, where
):
    # The constrained CA is either sent by the client or configured as an intermediate:
    # the validator works out once which configured CAs carry constraints, and must not
    # skip the ones that do.
    ca = constrained(root, permitted, excluded)
    validator, chain = via(root, trust, ca, where)
    assert outcome(validator, ca.leaf(sans=sans), chain) == expected


def via(root: CA, trust: CertificateValidator, ca: CA, where: str):
    """(validator, chain) for a leaf of ``ca`` whose CA is presented or configured."""
    if where == "presented":
        return trust, [ca.certificate]
    return CertificateValidator(root.certificate, intermediates=[ca.certificate]), []


@pytest.mark.parametrize("where", ["presented", "configured"])
def test_san_less_leaf_under_name_constraints_is_refused(root, trust, where):
    # cryptography applies constraints to SANs only; a CN-only leaf would escape them.
    ca = constrained(root, [DNS("bank.example")])
    validator, chain = via(root, trust, ca, where)
    assert outcome(validator, ca.leaf("api.other.example"), chain) == "untrusted"
    assert outcome(validator, ca.leaf("x", sans=[DNS("x.bank.example")]), chain) == "accepted"


@pytest.mark.parametrize(
    ("permitted", "excluded", "subject", "expected"),
    [
        ([name("unused", "Bank")], None, None, "untrusted"),  # subtree is O=Bank,CN=unused
        ([organization("Bank")], None, "Bank", "accepted"),
        ([organization("Bank")], None, "BANK", "accepted"),
        ([organization("Bank")], None, "Evil", "untrusted"),
        ([organization("Bank")], None, None, "untrusted"),
        (None, [organization("Evil")], "evil", "untrusted"),
        (None, [organization("Evil")], "Bank", "accepted"),
    ],
)
def test_directory_name_constraints_apply_to_the_subject(
    root, trust, permitted, excluded, subject, expected
):
    # RFC 5280 §4.2.1.10: directoryName constraints MUST be applied to the subject field.
    # cryptography ignores them there; the validator enforces them.
    def wrap(names):
        return None if names is None else [x509.DirectoryName(n) for n in names]

    ca = constrained(root, wrap(permitted), wrap(excluded))
    leaf = certificate(
        name("client", subject), new_key(), (ca.subject, ca.key), sans=[DNS("client.example")]
    )
    try:
        trust.validate(leaf, [ca.certificate])
    except CertificateRejected as exc:
        if "unsupported directoryName constraint" in exc.log_detail:
            # Newer cryptography (seen in 50.x) refuses every critical directoryName
            # constraint itself: stricter, never a false accept.
            assert exc.reason is RejectionReason.UNTRUSTED
            return
    assert outcome(trust, leaf, [ca.certificate]) == expected


def test_directory_name_constraints_apply_to_lower_intermediates(root, trust):
    bank = organization("Bank")
    ca = constrained(root, [x509.DirectoryName(bank)])
    # The sub-CA's own subject is outside O=Bank: the path fails even for a good leaf.
    sub = ca.sub_ca("Outside")
    leaf = certificate(name("client", "Bank"), new_key(), (sub.subject, sub.key), sans=[DNS("c.x")])
    assert outcome(trust, leaf, [ca.certificate, sub.certificate]) == "untrusted"


# --- path length and basic constraints -----------------------------------------------------


def test_path_length_constraint(root, trust):
    zero = root.sub_ca("pathlen 0", path_length=0)
    below_zero = zero.sub_ca("below pathlen 0")
    assert outcome(trust, zero.leaf(), [zero.certificate]) == "accepted"
    leaf = below_zero.leaf()
    assert outcome(trust, leaf, [zero.certificate, below_zero.certificate]) == "untrusted"
    one = root.sub_ca("pathlen 1", path_length=1)
    below_one = one.sub_ca("below pathlen 1")
    assert outcome(trust, below_one.leaf(), [one.certificate, below_one.certificate]) == "accepted"


def test_max_chain_depth(root):
    one = root.sub_ca("depth 1")
    two = one.sub_ca("depth 2")
    hints = [one.certificate, two.certificate]
    assert outcome(
        CertificateValidator(root.certificate, max_chain_depth=2), two.leaf(), hints
    ) == ("accepted")
    assert outcome(
        CertificateValidator(root.certificate, max_chain_depth=1), two.leaf(), hints
    ) == ("untrusted")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"usage": key_usage(ca=True, cert_sign=False)}, "untrusted"),  # CA without keyCertSign
        ({"usage": None}, "untrusted"),  # CA without keyUsage
        ({"basic_constraints": False}, "untrusted"),  # CA without basicConstraints
        (
            {
                "extra": [
                    (
                        x509.UnrecognizedExtension(
                            x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00"
                        ),
                        True,
                    )
                ]
            },
            "untrusted",
        ),
        ({}, "accepted"),
    ],
)
def test_intermediate_ca_requirements(root, trust, options, expected):
    ca = root.sub_ca("requirement CA", **options)
    assert outcome(trust, ca.leaf(), [ca.certificate]) == expected


def test_issuer_that_is_not_a_ca(root, trust):
    key = new_key()
    not_ca = certificate(name("not a CA"), key, (root.subject, root.key), usage=key_usage(ca=True))
    leaf = certificate(name("client"), new_key(), (name("not a CA"), key))
    assert outcome(trust, leaf, [not_ca]) == "untrusted"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"ca": True}, "wrong_usage"),  # CA as leaf
        ({"usage": key_usage(ca=True)}, "untrusted"),  # EE asserting keyCertSign
        ({"basic_constraints": False}, "accepted"),  # EE without basicConstraints: allowed
        (
            {
                "extra": [
                    (
                        x509.UnrecognizedExtension(
                            x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00"
                        ),
                        True,
                    )
                ]
            },
            "untrusted",
        ),
        (
            {
                "extra": [
                    (
                        x509.UnrecognizedExtension(
                            x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00"
                        ),
                        False,
                    )
                ]
            },
            "accepted",
        ),
    ],
)
def test_leaf_basic_constraints_and_extensions(root, trust, options, expected):
    assert outcome(trust, root.leaf(**options)) == expected


# --- validity edges ------------------------------------------------------------------------


def test_validity_edges_of_the_leaf(root, trust):
    leaf = root.leaf()
    not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    tick = dt.timedelta(microseconds=1)
    assert outcome(trust, leaf, at=not_before) == "accepted"
    assert outcome(trust, leaf, at=not_after) == "accepted"
    assert outcome(trust, leaf, at=not_before - tick) == "not_yet_valid"
    assert outcome(trust, leaf, at=not_after + tick) == "expired"


def test_validity_edges_of_an_intermediate(root, trust):
    ends = NOW + dt.timedelta(days=2)
    ca = root.sub_ca("short-lived CA", not_after=ends)
    leaf = ca.leaf(not_after=NOW + dt.timedelta(days=10))
    assert outcome(trust, leaf, [ca.certificate], at=ends) == "accepted"
    assert outcome(trust, leaf, [ca.certificate], at=ends + dt.timedelta(seconds=1)) == "untrusted"


# --- key identifiers -----------------------------------------------------------------------


def test_authority_key_identifier(root, trust):
    other = new_key()
    # The AKI is a path-building hint (RFC 5280 §4.2.1.1): a wrong AKI on a certificate
    # whose signature verifies does not make it invalid...
    assert outcome(trust, root.leaf(aki=other)) == "accepted"
    # ...and a right AKI on a certificate signed by another key does not make it valid.
    forged = certificate(name("client"), new_key(), (root.subject, other), aki=root.key)
    assert outcome(trust, forged) == "untrusted"
    # The webpki profile requires the AKI on the leaf.
    assert outcome(trust, root.leaf(aki=False)) == "untrusted"


# --- keys and signatures -------------------------------------------------------------------


def test_key_sizes_and_types(root, trust):
    assert outcome(trust, root.leaf(key=rsa.generate_private_key(65537, 1024))) == "weak_key"
    assert outcome(trust, root.leaf(key=rsa.generate_private_key(65537, 2048))) == "accepted"
    for curve in (ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()):
        assert outcome(trust, root.leaf(key=ec.generate_private_key(curve))) == "accepted"
    assert outcome(trust, root.leaf(key=ed25519.Ed25519PrivateKey.generate())) == "accepted"


def test_weak_rsa_intermediate(root, trust):
    weak = root.sub_ca("1024-bit CA", key=rsa.generate_private_key(65537, 1024))
    # cryptography refuses the path; the validator names the weak key as the reason.
    assert outcome(trust, weak.leaf(), [weak.certificate]) == "weak_key"


def test_ed25519_issuers_are_outside_the_webpki_profile():
    ed_root = CA.root("Ed25519 Root", key=ed25519.Ed25519PrivateKey.generate())
    assert outcome(CertificateValidator(ed_root.certificate), ed_root.leaf()) == "untrusted"


def _tlv(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(encoded)]) + encoded + content


def _children(der: bytes) -> list[bytes]:
    """The encoded elements inside a DER SEQUENCE."""
    assert der[0] == 0x30
    offset = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    items = []
    while offset < len(der):
        start = offset
        length = der[offset + 1]
        offset += 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(der[offset : offset + count], "big")
            offset += count
        offset += length
        items.append(der[start:offset])
    return items


SHA1_RSA = _tlv(0x30, bytes.fromhex("06092a864886f70d010105") + b"\x05\x00")
MD5_RSA = _tlv(0x30, bytes.fromhex("06092a864886f70d010104") + b"\x05\x00")
SHA1_ECDSA = _tlv(0x30, bytes.fromhex("06072a8648ce3d0401"))


def resign(cert: x509.Certificate, key: Key, algorithm_id: bytes) -> x509.Certificate:
    """``cert`` signed again with a legacy algorithm cryptography refuses to produce."""
    fields = _children(cert.tbs_certificate_bytes)
    fields[2] = algorithm_id  # TBSCertificate.signature (after version and serial)
    tbs = _tlv(0x30, b"".join(fields))
    digest = hashes.MD5() if algorithm_id == MD5_RSA else hashes.SHA1()
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(tbs, padding.PKCS1v15(), digest)
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        signature = key.sign(tbs, ec.ECDSA(digest))
    der = _tlv(0x30, tbs + algorithm_id + _tlv(0x03, b"\x00" + signature))
    return x509.load_der_x509_certificate(der)


@pytest.fixture(scope="module")
def rsa_root() -> CA:
    return CA.root("RSA Root", key=rsa.generate_private_key(65537, 2048))


@pytest.mark.parametrize("algorithm", [SHA1_RSA, MD5_RSA])
def test_sha1_and_md5_signed_leaves_are_refused(rsa_root, algorithm):
    validator = CertificateValidator(rsa_root.certificate)
    leaf = rsa_root.leaf()
    assert outcome(validator, leaf) == "accepted"
    weak = resign(leaf, rsa_root.key, algorithm)
    assert weak.signature_algorithm_oid.dotted_string.startswith("1.2.840.113549.1.1.")
    assert outcome(validator, weak) == "weak_signature"


def test_sha1_ecdsa_leaf_is_refused(root, trust):
    weak = resign(root.leaf(), root.key, SHA1_ECDSA)
    assert outcome(trust, weak) == "weak_signature"


def test_sha1_signed_intermediate_is_refused(rsa_root):
    ca = rsa_root.sub_ca("SHA-1 CA")
    weak_ca = resign(ca.certificate, rsa_root.key, SHA1_RSA)
    validator = CertificateValidator(rsa_root.certificate)
    assert outcome(validator, ca.leaf(), [ca.certificate]) == "accepted"
    # cryptography's webpki policy refuses the path before the validator's own check.
    assert outcome(validator, ca.leaf(), [weak_ca]) == "untrusted"


def test_sha224_is_outside_the_webpki_profile(root, trust):
    assert outcome(trust, root.leaf(hash_algorithm=hashes.SHA224())) == "untrusted"
    assert outcome(trust, root.leaf(hash_algorithm=hashes.SHA384())) == "accepted"


def test_wrong_signature(root, trust):
    der = bytearray(root.leaf().public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01
    assert outcome(trust, x509.load_der_x509_certificate(bytes(der))) == "untrusted"


# --- extended key usage --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("eku", "expected"),
    [
        ([ExtendedKeyUsageOID.CLIENT_AUTH], "accepted"),
        ([ExtendedKeyUsageOID.SERVER_AUTH], "wrong_usage"),
        ([ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE], "wrong_usage"),
        ([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE], "accepted"),
        ([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH], "accepted"),
        (None, "wrong_usage"),
    ],
)
def test_leaf_extended_key_usage(root, trust, eku, expected):
    assert outcome(trust, root.leaf(eku=eku)) == expected


def test_intermediate_extended_key_usage_is_chained(root, trust):
    def with_eku(usages):
        key = new_key()
        subject = name(f"EKU CA {len(usages)}")
        cert = certificate(
            subject,
            key,
            (root.subject, root.key),
            ca=True,
            extra=[(x509.ExtendedKeyUsage(usages), False)],
        )
        return CA(subject, cert, key)

    server_only = with_eku([ExtendedKeyUsageOID.SERVER_AUTH])
    assert outcome(trust, server_only.leaf(), [server_only.certificate]) == "untrusted"
    both = with_eku([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    assert outcome(trust, both.leaf(), [both.certificate]) == "accepted"


# --- self-signed and pathological chains ---------------------------------------------------


def test_self_signed_leaf(root, trust):
    key = new_key()
    self_signed = certificate(name("self"), key)
    assert outcome(trust, self_signed) == "untrusted"
    # A look-alike (same name and key, another certificate) configured as the root is no
    # help: a non-CA certificate cannot issue.
    twin = certificate(name("self"), key)
    assert outcome(CertificateValidator(twin), self_signed) == "untrusted"
    # The very certificate configured as a trust anchor is trusted as itself (cryptography:
    # a leaf found in the store is a path of length one): a way to trust one self-signed
    # client directly.  The leaf checks still apply, and allowed_issuers cannot be met.
    assert outcome(CertificateValidator(self_signed), self_signed) == "accepted"
    # ...but a trust set of server certificates alone could never accept a client: refused
    # when it is configured (issue #11), not answered wrong_usage on every request.
    server_only = certificate(name("self"), key, eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    with pytest.raises(ConfigurationError, match="is a server certificate"):
        CertificateValidator(server_only)
    narrowed = CertificateValidator(self_signed, allowed_issuers=[root.certificate])
    assert outcome(narrowed, self_signed) == "issuer_not_allowed"


@pytest.mark.timeout(10)
def test_many_same_name_issuers_finish(root, trust):
    ca = root.sub_ca("Same Name CA")
    leaf = ca.leaf()
    decoys = [CA.root("Same Name CA").certificate for _ in range(8)]
    assert outcome(trust, leaf, decoys) == "untrusted"
    # The real one among them is still found.
    assert outcome(trust, leaf, [*decoys[:7], ca.certificate]) == "accepted"
    crowded = CertificateValidator(root.certificate, intermediates=decoys * 8)
    assert outcome(crowded, leaf, decoys) == "untrusted"


@pytest.mark.timeout(10)
def test_cross_signed_loops_finish(root, trust):
    a_key, b_key = new_key(), new_key()
    a_name, b_name = name("Loop A"), name("Loop B")
    a_by_b = certificate(a_name, a_key, (b_name, b_key), ca=True)
    b_by_a = certificate(b_name, b_key, (a_name, a_key), ca=True)
    leaf = certificate(name("client"), new_key(), (a_name, a_key))
    loop = [a_by_b, b_by_a]
    assert outcome(trust, leaf, loop) == "untrusted"
    # The same loop with one exit to the trusted root: found, still fast.
    a_by_root = certificate(a_name, a_key, (root.subject, root.key), ca=True)
    assert outcome(trust, leaf, [*loop, a_by_root]) == "accepted"
    looping = CertificateValidator(root.certificate, intermediates=loop * 4)
    assert outcome(looping, leaf, loop * 4) == "untrusted"


@pytest.mark.timeout(10)
def test_deep_chain_finishes(root):
    cas = [root.sub_ca("level 1")]
    for level in range(2, 12):
        cas.append(cas[-1].sub_ca(f"level {level}"))
    validator = CertificateValidator(root.certificate, intermediates=[c.certificate for c in cas])
    assert outcome(validator, cas[7].leaf()) == "accepted"  # 8 intermediates: the default limit
    assert outcome(validator, cas[8].leaf()) == "untrusted"
    assert outcome(validator, cas[10].leaf()) == "untrusted"


@pytest.mark.timeout(10)
def test_presented_loops_cannot_stall_path_building(root, trust):
    # cryptography 48 explores every same-name candidate again at each level (no loop
    # detection): without the validator's bound, these eight hints take minutes.
    a_key, b_key = new_key(), new_key()
    a_name, b_name = name("Loop A"), name("Loop B")
    loop = [certificate(a_name, a_key, (b_name, b_key), ca=True) for _ in range(4)]
    loop += [certificate(b_name, b_key, (a_name, a_key), ca=True) for _ in range(4)]
    leaf = certificate(name("client"), new_key(), (a_name, a_key))
    assert outcome(trust, leaf, loop) == "untrusted"
    assert outcome(trust, leaf, [loop[0], loop[4]] * 4) == "untrusted"  # repeats


# --- presented chains are hints, whatever they contain -------------------------------------


@pytest.fixture(scope="module")
def hint_pool(root):
    issuing = root.sub_ca("Issuing CA")
    attacker = CA.root("Conformance Root")  # same name as the real root
    attacker_issuing = attacker.sub_ca("Issuing CA")
    return {
        "issuing": issuing,
        "attacker": attacker,
        "attacker_issuing": attacker_issuing,
        "good_leaf": issuing.leaf("good"),
        "bad_leaf": attacker_issuing.leaf("bad"),
        "pool": [
            issuing.certificate,
            attacker.certificate,
            attacker_issuing.certificate,
            CA.root("Issuing CA").certificate,
        ],
    }


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_no_hint_combination_makes_the_attacker_trusted(trust, hint_pool, data):
    hints = data.draw(st.lists(st.sampled_from(hint_pool["pool"]), max_size=8))
    assert outcome(trust, hint_pool["bad_leaf"], hints) == "untrusted"
    good = outcome(trust, hint_pool["good_leaf"], hints)
    assert good == ("accepted" if hint_pool["issuing"].certificate in hints else "untrusted")


def test_duplicate_extension_is_malformed(root, trust):
    leaf = root.leaf()
    fields = _children(leaf.tbs_certificate_bytes)
    # Append the basicConstraints extension a second time inside [3] extensions.
    extensions_field = fields[-1]  # [3] EXPLICIT SEQUENCE OF Extension
    header = 2 if extensions_field[1] < 0x80 else 2 + (extensions_field[1] & 0x7F)
    extensions = _children(extensions_field[header:])
    duplicated = _tlv(0x30, b"".join([*extensions, extensions[0]]))
    fields[-1] = _tlv(0xA3, duplicated)
    tbs = _tlv(0x30, b"".join(fields))
    signature = root.key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    algorithm = _children(leaf.public_bytes(serialization.Encoding.DER))[1]
    der = _tlv(0x30, tbs + algorithm + _tlv(0x03, b"\x00" + signature))
    assert outcome(trust, x509.load_der_x509_certificate(der)) == "malformed"
