"""Issue #11, the checks behind fail-fast: trust files that cannot work, trust sets that can
never match, refusals that say what was expected, hints for servers set up without what
asgi-mtls needs, and log lines that carry their level without the app's logging config."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from asgi_mtls import CertificateRejected, CertificateValidator, diagnostics
from asgi_mtls.errors import ConfigurationError
from asgi_mtls.testing import CertificateAuthority
from asgi_mtls.validation.trust_checks import check_trust_roots, read_certificates

# -- trust files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"trust file '.*\.pem' does not exist: check the path given as trust="),
        (b"", r"trust file '.*' is empty: give the CA certificate"),
        (b"  \n\t", r"is empty"),
        (b"the CA is on the wiki", r"holds no certificate \(neither PEM 'BEGIN CERTIFICATE'"),
        (b"\x30\x03\x02\x01\x00", r"holds no certificate"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", r"private key"),
        (b"-----BEGIN EC PRIVATE KEY-----\nAA\n-----END EC PRIVATE KEY-----\n", r"private key"),
        (b"-----BEGIN X509 CRL-----\nAA\n-----END X509 CRL-----\n", r"PEM 'X509 CRL' block"),
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            r"holds a PEM certificate that cannot be decoded",
        ),
    ],
    ids=["missing", "empty", "blank", "text", "bad-der", "key", "ec-key", "crl", "corrupt"],
)
def test_a_trust_file_that_holds_no_certificate_is_one_line(tmp_path, content, message):
    path = tmp_path / "trust.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigurationError, match=message) as info:
        CertificateValidator(path)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigurationError, match=message.replace("trust", "intermediates")):
        CertificateValidator(CertificateAuthority("R").certificate, intermediates=path)


def test_a_directory_and_bytes_are_named(tmp_path):
    with pytest.raises(ConfigurationError, match="is a directory: give the PEM file inside it"):
        read_certificates(tmp_path)
    with pytest.raises(ConfigurationError, match=r"^trust= bytes holds no certificate"):
        read_certificates(b"nothing", "trust")


def test_a_trust_set_without_any_usable_anchor_is_refused(pki):
    with pytest.raises(ConfigurationError, match="'CN=localhost' is a server certificate"):
        CertificateValidator(pki.server.certificate)
    with pytest.raises(ConfigurationError, match="is a server certificate"):
        check_trust_roots([pki.server_only.certificate])
    # A CA, or a client certificate trusted as itself, is a trust set that can work.
    check_trust_roots([pki.server.certificate, pki.root.certificate])
    check_trust_roots([pki.cn_only.certificate])


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_trust_that_can_never_match_is_warned_once_per_load(caplog):
    now = dt.datetime.now(dt.UTC)
    expired = CertificateAuthority(
        "Old CA", not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1)
    )
    with caplog.at_level(logging.WARNING, "asgi_mtls"):
        CertificateValidator(expired.certificate)
    assert _warnings(caplog) == [
        f"trust: 'CN=Old CA' expired on {expired.certificate.not_valid_after_utc.date()}; no "
        "client certificate can be accepted until this is fixed"
    ]
    caplog.clear()
    current = CertificateAuthority("Clients CA")
    with caplog.at_level(logging.WARNING, "asgi_mtls"):
        CertificateValidator([current.certificate, expired.certificate])
    assert _warnings(caplog) == [
        f"trust: 'CN=Old CA' expired on {expired.certificate.not_valid_after_utc.date()}; such "
        "certificates can never be part of an accepted path"
    ]


def test_a_ca_restricted_to_server_certificates_is_warned(caplog):
    root = CertificateAuthority("Root")
    web_only = root.issue(
        common_name="Web CA",
        is_ca=True,
        extended_key_usages=(ExtendedKeyUsageOID.SERVER_AUTH,),
    )
    with caplog.at_level(logging.WARNING, "asgi_mtls"):
        CertificateValidator(root.certificate, intermediates=[web_only.certificate])
    assert _warnings(caplog) == [
        "intermediates: 'CN=Web CA' is a CA whose extendedKeyUsage excludes clientAuth (a CA "
        "for server certificates); such certificates can never be part of an accepted path"
    ]


# -- refusals that say what was expected ------------------------------------------------------


def _detail(validator: CertificateValidator, leaf, chain=()) -> str:
    with pytest.raises(CertificateRejected) as info:
        validator.validate(leaf, chain)
    assert info.value.reason.value == "untrusted"
    return info.value.log_detail


def test_untrusted_names_the_issuer_and_the_trusted_roots(pki):
    validator = CertificateValidator(pki.root.certificate)
    assert _detail(validator, pki.untrusted.certificate).startswith(
        "issued by 'CN=Attacker Root', which is not among the trusted roots: "
        "'CN=Bank Test Root' (an intermediate CA must be sent by the client or configured as "
        "intermediates=; validation failed: "
    )
    # The leaf alone, as nginx forwards it: the intermediate is what is missing.
    assert _detail(validator, pki.payments.certificate).startswith(
        "issued by 'CN=Bank Test Clients CA', which is not among the trusted roots: "
        "'CN=Bank Test Root'"
    )
    # With its chain, under roots that do not include the chain's root.
    other = CertificateValidator(pki.other_root.certificate)
    assert _detail(other, pki.payments.certificate, pki.payments.chain).startswith(
        "chains up to 'CN=Bank Test Clients CA', issued by 'CN=Bank Test Root', which is not "
        "among the trusted roots: 'CN=Attacker Root'"
    )
    # A root of the right name but another key.
    twin = CertificateAuthority("Bank Test Root")
    assert _detail(CertificateValidator(twin.certificate), pki.cn_only.certificate).startswith(
        "issued by 'CN=Bank Test Root', a trusted root by name, but the path through it does "
        "not verify"
    )


# -- hints on the refusal path ----------------------------------------------------------------


@pytest.fixture
def fresh_hints(monkeypatch):
    monkeypatch.setattr(diagnostics, "_said", set())


@pytest.mark.parametrize(
    ("scope", "reason", "peer", "hint"),
    [
        ({"scheme": "http"}, "untrusted_proxy", None, "does not report the transport peer"),
        ({"scheme": "https"}, "missing", None, "terminates TLS but passes no client certificate"),
        ({"scheme": "http"}, "missing", None, "passes neither the ASGI 'tls' extension"),
        ({"scheme": "http", "extensions": {"asgi_mtls.peer": {}}}, "missing", "10.0.0.1", None),
        ({"scheme": "https", "extensions": {"tls": {}}}, "missing", "10.0.0.1", None),
        ({"scheme": "http"}, "untrusted_proxy", "10.0.0.9", None),
        ({"scheme": "http"}, "forbidden", None, None),
    ],
)
def test_refusals_that_show_a_server_set_up_wrong_say_the_fix_once(
    fresh_hints, caplog, scope, reason, peer, hint
):
    with caplog.at_level(logging.WARNING, "asgi_mtls"):
        for _ in range(3):
            diagnostics.hint_for_refusal(scope, reason, peer)
    said = _warnings(caplog)
    if hint is None:
        assert said == []
    else:
        assert len(said) == 1
        assert hint in said[0]
        assert diagnostics.PROTOCOL_FLAGS in said[0]


# -- log lines without the app's logging config -----------------------------------------------

_EMIT = (
    "import logging, asgi_mtls; {setup}logging.getLogger('asgi_mtls.x').warning('refused %s', 1)"
)


@pytest.mark.parametrize(
    ("setup", "stderr"),
    [
        ("", "WARNING:  asgi_mtls.x: refused 1\n"),
        ("logging.basicConfig(format='%(name)s|%(message)s'); ", "asgi_mtls.x|refused 1\n"),
        ("logging.getLogger('asgi_mtls').addHandler(logging.NullHandler()); ", ""),
        ("logging.getLogger('asgi_mtls').setLevel(logging.ERROR); ", ""),
    ],
    ids=["unconfigured", "basicConfig", "app-handler", "silenced"],
)
def test_log_lines_carry_level_and_logger_once(setup, stderr):
    result = subprocess.run(
        [sys.executable, "-c", _EMIT.format(setup=setup)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        timeout=30,
    )
    assert result.stderr == stderr


def test_the_fallback_keeps_tracebacks():
    code = (
        "import logging, asgi_mtls\n"
        "try:\n    1/0\n"
        "except ZeroDivisionError:\n    logging.getLogger('asgi_mtls').exception('failed')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        timeout=30,
    )
    assert result.stderr.startswith("ERROR:    asgi_mtls: failed\nTraceback")
    assert result.stderr.rstrip().endswith("ZeroDivisionError: division by zero")
