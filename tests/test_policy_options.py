"""Policy options of CertificateValidator: allowed issuers, pins, signature algorithms, clock
skew.  Each only narrows what path validation accepts; none can make an untrusted chain
trusted."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import SignatureAlgorithmOID
from hypothesis import given, settings
from hypothesis import strategies as st

from asgi_mtls import CertificateValidator
from asgi_mtls.authorization import fingerprint, spki_pin
from asgi_mtls.identity import build_identity
from asgi_mtls.identity.principals import resolve_principal_strategy
from asgi_mtls.testing import CertificateAuthority
from asgi_mtls.validation.trust import certificate_sha256, parse_pin, spki_sha256
from tests.certificates import reissue
from tests.validate import outcome


@pytest.fixture(scope="module")
def pki():
    root = CertificateAuthority("Policy Root")
    payments_ca = root.intermediate("Payments Issuing CA")
    reports_ca = root.intermediate("Reports Issuing CA")
    return {
        "root": root,
        "payments_ca": payments_ca,
        "reports_ca": reports_ca,
        "payments": payments_ca.issue_client(spiffe_id="spiffe://bank.example/payments"),
        "reports": reports_ca.issue_client(spiffe_id="spiffe://bank.example/reports"),
        "direct": root.issue_client("directly-under-root"),
        "attacker": CertificateAuthority("Policy Root").issue_client("attacker"),
    }


def make(pki, **options) -> CertificateValidator:
    return CertificateValidator(
        pki["root"].certificate,
        intermediates=[pki["payments_ca"].certificate, pki["reports_ca"].certificate],
        **options,
    )


# --- allowed issuers -----------------------------------------------------------------------


def test_allowed_issuers_narrow_the_roots(pki):
    validator = make(pki, allowed_issuers=[pki["payments_ca"].certificate])
    assert outcome(validator, pki["payments"].certificate) == "accepted"
    assert outcome(validator, pki["reports"].certificate) == "issuer_not_allowed"
    assert outcome(validator, pki["direct"].certificate) == "issuer_not_allowed"
    # Allowed issuers never make anything trusted.
    assert outcome(validator, pki["attacker"].certificate) == "untrusted"


def test_allowed_issuer_matches_by_name_and_key(pki):
    payments_ca = pki["payments_ca"]
    # The same CA re-issued (new serial and validity, same name and key) still matches.
    renewed = reissue(
        payments_ca.certificate,
        pki["root"].key,
        serial=x509.random_serial_number(),
        not_after=payments_ca.certificate.not_valid_after_utc + dt.timedelta(days=1),
    )
    assert outcome(make(pki, allowed_issuers=[renewed]), pki["payments"].certificate) == "accepted"
    # Same name, other key: not the same issuer.
    look_alike = pki["root"].intermediate("Payments Issuing CA").certificate
    validator = make(pki, allowed_issuers=[look_alike])
    assert outcome(validator, pki["payments"].certificate) == "issuer_not_allowed"


def test_allowed_issuers_from_a_file_and_the_root_itself(tmp_path, pki):
    path = pki["root"].write(tmp_path, "root")
    validator = make(pki, allowed_issuers=path)
    assert outcome(validator, pki["direct"].certificate) == "accepted"
    assert outcome(validator, pki["payments"].certificate) == "issuer_not_allowed"


def test_empty_allowed_issuers_is_a_configuration_error(pki):
    with pytest.raises(ValueError, match="allowed_issuers is empty"):
        make(pki, allowed_issuers=[])


# --- pins ----------------------------------------------------------------------------------


def test_certificate_pins(pki):
    fingerprint = pki["payments"].certificate.fingerprint(hashes.SHA256())
    colon_hex = ":".join(f"{b:02X}" for b in fingerprint)  # openssl x509 -fingerprint style
    validator = make(pki, pinned_certificates=[colon_hex])
    assert outcome(validator, pki["payments"].certificate) == "accepted"
    assert outcome(validator, pki["reports"].certificate) == "not_pinned"
    # A pin does not bypass path validation.
    attacker_pin = make(pki, pinned_certificates=[pki["attacker"].certificate])
    assert outcome(attacker_pin, pki["attacker"].certificate) == "untrusted"


def test_key_pins_match_any_certificate_of_the_path(pki):
    # RFC 7469 style: pin the issuing CA's key, accept every client it issues.
    pin = "sha256//" + base64.b64encode(spki_sha256(pki["payments_ca"].certificate)).decode()
    validator = make(pki, pinned_keys=[pin])
    assert outcome(validator, pki["payments"].certificate) == "accepted"
    assert outcome(validator, pki["reports"].certificate) == "not_pinned"
    # Certificate and key pins combine: any match is enough.
    both = make(pki, pinned_keys=[pin], pinned_certificates=[pki["reports"].certificate])
    assert outcome(both, pki["reports"].certificate) == "accepted"
    assert outcome(both, pki["direct"].certificate) == "not_pinned"


def test_pins_from_a_file(tmp_path, pki):
    path = tmp_path / "pins.txt"
    path.write_text(
        f"# clients allowed to call\n{pki['payments'].fingerprint_sha256}  # payments\n\n"
    )
    validator = make(pki, pinned_certificates=path)
    assert outcome(validator, pki["payments"].certificate) == "accepted"
    assert outcome(validator, pki["reports"].certificate) == "not_pinned"


@pytest.mark.parametrize("bad", ["abc", "sha256//notbase64!", "00" * 31, "zz" * 32])
def test_invalid_pins_are_configuration_errors(pki, bad):
    with pytest.raises(ValueError, match="SHA-256 pin"):
        make(pki, pinned_keys=[bad])


def test_a_bare_string_is_not_a_pin_list(pki):
    with pytest.raises(TypeError, match=r"pathlib\.Path"):
        make(pki, pinned_certificates=pki["payments"].fingerprint_sha256)


_DIGEST = bytes(range(32))
_B64 = base64.b64encode(_DIGEST).decode()
PIN_SPELLINGS = {
    "hex": _DIGEST.hex(),
    "HEX": _DIGEST.hex().upper(),
    "hex with colons": ":".join(f"{b:02x}" for b in _DIGEST),
    "sha256: hex": "sha256:" + _DIGEST.hex(),
    "SHA256: hex": "SHA256:" + _DIGEST.hex().upper(),
    "base64": _B64,
    "sha256/ base64": "sha256/" + _B64,
    "sha256// base64 (curl)": "sha256//" + _B64,
    "pin-sha256 directive (RFC 7469)": f'pin-sha256="{_B64}"',
    "surrounding spaces": f"  {_B64}  ",
}
BAD_PINS = {
    "too short": "abc",
    "31 bytes of hex": "00" * 31,
    "non-hex": "zz" * 32,
    "hex with spaces": " ".join(["00"] * 32),
    "base64 of 31 bytes": base64.b64encode(bytes(31)).decode(),
    "not base64": "sha256//notbase64!",
    "unterminated directive": f'pin-sha256="{_B64}',
    "empty directive": 'pin-sha256=""',
    "empty": "",
}


@pytest.mark.parametrize("text", PIN_SPELLINGS.values(), ids=PIN_SPELLINGS.keys())
def test_pin_spellings(text):
    assert parse_pin(text) == _DIGEST
    assert parse_pin(text.encode("ascii")) == _DIGEST


def test_raw_digest_is_a_pin():
    assert parse_pin(_DIGEST) == _DIGEST
    with pytest.raises(ValueError, match="SHA-256 pin"):
        parse_pin(bytes(31))


@pytest.mark.parametrize("text", BAD_PINS.values(), ids=BAD_PINS.keys())
def test_bad_pin_spellings(text):
    with pytest.raises(ValueError):
        parse_pin(text)


@pytest.mark.parametrize("spelling", PIN_SPELLINGS.keys())
def test_validator_and_matchers_read_pins_alike(pki, spelling):
    # One parser (issue #9): a pin written one way means the same to the validator's
    # pinned_keys / pinned_certificates and to the spki_pin / fingerprint matchers.
    client = pki["payments"]
    identity = build_identity(
        (client.certificate,), source="tls", principal=resolve_principal_strategy("default")
    )
    for digest, option, matcher in (
        (spki_sha256(client.certificate), "pinned_keys", spki_pin),
        (certificate_sha256(client.certificate), "pinned_certificates", fingerprint),
    ):
        text = _respell(PIN_SPELLINGS[spelling], digest)
        assert parse_pin(text) == digest
        assert outcome(make(pki, **{option: [text]}), client.certificate) == "accepted"
        assert matcher(text).allows(identity)
        assert not matcher(_respell(PIN_SPELLINGS[spelling], bytes(32))).allows(identity)


@pytest.mark.parametrize("text", BAD_PINS.values(), ids=BAD_PINS.keys())
def test_validator_and_matchers_refuse_the_same_pins(pki, text):
    with pytest.raises(ValueError):
        make(pki, pinned_keys=[text])
    with pytest.raises(ValueError):
        spki_pin(text)
    with pytest.raises(ValueError):
        fingerprint(text)


def _respell(example: str, digest: bytes) -> str:
    """``example`` (a spelling of ``_DIGEST``) with ``digest`` in its place."""
    forms = {
        _DIGEST.hex(): digest.hex(),
        _DIGEST.hex().upper(): digest.hex().upper(),
        ":".join(f"{b:02x}" for b in _DIGEST): ":".join(f"{b:02x}" for b in digest),
        _B64: base64.b64encode(digest).decode(),
    }
    for old, new in forms.items():
        if old in example:
            return example.replace(old, new)
    raise AssertionError(f"no digest in {example!r}")


def _der_elements(data: bytes) -> list[bytes]:
    """The complete TLV elements inside the DER constructed value ``data`` (a minimal reader,
    independent of cryptography, to check what the pins are digests of)."""
    body_start, body_end = _der_header(data, 0)
    elements, position = [], body_start
    while position < body_end:
        _, end = _der_header(data, position)
        elements.append(data[position:end])
        position = end
    return elements


def _der_header(data: bytes, position: int) -> tuple[int, int]:
    """(start of the contents, end of the element) for the element at ``position``."""
    length = data[position + 1]
    start = position + 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    return start, start + length


def test_pin_digests_are_the_usual_ones(pki):
    # certificate pin: SHA-256 of the DER certificate as sent (its "fingerprint"), here
    # decoded from the PEM text; key pin (RFC 7469 §2.4): SHA-256 of the
    # SubjectPublicKeyInfo exactly as encoded inside the certificate, which is the seventh
    # field of the TBSCertificate (version, serial, signature, issuer, validity, subject,
    # subjectPublicKeyInfo).
    for client in (pki["payments"], pki["root"].issue_client("rsa-pin", rsa_bits=2048)):
        certificate = client.certificate
        der = base64.b64decode("".join(client.pem.strip().splitlines()[1:-1]))
        tbs = _der_elements(der)[0]
        fields = _der_elements(tbs)
        assert fields[0][0] == 0xA0  # explicit [0] version, so the SPKI is fields[6]
        spki = fields[6]
        assert _der_elements(spki)[0][0] == 0x30  # AlgorithmIdentifier
        assert certificate_sha256(certificate) == hashlib.sha256(der).digest()
        assert spki_sha256(certificate) == hashlib.sha256(spki).digest()


# --- signature algorithms ------------------------------------------------------------------


def test_signature_algorithms_narrow_the_webpki_set(pki):
    # Every certificate here is ECDSA with SHA-256.
    only_384 = make(pki, signature_algorithms=[SignatureAlgorithmOID.ECDSA_WITH_SHA384])
    assert outcome(only_384, pki["payments"].certificate) == "weak_signature"
    only_256 = make(pki, signature_algorithms=[SignatureAlgorithmOID.ECDSA_WITH_SHA256])
    assert outcome(only_256, pki["payments"].certificate) == "accepted"


def test_signature_algorithms_apply_to_intermediates():
    root = CertificateAuthority("Mixed Root")
    intermediate = root.intermediate("Mixed CA")
    leaf = intermediate.issue_client("mixed")
    # Re-sign only the leaf with SHA-384: the intermediate stays ECDSA-SHA256.
    leaf_384 = reissue(leaf.certificate, intermediate.key, hash_algorithm=hashes.SHA384())
    validator = CertificateValidator(
        root.certificate,
        intermediates=[intermediate.certificate],
        signature_algorithms=[SignatureAlgorithmOID.ECDSA_WITH_SHA384],
    )
    assert outcome(validator, leaf_384) == "weak_signature"  # from the intermediate
    lenient = CertificateValidator(
        root.certificate,
        intermediates=[intermediate.certificate],
        signature_algorithms=[
            SignatureAlgorithmOID.ECDSA_WITH_SHA384,
            SignatureAlgorithmOID.ECDSA_WITH_SHA256,
        ],
    )
    assert outcome(lenient, leaf_384) == "accepted"


# --- clock skew ----------------------------------------------------------------------------


def test_clock_skew_on_the_leaf(pki):
    certificate = pki["payments"].certificate
    not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    skewed = make(pki, clock_skew=60)
    strict = make(pki)
    after = not_after + dt.timedelta(seconds=30)
    before = not_before - dt.timedelta(seconds=30)
    assert outcome(strict, certificate, at=after) == "expired"
    assert outcome(skewed, certificate, at=after) == "accepted"
    assert outcome(strict, certificate, at=before) == "not_yet_valid"
    assert outcome(skewed, certificate, at=before) == "accepted"
    # Never by more than the skew.
    assert outcome(skewed, certificate, at=not_after + dt.timedelta(seconds=61)) == "expired"
    assert outcome(skewed, certificate, at=not_before - dt.timedelta(seconds=61)) == (
        "not_yet_valid"
    )
    assert outcome(make(pki, clock_skew=dt.timedelta(minutes=1)), certificate, at=after) == (
        "accepted"
    )


def test_clock_skew_does_not_revive_an_expired_intermediate():
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    root = CertificateAuthority("Skew Root")
    stale = root.intermediate("Stale CA", not_after=now - dt.timedelta(hours=1))
    leaf = stale.issue_client("leaf", not_after=now + dt.timedelta(days=1))
    validator = CertificateValidator(
        root.certificate, intermediates=[stale.certificate], clock_skew=300
    )
    assert outcome(validator, leaf.certificate) == "untrusted"


def test_negative_clock_skew_is_refused(pki):
    with pytest.raises(ValueError, match="clock_skew"):
        make(pki, clock_skew=-1)


@pytest.fixture(scope="module")
def skew_ca():
    return CertificateAuthority("Skew Property Root")


@settings(max_examples=40, deadline=None)
@given(
    start=st.integers(-600, 600),
    length=st.integers(1, 600),
    skew=st.integers(0, 300),
)
def test_skew_never_accepts_beyond_the_tolerance(skew_ca, start, length, skew):
    # Whatever the leaf's validity window relative to now: accepted exactly when "now" is
    # within `skew` seconds of the window.
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    not_before = now + dt.timedelta(seconds=start)
    not_after = not_before + dt.timedelta(seconds=length)
    leaf = skew_ca.issue_client("p", not_before=not_before, not_after=not_after)
    validator = CertificateValidator(skew_ca.certificate, clock_skew=skew)
    result = outcome(validator, leaf.certificate, at=now)
    tolerance = dt.timedelta(seconds=skew)
    inside = not_before - tolerance <= now <= not_after + tolerance
    assert (result == "accepted") == inside
    if not inside:
        assert result in ("expired", "not_yet_valid")
