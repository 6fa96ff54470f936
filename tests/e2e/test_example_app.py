"""The demo as a user runs it: ``python -m example_app`` with a freshly generated PKI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from example_app.pki import ensure_dev_pki

from .conftest import require_binary

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "example_app"


def test_demo_self_test_serves_real_mtls(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "example_app", "--pki-dir", str(tmp_path / "pki"), "--self-test"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=EXAMPLE.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "self-test passed" in result.stdout
    assert result.stdout.count("\nok  ") + result.stdout.startswith("ok  ") == 8
    for name in (
        "ca.pem",
        "server.pem",
        "server.key",
        "payments.pem",
        "reports.key",
        "untrusted.pem",
    ):
        assert (tmp_path / "pki" / name).exists()


def test_dev_pki_is_generated_once(tmp_path):
    first = ensure_dev_pki(tmp_path)
    before = first.ca.read_bytes()
    ensure_dev_pki(tmp_path)
    assert first.ca.read_bytes() == before
    assert oct(first.server[1].stat().st_mode & 0o777) == "0o600"


def test_shipped_nginx_config_is_valid(tmp_path):
    binary = require_binary("nginx", "apt-get install nginx")
    shutil.copytree(EXAMPLE / "nginx", tmp_path / "nginx")
    ensure_dev_pki(tmp_path / ".pki")
    conf = tmp_path / "nginx" / "nginx.conf"
    conf.write_text(
        conf.read_text().replace("/tmp/asgi-mtls-example-nginx.pid", str(tmp_path / "nginx.pid"))
    )
    result = subprocess.run(
        [
            binary,
            "-t",
            "-p",
            str(tmp_path / "nginx"),
            "-c",
            "nginx.conf",
            "-e",
            str(tmp_path / "error.log"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr
