"""The first-hour commands (issue #11): --version, pki, inspect, and how errors and pipes end.

``main()`` is called in process for the outputs; the console script runs in a subprocess
where the exit status, stderr and the closed pipe are the point.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from asgi_mtls import CertificateValidator, __version__
from asgi_mtls.cli import main
from asgi_mtls.sources import HEADER_FORMATS
from asgi_mtls.testing import CertificateAuthority, encode_certificate_headers
from asgi_mtls.validation.revocation import RevocationChecker


def cli(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asgi_mtls.cli", *argv],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"asgi-mtls {__version__}\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nope"], "asgi-mtls: argument COMMAND: invalid choice: 'nope'"),
        (["pki"], "asgi-mtls pki: the following arguments are required"),
        (["serve", "app:app"], "asgi-mtls serve: the following arguments are required: --ca"),
        (["inspect", "x", "--format", "nginxx"], "asgi-mtls inspect: argument --format"),
    ],
)
def test_usage_errors_are_one_line(argv, message):
    result = cli(*argv)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1


def test_errors_are_one_line_without_traceback(tmp_path):
    result = cli("check", "--trust", str(tmp_path / "missing.pem"), str(tmp_path / "x.pem"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("asgi-mtls: trust file ")
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_without_trust_points_to_inspect(tmp_path):
    result = cli("check", "cert.pem")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "asgi-mtls: check needs --trust ROOTS.pem to validate against; to decode a certificate"
        " without one, run 'asgi-mtls inspect cert.pem'\n"
    )


def test_a_closed_pipe_is_quiet(pki, tmp_path):
    # More output than a pipe buffers (64 KiB), so the writer meets the closed pipe.
    bundle = tmp_path / "many.pem"
    bundle.write_text(pki.payments.pem * 400)
    command = f"{sys.executable} -m asgi_mtls.cli inspect '{bundle}'"
    shell = f'{command} | head -2; echo "status=${{PIPESTATUS[0]}}"'
    result = subprocess.run(
        ["bash", "-c", shell],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "decoded as: pem"
    assert lines[-1] == "status=141"
    assert result.stderr == ""


# -- pki --------------------------------------------------------------------------------------


def test_pki_init_writes_a_working_development_pki(tmp_path, capsys):
    directory = tmp_path / "pki"
    assert main(["pki", "init", str(directory), "--client", "payments", "--client", "ops"]) == 0
    printed = capsys.readouterr().out.splitlines()
    names = {
        "ca.pem", "ca.key", "server.pem", "server.key",
        "payments.pem", "payments.key", "payments.p12", "ops.pem", "ops.key", "ops.p12",
    }  # fmt: skip
    assert {Path(line).name for line in printed if not line.startswith("#")} == names
    assert {p.name for p in directory.iterdir()} == names
    for key in ("ca.key", "server.key", "payments.key", "payments.p12"):
        assert (directory / key).stat().st_mode & 0o077 == 0
    validator = CertificateValidator(directory / "ca.pem")
    for name in ("payments", "ops"):
        leaf = x509.load_pem_x509_certificate((directory / f"{name}.pem").read_bytes())
        verified = validator.validate(leaf)
        uris = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert uris.get_values_for_type(x509.UniformResourceIdentifier) == [
            f"spiffe://example.org/{name}"
        ]
        assert verified.chain[-1].subject.rfc4514_string() == "CN=asgi-mtls development CA"
        key, cert, _ = pkcs12.load_key_and_certificates(
            (directory / f"{name}.p12").read_bytes(), None
        )
        assert cert == leaf
        assert key is not None
    server = x509.load_pem_x509_certificate((directory / "server.pem").read_bytes())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    # a second init would replace the CA every client trusts: refused without --force
    assert main(["pki", "init", str(directory)]) == 2
    assert "exists: add clients with 'asgi-mtls pki issue" in capsys.readouterr().err


def test_pki_issue_adds_clients_under_the_same_ca(tmp_path, capsys):
    directory = tmp_path / "pki"
    main(["pki", "init", str(directory), "--days", "30"])
    argv = ["pki", "issue", str(directory)]
    web_names = ["--spiffe-id", "spiffe://bank.example/web", "--dns", "web.bank.example"]
    web_names += ["--email", "ops@bank.example", "--days", "2"]
    assert main([*argv, "web", *web_names]) == 0
    assert main([*argv, "legacy", "--cn-only"]) == 0
    validator = CertificateValidator(directory / "ca.pem")
    web = x509.load_pem_x509_certificate((directory / "web.pem").read_bytes())
    validator.validate(web)
    san = web.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://bank.example/web"]
    assert san.get_values_for_type(x509.DNSName) == ["web.bank.example"]
    assert san.get_values_for_type(x509.RFC822Name) == ["ops@bank.example"]
    assert 1 <= (web.not_valid_after_utc - web.not_valid_before_utc).days <= 3
    legacy = x509.load_pem_x509_certificate((directory / "legacy.pem").read_bytes())
    validator.validate(legacy)
    with pytest.raises(x509.ExtensionNotFound):
        legacy.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    capsys.readouterr()
    for bad, message in [
        ([*argv, "web"], "web.pem exists"),
        ([*argv, "server"], "client name 'server'"),
        ([*argv, "../x"], "client name '../x'"),
        ([*argv, "x", "--cn-only", "--dns", "a.example"], "--cn-only issues no subjectAltName"),
        ([*argv, "x", "--spiffe-id", "https://x"], "must start with 'spiffe://'"),
        ([*argv, "x", "--days", "0"], "--days 0"),
        (["pki", "issue", str(tmp_path / "none"), "x"], "run 'asgi-mtls pki init"),
    ]:
        assert main(bad) == 2, bad
        assert message in capsys.readouterr().err


def _leaf(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _names(certificate: x509.Certificate, kind: type[x509.GeneralName]) -> list[object]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(san.value.get_values_for_type(kind))  # type: ignore[arg-type]


@pytest.mark.parametrize("action", ["init", "issue"])
def test_pki_client_options_reach_the_certificates(tmp_path, capsys, action):
    """Every option ``init`` and ``issue`` share, on each of them: trust domain, CN only,
    lifetime, PKCS#12 password, --force."""
    directory = tmp_path / "pki"
    if action == "init":
        first = ["pki", "init", str(directory), "--client", "a"]
    else:
        main(["pki", "init", str(directory)])
        first = ["pki", "issue", str(directory), "a"]
    options = ["--trust-domain", "bank.example", "--days", "3", "--p12-password", "s3cret"]
    assert main([*first, *options]) == 0
    leaf = _leaf(directory / "a.pem")
    assert _names(leaf, x509.UniformResourceIdentifier) == ["spiffe://bank.example/a"]
    expiry = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    assert abs(leaf.not_valid_after_utc - expiry) < dt.timedelta(minutes=5)
    bundle = (directory / "a.p12").read_bytes()
    assert pkcs12.load_key_and_certificates(bundle, b"s3cret")[1] == leaf
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(bundle, None)
    capsys.readouterr()
    assert main(first) == 2  # a.pem (init: ca.pem) exists: refused without --force
    assert "exists" in capsys.readouterr().err
    assert main([*first, "--cn-only", "--force"]) == 0
    replaced = _leaf(directory / "a.pem")
    assert replaced.serial_number != leaf.serial_number
    assert _names(replaced, x509.UniformResourceIdentifier) == []
    assert replaced.subject.rfc4514_string() == "CN=a"


