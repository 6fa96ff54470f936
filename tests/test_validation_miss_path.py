"""What the miss path skips or shares (issue #10) must never change an answer: the verifier
shared within a second and a trust snapshot, the path-search bound skipped only where no leaf
can reach it, the end-entity rule checked after path building."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from asgi_mtls import CertificateRejected, CertificateValidator, RejectionReason
from asgi_mtls.testing import CertificateAuthority
from asgi_mtls.validation.paths import MAX_PATH_CANDIDATES, IssuerGraph, worst_case_search
from asgi_mtls.validation.trust import TrustState
from tests.validate import outcome, reason_of

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
KEY = ec.generate_private_key(ec.SECP256R1())


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def issued(subject: str, issuer: str, *, ca: bool = True) -> x509.Certificate:
    """A certificate from ``issuer`` (by name) to ``subject``, every one signed by one key:
    each then verifies every other's signature, the worst case for path building."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer))
        .public_key(KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca, None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(KEY, hashes.SHA256())


# --- the path-search bound --------------------------------------------------------------------

NAMES = ["A", "B", "C", "D"]


@settings(max_examples=60, deadline=None)
@given(
    edges=st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(NAMES)), max_size=9),
    roots=st.lists(st.sampled_from(NAMES), min_size=1, max_size=3),
    depth=st.integers(1, 8),
)
def test_worst_case_search_bounds_every_leaf_without_hints(edges, roots, depth):
    # Configured intermediates (subject, issuer) over four names: for every issuer name a
    # leaf can carry, the search from it never exceeds the worst case the validator works
    # out once per snapshot, and the worst case is reached.  So when that worst case is
    # within the bound, skipping the per-leaf count cannot let a leaf through that the
    # count would have refused.
    trust = TrustState.build(
        [issued(r, r) for r in roots], [issued(subject, issuer) for subject, issuer in edges]
    )
    worst = worst_case_search(trust, depth)
    sizes = [
        IssuerGraph(issued("leaf", issuer, ca=False), [], trust).search_size(depth)
        for issuer in [*NAMES, "unknown"]
    ]
    # One signing key: every signature check passes, so the checked count is the estimate.
    if worst <= MAX_PATH_CANDIDATES:
        assert max(sizes) == worst
    else:
        assert max(sizes) > MAX_PATH_CANDIDATES


@pytest.mark.timeout(20)
def test_a_looping_configured_store_is_bounded_without_hints(caplog):
    # Seventeen configured intermediates named alike and signed by one key all verify each
    # other: a leaf under them, presented alone, must meet the bound, not the builder.
    root = CertificateAuthority("Unrelated Root")
    loop = [issued("Loop CA", "Loop CA") for _ in range(17)]
    validator = CertificateValidator(root.certificate, intermediates=loop)
    with pytest.raises(CertificateRejected) as info:
        validator.validate(issued("client", "Loop CA", ca=False))
    assert info.value.reason is RejectionReason.UNTRUSTED
    assert "candidate issuers" in info.value.log_detail


def test_an_ordinary_store_skips_the_count_and_still_validates(pki):
    validator = CertificateValidator(
        pki.root.certificate, intermediates=[pki.intermediate.certificate]
    )
    assert validator._keeper.current.small_search
    assert outcome(validator, pki.payments.certificate) == "accepted"
    assert outcome(validator, pki.payments.certificate, [pki.intermediate.certificate]) == (
        "accepted"
    )
    assert outcome(validator, pki.untrusted.certificate) == "untrusted"


# --- one verifier per snapshot and second -----------------------------------------------------


def test_the_verifier_follows_the_clock_across_seconds():
    # The intermediate expires at `end`; the leaf outlives it.  Answers at successive
    # seconds from one validator must each be those of a verifier built for that second.
    root = CertificateAuthority("Clock Root")
    end = NOW + dt.timedelta(seconds=30)
    issuing = root.intermediate("Clock Issuing CA", not_after=end)
    leaf = issuing.issue_client("clock-client", not_after=NOW + dt.timedelta(days=10))
    validator = CertificateValidator(root.certificate, intermediates=[issuing.certificate])
    for offset, expected in [
        (-2.0, "accepted"),
        (-0.5, "accepted"),
        (0.0, "accepted"),
        (0.999, "accepted"),  # cryptography reads the time to the second
        (1.0, "untrusted"),
        (0.2, "accepted"),  # back in time: the slot is rebuilt, not reused
        (61.0, "untrusted"),
    ]:
        at = end + dt.timedelta(seconds=offset)
        assert outcome(validator, leaf.certificate, at=at) == expected, offset


def test_a_reload_in_the_same_second_takes_effect(tmp_path):
    old, new = CertificateAuthority("Old Same-Second Root"), CertificateAuthority("New Root 2")
    old_client, new_client = old.issue_client("old"), new.issue_client("new")
    roots = tmp_path / "roots.pem"
    roots.write_text(old.pem)
    validator = CertificateValidator(roots)
    assert outcome(validator, old_client.certificate, at=NOW) == "accepted"
    roots.write_text(new.pem)
    assert validator.reload()
    assert outcome(validator, old_client.certificate, at=NOW) == "untrusted"
    assert outcome(validator, new_client.certificate, at=NOW) == "accepted"


# --- the end-entity rule after path building ----------------------------------------------------


@pytest.mark.parametrize(
    ("root_bits", "expected"),
    [(2048, RejectionReason.UNTRUSTED), (2047, RejectionReason.WEAK_KEY)],
)
def test_empty_subject_rule_keeps_the_weak_issuer_reason(root_bits, expected):
    # An empty subject with a non-critical SAN breaks RFC 5280 §4.2.1.6.  The refusal is
    # made after path building, with the reason path building gave it before: `weak_key`
    # when a key the policy refuses (an RSA-2047 root, which cryptography accepts) is on the
    # way to the root, else `untrusted`.
    root = CertificateAuthority(
        f"RSA-{root_bits} Root", key=rsa.generate_private_key(65537, root_bits)
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(root.certificate.subject)
        .public_key(KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("client.bank.example")]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root.key.public_key()),
            critical=False,
        )
        .sign(root.key, hashes.SHA256())
    )
    validator = CertificateValidator(root.certificate)
    assert reason_of(validator, leaf) is expected
    # the same leaf with its subject: accepted under the good root, weak_key under the other
    good = root.issue_client("client", dns_names=["client.bank.example"])
    assert outcome(validator, good.certificate) == (
        "accepted" if expected is RejectionReason.UNTRUSTED else "weak_key"
    )
