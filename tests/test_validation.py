from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from asgi_mtls import CertificateValidator, RejectionReason
from asgi_mtls.errors import ConfigurationError
from asgi_mtls.testing import CertificateAuthority
from tests.certificates import extensions_of, reissue
from tests.validate import reason_of


@pytest.fixture(scope="module")
def validator(pki) -> CertificateValidator:
    return CertificateValidator(pki.root.certificate, intermediates=[pki.intermediate.certificate])


def test_client_via_configured_intermediate(validator, pki):
    verified = validator.validate(pki.payments.der)
    assert [c.subject for c in verified.chain] == [
        pki.payments.certificate.subject,
        pki.intermediate.certificate.subject,
        pki.root.certificate.subject,
    ]
    assert verified.expires_at == min(c.not_valid_after_utc for c in verified.chain)


def test_presented_chain_is_a_path_building_hint(pki):
    roots_only = CertificateValidator(pki.root.certificate)
    assert reason_of(roots_only, pki.payments.der) is RejectionReason.UNTRUSTED
    verified = roots_only.validate(pki.payments.der, [pki.intermediate.certificate])
    assert verified.chain[-1] == pki.root.certificate


def test_presented_chain_is_never_an_anchor(pki):
    # The attacker sends their own root along: it must not become trusted.
    only_ours = CertificateValidator(pki.root.certificate)
    reason = reason_of(only_ours, pki.untrusted.certificate, [pki.other_root.certificate])
    assert reason is RejectionReason.UNTRUSTED


def test_cn_only_certificate_is_accepted(validator, pki):
    leaf = pki.cn_only.certificate
    with pytest.raises(x509.ExtensionNotFound):  # the premise: no subjectAltName at all
        leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "legacy-batch"
    verified = validator.validate(leaf)
    assert verified.leaf == leaf
    assert verified.chain == (leaf, pki.root.certificate)
    assert verified.expires_at == leaf.not_valid_after_utc


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("server_only", RejectionReason.WRONG_USAGE),
        ("no_eku", RejectionReason.WRONG_USAGE),
        ("expired", RejectionReason.EXPIRED),
        ("not_yet_valid", RejectionReason.NOT_YET_VALID),
        ("ca_as_client", RejectionReason.WRONG_USAGE),
        ("untrusted", RejectionReason.UNTRUSTED),
    ],
)
def test_rejections_have_reason_codes(validator, pki, name, reason):
    assert reason_of(validator, getattr(pki, name).certificate) is reason


def test_ca_certificate_itself_presented_as_client(validator, pki):
    assert reason_of(validator, pki.intermediate.certificate) is RejectionReason.WRONG_USAGE
    assert reason_of(validator, pki.root.certificate) is RejectionReason.WRONG_USAGE


def test_missing_eku_can_be_allowed_explicitly(pki):
    lenient = CertificateValidator(pki.root.certificate, allow_missing_eku=True)
    assert lenient.validate(pki.no_eku.certificate).leaf == pki.no_eku.certificate
    # ...but a serverAuth-only EKU is still refused.
    assert reason_of(lenient, pki.server_only.certificate) is RejectionReason.WRONG_USAGE


def test_validation_time_is_honoured(validator, pki):
    later = pki.payments.certificate.not_valid_after_utc + dt.timedelta(seconds=1)
    assert reason_of(validator, pki.payments.certificate, at=later) is RejectionReason.EXPIRED
    earlier = pki.payments.certificate.not_valid_before_utc - dt.timedelta(seconds=1)
    assert (
        reason_of(validator, pki.payments.certificate, at=earlier) is RejectionReason.NOT_YET_VALID
    )
    # A naive datetime is read as UTC.
    naive = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert validator.validate(pki.payments.certificate, at=naive)


def test_expired_intermediate_makes_the_chain_untrusted():
    now = dt.datetime.now(dt.UTC)
    root = CertificateAuthority("root")
    stale = root.intermediate(
        "stale", not_before=now - dt.timedelta(days=10), not_after=now - dt.timedelta(days=1)
    )
    leaf = stale.issue_client("client-of-stale")
    validator = CertificateValidator(root.certificate, intermediates=[stale.certificate])
    assert reason_of(validator, leaf.certificate) is RejectionReason.UNTRUSTED


def test_empty_subject_needs_critical_san():
    root = CertificateAuthority("root")
    good = root.issue_client(spiffe_id="spiffe://bank.example/a")  # critical SAN, empty subject
    validator = CertificateValidator(root.certificate)
    assert validator.validate(good.certificate)
    bad = root.issue(uris=["spiffe://bank.example/a"], subject=x509.Name([]))
    # Re-issue with a non-critical SAN by hand: the RFC 5280 rule must still hold.
    extensions = [
        (value, critical and not isinstance(value, x509.SubjectAlternativeName))
        for value, critical in extensions_of(bad.certificate)
    ]
    non_critical = reissue(
        bad.certificate, root.key, serial=x509.random_serial_number(), extensions=extensions
    )
    assert reason_of(validator, non_critical) is RejectionReason.UNTRUSTED


def test_garbage_der_is_malformed(validator):
    assert reason_of(validator, b"\x30\x03\x02\x01\x00") is RejectionReason.MALFORMED
    assert reason_of(validator, b"") is RejectionReason.MALFORMED


def test_too_many_chain_hints(validator, pki):
    hints = [pki.intermediate.certificate] * 9
    assert reason_of(validator, pki.payments.certificate, hints) is RejectionReason.TOO_LARGE


def test_trust_roots_from_file_bytes_and_lists(tmp_path, pki):
    path = pki.root.write(tmp_path, "root")
    for trust in (str(path), path, path.read_bytes(), [pki.root.certificate], [path]):
        validator = CertificateValidator(trust, intermediates=pki.intermediate.pem.encode())
        assert validator.validate(pki.payments.certificate).chain[-1] == pki.root.certificate
    der = pki.root.certificate.public_bytes(serialization.Encoding.DER)
    assert CertificateValidator(der).trust_roots == (pki.root.certificate,)


def test_no_trust_roots_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match=r"^trust holds no certificate: give the CA"):
        CertificateValidator([])
    with pytest.raises(ConfigurationError, match=r"missing\.pem' does not exist"):
        CertificateValidator(tmp_path / "missing.pem")


@pytest.mark.timeout(10)
def test_pathological_chain_finishes(pki):
    # Many candidate issuers with the same name but wrong keys: path building must give up
    # instead of exploring every combination (the timeout marker is the bound).
    decoys = [CertificateAuthority("Bank Test Clients CA").certificate for _ in range(8)]
    validator = CertificateValidator(pki.root.certificate, intermediates=decoys)
    assert reason_of(validator, pki.payments.certificate, decoys[:8]) is RejectionReason.UNTRUSTED


def test_chain_limit_is_checked_before_parsing(validator, pki):
    assert reason_of(validator, pki.payments.certificate, [b"not a certificate"] * 9) is (
        RejectionReason.TOO_LARGE
    )