def test_pki_init_server_names(tmp_path):
    directory = tmp_path / "pki"
    assert main(["pki", "init", str(directory), "--server-name", "api.internal"]) == 0
    assert _names(_leaf(directory / "server.pem"), x509.DNSName) == ["api.internal"]


def test_pki_revoke_writes_a_cumulative_crl_the_validator_enforces(tmp_path, capsys):
    directory = tmp_path / "pki"
    main(["pki", "init", str(directory), "--client", "a", "--client", "b", "--client", "c"])
    assert main(["pki", "revoke", str(directory), "a"]) == 0
    assert main(["pki", "revoke", str(directory), "b"]) == 0
    crl = x509.load_pem_x509_crl((directory / "crl.pem").read_bytes())
    serials = {entry.serial_number for entry in crl}
    leaves = {
        name: x509.load_pem_x509_certificate((directory / f"{name}.pem").read_bytes())
        for name in "abc"
    }
    assert serials == {leaves["a"].serial_number, leaves["b"].serial_number}
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    validator = CertificateValidator(
        directory / "ca.pem",
        revocation=RevocationChecker(crl="hard-fail", crl_files=[directory / "crl.pem"]),
    )
    outcomes = {}
    for name, leaf in leaves.items():
        try:
            validator.validate(leaf)
            outcomes[name] = "accepted"
        except Exception as exc:
            outcomes[name] = getattr(exc, "reason", exc)
    assert outcomes == {"a": "revoked", "b": "revoked", "c": "accepted"}
    assert main(["pki", "revoke", str(directory), "nobody"]) == 2
    assert "no client 'nobody'" in capsys.readouterr().err


