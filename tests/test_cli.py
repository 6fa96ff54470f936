from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from asgi_mtls.cli import main


def run(capsys, *argv: str) -> tuple[int, dict]:
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_check_accepts_and_prints_the_identity(pki, tmp_path, capsys):
    root = pki.root.write(tmp_path, "root")
    inter = pki.intermediate.write(tmp_path, "inter")
    cert, _ = pki.payments.write(tmp_path, "payments")  # leaf followed by its chain
    code, out = run(capsys, "check", "--trust", str(root), str(cert))
    assert code == 0
    assert out["accepted"] is True
    assert out["principal"] == "spiffe://bank.example/payments"
    assert out["fingerprint_sha256"] == pki.payments.fingerprint_sha256
    assert len(out["chain"]) == 3
    leaf_only = tmp_path / "leaf.pem"
    leaf_only.write_text(pki.payments.pem)
    assert run(capsys, "check", "--trust", str(root), str(leaf_only))[1]["reason"] == "untrusted"
    code, out = run(
        capsys, "check", "--trust", str(root), "--intermediates", str(inter), str(leaf_only)
    )
    assert code == 0


def test_check_reports_the_reason(pki, tmp_path, capsys):
    root = pki.root.write(tmp_path, "root")
    cert, _ = pki.server_only.write(tmp_path, "server")
    code, out = run(capsys, "check", "--trust", str(root), str(cert))
    assert code == 1
    assert out == {
        "accepted": False,
        "reason": "wrong_usage",
        "detail": "extendedKeyUsage does not include clientAuth",
    }
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    assert run(capsys, "check", "--trust", str(root), str(garbage)) == (
        1,
        {
            "accepted": False,
            "reason": "malformed",
            "detail": "no complete PEM certificate block",
        },
    )


def test_check_usage_errors(tmp_path, capsys):
    assert main(["check", "--trust", str(tmp_path / "missing.pem"), str(tmp_path / "x.pem")]) == 2
    assert "asgi-mtls:" in capsys.readouterr().err


def test_installed_console_script_runs(pki, tmp_path):
    script = Path(sys.executable).parent / "asgi-mtls"
    assert script.exists(), "pip install -e . installs the asgi-mtls command beside python"
    root = pki.root.write(tmp_path, "root")
    cert, _ = pki.cn_only.write(tmp_path, "cn")
    result = subprocess.run(
        [str(script), "check", "--trust", str(root), str(cert)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["principal"] == "legacy-batch"