def test_pki_refuses_a_ca_it_did_not_make(tmp_path, capsys):
    other = CertificateAuthority("Somebody's CA")
    other.write(tmp_path, "ca")
    (tmp_path / "ca.key").write_text(CertificateAuthority("x").issue_client("k").key_pem)
    assert main(["pki", "issue", str(tmp_path), "x"]) == 2
    assert "do not belong together" in capsys.readouterr().err


# -- inspect ----------------------------------------------------------------------------------


@pytest.mark.parametrize("format", HEADER_FORMATS)
def test_inspect_decodes_every_header_format(pki, tmp_path, format, capsys):
    headers = encode_certificate_headers(format, pki.payments)
    name, value = next(iter(headers.items()))
    root = pki.root.write(tmp_path, "root")
    for given in (value, f"{name}: {value}"):
        path = tmp_path / "value.txt"
        path.write_text(given)
        inter = pki.intermediate.write(tmp_path, "inter")
        argv = ["inspect", str(path), "--trust", str(root), "--intermediates", str(inter)]
        assert main([*argv, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["certificates"][0]["fingerprint_sha256"] == pki.payments.fingerprint_sha256
        assert out["verdict"]["accepted"] is True
        assert out["verdict"]["principal"] == "spiffe://bank.example/payments"
    # With the header name, the format read is one that uses that header.
    assert out["decoded_as"].split()[0] in {
        f for f in HEADER_FORMATS if encode_certificate_headers(f, pki.payments).get(name)
    }


def test_inspect_reads_pem_der_and_stdin_and_reports_refusals(pki, tmp_path):
    cert, _ = pki.payments.write(tmp_path, "payments")
    (tmp_path / "payments.der").write_bytes(pki.payments.der)
    other = pki.other_root.write(tmp_path, "other")
    result = cli("inspect", str(cert))
    assert result.returncode == 0
    assert result.stdout.splitlines()[:2] == [
        "decoded as: pem",
        "leaf: <empty subject>",
    ]
    assert "chain[1]: CN=Bank Test Clients CA" in result.stdout
    assert "  key usage:   clientAuth" in result.stdout
    assert "  key:         EC secp256r1" in result.stdout  # the validator's describe_key
    assert "  names:       URI:spiffe://bank.example/payments" in result.stdout
    result = cli("inspect", str(tmp_path / "payments.der"), "--json")
    assert json.loads(result.stdout)["decoded_as"] == "der"
    result = cli("inspect", "-", "--trust", str(other), stdin=cert.read_text())
    assert result.returncode == 1
    verdict = result.stdout.splitlines()[-1]
    assert verdict.startswith(
        "verdict: refused, untrusted: chains up to 'CN=Bank Test Clients CA', issued by "
        "'CN=Bank Test Root', which is not among the trusted roots: 'CN=Attacker Root'"
    )
    result = cli("inspect", "-", stdin="hello")
    assert result.returncode == 2
    assert result.stderr == (
        "asgi-mtls: not a certificate or a certificate header value (PEM, DER and every "
        "header format tried)\n"
    )
